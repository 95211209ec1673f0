"""The bundled Imagenette checkpoints: they load with their metadata, and their recorded accuracy holds.

Evaluation images come from the shared Imagenette copy beside the repository (../shared/datasets), or
from $IMAGENETTE_DIR; they are ImageNet photos, so they are never copied into the repo.
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from reference import IMAGENETTE
from safetensors import safe_open

from poolformer.cka import CKA_KEY, PROBE_PER_CLASS, probe_samples, stage_cka
from poolformer.preprocess import load_image, preprocess
from poolformer.weights import create_model

REPO = Path(__file__).resolve().parent.parent
CHECKPOINTS = {
    "pooling": REPO / "assets" / "checkpoints" / "poolformer_s12_imagenette.safetensors",
    "identity": REPO / "assets" / "checkpoints" / "identityformer_s12_imagenette.safetensors",
}
NAMES = [name for _, name in IMAGENETTE.values()]
PER_CLASS = 20  # 200 images: the subset's accuracy has a standard error of about 2 points


@pytest.fixture(scope="module")
def val_subset(val_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every k-th image of each class, linked into a class-per-folder tree like the full split."""
    subset = tmp_path_factory.mktemp("imagenette-val-subset")
    for wnid in IMAGENETTE:
        files = sorted((val_dir / wnid).iterdir())
        (subset / wnid).mkdir()
        for path in files[:: len(files) // PER_CLASS][:PER_CLASS]:
            (subset / wnid / path.name).symlink_to(path)
    return subset


@pytest.mark.parametrize("mixer", CHECKPOINTS)
def test_checkpoint_is_self_describing(mixer: str) -> None:
    path = CHECKPOINTS[mixer]
    assert path.stat().st_size <= 25_000_000
    with safe_open(str(path), framework="pt") as checkpoint:
        metadata = checkpoint.metadata()
        assert {checkpoint.get_tensor(key).dtype for key in checkpoint.keys()} == {torch.float16}
    assert metadata["variant"] == "s12" and metadata["token_mixer"] == mixer
    assert json.loads(metadata["wnids"]) == list(IMAGENETTE)
    assert json.loads(metadata["class_names"]) == NAMES
    assert 0.5 < float(metadata["val_top1"]) <= 1.0 and metadata["recipe"]

    model = create_model(weights=path, device="cpu")
    assert model.class_names == NAMES
    assert model.token_mixers == (mixer,) * 4


def test_shipped_checkpoints_record_every_seed_of_both_mixers() -> None:
    """Both files carry the same multi-seed summary, and each one's own figure is its seed's entry in it."""
    summaries = {}
    for mixer, path in CHECKPOINTS.items():
        with safe_open(str(path), framework="pt") as checkpoint:
            metadata = checkpoint.metadata()
        summaries[mixer] = json.loads(metadata["seed_summary"])
        runs = summaries[mixer][mixer]["top1"]
        assert len(runs) >= 2 and runs["0"] == float(metadata["val_top1"])  # seed 0 is the one shipped
        assert summaries[mixer][mixer]["mean"] == pytest.approx(statistics.fmean(runs.values()))
        assert summaries[mixer][mixer]["sd"] == pytest.approx(statistics.stdev(runs.values()))
    assert summaries["pooling"] == summaries["identity"]
    low, high = summaries["pooling"]["gap"]["ci95"]
    assert low < summaries["pooling"]["gap"]["mean"] < high


def test_pooling_model_classifies_val_images(val_dir: Path) -> None:
    """The first image of every class, through the same path the app and CLI use."""
    model = create_model(weights=CHECKPOINTS["pooling"], device="cpu")
    pictures = [load_image(sorted((val_dir / wnid).iterdir())[0]) for wnid in IMAGENETTE]
    batch = torch.cat([preprocess(picture, model.variant.crop_pct) for picture in pictures])
    with torch.inference_mode():
        predicted = [model.class_names[i] for i in model(batch).argmax(dim=1).tolist()]
    correct = sum(p == truth for p, truth in zip(predicted, NAMES))
    assert correct >= 8, list(zip(predicted, NAMES))


@pytest.mark.parametrize("mixer", CHECKPOINTS)
def test_subset_accuracy_matches_recorded_figure(mixer: str, val_subset: Path) -> None:
    """`python -m poolformer eval` on 200 val images agrees with the metadata within sampling error."""
    result = subprocess.run(
        [sys.executable, "-m", "poolformer", "eval", str(val_subset), "--weights", str(CHECKPOINTS[mixer]), "--json"],
        capture_output=True, text=True, cwd=REPO, check=True, timeout=600,
    )  # fmt: skip
    measured = json.loads(result.stdout)
    with safe_open(str(CHECKPOINTS[mixer]), framework="pt") as checkpoint:
        recorded = float(checkpoint.metadata()["val_top1"])
    assert measured["n"] == len(IMAGENETTE) * PER_CLASS
    standard_error = math.sqrt(recorded * (1 - recorded) / measured["n"])
    assert abs(measured["top1"] - recorded) <= 3 * standard_error + 1e-9, (measured, recorded)


def test_shipped_checkpoints_record_each_mixers_cka_to_pooling() -> None:
    """Both files carry the record `train summarize` measured: the probe set, and four stages per mixer."""
    records = []
    for path in CHECKPOINTS.values():
        with safe_open(str(path), framework="pt") as checkpoint:
            records.append(json.loads(checkpoint.metadata()[CKA_KEY]))
    assert records[0] == records[1]
    record = records[0]
    assert record["reference"] == "pooling seed 0" and record["images"] == len(IMAGENETTE) * PROBE_PER_CLASS
    assert record["probe"].startswith(f"the first {PROBE_PER_CLASS} images (file names sorted) of each of the 10 class")
    assert list(record["stages"]) == ["identity"] and all(0 < value < 1 for value in record["stages"]["identity"])


def test_recorded_cka_holds_on_a_smaller_probe(val_dir: Path) -> None:
    """Measured again on the first 5 images of each class, the shipped figures agree within sampling error
    (on the first 25 per class they agreed within 0.01; on 5 per class within 0.03)."""
    with safe_open(str(CHECKPOINTS["pooling"]), framework="pt") as checkpoint:
        recorded = json.loads(checkpoint.metadata()[CKA_KEY])["stages"]["identity"]
    pooling, identity = (create_model(weights=path, device="cpu") for path in CHECKPOINTS.values())
    measured = stage_cka(pooling, {"identity": identity}, probe_samples(val_dir, 5))["identity"]
    assert measured == pytest.approx(recorded, abs=0.06)
