"""A training run's resumable state: `train fit` keeps one beside its output every few epochs and when its
--time-limit runs out, so a long run can span several shorter sessions on a GPU host."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from poolformer.model import PoolFormer


def resume_path(out: Path) -> Path:
    """Where `fit` keeps the state it resumes from: beside the checkpoint it will write, gone once it has."""
    return out.with_name(out.stem + ".state.pt")


def save_state(
    path: Path, epoch: int, seconds: float, model: PoolFormer, ema: PoolFormer, optimizer: torch.optim.Optimizer,
    generator: torch.Generator, mix_rng: np.random.Generator,
) -> None:
    """Everything a run needs to go on after `epoch` epochs: weights, EMA, optimiser and every random stream."""
    state = {
        "epoch": epoch,
        "seconds": seconds,
        "model": model.state_dict(),
        "ema": ema.state_dict(),
        "optimizer": optimizer.state_dict(),
        "generator": generator.get_state(),
        "mix_rng": json.dumps(mix_rng.bit_generator.state),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state() if torch.cuda.is_available() else torch.empty(0, dtype=torch.uint8),
    }
    partial = path.with_suffix(".partial")
    torch.save(state, partial)
    partial.replace(path)  # a run killed while saving keeps the previous state whole


def load_state(
    path: Path, model: PoolFormer, ema: PoolFormer, optimizer: torch.optim.Optimizer,
    generator: torch.Generator, mix_rng: np.random.Generator,
) -> tuple[int, float]:
    """Restore what `save_state` wrote (tensors only: weights_only=True); returns the epoch to start from and
    the training seconds spent before it."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    ema.load_state_dict(state["ema"])
    optimizer.load_state_dict(state["optimizer"])
    generator.set_state(state["generator"])
    mix_rng.bit_generator.state = json.loads(state["mix_rng"])
    torch.set_rng_state(state["torch_rng"])
    if torch.cuda.is_available() and state["cuda_rng"].numel():
        torch.cuda.set_rng_state(state["cuda_rng"])
    return int(state["epoch"]), float(state["seconds"])
