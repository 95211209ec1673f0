"""Feature maps as pictures: heatmaps over the photo, grids of single channels.

Everything here is numpy + PIL with a colormap lookup table, so drawing a stage costs a few
milliseconds; a full matplotlib figure would cost ~100 ms per picture and make the app sluggish.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

PHOTO_SIZE = 224  # the model's input crop; every overlay is drawn at this size
GRID_COLUMNS, GRID_ROWS = 4, 2
GRID_TILE, GRID_GAP = 110, 4
GRID_SIZE = (
    GRID_COLUMNS * GRID_TILE + (GRID_COLUMNS - 1) * GRID_GAP,
    GRID_ROWS * GRID_TILE + (GRID_ROWS - 1) * GRID_GAP,
)
GRID_CHANNELS = GRID_COLUMNS * GRID_ROWS
BACKGROUND = (255, 255, 255)
TITLE_HEIGHT, TITLE_SIZE, PANEL_GAP = 26, 15, 14
TITLE_COLOUR = (40, 40, 48)


@cache
def colormap_table(name: str) -> np.ndarray:
    """A matplotlib colormap as a 256x3 uint8 table; indexing it colours a whole map at once."""
    import matplotlib  # deferred: only needed once the first map is drawn

    return (matplotlib.colormaps[name](np.linspace(0.0, 1.0, 256))[:, :3] * 255).round().astype(np.uint8)


def normalise(values: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] from the minimum to the 99th percentile.

    A few positions in a trained network can be far stronger than the rest; clipping them keeps
    the remaining structure visible instead of one bright dot on black.
    """
    low, high = float(values.min()), float(np.percentile(values, 99))
    if high - low < 1e-12:
        return np.zeros_like(values, dtype=np.float32)
    return np.clip((values - low) / (high - low), 0.0, 1.0).astype(np.float32)


def colorize(values: np.ndarray, size: int, colormap: str) -> Image.Image:
    """A (H, W) map in [0, 1] as a colour image of size x size, upsampled without smoothing.

    Nearest-neighbour keeps each cell of a 7x7 map a visible square: the picture shows the
    stage's true resolution rather than pretending to more detail.
    """
    indices = (values * 255).round().astype(np.uint8)
    coloured = Image.fromarray(colormap_table(colormap)[indices])
    return coloured.resize((size, size), Image.Resampling.NEAREST)


def overlay(photo: Image.Image, values: np.ndarray, colormap: str = "inferno", opacity: float = 0.6) -> Image.Image:
    """A heatmap of `values` blended over the photo, so one sees *where* a stage responds."""
    heat = colorize(normalise(values), photo.width, colormap)
    return Image.blend(photo.convert("RGB"), heat, opacity)


def channel_grid(channels: Sequence[np.ndarray], colormap: str = "viridis") -> Image.Image:
    """Up to GRID_CHANNELS single-channel maps as tiles, each scaled on its own."""
    grid = Image.new("RGB", GRID_SIZE, BACKGROUND)
    for index, channel in enumerate(channels[:GRID_CHANNELS]):
        row, column = divmod(index, GRID_COLUMNS)
        tile = colorize(normalise(channel), GRID_TILE, colormap)
        grid.paste(tile, (column * (GRID_TILE + GRID_GAP), row * (GRID_TILE + GRID_GAP)))
    return grid


@cache
def title_font(bold: bool = False) -> ImageFont.FreeTypeFont:
    """DejaVu Sans from matplotlib's data (it has ‖ and −, unlike Pillow's built-in font)."""
    import matplotlib

    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name), TITLE_SIZE)


def draw_title(draw: ImageDraw.ImageDraw, corner: tuple[int, int], title: str, bold: bool = False) -> None:
    """One line of title text in the TITLE_HEIGHT band whose top-left corner is `corner`."""
    left, top = corner
    draw.text((left + 2, top + TITLE_HEIGHT // 2), title, fill=TITLE_COLOUR, font=title_font(bold), anchor="lm")


def titled_row(panels: Sequence[tuple[str, Image.Image]]) -> Image.Image:
    """Panels side by side, each with its title above: one picture instead of several.

    One picture per stage keeps the app fast: every separate image is a separate file for the
    server to encode and for the browser or API client to fetch.
    """
    width = sum(panel.width for _, panel in panels) + PANEL_GAP * (len(panels) - 1)
    height = TITLE_HEIGHT + max(panel.height for _, panel in panels)
    row = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(row)
    left = 0
    for title, panel in panels:
        draw_title(draw, (left, 0), title)
        row.paste(panel, (left, TITLE_HEIGHT))
        left += panel.width + PANEL_GAP
    return row


def titled_column(rows: Sequence[tuple[str, Image.Image]]) -> Image.Image:
    """Pictures stacked top to bottom, each under its own bold heading line: rows to compare at a glance."""
    heading_widths = [round(title_font(bold=True).getlength(title)) + 4 for title, _ in rows]
    width = max(*heading_widths, *(picture.width for _, picture in rows))
    height = sum(TITLE_HEIGHT + picture.height for _, picture in rows) + PANEL_GAP * (len(rows) - 1)
    column = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(column)
    top = 0
    for title, picture in rows:
        draw_title(draw, (0, top), title, bold=True)
        column.paste(picture, (0, top + TITLE_HEIGHT))
        top += TITLE_HEIGHT + picture.height + PANEL_GAP
    return column
