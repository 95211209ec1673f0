"""`python -m poolformer` run as a real subprocess: JSON output, accuracy counting, and one-line errors.

Checkpoints are made here from random models in our bundled format (fp16 safetensors + metadata).
Every run is offline with an empty Hugging Face cache, so nothing can reach the network.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from reference import fake_hub_snapshot, reference_model
from safetensors.torch import save_file
from transformers.models.poolformer.image_processing_pil_poolformer import PoolFormerImageProcessorPil

from poolformer.model import VARIANTS, PoolFormer
from poolformer.preprocess import load_image, preprocess
from poolformer.weights import create_model

REPO_ROOT = Path(__file__).resolve().parent.parent
# Three Imagenette classes (wnid, name); the 10-class checkpoint lists them in its own order.
TENCH, SPRINGER, CASSETTE = ("n01440764", "tench"), ("n02102040", "English springer"), ("n02979186", "cassette player")
OWN_CLASSES = [CASSETTE, ("n03888257", "parachute"), SPRINGER, ("n03000684", "chain saw"), TENCH] + [
    ("n03028079", "church"),
    ("n03394916", "French horn"),
    ("n03417042", "garbage truck"),
    ("n03425413", "gas pump"),
    ("n03445777", "golf ball"),
]
IMAGES_PER_CLASS = 2


def save_checkpoint(path: Path, model: PoolFormer, classes: list[tuple[str, str]] | None = None) -> Path:
    """Our bundled layout: fp16 tensors, class list and wnids as JSON strings in the metadata."""
    metadata = {"variant": model.variant.name, "token_mixer": "pooling", "name": f"test checkpoint {path.stem}"}
    if classes:
        metadata |= {"wnids": json.dumps([w for w, _ in classes]), "class_names": json.dumps([n for _, n in classes])}
    save_file({key: value.half().contiguous() for key, value in model.state_dict().items()}, path, metadata=metadata)
    return path


def opinionated_model(num_classes: int, seed: int) -> PoolFormer:
    """Random weights with a sharpened head, so different images get clearly different predictions."""
    torch.manual_seed(seed)
    model = PoolFormer(VARIANTS["s12"], num_classes)
    with torch.no_grad():
        model.head.fc.weight.mul_(50)
    return model


def ranked_model(num_classes: int, ranking: list[int]) -> PoolFormer:
    """A head that ignores the image: `ranking` on top, then the other classes from the highest index down."""
    model = PoolFormer(VARIANTS["s12"], num_classes)
    with torch.no_grad():
        model.head.fc.weight.zero_()
        model.head.fc.bias.copy_(torch.arange(num_classes) / num_classes)
        for place, index in enumerate(ranking):
            model.head.fc.bias[index] = 10.0 - place
    return model


def write_photo(path: Path, seed: int, size: tuple[int, int] = (96, 72)) -> Path:
    """A smooth random picture (upsampled noise) saved as JPEG or PNG by its suffix."""
    noise = np.random.default_rng(seed).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    Image.fromarray(noise).resize(size, Image.Resampling.BICUBIC).save(path)
    return path


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    save_checkpoint(root / "own10.safetensors", opinionated_model(10, seed=1), OWN_CLASSES)
    save_checkpoint(root / "imagenet.safetensors", opinionated_model(1000, seed=2))
    # tench is always first, springer second; cassette player (own index 0, ImageNet 482) is not in the top 5.
    save_checkpoint(root / "ranked10.safetensors", ranked_model(10, [4, 2]), OWN_CLASSES)
    save_checkpoint(root / "ranked1000.safetensors", ranked_model(1000, [0, 217]))
    write_photo(root / "cat.png", seed=3)
    write_photo(root / "dog.jpg", seed=4, size=(60, 140))
    for number, (wnid, _) in enumerate((TENCH, SPRINGER, CASSETTE)):
        (root / "val" / wnid).mkdir(parents=True)
        for i in range(IMAGES_PER_CLASS):
            write_photo(root / "val" / wnid / f"{i}.JPEG", seed=10 * number + i)
    (root / "val" / TENCH[0] / "notes.txt").write_text("not an image; eval must skip it\n")
    (root / "unknown" / "n99999999").mkdir(parents=True)
    write_photo(root / "unknown" / "n99999999" / "0.jpg", seed=99)
    (root / "corrupt.jpg").write_bytes((root / "dog.jpg").read_bytes()[:300])
    (root / "garbage.safetensors").write_bytes(b"\x00" * 64 + b"definitely not tensors")
    (root / "hf-cache").mkdir()
    return root


def run_cli(work: Path, *args: str, hub_cache: str = "hf-cache") -> subprocess.CompletedProcess:
    env = os.environ | {
        "PYTHONPATH": str(REPO_ROOT),
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(work / hub_cache),
        "HF_HOME": str(work / "hf-home"),
    }
    return subprocess.run(
        [sys.executable, "-m", "poolformer", *args], cwd=work, env=env, capture_output=True, text=True, timeout=120
    )


def expected_probs(model: PoolFormer, image: Path) -> torch.Tensor:
    """What the CLI should print, computed in this process through the public API."""
    with torch.inference_mode():
        return model(preprocess(load_image(image), model.variant.crop_pct)).softmax(-1)[0]


@pytest.mark.parametrize("weights", ["own10.safetensors", "imagenet.safetensors"])
def test_predict_json_schema_and_probabilities(work: Path, weights: str) -> None:
    result = run_cli(work, "predict", "--weights", weights, "--top", "3", "--json", "cat.png", "dog.jpg")
    assert result.returncode == 0, result.stderr
    predictions = json.loads(result.stdout)
    assert [p["image"] for p in predictions] == ["cat.png", "dog.jpg"]
    model = create_model(weights=work / weights)
    for prediction in predictions:
        assert set(prediction) == {"image", "variant", "top"} and prediction["variant"] == "s12"
        probs = expected_probs(model, work / prediction["image"])
        top = prediction["top"]
        assert len(top) == 3
        assert [entry["index"] for entry in top] == probs.topk(3).indices.tolist()
        for entry in top:
            assert set(entry) == {"index", "label", "prob"}
            assert isinstance(entry["index"], int) and isinstance(entry["prob"], float)
            assert entry["label"] == model.class_names[entry["index"]]
            assert abs(entry["prob"] - probs[entry["index"]].item()) < 1e-5
    if weights == "own10.safetensors":
        assert {entry["label"] for p in predictions for entry in p["top"]} <= {name for _, name in OWN_CLASSES}


def test_predict_defaults_to_hub_weights_and_matches_transformers(work: Path) -> None:
    """End to end against the reference: transformers' model and PIL processor on the same file."""
    reference = reference_model("s12", seed=5)
    reference.save_pretrained(fake_hub_snapshot(work / "hf-cache-s12", "sail/poolformer_s12"))
    result = run_cli(work, "predict", "--json", "dog.jpg", hub_cache="hf-cache-s12")
    assert result.returncode == 0, result.stderr
    [prediction] = json.loads(result.stdout)
    processor = PoolFormerImageProcessorPil(crop_pct=0.9, do_convert_rgb=True)
    with torch.inference_mode():
        probs = reference(**processor(Image.open(work / "dog.jpg"), return_tensors="pt")).logits.softmax(-1)[0]
    assert [entry["index"] for entry in prediction["top"]] == probs.topk(5).indices.tolist()
    for entry in prediction["top"]:
        assert entry["label"] == reference.config.id2label[entry["index"]]
        assert abs(entry["prob"] - probs[entry["index"]].item()) < 1e-5


def test_predict_text_output_names_the_model_and_classes(work: Path) -> None:
    result = run_cli(work, "predict", "--weights", "ranked10.safetensors", "--top", "2", "dog.jpg")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("test checkpoint ranked10") and lines[0].endswith("[s12, pooling token mixer]")
    assert "dog.jpg" in lines and "tench (#4)" in lines[-2] and "English springer (#2)" in lines[-1]


@pytest.mark.parametrize("weights", ["ranked10.safetensors", "ranked1000.safetensors"])
def test_eval_counts_top1_and_top5_through_the_wnid_mapping(work: Path, weights: str) -> None:
    """Every image is predicted tench, then springer: 2 of 6 are top-1 hits, 4 of 6 top-5 hits."""
    result = run_cli(work, "eval", "val", "--weights", weights, "--batch-size", "4", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"top1": pytest.approx(2 / 6), "top5": pytest.approx(4 / 6), "n": 6}
    assert "6/6" in result.stderr  # the progress bar went to stderr


def test_train_is_dispatched_to_the_trainer(work: Path) -> None:
    result = run_cli(work, "train", "--help")
    assert result.returncode == 0, result.stderr
    assert "pack" in result.stdout and "fit" in result.stdout


BAD_RUNS = {
    "missing image": (["predict", "--weights", "own10.safetensors", "missing.png"], "no such file"),
    "corrupt image": (["predict", "--weights", "own10.safetensors", "corrupt.jpg"], "corrupt.jpg"),
    "missing weights file": (["predict", "--weights", "nowhere.safetensors", "cat.png"], "nowhere.safetensors"),
    "bad checkpoint": (["predict", "--weights", "garbage.safetensors", "cat.png"], "garbage.safetensors"),
    "hub weights unavailable": (["predict", "cat.png"], "sail/poolformer_s12"),
    "unknown wnid folder": (["eval", "unknown", "--weights", "ranked10.safetensors"], "n99999999"),
}


def test_one_bad_image_loses_none_of_the_good_ones(work: Path) -> None:
    result = run_cli(work, "predict", "--weights", "own10.safetensors", "--json", "cat.png", "missing.png", "cat.png")
    assert result.returncode == 2
    assert [entry["image"] for entry in json.loads(result.stdout)] == ["cat.png", "cat.png"]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: missing.png"), result.stderr


@pytest.mark.parametrize("case", list(BAD_RUNS))
def test_failures_exit_2_with_one_error_line(work: Path, case: str) -> None:
    args, mentioned = BAD_RUNS[case]
    result = run_cli(work, *args)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert mentioned in lines[0]
