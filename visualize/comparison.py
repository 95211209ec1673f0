"""Compare variants: the table, the accuracy-against-latency points, and each model's stage-4 map."""

from __future__ import annotations

import pandas as pd
from PIL import Image

from poolformer.explorer import Comparison, ModelChoice
from visualize.maps import overlay
from visualize.stages import ENERGY_COLORMAP
from visualize.text import percent

COMPARISON_COLUMNS = ["model", "weights", "params (M)", "GMACs", "top-1 (%)", "latency (ms)", "run by", "top-5"]
COMPARISON_COLUMN_WIDTHS = ["17%", "13%", "7%", "7%", "7%", "9%", "10%", "30%"]


def comparison_row(row: Comparison) -> list[str | float]:
    top5 = " · ".join(f"{name} {percent(probability)}" for name, probability in row.top5.items())
    return [row.choice.name, weights_text(row.choice), round(row.params_m, 1), row.gmacs, top1_figure(row.choice),
            round(row.latency_ms, 1), row.engine, top5]  # fmt: skip


def weights_text(choice: ModelChoice) -> str:
    """Where the weights come from and what they were trained on."""
    if choice.official:
        return "ImageNet-1k (HF cache)"
    if choice.bundled:
        return "bundled, Imagenette"
    return f"{choice.num_classes} classes, " + ("Hub (HF cache)" if choice.repo else "local file")


def top1_value(choice: ModelChoice) -> float | None:
    """Official weights: the paper's ImageNet top-1 (%); bundled ones: what we measured on their own val split;
    a fine-tune made by `train finetune`: its held-out accuracy; None when nothing was measured."""
    if choice.official:
        return choice.variant.top1
    measured = choice.metadata.get("val_top1" if choice.bundled else "heldout_top1")
    return round(float(measured) * 100, 1) if measured else None


def benchmark(choice: ModelChoice) -> str:
    """What a top-1 figure was measured on, since ImageNet, Imagenette and a fine-tune's photos are not comparable."""
    if choice.official:
        return "the paper's, ImageNet-1k val"
    return "measured, Imagenette val" if choice.bundled else "measured, its own held-out photos"


def top1_figure(choice: ModelChoice) -> str:
    value = top1_value(choice)
    return "—" if value is None else f"{value}"


PLOT_X, PLOT_Y, PLOT_COLOUR = "latency (ms)", "top-1 (%)", "top-1 on"
PLOT_TOOLTIP = ["model", "params", "top-1 is", "run by", "this photo"]


def plot_benchmark(choice: ModelChoice) -> str:
    """`benchmark` in a legend's few words: a legend entry per model (ten with a full HF cache) left a phone's
    plot no width at all."""
    if choice.official:
        return "ImageNet-1k (paper)"
    return "Imagenette (ours)" if choice.bundled else "own photos"


def comparison_plot(rows: list[Comparison]) -> pd.DataFrame:
    """One point per model with a known top-1: accuracy against latency, for the native scatter plot.

    Gradio's ScatterPlot has no size channel, so the model and its parameter count go in the tooltip; the
    colour says what its top-1 was measured on, since ImageNet and Imagenette top-1 are not comparable.
    """
    records = []
    for row in rows:
        top1 = top1_value(row.choice)
        if top1 is None:
            continue
        name, probability = next(iter(row.top5.items()))
        records.append(
            {
                PLOT_COLOUR: plot_benchmark(row.choice),
                PLOT_X: round(row.latency_ms, 1),
                PLOT_Y: top1,
                "model": row.choice.name,
                "run by": row.engine,
                "params": f"{row.params_m:.1f} M",
                "top-1 is": benchmark(row.choice),
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
