"""What pooling does: the filter pool(x) − x, its three kernels, the filter run on a photo, and one token up close."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from PIL import Image

from poolformer.explorer import MixerFilter, Token
from poolformer.mixer_filter import border_kernels
from visualize.maps import PHOTO_SIZE, bar_list, neighbourhood_grid, overlay, signed_picture, titled_row
from visualize.stages import MIXER_COLORMAP
from visualize.text import MIXER_OUTPUTS, mixer_name

KERNEL_COLORMAP = "RdBu"  # red below zero, blue above: the centre's negative weight stands out
BORDER_TITLES = {"interior": "inside the map", "edge": "on an edge (top)", "corner": "in a corner (top left)"}
FILTER_FULL_SCALE_PERCENTILE = 99.5  # of |pool(x) − x|: this many percent of values fit without clipping


def fraction(weight: float) -> str:
    """A kernel weight as a short fraction: 1/9, −8/9."""
    return str(Fraction(weight).limit_denominator(64)).replace("-", "−")


def kernel_picture() -> Image.Image:
    """The filter's three kernels (interior, edge, corner) as coloured 3 × 3 grids with their weights written in."""
    panels = []
    for case, kernel in border_kernels().items():
        off_map = kernel == 0
        values = np.where(off_map, np.nan, kernel)
        captions = [["off map" if off_map[r, c] else fraction(kernel[r, c]) for c in range(3)] for r in range(3)]
        count = int((~off_map).sum())
        grid = neighbourhood_grid(values, captions, KERNEL_COLORMAP, (-1.0, 1.0))
        panels.append((f"{BORDER_TITLES[case]}: n = {count}", grid))
    return titled_row(panels)


def kernel_note() -> str:
    """The kernels in words, with the weights computed from the code that draws them."""
    parts = []
    for case, kernel in border_kernels().items():
        count = int((kernel != 0).sum())
        parts.append(
            f"{BORDER_TITLES[case]} the window covers **{count}** tokens, each weighs **{fraction(1 / count)}**, "
            f"and the token itself {fraction(1 / count)} − 1 = **{fraction(kernel[1, 1])}**"
        )
    return (
        "With `count_include_pad=False` the average runs over the tokens that exist, so the weights change at the "
        "border: " + "; ".join(parts) + ". Every kernel sums to **0**: a flat patch gives 0 and only differences "
        "pass — a high-pass filter, a close cousin of the (negative) Laplacian."
    )


def filter_full_scale(filtered: np.ndarray) -> float:
    return float(np.percentile(np.abs(filtered), FILTER_FULL_SCALE_PERCENTILE))


def filter_pictures(result: MixerFilter) -> tuple[Image.Image, Image.Image]:
    """The crop the model saw and the same crop through pool(x) − x (mid-grey = 0), for an image slider."""
    return result.photo, signed_picture(result.filtered, filter_full_scale(result.filtered))


def stage1_pooling_picture(result: MixerFilter) -> Image.Image:
    """The model's stage-1 'what pooling adds' map as in the Predict tab, at twice the size to match the slider."""
    photo = result.photo.resize((2 * PHOTO_SIZE, 2 * PHOTO_SIZE), Image.Resampling.BICUBIC)
    return overlay(photo, result.stage1_change, MIXER_COLORMAP, opacity=0.75)


def filter_caption(result: MixerFilter) -> str:
    full_scale = filter_full_scale(result.filtered)
    height, width = result.stage1_change.shape
    channels = result.choice.variant.widths[0]
    lines = [
        f"**Slider:** left the {PHOTO_SIZE} × {PHOTO_SIZE} crop {result.choice.name} saw, right the same pixels "
        f"through `pool(x) − x`, each colour channel on its own. Mid-grey is 0; white and black are ±{full_scale:.3f} "
        f"(pixel values run 0–1), so a bright or dark fringe marks an edge.",
        f"**Beside it:** the model's stage-1 map ({height} × {width} tokens): ‖pool(x) − x‖ over {channels} "
        "channels of the first block's normalised input — the same filter, on learnt features instead of colours.",
    ]
    if result.token_mixer != "pooling":
        lines.append(
            f"{result.choice.name}'s first token mixer is {mixer_name(result.token_mixer)}, so its map shows "
            f"{MIXER_OUTPUTS[result.token_mixer]}: no pooling there."
        )
    return "\n\n".join(lines)


def token_picture(token: Token) -> Image.Image:
    """The token's 3 × 3 neighbourhood (energy and weight per cell) beside bars for x, mean and mean − x."""
    def caption(row: int, column: int) -> str:
        energy = token.energies[row, column]
        return "off map" if np.isnan(energy) else f"{energy:.2f}\n×{fraction(token.weights[row, column])}"

    captions = [[caption(row, column) for column in range(3)] for row in range(3)]
    grid = neighbourhood_grid(token.energies, captions, MIXER_COLORMAP)
    bars = bar_list(
        [
            ("‖token x‖", token.centre_norm),
            ("‖mean of 3 × 3‖", token.mean_norm),
            ("‖mean − x‖", token.change_norm),
        ]
    )
    title = f"stage {token.stage}, token ({token.row}, {token.column})"
    return titled_row([(title, grid), ("norms after norm1", bars)])


def token_summary(token: Token) -> str:
    """The inspected token in numbers: its window, the three norms, how alike it and its neighbours are."""
    height, width = token.grid
    count = int((token.weights != 0).sum())
    verb = "passes on" if token.token_mixer == "pooling" else f"would pass on (this model's mixer is {mixer_name(token.token_mixer)})"
    return (
        f"**Stage {token.stage}, token row {token.row}, column {token.column}** of {height} × {width}. Its window "
        f"covers {count} tokens, each weighing {fraction(1 / count)}; the token itself "
        f"{fraction(token.weights[1, 1])}. "
        f"After `norm1`: ‖x‖ = {token.centre_norm:.3f}, ‖pool(x)‖ = {token.mean_norm:.3f}, and "
        f"**‖pool(x) − x‖ = {token.change_norm:.3f}**, what pooling {verb}.\n\n"
        f"Cosine of x and its neighbourhood mean: **{token.cosine:.3f}** (near 1: the neighbours look like the token, "
        "so pooling changes little). Through the layer scale, this model's token mixer adds a vector of norm "
        f"**{token.update_norm:.3f}** to the token's {token.residual_norm:.3f}."
    )


def token_views(token: Token) -> list[Image.Image | str]:
    """The token's picture and summary, as the inspector and a click on a stage map both show them."""
    return [token_picture(token), token_summary(token)]
