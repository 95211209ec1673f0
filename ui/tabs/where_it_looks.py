"""The Where it looks tab: Grad-CAM maps of one class at all four stages, beside the models that stop mixing tokens."""

from __future__ import annotations

from typing import Any

import gradio as gr

from poolformer import explorer
from ui.shared import FIGURE_BUTTONS, STAGE_CHOICES, TOP1_CHOICE, Shared, friendly_errors, reporter, uploaded_photo
from visualize.gradcam import cam_caption, cam_comparison_picture, cam_comparison_summary, cam_picture

EXPLAIN_INTRO = """
**Where does the model look?** Grad-CAM (Selvaraju et al., [*Grad-CAM: Visual Explanations from Deep Networks via
Gradient-based Localization*](https://arxiv.org/abs/1610.02391), ICCV 2017) answers it for one class at a time: it
asks how the class's score would change if each channel of a stage's output grew, weights every channel by that
average sensitivity, adds the channels up and keeps the positive part. **Bright cells hold evidence for the class**;
evidence against it is cut to zero, and each map is scaled on its own. The authors' own script
(`misc/cam_image.py` in [sail-sg/poolformer](https://github.com/sail-sg/poolformer)) reads the last stage only;
here all four stages get a map at their own resolution, and the same maps are drawn for the model with pooling
switched off and for the identity-mixer model trained from scratch, so you can see where it looks once tokens
stop mixing. The maps are tested: on a photo made of two objects side by side, stages 3 and 4 put most of their
mass on the object asked about, and greying the brightest stage-4 cells lowers the class's probability more than
greying random ones.
"""


def explain_outputs(explanation: explorer.Explanation) -> list[Any]:
    outputs: list[Any] = [explanation.top5]
    for number, cam in zip(explorer.ALL_STAGES, explanation.trained.maps):
        outputs += [cam_picture(explanation.photo, cam), cam_caption(number, cam, explanation.target_name)]
    return outputs + [
        cam_comparison_picture(explanation),
        cam_comparison_summary(explanation),
        explanation.status,
    ]


@friendly_errors
def run_explain(
    photo: dict[str, Any] | None,
    model: str | None = None,
    target: str | None = explorer.TOP1,
    stages: list[int] | None = None,
    progress: gr.Progress = gr.Progress(),
) -> list[Any]:
    explanation = explorer.explain(uploaded_photo(photo), model, target, stages or [], reporter(progress))
    return explain_outputs(explanation)


def target_menu(top5: dict[str, float] | None, target: str) -> gr.Dropdown:
    """After a run, offer the photo's top-5 as the classes to explain, keeping the current pick."""
    names = list(top5 or {})
    value = target if target in names else explorer.TOP1
    return gr.Dropdown(choices=[TOP1_CHOICE, *[(name, name) for name in names]], value=value)


def reset_target() -> gr.Dropdown:
    """A new photo or model has its own top-5: go back to explaining the top-1 class."""
    return gr.Dropdown(choices=[TOP1_CHOICE], value=explorer.TOP1)


def cam_columns() -> list[gr.components.Component]:
    """Per stage, side by side: the Grad-CAM map over the crop, and a caption saying how to read it."""
    components: list[gr.components.Component] = []
    with gr.Row(equal_height=False):
        for number in explorer.ALL_STAGES:
            with gr.Column(min_width=160):
                picture = gr.Image(
                    label=f"Grad-CAM, stage {number}",
                    format="jpeg",
                    show_label=False,
                    buttons=FIGURE_BUTTONS,
                    alt_text=f"Grad-CAM map of stage {number} over the photo: bright cells hold evidence for the "
                    "class explained",
                    elem_id=f"cam-{number}",
                )
                caption = gr.Markdown(elem_classes="cam-caption")
            components += [picture, caption]
    return components


def build(shared: Shared) -> None:
    photo, model = shared.photo, shared.model
    with gr.Tab("Where it looks", id="where-it-looks"):
        gr.Markdown(EXPLAIN_INTRO)
        with gr.Row():
            target = gr.Dropdown(
                [TOP1_CHOICE],
                value=explorer.TOP1,
                label="Class to explain (one of the photo's top-5)",
                allow_custom_value=True,  # our own check answers a wrong name in one line
                elem_id="target",
            )
            explain_stages = gr.CheckboxGroup(
                STAGE_CHOICES,
                value=list(explorer.ALL_STAGES),
                label="Compare with identity instead of pooling in",
            )
        explain_button = gr.Button("Show where it looks", variant="primary", elem_id="explain-button")
        explain_top5 = gr.Label(num_top_classes=5, label="Top-5 classes", elem_id="explain-top5")
        cam_outputs = cam_columns()
        gr.Markdown("**When tokens stop mixing**: the same maps, stage 1 to 4, for each model.")
        cam_comparison = gr.Image(
            label="Grad-CAM per stage and model",
            show_label=False,
            buttons=FIGURE_BUTTONS,
            format="jpeg",
            alt_text="Grad-CAM maps, stage 1 to 4, for the model as trained, with pooling switched off, and for the "
            "identity-mixer model trained from scratch",
            elem_id="cam-comparison",
        )
        cam_summary = gr.Markdown(elem_id="cam-summary")

    explain_button.click(
        run_explain,
        [photo, model, target, explain_stages],
        [explain_top5, *cam_outputs, cam_comparison, cam_summary, shared.status],
        api_name="explain",
        preprocess=False,
    ).success(target_menu, [explain_top5, target], [target], api_visibility="private")
    gr.on([photo.change, model.change], reset_target, None, [target], api_visibility="private", queue=False)
