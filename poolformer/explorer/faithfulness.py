"""Are the Where-it-looks maps faithful on this photo? Deletion and insertion curves (poolformer/deletion.py).

The model as trained answers every picture; what differs between the curves is only the order in which the
stage-4 cells go: by its own map, at random, or by the map of the same weights with pooling switched off.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from poolformer.deletion import (
    FRACTION_STEPS,
    area_under_curve,
    cell_counts,
    cell_masks,
    curve_pictures,
    random_order,
    ranked_cells,
)
from poolformer.explorer.common import DEVICE, LoadReporter, PhotoSource, in_lanes
from poolformer.explorer.explanation import ExplainedClass, attribution_method, explained_photo
from poolformer.gradcam import ATTRIBUTION_NAMES, DEFAULT_ATTRIBUTION, last_stage_map_with_logits
from poolformer.model import PoolFormer

# Pictures per forward pass. Batching pays on a GPU; on the CPU one at a time took the same time (0.80 s a call
# against 0.83-0.87 s for 8) and peaked at 75 MB above the server instead of 275 MB.
BATCH = 8 if DEVICE.type == "cuda" else 1
RANDOM_CURVE = "random order"


@dataclass(frozen=True)
class Curve:
    """The target class's probability as one order of cells is greyed out (deletion) or revealed (insertion)."""

    name: str
    order: np.ndarray  # flat stage-4 cell indices, most important first
    deletion: np.ndarray  # P(target) at each fraction of cells greyed: the full photo first, the grey picture last
    insertion: np.ndarray  # P(target) at each fraction revealed on grey: the grey picture first, the full photo last
    deletion_auc: float  # lower is better: the probability falls as soon as the important cells go
    insertion_auc: float  # higher is better: it rises as soon as they come back


@dataclass(frozen=True)
class Faithfulness(ExplainedClass):
    grid: tuple[int, int]  # the stage-4 map's cells, e.g. (7, 7)
    fractions: np.ndarray  # of the cells greyed or revealed at each point, 0 to 1
    full_probability: float  # P(target) on the photo
    grey_probability: float  # P(target) on the all-grey picture
    curves: list[Curve]  # the map's own order, the random order, then the pooling-off map's order (pooling models)


def stage4_map(model: PoolFormer, pixels: torch.Tensor, target: int, method: str) -> torch.Tensor:
    return last_stage_map_with_logits(model, pixels, target, method)[1]


def target_probabilities(model: PoolFormer, pictures: torch.Tensor, target: int) -> torch.Tensor:
    with torch.inference_mode():
        return model(pictures).softmax(-1)[:, target].cpu()


def faithfulness(
    source: PhotoSource | None,
    value: str,
    target: str | None = None,
    method: str | None = DEFAULT_ATTRIBUTION,
    report: LoadReporter | None = None,
    steps: int = FRACTION_STEPS,
) -> Faithfulness:
    """Deletion and insertion curves of the model as trained, for the map's cell order and its baselines."""
    method = attribution_method(method)
    explained = explained_photo(source, value, target, report)
    model, pixels, index = explained.model, explained.pixels, explained.target
    name = ATTRIBUTION_NAMES[method]

    mapped = [(name, model)]
    if explained.choice.token_mixer == "pooling":
        mapped.append((f"{name}, pooling off", model.with_token_mixers("identity")))
    cams = in_lanes([partial(stage4_map, twin, pixels, index, method) for _, twin in mapped])
    grid = tuple(cams[0].shape)
    cells = cams[0].numel()
    orders = [(mapped[0][0], ranked_cells(cams[0])), (RANDOM_CURVE, random_order(cells))]
    orders += [(title, ranked_cells(cam)) for (title, _), cam in zip(mapped[1:], cams[1:])]

    # One batch of pictures for all curves: the grey picture (every curve's other end; the photo's own
    # probability is known already), then each order's deletion and insertion pictures in between.
    counts = cell_counts(cells, steps)
    inner = counts[1:-1]
    masks = cell_masks(grid, tuple(pixels.shape[-2:]))
    pictures = [torch.zeros_like(pixels)]
    for _, order in orders:
        pictures += [
            curve_pictures(pixels, order, inner, masks, insertion=False),
            curve_pictures(pixels, order, inner, masks, insertion=True),
        ]
    batch = torch.cat(pictures)
    chunks = in_lanes([partial(target_probabilities, model, chunk, index) for chunk in batch.split(BATCH)])
    probabilities = torch.cat(chunks)
    full, grey = explained.probabilities[index].cpu(), probabilities[0]
    inner_curves = probabilities[1:].view(len(orders), 2, len(inner))

    fractions = counts.double() / cells
    curves = []
    for (title, order), (deletion, insertion) in zip(orders, inner_curves):
        deletion = torch.cat([full[None], deletion, grey[None]])
        insertion = torch.cat([grey[None], insertion, full[None]])
        curves.append(
            Curve(
                name=title,
                order=order.numpy(),
                deletion=deletion.numpy(),
                insertion=insertion.numpy(),
                deletion_auc=area_under_curve(fractions, deletion),
                insertion_auc=area_under_curve(fractions, insertion),
            )
        )
    return Faithfulness(
        **explained.described(method),
        grid=grid,
        fractions=fractions.numpy(),
        full_probability=float(full),
        grey_probability=float(grey),
        curves=curves,
    )
