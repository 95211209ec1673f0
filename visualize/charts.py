"""The token-mixer ablation chart: class probabilities side by side, and feature similarity per stage.

Drawn with plain PIL rectangles and text: a few milliseconds, where a matplotlib figure cost ~130 ms
of every /ablate request. Thread-safe, as every call draws on its own image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from visualize.maps import BACKGROUND, TITLE_COLOUR, font

CHART_SIZE = (960, 380)  # pixels
RUN_COLOURS = (
    "#3b6fb6",
    "#e07b39",
    "#4c9a5b",
)  # as trained, ablated (identity or resized pools), identity from scratch
SIMILARITY_COLOUR = "#7a5ba6"
AXIS_COLOUR = (60, 60, 60)
MAX_CLASSES = 8
PROBABILITY_PANEL_WIDTH = 670  # the cosine panel takes the rest
TITLE_SIZE, LABEL_SIZE, SMALL_SIZE = 14, 13, 12
PLOT_TOP, PLOT_BOTTOM = 34, CHART_SIZE[1] - 48  # room for the title above, tick labels and axis label below
TICK = 4


def chart_classes(probabilities: Sequence[np.ndarray], top: int = 5) -> list[int]:
    """The union of every run's top classes, ordered by the first run's probability."""
    chosen: list[int] = []
    for run in probabilities:
        for index in np.argsort(run)[::-1][:top]:
            if int(index) not in chosen:
                chosen.append(int(index))
    return sorted(chosen, key=lambda index: -probabilities[0][index])[:MAX_CLASSES]


@dataclass(frozen=True)
class Axis:
    """A linear map from data values to pixels along one direction (pixels may run backwards)."""

    low: float
    high: float
    start_px: float
    end_px: float

    def __call__(self, value: float) -> float:
        return self.start_px + (value - self.low) / (self.high - self.low) * (self.end_px - self.start_px)


def ticks(low: float, high: float, step: float = 0.2) -> list[float]:
    """Round tick values from `low` up to `high` (both included when they fall on the step)."""
    first = np.ceil(low / step - 1e-9) * step
    return [round(value, 6) + 0.0 for value in np.arange(first, high + 1e-9, step)]  # + 0.0: no "-0.0"


def probability_panel(
    draw: ImageDraw.ImageDraw, run_names: Sequence[str], probabilities: Sequence[np.ndarray], class_names: Sequence[str]
) -> None:
    """Horizontal bars, one group per class (best first), one bar per run, on a 0-1 axis."""
    label_font, small_font = font(LABEL_SIZE), font(SMALL_SIZE)
    classes = chart_classes(probabilities)
    left = 12 + max(draw.textlength(class_names[index], font=label_font) for index in classes)
    x = Axis(0.0, 1.0, left, PROBABILITY_PANEL_WIDTH - 16)
    row_height = (PLOT_BOTTOM - PLOT_TOP) / len(classes)
    bar_height = 0.8 * row_height / len(probabilities)

    draw.text((left, 8), "Class probabilities", fill=TITLE_COLOUR, font=font(TITLE_SIZE))
    for row, index in enumerate(classes):
        centre = PLOT_TOP + (row + 0.5) * row_height
        draw.text((left - 8, centre), class_names[index], fill=AXIS_COLOUR, font=label_font, anchor="rm")
        top = centre - 0.4 * row_height
        for run, colour in zip(probabilities, RUN_COLOURS):
            draw.rectangle((x(0.0), top, x(float(run[index])), top + bar_height - 1), fill=colour)
            top += bar_height
    axes_frame(draw, x.start_px, x.end_px)
    for value in ticks(0.0, 1.0):
        draw.line((x(value), PLOT_BOTTOM, x(value), PLOT_BOTTOM + TICK), fill=AXIS_COLOUR)
        draw.text((x(value), PLOT_BOTTOM + TICK + 2), f"{value:.1f}", fill=AXIS_COLOUR, font=label_font, anchor="ma")
    draw.text(
        ((x.start_px + x.end_px) / 2, CHART_SIZE[1] - 6), "probability", fill=AXIS_COLOUR, font=label_font, anchor="md"
    )

    # The legend sits in the bottom right, where the bars of the least likely classes are short.
    for line, (name, colour) in enumerate(reversed(list(zip(run_names, RUN_COLOURS)))):
        baseline = PLOT_BOTTOM - 10 - line * 20
        text_left = x.end_px - draw.textlength(max(run_names, key=len), font=small_font)
        draw.rectangle((text_left - 34, baseline - 6, text_left - 8, baseline + 4), fill=colour)
        draw.text((text_left, baseline), name, fill=AXIS_COLOUR, font=small_font, anchor="lm")


def similarity_panel(chart: Image.Image, draw: ImageDraw.ImageDraw, stage_cosine: Sequence[float]) -> None:
    """Vertical bars: cosine similarity of the trained and ablated stage outputs, labelled with their value."""
    label_font, small_font = font(LABEL_SIZE), font(SMALL_SIZE)
    left, right = PROBABILITY_PANEL_WIDTH + 62, CHART_SIZE[0] - 10
    y = Axis(min(0.0, min(stage_cosine) - 0.1), 1.1, PLOT_BOTTOM, PLOT_TOP)  # cosine can be negative
    slot = (right - left) / len(stage_cosine)

    draw.text((left, 8), "Features: as trained vs ablated", fill=TITLE_COLOUR, font=font(TITLE_SIZE))
    for number, value in enumerate(stage_cosine, start=1):
        centre = left + (number - 0.5) * slot
        draw.rectangle(
            (centre - 0.4 * slot, y(max(value, 0.0)), centre + 0.4 * slot, y(min(value, 0.0))), fill=SIMILARITY_COLOUR
        )
        above = value >= 0
        draw.text(
            (centre, y(value) + (-3 if above else 3)),
            f"{value:.2f}",
            fill=AXIS_COLOUR,
            font=small_font,
            anchor="md" if above else "ma",
        )
        draw.line((centre, PLOT_BOTTOM, centre, PLOT_BOTTOM + TICK), fill=AXIS_COLOUR)
        draw.text((centre, PLOT_BOTTOM + TICK + 2), str(number), fill=AXIS_COLOUR, font=label_font, anchor="ma")
    axes_frame(draw, left, right)
    if y.low < 0:
        draw.line((left, y(0.0), right, y(0.0)), fill=AXIS_COLOUR)
    for value in ticks(y.low, 1.0):
        draw.line((left - TICK, y(value), left, y(value)), fill=AXIS_COLOUR)
        draw.text((left - TICK - 3, y(value)), f"{value:.1f}", fill=AXIS_COLOUR, font=label_font, anchor="rm")
    draw.text(((left + right) / 2, CHART_SIZE[1] - 6), "stage", fill=AXIS_COLOUR, font=label_font, anchor="md")
    vertical_label(chart, "cosine similarity", left - 56, (PLOT_TOP + PLOT_BOTTOM) / 2)


def axes_frame(draw: ImageDraw.ImageDraw, left: float, right: float) -> None:
    """The left and bottom spines of a plot area (no top or right ones, as in the matplotlib default we replaced)."""
    draw.line((left, PLOT_TOP, left, PLOT_BOTTOM, right, PLOT_BOTTOM), fill=AXIS_COLOUR)


def vertical_label(chart: Image.Image, text: str, left: float, centre_y: float) -> None:
    """Text turned 90° counter-clockwise, as a y-axis label: drawn flat on its own strip, then rotated."""
    label_font = font(LABEL_SIZE)
    width = int(ImageDraw.Draw(chart).textlength(text, font=label_font)) + 2
    strip = Image.new("RGB", (width, LABEL_SIZE + 6), BACKGROUND)
    ImageDraw.Draw(strip).text((1, 1), text, fill=AXIS_COLOUR, font=label_font)
    turned = strip.rotate(90, expand=True)
    chart.paste(turned, (int(left), int(centre_y - turned.height / 2)))


def ablation_chart(
    run_names: Sequence[str],
    probabilities: Sequence[np.ndarray],
    class_names: Sequence[str],
    stage_cosine: Sequence[float],
) -> Image.Image:
    """Left: probabilities of the runs' top classes as grouped bars; right: cosine per stage."""
    chart = Image.new("RGB", CHART_SIZE, BACKGROUND)
    draw = ImageDraw.Draw(chart)
    probability_panel(draw, run_names, probabilities, class_names)
    similarity_panel(chart, draw, stage_cosine)
    return chart
