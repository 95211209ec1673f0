"""The Predict tab: the top-5, and per stage what it computes on the photo; click a token to see it up close."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr

from poolformer import explorer
from ui.shared import FIGURE_BUTTONS, Shared, friendly_errors, reporter, uploaded_photo
from visualize.mixer import token_views
from visualize.stages import (
    COLOUR_SCALE_NOTE,
    COLOUR_SCALES,
    DEFAULT_COLOUR_SCALE,
    check_colour_scale,
    stage_cell_at,
    stage_heading,
    stage_picture,
    stage_pictures,
    stage_ranges,
)

READING = (
    "Each stage, left to right: **activation energy** over the photo (brighter = stronger "
    "response, one square per position), its **eight most active channels**, and **what "
    "pooling adds** to each token in the stage's first block (bright = the 3 × 3 "
    "neighbourhood differs from the token: edges and texture). **Click a token** on the left "
    "or right map to see, below it, its 3 × 3 neighbourhood in the stage's first block."
)


def predict_outputs(prediction: explorer.Prediction, colour_scale: str = DEFAULT_COLOUR_SCALE) -> list[Any]:
    """Top-5, heading and picture per stage, status; last the prediction itself, kept per visitor (gr.State)."""
    outputs: list[Any] = [prediction.top5]
    pictures = stage_pictures(prediction.photo, prediction.stages, colour_scale)
    for stage, picture in zip(prediction.stages, pictures):
        outputs += [stage_heading(stage), picture]
    return outputs + [prediction.status, prediction]


@friendly_errors
def run_predict(
    photo: dict[str, Any] | None,
    model: str | None = None,
    colour_scale: str = DEFAULT_COLOUR_SCALE,
    progress: gr.Progress = gr.Progress(),
) -> list[Any]:
    colour_scale = colour_scale or DEFAULT_COLOUR_SCALE
    check_colour_scale(colour_scale)  # before the model runs
    prediction = explorer.predict(uploaded_photo(photo), model, reporter(progress))
    return predict_outputs(prediction, colour_scale)


@friendly_errors
def redraw_stages(prediction: explorer.Prediction | None, colour_scale: str) -> list[Any]:
    """Switching the colour scale re-draws the visitor's last prediction; nothing to do before the first."""
    if prediction is None:
        return [gr.skip()] * len(explorer.ALL_STAGES)
    return stage_pictures(prediction.photo, prediction.stages, colour_scale)


def token_clicker(number: int) -> Callable[..., list[Any]]:
    """The click handler of stage `number`'s picture: outline the token under the click and inspect it below."""

    @friendly_errors
    def inspect_click(
        photo: dict[str, Any] | None, prediction: explorer.Prediction | None, colour_scale: str, evt: gr.SelectData
    ) -> list[Any]:
        if prediction is None:
            raise gr.Error("press Predict for this photo and model, then click a token on a map", print_exception=False)
        stage = prediction.stages[number - 1]
        cell = stage_cell_at(*evt.index, stage.shape[1:])
        if cell is None:
            raise gr.Error(
                "that is not on a map: click the activation-energy map (left) or the pooling map (right)",
                print_exception=False,
            )
        token = explorer.inspect_token(uploaded_photo(photo), prediction.choice.value, number, *cell)
        ranges = stage_ranges(prediction.stages, colour_scale)[number - 1]
        picture = stage_picture(prediction.photo, stage, ranges, marked=cell)
        return [picture, gr.Row(visible=True), *token_views(token)]

    return inspect_click


def hide_token_details() -> list[gr.Row]:
    return [gr.Row(visible=False) for _ in explorer.ALL_STAGES]


def forget_prediction() -> None:
    return None


def stage_rows() -> tuple[list[gr.components.Component], list[list[gr.components.Component]]]:
    """Per stage: a heading with the tensor shape, one picture of its three views, and below it, hidden until
    a token on the picture is clicked, that token's neighbourhood.

    Returns the headings and pictures interleaved, as /predict fills them, and per stage the
    [row, picture, text] that show the clicked token.
    """
    components: list[gr.components.Component] = []
    details: list[list[gr.components.Component]] = []
    for number in explorer.ALL_STAGES:
        heading = gr.Markdown(f"**Stage {number}**", elem_classes="stage-heading")
        # JPEG: a PNG of this size costs ~60 ms to encode, four of them would blow the latency budget.
        picture = gr.Image(
            label=f"Stage {number}",
            format="jpeg",
            show_label=False,
            buttons=FIGURE_BUTTONS,
            alt_text=f"Stage {number} over the photo: its activation energy, its eight most active channels, and "
            "what pooling adds to each token",
            elem_id=f"stage-{number}",
        )
        with gr.Row(visible=False, elem_id=f"token-{number}") as detail_row:
            detail_picture = gr.Image(
                label=f"Clicked token of stage {number}",
                show_label=False,
                format="png",
                buttons=[],
                alt_text=f"The clicked token's 3 × 3 neighbourhood in stage {number}'s first block",
                scale=2,
            )
            detail_text = gr.Markdown(elem_classes="token-summary")
        components += [heading, picture]
        details.append([detail_row, detail_picture, detail_text])
    return components, details


def build(shared: Shared) -> None:
    photo, model = shared.photo, shared.model
    with gr.Tab("Predict", id="predict"):
        predict_button = gr.Button("Predict", variant="primary", elem_id="predict-button")
        top5 = gr.Label(num_top_classes=5, label="Top-5 classes", elem_id="top5")
        gr.Markdown(READING)
        colour_scale = gr.Radio(
            [(label, value) for value, label in COLOUR_SCALES.items()],
            value=DEFAULT_COLOUR_SCALE,
            label="Colour scale",
            info=COLOUR_SCALE_NOTE,
            elem_id="colour-scale",
        )
        stage_outputs, token_details = stage_rows()
        prediction = gr.State(None)

    # preprocess=False: the photo reaches our own loader undecoded (see ui.shared.uploaded_photo).
    predict_button.click(
        run_predict,
        [photo, model, colour_scale],
        [top5, *stage_outputs, shared.status, prediction],
        api_name="predict",
        preprocess=False,
    )
    stage_images = stage_outputs[1::2]
    colour_scale.change(redraw_stages, [prediction, colour_scale], stage_images, api_visibility="private")
    # Tokens clicked on old maps no longer apply once there are new maps; after a new photo or model,
    # the maps on the page no longer match it, so clicks wait for the next Predict.
    predict_button.click(
        hide_token_details, None, [row for row, _, _ in token_details], api_visibility="private", queue=False
    )
    for change in (photo.change, model.change):
        change(forget_prediction, None, prediction, api_visibility="private", queue=False)
    for number, picture, (row, *details) in zip(explorer.ALL_STAGES, stage_images, token_details):
        picture.select(
            token_clicker(number),
            [photo, prediction, colour_scale],
            [picture, row, *details],
            api_visibility="private",
            preprocess=False,
        )
