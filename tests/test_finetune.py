"""`python -m poolformer train finetune`: a tiny generated set on CPU, and the result opened in the app.

Two visually distinct classes (red-and-white stripes, green spots on blue), eight photos each: the fine-tune
starts from the bundled model (the Hugging Face cache is empty and offline), must reach high held-out accuracy
within a minute, and its output must open in `python app.py` with its own class names, exact to transformers'
PoolFormer holding the same weights.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import BUNDLED_DIR, REPO, local_client, running_app
from gradio_client import handle_file
from PIL import Image, ImageDraw
from reference import key_rows, reference_config
from safetensors import safe_open
from transformers import PoolFormerForImageClassification
from transformers.models.poolformer.image_processing_pil_poolformer import PoolFormerImageProcessorPil

from poolformer.finetune import class_photos, load_photos
from poolformer.preprocess import load_image, preprocess
from poolformer.train import holdout_split
from poolformer.weights import create_model

CLASSES = ("spots", "stripes")  # sorted: the order the outputs get
PHOTOS_PER_CLASS = 8  # 6 trained on, 2 held out (a fifth, rounded)
EPOCHS = 3
BATCH_SIZE = 4  # three steps an epoch: two epochs of one step each left the result to the head's initial draw
WITHIN_S = 60
HELD_OUT_ACCURACY = 0.9


def stripes(rng: np.random.Generator, size: int = 96) -> Image.Image:
    period, phase = rng.integers(8, 17), rng.integers(0, 16)
    rows = ((np.arange(size) + phase) // (period // 2)) % 2
    pixels = np.where(rows[:, None, None] == 1, [230, 30, 30], [250, 250, 250]) * np.ones((size, size, 3))
    return Image.fromarray(np.clip(pixels + rng.normal(0, 12, pixels.shape), 0, 255).astype(np.uint8))


def spots(rng: np.random.Generator, size: int = 96) -> Image.Image:
    picture = Image.new("RGB", (size, size), (30, 60, 200))
    draw = ImageDraw.Draw(picture)
    for _ in range(rng.integers(4, 9)):
        x, y, r = rng.integers(0, size), rng.integers(0, size), rng.integers(5, 14)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=(40, 210, 70))
    return picture


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("own-photos")
    rng = np.random.default_rng(7)
    for name, draw in zip(CLASSES, (spots, stripes)):
        (root / name).mkdir()
        for index in range(PHOTOS_PER_CLASS):
            draw(rng).save(root / name / f"{index:02d}.{'png' if index % 2 else 'jpg'}")
    return root


def offline_env(scratch: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(scratch / "empty-hf-cache"),
        "HF_HOME": str(scratch / "hf-home"),
    }


def finetune(scratch: Path, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "poolformer", "train", "finetune", *args]
    return subprocess.run(command, env=offline_env(scratch), capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def trained(photos: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess, float]:
    scratch = tmp_path_factory.mktemp("finetune")
    out = scratch / "shapes.safetensors"
    started = time.monotonic()
    result = finetune(scratch, str(photos), "--out", str(out), "--epochs", str(EPOCHS),
                      "--batch-size", str(BATCH_SIZE), "--device", "cpu")
    return out, result, time.monotonic() - started


def metadata_of(path: Path) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as checkpoint:
        return dict(checkpoint.metadata())


def test_a_tiny_set_reaches_high_held_out_accuracy_within_a_minute(trained) -> None:
    out, result, seconds = trained
    assert result.returncode == 0, result.stderr
    print(f"\ntrain finetune, {len(CLASSES)} classes x {PHOTOS_PER_CLASS} photos, {EPOCHS} epochs on CPU: {seconds:.1f} s wall")
    metadata = metadata_of(out)
    assert float(metadata["heldout_top1"]) >= HELD_OUT_ACCURACY
    assert seconds < WITHIN_S
    # One progress bar per epoch, ending with its loss and held-out accuracy.
    bars = result.stderr.replace("\r", "\n")
    for epoch in range(1, EPOCHS + 1):
        assert re.search(rf"epoch {epoch}/{EPOCHS}: 100%.*held_out=\d+\.\d%, loss=\d\.\d{{3}}", bars), bars
    assert f"held-out top-1 {float(metadata['heldout_top1']):.1%} on 4 photos" in result.stderr


def test_its_metadata_records_classes_base_recipe_and_accuracy(trained) -> None:
    out, _, _ = trained
    metadata = metadata_of(out)
    assert json.loads(metadata["class_names"]) == list(CLASSES)
    assert metadata["base_model"] == "PoolFormer-S12 · Imagenette (bundled) (poolformer_s12_imagenette.safetensors)"
    assert f"{EPOCHS} epochs, batch {BATCH_SIZE}, learning: last" in metadata["recipe"]
    assert (metadata["heldout_images"], metadata["train_images"], metadata["variant"]) == ("4", "12", "s12")
    history = json.loads(metadata["history"])
    assert [row["epoch"] for row in history] == list(range(1, EPOCHS + 1)) and history[-1]["heldout"] == float(metadata["heldout_top1"])


def test_a_rerun_with_the_same_seed_is_the_same_run(trained, photos: Path, tmp_path: Path) -> None:
    out, _, _ = trained
    again = tmp_path / "again.safetensors"
    result = finetune(tmp_path, str(photos), "--out", str(again), "--epochs", str(EPOCHS),
                      "--batch-size", str(BATCH_SIZE), "--device", "cpu", "--seed", "0")
    assert result.returncode == 0, result.stderr
    assert "seed 0" in metadata_of(out)["recipe"]
    first, second = create_model(weights=out).state_dict(), create_model(weights=again).state_dict()
    assert all(torch.equal(first[key], second[key]) for key in first)


def test_the_recorded_accuracy_is_that_of_the_saved_weights_on_the_held_out_photos(trained, photos: Path) -> None:
    out, _, _ = trained
    model = create_model(weights=out)
    samples, names = class_photos(photos)
    labels = torch.tensor([names.index(sample.wnid) for sample in samples])
    _, heldout = holdout_split(labels, 0.2)
    with torch.inference_mode():
        predicted = [model(preprocess(load_image(samples[i].path), 0.9)).argmax().item() for i in heldout.tolist()]
    assert np.mean(np.array(predicted) == labels[heldout].numpy()) == float(metadata_of(out)["heldout_top1"])


def test_the_held_out_part_is_fixed_and_stratified(photos: Path) -> None:
    samples, names = class_photos(photos)
    first, again = (load_photos(samples, names, 0.9) for _ in range(2))
    assert first.heldout_labels.tolist() == again.heldout_labels.tolist() == [0, 0, 1, 1]
    assert torch.equal(first.heldout_inputs, again.heldout_inputs)
    assert first.train_images.shape == (12, 3, 256, 256) and first.train_images.dtype == torch.uint8


def transformers_twin(path: Path, class_names: list[str]) -> PoolFormerForImageClassification:
    """transformers' PoolFormer holding the file's tensors, renamed from our (timm) layout row by row."""
    twin = PoolFormerForImageClassification(reference_config("s12", dict(enumerate(class_names)))).eval()
    ours = create_model(weights=path).state_dict()
    twin.load_state_dict({transformers: ours[timm] for transformers, _, timm in key_rows((2, 2, 6, 2))})
    return twin


@pytest.fixture(scope="module")
def app_url(trained, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    out, _, _ = trained
    with running_app(BUNDLED_DIR, tmp_path_factory.mktemp("finetune-app"), env={"POOLFORMER_MODELS": str(out)}) as url:
        yield url


def test_its_output_opens_in_the_app_exact_to_transformers(trained, photos: Path, app_url: str) -> None:
    out, _, _ = trained
    twin = transformers_twin(out, list(CLASSES))
    processor = PoolFormerImageProcessorPil(crop_pct=0.9, do_convert_rgb=True)
    client = local_client(app_url)
    for photo in (photos / "spots" / "03.png", photos / "stripes" / "04.jpg"):
        label, *_, status = client.predict(handle_file(photo), str(out), api_name="/predict")
        with torch.inference_mode():
            expected = twin(**processor(Image.open(photo), return_tensors="pt")).logits.softmax(-1)[0]
        got = {entry["label"]: entry["confidence"] for entry in label["confidences"]}
        assert set(got) == set(CLASSES) and label["label"] == photo.parent.name
        assert max(abs(got[name] - expected[index].item()) for index, name in enumerate(CLASSES)) <= 1e-5
        assert "shapes (PoolFormer-S12, fine-tuned) (shapes.safetensors)" in status


@pytest.mark.parametrize(
    ("layout", "args", "expected"),
    [
        ({"spots": 6}, [], "has photos of 1 class; fine-tuning needs at least two folders"),
        ({"spots": 6, "stripes": 3}, [], "too few photos in stripes (3); give each class at least 5"),
        ({"spots": 6, "stripes": 6}, ["--from", "owner/nowhere"], "owner/nowhere is not in the local Hugging Face cache"),
    ],
    ids=["one-class", "too-few-photos", "base-unavailable"],
)
def test_bad_input_is_one_clear_line(tmp_path: Path, layout: dict[str, int], args: list[str], expected: str) -> None:
    rng = np.random.default_rng(0)
    for name, count in layout.items():
        (tmp_path / "photos" / name).mkdir(parents=True)
        for index in range(count):
            stripes(rng).save(tmp_path / "photos" / name / f"{index}.png")
    result = finetune(tmp_path, str(tmp_path / "photos"), "--out", str(tmp_path / "out.safetensors"), *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and expected in lines[-1], result.stderr
    assert not (tmp_path / "out.safetensors").exists()
