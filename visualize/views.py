"""Turn the explorer's results into what the app shows: pictures, captions, tables.

Each function takes one result from `poolformer.explorer` and returns images (PIL) and Markdown
strings; `app.py` only places them in components.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pandas as pd
from PIL import Image

from poolformer.explorer import (
    PAPER_S12_TOP1,
    TRAINED_POOL_SIZE,
    Ablation,
    Comparison,
    Explanation,
    ExplorerError,
    MeasuredRun,
    MixerFilter,
    ModelChoice,
    ModelMaps,
    StageView,
    Token,
    paper,
    pool_size,
)
from poolformer.mixer_filter import border_kernels
from poolformer.model import VARIANTS
from visualize.charts import ablation_chart
from visualize.maps import (
    GRID_SIZE,
    PHOTO_SIZE,
    TITLE_HEIGHT,
    ValueRange,
    bar_list,
    channel_grid,
    neighbourhood_grid,
    outline_cell,
    overlay,
    panel_lefts,
    shared_range,
    signed_picture,
    titled_column,
    titled_row,
)

ENERGY_COLORMAP = "inferno"
MIXER_COLORMAP = "viridis"
CAM_COLORMAP = "plasma"  # not the energy maps' inferno: this is evidence for one class, not activation
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


# Colour scales for the stage maps, after CNN Explainer's local / module / global scales.
COLOUR_SCALES = {"map": "each map", "stage": "per stage", "global": "global"}
DEFAULT_COLOUR_SCALE = "map"  # what the stage maps always used: each stretched to its own range
COLOUR_SCALE_NOTE = (
    "*Each map*: every map and channel tile stretched to its own range (best for shapes); "
    "*per stage*: a stage's eight channel tiles share one range; *global*: each kind of map shares one range "
    "across all four stages, so a brighter stage really responds more."
)


@dataclass(frozen=True)
class StageRanges:
    """The value ranges a stage's panels are coloured over; None = the map's own range."""

    energy: ValueRange | None = None
    channels: ValueRange | None = None
    pooling: ValueRange | None = None


def channel_maps(stage: StageView) -> list[np.ndarray]:
    return [channel for _, channel in stage.top_channels]


def stage_ranges(stages: Sequence[StageView], colour_scale: str = DEFAULT_COLOUR_SCALE) -> list[StageRanges]:
    """Per stage, the ranges that `colour_scale` ("map", "stage" or "global") colours its panels over."""
    if colour_scale == "map":
        return [StageRanges() for _ in stages]
    if colour_scale == "stage":
        return [StageRanges(channels=shared_range(channel_maps(stage))) for stage in stages]
    if colour_scale == "global":
        shared = StageRanges(
            energy=shared_range([stage.energy for stage in stages]),
            channels=shared_range([channel for stage in stages for channel in channel_maps(stage)]),
            pooling=shared_range([stage.mixer_change for stage in stages]),
        )
        return [shared for _ in stages]
    raise ExplorerError(f"unknown colour scale {colour_scale!r}; choose one of: {', '.join(COLOUR_SCALES)}")


# The stage picture's panels, left to right; the first and last are maps of the stage's tokens over the photo.
STAGE_PANEL_WIDTHS = (PHOTO_SIZE, GRID_SIZE[0], PHOTO_SIZE)
TOKEN_MAP_PANELS = (0, 2)


def stage_picture(
    photo: Image.Image, stage: StageView, ranges: StageRanges = StageRanges(), marked: tuple[int, int] | None = None
) -> Image.Image:
    """Energy over the photo, the most active channels, and where pooling changes the tokens.

    `marked` (row, column) outlines one token on both maps: the one a visitor clicked.
    """
    height, width = stage.energy.shape
    energy_map = overlay(photo, stage.energy, ENERGY_COLORMAP, value_range=ranges.energy)
    pooling_map = overlay(photo, stage.mixer_change, MIXER_COLORMAP, opacity=0.75, value_range=ranges.pooling)
    if marked is not None:
        energy_map = outline_cell(energy_map, marked, (height, width))
        pooling_map = outline_cell(pooling_map, marked, (height, width))
    return titled_row(
        [
            (f"activation energy ({height} × {width})", energy_map),
            (
                f"{len(stage.top_channels)} most active channels",
                channel_grid(channel_maps(stage), value_range=ranges.channels),
            ),
            (MIXER_TITLES[stage.token_mixer], pooling_map),
        ]
    )


def stage_pictures(
    photo: Image.Image, stages: Sequence[StageView], colour_scale: str = DEFAULT_COLOUR_SCALE
) -> list[Image.Image]:
    """Every stage's picture, coloured on `colour_scale`."""
    return [stage_picture(photo, stage, ranges) for stage, ranges in zip(stages, stage_ranges(stages, colour_scale))]


def stage_cell_at(x: float, y: float, grid: tuple[int, int]) -> tuple[int, int] | None:
    """The (row, column) of the token under a click at pixel (x, y) of a stage picture, or None off the maps.

    Both the activation-energy panel and the pooling panel show the stage's tokens over the photo,
    so a click on either picks the same token; the channel tiles in between are not one map.
    """
    height, width = grid
    inside_y = y - TITLE_HEIGHT
    if not 0 <= inside_y < PHOTO_SIZE:
        return None
    lefts = panel_lefts(STAGE_PANEL_WIDTHS)
    for panel in TOKEN_MAP_PANELS:
        inside_x = x - lefts[panel]
        if 0 <= inside_x < PHOTO_SIZE:
            return int(inside_y * height // PHOTO_SIZE), int(inside_x * width // PHOTO_SIZE)
    return None


# --- What pooling does ----------------------------------------------------------------------------

KERNEL_COLORMAP = "RdBu"  # red below zero, blue above: the centre's negative weight stands out
BORDER_TITLES = {"interior": "inside the map", "edge": "on an edge (top)", "corner": "in a corner (top left)"}
FILTER_FULL_SCALE_PERCENTILE = 99.5  # of |pool(x) − x|: this many percent of values fit without clipping


def fraction(weight: float) -> str:
    """A kernel weight as a short fraction: 1/9, −8/9."""
    return str(Fraction(weight).limit_denominator(64)).replace("-", "−")


def kernel_picture() -> Image.Image:
    """The filter's three kernels (interior, edge, corner) as coloured 3 × 3 grids with their weights written in."""
    panels = []
    for case, kernel in border_kernels().items():
        off_map = kernel == 0
        values = np.where(off_map, np.nan, kernel)
        captions = [["off map" if off_map[r, c] else fraction(kernel[r, c]) for c in range(3)] for r in range(3)]
        count = int((~off_map).sum())
        grid = neighbourhood_grid(values, captions, KERNEL_COLORMAP, (-1.0, 1.0))
        panels.append((f"{BORDER_TITLES[case]}: n = {count}", grid))
    return titled_row(panels)


def kernel_note() -> str:
    """The kernels in words, with the weights computed from the code that draws them."""
    parts = []
    for case, kernel in border_kernels().items():
        count = int((kernel != 0).sum())
        parts.append(
            f"{BORDER_TITLES[case]} the window covers **{count}** tokens, each weighs **{fraction(1 / count)}**, "
            f"and the token itself {fraction(1 / count)} − 1 = **{fraction(kernel[1, 1])}**"
        )
    return (
        "With `count_include_pad=False` the average runs over the tokens that exist, so the weights change at the "
        "border: " + "; ".join(parts) + ". Every kernel sums to **0**: a flat patch gives 0 and only differences "
        "pass — a high-pass filter, a close cousin of the (negative) Laplacian."
    )


def filter_full_scale(filtered: np.ndarray) -> float:
    return float(np.percentile(np.abs(filtered), FILTER_FULL_SCALE_PERCENTILE))


def filter_pictures(result: MixerFilter) -> tuple[Image.Image, Image.Image]:
    """The crop the model saw and the same crop through pool(x) − x (mid-grey = 0), for an image slider."""
    return result.photo, signed_picture(result.filtered, filter_full_scale(result.filtered))


def stage1_pooling_picture(result: MixerFilter) -> Image.Image:
    """The model's stage-1 'what pooling adds' map as in the Predict tab, at twice the size to match the slider."""
    photo = result.photo.resize((2 * PHOTO_SIZE, 2 * PHOTO_SIZE), Image.Resampling.BICUBIC)
    return overlay(photo, result.stage1_change, MIXER_COLORMAP, opacity=0.75)


def filter_caption(result: MixerFilter) -> str:
    full_scale = filter_full_scale(result.filtered)
    height, width = result.stage1_change.shape
    channels = result.choice.variant.widths[0]
    lines = [
        f"**Slider:** left the {PHOTO_SIZE} × {PHOTO_SIZE} crop {result.choice.name} saw, right the same pixels "
        f"through `pool(x) − x`, each colour channel on its own. Mid-grey is 0; white and black are ±{full_scale:.3f} "
        f"(pixel values run 0–1), so a bright or dark fringe marks an edge.",
        f"**Beside it:** the model's stage-1 map ({height} × {width} tokens): ‖pool(x) − x‖ over {channels} "
        "channels of the first block's normalised input — the same filter, on learnt features instead of colours.",
    ]
    if result.token_mixer != "pooling":
        lines.append(f"{result.choice.name} mixes tokens by identity, so its map shows ‖norm(x)‖: no pooling there.")
    return "\n\n".join(lines)


def token_picture(token: Token) -> Image.Image:
    """The token's 3 × 3 neighbourhood (energy and weight per cell) beside bars for x, mean and mean − x."""
    def caption(row: int, column: int) -> str:
        energy = token.energies[row, column]
        return "off map" if np.isnan(energy) else f"{energy:.2f}\n×{fraction(token.weights[row, column])}"

    captions = [[caption(row, column) for column in range(3)] for row in range(3)]
    grid = neighbourhood_grid(token.energies, captions, MIXER_COLORMAP)
    bars = bar_list(
        [
            ("‖token x‖", token.centre_norm),
            ("‖mean of 3 × 3‖", token.mean_norm),
            ("‖mean − x‖", token.change_norm),
        ]
    )
    title = f"stage {token.stage}, token ({token.row}, {token.column})"
    return titled_row([(title, grid), ("norms after norm1", bars)])


def token_summary(token: Token) -> str:
    """The inspected token in numbers: its window, the three norms, how alike it and its neighbours are."""
    height, width = token.grid
    count = int((token.weights != 0).sum())
    verb = "passes on" if token.token_mixer == "pooling" else "would pass on (this model's mixer is identity)"
    return (
        f"**Stage {token.stage}, token row {token.row}, column {token.column}** of {height} × {width}. Its window "
        f"covers {count} tokens, each weighing {fraction(1 / count)}; the token itself "
        f"{fraction(token.weights[1, 1])}. "
        f"After `norm1`: ‖x‖ = {token.centre_norm:.3f}, ‖pool(x)‖ = {token.mean_norm:.3f}, and "
        f"**‖pool(x) − x‖ = {token.change_norm:.3f}**, what pooling {verb}.\n\n"
        f"Cosine of x and its neighbourhood mean: **{token.cosine:.3f}** (near 1: the neighbours look like the token, "
        "so pooling changes little). Through the layer scale, this model's token mixer adds a vector of norm "
        f"**{token.update_norm:.3f}** to the token's {token.residual_norm:.3f}."
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
        if low <= 0:
            text += ", too few seeds yet to rule out no gap at all"
    return text + "."


# How to read each stage's Grad-CAM map; the stages see ever larger regions, ever further from pixels.
CAM_READING = {
    1: "Edges and colours. This far from the classifier the gradient is noisy: read it as speckle, not an outline.",
    2: "Textures and small parts; still noisy, but it starts to gather on the object.",
    3: "Object parts: usually the first stage whose bright cells sit on the object.",
    4: "What the classifier reads directly (a mean over these cells); the only stage the authors' script draws.",
}
CAM_TILE = 168  # comparison tiles: a multiple of 56, so every stage's cells stay whole squares


def cam_caption(number: int, cam: np.ndarray, target_name: str) -> str:
    """Stage, map size and cell size, and what its bright cells mean for the explained class."""
    height, width = cam.shape
    cell = PHOTO_SIZE // height
    return (
        f"**Stage {number}** · {height} × {width} cells of {cell} × {cell} px. Bright = the features here raise "
        f"the score of **{target_name}**. {CAM_READING[number]}"
    )


def cam_picture(photo: Image.Image, cam: np.ndarray) -> Image.Image:
    return overlay(photo, cam, CAM_COLORMAP)


def explained_runs(explanation: Explanation) -> list[tuple[str, ModelMaps]]:
    """(row title, maps) for the model as trained, then with identity swapped in, then from scratch."""
    swapped = ", ".join(str(number) for number in explanation.swapped_stages)
    runs = [(f"{explanation.choice.name}, as trained", explanation.trained)]
    if explanation.ablated is not None:
        runs.append((f"identity swapped into stage(s) {swapped}, same weights", explanation.ablated))
    if explanation.scratch is not None and explanation.scratch_choice is not None:
        runs.append((f"{explanation.scratch_choice.name}, trained from scratch", explanation.scratch))
    return runs


def cam_comparison_picture(explanation: Explanation) -> Image.Image | None:
    """One row of four stage maps per model; None when there is nothing to compare with."""
    runs = explained_runs(explanation)
    if len(runs) == 1:
        return None
    photo = explanation.photo.resize((CAM_TILE, CAM_TILE), Image.Resampling.BICUBIC)
    target = explanation.target_name
    rows = []
    for title, run in runs:
        panels = [(f"stage {number}", overlay(photo, cam, CAM_COLORMAP)) for number, cam in enumerate(run.maps, 1)]
        rows.append((f"{title} · P({target}) = {percent(run.target_probability)}", titled_row(panels)))
    return titled_column(rows)


def cam_comparison_summary(explanation: Explanation) -> str:
    """Each model's probability for the class, and how alike its maps are to the as-trained ones."""
    runs = explained_runs(explanation)
    if len(runs) == 1:
        return f"{explanation.choice.name} already mixes tokens by identity: pick a pooling model to see its maps change."
    lines = [
        (
            f"Grad-CAM for **{explanation.target_name}** in every model, each map on its own colour scale. "
            f"**P** is the model's probability for **{explanation.target_name}**; each stage column is the cosine "
            "similarity between the model's map and the as-trained model's map (1 = the same places in the same "
            "proportions, 0 = no overlap)."
        ),
        "",
        "| model | P | stage 1 | stage 2 | stage 3 | stage 4 |",
        "|---|---|---|---|---|---|",
    ]
    for title, run in runs:
        similarity = " | ".join(f"{value:.2f}" for value in run.similarity)
        lines.append(f"| {title} | {percent(run.target_probability)} | {similarity} |")
    return "\n".join(lines)


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
    unsettled = "gap" in summary and summary["gap"]["ci95"][0] <= 0  # the 95 % interval reaches zero
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
        + (" The interval still includes no gap at all: more seeds are needed to call it." if unsettled else "")
    )
    return "\n\n".join(text)
