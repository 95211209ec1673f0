"""PoolFormer Explorer: a Gradio app that shows how PoolFormer (MetaFormer) sees a photo.

This file composes the page from `ui/` (the left column, the tour and one module per tab, each holding its
layout, events and callbacks) and serves it. Run `python app.py [--model REF ...]`; GRADIO_SERVER_NAME /
GRADIO_SERVER_PORT choose where it listens, and ui/server.py holds the other server settings. Models load
lazily, so the page is up within seconds even offline.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no phoning home

import argparse
import logging
import sys
import threading

import gradio as gr
import torch
from starlette.middleware import Middleware

from poolformer import explorer
from poolformer.weights import WeightsError
from ui import links, sidebar, tour
from ui.server import (
    MAX_REQUEST_BODY,
    MAX_UPLOAD_SIZE,
    MODEL_RUNS_AT_ONCE,
    QUEUE_SIZE,
    SESSIONS_KEPT,
    TEMP_FILE_SWEEP,
    RequestBodyLimit,
    bound_malloc_retention,
    cache_pictures_atomically,
    never_served,
    share_model_run_slots,
    sweep_temp_files_safely,
    torch_threads_per_request,
)
from ui.tabs import ablation, about, compare, metaformer, pooling, predict, where_it_looks, zoo
from visualize.architecture import architecture_svg

INTRO = """
# PoolFormer Explorer
**PoolFormer** (Yu et al., [*MetaFormer is Actually What You Need for Vision*](https://arxiv.org/abs/2111.11418), CVPR 2022)
keeps the Transformer block — normalise, *mix the tokens*, add; normalise, channel MLP, add — but replaces
attention with the plainest token mixer there is: a 3 × 3 average pooling. It still reaches 77–82 % top-1 on
ImageNet, which suggests that the general **MetaFormer** structure, more than attention, is what makes these
models work. Give it a photo to see its top-5 guesses and what each of its four stages responds to, switch
pooling off to measure how much it matters, or run every available variant side by side.
"""

# System fonts only: the theme's default Google Fonts can't load on an offline machine. The .set() colours pass
# WCAG AA contrast (4.5:1 for text, checked by axe-core in tests/test_browser_a11y.py): Soft's indigo-500
# labels and buttons, and its grey-400 subdued text, fall short on their backgrounds.
THEME = gr.themes.Soft(
    primary_hue="indigo",
    font=["ui-sans-serif", "system-ui", "Segoe UI", "Roboto", "sans-serif"],
    font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "monospace"],
).set(
    block_label_text_color="*primary_700",
    block_title_text_color="*primary_700",
    button_primary_background_fill="*primary_600",
    button_primary_background_fill_hover="*primary_700",
    button_primary_background_fill_hover_dark="*primary_700",
    checkbox_label_background_fill_selected="*primary_600",
    color_accent="*primary_600",
    body_text_color_subdued="*neutral_600",
    link_text_color_dark="*secondary_400",
    link_text_color_hover_dark="*secondary_300",
    link_text_color_visited_dark="*secondary_400",
    link_text_color_active_dark="*secondary_300",
)
CSS = """
.stage-heading { margin-top: 0.6rem; }
.stage-heading p { font-size: 0.95rem; }
.cam-caption p { font-size: 0.85rem; }
.cam-caption, #cam-summary { overflow: visible !important; }  /* text that fits: never a scroll box */
#cam-summary td:not(:first-child), #cam-summary th:not(:first-child) { white-space: nowrap; }
#zoo-table table { display: block; overflow-x: auto; }  /* a phone scrolls the zoo's wide tables, not squeezes them */
#zoo-table :is(td, th) { min-width: 6.5rem; }
#zoo-table :is(td, th), #measured-table :is(td, th) { overflow-wrap: normal; word-break: normal; }  /* whole words */
footer { display: none !important; }
#architecture svg { display: block; margin: 0 auto; }
#architecture:fullscreen { background: var(--body-background-fill); overflow: auto; padding: 1rem; }
#architecture:fullscreen svg { width: 100%; height: 100%; }
#tour-steps .stepper-wrapper { padding: 0 2.5rem 0.6rem; }  /* room for the last step's label */
@media (max-width: 640px) {  /* a phone: one column, and the wide figures at their own size, swiped sideways */
  .row:not(#tour-steps .row) > .block, .row:not(#tour-steps .row) > .column { min-width: 100% !important; }
  :is(#stage-1, #stage-2, #stage-3, #stage-4, #cam-comparison, #ablation-chart) .image-container {
    display: block !important; overflow-x: auto;
  }
  :is(#stage-1, #stage-2, #stage-3, #stage-4, #cam-comparison, #ablation-chart) :is(.image-container > button, .image-frame) {
    display: block; width: max-content; max-width: none; height: auto;
  }
  :is(#stage-1, #stage-2, #stage-3, #stage-4, #cam-comparison, #ablation-chart) .image-frame img {
    width: auto !important; height: auto !important; max-width: none !important; max-height: none !important;
  }
  #cam-summary td, #cam-summary th { white-space: normal !important; }
  #compare-table table { min-width: 560px; }  /* the table scrolls inside its own frame */
  #architecture { overflow-x: auto; }
  #architecture svg { min-width: 720px; }
}
"""
# Gradio marks an empty output with an aria-label on a plain <div>, which ARIA forbids; as role="img" the label
# is allowed and says what is there ("Empty value").
HEAD = """<script>
new MutationObserver(() => document.querySelectorAll(".empty[aria-label]:not([role])").forEach(
  (empty) => empty.setAttribute("role", "img"))).observe(document.documentElement, {childList: true, subtree: true});
</script>"""


def build_app() -> gr.Blocks:
    with gr.Blocks(title="PoolFormer Explorer", delete_cache=TEMP_FILE_SWEEP) as app:
        gr.Markdown(INTRO)
        copy_link = links.build()
        guide = tour.build()
        with gr.Row():
            shared = sidebar.build(app)
            with gr.Column(scale=5):
                # Eight tabs outgrow a laptop-wide column: wrap them onto a second row rather than hide some in a menu.
                with gr.Tabs(overflow_behavior="wrap", elem_id="tabs") as tabs:
                    predict.build(shared)
                    where_it_looks.build(shared)
                    pooling.build(shared)
                    ablation.build(shared)
                    compare.build(shared)
                    metaformer.build(shared)
                    zoo.build(shared)
                    about.build(shared)
        tour.wire(guide, app, tabs)
        links.wire(copy_link, app, shared, tabs)
    return app


def warm_up(model: str) -> None:
    """Load the default model and draw every view once, so the first visitor doesn't wait for it."""
    photo = sidebar.EXAMPLES[0]
    try:
        predict.predict_outputs(explorer.predict(photo, model))
        pooling.filter_outputs(explorer.filter_photo(photo, model))
        ablation.ablate_outputs(explorer.ablate(photo, model))
        architecture_svg(explorer.trace(None, model))
    except (WeightsError, explorer.ExplorerError) as error:
        print(f"warm-up skipped: {error}")


def serve(app: gr.Blocks) -> None:
    """Start serving with the public-server settings of ui/server.py; returns at once (benchmarks/echo_app.py serves so too)."""
    cache_pictures_atomically()
    sweep_temp_files_safely()
    share_model_run_slots(app)
    # api_open=False: a queued event can't be called around the queue by a plain POST to /run/<name>.
    app.queue(max_size=QUEUE_SIZE, default_concurrency_limit=MODEL_RUNS_AT_ONCE, api_open=False)
    app.launch(
        app_kwargs={"middleware": [Middleware(RequestBodyLimit, limit=MAX_REQUEST_BODY)]},
        theme=THEME,
        css=CSS,
        head=HEAD + links.HEAD,
        max_file_size=MAX_UPLOAD_SIZE,
        enable_monitoring=False,  # /monitoring/summary would otherwise be open to anyone
        blocked_paths=never_served(),
        state_session_capacity=SESSIONS_KEPT,
        prevent_thread_lock=True,
    )


def add_models(argv: list[str] | None = None) -> None:
    """`--model REF` (repeatable) puts a PoolFormer of your own into the picker, after the official and bundled
    ones, as POOLFORMER_MODELS does; a REF that can't be read stops the app here with one line."""
    parser = argparse.ArgumentParser(prog="python app.py", description="PoolFormer Explorer")
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="REF",
        help="a Hub repo id owner/name[@revision], a save_pretrained folder, or a checkpoint file",
    )
    explorer.add_models(parser.parse_args(argv).model)
    try:
        explorer.model_choices()
    except explorer.ExplorerError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def main() -> None:
    bound_malloc_retention()
    add_models()
    torch.set_num_threads(torch_threads_per_request())
    logging.basicConfig(format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("poolformer").setLevel(logging.INFO)  # download progress and failures go to the log
    app = build_app()
    serve(app)
    explorer.fetch_official_default()  # online with S12 not cached: it downloads while the bundled model serves
    threading.Thread(target=warm_up, args=(explorer.default_choice(),), daemon=True).start()
    app.block_thread()


if __name__ == "__main__":
    main()
