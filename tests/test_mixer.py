"""What pooling does: the mixer as a filter, the token inspector, and the stage maps' colour scales.

The filter is checked against torch's pooling and the model's own `Pooling` mixer, the inspector
against the Predict view's map, and the click mapping against the pictures as actually drawn.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import BUNDLED_MODEL, REPO
from PIL import Image

from poolformer import explorer
from poolformer.mixer_filter import border_kernels, kernel_at, neighbour_counts, pool_minus_identity
from poolformer.model import Pooling
from poolformer.preprocess import load_image, preprocess
from visualize.maps import GRID_SIZE, MARK_COLOUR, PANEL_GAP, PHOTO_SIZE, TITLE_HEIGHT, normalise
from visualize.mixer import filter_pictures, token_summary
from visualize.stages import StageRanges, stage_cell_at, stage_picture, stage_ranges

CAT = REPO / "assets" / "examples" / "cat.jpg"
STAGE_GRIDS = [(56, 56), (28, 28), (14, 14), (7, 7)]


# --- the filter -----------------------------------------------------------------------------------


def test_kernels_have_the_weights_of_an_average_minus_the_token() -> None:
    kernels = border_kernels()
    ninth, sixth, quarter = 1 / 9, 1 / 6, 1 / 4
    np.testing.assert_allclose(kernels["interior"], [[ninth] * 3, [ninth, ninth - 1, ninth], [ninth] * 3])
    np.testing.assert_allclose(kernels["edge"], [[0, 0, 0], [sixth, sixth - 1, sixth], [sixth] * 3])
    np.testing.assert_allclose(kernels["corner"], [[0, 0, 0], [0, quarter - 1, quarter], [0, quarter, quarter]])
    for kernel in kernels.values():
        assert kernel.sum() == pytest.approx(0.0, abs=1e-12)  # high-pass: a flat patch gives 0
    np.testing.assert_array_equal(neighbour_counts(3, 4), [[4, 6, 6, 4], [6, 9, 9, 6], [4, 6, 6, 4]])


@pytest.mark.parametrize("shape", [(2, 5, 7, 9), (1, 3, 2, 3), (1, 2, 1, 1), (1, 4, 56, 56)])
def test_filter_equals_pool_minus_x_borders_included(shape: tuple[int, ...]) -> None:
    """Our numpy filter == torch's AvgPool2d(3, 1, 1, count_include_pad=False)(x) − x == the model's Pooling."""
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch_pool = torch.nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)(x) - x
    with torch.inference_mode():
        model_mixer = Pooling()(x)
    ours = pool_minus_identity(x.numpy())
    np.testing.assert_allclose(ours, torch_pool.numpy(), atol=1e-12)
    np.testing.assert_allclose(ours, model_mixer.numpy(), atol=1e-12)


def test_the_kernel_at_every_position_is_what_the_mixer_computes() -> None:
    """Applying kernel_at token by token (as the tab shows it) reproduces the model's mixer, borders included."""
    height, width = 4, 5
    x = torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.inference_mode():
        expected = Pooling()(x)[0].numpy()
    padded = np.pad(x[0].numpy(), ((0, 0), (1, 1), (1, 1)))
    for row in range(height):
        for column in range(width):
            window = padded[:, row : row + 3, column : column + 3]
            by_kernel = (window * kernel_at(row, column, height, width)).sum(axis=(1, 2))
            np.testing.assert_allclose(by_kernel, expected[:, row, column], atol=1e-12)


def test_filter_view_filters_the_crop_and_shows_the_models_own_stage1_map() -> None:
    result = explorer.filter_photo(CAT, BUNDLED_MODEL)
    pixels = torch.from_numpy(np.asarray(result.photo, dtype=np.float64) / 255).permute(2, 0, 1)[None]
    expected = torch.nn.AvgPool2d(3, 1, 1, count_include_pad=False)(pixels) - pixels
    np.testing.assert_allclose(result.filtered, expected[0].permute(1, 2, 0).numpy(), atol=1e-12)
    prediction = explorer.predict(CAT, BUNDLED_MODEL)
    # The same map: drawn eagerly here, by the CPU fast path in /predict once its session is built (within
    # 1e-5 of the map's scale: poolformer/fast_cpu.py); identical while both run eagerly.
    scale = float(np.abs(prediction.stages[0].mixer_change).max())
    np.testing.assert_allclose(result.stage1_change, prediction.stages[0].mixer_change, rtol=0, atol=1e-5 * scale)
    photo, filtered = filter_pictures(result)
    assert photo.size == filtered.size == (PHOTO_SIZE, PHOTO_SIZE)
    shown = np.asarray(filtered, dtype=np.float64)
    flat = np.abs(result.filtered) < 1e-9
    np.testing.assert_allclose(shown[flat], 127.5, atol=0.5)  # zero is drawn mid-grey


# --- the token inspector --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stage", "row", "column", "neighbours"),
    [(1, 0, 0, 4), (1, 0, 30, 6), (1, 20, 31, 9), (2, 27, 27, 4), (4, 3, 6, 6), (4, 3, 3, 9)],
)
def test_token_inspector_agrees_with_the_predict_map(stage: int, row: int, column: int, neighbours: int) -> None:
    """‖mean − centre‖ of the inspected neighbourhood is exactly the Predict view's 'pooling adds' cell."""
    token = explorer.inspect_token(CAT, BUNDLED_MODEL, stage, row, column)
    stage_view = explorer.predict(CAT, BUNDLED_MODEL).stages[stage - 1]
    assert token.grid == stage_view.shape[1:]
    assert token.change_norm == pytest.approx(float(stage_view.mixer_change[row, column]), rel=1e-5)
    assert int((~np.isnan(token.energies)).sum()) == neighbours == int((token.weights != 0).sum())
    assert token.energies[1, 1] == pytest.approx(token.centre_norm)
    assert token.weights[1, 1] == pytest.approx(1 / neighbours - 1)
    assert 0 < token.update_norm < token.change_norm  # layer scale shrinks the update (trained values < 1)


def test_token_inspector_reports_the_update_of_the_models_own_mixer() -> None:
    """Pooling adds layer_scale · (pool(x) − x) to the token; an IdentityFormer's mixer adds layer_scale · x."""
    pixels = preprocess(load_image(CAT), 0.9)
    for value, mixer in (("s12-imagenette", "pooling"), ("identityformer-s12-imagenette", "identity")):
        model = explorer.MODELS.get(explorer.find_choice(value))
        with torch.inference_mode():
            block = model.stages[1].blocks[0]
            normed = block.norm1(model.stages[1].downsample(model.stages[0](model.stem(pixels))))
            pooled = torch.nn.AvgPool2d(3, 1, 1, count_include_pad=False)(normed)
            mixed = pooled - normed if mixer == "pooling" else normed
            expected = float((block.layer_scale1.scale * mixed[0, :, 5, 5]).norm())
        token = explorer.inspect_token(CAT, value, 2, 5, 5)
        assert token.token_mixer == mixer
        assert token.update_norm == pytest.approx(expected, rel=1e-5)
        assert token.change_norm == pytest.approx(float((pooled - normed)[0, :, 5, 5].norm()), rel=1e-5)
        assert ("would pass on" in token_summary(token)) == (mixer == "identity")


def test_token_inspector_rejects_cells_off_the_map() -> None:
    with pytest.raises(explorer.ExplorerError, match="7 × 7 tokens"):
        explorer.inspect_token(CAT, BUNDLED_MODEL, 4, 7, 0)
    with pytest.raises(explorer.ExplorerError, match="stages are numbered 1 to 4"):
        explorer.inspect_token(CAT, BUNDLED_MODEL, 5, 0, 0)


# --- clicks and colour scales on the stage pictures ----------------------------------------------


def synthetic_stage(
    number: int, grid: tuple[int, int], energy: np.ndarray, mixer_change: np.ndarray
) -> explorer.StageView:
    channels = [(index, energy * (index + 1)) for index in range(8)]
    return explorer.StageView(number, (64, *grid), 2, "pooling", energy, channels, mixer_change)


@pytest.mark.parametrize("grid", STAGE_GRIDS)
def test_a_click_on_either_map_picks_the_token_drawn_there(grid: tuple[int, int]) -> None:
    """Draw a stage whose maps have one hot token; clicking the brightest pixel of each map finds that token."""
    hot = (grid[0] // 3, grid[1] - 2)
    values = np.zeros(grid, dtype=np.float32)
    values[hot] = 1.0
    ranges = StageRanges(energy=(0.0, 1.0), pooling=(0.0, 1.0))  # so one cell is not clipped away as an outlier
    black = Image.new("RGB", (PHOTO_SIZE, PHOTO_SIZE))
    picture = np.asarray(stage_picture(black, synthetic_stage(1, grid, values, values), ranges))
    assert picture.shape[1] == 2 * PHOTO_SIZE + GRID_SIZE[0] + 2 * PANEL_GAP
    for left in (0, PHOTO_SIZE + GRID_SIZE[0] + 2 * PANEL_GAP):
        panel = picture[TITLE_HEIGHT:, left : left + PHOTO_SIZE].astype(int).sum(axis=2)
        y, x = np.unravel_index(panel.argmax(), panel.shape)
        assert stage_cell_at(left + x, TITLE_HEIGHT + y, grid) == hot
    marked = np.asarray(stage_picture(black, synthetic_stage(1, grid, values, values), ranges, marked=(1, 2)))
    for left in (0, PHOTO_SIZE + GRID_SIZE[0] + 2 * PANEL_GAP):  # the outline of a clicked token surrounds that token
        panel = marked[TITLE_HEIGHT:, left : left + PHOTO_SIZE]
        ys, xs = np.nonzero((panel == MARK_COLOUR).all(axis=2))
        assert stage_cell_at(left + xs.mean(), TITLE_HEIGHT + ys.mean(), grid) == (1, 2)
    cell = PHOTO_SIZE / grid[0]
    assert stage_cell_at(cell * 2.5, TITLE_HEIGHT + cell * 1.5, grid) == (1, 2)
    assert stage_cell_at(PHOTO_SIZE - 1, TITLE_HEIGHT + PHOTO_SIZE - 1, grid) == (grid[0] - 1, grid[1] - 1)


@pytest.mark.parametrize(
    ("x", "y"),
    [(100, 5), (PHOTO_SIZE + 5, 100), (PHOTO_SIZE + 200, 100), (100, TITLE_HEIGHT + PHOTO_SIZE + 1)],
    ids=["title", "gap", "channel-tiles", "below"],
)
def test_a_click_off_the_maps_picks_no_token(x: int, y: int) -> None:
    assert stage_cell_at(x, y, (56, 56)) is None


def mean_brightness(values: np.ndarray, value_range: tuple[float, float] | None) -> float:
    return float(normalise(values, value_range).mean())


def test_global_scale_makes_a_weaker_stage_look_darker() -> None:
    pattern = np.random.default_rng(0).uniform(1.0, 2.0, size=(7, 7)).astype(np.float32)
    weak = synthetic_stage(1, (7, 7), pattern, pattern)
    strong = synthetic_stage(2, (7, 7), 10 * pattern, 3 * pattern)
    stages = [weak, strong]

    own = stage_ranges(stages, "map")  # today's default: each map stretched, so both look alike
    assert mean_brightness(weak.energy, own[0].energy) == pytest.approx(
        mean_brightness(strong.energy, own[1].energy), abs=1e-6
    )

    shared = stage_ranges(stages, "global")
    assert shared[0] == shared[1]
    assert mean_brightness(weak.energy, shared[0].energy) < 0.2 < mean_brightness(strong.energy, shared[1].energy)
    assert mean_brightness(weak.mixer_change, shared[0].pooling) < mean_brightness(
        strong.mixer_change, shared[1].pooling
    )

    per_stage = stage_ranges(stages, "stage")  # one range for a stage's eight channel tiles
    first, last = weak.top_channels[0][1], weak.top_channels[-1][1]
    assert mean_brightness(first, per_stage[0].channels) < mean_brightness(last, per_stage[0].channels)
    assert per_stage[0].energy is None and per_stage[0].channels != per_stage[1].channels

    with pytest.raises(explorer.ExplorerError, match="unknown colour scale"):
        stage_ranges(stages, "log")


def test_global_scale_on_the_model_orders_stages_by_their_energy() -> None:
    """On a real photo, the stage whose energy is larger on average is also brighter on the global scale."""
    stages = explorer.predict(CAT, BUNDLED_MODEL).stages
    ranges = stage_ranges(stages, "global")
    brightness = [mean_brightness(stage.energy, scale.energy) for stage, scale in zip(stages, ranges)]
    energies = [float(stage.energy.mean()) for stage in stages]
    assert np.argsort(brightness).tolist() == np.argsort(energies).tolist()
