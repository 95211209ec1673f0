"""Cascading model randomisation: the sanity check of Adebayo et al., "Sanity Checks for Saliency Maps"
(NeurIPS 2018, arXiv 1810.03292).

A map that explains the model must change when the model's learnt weights are destroyed. The check
re-initialises the weights from the output down, the head first, then stage 4, stage 3 and so on, and asks
how much each map still resembles the original (Spearman rank correlation). A map that stays the same
describes the photo (edges, bright regions), not what the model learnt.

The randomised models are twins: they share every weight they keep with the model, and the randomised parts
get fresh tensors, so the shared model (and every concurrent request on it) is never touched.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from poolformer.model import NUM_STAGES, LayerScale, PoolFormer, shallow_copy

# The parts of a PoolFormer in the order the cascade randomises them: from the classifier down to the pixels.
CASCADE = ("head", *(f"stage {number}" for number in range(NUM_STAGES, 0, -1)), "stem")
RANDOM_SEED = 0
INIT_STD = 0.02  # convolution and linear weights, as PoolFormer is initialised before training (model._init_weights)


def part_of(model: PoolFormer, part: str) -> nn.Module:
    """The module of a CASCADE part: "head", "stage 1"..."stage 4" or "stem"."""
    if part == "head":
        return model.head
    if part == "stem":
        return model.stem
    if part.startswith("stage ") and part.removeprefix("stage ").isdigit() and 1 <= int(part[6:]) <= NUM_STAGES:
        return model.stages[int(part[6:]) - 1]
    raise ValueError(f"unknown model part {part!r}; choose from {', '.join(CASCADE)}")


def reinitialised(module: nn.Module, generator: torch.Generator, layer_scale_init: float) -> nn.Module:
    """A copy of `module` and everything under it with fresh parameters, initialised as before training.

    Convolution and linear weights are drawn from a truncated normal (std 0.02), biases are zero, norms
    scale by one, layer scales start at the variant's initial value. The draws are made
    on the CPU with `generator`, so the same seed gives the same weights on every device.
    """
    clone = shallow_copy(module)
    for name, child in module._modules.items():
        clone._modules[name] = None if child is None else reinitialised(child, generator, layer_scale_init)
    for name, parameter in module._parameters.items():
        if parameter is None:
            continue
        fresh = torch.empty(parameter.shape, dtype=parameter.dtype)
        if name == "bias":
            fresh.zero_()
        elif isinstance(module, (nn.GroupNorm, nn.LayerNorm)):
            fresh.fill_(1.0)
        elif isinstance(module, LayerScale):
            fresh.fill_(layer_scale_init)
        else:  # convolution and linear weights (and any other learnt matrix a token mixer may hold)
            nn.init.trunc_normal_(fresh, std=INIT_STD, generator=generator)
        clone._parameters[name] = nn.Parameter(fresh.to(parameter.device), requires_grad=parameter.requires_grad)
    return clone


def fresh_parts(model: PoolFormer, parts: Sequence[str], seed: int = RANDOM_SEED) -> dict[str, nn.Module]:
    """Re-initialised copies of the named parts. Each part draws from its own generator (seeded by `seed` and
    the part's place in CASCADE), so a part's random weights are the same whichever other parts are drawn."""
    generators = {part: torch.Generator().manual_seed(seed * len(CASCADE) + CASCADE.index(part)) for part in parts}
    return {
        part: reinitialised(part_of(model, part), generators[part], model.variant.layer_scale_init) for part in parts
    }


def with_parts(model: PoolFormer, replacements: dict[str, nn.Module]) -> PoolFormer:
    """A plain PoolFormer twin with some parts (CASCADE names) replaced; every other module and weight is shared."""
    twin = shallow_copy(model, PoolFormer)  # a plain PoolFormer even from a compiled twin: its graph would not fit
    twin._modules["stages"] = shallow_copy(model.stages)
    for part, module in replacements.items():
        part_of(model, part)  # validates the name
        if part.startswith("stage "):
            twin.stages._modules[str(int(part[6:]) - 1)] = module
        else:
            twin._modules[part] = module
    twin.weights_source = f"{model.weights_source}, randomised: {', '.join(replacements) or 'nothing'}"
    return twin


def randomised(model: PoolFormer, parts: Sequence[str], seed: int = RANDOM_SEED) -> PoolFormer:
    """A twin of `model` whose named parts are re-initialised (fresh tensors); the rest is the model's own."""
    return with_parts(model, fresh_parts(model, parts, seed))


def cascade(model: PoolFormer, seed: int = RANDOM_SEED) -> list[tuple[tuple[str, ...], PoolFormer]]:
    """The cascade's twins, one per step: (parts randomised so far, twin). Step k randomises CASCADE[:k + 1],
    and every step reuses the random weights of the steps before it, as in Adebayo et al."""
    fresh = fresh_parts(model, CASCADE, seed)
    steps = [CASCADE[: count + 1] for count in range(len(CASCADE))]
    return [(parts, with_parts(model, {part: fresh[part] for part in parts})) for parts in steps]


def average_ranks(values: torch.Tensor) -> torch.Tensor:
    """Ranks 1..n of the flattened values, tied values sharing the mean of their ranks (as Spearman needs)."""
    flat = values.detach().flatten().double()
    order = flat.argsort()
    _, group, counts = torch.unique_consecutive(flat[order], return_inverse=True, return_counts=True)
    last = counts.cumsum(0).double()  # the rank of each group of equal values' last member
    mean_rank = last - (counts.double() - 1) / 2
    ranks = torch.empty_like(flat)
    ranks[order] = mean_rank[group]
    return ranks


def rank_correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman's rank correlation of two maps of the same shape: Pearson's correlation of their average ranks.

    Equal maps give 1. A flat map (every cell tied, e.g. all zero after the ReLU) orders nothing, so it shares
    no ordering with another map: 0.
    """
    if a.shape != b.shape:
        raise ValueError(f"maps of different shapes: {tuple(a.shape)} and {tuple(b.shape)}")
    if torch.equal(a, b):
        return 1.0
    ranks_a, ranks_b = average_ranks(a), average_ranks(b)
    ranks_a, ranks_b = ranks_a - ranks_a.mean(), ranks_b - ranks_b.mean()
    scale = ranks_a.norm() * ranks_b.norm()
    return 0.0 if scale == 0 else float((ranks_a * ranks_b).sum() / scale)
