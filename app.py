"""PoolFormer Explorer: a Gradio app that shows how PoolFormer (MetaFormer) sees a photo.

This file only lays out the page and wires components to `poolformer.explorer` (computing) and
`visualize.views` (drawing). Run `python app.py`; GRADIO_SERVER_NAME / GRADIO_SERVER_PORT choose
where it listens. Models load lazily, so the page is up within seconds even offline.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no phoning home

import functools
import logging
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import torch
from gradio import processing_utils

from poolformer import explorer, hub
from poolformer.preprocess import ImageError
from poolformer.weights import WeightsError
from visualize import views
from visualize.architecture import architecture_svg

# Cathedrals first: "church" is one of the bundled default model's ten classes, so a first-time
# visitor sees it recognise something; the ImageNet-1k models know the rest (see LICENSES.md there).
EXAMPLE_FILES = ("reims_cathedral", "berlin_cathedral", "cat", "coffee", "rocket", "astronaut", "grace_hopper")
EXAMPLES = [str(Path(__file__).parent / "assets" / "examples" / f"{name}.jpg") for name in EXAMPLE_FILES]
TOP1_CHOICE = ("the top-1 class", explorer.TOP1)
STAGE_CHOICES = [(f"Stage {number}", number) for number in explorer.ALL_STAGES]
DOWNLOAD_POLL_S = 1.0  # how often an open page refreshes the start-up download's progress
POOL_SIZE_CHOICES = [
    (f"{size} × {size}" + (" (as trained)" if size == explorer.TRAINED_POOL_SIZE else " (what-if)"), size)
    for size in explorer.POOL_SIZES
]

INTRO = """
# PoolFormer Explorer
**PoolFormer** (Yu et al., [*MetaFormer is Actually What You Need for Vision*](https://arxiv.org/abs/2111.11418), CVPR 2022)
keeps the Transformer block — normalise, *mix the tokens*, add; normalise, channel MLP, add — but replaces
attention with the plainest token mixer there is: a 3 × 3 average pooling. It still reaches 77–82 % top-1 on
ImageNet, which suggests that the general **MetaFormer** structure, more than attention, is what makes these
models work. Give it a photo to see its top-5 guesses and what each of its four stages responds to, switch
pooling off to measure how much it matters, or run every available variant side by side.
"""

ABOUT = f"""
### How PoolFormer works
The image is cut into patches by a strided convolution (stride 4), then passes through **four stages** at
56², 28², 14² and 7² positions for a 224-pixel input; between stages a convolution halves the resolution and
widens the channels. Every block computes `x + mixer(norm(x))` then `x + mlp(norm(x))`, where `norm` is a
GroupNorm over all channels and positions, `mlp` a 1 × 1-conv MLP with 4× expansion, and `mixer` is
`avgpool3x3(x) − x` (the block adds `x` back). A GroupNorm, a spatial mean and a linear layer make the head.

### The variants (numbers from the paper's authors)
{views.variant_table()}

### Where the weights come from
- **Official ImageNet-1k weights**: `sail/poolformer_<variant>` on the Hugging Face Hub, read from the local
  Hugging Face cache. On a machine without network, fetch them elsewhere with `hf download sail/poolformer_s12`
  and copy the cache (`~/.cache/huggingface/hub`).
- **Bundled models**: small 10-class PoolFormer-S12 and IdentityFormer-S12 checkpoints trained from scratch on
  Imagenette, shipped in `assets/checkpoints/`; they always work offline. The Imagenette classes are tench,
  English springer, cassette player, chain saw, church, French horn, garbage truck, gas pump, golf ball and parachute.

### What the pictures mean
- **Activation energy**: the length of the feature vector at each position (L2 norm over channels), drawn at the
  stage's own resolution — one square per token.
- **Most active channels**: the eight channels with the largest mean activation, each scaled on its own.
- **What pooling adds**: `‖pool(x) − x‖` for the first block of the stage, i.e. how much averaging with its
  neighbours changes each token. Flat regions barely change; edges and textures do.

Example photos are public domain or CC0 (see `assets/examples/LICENSES.md`). Running on **{explorer.DEVICE.type}**.
"""

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

MIXER_INTRO = """
PoolFormer's token mixer is `pool(x) − x`: each token becomes the average of its 3 × 3 neighbourhood minus
itself. That is a **fixed convolution** — the same 3 × 3 weights for every channel, nothing learnt — and since
its weights sum to zero it is a **high-pass filter**: it ignores what a token shares with its neighbours and
passes on how it differs from them. Below, the filter runs on the photo's colours (drag the slider) and, beside
it, on the features of the model's first stage.
"""

METAFORMER_INTRO = """
### Why such a plain mixer works
Every block of a **MetaFormer** has two halves, each wrapped in a normalisation and a residual connection: a
**token mixer** lets each position take in its neighbours, and a **channel MLP** then works on each position alone.
A Transformer mixes with attention; PoolFormer just averages each 3 × 3 neighbourhood. Yu et al.
([*MetaFormer is Actually What You Need for Vision*](https://arxiv.org/abs/2111.11418), CVPR 2022) argue that the
frame, more than the mixer, makes these models work. Below: the selected model drawn out, with the tensor shapes
your photo produces (each stage shows its activation energy over the photo), then the evidence.
"""

METAFORMER_READING = """
**How to read the tables.** Changing the mixer moves ImageNet accuracy by a few points — even no mixing at
all (identity) keeps most of it — while taking away the normalisation, the residual connections or the channel
MLP breaks the network. That is the paper's case that the MetaFormer *structure* matters most. Our own
two Imagenette models tell the same story on a small scale. In the paper each pool size was *trained* with its
window; in the **Token-mixer ablation** tab, sizes 5 and 7 are a what-if on weights trained with 3.
"""

# System fonts only: the theme's default Google Fonts can't load on an offline machine.
THEME = gr.themes.Soft(
    primary_hue="indigo",
    font=["ui-sans-serif", "system-ui", "Segoe UI", "Roboto", "sans-serif"],
    font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "monospace"],
)
CSS = """
.stage-heading { margin-top: 0.6rem; }
.stage-heading p { font-size: 0.95rem; }
.cam-caption p { font-size: 0.85rem; }
#cam-summary td:not(:first-child), #cam-summary th:not(:first-child) { white-space: nowrap; }
footer { display: none !important; }
#architecture svg { display: block; margin: 0 auto; }
#tour-steps .stepper-wrapper { padding: 0 2.5rem 0.6rem; }  /* room for the last step's label */
"""


PHOTO_LINK_REFUSED = "photo links are not fetched by this app: download the picture and upload the file"


def refusing_links(photo: gr.Image) -> gr.Image:
    """Make `photo` refuse a link given as the photo (`handle_file("http://…")` in gradio_client).

    Gradio would fetch the link itself (through safehttpx, which refuses private addresses), and a refused or
    failed fetch reaches the visitor only as a bare "Error"; a photo is small enough to upload instead. The
    hook wraps this one instance (a gr.Image subclass would make Gradio write an app.pyi stub beside app.py).
    """
    move_to_cache = photo.async_move_resource_to_block_cache

    async def move_uploads_only(url_or_file_path: str | Path | None) -> str | None:
        if str(url_or_file_path).lower().startswith(("http://", "https://")):
            raise gr.Error(PHOTO_LINK_REFUSED, print_exception=False)
        return await move_to_cache(url_or_file_path)

    photo.async_move_resource_to_block_cache = move_uploads_only
    return photo



@dataclass(frozen=True)
class TourStep:
    """One step of the guided tour: its title, what to do, and the id of the tab it opens (None: stay)."""

    title: str  # unlike the tab names: steps are role="tab" buttons too, and tests find tabs by name
    text: str
    tab: str | None


# photo → predict → stages → where it looks → what pooling does → ablation → architecture. A step whose
# tab id is not on the page only explains.
TOUR = [
    TourStep(
        "Photo",
        "Start with a photo: drop one into the **Photo** box on the left, or click an example under it. The bundled "
        "default model knows ten Imagenette classes (church, French horn, parachute, …): try a cathedral.",
        None,
    ),
    TourStep(
        "Top-5",
        "On the **Predict** tab press **Predict**: the five most likely classes appear, with probabilities.",
        "predict",
    ),
    TourStep(
        "Stages",
        "Below the top-5, each of the **four stages** shows where it responds on your photo (one square per token, "
        "56 × 56 of them in stage 1 down to 7 × 7 in stage 4), its most active channels, and what pooling adds to "
        "each token.",
        "predict",
    ),
    TourStep(
        "Class maps",
        "The **Where it looks** tab draws a class-activation map per stage: which parts of the photo pushed the "
        "predicted class up.",
        "where-it-looks",
    ),
    TourStep(
        "Pooling as a filter",
        "The **What pooling does** tab shows the token mixer as a filter: press **Filter the photo** to see "
        "`pool(x) − x` keep edges and texture and flatten the rest.",
        "what-pooling-does",
    ),
    TourStep(
        "Ablation",
        "In **Token-mixer ablation**, switch pooling off (identity) in some stages or widen its window to 5 or 7 "
        "(a what-if on weights trained with 3), and see how the prediction moves.",
        "ablation",
    ),
    TourStep(
        "Architecture",
        "The **MetaFormer** tab draws the whole network with your photo's tensor shapes, beside the paper's "
        "ablations and our own measurement. Enjoy exploring!",
        "metaformer",
    ),
]


def uploaded_photo(payload: dict[str, Any] | None) -> bytes | None:
    """The uploaded file's bytes, for `poolformer.preprocess.load_image` to decode.

    The events run with preprocess=False: Gradio's own image preprocessing would answer a corrupt
    upload with a bare "Error", while our loader names the problem in one line. Gradio still checks
    that the path is one of its uploads. Bytes rather than the path keep temp paths out of messages.
    """
    return Path(payload["path"]).read_bytes() if payload else None


def friendly_errors(function: Callable) -> Callable:
    """Show expected failures (bad photo, missing weights, bad request) as a one-line gr.Error."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except (ImageError, WeightsError, explorer.ExplorerError) as error:
            raise gr.Error(str(error), print_exception=False) from None

    return wrapper


def reporter(progress: gr.Progress) -> explorer.LoadReporter:
    """Forward 'loading weights…' messages from the model cache to Gradio's progress bar."""
    return lambda message: progress(0, desc=message)


# --- outputs of each action, in the order of the components they fill ----------------------------


def predict_outputs(prediction: explorer.Prediction, colour_scale: str = views.DEFAULT_COLOUR_SCALE) -> list[Any]:
    """Top-5, heading and picture per stage, status; last the prediction itself, kept per visitor (gr.State)."""
    outputs: list[Any] = [prediction.top5]
    pictures = views.stage_pictures(prediction.photo, prediction.stages, colour_scale)
    for stage, picture in zip(prediction.stages, pictures):
        outputs += [views.stage_heading(stage), picture]
    return outputs + [prediction.status, prediction]


def filter_outputs(result: explorer.MixerFilter) -> list[Any]:
    return [views.filter_pictures(result), views.stage1_pooling_picture(result), views.filter_caption(result)]


def token_outputs(token: explorer.Token) -> list[Any]:
    return [views.token_picture(token), views.token_summary(token)]


def ablate_outputs(ablation: explorer.Ablation) -> list[Any]:
    return [
        ablation.pooling.top5,
        ablation.identity.top5,
        views.ablation_picture(ablation),
        views.ablation_summary(ablation),
        ablation.scratch.top5 if ablation.scratch else None,
        ablation.status,
    ]


def explain_outputs(explanation: explorer.Explanation) -> list[Any]:
    outputs: list[Any] = [explanation.top5]
    for number, cam in zip(explorer.ALL_STAGES, explanation.trained.maps):
        outputs += [views.cam_picture(explanation.photo, cam), views.cam_caption(number, cam, explanation.target_name)]
    return outputs + [
        views.cam_comparison_picture(explanation),
        views.cam_comparison_summary(explanation),
        explanation.status,
    ]


def compare_outputs(rows: list[explorer.Comparison]) -> list[Any]:
    points = views.comparison_plot(rows)
    plot = gr.ScatterPlot(points, x_lim=[0, views.latency_axis_end(points)])  # room right of the slowest point
    return [[views.comparison_row(row) for row in rows], views.comparison_gallery(rows), plot]


# --- callbacks ------------------------------------------------------------------------------------


@friendly_errors
def run_predict(
    photo: dict[str, Any] | None,
    model: str | None = None,
    colour_scale: str = views.DEFAULT_COLOUR_SCALE,
    progress: gr.Progress = gr.Progress(),
) -> list[Any]:
    prediction = explorer.predict(uploaded_photo(photo), model, reporter(progress))
    return predict_outputs(prediction, colour_scale or views.DEFAULT_COLOUR_SCALE)


@friendly_errors
def redraw_stages(prediction: explorer.Prediction | None, colour_scale: str) -> list[Any]:
    """Switching the colour scale re-draws the visitor's last prediction; nothing to do before the first."""
    if prediction is None:
        return [gr.skip()] * len(explorer.ALL_STAGES)
    return views.stage_pictures(prediction.photo, prediction.stages, colour_scale)


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
    return token_outputs(explorer.inspect_token(uploaded_photo(photo), model, stage, row, column, reporter(progress)))


def token_clicker(number: int) -> Callable[..., list[Any]]:
    """The click handler of stage `number`'s picture: outline the token under the click and inspect it below."""

    @friendly_errors
    def inspect_click(
        photo: dict[str, Any] | None, prediction: explorer.Prediction | None, colour_scale: str, evt: gr.SelectData
    ) -> list[Any]:
        if prediction is None:
            raise gr.Error("press Predict for this photo and model, then click a token on a map", print_exception=False)
        stage = prediction.stages[number - 1]
        cell = views.stage_cell_at(*evt.index, stage.shape[1:])
        if cell is None:
            raise gr.Error(
                "that is not on a map: click the activation-energy map (left) or the pooling map (right)",
                print_exception=False,
            )
        token = explorer.inspect_token(uploaded_photo(photo), prediction.choice.value, number, *cell)
        ranges = views.stage_ranges(prediction.stages, colour_scale)[number - 1]
        picture = views.stage_picture(prediction.photo, stage, ranges, marked=cell)
        return [picture, gr.Row(visible=True), *token_outputs(token)]

    return inspect_click


def hide_token_details() -> list[gr.Row]:
    return [gr.Row(visible=False) for _ in explorer.ALL_STAGES]


def forget_prediction() -> None:
    return None


@friendly_errors
def run_ablate(
    photo: dict[str, Any] | None,
    model: str | None = None,
    stages: list[int] | None = None,
    pool_size_stage_1: int = explorer.TRAINED_POOL_SIZE,
    pool_size_stage_2: int = explorer.TRAINED_POOL_SIZE,
    pool_size_stage_3: int = explorer.TRAINED_POOL_SIZE,
    pool_size_stage_4: int = explorer.TRAINED_POOL_SIZE,
    progress: gr.Progress = gr.Progress(),
) -> list[Any]:
    """Identity in `stages`; elsewhere pooling with each stage's size (3 as trained; 5 and 7 are what-ifs)."""
    pool_sizes = [pool_size_stage_1, pool_size_stage_2, pool_size_stage_3, pool_size_stage_4]
    return ablate_outputs(explorer.ablate(uploaded_photo(photo), model, stages or [], reporter(progress), pool_sizes))


def lock_pool_sizes(stages: list[int] | None) -> list[gr.Radio]:
    """A stage swapped to identity has no pool to resize."""
    return [gr.Radio(interactive=number not in (stages or [])) for number in explorer.ALL_STAGES]


@friendly_errors
def run_architecture(
    photo: dict[str, Any] | None, model: str | None = None, progress: gr.Progress = gr.Progress()
) -> str:
    return architecture_svg(explorer.trace(uploaded_photo(photo), model, reporter(progress)))


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


@friendly_errors
def run_compare(photo: dict[str, Any] | None, progress: gr.Progress = gr.Progress()) -> list[Any]:
    return compare_outputs(explorer.compare(uploaded_photo(photo), reporter(progress)))


def select_model(model: str | None, progress: gr.Progress = gr.Progress()) -> tuple[str, str, gr.Label]:
    """Describe the picked model and load it; unavailable weights warn but leave the app usable.

    The ablation's third label (identity mixer trained from scratch) shows only for models that have such a twin.
    """
    choice = explorer.find_choice(model)
    scratch_label = gr.Label(visible=explorer.scratch_twin(choice) is not None)
    try:
        return explorer.describe(choice), explorer.load(model, reporter(progress)), scratch_label
    except (WeightsError, explorer.ExplorerError) as error:
        gr.Warning(str(error))
        return explorer.describe(choice), f"**Not loaded:** {error}", scratch_label


def picker_choices() -> list[tuple[str, str]]:
    return [(explorer.choice_label(choice), choice.value) for choice in explorer.model_choices()]


def open_page() -> tuple[gr.Dropdown, gr.Timer]:
    """Each page load asks afresh for the default (official S12 once it has downloaded) and, while the
    start-up download runs, polls its progress into the status line."""
    picker = gr.Dropdown(choices=picker_choices(), value=explorer.default_choice())
    return picker, gr.Timer(active=explorer.DOWNLOADS.background_running())


def download_progress(model: str | None) -> tuple[Any, gr.Timer]:
    """Timer tick: refresh the status line of the loaded model with the download's progress, until it is done."""
    status = explorer.loaded_status(model)
    return (gr.skip() if status is None else status), gr.Timer(active=explorer.DOWNLOADS.background_running())


def warm_up(model: str) -> None:
    """Load the default model and draw every view once, so the first visitor doesn't wait for it."""
    try:
        predict_outputs(explorer.predict(EXAMPLES[0], model))
        filter_outputs(explorer.filter_photo(EXAMPLES[0], model))
        ablate_outputs(explorer.ablate(EXAMPLES[0], model))
        architecture_svg(explorer.trace(None, model))
    except (WeightsError, explorer.ExplorerError) as error:
        print(f"warm-up skipped: {error}")


# --- the page ---------------------------------------------------------------------------------------


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
            label=f"Stage {number}", format="jpeg", show_label=False, buttons=[], elem_id=f"stage-{number}"
        )
        with gr.Row(visible=False, elem_id=f"token-{number}") as detail_row:
            detail_picture = gr.Image(
                label=f"Clicked token of stage {number}", show_label=False, format="png", buttons=[], scale=2
            )
            detail_text = gr.Markdown(elem_classes="token-summary")
        components += [heading, picture]
        details.append([detail_row, detail_picture, detail_text])
    return components, details


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
                elem_id="token-picture",
            )
            summary = gr.Markdown(elem_id="token-summary")
    return [stage, row, column], button, [picture, summary]


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
                    buttons=[],
                    elem_id=f"cam-{number}",
                )
                caption = gr.Markdown(elem_classes="cam-caption")
            components += [picture, caption]
    return components


@dataclass
class Tour:
    """The tour's components, built above the tabs and wired to them once the tabs exist."""

    panel: gr.Accordion
    seen: gr.BrowserState
    walkthrough: gr.Walkthrough
    steps: list[tuple[gr.Step, gr.Button, gr.Button]]  # per step: the step, its Next/Finish and Skip buttons


def tour_layout() -> Tour:
    """A short walkthrough in a panel that opens by itself for a first-time visitor."""
    # A fixed secret: the flag is not sensitive, and a returning visitor stays "seen" across server restarts.
    seen = gr.BrowserState(False, storage_key="poolformer-explorer-tour-seen", secret="poolformer-explorer-tour")
    steps = []
    with gr.Accordion(f"New here? A short tour in {len(TOUR)} steps", open=False, elem_id="tour") as panel:
        with gr.Walkthrough(selected=0, elem_id="tour-steps") as walkthrough:
            for index, tour_step in enumerate(TOUR):
                last = index == len(TOUR) - 1
                with gr.Step(tour_step.title, id=index, elem_id=f"tour-step-{index + 1}") as step:
                    gr.Markdown(tour_step.text)
                    with gr.Row():
                        advance = gr.Button("Finish" if last else "Next →", variant="primary", size="sm", scale=0,
                                            min_width=110, elem_id=f"tour-next-{index + 1}")
                        skip = gr.Button("Skip the tour", size="sm", scale=0, min_width=110,
                                         elem_id=f"tour-skip-{index + 1}", visible=not last)
                steps.append((step, advance, skip))
    return Tour(panel, seen, walkthrough, steps)


def wire_tour(tour: Tour, tabs: gr.Tabs, tab_ids: set[str]) -> None:
    """Next moves the tour on and opens the next step's tab (when the layout has it); Finish or Skip closes it for good."""

    def tab_of(index: int) -> str | None:
        return TOUR[index].tab if TOUR[index].tab in tab_ids else None

    def close() -> tuple[gr.Accordion, bool]:
        return gr.Accordion(open=False), True

    quiet: dict[str, Any] = {"queue": False, "api_visibility": "private"}
    for index, (step, advance, skip) in enumerate(tour.steps):
        if (target := tab_of(index)) is not None:
            step.select(lambda target=target: gr.Tabs(selected=target), outputs=tabs, **quiet)
        if index == len(tour.steps) - 1:
            advance.click(close, outputs=[tour.panel, tour.seen], **quiet)
            continue
        following = tab_of(index + 1)
        advance.click(
            lambda index=index, following=following: (
                gr.Walkthrough(selected=index + 1),
                gr.Tabs(selected=following) if following else gr.skip(),
            ),
            outputs=[tour.walkthrough, tabs],
            **quiet,
        )
        skip.click(close, outputs=[tour.panel, tour.seen], **quiet)


def build_app() -> gr.Blocks:
    default = explorer.default_choice()
    with gr.Blocks(title="PoolFormer Explorer", delete_cache=TEMP_FILE_SWEEP) as app:
        gr.Markdown(INTRO)
        guide = tour_layout()
        with gr.Row():
            with gr.Column(scale=2, min_width=340):
                photo = refusing_links(
                    gr.Image(
                        label="Photo",
                        type="filepath",
                        sources=["upload", "clipboard", "webcam"],
                        height=300,
                        elem_id="photo",
                    )
                )
                gr.Examples(EXAMPLES, inputs=[photo], label="Example photos (public domain / CC0)", elem_id="examples")
                # No value here: the page load fills in the current default, and an API call that leaves
                # the model out sends None, which the explorer reads as the default at that moment.
                model = gr.Dropdown(picker_choices(), value=None, label="Model", elem_id="model")
                card = gr.Markdown(explorer.describe(explorer.find_choice(default)))
                status = gr.Markdown("Weights load on first use…", elem_id="status")
                download_timer = gr.Timer(DOWNLOAD_POLL_S, active=False)
            with gr.Column(scale=5):
                # Seven tabs outgrow a laptop-wide column: wrap them onto a second row rather than hide some in a menu.
                with gr.Tabs(overflow_behavior="wrap", elem_id="tabs") as tabs:
                    with gr.Tab("Predict", id="predict"):
                        predict_button = gr.Button("Predict", variant="primary", elem_id="predict-button")
                        top5 = gr.Label(num_top_classes=5, label="Top-5 classes", elem_id="top5")
                        gr.Markdown(
                            "Each stage, left to right: **activation energy** over the photo (brighter = stronger "
                            "response, one square per position), its **eight most active channels**, and **what "
                            "pooling adds** to each token in the stage's first block (bright = the 3 × 3 "
                            "neighbourhood differs from the token: edges and texture). **Click a token** on the left "
                            "or right map to see, below it, its 3 × 3 neighbourhood in the stage's first block."
                        )
                        colour_scale = gr.Radio(
                            [(label, value) for value, label in views.COLOUR_SCALES.items()],
                            value=views.DEFAULT_COLOUR_SCALE,
                            label="Colour scale",
                            info=views.COLOUR_SCALE_NOTE,
                            elem_id="colour-scale",
                        )
                        stage_outputs, token_details = stage_rows()
                        prediction = gr.State(None)
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
                            buttons=[],
                            format="jpeg",
                            elem_id="cam-comparison",
                        )
                        cam_summary = gr.Markdown(elem_id="cam-summary")
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
                                elem_id="filter-stage1",
                            )
                        filter_caption = gr.Markdown(elem_id="filter-caption")
                        gr.Markdown("### The filter's three kernels")
                        gr.Image(
                            views.kernel_picture(),
                            label="Kernels of pool(x) − x",
                            show_label=False,
                            format="png",
                            buttons=[],
                            interactive=False,
                            elem_id="filter-kernels",
                        )
                        gr.Markdown(views.kernel_note())
                        gr.Markdown(
                            "### One token up close\nIn the model the same weights act on feature vectors. Pick a "
                            "token (or click one on a stage map in the Predict tab) to see its neighbourhood as the "
                            "stage's first block sees it, after `norm1`, and what the pooling mixer passes on."
                        )
                        token_inputs, token_button, token_results = token_inspector()
                    with gr.Tab("Token-mixer ablation", id="ablation"):
                        gr.Markdown(
                            "Run the **same weights** twice: as trained, and with the pooling token mixer of the "
                            "chosen stages replaced by the identity (tokens are no longer mixed) — or, in the stages "
                            "that keep pooling, with a wider pooling window."
                        )
                        stages = gr.CheckboxGroup(
                            STAGE_CHOICES,
                            value=list(explorer.ALL_STAGES),
                            label="Swap pooling → identity in",
                            elem_id="identity-stages",
                        )
                        gr.Markdown(
                            "**Pool size** in the stages that keep pooling. The weights were trained with 3 × 3, so "
                            "5 × 5 and 7 × 7 are a *what-if* on those weights, not a retrained model (the paper trained "
                            "each size from scratch: see the MetaFormer tab)."
                        )
                        with gr.Row():
                            pool_sizes = [
                                gr.Radio(
                                    POOL_SIZE_CHOICES,
                                    value=explorer.TRAINED_POOL_SIZE,
                                    label=f"Stage {number} pool size",
                                    interactive=False,  # every stage starts swapped to identity
                                    min_width=150,
                                    elem_id=f"pool-size-{number}",
                                )
                                for number in explorer.ALL_STAGES
                            ]
                        ablate_button = gr.Button("Run the ablation", variant="primary", elem_id="ablate-button")
                        with gr.Row():
                            pooling_top5 = gr.Label(num_top_classes=5, label="Pooling, as trained", show_heading=False, elem_id="pooling-top5")
                            identity_top5 = gr.Label(num_top_classes=5, label="Ablated: your mixers", show_heading=False, elem_id="identity-top5")
                            scratch_top5 = gr.Label(
                                num_top_classes=5,
                                label="Identity, trained from scratch",
                                show_heading=False,
                                visible=False,
                                elem_id="scratch-top5",
                            )
                        chart = gr.Image(
                            label="Probabilities side by side, and feature similarity per stage",
                            show_label=False,
                            buttons=[],
                            format="png",
                            elem_id="ablation-chart",
                        )
                        summary = gr.Markdown()
                    with gr.Tab("Compare variants", id="compare"):
                        gr.Markdown(
                            "The photo through **every model whose weights are on this machine** (bundled, or official "
                            "weights in the local Hugging Face cache). Top-1 is the paper's ImageNet figure for official weights and our "
                            "measured val accuracy for bundled ones. Latency is the median of "
                            f"{explorer.TIMED_RUNS} forward passes on **{explorer.DEVICE.type}**, batch 1."
                        )
                        compare_button = gr.Button("Compare", variant="primary", elem_id="compare-button")
                        table = gr.Dataframe(
                            headers=views.COMPARISON_COLUMNS,
                            column_widths=views.COMPARISON_COLUMN_WIDTHS,
                            label="Models",
                            wrap=True,
                            interactive=False,
                            elem_id="compare-table",
                        )
                        plot = gr.ScatterPlot(
                            x=views.PLOT_X,
                            y=views.PLOT_Y,
                            color=views.PLOT_COLOUR,
                            tooltip=views.PLOT_TOOLTIP,
                            x_title=f"latency on {explorer.DEVICE.type}, batch 1 (ms)",
                            y_title="top-1 (%)",
                            title="Accuracy against speed (hover a point: parameters, benchmark, and its answer for your photo)",
                            y_lim=[60, 100],  # ImageNet (paper) and Imagenette (ours) top-1 both fall in here
                            label="Top-1 against latency",
                            elem_id="compare-plot",
                        )
                        gr.Markdown("**Stage-4 activation energy** (7 × 7) of each model, over the crop it saw:")
                        maps = gr.Gallery(
                            label="Stage-4 activation energy (7 × 7) of each model",
                            show_label=False,
                            columns=4,
                            fit_columns=False,
                            height="auto",
                            format="jpeg",
                            elem_id="compare-maps",
                        )
                    with gr.Tab("MetaFormer", id="metaformer"):
                        gr.Markdown(METAFORMER_INTRO)
                        diagram = gr.HTML(elem_id="architecture", min_height=200)
                        with gr.Row():
                            gr.Markdown(views.paper_mixer_tables(), elem_id="paper-tables")
                            gr.Markdown(views.measured_table(explorer.measured_mixer_runs()), elem_id="measured-table")
                        gr.Markdown(views.baselines_table(), elem_id="baselines-table")
                        gr.Markdown(METAFORMER_READING)
                    with gr.Tab("About", id="about"):
                        gr.Markdown(ABOUT)

        # preprocess=False: the photo reaches our own loader undecoded (see uploaded_photo).
        predict_button.click(
            run_predict,
            [photo, model, colour_scale],
            [top5, *stage_outputs, status, prediction],
            api_name="predict",
            preprocess=False,
        )
        stage_pictures = stage_outputs[1::2]
        colour_scale.change(redraw_stages, [prediction, colour_scale], stage_pictures, api_visibility="private")
        # Tokens clicked on old maps no longer apply once there are new maps; after a new photo or model,
        # the maps on the page no longer match it, so clicks wait for the next Predict.
        predict_button.click(
            hide_token_details, None, [row for row, _, _ in token_details], api_visibility="private", queue=False
        )
        for change in (photo.change, model.change):
            change(forget_prediction, None, prediction, api_visibility="private", queue=False)
        for number, picture, (row, *details) in zip(explorer.ALL_STAGES, stage_pictures, token_details):
            picture.select(
                token_clicker(number),
                [photo, prediction, colour_scale],
                [picture, row, *details],
                api_visibility="private",
                preprocess=False,
            )
        token_button.click(
            run_token, [photo, model, *token_inputs], token_results, api_name="token", preprocess=False
        )
        filter_button.click(
            run_filter,
            [photo, model],
            [filter_slider, stage1_map, filter_caption],
            api_name="mixer_filter",
            preprocess=False,
        )
        ablate_button.click(
            run_ablate,
            [photo, model, stages, *pool_sizes],
            [pooling_top5, identity_top5, chart, summary, scratch_top5, status],
            api_name="ablate",
            preprocess=False,
        )
        explain_button.click(
            run_explain,
            [photo, model, target, explain_stages],
            [explain_top5, *cam_outputs, cam_comparison, cam_summary, status],
            api_name="explain",
            preprocess=False,
        ).success(target_menu, [explain_top5, target], [target], api_visibility="private")
        gr.on([photo.change, model.change], reset_target, None, [target], api_visibility="private", queue=False)
        compare_button.click(run_compare, [photo], [table, maps, plot], api_name="compare", preprocess=False)
        stages.change(lock_pool_sizes, [stages], pool_sizes, queue=False, api_visibility="private")
        gr.on(
            [app.load, photo.change, model.change],
            run_architecture,
            [photo, model],
            [diagram],
            api_name="architecture",
            preprocess=False,
            trigger_mode="always_last",  # a photo dropped while the first diagram is drawing still gets its own
        )
        wire_tour(guide, tabs, {tab.id for tab in tabs.children if isinstance(tab, gr.Tab)})
        app.load(lambda seen: gr.Accordion(open=not seen), [guide.seen], [guide.panel], queue=False, api_visibility="private")
        model.change(select_model, [model], [card, status, scratch_top5], api_visibility="private")
        # Cheap page events bypass the queue, so a full queue never leaves a page without its picker or progress.
        app.load(open_page, None, [model, download_timer], api_visibility="private", queue=False)  # then .change
        download_timer.tick(
            download_progress,
            [model],
            [status, download_timer],
            api_visibility="private",
            show_progress="hidden",
            queue=False,
        )
    return app


# --- serving in public: each number is explained in the README's "Deploying as a Space" ---------------

# Uploads above this are refused by the server itself with HTTP 413. A 12-MP phone JPEG is 3–8 MB, so
# 20 MB admits any real photo while bounding what a burst of uploads costs in memory and temp space.
MAX_UPLOAD_SIZE = os.environ.get("POOLFORMER_MAX_UPLOAD", "20mb")
# Model runs at once, over all API endpoints together (they share one concurrency group). On CPU each run gets
# its share of the cores (torch_threads_per_request), so two runs side by side don't wait on each other; the
# second keeps one slow call (compare over every model, a Hub download being waited for) from holding up
# everybody behind it.
# The picker's model loading keeps its own slots, and page loads and progress ticks bypass the queue.
MODEL_RUNS_AT_ONCE = 2
# Calls waiting at once, over all events; the next one is told the queue is full and to try again. 48 visitors
# mixing every endpoint were served at about 3 calls/s on a shared 2-core CPU: a full queue drains in 10–15 s.
QUEUE_SIZE = 32
# Every hour, delete uploads and outputs older than an hour: nobody needs them once the page has shown them.
# POOLFORMER_TEMP_FILE_SWEEP="FREQUENCY,AGE" (seconds) changes it.
TEMP_FILE_SWEEP = tuple(int(part) for part in os.environ.get("POOLFORMER_TEMP_FILE_SWEEP", "3600,3600").split(","))


def never_served() -> list[str]:
    """The Hugging Face cache (with any token beside it) and the repository. Gradio serves only its own
    temp files anyway; blocking these holds even if GRADIO_TEMP_DIR or allowed_paths are set carelessly."""
    return [*hub.cache_dirs(), str(Path(__file__).resolve().parent)]


def torch_threads_per_request() -> int:
    """Intra-op threads for each model run: its share of the cores, unless OMP_NUM_THREADS says otherwise.

    Runs go side by side (an upload redraws the diagram while Predict runs; visitors overlap), and every torch
    operation waits for all of its threads: with two threads per run on two busy cores, /predict and /ablate
    took 2-3 times as long over the Gradio floor as with one (benchmarks/app_latency.py measures both).
    """
    if "OMP_NUM_THREADS" in os.environ:
        return torch.get_num_threads()
    return max(1, (os.cpu_count() or 1) // MODEL_RUNS_AT_ONCE)


def cache_pictures_atomically() -> None:
    """Make Gradio put each output picture into its cache by writing a temporary file and renaming it into place.

    Gradio 6.31 names a cached picture after the hash of its bytes and rewrites it in place (truncate, then
    write) every time it is produced. Two visitors who get the same picture at once (the same example photo)
    then race: one download can be cut short while the other request rewrites the file, and the browser shows a
    broken image. Gradio already copies other files this way; an existing copy is only touched, since
    `delete_cache` ages files by their ctime.
    """

    def save_pil_to_cache(img: Any, cache_dir: str, name: str = "image", format: str = "webp") -> str:
        data = processing_utils.encode_pil_to_bytes(img, format)
        folder = Path(cache_dir) / processing_utils.hash_bytes(data)
        folder.mkdir(exist_ok=True, parents=True)
        path = (folder / f"{name}.{format}").resolve()
        if path.exists():
            os.utime(path)
            return str(path)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".partial-", delete=False) as partial:
            partial.write(data)
        os.replace(partial.name, path)
        return str(path)

    processing_utils.save_pil_to_cache = save_pil_to_cache  # Gradio's components call it through the module


def serve(app: gr.Blocks) -> None:
    """Start serving with the public-server settings above; returns at once (benchmarks/echo_app.py serves so too)."""
    cache_pictures_atomically()
    for event in app.fns.values():  # every API endpoint, present and future, in one pool of model runs
        if event.api_visibility == "public":
            event.concurrency_id = "model runs"
    app.queue(max_size=QUEUE_SIZE, default_concurrency_limit=MODEL_RUNS_AT_ONCE)
    app.launch(
        theme=THEME,
        css=CSS,
        max_file_size=MAX_UPLOAD_SIZE,
        enable_monitoring=False,  # /monitoring/summary would otherwise be open to anyone
        blocked_paths=never_served(),
        prevent_thread_lock=True,
    )


def main() -> None:
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
