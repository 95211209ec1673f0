"""The left column: the photo and its examples, the model picker (and, where the operator allows it, a box to
open any PoolFormer on the Hub), the model's card and its status line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from poolformer import explorer
from poolformer.weights import WeightsError
from ui.server import MODEL_LOADING
from ui.shared import Shared, reporter

# Cathedrals first: "church" is one of the bundled default model's ten classes, so a first-time
# visitor sees it recognise something; the ImageNet-1k models know the rest (see LICENSES.md there).
# file name -> the example's button text (named buttons, not thumbnails: a screen reader can say what each is).
EXAMPLE_NAMES = {
    "reims_cathedral": "Reims cathedral",
    "berlin_cathedral": "Berlin cathedral",
    "cat": "Cat",
    "coffee": "Coffee",
    "rocket": "Rocket",
    "astronaut": "Astronaut",
    "grace_hopper": "Grace Hopper",
}
EXAMPLE_DIR = Path(__file__).parent.parent / "assets" / "examples"
EXAMPLES = [str(EXAMPLE_DIR / f"{name}.jpg") for name in EXAMPLE_NAMES]
DOWNLOAD_POLL_S = 1.0  # how often an open page refreshes the start-up download's progress
PHOTO_LINK_REFUSED = "photo links are not fetched by this app: download the picture and upload the file"


def refusing_links(photo: gr.Image) -> gr.Image:
    """Make `photo` refuse a link given as the photo (`handle_file("http://…")` in gradio_client).

    Gradio would fetch the link itself (through safehttpx, which refuses private addresses), and a refused or
    failed fetch reaches the visitor only as a bare "Error"; a photo is small enough to upload instead. The
    hook wraps this one instance (a gr.Image subclass would make Gradio write a .pyi stub beside its module).
    """
    move_to_cache = photo.async_move_resource_to_block_cache

    async def move_uploads_only(url_or_file_path: str | Path | None) -> str | None:
        if str(url_or_file_path).lower().startswith(("http://", "https://")):
            raise gr.Error(PHOTO_LINK_REFUSED, print_exception=False)
        return await move_to_cache(url_or_file_path)

    photo.async_move_resource_to_block_cache = move_uploads_only
    return photo


def select_model(model: str | None, progress: gr.Progress = gr.Progress()) -> tuple[str, str]:
    """Describe the picked model and load it; unavailable weights warn but leave the app usable."""
    choice = explorer.find_choice(model)
    try:
        return explorer.describe(choice), explorer.load(model, reporter(progress))
    except (WeightsError, explorer.ExplorerError) as error:
        gr.Warning(str(error))
        return explorer.describe(choice), f"**Not loaded:** {error}"


def picker_choices(*extra: str) -> list[tuple[str, str]]:
    """The picker's entries, then any repos this visitor opened (kept in the visitor's own picker only)."""
    entries = [(explorer.choice_label(choice), choice.value) for choice in explorer.model_choices()]
    known = {value for _, value in entries}
    return entries + [(explorer.choice_label(explorer.find_choice(ref)), ref) for ref in extra if ref not in known]


def open_visitor_model(ref: str, opened: list[str], progress: gr.Progress = gr.Progress()) -> tuple[Any, list[str]]:
    """Fetch and load the repo a visitor typed, then pick it; a refusal is one line and changes nothing."""
    ref = (ref or "").strip()
    try:
        explorer.load(ref, reporter(progress))
    except (WeightsError, explorer.ExplorerError) as error:
        gr.Warning(str(error))
        return gr.skip(), opened
    opened = [*opened, ref] if ref not in opened else opened
    return gr.Dropdown(choices=picker_choices(*opened), value=ref), opened


def open_page(request: gr.Request) -> tuple[gr.Dropdown, gr.Timer]:
    """Each page load picks the model its link names (`?model=`, when the picker has it) or asks afresh for the
    default (official S12 once it has downloaded) and, while the start-up download runs, polls its progress
    into the status line."""
    choices = picker_choices()
    linked = request.query_params.get("model")
    model = linked if linked in {value for _, value in choices} else explorer.default_choice()
    picker = gr.Dropdown(choices=choices, value=model)
    return picker, gr.Timer(active=explorer.DOWNLOADS.background_running())


def download_progress(model: str | None) -> tuple[Any, gr.Timer]:
    """Timer tick: refresh the status line of the loaded model with the download's progress, until it is done."""
    status = explorer.loaded_status(model)
    return (gr.skip() if status is None else status), gr.Timer(active=explorer.DOWNLOADS.background_running())


def visitor_models(model: gr.Dropdown) -> None:
    """A box for a Hub repo id: the repo is fetched within the server's bounds and added to this visitor's picker."""
    limit = explorer.visitor_rules().max_weights_bytes / 1e6
    repo = gr.Textbox(
        label="Or open a PoolFormer from the Hub",
        placeholder="owner/name or owner/name@revision",
        info=f"A transformers PoolFormer with model.safetensors up to {limit:.0f} MB; one download at a time.",
        max_lines=1,
        elem_id="visitor-model",
    )
    button = gr.Button("Open from the Hub", size="sm", elem_id="visitor-model-button")
    opened = gr.State([])  # this visitor's repos, kept in their own picker
    gr.on([button.click, repo.submit], open_visitor_model, [repo, opened], [model, opened], api_visibility="private")


def build(page: gr.Blocks) -> Shared:
    """Lay out the left column of `page` and wire its events; what the tabs need of it comes back."""
    default = explorer.default_choice()
    with gr.Column(scale=2, min_width=340):
        photo = refusing_links(
            gr.Image(
                label="Photo",
                type="filepath",
                sources=["upload", "clipboard", "webcam"],
                height=300,
                alt_text="The photo the model looks at",
                elem_id="photo",
            )
        )
        gr.Examples(
            EXAMPLES,
            inputs=[photo],
            example_labels=list(EXAMPLE_NAMES.values()),
            label="Example photos (public domain / CC0)",
            elem_id="examples",
        )
        # No value here: the page load fills in the current default, and an API call that leaves
        # the model out sends None, which the explorer reads as the default at that moment.
        model = gr.Dropdown(picker_choices(), value=None, label="Model", elem_id="model")
        if explorer.visitor_models_allowed():
            visitor_models(model)
        card = gr.Markdown(explorer.describe(explorer.find_choice(default)))
        status = gr.Markdown("Weights load on first use…", elem_id="status")
        download_timer = gr.Timer(DOWNLOAD_POLL_S, active=False)

    model_selected = model.change(
        select_model, [model], [card, status], api_visibility="private", concurrency_id=MODEL_LOADING
    )
    # Cheap page events bypass the queue, so a full queue never leaves a page without its picker or progress.
    page.load(open_page, None, [model, download_timer], api_visibility="private", queue=False)  # then .change
    download_timer.tick(
        download_progress,
        [model],
        [status, download_timer],
        api_visibility="private",
        show_progress="hidden",
        queue=False,
    )
    return Shared(page, photo, model, status, model_selected)
