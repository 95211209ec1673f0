"""Turn the explorer's results into what the app shows: pictures, captions, tables.

Each function takes one result from `poolformer.explorer` and returns images (PIL) and Markdown
strings; `app.py` only places them in components.
"""

from __future__ import annotations

import json

from PIL import Image

from poolformer.explorer import PAPER_S12_TOP1, Ablation, Comparison, ModelChoice, StageView
from poolformer.model import VARIANTS
from visualize.charts import ablation_chart
from visualize.maps import PHOTO_SIZE, channel_grid, overlay, titled_row

ENERGY_COLORMAP = "inferno"
MIXER_COLORMAP = "viridis"
MIXER_TITLES = {"pooling": "pooling adds ‖pool(x) − x‖", "identity": "identity mixer ‖norm(x)‖"}


def stage_heading(stage: StageView) -> str:
    """Stage number, tensor shape, and how many photo pixels one map cell stands for."""
    channels, height, width = stage.shape
    cell = PHOTO_SIZE // height
    shown = ", ".join(str(index) for index, _ in stage.top_channels)
    return (
        f"**Stage {stage.number}** · output tensor **{channels} × {height} × {width}** "
        f"(channels × height × width) · {stage.depth} blocks · one cell = {cell} × {cell} pixels · "
        f"channels shown: {shown}"
    )


def stage_picture(photo: Image.Image, stage: StageView) -> Image.Image:
    """Energy over the photo, the most active channels, and where pooling changes the tokens."""
    height, width = stage.energy.shape
    return titled_row(
        [
            (f"activation energy ({height} × {width})", overlay(photo, stage.energy, ENERGY_COLORMAP)),
            (f"{len(stage.top_channels)} most active channels", channel_grid([channel for _, channel in stage.top_channels])),
            (MIXER_TITLES[stage.token_mixer], overlay(photo, stage.mixer_change, MIXER_COLORMAP, opacity=0.75)),
        ]
    )


def percent(probability: float) -> str:
    return f"{probability * 100:.1f} %"


def ablation_picture(ablation: Ablation) -> Image.Image:
    runs = [ablation.pooling, ablation.identity] + ([ablation.scratch] if ablation.scratch else [])
    return ablation_chart(
        [run.name for run in runs],
        [run.probabilities for run in runs],
        ablation.class_names,
        ablation.stage_cosine,
    )


def ablation_summary(ablation: Ablation) -> str:
    """The measured differences, then what the paper found, so the numbers have a yardstick."""
    stages = ", ".join(str(number) for number in ablation.swapped_stages)
    cosines = " | ".join(f"{value:.3f}" for value in ablation.stage_cosine)
    agreement = "**yes**, same top-1 class" if ablation.top1_agrees else "**no**, the top-1 class changes"
    lines = [
        f"Pooling replaced by identity in stage(s) **{stages}** of **{ablation.choice.name}**, same weights, no retraining.",
        "",
        "| | stage 1 | stage 2 | stage 3 | stage 4 |",
        "|---|---|---|---|---|",
        f"| cosine similarity of stage outputs | {cosines} |",
        "",
        f"- Top-1 agreement: {agreement}.",
        f"- KL divergence KL(pooling ‖ identity): **{ablation.kl_divergence:.3f} nats** (0 means identical predictions).",
    ]
    if ablation.scratch is not None and ablation.scratch_choice is not None:
        lines += ["", scratch_comparison(ablation.choice, ablation.scratch_choice)]
    lines += [
        "",
        f"**What the paper found.** In MetaFormer (Yu et al., arXiv 2111.11418, Table 5), PoolFormer-S12 trained "
        f"from scratch on ImageNet-1k reaches **{PAPER_S12_TOP1['pooling']} %** top-1 with pooling and still "
        f"**{PAPER_S12_TOP1['identity']} %** with the identity mapping as token mixer: most of the accuracy comes "
        "from the MetaFormer structure (norm, residuals, channel MLP), not from the mixer. Swapping the mixer *after* "
        "training is harsher than training with identity, because every later layer was tuned to pooled features.",
    ]
    return "\n".join(lines)


def scratch_comparison(pooling: ModelChoice, identity: ModelChoice) -> str:
    """The two bundled models' measured val accuracy: mean ± sd over seeds where recorded, else the one run."""
    summary = json.loads(pooling.metadata.get("seed_summary", "{}"))

    def accuracy(choice: ModelChoice) -> str:
        seeds = summary.get(choice.token_mixer)
        if seeds and len(seeds["top1"]) > 1:
            return f"{seeds['mean'] * 100:.2f} ± {seeds['sd'] * 100:.2f} % (mean ± sd over {len(seeds['top1'])} seeds)"
        value = choice.metadata.get("val_top1")
        return f"{percent(float(value))} (one training run)" if value else "not recorded"

    text = (
        f"**Trained from scratch with each mixer** (third bar): {pooling.name} reaches **{accuracy(pooling)}** and "
        f"{identity.name} **{accuracy(identity)}** top-1 on the {pooling.metadata.get('dataset', 'validation')} val split"
    )
    if "gap" in summary:
        low, high = (value * 100 for value in summary["gap"]["ci95"])
        text += f"; the gap is {summary['gap']['mean'] * 100:+.2f} points (95 % interval {low:+.2f} to {high:+.2f})"
    return text + "."


COMPARISON_COLUMNS = ["model", "weights", "params (M)", "GMACs", "top-1 (%)", "latency (ms)", "top-5"]
COMPARISON_COLUMN_WIDTHS = ["19%", "14%", "8%", "7%", "7%", "10%", "35%"]


def comparison_row(row: Comparison) -> list[str | float]:
    variant = row.choice.variant
    top5 = " · ".join(f"{name} {percent(probability)}" for name, probability in row.top5.items())
    weights = "bundled, Imagenette" if row.choice.bundled else "ImageNet-1k (HF cache)"
    return [row.choice.name, weights, round(row.params_m, 1), variant.macs_g, top1_figure(row.choice), round(row.latency_ms, 1), top5]


def top1_figure(choice: ModelChoice) -> str:
    """Official weights: the paper's ImageNet top-1; bundled ones: what we measured on their own val split."""
    if not choice.bundled:
        return f"{choice.variant.top1}"
    measured = choice.metadata.get("val_top1")
    return f"{float(measured) * 100:.1f}" if measured else "—"


def comparison_gallery(rows: list[Comparison]) -> list[tuple[Image.Image, str]]:
    """Each model's stage-4 energy over its own input crop, captioned with its top-1."""
    pictures = []
    for row in rows:
        name, probability = next(iter(row.top5.items()))
        pictures.append((overlay(row.photo, row.stage4_energy, ENERGY_COLORMAP), f"{row.choice.name}: {name} {percent(probability)}"))
    return pictures


def variant_table() -> str:
    """The paper's model table as Markdown, for the About tab."""
    rows = [
        "| variant | blocks per stage | widths | params | MACs | ImageNet top-1 |",
        "|---|---|---|---|---|---|",
    ]
    for variant in VARIANTS.values():
        depths = "-".join(map(str, variant.depths))
        widths = "-".join(map(str, variant.widths))
        rows.append(f"| {variant.name} | {depths} | {widths} | {variant.params_m} M | {variant.macs_g} G | {variant.top1} % |")
    return "\n".join(rows)
