"""The Where-it-looks tab's evidence in headless Chromium: the sanity check's maps and table, the deletion and
insertion curves as native plots whose points show their values on hover, and HiResCAM picked instead of
Grad-CAM. Screenshots land in test-output/ for a human to look at.
"""

# ruff: noqa: F811  (the fixtures imported from test_browser are parameters of the tests)

from __future__ import annotations

from conftest import REPO
from playwright.sync_api import Page, expect
from test_browser import OUTPUT_TIMEOUT_MS, expect_picture_shown, screenshot, upload

from poolformer.randomisation import CASCADE

CATHEDRAL = REPO / "assets" / "examples" / "reims_cathedral.jpg"  # a church: a class the bundled model knows
CURVE_POINTS_TIMEOUT_MS = 60_000  # a curve needs some forty forward passes; the shared CPU may be busy


def open_where_it_looks(page: Page) -> None:
    upload(page, CATHEDRAL)
    page.get_by_role("tab", name="Where it looks").click()


def test_sanity_check_draws_every_step_and_its_rank_correlations(page: Page) -> None:
    open_where_it_looks(page)
    expect(page.get_by_text("A trustworthy map falls apart here")).to_be_visible()
    page.locator("#sanity-button").click()
    expect_picture_shown(page.locator("#sanity-maps"))
    table = page.locator("#sanity-summary table")
    expect(table.locator("tbody tr")).to_have_count(1 + len(CASCADE), timeout=OUTPUT_TIMEOUT_MS)
    expect(table.locator("tbody tr").first).to_contain_text("as trained")
    expect(table.locator("tbody tr").last).to_contain_text("randomised down to the stem")
    expect(page.locator("#sanity-summary")).to_contain_text("With every weight random")
    page.locator("#sanity-maps").scroll_into_view_if_needed()
    screenshot(page, "tab-where-it-looks-sanity")


def test_curves_are_native_plots_that_show_values_on_hover(page: Page) -> None:
    open_where_it_looks(page)
    page.locator("#faithfulness-button").click()
    for plot in ("#deletion-plot", "#insertion-plot"):
        lines = page.locator(f"{plot} .mark-line.role-mark path")
        expect(lines).to_have_count(3, timeout=CURVE_POINTS_TIMEOUT_MS)  # map's order, random, pooling switched off
    expect(page.locator("#faithfulness-summary table tbody tr")).to_have_count(3)
    expect(page.locator("#faithfulness-summary")).to_contain_text("deletion AUC")
    plot = page.locator("#deletion-plot")
    plot.scroll_into_view_if_needed()
    box = plot.locator("canvas, svg").first.bounding_box()
    tooltip = page.locator("#vg-tooltip-element")
    # Sweep the pointer along the plot's middle, left to right, until a point's tooltip shows.
    for step in range(1, 80):
        page.mouse.move(box["x"] + box["width"] * step / 80, box["y"] + box["height"] * 0.5)
        if tooltip.is_visible() and "cells greyed" in (tooltip.text_content() or ""):
            break
    expect(tooltip).to_contain_text("probability of the class (%)", timeout=OUTPUT_TIMEOUT_MS)
    rows = dict(
        tooltip.locator("tr").evaluate_all("rows => rows.map(row => [...row.cells].map(cell => cell.textContent))")
    )
    assert rows["cell order"] in ("Grad-CAM", "random order", "Grad-CAM, pooling off")
    greyed, probability = float(rows["cells greyed (%)"]), float(rows["probability of the class (%)"])
    assert 0 <= greyed <= 100 and 0 <= probability <= 100
    if greyed == 0:  # every deletion curve starts at the photo's own probability, which the table states
        expect(page.locator("#faithfulness-summary")).to_contain_text(f"The photo alone: {probability:.1f} %")
    screenshot(page, "tab-where-it-looks-curves")


def test_hirescam_can_be_picked_for_maps_and_evidence(page: Page) -> None:
    open_where_it_looks(page)
    page.locator("#attribution").get_by_label("HiResCAM").check()
    page.locator("#explain-button").click()
    expect_picture_shown(page.locator("#cam-4"))
    expect(page.locator("#cam-summary")).to_contain_text("HiResCAM")
    page.locator("#sanity-button").click()
    expect(page.locator("#sanity-summary")).to_contain_text("HiResCAM for", timeout=OUTPUT_TIMEOUT_MS)
    screenshot(page, "tab-where-it-looks-hirescam")
