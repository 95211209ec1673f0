"""The sanity check of the Where-it-looks maps: do they fall apart when the model's weights are randomised?

Cascading randomisation (Adebayo et al., NeurIPS 2018; poolformer/randomisation.py) on twins of the shared
model, from the head down to the stem, with each stage map's Spearman rank correlation to the as-trained map.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from poolformer.explorer.common import LoadReporter, PhotoSource, in_lanes
from poolformer.explorer.explanation import ExplainedClass, attribution_method, explained_photo, model_maps
from poolformer.gradcam import DEFAULT_ATTRIBUTION
from poolformer.randomisation import RANDOM_SEED, cascade, rank_correlation


@dataclass(frozen=True)
class RandomisedMaps:
    """The stage maps after one step of the cascade, and how much of the as-trained ordering they keep."""

    randomised: tuple[str, ...]  # CASCADE parts re-initialised so far; () for the model as trained
    target_probability: float
    maps: list[np.ndarray]  # stages 1-4, (H, W) each, non-negative
    rank_correlation: list[float]  # per stage: Spearman with the as-trained map (1 for the model as trained)


@dataclass(frozen=True)
class SanityCheck(ExplainedClass):
    steps: list[RandomisedMaps]  # the model as trained first, then one per CASCADE part, head first
    seed: int  # of the random weights: the same photo gets the same check every time


def sanity_check(
    source: PhotoSource | None,
    value: str,
    target: str | None = None,
    method: str | None = DEFAULT_ATTRIBUTION,
    report: LoadReporter | None = None,
) -> SanityCheck:
    """The stage maps of the model as trained and after randomising its weights from the head down."""
    method = attribution_method(method)
    explained = explained_photo(source, value, target, report)
    steps = [((), explained.model), *cascade(explained.model, RANDOM_SEED)]
    runs = in_lanes(
        [partial(model_maps, model, explained.pixels, explained.target, None, method) for _, model in steps]
    )
    trained_maps = [torch.from_numpy(cam) for cam in runs[0].maps]
    return SanityCheck(
        **explained.described(method),
        steps=[
            RandomisedMaps(
                randomised=parts,
                target_probability=run.target_probability,
                maps=run.maps,
                rank_correlation=[
                    rank_correlation(torch.from_numpy(cam), trained) for cam, trained in zip(run.maps, trained_maps)
                ],
            )
            for (parts, _), run in zip(steps, runs)
        ],
        seed=RANDOM_SEED,
    )
