"""The tables of the MetaFormer and About tabs: the papers' ablations and variants beside our own measurement."""

from __future__ import annotations

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
