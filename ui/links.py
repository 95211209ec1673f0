"""Deep links: the view a visitor is looking at lives in the page's address, so a copied link reopens it.

The address reads like `?photo=cat&model=s12-imagenette&tab=ablation&identity=1,3&pool2=5`. The browser keeps it
current (each linked control rewrites its parameter when it changes), and a page load reads it back; a value
the page would not offer itself (an unknown model, a stage 9, a row past the map) is ignored, never an error.
Only example photos can be linked: an upload stays on the visitor's machine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gradio as gr

from ui.shared import Shared
from ui.sidebar import EXAMPLE_NAMES

# query parameter -> elem_id of the control it restores (the model has its own parameter: see ui.sidebar)
LINKED_CONTROLS = {
    "scale": "colour-scale",
    "identity": "identity-stages",
    **{f"pool{number}": f"pool-size-{number}" for number in range(1, 5)},
    "stage": "token-stage",
    "row": "token-row",
    "column": "token-column",
}
MAX_PARAMETER_LENGTH = 200  # longer values are not ours: ignored unread

# window.linkParameter(name, value) rewrites one parameter of the address in place (no reload, no history entry).
HEAD = """<script>
window.linkedQuery = new URLSearchParams(window.location.search);  // as opened, before the first tab reports itself
window.linkParameter = (name, value) => {
  const url = new URL(window.location.href);
  const text = Array.isArray(value) ? value.join(",") : value;
  if (text === null || text === undefined || text === "") url.searchParams.delete(name);
  else url.searchParams.set(name, String(text));
  window.history.replaceState(window.history.state, "", url);
};
</script>"""
OPEN_LINKED_TAB_JS = """() => {
  const label = %s[window.linkedQuery.get("tab")];
  const open = () => {
    const button = [...document.querySelectorAll("#tabs [role=tab]")].find((tab) => tab.textContent.trim() === label);
    if (button) button.click();
    return Boolean(button);
  };
  if (label && !open()) setTimeout(open, 500);
}"""
COPY_LINK_JS = """() => {
  navigator.clipboard?.writeText(window.location.href);
  const button = document.getElementById("copy-link");
  button.textContent = "Link copied: paste it anywhere";
  setTimeout(() => { button.textContent = "Copy a link to this view"; }, 3000);
}"""


def build() -> gr.Button:
    """The button that copies the address (it always holds the current view), kept in the window's corner by the
    CSS; `wire` it once the page exists."""
    return gr.Button("Copy a link to this view", size="sm", scale=0, min_width=220, elem_id="copy-link")


def choice_values(control: gr.components.Component) -> dict[str, Any]:
    """A choice control's values by their text in an address (a stage is `3` there, the int 3 here)."""
    return {str(value): value for _, value in control.choices}


def read_value(control: gr.components.Component, text: str) -> Any:
    """The value `text` names for `control`, or gr.skip() when the control would not take it."""
    if len(text) > MAX_PARAMETER_LENGTH:
        return gr.skip()
    if isinstance(control, gr.CheckboxGroup):
        known = choice_values(control)
        picked = [part for part in text.split(",") if part]
        return [known[part] for part in picked] if all(part in known for part in picked) else gr.skip()
    if isinstance(control, (gr.Radio, gr.Dropdown)):
        return choice_values(control).get(text, gr.skip())
    if isinstance(control, gr.Number):
        if not text.isdigit():
            return gr.skip()
        number = int(text)
        low, high = control.minimum, control.maximum
        return number if (low is None or number >= low) and (high is None or number <= high) else gr.skip()
    raise TypeError(f"no deep-link reader for {type(control).__name__}")


def example_photos(examples: gr.Dataset) -> dict[str, str]:
    """Each example's name and the copy gr.Examples keeps in Gradio's cache (the repository is never served)."""
    return {Path(photo["path"]).stem: photo["path"] for photo, *_ in examples.samples}


def wire(button: gr.Button, page: gr.Blocks, shared: Shared, tabs: gr.Tabs) -> None:
    """Keep the address current as the visitor moves, restore a linked view on load, and copy the link."""
    controls = {block.elem_id: block for block in page.blocks.values() if getattr(block, "elem_id", None)}
    linked = {name: controls[elem_id] for name, elem_id in LINKED_CONTROLS.items() if elem_id in controls}
    tab_labels = {tab.id: tab.label for tab in tabs.children if isinstance(tab, gr.Tab)}
    photos = example_photos(controls["examples"])
    quiet: dict[str, Any] = {"queue": False, "api_visibility": "private"}

    def restore(request: gr.Request) -> list[Any]:
        query = request.query_params
        photo = photos.get(query.get("photo", ""), gr.skip())
        return [photo] + [read_value(control, query[name]) if name in query else gr.skip() for name, control in linked.items()]

    # The tab opens in the browser, as a click on it would, from the address as it was opened: the first tab
    # reports itself selected (and so rewrites `tab`) as the page mounts, before any load event runs.
    page.load(None, None, None, js=OPEN_LINKED_TAB_JS % json.dumps(tab_labels), **quiet)
    page.load(restore, None, [shared.photo, *linked.values()], **quiet)
    for name, control in {"model": shared.model, **linked}.items():
        control.change(None, [control], None, js=f"(value) => window.linkParameter({json.dumps(name)}, value)", **quiet)
    # An example photo is linked by its name; any other photo (an upload) takes the parameter out.
    examples = json.dumps(list(EXAMPLE_NAMES))
    shared.photo.change(
        None,
        [shared.photo],
        None,
        js=f"""(photo) => {{
            const name = (photo?.orig_name || photo?.path || "").split("/").pop().replace(/\\.jpg$/, "");
            window.linkParameter("photo", {examples}.includes(name) ? name : null);
        }}""",
        **quiet,
    )
    for tab in tabs.children:
        if isinstance(tab, gr.Tab):
            tab.select(None, None, None, js=f"() => window.linkParameter('tab', {json.dumps(tab.id)})", **quiet)
    button.click(None, None, None, js=COPY_LINK_JS, **quiet)
