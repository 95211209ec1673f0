"""Turn the explorer's results into what the app shows: pictures, captions, tables.

Each function takes one result from `poolformer.explorer` and returns images (PIL) and Markdown
strings; `app.py` only places them in components.
"""

from __future__ import annotations

import json

import pandas as pd
from PIL import Image

from poolformer.explorer import (
    PAPER_S12_TOP1,
    TRAINED_POOL_SIZE,
    Ablation,
    Comparison,
    MeasuredRun,
    ModelChoice,
    StageView,
    paper,
)
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
    cosines = " | ".join(f"{value:.3f}" for value in ablation.stage_cosine)
    agreement = "**yes**, same top-1 class" if ablation.top1_agrees else "**no**, the top-1 class changes"
    lines = ["\n\n".join(what_changed(ablation)), ""]
    lines += [
        "| | stage 1 | stage 2 | stage 3 | stage 4 |",
        "|---|---|---|---|---|",
        f"| cosine similarity of stage outputs | {cosines} |",
        "",
        f"- Top-1 agreement: {agreement}.",
        f"- KL divergence KL(as trained ‖ ablated): **{ablation.kl_divergence:.3f} nats** (0 means identical predictions).",
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


def what_changed(ablation: Ablation) -> list[str]:
    """One line per kind of change: identity swapped in, and pools resized (a what-if on weights trained with 3)."""
    lines = []
    if ablation.swapped_stages:
        stages = ", ".join(str(number) for number in ablation.swapped_stages)
        lines.append(
            f"Pooling replaced by identity in stage(s) **{stages}** of **{ablation.choice.name}**, same weights, no retraining."
        )
    resized = [(number, mixer) for number, mixer in enumerate(ablation.mixers, start=1) if mixer.startswith("pooling-")]
    if resized:
        sizes = ", ".join(f"stage {number}: **{pool_size(mixer)} × {pool_size(mixer)}**" for number, mixer in resized)
        lines.append(
            f"Pool window widened in {sizes} of **{ablation.choice.name}** — a *what-if*: these weights were trained "
            f"with {TRAINED_POOL_SIZE} × {TRAINED_POOL_SIZE} pooling, so no retraining backs these sizes "
            f"(the paper trained each size from scratch: {pool_size_line()})."
        )
    return lines


def pool_size(mixer: str) -> int:
    """The window of a pooling mixer name: "pooling" is the trained 3, "pooling-5" is 5."""
    return int(mixer.removeprefix("pooling").lstrip("-") or TRAINED_POOL_SIZE)


def pool_size_line() -> str:
    return ", ".join(f"{size} × {size} → {top1}" for size, top1 in paper.POOL_SIZE_TOP1.items())


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


def top1_value(choice: ModelChoice) -> float | None:
    """Official weights: the paper's ImageNet top-1 (%); bundled ones: what we measured on their own val split."""
    if not choice.bundled:
        return choice.variant.top1
    measured = choice.metadata.get("val_top1")
    return round(float(measured) * 100, 1) if measured else None


def top1_figure(choice: ModelChoice) -> str:
    value = top1_value(choice)
    return "—" if value is None else f"{value}"


PLOT_X, PLOT_Y, PLOT_COLOUR = "latency (ms)", "top-1 (%)", "model"
PLOT_TOOLTIP = ["params", "top-1 is", "this photo"]


def comparison_plot(rows: list[Comparison]) -> pd.DataFrame:
    """One point per model with a known top-1: accuracy against latency, for the native scatter plot.

    Gradio's ScatterPlot has no size channel, so the parameter count goes in the tooltip; the colour
    names the model and its benchmark, since ImageNet and Imagenette top-1 are not comparable.
    """
    records = []
    for row in rows:
        top1 = top1_value(row.choice)
        if top1 is None:
            continue
        name, probability = next(iter(row.top5.items()))
        records.append(
            {
                PLOT_COLOUR: row.choice.name if row.choice.bundled else f"{row.choice.name} · ImageNet-1k",
                PLOT_X: round(row.latency_ms, 1),
                PLOT_Y: top1,
                "params": f"{row.params_m:.1f} M",
                "top-1 is": "measured, Imagenette val" if row.choice.bundled else "the paper's, ImageNet-1k val",
                "this photo": f"{name} {percent(probability)}",
            }
        )
    return pd.DataFrame(records, columns=[PLOT_COLOUR, PLOT_X, PLOT_Y, *PLOT_TOOLTIP])


def latency_axis_end(points: pd.DataFrame) -> float:
    """Where the latency axis ends: a quarter past the slowest model, so no point sits on the frame."""
    slowest = float(points[PLOT_X].max()) if len(points) else 1.0
    return round(slowest * 1.25 + 1)


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


# --- the MetaFormer tab: the papers' ablations beside ours -----------------------------------------


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def paper_mixer_tables() -> str:
    """Table 5 of the MetaFormer paper: other mixers, other pool sizes, and MetaFormer parts taken away."""
    return "\n\n".join(
        [
            "**Swap the token mixer** (PoolFormer-S12, each trained from scratch)",
            markdown_table(["token mixer", "ImageNet top-1"], [[name, top1] for name, top1 in paper.TOKEN_MIXER_TOP1.items()]),
            "**Change the pool size** (each trained with that window)",
            markdown_table(["pool size", "ImageNet top-1"], [[f"{size} × {size}", top1] for size, top1 in paper.POOL_SIZE_TOP1.items()]),
            "**Take a part of the block away**",
            markdown_table(["network", "ImageNet top-1"], [[name, top1] for name, top1 in paper.COMPONENT_TOP1.items()]),
            f"Source: {paper.METAFORMER_PAPER} ([arXiv]({paper.METAFORMER_URL})).",
        ]
    )


def baselines_table() -> str:
    """MetaFormer Baselines: the plainest mixers at all five sizes."""
    header = ["model", *[size.upper() for size in paper.BASELINE_SIZES]]
    rows = [[name, *values] for name, values in paper.BASELINE_TOP1.items()]
    return "\n\n".join(
        [
            (
                "**At every size, even without a mixer** (ImageNet top-1; IdentityFormer: no mixing, "
                "RandFormer: a fixed random mixing matrix, PoolFormerV2: pooling)"
            ),
            markdown_table(header, rows),
            (
                f"Source: {paper.BASELINES_PAPER} ([arXiv]({paper.BASELINES_URL})); these use that paper's updated "
                "block and training recipe, which is why its pooling row sits a little above the original PoolFormers."
            ),
        ]
    )


def measured_table(runs: list[MeasuredRun]) -> str:
    """Our bundled pooling and identity models, trained the same way from scratch, and the gap between them.

    With several training seeds recorded, each mixer shows mean ± sd and the gap its 95 % interval.
    """
    if not runs:
        return "**Ours:** no bundled checkpoint records its validation accuracy."
    summary = next((run.seed_summary for run in runs if run.seed_summary), {})

    def accuracy(run: MeasuredRun) -> str:
        seeds = summary.get(run.token_mixer)
        if seeds and len(seeds["top1"]) > 1:
            return f"{seeds['mean'] * 100:.2f} ± {seeds['sd'] * 100:.2f} ({len(seeds['top1'])} seeds)"
        return f"{run.val_top1 * 100:.2f}"

    rows = [[run.name, run.token_mixer, accuracy(run)] for run in runs]
    text = [
        "**Ours, trained from scratch on Imagenette** (10 classes, same recipe, only the mixer differs)",
        markdown_table(["model", "token mixer", f"{runs[0].dataset} val top-1"], rows),
    ]
    by_mixer = {run.token_mixer: run.val_top1 for run in runs}
    theirs = paper.TOKEN_MIXER_TOP1["pooling"] - paper.TOKEN_MIXER_TOP1["identity"]
    if "gap" in summary:
        low, high = (value * 100 for value in summary["gap"]["ci95"])
        ours = f"**{summary['gap']['mean'] * 100:.2f} points** on average over seeds (95 % interval {low:+.2f} to {high:+.2f})"
    elif {"pooling", "identity"} <= by_mixer.keys():
        ours = f"**{(by_mixer['pooling'] - by_mixer['identity']) * 100:.2f} points** (one training run each)"
    else:
        return "\n\n".join(text)
    text.append(
        f"Pooling beats identity by {ours} here, against {theirs:.1f} on ImageNet-1k in the paper: the smaller "
        "gap suggests that on ten easy classes the MetaFormer frame does even more of the work."
    )
    return "\n\n".join(text)
