"""Compare: one photo through every model whose weights are on this machine, with measured latency."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from functools import cache

import numpy as np
import torch
from PIL import Image

from poolformer.complexity import macs
from poolformer.explorer.cache import MODELS
from poolformer.explorer.catalogue import ModelChoice, model_choices, weights_available
from poolformer.explorer.common import (
    DEVICE,
    ExplorerError,
    LoadReporter,
    PhotoSource,
    energy,
    input_photo,
    model_input,
    photo_from,
    top_k,
)
from poolformer.compiled import CompiledPoolFormer
from poolformer.model import VARIANTS, CpuServedPoolFormer, PoolFormer
from poolformer.preprocess import INPUT_SIZE

TIMED_RUNS = 3


@dataclass(frozen=True)
class Comparison:
    """One model's row in the comparison table, plus its stage-4 map for the side-by-side view."""

    choice: ModelChoice
    top5: dict[str, float]
    params_m: float
    gmacs: float  # at 224 px: the authors' figure for official weights, counted like theirs for bundled mixers
    latency_ms: float  # median of TIMED_RUNS forward passes on DEVICE
    engine: str  # what ran those passes: models differ (a CPU session or a compiled graph only for models in use)
    photo: Image.Image
    stage4_energy: np.ndarray


def median_latency_ms(model: PoolFormer, pixels: torch.Tensor) -> float:
    """Median wall time of a forward pass; the caller's own pass has already warmed the model up."""
    timings = []
    for _ in range(TIMED_RUNS):
        start = time.perf_counter()
        model(pixels)
        if DEVICE.type == "cuda":
            torch.cuda.synchronize()
        timings.append((time.perf_counter() - start) * 1000)
    return statistics.median(timings)


def engine(model: PoolFormer) -> str:
    """What serves the model's as-trained pass now: ONNX Runtime (poolformer/fast_cpu.py), a compiled CUDA graph
    (poolformer/compiled.py) or torch eagerly."""
    if isinstance(model, CpuServedPoolFormer) and model.cpu_passes.state == "ready":
        return "ONNX Runtime"
    return "compiled CUDA graph" if isinstance(model, CompiledPoolFormer) else f"torch eager, {DEVICE.type}"


@cache
def counted_gmacs(variant: str, token_mixers: tuple[str, ...], num_classes: int) -> float:
    """GMACs of one pass at 224 px, counted as the authors did (poolformer.complexity), once per layout.

    The model runs on the meta device: counting needs shapes, not weights or arithmetic.
    """
    with torch.device("meta"):
        model = PoolFormer(VARIANTS[variant], num_classes, token_mixers=token_mixers).eval()
        return macs(model, INPUT_SIZE) / 1e9


def gmacs(choice: ModelChoice, model: PoolFormer) -> float:
    """The authors' figure for their own weights; counted for every other model (its mixers, its classes)."""
    if choice.official:
        return choice.variant.macs_g
    return round(counted_gmacs(choice.variant.name, model.token_mixers, model.num_classes), 1)


@torch.inference_mode()
def compare_one(choice: ModelChoice, photo: Image.Image, report: LoadReporter | None) -> Comparison:
    with MODELS.borrowed(choice, report) as model:
        choice = choice.knowing(model)
        pixels = model_input(photo, model.variant)
        logits, stage_outputs = model.forward_with_stages(pixels)
        return Comparison(
            choice=choice,
            top5=top_k(logits[0].softmax(-1), model.class_names),
            params_m=sum(parameter.numel() for parameter in model.parameters()) / 1e6,
            gmacs=gmacs(choice, model),
            latency_ms=median_latency_ms(model, pixels),
            engine=engine(model),
            photo=input_photo(pixels),
            stage4_energy=energy(stage_outputs[-1]),
        )


def compare(source: PhotoSource | None, report: LoadReporter | None = None) -> list[Comparison]:
    """One photo through every model whose weights are on this machine (bundled or HF-cached)."""
    photo = photo_from(source)
    available = [choice for choice in model_choices() if weights_available(choice)]
    if not available:
        raise ExplorerError("no model weights on this machine: download one with the CLI or pick a model to fetch it")
    return [compare_one(choice, photo, report) for choice in available]
