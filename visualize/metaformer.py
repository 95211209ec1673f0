"""The tables of the MetaFormer and About tabs: the papers' ablations and variants beside our own measurement."""

from __future__ import annotations

import math

from poolformer.explorer import MeasuredRun, paper
from poolformer.model import VARIANTS
from visualize.text import markdown_table


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


def accuracy_text(run: MeasuredRun | None) -> str:
    """Val top-1 in %: '91.05 ± 0.24 (4 seeds)' over seeds, else the one run's '91.03 (1 seed)'."""
    if run is None:
        return "not recorded"
    mean, sd = run.accuracy
    return f"{mean * 100:.2f} (1 seed)" if math.isnan(sd) else f"{mean * 100:.2f} ± {sd * 100:.2f} ({run.seeds} seeds)"


def gap_text(run: MeasuredRun | None) -> str:
    """Mean top-1 minus pooling's, in points, with its Welch 95 % interval; '—' for pooling or a single seed."""
    gap = None if run is None else run.gap_to_pooling
    if gap is None:
        return "—"
    mean, low, high = (value * 100 for value in gap)
    return f"{mean:+.2f} (one seed: no interval yet)" if math.isnan(low) else f"{mean:+.2f} [{low:+.2f}, {high:+.2f}]"


def paper_text(layout: str) -> str:
    """The paper's Table 5 top-1 (%) for a zoo layout (the paper tables beside it name the rows)."""
    row = paper.table_5_row(layout)
    return "not in Table 5" if row is None else f"{row[1]}"


def short_name(name: str) -> str:
    """'PoolFormer-S12 · Imagenette (bundled)' → 'PoolFormer-S12', for tables that say where the models were trained."""
    return name.split(" · ")[0]


def measured_table(runs: list[MeasuredRun]) -> str:
    """Our bundled models, trained the same way from scratch with each mixer, beside the paper's Table 5 row.

    With several training seeds recorded, each mixer shows mean ± sd and its gap to pooling a 95 % interval.
    """
    if not runs:
        return "**Ours:** no bundled checkpoint records its validation accuracy."
    summary = next((run.seed_summary for run in runs if run.seed_summary), {})
    header = ["model", "val top-1 (%)", "vs pooling, points [95 %]", "paper, ImageNet-1k (%)"]
    rows = [[short_name(run.name), accuracy_text(run), gap_text(run), paper_text(run.token_mixer)] for run in runs]
    text = [
        f"**Ours, trained from scratch on Imagenette** ({runs[0].dataset}: 10 classes, same recipe, only the mixer "
        "differs; val top-1 as mean ± sd over training seeds, and each mixer's gap to pooling with its 95 % interval)",
        markdown_table(header, rows),
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
