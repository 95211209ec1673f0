"""The MetaFormer tab: the selected model drawn out with the photo's tensor shapes, beside the ablation tables."""

from __future__ import annotations

from typing import Any

import gradio as gr

from poolformer import explorer
from ui.shared import Shared, friendly_errors, reporter, uploaded_photo
from visualize.architecture import architecture_svg
from visualize.metaformer import baselines_table, measured_table, paper_mixer_tables

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
Imagenette models, one per token mixer, tell the same story on a small scale, and the **Mixer zoo** tab runs them
all on your photo. In the paper each pool size was *trained* with its window; in the **Token-mixer ablation** tab,
sizes 5 and 7 are a what-if on weights trained with 3.
"""


# The diagram is an inline SVG (its pictures are data URIs), so the browser saves and enlarges it on its own.
DOWNLOAD_DIAGRAM_JS = """() => {
  const svg = document.querySelector("#architecture svg");
  if (!svg) return;
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([new XMLSerializer().serializeToString(svg)], {type: "image/svg+xml"}));
  link.download = "poolformer-architecture.svg";
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}"""
FULL_SCREEN_DIAGRAM_JS = """() => document.getElementById("architecture").requestFullscreen?.()"""


@friendly_errors
def run_architecture(
    photo: dict[str, Any] | None, model: str | None = None, progress: gr.Progress = gr.Progress()
) -> str:
    return architecture_svg(explorer.trace(uploaded_photo(photo), model, reporter(progress)))


def build(shared: Shared) -> None:
    with gr.Tab("MetaFormer", id="metaformer"):
        gr.Markdown(METAFORMER_INTRO)
        diagram = gr.HTML(elem_id="architecture", min_height=200)
        with gr.Row():
            download = gr.Button("Download the diagram (SVG)", size="sm", scale=0, min_width=220, elem_id="architecture-download")
            full_screen = gr.Button("Full screen", size="sm", scale=0, min_width=120, elem_id="architecture-full-screen")
        with gr.Row():
            gr.Markdown(paper_mixer_tables(), elem_id="paper-tables")
            gr.Markdown(measured_table(explorer.measured_mixer_runs()), elem_id="measured-table")
        gr.Markdown(baselines_table(), elem_id="baselines-table")
        gr.Markdown(METAFORMER_READING)

    download.click(None, js=DOWNLOAD_DIAGRAM_JS, queue=False, api_visibility="private")
    full_screen.click(None, js=FULL_SCREEN_DIAGRAM_JS, queue=False, api_visibility="private")
    gr.on(
        [shared.page.load, shared.photo.change, shared.model.change],
        run_architecture,
        [shared.photo, shared.model],
        [diagram],
        api_name="architecture",
        preprocess=False,
        trigger_mode="always_last",  # a photo dropped while the first diagram is drawing still gets its own
    )
