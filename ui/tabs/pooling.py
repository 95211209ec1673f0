"""The What pooling does tab: the token mixer as a fixed high-pass filter, run on the photo, and one token up close."""

from __future__ import annotations

from typing import Any

import gradio as gr

from poolformer import explorer
from ui.shared import STAGE_CHOICES, Shared, friendly_errors, reporter, uploaded_photo
from visualize.mixer import (
    filter_caption,
    filter_pictures,
    kernel_note,
    kernel_picture,
    stage1_pooling_picture,
    token_views,
)

MIXER_INTRO = """
PoolFormer's token mixer is `pool(x) − x`: each token becomes the average of its 3 × 3 neighbourhood minus
itself. That is a **fixed convolution** — the same 3 × 3 weights for every channel, nothing learnt — and since
its weights sum to zero it is a **high-pass filter**: it ignores what a token shares with its neighbours and
passes on how it differs from them. Below, the filter runs on the photo's colours (drag the slider) and, beside
it, on the features of the model's first stage.
"""


def filter_outputs(result: explorer.MixerFilter) -> list[Any]:
    return [filter_pictures(result), stage1_pooling_picture(result), filter_caption(result)]


@friendly_errors
def run_filter(
    photo: dict[str, Any] | None, model: str | None = None, progress: gr.Progress = gr.Progress()
) -> list[Any]:
    return filter_outputs(explorer.filter_photo(uploaded_photo(photo), model, reporter(progress)))


@friendly_errors
def run_token(
    photo: dict[str, Any] | None,
    model: str | None = None,
    stage: int = 1,
    row: int = 0,
    column: int = 0,
    progress: gr.Progress = gr.Progress(),
) -> list[Any]:
    return token_views(explorer.inspect_token(uploaded_photo(photo), model, stage, row, column, reporter(progress)))


def token_inspector() -> tuple[list[gr.components.Component], gr.Button, list[gr.components.Component]]:
    """Pick a token by number (stage, row, column), and what its inspection shows."""
    with gr.Row():
        with gr.Column(scale=1, min_width=200):
            stage = gr.Dropdown(STAGE_CHOICES, value=1, label="Stage", elem_id="token-stage")
            row = gr.Number(0, label="Row (0 = top)", precision=0, minimum=0, elem_id="token-row")
            column = gr.Number(0, label="Column (0 = left)", precision=0, minimum=0, elem_id="token-column")
            button = gr.Button("Inspect token", elem_id="token-button")
        with gr.Column(scale=4):
            picture = gr.Image(
                label="The token's 3 × 3 neighbourhood",
                show_label=False,
                format="png",
                buttons=[],
                alt_text="The chosen token's 3 × 3 neighbourhood after norm1, and what the pooling mixer passes on",
                elem_id="token-picture",
            )
            summary = gr.Markdown(elem_id="token-summary")
    return [stage, row, column], button, [picture, summary]


def build(shared: Shared) -> None:
    photo, model = shared.photo, shared.model
    with gr.Tab("What pooling does", id="what-pooling-does"):
        gr.Markdown(MIXER_INTRO)
        filter_button = gr.Button("Filter the photo", variant="primary", elem_id="filter-button")
        with gr.Row():
            filter_slider = gr.ImageSlider(
                label="Photo ↔ pool(x) − x",
                type="pil",
                format="png",
                buttons=[],
                interactive=False,
                max_height=360,
                elem_id="filter-slider",
            )
            stage1_map = gr.Image(
                label="Stage 1 in the model: what pooling adds",
                format="jpeg",
                buttons=[],
                height=360,
                alt_text="What pooling adds to each token of stage 1, over the photo",
                elem_id="filter-stage1",
            )
        caption = gr.Markdown(elem_id="filter-caption")
        gr.Markdown("### The filter's three kernels")
        gr.Image(
            kernel_picture(),
            label="Kernels of pool(x) − x",
            show_label=False,
            format="png",
            buttons=[],
            interactive=False,
            alt_text="The three 3 × 3 kernels of pool(x) − x, one weight per cell",
            elem_id="filter-kernels",
        )
        gr.Markdown(kernel_note())
        gr.Markdown(
            "### One token up close\nIn the model the same weights act on feature vectors. Pick a "
            "token (or click one on a stage map in the Predict tab) to see its neighbourhood as the "
            "stage's first block sees it, after `norm1`, and what the pooling mixer passes on."
        )
        token_inputs, token_button, token_results = token_inspector()

    token_button.click(run_token, [photo, model, *token_inputs], token_results, api_name="token", preprocess=False)
    filter_button.click(
        run_filter,
        [photo, model],
        [filter_slider, stage1_map, caption],
        api_name="mixer_filter",
        preprocess=False,
    )
