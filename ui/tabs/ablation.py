"""The Token-mixer ablation tab: the same weights with pooling swapped for identity, or its window widened, per stage."""

from __future__ import annotations

from typing import Any

import gradio as gr

from poolformer import explorer
from ui.shared import FIGURE_BUTTONS, STAGE_CHOICES, Shared, friendly_errors, reporter, uploaded_photo
from visualize.ablation import ablation_picture, ablation_summary

POOL_SIZE_CHOICES = [
    (f"{size} × {size}" + (" (as trained)" if size == explorer.TRAINED_POOL_SIZE else " (what-if)"), size)
    for size in explorer.POOL_SIZES
]


def ablate_outputs(ablation: explorer.Ablation) -> list[Any]:
    return [
        ablation.pooling.top5,
        ablation.identity.top5,
        ablation_picture(ablation),
        ablation_summary(ablation),
        ablation.scratch.top5 if ablation.scratch else None,
        ablation.status,
    ]


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


def show_scratch_label(model: str | None) -> gr.Label:
    """The third label (identity mixer trained from scratch) shows only for models that have such a twin."""
    return gr.Label(visible=explorer.scratch_twin(explorer.find_choice(model)) is not None)


def build(shared: Shared) -> None:
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
            buttons=FIGURE_BUTTONS,
            format="png",
            alt_text="Chart: the top-5 probabilities as trained and ablated side by side, and how similar the "
            "features of each stage stay",
            elem_id="ablation-chart",
        )
        summary = gr.Markdown()

    ablate_button.click(
        run_ablate,
        [shared.photo, shared.model, stages, *pool_sizes],
        [pooling_top5, identity_top5, chart, summary, scratch_top5, shared.status],
        api_name="ablate",
        preprocess=False,
    )
    stages.change(lock_pool_sizes, [stages], pool_sizes, queue=False, api_visibility="private")
    shared.model_selected.then(show_scratch_label, [shared.model], [scratch_top5], api_visibility="private", queue=False)
