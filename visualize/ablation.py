"""The token-mixer ablation: its chart and what the numbers say, with the paper's result as a yardstick."""

from __future__ import annotations

import math
from collections.abc import Sequence

from PIL import Image

from poolformer.explorer import PAPER_S12_TOP1, TRAINED_POOL_SIZE, Ablation, MeasuredRun, paper, pool_size
from visualize.charts import ablation_chart
from visualize.metaformer import accuracy_text


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
    if ablation.scratch is not None and ablation.zoo:
        lines += ["", scratch_comparison(ablation.zoo)]
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


def scratch_comparison(runs: Sequence[MeasuredRun]) -> str:
    """Every bundled model trained from scratch with its own mixer (the zoo, pooling first): val accuracy over
    seeds and each one's gap to pooling, so the third bar's identity model is seen among all of them."""
    if not runs:
        return ""
    dataset = runs[0].dataset
    parts = []
    for run in runs:
        part = f"{run.name} **{accuracy_text(run)}**"
        gap = run.gap_to_pooling
        if gap is not None:
            mean, low, high = (value * 100 for value in gap)
            if math.isnan(low):  # one seed: no spread to build an interval from
                part += f", {mean:+.2f} points against pooling (one seed, no interval yet)"
            else:
                part += f", {mean:+.2f} points against pooling (95 % interval {low:+.2f} to {high:+.2f}"
                part += ", too few seeds yet to rule out no gap at all)" if low <= 0 <= high else ")"
        parts.append(part)
    return (
        f"**Trained from scratch with each mixer** (the third bar is the identity one), {dataset} val top-1 in %, "
        "mean ± sd over training seeds: " + "; ".join(parts) + "."
    )
