"""The Predict tab's stage pictures: activation energy, most active channels and what pooling adds, per stage.

Also the colour scales they can share and where a click on one lands (the token the visitor picked).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from poolformer.explorer import ExplorerError, StageView, shown
from visualize.maps import (
    GRID_SIZE,
    PHOTO_SIZE,
    TITLE_HEIGHT,
    ValueRange,
    channel_grid,
    outline_cell,
    overlay,
    panel_lefts,
    shared_range,
    titled_row,
)
from visualize.text import MIXER_OUTPUTS

ENERGY_COLORMAP = "inferno"
MIXER_COLORMAP = "viridis"
MIXER_TITLES = {  # the stage picture's third panel: what the first block's token mixer outputs
    "pooling": f"pooling adds {MIXER_OUTPUTS['pooling']}",
    "identity": f"identity mixer {MIXER_OUTPUTS['identity']}",
    "depthwise": f"depthwise adds {MIXER_OUTPUTS['depthwise']}",
    "random": f"random matrix adds {MIXER_OUTPUTS['random']}",
    "attention": f"attention adds {MIXER_OUTPUTS['attention']}",
}


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


def check_colour_scale(colour_scale: object) -> None:
    """Refuse an unknown colour scale (from the API) in one line, before any model runs for it."""
    if not isinstance(colour_scale, str) or colour_scale not in COLOUR_SCALES:
        raise ExplorerError(f"unknown colour scale {shown(colour_scale)}; choose one of: {', '.join(COLOUR_SCALES)}")


def stage_ranges(stages: Sequence[StageView], colour_scale: str = DEFAULT_COLOUR_SCALE) -> list[StageRanges]:
    """Per stage, the ranges that `colour_scale` ("map", "stage" or "global") colours its panels over."""
    check_colour_scale(colour_scale)
    if colour_scale == "map":
        return [StageRanges() for _ in stages]
    if colour_scale == "stage":
        return [StageRanges(channels=shared_range(channel_maps(stage))) for stage in stages]
    shared = StageRanges(  # "global"
        energy=shared_range([stage.energy for stage in stages]),
        channels=shared_range([channel for stage in stages for channel in channel_maps(stage)]),
        pooling=shared_range([stage.mixer_change for stage in stages]),
    )
    return [shared for _ in stages]


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
