"""Deletion and insertion curves: does the map rank the photo's cells by what the model needs?

Petsiuk et al., "RISE: Randomized Input Sampling for Explanation of Black-box Models" (BMVC 2018,
arXiv 1806.07421): grey out the cells from most to least important (deletion) and the class's probability
should fall fast, so the area under the curve is small; reveal them in the same order on a grey picture
(insertion) and it should rise fast, so the area is large. A random order is the baseline both must beat.

Here a cell is one cell of the stage-4 map (32 × 32 pixels at 224 px) and grey is the ImageNet mean colour,
which the model's normalisation maps to zero: a greyed pixel carries no signal into the first convolution.
This module builds the pictures and the areas; running the model over them is the caller's.
"""

from __future__ import annotations

import torch

FRACTION_STEPS = 7  # points per curve besides the start: 0, 1/7, ..., 1 of the cells (7 at a time of a 7 x 7 map)
RANDOM_ORDER_SEED = 0


def random_order(cells: int, seed: int = RANDOM_ORDER_SEED) -> torch.Tensor:
    """A fixed random order of `cells` cells: the same photo gets the same baseline every time."""
    return torch.randperm(cells, generator=torch.Generator().manual_seed(seed))


def ranked_cells(cam: torch.Tensor, seed: int = RANDOM_ORDER_SEED) -> torch.Tensor:
    """The map's cells from most to least important, as flat indices; ties (the ReLU's zeros) in random order.

    Breaking ties by position would delete the top rows first wherever the map is flat, a bias of its own.
    """
    shuffled = random_order(cam.numel(), seed)
    values = cam.detach().flatten().cpu()[shuffled]
    return shuffled[values.argsort(descending=True, stable=True)]  # stable: ties keep their shuffled order


def cell_counts(cells: int, steps: int = FRACTION_STEPS) -> torch.Tensor:
    """How many cells are greyed (or revealed) at each point of a curve: 0 up to all, in `steps` even steps."""
    return torch.linspace(0, cells, steps + 1).round().long().unique_consecutive()


def cell_masks(grid: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
    """(cells, H, W): one boolean picture-sized mask per map cell, cell (r, c) covering rows r*H/h.. and
    columns c*W/w.. of the picture (whole 32-pixel blocks for a 7 x 7 map on 224 px)."""
    rows, columns = grid
    height, width = size
    row_of = torch.arange(height) * rows // height  # which map row each picture row lies in
    column_of = torch.arange(width) * columns // width
    cell_of = row_of[:, None] * columns + column_of[None, :]  # (H, W): the flat index of each pixel's cell
    return cell_of[None] == torch.arange(rows * columns)[:, None, None]


def kept_pixels(order: torch.Tensor, counts: torch.Tensor, masks: torch.Tensor, insertion: bool) -> torch.Tensor:
    """(len(counts), 1, H, W) float masks of the pixels a curve's pictures keep.

    Deletion at count k keeps every cell but the first k of `order`; insertion keeps only the first k.
    """
    ranks = torch.empty_like(order)
    ranks[order] = torch.arange(order.numel())  # each cell's place in the order
    first_k = ranks[None, :] < counts[:, None]  # (points, cells): is the cell among the first k?
    kept_cells = first_k if insertion else ~first_k
    return (kept_cells.float() @ masks.flatten(1).float()).view(len(counts), 1, *masks.shape[1:])


def curve_pictures(
    pixels: torch.Tensor, order: torch.Tensor, counts: torch.Tensor, masks: torch.Tensor, insertion: bool
) -> torch.Tensor:
    """The model inputs along one curve: (len(counts), 3, H, W), grey (zero) where a cell is not kept."""
    return pixels * kept_pixels(order, counts, masks, insertion).to(pixels.device, pixels.dtype)


def area_under_curve(fractions: torch.Tensor, values: torch.Tensor) -> float:
    """Trapezoidal area under values(fraction) for fractions from 0 to 1: the curve's mean height."""
    return float(torch.trapezoid(values.double(), fractions.double()))
