"""Token-mixer ablation: the same weights with pooling swapped for identity, or resized, in chosen stages."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch

from poolformer.explorer.cache import MODELS, loaded_model, status_line
from poolformer.explorer.catalogue import ModelChoice, find_choice, scratch_twin, zoo_choices
from poolformer.explorer.common import (
    ALL_STAGES,
    ExplorerError,
    LoadReporter,
    PhotoSource,
    model_input,
    photo_from,
    shown,
    side_by_side,
    top_k,
)
from poolformer.explorer.measured import MeasuredRun, measured_run
from poolformer.model import NUM_STAGES, PoolFormer

TRAINED_POOL_SIZE = 3  # every pooling checkpoint we serve was trained with 3 x 3 pooling
POOL_SIZES = (TRAINED_POOL_SIZE, 5, 7)  # 5 and 7 are inference-time what-ifs on those weights


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
    swapped_stages: tuple[int, ...]  # stages whose mixer became identity
    mixers: tuple[str, ...]  # the ablated run's mixer per stage, e.g. ("pooling-5", "pooling", "identity", "identity")
    class_names: list[str]
    pooling: Run
    identity: Run
    stage_cosine: list[float]  # per stage: cosine similarity of pooling vs identity features
    top1_agrees: bool
    kl_divergence: float  # KL(pooling || identity), nats
    scratch: Run | None  # the identity-mixer model trained from scratch, when one is bundled
    scratch_choice: ModelChoice | None
    zoo: list[MeasuredRun]  # with a scratch twin: every bundled mixer model trained alike, as it measured on val


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


def chosen_stages(stages: Sequence[int]) -> set[int]:
    """Validate stage numbers (1-4) from the UI or the API."""
    if not isinstance(stages, (list, tuple, set)) or len(stages) > NUM_STAGES:
        raise ExplorerError(f"stages must be a list of at most {NUM_STAGES} numbers from 1 to {NUM_STAGES}; got {shown(stages)}")
    try:
        chosen = {int(stage) for stage in stages}
    except (TypeError, ValueError, OverflowError):
        raise ExplorerError(f"stages must be numbers from 1 to {NUM_STAGES}; got {shown(list(stages))}") from None
    if not chosen <= set(ALL_STAGES):
        raise ExplorerError(f"stages are numbered 1 to {NUM_STAGES}; got {shown(sorted(chosen))}")
    return chosen


def identity_mixers(stages: Sequence[int]) -> list[str]:
    """Per-stage mixer names with the chosen stages (numbered 1-4) switched to identity."""
    chosen = chosen_stages(stages)
    if not chosen:
        raise ExplorerError("tick at least one stage whose token mixer should become identity, or pick a pool size other than 3")
    return ["identity" if number in chosen else "pooling" for number in ALL_STAGES]


def pooling_mixer(pool_size: int) -> str:
    """The TOKEN_MIXERS name of average pooling with this window ("pooling" is the trained 3 x 3)."""
    return "pooling" if pool_size == TRAINED_POOL_SIZE else f"pooling-{pool_size}"


def pool_size(mixer: str) -> int:
    """The window of a pooling mixer name, the inverse of `pooling_mixer`: "pooling" → 3, "pooling-5" → 5."""
    return int(mixer.removeprefix("pooling").lstrip("-") or TRAINED_POOL_SIZE)


def ablation_mixers(stages: Sequence[int], pool_sizes: Sequence[int] | None = None) -> list[str]:
    """Per stage: identity where chosen, else pooling with that stage's pool size (3, as trained, by default)."""
    if pool_sizes is not None and len(pool_sizes) != NUM_STAGES:
        raise ExplorerError(f"give one pool size per stage ({NUM_STAGES}), each 3, 5 or 7; got {shown(pool_sizes)}")
    try:
        sizes = [TRAINED_POOL_SIZE] * NUM_STAGES if pool_sizes is None else [int(size) for size in pool_sizes]
    except (TypeError, ValueError, OverflowError):
        raise ExplorerError(f"pool sizes must be 3, 5 or 7; got {shown(list(pool_sizes or []))}") from None
    if not set(sizes) <= set(POOL_SIZES):
        raise ExplorerError(f"give one pool size per stage ({NUM_STAGES}), each 3, 5 or 7; got {shown(sizes)}")
    if all(size == TRAINED_POOL_SIZE for size in sizes):
        return identity_mixers(stages)
    chosen = chosen_stages(stages)
    return ["identity" if number in chosen else pooling_mixer(size) for number, size in zip(ALL_STAGES, sizes)]


def run_stages(
    model: PoolFormer, x: torch.Tensor, outputs: list[torch.Tensor], stop: int = NUM_STAGES
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Carry a pass on from stage len(outputs) + 1 up to stage `stop`, collecting each stage's output."""
    outputs = list(outputs)
    for stage in model.stages[len(outputs) : stop]:
        x = stage(x)
        outputs.append(x)
    return x, outputs


def finish(model: PoolFormer, x: torch.Tensor, outputs: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The rest of a pass: the remaining stages and the head."""
    x, outputs = run_stages(model, x, outputs)
    return model.head(x), outputs


Pass = tuple[torch.Tensor, list[torch.Tensor]]  # logits and the four stage outputs


def ablation_passes(
    model: PoolFormer, mixers: Sequence[str], pixels: torch.Tensor, scratch: PoolFormer | None = None
) -> tuple[Pass, Pass, torch.Tensor | None]:
    """The model as trained and with `mixers` (logits, stage outputs), and the scratch twin's logits.

    The stem and the stages before the first changed mixer are computed once (same input, same weights);
    the rest of both passes and the scratch twin's pass are independent, so they run side by side.
    The numbers are those of separate full passes.
    """
    twin = model.with_token_mixers(mixers)
    first_changed = next(
        (index for index, (trained, ablated) in enumerate(zip(model.token_mixers, mixers)) if trained != ablated), len(mixers)
    )
    x, common = run_stages(model, model.stem(pixels), [], stop=first_changed)  # the part both passes share
    jobs: list[Callable[[], Any]] = [partial(finish, model, x, common), partial(finish, twin, x, common)]
    if scratch is not None:
        jobs.append(partial(scratch, pixels))
    trained, ablated, *scratch_logits = side_by_side(*jobs)
    return trained, ablated, scratch_logits[0] if scratch_logits else None


@torch.inference_mode()
def ablate(
    source: PhotoSource | None,
    value: str,
    stages: Sequence[int] = ALL_STAGES,
    report: LoadReporter | None = None,
    pool_sizes: Sequence[int] | None = None,
) -> Ablation:
    """The same weights as trained and with other token mixers, side by side.

    The chosen stages get the identity mixer; the others pool with `pool_sizes` (one per stage,
    3 as trained when None). Sizes 5 and 7 are what-ifs: these weights were trained with 3.
    """
    choice = find_choice(value)
    if choice.token_mixer != "pooling":
        mixer = choice.token_mixer
        how = "already mixes tokens by identity" if mixer == "identity" else f"mixes tokens by {mixer}"
        raise ExplorerError(f"{choice.name} {how}; pick a pooling model to ablate")
    mixers = ablation_mixers(stages, pool_sizes)
    photo = photo_from(source)
    choice, model = loaded_model(value, report)
    pixels = model_input(photo, model.variant)
    twin = scratch_twin(choice)
    twin_model = None if twin is None else MODELS.get(twin, report)  # same dataset: same classes, same order
    (pooled_logits, pooled_stages), (identity_logits, identity_stages), scratch_logits = ablation_passes(
        model, mixers, pixels, twin_model
    )
    pooling = run_of("pooling (as trained)", pooled_logits, model.class_names)
    resized = any(mixer.startswith("pooling-") for mixer in mixers)
    identity = run_of("your mixers (what-if)" if resized else "identity swapped in", identity_logits, model.class_names)
    scratch = None if twin_model is None else run_of("identity, trained from scratch", scratch_logits, twin_model.class_names)
    return Ablation(
        choice=choice,
        status=status_line(model),
        swapped_stages=tuple(number for number, mixer in zip(ALL_STAGES, mixers) if mixer == "identity"),
        mixers=tuple(mixers),
        class_names=list(model.class_names),
        pooling=pooling,
        identity=identity,
        stage_cosine=[cosine(a, b) for a, b in zip(pooled_stages, identity_stages)],
        top1_agrees=int(pooling.probabilities.argmax()) == int(identity.probabilities.argmax()),
        kl_divergence=kl_divergence(pooling.probabilities, identity.probabilities),
        scratch=scratch,
        scratch_choice=twin,
        zoo=[] if twin is None else [measured_run(member) for member in zoo_choices() if "val_top1" in member.metadata],
    )


