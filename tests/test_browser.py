"""The app in a real headless Chromium, driven like a visitor would: upload, click, read the page.

Screenshots of every tab land in test-output/ (git-ignored) for a human to look at.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from conftest import REPO
from playwright.sync_api import Locator, Page, expect
from safetensors import safe_open

from visualize.maps import GRID_SIZE, PANEL_GAP, PHOTO_SIZE, TITLE_HEIGHT

SCREENSHOTS = REPO / "test-output"
CAT = REPO / "assets" / "examples" / "cat.jpg"
OUTPUT_TIMEOUT_MS = 30_000
FADE_IN_S = 0.5  # outputs fade in; screenshot after they have settled


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


def predicted_page(page: Page) -> None:
    upload(page, CAT)
    page.locator("#predict-button").click()
    expect_top5(page.locator("#top5"))
    for stage in range(1, 5):
        expect_picture_shown(page.locator(f"#stage-{stage}"))


def test_predict_shows_top5_and_four_stage_maps(page: Page) -> None:
    predicted_page(page)
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


def click_picture(picture: Locator, x: float, y: float) -> None:
    """Click a shown picture at (x, y) in the picture's own pixels; the browser draws it scaled to fit."""
    image = picture.locator("img")
    scale = image.bounding_box()["width"] / image.evaluate("img => img.naturalWidth")
    image.click(position={"x": x * scale, "y": y * scale})


def panel_brightness(picture: Locator, left: int, top: int, size: int) -> float:
    """Mean RGB value of a size × size square of the shown picture, read back from the decoded pixels."""
    return picture.locator("img").evaluate(
        """(img, [left, top, size]) => {
            const canvas = document.createElement("canvas");
            canvas.width = canvas.height = size;
            const context = canvas.getContext("2d");
            context.drawImage(img, left, top, size, size, 0, 0, size, size);
            const pixels = context.getImageData(0, 0, size, size).data;
            let total = 0;
            for (let i = 0; i < pixels.length; i += 4) total += pixels[i] + pixels[i + 1] + pixels[i + 2];
            return total / (pixels.length / 4 * 3);
        }""",
        [left, top, size],
    )


def test_clicking_a_token_on_a_stage_map_shows_its_neighbourhood(page: Page) -> None:
    predicted_page(page)
    cell = PHOTO_SIZE // 14  # stage 3 has 14 × 14 tokens
    click_picture(page.locator("#stage-3"), 9.5 * cell, TITLE_HEIGHT + 5.5 * cell)  # energy map, token (5, 9)
    detail = page.locator("#token-3")
    expect(detail).to_contain_text("Stage 3, token row 5, column 9", timeout=OUTPUT_TIMEOUT_MS)
    expect(detail).to_contain_text("‖pool(x) − x‖")
    expect_picture_shown(detail)
    screenshot(page, "token-clicked")
    pooling_map_left = PHOTO_SIZE + GRID_SIZE[0] + 2 * PANEL_GAP
    click_picture(page.locator("#stage-3"), pooling_map_left + 0.5 * cell, TITLE_HEIGHT + 13.5 * cell)
    expect(detail).to_contain_text("Stage 3, token row 13, column 0", timeout=OUTPUT_TIMEOUT_MS)
    click_picture(page.locator("#stage-3"), PHOTO_SIZE + PANEL_GAP + 100, TITLE_HEIGHT + 100)  # a channel tile
    expect(page.get_by_test_id("toast-body").first).to_contain_text("not on a map", timeout=OUTPUT_TIMEOUT_MS)
    expect(detail).to_contain_text("row 13, column 0")  # the last token stays shown


def test_switching_the_colour_scale_redraws_the_stage_maps(page: Page) -> None:
    predicted_page(page)
    stage1 = page.locator("#stage-1")
    before = stage1.locator("img").get_attribute("src")
    own_scale = panel_brightness(stage1, 0, TITLE_HEIGHT, PHOTO_SIZE)
    page.locator("#colour-scale").get_by_label("global").check()
    expect(stage1.locator("img")).not_to_have_attribute("src", before, timeout=OUTPUT_TIMEOUT_MS)
    expect_picture_shown(stage1)
    # Stage 1 responds far more weakly than stage 4: on one global scale its energy map turns dark.
    assert panel_brightness(stage1, 0, TITLE_HEIGHT, PHOTO_SIZE) < own_scale - 10
    screenshot(page, "colour-scale-global")


def test_what_pooling_does_tab_filters_the_photo_and_the_slider_moves(page: Page) -> None:
    upload(page, CAT)
    page.get_by_role("tab", name="What pooling does").click()
    page.locator("#filter-button").click()
    slider = page.locator("#filter-slider")
    pictures = slider.get_by_test_id("imageslider-image")
    expect(pictures).to_have_count(2, timeout=OUTPUT_TIMEOUT_MS)
    for index in range(2):
        pictures.nth(index).evaluate("img => img.decode()")
    expect_picture_shown(page.locator("#filter-stage1"))
    expect_picture_shown(page.locator("#filter-kernels"))
    expect(page.locator("#filter-caption")).to_contain_text("Mid-grey is 0")
    page.locator("#token-button").click()  # one token up close, picked by number: stage 1, (0, 0), a corner
    expect(page.locator("#token-summary")).to_contain_text("covers 4 tokens", timeout=OUTPUT_TIMEOUT_MS)
    expect_picture_shown(page.locator("#token-picture"))
    screenshot(page, "tab-what-pooling-does")

    filtered = pictures.nth(1)  # drawn on top, clipped from the left up to the slider
    expect(filtered).to_have_attribute("style", re.compile(r"inset\(0px 0px 0px 50%\)"))
    slider.scroll_into_view_if_needed()  # the mouse drags in viewport coordinates
    handle, shown = slider.get_by_test_id("slider").bounding_box(), filtered.bounding_box()
    middle_y = shown["y"] + shown["height"] / 2
    page.mouse.move(handle["x"] + handle["width"] / 2, middle_y)
    page.mouse.down()
    page.mouse.move(shown["x"] + 0.2 * shown["width"], middle_y, steps=8)
    page.mouse.up()
    expect(filtered).to_have_attribute("style", re.compile(r"inset\(0px 0px 0px (1[5-9]|2[0-5])(\.\d+)?%\)"))
    screenshot(page, "filter-slider-moved")


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
    page.locator("#examples").get_by_role("button", name="Reims cathedral").click()
    expect(page.locator("#photo img")).to_have_attribute("src", re.compile("reims_cathedral"), timeout=OUTPUT_TIMEOUT_MS)
    page.locator("#predict-button").click()
    expect_top5(page.locator("#top5"))
    expect(page.locator("#top5 h2")).to_have_text("church", timeout=OUTPUT_TIMEOUT_MS)
    screenshot(page, "example-picked")
