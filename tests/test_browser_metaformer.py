"""The MetaFormer and Mixer zoo tabs, the Compare plot and the guided tour in headless Chromium, with screenshots
in test-output/.

Uses test_browser.py's browser and page fixtures (one fresh visitor per test, so the tour opens by itself).
"""

# ruff: noqa: F811  (the fixtures imported from test_browser are parameters of the tests)

from __future__ import annotations

import json
from pathlib import Path

from playwright.sync_api import Locator, Page, expect
from safetensors import safe_open
from test_browser import (
    CAT,
    OUTPUT_TIMEOUT_MS,
    choose_model,
    display_name,
    expect_picture_shown,
    screenshot,
    upload,
)

# The tour's seven steps and the tab each one leaves open. "Where it looks" and "What pooling does" are
# other views' tabs: when the page has them, their step must open them, otherwise the tab stays as it was.
TOUR = [
    ("Photo", "Predict"),
    ("Top-5", "Predict"),
    ("Stages", "Predict"),
    ("Class maps", "Where it looks"),
    ("Pooling as a filter", "What pooling does"),
    ("Ablation", "Token-mixer ablation"),
    ("Architecture", "MetaFormer"),
]


def selected_tab(page: Page, name: str) -> Locator:
    """A tab of the main tab bar (the tour's steps are role="tab" buttons too)."""
    return page.locator("#tabs").get_by_role("tab", name=name, exact=True)


def test_metaformer_tab_draws_the_photos_architecture(page: Page, checkpoint_dir: Path) -> None:
    upload(page, CAT)
    selected_tab(page, "MetaFormer").click()
    diagram = page.locator('#architecture svg[data-measured="true"]')
    expect(diagram).to_be_visible(timeout=OUTPUT_TIMEOUT_MS)
    expect(diagram.locator("g.stage")).to_have_count(4)
    expect(diagram.locator("image")).to_have_count(5)  # the crop and one energy map per stage
    expect(diagram.locator('g.stage[data-stage="4"]')).to_have_attribute("data-shape", "1,512,7,7")
    expect(page.locator("#paper-tables")).to_contain_text("no residual connections")
    with safe_open(str(checkpoint_dir / "poolformer_s12_imagenette.safetensors"), framework="pt") as checkpoint:
        pooling = json.loads(checkpoint.metadata()["seed_summary"])["pooling"]
    expect(page.locator("#measured-table")).to_contain_text(f"{pooling['mean'] * 100:.2f} ± {pooling['sd'] * 100:.2f}")
    screenshot(page, "tab-metaformer")

    choose_model(page, display_name(checkpoint_dir / "identityformer_s12_imagenette.safetensors"))
    expect(diagram.locator('g.stage[data-mixer="identity"]')).to_have_count(4, timeout=OUTPUT_TIMEOUT_MS)
    screenshot(page, "tab-metaformer-identityformer")


def test_mixer_zoo_runs_every_bundled_mixer_model_on_the_photo(page: Page, checkpoint_dir: Path) -> None:
    upload(page, CAT)
    selected_tab(page, "Mixer zoo").click()
    expect_picture_shown(page.locator("#cka-heatmap"))  # measured once, at training time: there before any run
    expect(page.locator("#cka-reading")).to_contain_text("Do they learn the same features?")
    page.locator("#zoo-button").click()
    expect_picture_shown(page.locator("#zoo-picture"))
    table = page.locator("#zoo-table")
    for checkpoint in sorted(checkpoint_dir.glob("*.safetensors")):
        expect(table).to_contain_text(display_name(checkpoint).split(" · ")[0])  # the tables give short names
    expect(table).to_contain_text("vs pooling, points [95 %]")
    expect(table).to_contain_text("the pooling model's top-1")
    screenshot(page, "tab-mixer-zoo")

    page.locator("#zoo-target input").click()
    page.get_by_role("option", name="parachute", exact=True).click()
    page.locator("#zoo-button").click()
    expect(table).to_contain_text("Every map is for parachute (the class you picked)", timeout=OUTPUT_TIMEOUT_MS)
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: the table scrolls, the pictures shrink
    expect_picture_shown(page.locator("#zoo-picture"))
    screenshot(page, "tab-mixer-zoo-phone")


def test_compare_tab_plots_accuracy_against_latency(page: Page, checkpoint_dir: Path) -> None:
    upload(page, CAT)
    selected_tab(page, "Compare variants").click()
    page.locator("#compare-button").click()
    points = page.locator("#compare-plot .mark-symbol.role-mark path")
    expect(points).to_have_count(len(list(checkpoint_dir.glob("*.safetensors"))), timeout=OUTPUT_TIMEOUT_MS)
    points.first.hover(force=True)  # the tooltip names the model, its size and its answer for this photo
    tooltip = page.locator("#vg-tooltip-element")
    expect(tooltip).to_contain_text("this photo", timeout=OUTPUT_TIMEOUT_MS)
    expect(tooltip).to_contain_text("11.4 M")
    screenshot(page, "tab-compare-plot")


def test_ablation_runs_a_what_if_pool_size(page: Page) -> None:
    """Untick stages 1-3 (they keep pooling), widen stage 1's pool to 7 × 7, keep identity in stage 4."""
    upload(page, CAT)
    selected_tab(page, "Token-mixer ablation").click()
    stage_1_sizes = page.locator("#pool-size-1")
    expect(stage_1_sizes.get_by_label("7 × 7 (what-if)")).to_be_disabled()  # stage 1 starts as identity
    for number in (1, 2, 3):
        page.locator("#identity-stages").get_by_label(f"Stage {number}", exact=True).uncheck()
    expect(stage_1_sizes.get_by_label("7 × 7 (what-if)")).to_be_enabled(timeout=OUTPUT_TIMEOUT_MS)
    stage_1_sizes.get_by_label("7 × 7 (what-if)").check()
    page.locator("#ablate-button").click()
    expect(page.get_by_text("Pool window widened in stage 1: 7 × 7")).to_be_visible(timeout=OUTPUT_TIMEOUT_MS)
    expect(page.get_by_text("Pooling replaced by identity in stage(s) 4 ")).to_be_visible()
    screenshot(page, "tab-ablation-pool-sizes")


def do_what_the_step_says(page: Page, title: str) -> None:
    """Follow the tour like a visitor: pick a photo, predict, filter, run the ablation; other steps are to read."""
    if title == "Photo":
        page.locator("#examples").get_by_role("button", name="Reims cathedral").click()
        expect(page.locator("#photo img")).to_be_visible(timeout=OUTPUT_TIMEOUT_MS)
    elif title == "Top-5":
        page.locator("#predict-button").click()
        expect(page.locator("#top5 .confidence-set")).to_have_count(5, timeout=OUTPUT_TIMEOUT_MS)
    elif title == "Pooling as a filter" and page.locator("#filter-button").count():
        page.locator("#filter-button").click()
        expect(page.locator("#filter-slider img").first).to_be_visible(timeout=OUTPUT_TIMEOUT_MS)
    elif title == "Ablation":
        page.locator("#ablate-button").click()
        expect(page.locator("#identity-top5 .confidence-set")).to_have_count(5, timeout=OUTPUT_TIMEOUT_MS)
    elif title == "Architecture":
        expect(page.locator('#architecture svg[data-measured="true"]')).to_be_visible(timeout=OUTPUT_TIMEOUT_MS)
        expect(page.locator("#tour-step-7")).to_contain_text("Mixer zoo")  # the last step points on to the zoo
    elif title == "Mixer zoo":  # where Finish leaves the visitor
        page.locator("#zoo-button").click()
        expect_picture_shown(page.locator("#zoo-picture"))
        expect(page.locator("#zoo-table")).to_contain_text("the pooling model's top-1")


def test_tour_walks_a_first_time_visitor_through_every_view(page: Page) -> None:
    expect(page.locator("#tour-steps")).to_be_visible()  # a first visit opens the tour by itself
    for number, (title, tab) in enumerate(TOUR, start=1):
        step = page.locator(f"#tour-step-{number}")
        expect(step).to_be_visible(timeout=OUTPUT_TIMEOUT_MS)
        expect(page.locator(f"#tour-step-{number}-button")).to_contain_text(title)
        if selected_tab(page, tab).count():
            expect(selected_tab(page, tab)).to_have_attribute("aria-selected", "true")
        do_what_the_step_says(page, title)
        screenshot(page, f"tour-step-{number}")
        if number < len(TOUR):
            page.locator(f"#tour-next-{number}").click()
    page.locator("#tour-step-6-button").click()  # going back to a step opens its tab again
    expect(selected_tab(page, "Token-mixer ablation")).to_have_attribute("aria-selected", "true")
    page.locator("#tour-next-6").click()
    expect(selected_tab(page, "MetaFormer")).to_have_attribute("aria-selected", "true")
    page.locator(f"#tour-next-{len(TOUR)}").click()
    expect(page.locator("#tour-steps")).to_be_hidden()  # Finish closes it, on the Mixer zoo...
    expect(selected_tab(page, "Mixer zoo")).to_have_attribute("aria-selected", "true")
    do_what_the_step_says(page, "Mixer zoo")
    screenshot(page, "tour-finished-mixer-zoo")
    page.reload()
    expect(page.locator("#status")).to_contain_text("Loaded", timeout=OUTPUT_TIMEOUT_MS)
    expect(page.get_by_text("New here? A short tour")).to_be_visible()
    expect(page.locator("#tour-steps")).to_be_hidden()  # ...and a returning visitor isn't shown it again
