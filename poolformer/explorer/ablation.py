"""Token-mixer ablation: the same weights with pooling swapped for identity in chosen stages."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from poolformer.explorer.cache import MODELS, status_line
from poolformer.explorer.catalogue import ModelChoice, find_choice, scratch_twin
from poolformer.explorer.common import (
    ALL_STAGES,
    ExplorerError,
    LoadReporter,
    PhotoSource,
    model_input,
    photo_from,
    top_k,
)
from poolformer.model import NUM_STAGES, PoolFormer


@dataclass(frozen=True)
class Run:
    """One model's answer in the ablation: its name, full class probabilities and top-5."""

    name: str
    probabilities: np.ndarray
    top5: dict[str, float]


@dataclass(frozen=True)
class Ablation:
    choice: ModelChoice
    status: str
    swapped_stages: tuple[int, ...]
    class_names: list[str]
    pooling: Run
    identity: Run
    stage_cosine: list[float]  # per stage: cosine similarity of pooling vs identity features
    top1_agrees: bool
    kl_divergence: float  # KL(pooling || identity), nats
    scratch: Run | None  # the identity-mixer model trained from scratch, when one is bundled
    scratch_choice: ModelChoice | None


def run_of(name: str, logits: torch.Tensor, class_names: Sequence[str]) -> Run:
    probabilities = logits[0].softmax(-1)
    return Run(name, probabilities.cpu().numpy(), top_k(probabilities, class_names))


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0))


def kl_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p || q) in nats; probabilities are clipped so an impossible class can't make it infinite."""
    p64, q64 = p.astype(np.float64), np.clip(q.astype(np.float64), 1e-12, None)
    divergence = float(np.sum(p64 * (np.log(np.clip(p64, 1e-12, None)) - np.log(q64))))
    return max(divergence, 0.0)  # float32 probabilities can sum to 1 +- 1e-7, giving a tiny negative


def identity_mixers(stages: Sequence[int]) -> list[str]:
    """Per-stage mixer names with the chosen stages (numbered 1-4) switched to identity."""
    try:
        chosen = {int(stage) for stage in stages}
    except (TypeError, ValueError):
        raise ExplorerError(f"stages must be numbers from 1 to {NUM_STAGES}; got {list(stages)}") from None
    if not chosen:
        raise ExplorerError("tick at least one stage whose token mixer should become identity")
    if not chosen <= set(ALL_STAGES):
        raise ExplorerError(f"stages are numbered 1 to {NUM_STAGES}; got {sorted(chosen)}")
    return ["identity" if number in chosen else "pooling" for number in ALL_STAGES]


def forward_both(
    model: PoolFormer, mixers: Sequence[str], pixels: torch.Tensor
) -> tuple[tuple[torch.Tensor, list[torch.Tensor]], tuple[torch.Tensor, list[torch.Tensor]]]:
    """(logits, stage outputs) of the model as trained and of its twin with `mixers`, sharing the common start.

    Both start with the same stem and, up to the first swapped stage, the same stages on the same input, so
    those are computed once: the same numbers as two full passes, for less work when early stages keep pooling.
    """
    twin = model.with_token_mixers(mixers)
    first_swapped = list(mixers).index("identity")
    x = y = model.stem(pixels)
    pooled_stages, twin_stages = [], []
    for index, (stage, twin_stage) in enumerate(zip(model.stages, twin.stages)):
        x = stage(x)
        y = x if index < first_swapped else twin_stage(y)
        pooled_stages.append(x)
        twin_stages.append(y)
    return (model.head(x), pooled_stages), (twin.head(y), twin_stages)


@torch.inference_mode()
def ablate(
    source: PhotoSource | None,
    value: str,
    stages: Sequence[int] = ALL_STAGES,
    report: LoadReporter | None = None,
) -> Ablation:
    """The same weights with pooling swapped for identity in the chosen stages, side by side."""
    choice = find_choice(value)
    if choice.token_mixer != "pooling":
        raise ExplorerError(f"{choice.name} already mixes tokens by identity; pick a pooling model to ablate")
    mixers = identity_mixers(stages)
    pixels = model_input(photo_from(source), choice.variant)
    model = MODELS.get(choice, report)
    (pooled_logits, pooled_stages), (identity_logits, identity_stages) = forward_both(model, mixers, pixels)
    pooling = run_of("pooling (as trained)", pooled_logits, model.class_names)
    identity = run_of("identity swapped in", identity_logits, model.class_names)

    twin = scratch_twin(choice)
    scratch = None
    if twin is not None:
        twin_model = MODELS.get(twin, report)  # same dataset, so the same classes in the same order
        scratch = run_of("identity, trained from scratch", twin_model(pixels), twin_model.class_names)
    return Ablation(
        choice=choice,
        status=status_line(model),
        swapped_stages=tuple(number for number, mixer in zip(ALL_STAGES, mixers) if mixer == "identity"),
        class_names=list(model.class_names),
        pooling=pooling,
        identity=identity,
        stage_cosine=[cosine(a, b) for a, b in zip(pooled_stages, identity_stages)],
        top1_agrees=int(pooling.probabilities.argmax()) == int(identity.probabilities.argmax()),
        kl_divergence=kl_divergence(pooling.probabilities, identity.probabilities),
        scratch=scratch,
        scratch_choice=twin,
    )


