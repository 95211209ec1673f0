"""The bundled Imagenette checkpoints (every zoo model shipped): they load with their metadata, and their
recorded accuracy and CKA hold.

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
from conftest import bundled_zoo
from reference import IMAGENETTE
from safetensors import safe_open

from poolformer.cka import CKA_KEY, PROBE_PER_CLASS, probe_samples, stage_cka
from poolformer.mixers import resolve_token_mixers
from poolformer.preprocess import load_image, preprocess
from poolformer.weights import create_model

REPO = Path(__file__).resolve().parent.parent
CHECKPOINTS = bundled_zoo()  # by layout: pooling and identity, and whichever new zoo mixers are shipped
MAX_BYTES = 33_000_000  # fp16: 23 MB for S12, 32 MB for the attention stages' extra weights
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
    assert path.stat().st_size <= MAX_BYTES
    with safe_open(str(path), framework="pt") as checkpoint:
        metadata = checkpoint.metadata()
        assert {checkpoint.get_tensor(key).dtype for key in checkpoint.keys()} == {torch.float16}
    assert metadata["variant"] == "s12" and metadata["token_mixer"] == mixer
    assert json.loads(metadata["wnids"]) == list(IMAGENETTE)
    assert json.loads(metadata["class_names"]) == NAMES
    assert 0.5 < float(metadata["val_top1"]) <= 1.0 and metadata["recipe"]

    model = create_model(weights=path, device="cpu")
    assert model.class_names == NAMES
    assert model.token_mixers == resolve_token_mixers(mixer)


def test_shipped_checkpoints_record_every_seed_of_every_mixer() -> None:
    """Every file carries the same multi-seed summary, and each one's own figure is its seed's entry in it.

    A mixer with a single seed would have no spread and no interval: NaN, which the views word."""
    summaries, texts = {}, set()
    for mixer, path in CHECKPOINTS.items():
        with safe_open(str(path), framework="pt") as checkpoint:
            metadata = checkpoint.metadata()
        texts.add(metadata["seed_summary"])
        summaries[mixer] = json.loads(metadata["seed_summary"])
        runs = summaries[mixer][mixer]["top1"]
        assert runs["0"] == float(metadata["val_top1"])  # seed 0 is the one shipped
        assert summaries[mixer][mixer]["mean"] == pytest.approx(statistics.fmean(runs.values()))
        if len(runs) > 1:
            assert summaries[mixer][mixer]["sd"] == pytest.approx(statistics.stdev(runs.values()))
        else:
            assert math.isnan(summaries[mixer][mixer]["sd"])
    assert {"pooling", "identity"} <= set(CHECKPOINTS)
    assert len(summaries["pooling"]["pooling"]["top1"]) == len(summaries["pooling"]["identity"]["top1"]) == 4
    assert len(texts) == 1  # the same summary in every file
    for mixer in CHECKPOINTS.keys() - {"pooling"}:
        gap = summaries["pooling"]["vs_pooling"][mixer]
        if len(summaries["pooling"][mixer]["top1"]) > 1:
            assert gap["ci95"][0] < gap["mean"] < gap["ci95"][1]
        else:
            assert all(math.isnan(value) for value in gap["ci95"])
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
    """Every file carries the record `train summarize` measured: the probe set, and four stages per mixer."""
    records = []
    for path in CHECKPOINTS.values():
        with safe_open(str(path), framework="pt") as checkpoint:
            records.append(json.loads(checkpoint.metadata()[CKA_KEY]))
    assert all(record == records[0] for record in records)
    record = records[0]
    assert record["reference"] == "pooling seed 0" and record["images"] == len(IMAGENETTE) * PROBE_PER_CLASS
    assert record["probe"].startswith(f"the first {PROBE_PER_CLASS} images (file names sorted) of each of the 10 class")
    mixers = [name for name in record["stages"] if not name.startswith("pooling seed")]
    assert mixers == sorted(CHECKPOINTS.keys() - {"pooling"})  # every other shipped mixer, against pooling
    assert all(0 < value < 1 for values in record["stages"].values() for value in values)


def test_recorded_cka_holds_on_a_smaller_probe(val_dir: Path) -> None:
    """Measured again on the first 5 images of each class, the shipped figures agree within sampling error
    (on the first 25 per class they agreed within 0.01; on 5 per class within 0.03)."""
    with safe_open(str(CHECKPOINTS["pooling"]), framework="pt") as checkpoint:
        recorded = json.loads(checkpoint.metadata()[CKA_KEY])["stages"]
    others = {mixer: create_model(weights=path, device="cpu") for mixer, path in CHECKPOINTS.items()}
    pooling = others.pop("pooling")
    measured = stage_cka(pooling, others, probe_samples(val_dir, 5))
    for mixer in others:
        assert measured[mixer] == pytest.approx(recorded[mixer], abs=0.06), mixer
