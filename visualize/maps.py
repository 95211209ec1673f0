"""Feature maps as pictures: heatmaps over the photo, grids of single channels.

Everything here is numpy + PIL with a colormap lookup table, so drawing a stage costs a few
milliseconds; a full matplotlib figure would cost ~100 ms per picture and make the app sluggish.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache, lru_cache
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


ValueRange = tuple[float, float]  # (low, high): low draws as the colormap's first colour, high as its last


def own_range(values: np.ndarray) -> ValueRange:
    """From the minimum to the 99th percentile.

    A few positions in a trained network can be far stronger than the rest; clipping them keeps
    the remaining structure visible instead of one bright dot on black.
    """
    return float(values.min()), float(np.percentile(values, 99))


def shared_range(maps: Sequence[np.ndarray]) -> ValueRange:
    """One range that covers every map's own range, so equal values get equal colours across maps."""
    ranges = [own_range(values) for values in maps]
    return min(low for low, _ in ranges), max(high for _, high in ranges)


def normalise(values: np.ndarray, value_range: ValueRange | None = None) -> np.ndarray:
    """Scale to [0, 1] over `value_range`, or over the map's own range when None."""
    low, high = value_range if value_range is not None else own_range(values)
    if high - low < 1e-12:
        return np.zeros_like(values, dtype=np.float32)
    return np.clip((values - low) / (high - low), 0.0, 1.0).astype(np.float32)


def normalise_stack(maps: np.ndarray, value_range: ValueRange | None = None) -> np.ndarray:
    """`normalise` of each (H, W) map of an (N, H, W) stack, in a few whole-stack passes.

    The same arithmetic map by map, to the bit: each range's ends rounded to the maps' dtype and its width taken in
    float64 first, as Python floats mix with a float32 map in `normalise`.
    """
    if value_range is not None:
        lows, highs = np.full(len(maps), value_range[0]), np.full(len(maps), value_range[1])
    else:
        lows = maps.min(axis=(1, 2)).astype(np.float64)
        highs = np.percentile(maps, 99, axis=(1, 2)).astype(np.float64)
    widths = highs - lows
    flat = widths < 1e-12
    offsets = lows.astype(maps.dtype)[:, None, None]
    scales = np.where(flat, 1.0, widths).astype(maps.dtype)[:, None, None]
    shades = np.clip((maps - offsets) / scales, 0.0, 1.0).astype(np.float32)
    shades[flat] = 0.0
    return shades


def colorize(values: np.ndarray, size: int, colormap: str) -> Image.Image:
    """A (H, W) map in [0, 1] as a colour image of size x size, upsampled without smoothing.

    Nearest-neighbour keeps each cell of a 7x7 map a visible square: the picture shows the
    stage's true resolution rather than pretending to more detail.
    """
    return colour_tiles(values[None], size, colormap)[0]


def colour_tiles(shades: np.ndarray, size: int, colormap: str) -> list[Image.Image]:
    """`colorize` of each (H, W) map of an (N, H, W) stack in [0, 1], coloured in one pass."""
    coloured = colormap_table(colormap)[(shades * 255).round().astype(np.uint8)]
    return [Image.fromarray(tile).resize((size, size), Image.Resampling.NEAREST) for tile in coloured]


def overlay(
    photo: Image.Image,
    values: np.ndarray,
    colormap: str = "inferno",
    opacity: float = 0.6,
    value_range: ValueRange | None = None,
) -> Image.Image:
    """A heatmap of `values` blended over the photo, so one sees *where* a stage responds."""
    heat = colorize(normalise(values, value_range), photo.width, colormap)
    return Image.blend(photo.convert("RGB"), heat, opacity)


def channel_grid(
    channels: Sequence[np.ndarray], colormap: str = "viridis", value_range: ValueRange | None = None
) -> Image.Image:
    """Up to GRID_CHANNELS single-channel maps as tiles, each on its own range unless `value_range` is given.

    A stage's channels share a shape, so they are normalised and coloured as one stack (32 tiles a request).
    """
    grid = Image.new("RGB", GRID_SIZE, BACKGROUND)
    shown_channels = channels[:GRID_CHANNELS]
    if not shown_channels:
        return grid
    tiles = colour_tiles(normalise_stack(np.stack(shown_channels), value_range), GRID_TILE, colormap)
    for index, tile in enumerate(tiles):
        row, column = divmod(index, GRID_COLUMNS)
        grid.paste(tile, (column * (GRID_TILE + GRID_GAP), row * (GRID_TILE + GRID_GAP)))
    return grid


@cache
def font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    """DejaVu Sans at `size` pixels, from matplotlib's data (it has ‖ and −, unlike Pillow's built-in font)."""
    import matplotlib

    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name), size)


def title_font(bold: bool = False) -> ImageFont.FreeTypeFont:
    return font(TITLE_SIZE, bold)


def draw_title(draw: ImageDraw.ImageDraw, corner: tuple[int, int], title: str, bold: bool = False) -> None:
    """One line of title text in the TITLE_HEIGHT band whose top-left corner is `corner`."""
    left, top = corner
    draw.text((left + 2, top + TITLE_HEIGHT // 2), title, fill=TITLE_COLOUR, font=title_font(bold), anchor="lm")


def titled_row(panels: Sequence[tuple[str, Image.Image]]) -> Image.Image:
    """Panels side by side, each with its title above: one picture instead of several.

    One picture per stage keeps the app fast: every separate image is a separate file for the
    server to encode and for the browser or API client to fetch.
    """
    lefts = panel_lefts([panel.width for _, panel in panels])
    width = lefts[-1] + panels[-1][1].width
    height = TITLE_HEIGHT + max(panel.height for _, panel in panels)
    row = Image.new("RGB", (width, height), BACKGROUND)
    for left, (title, panel) in zip(lefts, panels):
        row.paste(title_strip(title, panel.width), (left, 0))
        row.paste(panel, (left, TITLE_HEIGHT))
    return row


@lru_cache(maxsize=256)
def title_strip(title: str, width: int) -> Image.Image:
    """A panel's title, drawn once: most titles recur on every request, and rendering text is the slow part."""
    strip = Image.new("RGB", (width, TITLE_HEIGHT), BACKGROUND)
    draw_title(ImageDraw.Draw(strip), (0, 0), title)
    return strip


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


def panel_lefts(widths: Sequence[int]) -> list[int]:
    """Where each panel of a `titled_row` starts, in pixels from the left; panels start TITLE_HEIGHT from the top."""
    return [sum(widths[:index]) + PANEL_GAP * index for index in range(len(widths))]


def signed_picture(values: np.ndarray, full_scale: float) -> Image.Image:
    """An (H, W, 3) signed array as a picture: mid-grey is 0, ±full_scale is full brightness/darkness per channel."""
    shown = 0.5 + 0.5 * np.clip(values / max(full_scale, 1e-12), -1.0, 1.0)
    return Image.fromarray((shown * 255).round().astype(np.uint8))


GRID_CELL = 76
OFF_MAP = (232, 232, 236)
CENTRE_OUTLINE = (230, 40, 40)


def neighbourhood_grid(
    values: np.ndarray,
    captions: Sequence[Sequence[str]],
    colormap: str = "viridis",
    value_range: ValueRange | None = None,
) -> Image.Image:
    """A small k × k grid: each cell coloured by its value with its caption written in; NaN cells are off the map.

    Colours span `value_range`, by default 0 to the largest value. The centre cell, the token
    whose neighbourhood this is, is outlined.
    """
    size = values.shape[0]
    known = values[~np.isnan(values)]
    low, high = value_range if value_range is not None else (0.0, float(known.max()) if known.size else 1.0)
    shades = normalise(np.nan_to_num(values, nan=low), (low, high))
    table = colormap_table(colormap)
    grid = Image.new("RGB", (size * GRID_CELL, size * GRID_CELL), BACKGROUND)
    draw = ImageDraw.Draw(grid)
    for row in range(size):
        for column in range(size):
            box = (column * GRID_CELL, row * GRID_CELL, (column + 1) * GRID_CELL - 1, (row + 1) * GRID_CELL - 1)
            if np.isnan(values[row, column]):
                fill, ink = OFF_MAP, (120, 120, 130)
            else:
                fill = tuple(int(channel) for channel in table[round(255 * shades[row, column])])
                ink = (255, 255, 255) if 0.299 * fill[0] + 0.587 * fill[1] + 0.114 * fill[2] < 140 else (20, 20, 28)
            draw.rectangle(box, fill=fill, outline=BACKGROUND, width=2)
            middle = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
            draw.multiline_text(middle, captions[row][column], fill=ink, font=title_font(), anchor="mm", align="center")
    centre = size // 2
    draw.rectangle(
        (centre * GRID_CELL, centre * GRID_CELL, (centre + 1) * GRID_CELL - 1, (centre + 1) * GRID_CELL - 1),
        outline=CENTRE_OUTLINE,
        width=3,
    )
    return grid


BAR_LENGTH, BAR_HEIGHT, BAR_LABEL_WIDTH = 220, 22, 150


def bar_list(bars: Sequence[tuple[str, float]], colour: tuple[int, int, int] = (59, 111, 182)) -> Image.Image:
    """Labelled horizontal bars on one scale (the largest value fills BAR_LENGTH), the value written after each."""
    top = max((value for _, value in bars), default=1.0) or 1.0
    width = BAR_LABEL_WIDTH + BAR_LENGTH + 70
    picture = Image.new("RGB", (width, len(bars) * (BAR_HEIGHT + 10) + 4), BACKGROUND)
    draw = ImageDraw.Draw(picture)
    font = title_font()
    for index, (label, value) in enumerate(bars):
        top_y = 4 + index * (BAR_HEIGHT + 10)
        middle_y = top_y + BAR_HEIGHT / 2
        draw.text((0, middle_y), label, fill=TITLE_COLOUR, font=font, anchor="lm")
        length = max(1, round(BAR_LENGTH * value / top))
        draw.rectangle((BAR_LABEL_WIDTH, top_y, BAR_LABEL_WIDTH + length, top_y + BAR_HEIGHT), fill=colour)
        draw.text((BAR_LABEL_WIDTH + length + 6, middle_y), f"{value:.2f}", fill=TITLE_COLOUR, font=font, anchor="lm")
    return picture


MARK_COLOUR = (0, 230, 255)


def outline_cell(picture: Image.Image, cell: tuple[int, int], grid: tuple[int, int]) -> Image.Image:
    """A copy of a map picture with one token's square outlined, so a visitor sees which token is inspected."""
    marked = picture.copy()
    row, column = cell
    height, width = grid
    cell_height, cell_width = picture.height / height, picture.width / width
    box = (column * cell_width, row * cell_height, (column + 1) * cell_width - 1, (row + 1) * cell_height - 1)
    ImageDraw.Draw(marked).rectangle(box, outline=MARK_COLOUR, width=2)
    return marked
