"""Are the Grad-CAM maps faithful? Three checks on the bundled Imagenette PoolFormer-S12.

1. Two objects side by side: asked about the left one, stages 3 and 4 must put most of their mass
   on the left half, and on the right half when asked about the right one (both orders, four pairs).
2. Deletion: greying the 20 % brightest stage-4 cells must lower the class's probability more than
   greying 20 % random cells, on average over ten photos.
3. Deletion and insertion curves (Petsiuk et al., RISE, 2018), as the Where-it-looks tab draws them: over ten
   photos the map's order must give a smaller area under the deletion curve and a larger one under the
   insertion curve than a random order does, for Grad-CAM and for HiResCAM.

Run with `-s` to print the figures quoted in the README.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import BUNDLED_DIR, BUNDLED_MODEL, REPO
from PIL import Image

from poolformer import PoolFormer, create_model, explorer, grad_cam
from poolformer.deletion import FRACTION_STEPS, cell_counts, cell_masks, curve_pictures, random_order, ranked_cells
from poolformer.gradcam import ATTRIBUTION_NAMES, ATTRIBUTIONS
from poolformer.preprocess import INPUT_SIZE, load_image, preprocess

GREY = (124, 116, 104)  # the ImageNet mean colour: what the model's normalisation maps to zero
HALF = INPUT_SIZE // 2
# Imagenette val photos, one per class, whose central strip the model classifies alone (checked below).
OBJECTS = {
    "church": "n03028079/ILSVRC2012_val_00004912.JPEG",
    "golf ball": "n03445777/ILSVRC2012_val_00008161.JPEG",
    "garbage truck": "n03417042/ILSVRC2012_val_00033842.JPEG",
    "tench": "n01440764/ILSVRC2012_val_00017700.JPEG",
    "parachute": "n03888257/ILSVRC2012_val_00006561.JPEG",
    "French horn": "n03394916/ILSVRC2012_val_00001492.JPEG",
    "chain saw": "n03000684/ILSVRC2012_val_00017801.JPEG",
    "cassette player": "n02979186/ILSVRC2012_val_00008651.JPEG",
}
PAIRS = [("church", "golf ball"), ("garbage truck", "tench"), ("parachute", "French horn"), ("chain saw", "cassette player")]
ALONE_CONFIDENCE = 0.7
DELETED_SHARE = 0.2
RANDOM_DRAWS = 8


@pytest.fixture(scope="module")
def model() -> PoolFormer:
    return create_model("s12", weights=BUNDLED_DIR / "poolformer_s12_imagenette.safetensors", device="cpu")


def probabilities(model: PoolFormer, pixels: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model(pixels).softmax(-1)


def composite(left: Image.Image | None, right: Image.Image | None) -> Image.Image:
    """A 224 x 224 picture: the central 112-pixel strip of each photo in its half, grey where none.

    Preprocessing (resize to 248, centre-crop 224) trims both sides equally, so each object stays
    exactly in its half of the model's input.
    """
    canvas = Image.new("RGB", (INPUT_SIZE, INPUT_SIZE), GREY)
    for photo, left_edge in ((left, 0), (right, HALF)):
        if photo is not None:
            square = photo.resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.BICUBIC)
            canvas.paste(square.crop((HALF // 2, 0, HALF // 2 + HALF, INPUT_SIZE)), (left_edge, 0))
    return canvas


def mass_on_half(cam: torch.Tensor, left: bool) -> float:
    """Share of the map's mass on one half of the picture; a middle column (odd width) counts half."""
    width = cam.shape[1]
    centres = (torch.arange(width) + 0.5) / width  # each column's centre, as a fraction of the width
    left_share = torch.where(centres < 0.5, 1.0, torch.where(centres == 0.5, 0.5, 0.0))
    on_left = float((cam * left_share).sum() / cam.sum())
    return on_left if left else 1.0 - on_left


def test_maps_of_two_objects_fall_on_their_own_halves(model: PoolFormer, val_dir: Path) -> None:
    photos = {name: load_image(val_dir / path) for name, path in OBJECTS.items()}
    index = {name: model.class_names.index(name) for name in OBJECTS}
    crop_pct = model.variant.crop_pct

    # Each object alone, in either half, is what the model says it is.
    alone = torch.cat([preprocess(composite(*((photo, None) if left else (None, photo))), crop_pct)
                       for photo in photos.values() for left in (True, False)])  # fmt: skip
    alone_probabilities = probabilities(model, alone)
    for row, (name, left) in enumerate((name, left) for name in photos for left in (True, False)):
        assert alone_probabilities[row, index[name]] > ALONE_CONFIDENCE, (name, "left" if left else "right")

    print("\nGrad-CAM mass on the asked-about object's half (stages 1-4):")
    masses = []
    for a, b in PAIRS:
        for left_name, right_name in ((a, b), (b, a)):
            pixels = preprocess(composite(photos[left_name], photos[right_name]), crop_pct)
            for target, on_left in ((left_name, True), (right_name, False)):
                mass = [mass_on_half(cam, on_left) for cam in grad_cam(model, pixels, index[target])]
                masses.append(mass)
                print(f"  {left_name:>15} | {right_name:<15} asked {target:<15} " + "  ".join(f"{m:.2f}" for m in mass))
                assert mass[2] > 0.5 and mass[3] > 0.5, (left_name, right_name, target, mass)
    mean = np.mean(masses, axis=0)
    print(f"  mean over {len(masses)} cases: " + "  ".join(f"stage {n} {m:.2f}" for n, m in enumerate(mean, 1)))


def greyed(pixels: torch.Tensor, cells: list[int], grid: int) -> torch.Tensor:
    """The input with the pixel blocks under the given stage-map cells set to grey (zero after normalising)."""
    block = INPUT_SIZE // grid
    result = pixels.clone()
    for cell in cells:
        row, column = divmod(cell, grid)
        result[..., row * block : (row + 1) * block, column * block : (column + 1) * block] = 0.0
    return result


def test_greying_the_brightest_cells_hurts_more_than_random_cells(model: PoolFormer, val_photos: list[Path]) -> None:
    generator = torch.Generator().manual_seed(0)
    brightest_drops, random_drops = [], []
    print(f"\nDeletion: probability drop of the top-1 class when {DELETED_SHARE:.0%} of the stage-4 cells are greyed")
    for path in val_photos:
        pixels = preprocess(load_image(path), model.variant.crop_pct)
        original = probabilities(model, pixels)[0]
        target = int(original.argmax())
        cam = grad_cam(model, pixels, target)[-1]
        grid, count = cam.shape[0], round(DELETED_SHARE * cam.numel())
        brightest = cam.flatten().topk(count).indices.tolist()
        randoms = [torch.randperm(cam.numel(), generator=generator)[:count].tolist() for _ in range(RANDOM_DRAWS)]
        batch = torch.cat([greyed(pixels, cells, grid) for cells in [brightest, *randoms]])
        after = probabilities(model, batch)[:, target]
        brightest_drops.append(float(original[target] - after[0]))
        random_drops.append(float(original[target] - after[1:].mean()))
        print(f"  {path.name} ({model.class_names[target]}, p = {original[target]:.2f}): "
              f"brightest {brightest_drops[-1]:+.3f}, random {random_drops[-1]:+.3f}")  # fmt: skip
    print(f"  mean drop over {len(val_photos)} photos: brightest {np.mean(brightest_drops):.3f}, "
          f"random {np.mean(random_drops):.3f} ({RANDOM_DRAWS} draws each)")  # fmt: skip
    assert np.mean(brightest_drops) > np.mean(random_drops)


def test_curve_pictures_grey_out_or_reveal_the_cells_in_order(model: PoolFormer) -> None:
    """Each deletion picture is the photo with the first k cells of the order greyed (the block-by-block
    `greyed` above); each insertion picture is grey but for those k cells."""
    pixels = preprocess(load_image(REPO / "assets" / "examples" / "cat.jpg"), model.variant.crop_pct)
    grid = 7
    order = random_order(grid * grid, seed=3)
    counts = cell_counts(grid * grid)
    assert counts.tolist() == list(range(0, 50, 7))  # 7 steps of 7 cells: one seventh of the photo at a time
    masks = cell_masks((grid, grid), (INPUT_SIZE, INPUT_SIZE))
    assert torch.all(masks.sum(0) == 1)  # every pixel lies in exactly one cell
    deleted = curve_pictures(pixels, order, counts, masks, insertion=False)
    inserted = curve_pictures(pixels, order, counts, masks, insertion=True)
    for picture_deleted, picture_inserted, count in zip(deleted, inserted, counts.tolist(), strict=True):
        first = order[:count].tolist()
        rest = order[count:].tolist()
        torch.testing.assert_close(picture_deleted[None], greyed(pixels, first, grid), rtol=0, atol=0)
        torch.testing.assert_close(picture_inserted[None], greyed(pixels, rest, grid), rtol=0, atol=0)


def test_ranked_cells_go_from_the_brightest_down_with_ties_shuffled() -> None:
    cam = torch.tensor([[0.0, 3.0, 0.0], [1.0, 0.0, 2.0], [0.0, 0.0, 0.5]])
    order = ranked_cells(cam).tolist()
    assert order[:4] == [1, 5, 3, 8] and sorted(order[4:]) == [0, 2, 4, 6, 7]
    assert order == ranked_cells(cam).tolist()  # the same order every time
    assert order[4:] != [0, 2, 4, 6, 7]  # the zeros are not taken top row first


def test_the_curves_end_at_the_full_photo_and_the_grey_picture(model: PoolFormer) -> None:
    """Every curve starts and ends at probabilities computed here, independently: the photo's and the
    all-grey picture's (zero after normalising: the ImageNet mean colour)."""
    photo = REPO / "assets" / "examples" / "reims_cathedral.jpg"
    pixels = preprocess(load_image(photo), model.variant.crop_pct)
    church = model.class_names.index("church")
    full = float(probabilities(model, pixels)[0, church])
    grey = float(probabilities(model, torch.zeros_like(pixels))[0, church])
    result = explorer.faithfulness(photo, BUNDLED_MODEL, "church")
    assert result.target_name == "church" and result.grid == (7, 7)
    np.testing.assert_allclose(result.fractions, np.arange(FRACTION_STEPS + 1) / FRACTION_STEPS)
    assert result.full_probability == pytest.approx(full, abs=1e-5)
    assert result.grey_probability == pytest.approx(grey, abs=1e-5)
    assert [curve.name for curve in result.curves] == ["Grad-CAM", "random order", "Grad-CAM, pooling off"]
    for curve in result.curves:
        assert len(curve.deletion) == len(curve.insertion) == FRACTION_STEPS + 1
        assert (curve.deletion[0], curve.deletion[-1]) == pytest.approx((full, grey), abs=1e-5)
        assert (curve.insertion[0], curve.insertion[-1]) == pytest.approx((grey, full), abs=1e-5)
        assert curve.deletion_auc == pytest.approx(np.trapezoid(curve.deletion, result.fractions))
        assert curve.insertion_auc == pytest.approx(np.trapezoid(curve.insertion, result.fractions))


def test_the_map_orders_beat_a_random_order_on_deletion_and_insertion(val_photos: list[Path]) -> None:
    """Over ten val photos, the map's cell order gives a lower deletion and a higher insertion area under the
    curve than the fixed random order, for both attribution methods. The order of the same weights with
    pooling switched off is printed beside them."""
    print(f"\nDeletion / insertion AUC (P of the top-1 class; {FRACTION_STEPS} steps of the 7 × 7 stage-4 cells), "
          f"bundled S12, {len(val_photos)} val photos")  # fmt: skip
    for method in ATTRIBUTIONS:
        results = [explorer.faithfulness(photo, BUNDLED_MODEL, method=method) for photo in val_photos]
        names = [curve.name for curve in results[0].curves]
        areas = np.array([[(curve.deletion_auc, curve.insertion_auc) for curve in result.curves] for result in results])
        print(f"  {ATTRIBUTION_NAMES[method]}:")
        for photo, result, row in zip(val_photos, results, areas, strict=True):
            print(f"    {photo.name} ({result.target_name}, p = {result.full_probability:.2f}): "
                  + ", ".join(f"{name} {d:.3f} / {i:.3f}" for name, (d, i) in zip(names, row)))  # fmt: skip
        means = areas.mean(axis=0)
        figures = (f"{name} deletion {d:.3f}, insertion {i:.3f}" for name, (d, i) in zip(names, means))
        print("    mean: " + ", ".join(figures))
        (map_deletion, map_insertion), (random_deletion, random_insertion) = means[0], means[1]
        assert map_deletion < random_deletion, method
        assert map_insertion > random_insertion, method
