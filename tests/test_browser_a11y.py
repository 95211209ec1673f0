"""Fit for the public, in headless Chromium: axe-core on every tab in light and dark mode, the page on a
390 × 844 phone, links that reopen a view, and the figures' download and full-screen buttons.

axe-core (Deque's engine behind Lighthouse's accessibility score) comes from the axe-playwright-python wheel
(requirements-dev.txt); only its axe.min.js is used, injected into the page from the installed file.
Per-tab counts go to test-output/axe-<theme>.json, phone screenshots to test-output/phone-<tab>.png.
"""

from __future__ import annotations

import importlib.resources
import json
import re
from collections.abc import Iterator
from urllib.parse import parse_qs, urlparse

import pytest
from conftest import PAGE_LOAD_TIMEOUT_MS
from playwright.sync_api import Browser, Page, expect
from test_browser import CAT, OUTPUT_TIMEOUT_MS, SCREENSHOTS, upload

AXE_SCRIPT = (importlib.resources.files("axe_playwright_python") / "axe.min.js").read_text()
BLOCKING_IMPACTS = ("critical", "serious")
PHONE = {"width": 390, "height": 844}
DONE_TIMEOUT_MS = 120_000
# Pictures drawn wide (three views, or a grid of stages × models) that a phone shows at their own size, swiped.
SWIPED_FIGURES = ["#stage-1", "#stage-2", "#stage-3", "#stage-4", "#cam-comparison", "#sanity-maps", "#ablation-chart", "#zoo-picture"]


def open_page(browser: Browser, url: str, **context: object) -> Page:
    page = browser.new_page(**context)
    page.goto(url)
    expect(page.locator("#status")).to_contain_text("Loaded", timeout=PAGE_LOAD_TIMEOUT_MS)
    return page


@pytest.fixture
def phone(browser: Browser, app_url: str) -> Iterator[Page]:
    page = open_page(browser, app_url, viewport=PHONE, device_scale_factor=1, is_mobile=True, has_touch=True)
    yield page
    page.close()


def slug(name: str) -> str:
    """A tab's name as part of a file name: "What pooling does" -> what-pooling-does."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def tab_names(page: Page) -> list[str]:
    tabs = page.locator("#tabs").get_by_role("tab")
    return [tabs.nth(index).inner_text().strip() for index in range(tabs.count())]


def wait_until_idle(page: Page) -> None:
    """Every event the page started has answered: every output's status tracker is hidden again (Gradio shows it,
    with "processing", a queue position or a progress message such as "Loading … weights", until the answer)."""
    page.wait_for_timeout(500)
    page.wait_for_function(
        """() => [...document.querySelectorAll("[data-testid=status-tracker]")].every(
            (tracker) => tracker.classList.contains("hide"))""",
        timeout=DONE_TIMEOUT_MS,
    )


def run_tab(page: Page, name: str) -> None:
    """Open tab `name` and run its views: every button of the tab that starts one (the primary ones, and each
    #…-button: the token inspector, the sanity check, the curves), so axe and the screenshots see the tab as a
    visitor who has used it does."""
    page.locator("#tabs").get_by_role("tab", name=name, exact=True).click()
    panel = page.locator("#tabs [role=tabpanel]:visible")
    buttons = panel.locator("button.primary:visible, button[id$='-button']:visible")
    for index in range(buttons.count()):
        buttons.nth(index).click()
        wait_until_idle(page)
    for picture in panel.locator("img").all():  # lazy pictures load once scrolled to
        picture.scroll_into_view_if_needed()
    page.evaluate("window.scrollTo(0, 0)")
    settled(page)


def settled(page: Page) -> None:
    """Outputs have faded in and blocks have grown to their new content (Gradio animates both; mid-way a
    caption's box is still smaller than its text, which axe would report as a scrollable region)."""
    page.wait_for_timeout(300)
    page.wait_for_function(
        "document.getAnimations().every((animation) => animation.playState !== 'running')", timeout=OUTPUT_TIMEOUT_MS
    )


def axe_violations(page: Page) -> list[dict]:
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(content=AXE_SCRIPT)
    return page.evaluate("axe.run(document, {resultTypes: ['violations']})")["violations"]


def counts_by_impact(violations: list[dict]) -> dict[str, dict[str, int]]:
    """{impact: {rule: number of elements}}, as the report gives them."""
    counts: dict[str, dict[str, int]] = {}
    for violation in violations:
        counts.setdefault(violation["impact"], {})[violation["id"]] = len(violation["nodes"])
    return counts


def blocking(violations: list[dict]) -> list[str]:
    return [
        f"{violation['id']} ({violation['impact']}): {node['target']} {node['html'][:120]}"
        for violation in violations
        if violation["impact"] in BLOCKING_IMPACTS
        for node in violation["nodes"]
    ]


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_axe_finds_nothing_critical_or_serious_on_any_tab(browser: Browser, app_url: str, theme: str) -> None:
    page = open_page(browser, app_url + ("?__theme=dark" if theme == "dark" else ""), viewport={"width": 1400, "height": 1000})
    if theme == "dark":
        assert page.evaluate("document.body.classList.contains('dark')")
    counts = {"(page as opened)": counts_by_impact(violations := axe_violations(page))}
    failures = blocking(violations)
    upload(page, CAT)
    names = tab_names(page)
    assert len(names) >= 7
    SCREENSHOTS.mkdir(exist_ok=True)
    for name in names:
        run_tab(page, name)
        violations = axe_violations(page)
        counts[name] = counts_by_impact(violations)
        failures += [f"{name}: {failure}" for failure in blocking(violations)]
        page.screenshot(path=str(SCREENSHOTS / f"{theme}-{slug(name)}.png"), full_page=True)  # to look at
    (SCREENSHOTS / f"axe-{theme}.json").write_text(json.dumps(counts, indent=2))
    page.close()
    assert not failures, "\n".join(failures)


def test_phone_shows_every_tab_without_sideways_scrolling(phone: Page) -> None:
    upload(phone, CAT)
    failures = []
    for name in tab_names(phone):
        run_tab(phone, name)
        failures += [f"{name}: {failure}" for failure in blocking(axe_violations(phone))]  # swiped frames too
        page_width = phone.evaluate("document.documentElement.scrollWidth")
        assert page_width <= PHONE["width"], f"{name}: the page scrolls sideways ({page_width} px wide)"
        for figure in SWIPED_FIGURES:
            picture = phone.locator(f"{figure}:visible img")
            if picture.count() == 0:
                continue
            # Drawn at its own size, so its captions read as drawn; its frame swipes, the page does not.
            natural, shown = picture.evaluate("img => [img.naturalHeight, img.getBoundingClientRect().height]")
            assert shown == pytest.approx(natural, abs=1), f"{name} {figure}: shown {shown} px high, drawn {natural}"
            frame = phone.locator(f"{figure} .image-container")
            assert frame.evaluate("frame => frame.scrollWidth > frame.clientWidth"), f"{name} {figure} does not swipe"
            frame.evaluate("frame => { frame.scrollLeft = frame.scrollWidth; }")
            assert frame.evaluate("frame => frame.scrollLeft") > 0
            frame.evaluate("frame => { frame.scrollLeft = 0; }")
        # Every control of the tab lies within the screen's width (a swiped picture is one button wider than it).
        outside = phone.evaluate("""() => [...document.querySelectorAll("#tabs [role=tabpanel] :is(button, input, select)")]
            .filter((control) => control.offsetParent !== null && !control.closest(".image-container"))
            .map((control) => [control.outerHTML.slice(0, 80), control.getBoundingClientRect()])
            .filter(([, box]) => box.left < 0 || box.right > window.innerWidth + 0.5)""")
        assert not outside, f"{name}: {outside}"
        phone.screenshot(path=str(SCREENSHOTS / f"phone-{slug(name)}.png"), full_page=True)
    assert not failures, "\n".join(failures)


def linked_state(page: Page) -> dict[str, object]:
    """What a link must carry, read off the page: the photo, the model, the open tab and the settings."""
    page.locator("#tabs").get_by_role("tab", name="Token-mixer ablation", exact=True).click()
    identity = [box.is_checked() for box in page.locator("#identity-stages input").all()]
    pool_2 = [box.is_checked() for box in page.locator("#pool-size-2 input").all()]
    page.locator("#tabs").get_by_role("tab", name="What pooling does", exact=True).click()
    row = page.locator("#token-row input").input_value()
    page.locator("#tabs").get_by_role("tab", name="Predict", exact=True).click()
    scale = [box.is_checked() for box in page.locator("#colour-scale input").all()]
    return {
        "photo": page.locator("#photo img").get_attribute("src").rsplit("/", 1)[-1],
        "model": page.locator("#status").inner_text(),
        "identity": identity,
        "pool_2": pool_2,
        "row": row,
        "scale": scale,
    }


def test_a_link_reopens_the_photo_model_tab_and_settings(browser: Browser, app_url: str, checkpoint_dir) -> None:
    page = open_page(browser, app_url + "?tab=ablation&photo=rocket&identity=1,3&pool2=5&scale=global&row=4&model=nothing")
    expect(page.locator("#tabs [role=tab][aria-selected=true]")).to_have_text("Token-mixer ablation", timeout=OUTPUT_TIMEOUT_MS)
    expect(page.locator("#photo img")).to_have_attribute("src", re.compile(r"/rocket\.jpg$"), timeout=OUTPUT_TIMEOUT_MS)
    expect(page.locator("#identity-stages input").nth(0)).to_be_checked()
    expect(page.locator("#identity-stages input").nth(1)).not_to_be_checked()
    expect(page.locator("#pool-size-2").get_by_label("5 × 5 (what-if)")).to_be_checked()
    expect(page.locator("#status")).to_contain_text("poolformer_s12_imagenette")  # an unknown model: the default

    # The visitor moves on; the address follows, and opening it elsewhere shows the same view.
    page.locator("#model input").click()
    page.get_by_role("option", name=re.compile("IdentityFormer-S12")).click()
    expect(page.locator("#status")).to_contain_text("identityformer_s12_imagenette", timeout=OUTPUT_TIMEOUT_MS)
    page.locator("#examples").get_by_role("button", name="Cat", exact=True).click()
    expect(page.locator("#photo img")).to_have_attribute("src", re.compile(r"/cat\.jpg$"), timeout=OUTPUT_TIMEOUT_MS)
    page.locator("#tabs").get_by_role("tab", name="Predict", exact=True).click()
    # The linked scale reaches the radio once its tab has mounted; a click before that would be overwritten.
    expect(page.locator("#colour-scale").get_by_label("global")).to_be_checked()
    page.locator("#colour-scale").get_by_label("per stage").check()
    expect(page).to_have_url(re.compile(r"scale=stage"))
    page.locator("#tabs").get_by_role("tab", name="What pooling does", exact=True).click()
    page.locator("#token-row input").fill("7")
    page.locator("#token-row input").press("Enter")
    page.locator("#tabs").get_by_role("tab", name="Where it looks", exact=True).click()
    expect(page).to_have_url(re.compile(r"tab=where-it-looks"))
    expect(page).to_have_url(re.compile(r"row=7"))
    link = page.url
    query = parse_qs(urlparse(link).query)
    assert query["photo"] == ["cat"] and query["scale"] == ["stage"] and query["model"] == ["identityformer-s12-imagenette"]
    expected = linked_state(page)  # (it opens other tabs, so the address moves on from `link`)

    again = open_page(browser, link)
    expect(again.locator("#tabs [role=tab][aria-selected=true]")).to_have_text("Where it looks", timeout=OUTPUT_TIMEOUT_MS)
    expect(again.locator("#photo img")).to_be_visible(timeout=OUTPUT_TIMEOUT_MS)
    expect(again.locator("#status")).to_contain_text("identityformer_s12_imagenette", timeout=OUTPUT_TIMEOUT_MS)
    assert linked_state(again) == expected
    page.close()
    again.close()


def test_copy_link_puts_the_address_on_the_clipboard(browser: Browser, app_url: str) -> None:
    context = browser.new_context(permissions=["clipboard-read", "clipboard-write"])
    page = context.new_page()
    page.goto(app_url + "?tab=about")
    expect(page.locator("#status")).to_contain_text("Loaded", timeout=PAGE_LOAD_TIMEOUT_MS)
    expect(page).to_have_url(re.compile(r"model="), timeout=OUTPUT_TIMEOUT_MS)
    page.locator("#copy-link").click()
    expect(page.locator("#copy-link")).to_have_text(re.compile("Link copied"))
    assert page.evaluate("navigator.clipboard.readText()") == page.url
    context.close()


def test_figures_download_and_go_full_screen(page: Page) -> None:
    upload(page, CAT)
    page.locator("#predict-button").click()
    stage = page.locator("#stage-2")
    expect(stage.locator("img")).to_be_visible(timeout=OUTPUT_TIMEOUT_MS)
    stage.hover()
    with page.expect_download() as download:
        stage.get_by_role("button", name=re.compile("download", re.IGNORECASE)).click()
    assert download.value.suggested_filename.endswith(".jpeg") or download.value.suggested_filename.endswith(".jpg")
    stage.get_by_role("button", name="Fullscreen").click()  # Gradio's own: the picture covers the window
    expect(stage.get_by_role("button", name="Exit fullscreen mode")).to_be_visible()
    # Within a pixel: Chromium lays the picture out in fractions of one (CI once saw 1399.98 of 1400).
    assert stage.locator("img").bounding_box()["width"] == pytest.approx(page.viewport_size["width"], abs=1)
    stage.get_by_role("button", name="Exit fullscreen mode").click()

    page.locator("#tabs").get_by_role("tab", name="MetaFormer", exact=True).click()
    expect(page.locator('#architecture svg[data-measured="true"]')).to_be_visible(timeout=OUTPUT_TIMEOUT_MS)
    with page.expect_download() as download:
        page.locator("#architecture-download").click()
    saved = download.value.path().read_text()
    assert saved.startswith("<svg") and 'data-stage="4"' in saved
    page.locator("#architecture-full-screen").click()
    page.wait_for_function("document.fullscreenElement?.id === 'architecture'", timeout=OUTPUT_TIMEOUT_MS)
