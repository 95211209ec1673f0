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
from ui.look import CSS, HEAD, THEME
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
    sessions_without_page_copies,
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

def build_app() -> gr.Blocks:
    with gr.Blocks(title="PoolFormer Explorer", delete_cache=TEMP_FILE_SWEEP) as app:
        gr.Markdown(INTRO)
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
        copy_link = links.build()  # last, so the components before it keep their ids (the API names some by them)
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
    sessions_without_page_copies()
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
