"""The app in a real headless Chromium, driven like a visitor would: upload, click, read the page.

Screenshots of every tab land in test-output/ (git-ignored) for a human to look at.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright
from safetensors import safe_open

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SCREENSHOTS = REPO / "test-output"
CAT = REPO / "assets" / "examples" / "cat.jpg"
OUTPUT_TIMEOUT_MS = 30_000
FADE_IN_S = 0.5  # outputs fade in; screenshot after they have settled


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, app_url: str) -> Iterator[Page]:
    """A fresh visitor: the page is loaded and the default (bundled) model reported as loaded."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(app_url)
    expect(page.locator("#status")).to_contain_text("Loaded", timeout=OUTPUT_TIMEOUT_MS)
    yield page
    page.close()


def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(exist_ok=True)
    time.sleep(FADE_IN_S)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def upload(page: Page, photo: Path) -> None:
    page.locator("#photo input[type=file]").set_input_files(str(photo))
    expect(page.locator("#photo img")).to_be_visible(timeout=OUTPUT_TIMEOUT_MS)


def expect_top5(label: Locator) -> None:
    expect(label.locator(".confidence-set")).to_have_count(5, timeout=OUTPUT_TIMEOUT_MS)


def expect_picture_shown(picture: Locator) -> None:
    """The <img> exists and the browser actually decoded it (naturalWidth > 0)."""
    image = picture.locator("img")
    expect(image).to_be_visible(timeout=OUTPUT_TIMEOUT_MS)
    image.evaluate("img => img.decode()")
    assert image.evaluate("img => img.naturalWidth") > 0


def choose_model(page: Page, label_text: str) -> None:
    page.locator("#model input").click()
    page.get_by_role("option", name=label_text).click()


def display_name(checkpoint: Path) -> str:
    """The name the app shows for a bundled checkpoint: its safetensors metadata 'name'."""
    with safe_open(str(checkpoint), framework="pt") as reader:
        return reader.metadata()["name"]


def test_predict_shows_top5_and_four_stage_maps(page: Page) -> None:
    upload(page, CAT)
    page.locator("#predict-button").click()
    expect_top5(page.locator("#top5"))
    for stage in range(1, 5):
        expect_picture_shown(page.locator(f"#stage-{stage}"))
    expect(page.get_by_text("512 × 7 × 7")).to_be_visible()
    screenshot(page, "tab-predict")


def test_where_it_looks_shows_four_maps_and_explains_a_chosen_class(page: Page) -> None:
    upload(page, CAT)
    page.get_by_role("tab", name="Where it looks").click()
    page.locator("#explain-button").click()
    expect_top5(page.locator("#explain-top5"))
    for stage in range(1, 5):
        expect_picture_shown(page.locator(f"#cam-{stage}"))
    expect_picture_shown(page.locator("#cam-comparison"))
    expect(page.locator("#cam-summary")).to_contain_text("trained from scratch", timeout=OUTPUT_TIMEOUT_MS)
    screenshot(page, "tab-where-it-looks")

    # After a run the class menu offers the photo's top-5; explaining the third one relabels every stage.
    page.locator("#target input").click()
    options = page.get_by_role("option")
    expect(options).to_have_count(6)  # "the top-1 class", then the five classes best first
    third = options.nth(3).inner_text().strip()
    options.nth(3).click()
    page.locator("#explain-button").click()
    expect(page.locator("#cam-summary")).to_contain_text(f"probability for {third}", timeout=OUTPUT_TIMEOUT_MS)
    expect(page.get_by_text(f"the score of {third}")).to_have_count(4)
    screenshot(page, "tab-where-it-looks-third-class")


def test_ablation_shows_both_top5s_and_the_chart(page: Page) -> None:
    upload(page, CAT)
    page.get_by_role("tab", name="Token-mixer ablation").click()
    page.locator("#ablate-button").click()
    expect_top5(page.locator("#pooling-top5"))
    expect_top5(page.locator("#identity-top5"))
    expect_top5(page.locator("#scratch-top5"))  # the bundled model has an identity twin trained from scratch
    expect_picture_shown(page.locator("#ablation-chart"))
    expect(page.get_by_text("74.3 %")).to_be_visible()
    screenshot(page, "tab-ablation")


def test_compare_lists_every_bundled_model(page: Page, checkpoint_dir: Path) -> None:
    upload(page, CAT)
    page.get_by_role("tab", name="Compare variants").click()
    page.locator("#compare-button").click()
    checkpoints = sorted(checkpoint_dir.glob("*.safetensors"))
    expect(page.locator("#compare-maps img")).to_have_count(len(checkpoints), timeout=OUTPUT_TIMEOUT_MS)
    for checkpoint in checkpoints:
        expect(page.locator("#compare-table")).to_contain_text(display_name(checkpoint))
    screenshot(page, "tab-compare")


def test_about_tab_explains_the_model(page: Page) -> None:
    page.get_by_role("tab", name="About").click()
    expect(page.get_by_text("How PoolFormer works")).to_be_visible()
    expect(page.get_by_role("table").first).to_contain_text("82.5 %")
    screenshot(page, "tab-about")


def test_switching_variant_updates_status_and_predictions(page: Page, checkpoint_dir: Path) -> None:
    choose_model(page, display_name(checkpoint_dir / "identityformer_s12_imagenette.safetensors"))
    expect(page.locator("#status")).to_contain_text("identityformer_s12_imagenette.safetensors", timeout=OUTPUT_TIMEOUT_MS)
    upload(page, CAT)
    page.locator("#predict-button").click()
    expect_top5(page.locator("#top5"))
    screenshot(page, "switch-variant-identityformer")


def test_unavailable_official_variant_warns_and_app_keeps_working(page: Page, checkpoint_dir: Path) -> None:
    choose_model(page, "PoolFormer-S24")
    expect(page.get_by_test_id("toast-body").first).to_contain_text("hf download sail/poolformer_s24", timeout=OUTPUT_TIMEOUT_MS)
    expect(page.locator("#status")).to_contain_text("Not loaded")
    screenshot(page, "switch-variant-unavailable")
    choose_model(page, display_name(checkpoint_dir / "poolformer_s12_imagenette.safetensors"))
    expect(page.locator("#status")).to_contain_text("Loaded", timeout=OUTPUT_TIMEOUT_MS)
    upload(page, CAT)
    page.locator("#predict-button").click()
    expect_top5(page.locator("#top5"))


def test_picking_an_example_fills_the_photo(page: Page) -> None:
    """The first example is a cathedral, which the bundled default model must call a church."""
    page.locator("#examples img").first.click()
    expect(page.locator("#photo img")).to_have_attribute("src", re.compile("reims_cathedral"), timeout=OUTPUT_TIMEOUT_MS)
    page.locator("#predict-button").click()
    expect_top5(page.locator("#top5"))
    expect(page.locator("#top5 h2")).to_have_text("church", timeout=OUTPUT_TIMEOUT_MS)
    screenshot(page, "example-picked")
