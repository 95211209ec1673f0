"""What the bundled checkpoints record about themselves, for the views that set our results beside the paper's:
val accuracy over seeds, each mixer's gap to pooling, and how alike its features are to pooling's (CKA)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from poolformer.cka import CKA_KEY
from poolformer.explorer.catalogue import ModelChoice, model_choices
from poolformer.mixers import MIXER_LAYOUTS
from poolformer.seeds import SUMMARY_KEY


@dataclass(frozen=True)
class MeasuredRun:
    """A bundled model's validation accuracy, as recorded in its checkpoint when it was finalised."""

    name: str
    token_mixer: str  # the zoo layout it was trained with: "pooling", "pool-attention", ...
    dataset: str
    val_top1: float  # fraction, this checkpoint's own
    seed_summary: dict  # per mixer mean ± sd over seeds and the gaps' 95 % intervals, when several seeds were trained

    @property
    def seeds(self) -> int:
        """How many training seeds of this mixer the summary records (1: just this checkpoint)."""
        return max(1, len(self.seed_summary.get(self.token_mixer, {}).get("top1", {})))

    @property
    def accuracy(self) -> tuple[float, float]:
        """Mean and sd of val top-1 over seeds (fractions); this checkpoint's own figure and NaN for one seed."""
        row = self.seed_summary.get(self.token_mixer)
        if self.seeds > 1 and row is not None:
            return row["mean"], row["sd"]
        return self.val_top1, math.nan

    @property
    def gap_to_pooling(self) -> tuple[float, float, float] | None:
        """This mixer's mean top-1 minus pooling's and its Welch 95 % interval (fractions), where recorded."""
        gap = self.seed_summary.get("vs_pooling", {}).get(self.token_mixer)
        if gap is not None:
            return gap["mean"], *gap["ci95"]
        if self.token_mixer == "identity" and "gap" in self.seed_summary:  # summaries from before `vs_pooling`
            gap = self.seed_summary["gap"]
            return -gap["mean"], -gap["ci95"][1], -gap["ci95"][0]
        return None


def measured_run(choice: ModelChoice) -> MeasuredRun:
    return MeasuredRun(
        name=choice.name,
        token_mixer=choice.token_mixer,
        dataset=choice.metadata.get("dataset", "its own"),
        val_top1=float(choice.metadata["val_top1"]),
        seed_summary=json.loads(choice.metadata.get(SUMMARY_KEY, "{}")),
    )


def measured_mixer_runs() -> list[MeasuredRun]:
    """Our mixer comparison: every bundled checkpoint that recorded its val accuracy, in the zoo's layout order."""
    order = {layout: index for index, layout in enumerate(MIXER_LAYOUTS)}
    measured = [choice for choice in model_choices() if choice.bundled and "val_top1" in choice.metadata]
    measured.sort(key=lambda choice: order.get(choice.token_mixer, len(order)))  # stable: pooling first as before
    return [measured_run(choice) for choice in measured]


@dataclass(frozen=True)
class FeatureSimilarity:
    """Linear CKA of each model's stage outputs with the pooling model's, as `train summarize` measured it."""

    reference: str  # "pooling seed 0"
    probe: str  # which images, preprocessed how
    images: int
    rows: str  # what one row of the feature matrices is
    stages: dict[str, list[float]]  # model ("identity", "pooling seed 1") → CKA at stages 1-4


def feature_similarity(choice: ModelChoice) -> FeatureSimilarity | None:
    """The CKA record a bundled checkpoint carries, or None if it was never measured."""
    if CKA_KEY not in choice.metadata:
        return None
    record = json.loads(choice.metadata[CKA_KEY])
    return FeatureSimilarity(record["reference"], record["probe"], record["images"], record["rows"], record["stages"])
