"""The ablation view in-process: its shortcut gives the numbers of two full passes, and its chart shows its numbers.

The app-level behaviour (through gradio_client) is in test_app_api.py; these check what a picture
or a shared computation could get subtly wrong without any endpoint failing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO
from PIL import Image, ImageColor

from poolformer.explorer.ablation import ablation_passes
from poolformer.model import PoolFormer
from poolformer.preprocess import load_image, preprocess
from poolformer.weights import create_model
from visualize.charts import CHART_SIZE, RUN_COLOURS, SIMILARITY_COLOUR, ablation_chart

CAT = REPO / "assets" / "examples" / "cat.jpg"


@pytest.fixture(scope="module")
def model(checkpoint_dir: Path) -> PoolFormer:
    return create_model("s12", weights=checkpoint_dir / "poolformer_s12_imagenette.safetensors")


@pytest.fixture(scope="module")
def scratch(checkpoint_dir: Path) -> PoolFormer:
    return create_model("s12", weights=checkpoint_dir / "identityformer_s12_imagenette.safetensors")


@pytest.mark.parametrize(
    "mixers",
    [["identity"] * 4, ["pooling", "pooling", "identity", "identity"], ["pooling", "pooling", "pooling-5", "identity"]],
    ids=lambda mixers: "-".join(mixers),
)
def test_shared_start_and_side_by_side_passes_give_exactly_three_full_passes(
    model: PoolFormer, scratch: PoolFormer, mixers: list[str]
) -> None:
    """The stem and the stages before the first changed one are computed once and the rest run on helper
    threads; nothing may change, and the helpers run under the caller's inference mode."""
    pixels = preprocess(load_image(CAT), model.variant.crop_pct)
    with torch.inference_mode():
        (pooled, pooled_stages), (swapped, swapped_stages), scratch_logits = ablation_passes(model, mixers, pixels, scratch)
        expected_pooled, expected_pooled_stages = model.forward_with_stages(pixels)
        expected_swapped, expected_swapped_stages = model.with_token_mixers(mixers).forward_with_stages(pixels)
        expected_scratch = scratch(pixels)
    assert torch.equal(pooled, expected_pooled) and torch.equal(swapped, expected_swapped)
    assert torch.equal(scratch_logits, expected_scratch)
    for ours, theirs in zip(
        pooled_stages + swapped_stages, expected_pooled_stages + expected_swapped_stages, strict=True
    ):
        assert torch.equal(ours, theirs)
        assert ours.is_inference()  # computed on a helper thread, yet under the caller's inference mode
    assert scratch_logits.is_inference() and not torch.equal(pooled, swapped)
    with torch.inference_mode():
        assert ablation_passes(model, mixers, pixels)[2] is None  # no scratch twin: two passes only


def rectangles(picture: Image.Image, colour: str) -> list[tuple[int, int, int, int]]:
    """(left, top, right, bottom) of every solid rectangle of exactly `colour`, found row by row."""
    mask = np.all(np.asarray(picture) == ImageColor.getrgb(colour), axis=-1)
    found: dict[tuple[int, int], list[int]] = {}  # (left, right) -> [top, bottom] of the rows they span
    for row in range(mask.shape[0]):
        columns = np.flatnonzero(mask[row])
        if columns.size == 0:
            continue
        for run in np.split(columns, np.flatnonzero(np.diff(columns) > 1) + 1):
            span = found.setdefault((int(run[0]), int(run[-1])), [row, row])
            span[1] = row
    return sorted((left, top, right, bottom) for (left, right), (top, bottom) in found.items())


def test_chart_bars_are_as_long_as_their_numbers() -> None:
    probabilities = [np.array([0.5, 0.3, 0.2]), np.array([0.1, 0.6, 0.3])]
    cosines = [0.9, -0.35, 0.2, 1.0]
    chart = ablation_chart(["pooling", "identity"], probabilities, ["a", "b", "c"], cosines)
    assert chart.size == CHART_SIZE

    for run, colour in zip(probabilities, RUN_COLOURS):
        bars = rectangles(chart, colour)
        axis = min(left for left, *_ in bars)
        bars = sorted(
            (top, right - axis + 1) for left, top, right, _ in bars if left == axis
        )  # the legend swatch is elsewhere
        lengths = np.array([length for _, length in bars], dtype=float)
        shown = run[np.argsort(-probabilities[0])]  # rows are ordered by the first run's probability
        np.testing.assert_allclose(lengths / lengths.max(), shown / shown.max(), atol=0.01)

    bars = sorted(rectangles(chart, SIMILARITY_COLOUR))  # left to right: stages 1-4
    zero = bars[0][3]  # positive bars stand on the zero line (drawn over their last row)
    assert 0 < bars[1][1] - zero <= 2  # the negative bar hangs from it
    heights = np.array([bottom - top + 1 for _, top, _, bottom in bars], dtype=float)
    np.testing.assert_allclose(heights / heights[3], np.abs(cosines) / cosines[3], atol=0.02)
