"""The Mixer zoo tab: the photo through every bundled model that differs from PoolFormer only in its token mixer."""

from __future__ import annotations

from typing import Any

import gradio as gr

from poolformer import explorer
from ui.shared import FIGURE_BUTTONS, TOP1_CHOICE, Shared, friendly_errors, reporter, uploaded_photo
from visualize.zoo import similarity_picture, similarity_reading, zoo_picture, zoo_table

ZOO_INTRO = """
### So is pooling as good as attention?
The MetaFormer paper's Table 5 trains one network, PoolFormer-S12, with one token mixer after another: no mixing
at all (identity), a fixed random matrix over all tokens, 3 × 3 pooling, a learned 3 × 3 depthwise convolution, and
pooling in the first two stages with attention in the last two. Here are our own versions, and attention in all
four stages besides, each trained from scratch on Imagenette with one recipe, only the mixer differing, and every
one of them on **your photo**: its top-5, where it finds the evidence for one class (Grad-CAM at stages 3 and 4,
the stages whose maps sit on the object) and how strongly its last stage responds, beside what it measured on val
over several training seeds and what the paper measured for that mixer. Every bundled checkpoint trained with a
zoo mixer joins by itself.
"""


def zoo_outputs(zoo: explorer.Zoo) -> list[Any]:
    return [zoo_picture(zoo), zoo_table(zoo)]


@friendly_errors
def run_mixers(
    photo: dict[str, Any] | None, target: str | None = explorer.TOP1, progress: gr.Progress = gr.Progress()
) -> list[Any]:
    """Every bundled mixer model on the photo: top-5, Grad-CAM at stages 3 and 4 for one class, stage-4 energy."""
    return zoo_outputs(explorer.mixer_zoo(uploaded_photo(photo), target, reporter(progress)))


def build(shared: Shared) -> None:
    similarity = explorer.zoo_similarity()
    with gr.Tab("Mixer zoo", id="mixer-zoo"):
        gr.Markdown(ZOO_INTRO)
        target = gr.Dropdown(
            [TOP1_CHOICE, *[(name, name) for name in explorer.zoo_class_names()]],
            value=explorer.TOP1,
            label="Class to explain, the same in every model (the top-1 is PoolFormer's)",
            allow_custom_value=True,  # our own check answers a wrong name in one line
            elem_id="zoo-target",
        )
        zoo_button = gr.Button("Run every mixer", variant="primary", elem_id="zoo-button")
        picture = gr.Image(
            label="Every mixer model: Grad-CAM at stages 3 and 4, stage-4 energy and top-5",
            show_label=False,
            buttons=FIGURE_BUTTONS,
            format="jpeg",
            alt_text="One row per mixer model: its Grad-CAM maps at stages 3 and 4 over the photo, its stage-4 "
            "activation energy and its top-5",
            elem_id="zoo-picture",
        )
        table = gr.Markdown(
            label="Every mixer model: top-5, val accuracy and the paper's Table 5 row", elem_id="zoo-table"
        )
        gr.Image(
            None if similarity is None else similarity_picture(similarity),
            label="Linear CKA of each model's stage features with the pooling model's",
            show_label=False,
            buttons=FIGURE_BUTTONS,
            format="png",
            alt_text="Heat map: linear CKA of each mixer model's stage features with the pooling model's, per stage",
            interactive=False,
            visible=similarity is not None,
            height="auto",
            elem_id="cka-heatmap",
        )
        gr.Markdown(similarity_reading(similarity), elem_id="cka-reading")

    zoo_button.click(run_mixers, [shared.photo, target], [picture, table], api_name="mixers", preprocess=False)
