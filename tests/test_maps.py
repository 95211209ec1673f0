"""The stage pictures' fast drawing is the plain drawing to the pixel, and the energy map is the L2 norm torch gives."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from poolformer.explorer.common import energy
from visualize.maps import (
    GRID_GAP,
    GRID_TILE,
    channel_grid,
    colormap_table,
    normalise,
    normalise_stack,
    shared_range,
)

STAGE_GRIDS = (56, 28, 14, 7)  # a 224 px photo's stage maps


def stage_channels(side: int, seed: int, dtype: type = np.float32) -> list[np.ndarray]:
    """Eight maps of one stage's shape on very different scales, as trained channels are, one of them flat."""
    rng = np.random.default_rng(seed)
    maps = [np.abs(rng.standard_normal((side, side))) * rng.uniform(0.01, 300) for _ in range(8)]
    maps[3][:] = 2.5  # a dead channel: its range is empty
    return [values.astype(dtype) for values in maps]


@pytest.mark.parametrize("side", STAGE_GRIDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_stack_normalises_to_the_bit_as_each_map_alone(side: int, dtype: type) -> None:
    for seed in range(5):
        maps = stage_channels(side, seed, dtype)
        for value_range in (None, shared_range(maps), (1.0, 1.0)):
            stacked = normalise_stack(np.stack(maps), value_range)
            for values, shades in zip(maps, stacked):
                assert np.array_equal(shades, normalise(values, value_range))


def plainly_drawn_tile(values: np.ndarray, value_range: tuple[float, float] | None) -> np.ndarray:
    """One channel tile as a colour lookup of the small map and PIL's NEAREST resize, each on its own."""
    indices = (normalise(values, value_range) * 255).round().astype(np.uint8)
    small = Image.fromarray(colormap_table("viridis")[indices])
    return np.asarray(small.resize((GRID_TILE, GRID_TILE), Image.Resampling.NEAREST))


@pytest.mark.parametrize("side", STAGE_GRIDS)
def test_the_channel_grid_holds_each_channel_drawn_alone(side: int) -> None:
    maps = stage_channels(side, seed=side)
    for value_range in (None, shared_range(maps)):
        grid = np.asarray(channel_grid(maps, value_range=value_range))
        for index, values in enumerate(maps):
            row, column = divmod(index, 4)
            top, left = row * (GRID_TILE + GRID_GAP), column * (GRID_TILE + GRID_GAP)
            tile = grid[top : top + GRID_TILE, left : left + GRID_TILE]
            assert np.array_equal(tile, plainly_drawn_tile(values, value_range))


def test_a_grid_of_fewer_channels_leaves_the_other_tiles_blank() -> None:
    grid = np.asarray(channel_grid(stage_channels(7, seed=1)[:3]))
    assert (grid[:GRID_TILE, 3 * (GRID_TILE + GRID_GAP) :] == 255).all()  # the fourth tile of the first row
    assert (grid[GRID_TILE + GRID_GAP :] == 255).all()  # the whole second row
    assert not (grid[:GRID_TILE, :GRID_TILE] == 255).all()


@pytest.mark.parametrize(("channels", "side"), [(64, 56), (128, 28), (320, 14), (512, 7)])
def test_energy_is_the_l2_norm_over_channels(channels: int, side: int) -> None:
    features = torch.randn(1, channels, side, side, generator=torch.Generator().manual_seed(side)) * 40
    expected = torch.linalg.vector_norm(features[0].double(), dim=0).numpy()
    assert np.allclose(energy(features), expected, rtol=1e-6, atol=0)
