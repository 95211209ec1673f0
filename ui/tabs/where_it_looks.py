"""The Where it looks tab: class-activation maps of one class at all four stages, beside the models that stop
mixing tokens, and the evidence that the maps can be trusted: a sanity check and deletion/insertion curves."""

from __future__ import annotations

from typing import Any

import gradio as gr

from poolformer import explorer
from poolformer.gradcam import ATTRIBUTION_NAMES, DEFAULT_ATTRIBUTION
from ui.shared import FIGURE_BUTTONS, STAGE_CHOICES, TOP1_CHOICE, Shared, friendly_errors, reporter, uploaded_photo
from visualize.faithfulness import CURVE_COLOUR, CURVE_X, CURVE_Y, curve_colours, curve_points, faithfulness_summary
from visualize.gradcam import cam_caption, cam_comparison_picture, cam_comparison_summary, cam_picture
from visualize.sanity import sanity_picture, sanity_summary

ATTRIBUTION_CHOICES = [(label, value) for value, label in ATTRIBUTION_NAMES.items()]

EXPLAIN_INTRO = """
**Where does the model look?** Grad-CAM (Selvaraju et al., [*Grad-CAM: Visual Explanations from Deep Networks via
Gradient-based Localization*](https://arxiv.org/abs/1610.02391), ICCV 2017) answers it for one class at a time: it
asks how the class's score would change if each channel of a stage's output grew, weights every channel by that
average sensitivity, adds the channels up and keeps the positive part. **Bright cells hold evidence for the class**;
evidence against it is cut to zero, and each map is scaled on its own. The authors' own script
(`misc/cam_image.py` in [sail-sg/poolformer](https://github.com/sail-sg/poolformer)) reads the last stage only;
here all four stages get a map at their own resolution, and the same maps are drawn for the model with pooling
switched off and for the identity-mixer model trained from scratch, so you can see where it looks once tokens
stop mixing. For contrast, **HiResCAM** (Draelos and Carin, [arXiv 2011.08891](https://arxiv.org/abs/2011.08891))
skips the averaging: each cell's features are weighed by the gradient at that very cell. Where the two methods
agree, the evidence does not hang on the averaging. Both are tested on photos the model was not trained on (two
objects side by side, and the deletion and insertion curves below), and under the maps you can test either one on
your own photo.
"""

ATTRIBUTION_NOTE = (
    "Grad-CAM weighs each channel by its gradient averaged over the map; HiResCAM by the gradient at each cell. "
    "The sanity check and the curves below use the method picked here."
)

SANITY_INTRO = """
### Can you trust the map? The sanity check
A map that explains *the model* has to change when the model does. Adebayo et al. ([*Sanity Checks for Saliency
Maps*](https://arxiv.org/abs/1810.03292), NeurIPS 2018) destroy what a model has learnt, layer by layer from the
classifier down, and draw the maps again: some popular methods (Guided Backprop and Guided Grad-CAM among them)
hardly change, so what they showed was the photo's edges, not the model's evidence. **A trustworthy map falls
apart here**: once the weights are random its cells lose the order they had, and Spearman's rank correlation ρ
with the original map drops towards 0. The weights are re-initialised on a copy of the model (the model every
visitor uses is never touched), from the head down to the stem, one part at a time.
"""

FAITHFULNESS_INTRO = """
### Does the map point at what the model needs? Deletion and insertion
Petsiuk et al. ([*RISE*](https://arxiv.org/abs/1806.07421), BMVC 2018) test a map by acting on it. Grey out the
photo's stage-4 cells from the most to the least important (**deletion**): if the map is right, the class's
probability collapses at once. Reveal them in that order on a grey picture (**insertion**): it should come back
at once. A random order is the baseline any map must beat; the third order is the map the same weights give
with pooling switched off ("pooling off"). The model as trained answers every picture. Hover a curve for its values.
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
    method: str | None = DEFAULT_ATTRIBUTION,
    progress: gr.Progress = gr.Progress(),
) -> list[Any]:
    explanation = explorer.explain(uploaded_photo(photo), model, target, stages or [], reporter(progress), method)
    return explain_outputs(explanation)


@friendly_errors
def run_sanity(
    photo: dict[str, Any] | None,
    model: str | None = None,
    target: str | None = explorer.TOP1,
    method: str | None = DEFAULT_ATTRIBUTION,
    progress: gr.Progress = gr.Progress(),
) -> list[Any]:
    check = explorer.sanity_check(uploaded_photo(photo), model, target, method, reporter(progress))
    return [sanity_picture(check), sanity_summary(check), check.status]


@friendly_errors
def run_faithfulness(
    photo: dict[str, Any] | None,
    model: str | None = None,
    target: str | None = explorer.TOP1,
    method: str | None = DEFAULT_ATTRIBUTION,
    progress: gr.Progress = gr.Progress(),
) -> list[Any]:
    result = explorer.faithfulness(uploaded_photo(photo), model, target, method, reporter(progress))
    colours = curve_colours(result)
    plots = [gr.LinePlot(curve_points(result, insertion), color_map=colours) for insertion in (False, True)]
    return [*plots, faithfulness_summary(result), result.status]


def target_menu(top5: dict[str, float] | None, target: str) -> gr.Dropdown:
    """After a run, offer the photo's top-5 as the classes to explain, keeping the current pick."""
    names = list(top5 or {})
    value = target if target in names else explorer.TOP1
    return gr.Dropdown(choices=[TOP1_CHOICE, *[(name, name) for name in names]], value=value)


def reset_target() -> gr.Dropdown:
    """A new photo or model has its own top-5: go back to explaining the top-1 class."""
    return gr.Dropdown(choices=[TOP1_CHOICE], value=explorer.TOP1)


def cam_columns() -> list[gr.components.Component]:
    """Per stage, side by side: the map over the crop, and a caption saying how to read it."""
    components: list[gr.components.Component] = []
    with gr.Row(equal_height=False):
        for number in explorer.ALL_STAGES:
            with gr.Column(min_width=160):
                picture = gr.Image(
                    label=f"Class-activation map, stage {number}",
                    format="jpeg",
                    show_label=False,
                    buttons=FIGURE_BUTTONS,
                    alt_text=f"Class-activation map of stage {number} over the photo: bright cells hold evidence for the "
                    "class explained",
                    elem_id=f"cam-{number}",
                )
                caption = gr.Markdown(elem_classes="cam-caption")
            components += [picture, caption]
    return components


def figure(label: str, elem_id: str, alt_text: str) -> gr.Image:
    """A picture of several maps drawn as one (a JPEG: a PNG of that size takes long to encode)."""
    return gr.Image(
        label=label, show_label=False, buttons=FIGURE_BUTTONS, format="jpeg", alt_text=alt_text, elem_id=elem_id
    )


def curve_plot(label: str, x_title: str, elem_id: str) -> gr.LinePlot:
    """An empty native line plot for one kind of curve; hovering a point shows its values."""
    return gr.LinePlot(
        x=CURVE_X,
        y=CURVE_Y,
        color=CURVE_COLOUR,
        x_title=x_title,
        y_title="probability of the class (%)",
        x_lim=[0, 100],
        y_lim=[0, 100],
        tooltip="all",
        label=label,
        elem_id=elem_id,
    )


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
            method = gr.Radio(
                ATTRIBUTION_CHOICES,
                value=DEFAULT_ATTRIBUTION,
                label="Attribution method",
                info=ATTRIBUTION_NOTE,
                elem_id="attribution",
            )
        explain_button = gr.Button("Show where it looks", variant="primary", elem_id="explain-button")
        explain_top5 = gr.Label(num_top_classes=5, label="Top-5 classes", elem_id="explain-top5")
        cam_outputs = cam_columns()
        gr.Markdown("**When tokens stop mixing**: the same maps, stage 1 to 4, for each model.")
        cam_comparison = figure(
            "Class-activation maps per stage and model",
            "cam-comparison",
            "Class-activation maps, stage 1 to 4, for the model as trained, with pooling switched off, and for the "
            "identity-mixer model trained from scratch",
        )
        cam_summary = gr.Markdown(elem_id="cam-summary")

        gr.Markdown(SANITY_INTRO)
        sanity_button = gr.Button("Randomise the weights, head first", elem_id="sanity-button")
        sanity_maps = figure(
            "Stage maps as the weights are randomised, from the head down",
            "sanity-maps",
            "Class-activation maps of each stage, one row per step as the weights are randomised from the head down",
        )
        sanity_table = gr.Markdown(elem_id="sanity-summary")

        gr.Markdown(FAITHFULNESS_INTRO)
        faithfulness_button = gr.Button("Draw the deletion and insertion curves", elem_id="faithfulness-button")
        # One above the other: side by side, the legends' order names would be cut short.
        deletion_plot = curve_plot(
            "Deletion: cells greyed out, most important first", "cells greyed (%)", "deletion-plot"
        )
        insertion_plot = curve_plot(
            "Insertion: cells revealed on grey, most important first", "cells revealed (%)", "insertion-plot"
        )
        faithfulness_table = gr.Markdown(elem_id="faithfulness-summary")

    explain_button.click(
        run_explain,
        [photo, model, target, explain_stages, method],
        [explain_top5, *cam_outputs, cam_comparison, cam_summary, shared.status],
        api_name="explain",
        preprocess=False,
    ).success(target_menu, [explain_top5, target], [target], api_visibility="private")
    sanity_button.click(
        run_sanity,
        [photo, model, target, method],
        [sanity_maps, sanity_table, shared.status],
        api_name="sanity",
        preprocess=False,
    )
    faithfulness_button.click(
        run_faithfulness,
        [photo, model, target, method],
        [deletion_plot, insertion_plot, faithfulness_table, shared.status],
        api_name="faithfulness",
        preprocess=False,
    )
    gr.on([photo.change, model.change], reset_target, None, [target], api_visibility="private", queue=False)
