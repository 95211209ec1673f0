"""The training pipeline end to end on CPU: pack → fit → finalize gives a checkpoint the app and CLI load.

The data is two colours of noise, so a few epochs must learn it; that checks augmentation, mixing,
the optimiser step and EMA together without a GPU.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from reference import IMAGENETTE
from safetensors import safe_open

from poolformer.train import main as train_main
from poolformer.weights import create_model

WNIDS = list(IMAGENETTE)[:2]  # tench, English springer: real ImageNet ids, so finalize can name them


@pytest.fixture(scope="module")
def colour_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Class 0 is reddish noise, class 1 bluish noise, 24 images each."""
    root = tmp_path_factory.mktemp("colours")
    rng = np.random.default_rng(0)
    for label, wnid in enumerate(WNIDS):
        (root / wnid).mkdir()
        for i in range(24):
            pixels = rng.integers(0, 120, size=(56, 64, 3))
            pixels[..., 0 if label == 0 else 2] += 120
            Image.fromarray(pixels.astype(np.uint8)).save(root / wnid / f"{i}.png")
    return root


def test_pack_fit_finalize_produces_a_working_checkpoint(colour_dataset: Path, tmp_path: Path) -> None:
    packed, raw, final = tmp_path / "train.safetensors", tmp_path / "raw.safetensors", tmp_path / "final.safetensors"
    assert train_main(["pack", str(colour_dataset), str(packed), "--size", "40"]) == 0
    assert train_main([
        "fit", "--data", str(packed), "--val", str(packed), "--out", str(raw), "--mixer", "identity",
        "--epochs", "8", "--warmup-epochs", "1", "--batch-size", "8", "--size", "32", "--lr", "1e-3",
        "--ema", "0.9", "--no-compile",
    ]) == 0  # fmt: skip
    assert train_main(["finalize", str(raw), "--val", str(colour_dataset), "--out", str(final)]) == 0

    with safe_open(str(final), framework="pt") as checkpoint:
        metadata = checkpoint.metadata()
    assert metadata["token_mixer"] == "identity" and json.loads(metadata["wnids"]) == WNIDS
    assert json.loads(metadata["class_names"]) == [IMAGENETTE[wnid][1] for wnid in WNIDS]
    assert float(metadata["val_top1"]) >= 0.9, metadata["val_top1"]

    model = create_model(weights=final)
    assert model.token_mixers == ("identity",) * 4 and model.num_classes == 2


def test_fit_runs_data_parallel_under_torchrun(colour_dataset: Path, tmp_path: Path) -> None:
    """Two processes (gloo on CPU; NCCL on GPUs): each trains on its share, rank 0 writes the checkpoint."""
    packed, out = tmp_path / "train.safetensors", tmp_path / "ddp.safetensors"
    assert train_main(["pack", str(colour_dataset), str(packed), "--size", "40"]) == 0
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "poolformer", "train", "fit", "--data", str(packed), "--out", str(out),
        "--epochs", "2", "--warmup-epochs", "1", "--batch-size", "8", "--size", "32", "--no-compile",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=Path(__file__).parent.parent)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "batch 8 on 2 process(es)" in result.stdout and result.stdout.count("saved EMA weights") == 1
    assert create_model(weights=out).num_classes == 2
