"""Token mixers: the one part of a MetaFormer block that differs between PoolFormer and its relatives.

Each entry of TOKEN_MIXERS builds a mixer for one block from its `MixerSite`; MIXER_LAYOUTS names the
per-stage layouts trained for the zoo (Yu et al., arXiv 2111.11418, Table 5).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

NUM_STAGES = 4


@dataclass(frozen=True)
class MixerSite:
    """What a token mixer may need to know about where it sits: the block's width, its token grid at the
    model's input size (the random mixer is bound to it) and a seed that draws that mixer's frozen matrix."""

    dim: int
    grid: tuple[int, int]
    seed: int


class Pooling(nn.Module):
    """PoolFormer's token mixer; the block adds its input back, hence the `- x`.

    The pool averages only the positions inside the map (`count_include_pad=False`), so its weights sum to one
    everywhere, the border included; `FoldedPoolingBlock` relies on that.
    """

    def __init__(self, pool_size: int = 3) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(pool_size, stride=1, padding=pool_size // 2, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x) - x


class IdentityMixer(nn.Module):
    """The paper's "identity mapping" ablation: tokens are not mixed at all, mixer(x) = x."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class DepthwiseConv(nn.Module):
    """Table 5's "depthwise conv": a learned 3 x 3 filter per channel, the trainable cousin of pooling."""

    def __init__(self, dim: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class RandomMixing(nn.Module):
    """Table 5's "global random matrix": every token becomes a fixed random blend of all tokens, X' = W X.

    W (N x N, N tokens) has rows that are a softmax of uniform [0, 1) draws and is never trained, so it is drawn
    again from `seed` rather than stored (a non-persistent buffer: 21 M numbers for S12 at 224 px). It only
    fits the token grid it was drawn for.
    """

    def __init__(self, grid: tuple[int, int], seed: int) -> None:
        super().__init__()
        self.grid = grid
        tokens = grid[0] * grid[1]
        generator = torch.Generator(device="cpu").manual_seed(seed)
        matrix = torch.rand(tokens, tokens, generator=generator, device="cpu")
        for rows in matrix.split(256):  # in place, a block of rows at a time: no second 39 MB matrix for stage 1
            rows.copy_(torch.softmax(rows, dim=-1))
        self.register_buffer("matrix", matrix, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        if (height, width) != self.grid:
            raise ValueError(
                f"this random token mixer was drawn for a {self.grid[0]}x{self.grid[1]} token grid, "
                f"not {height}x{width}: feed the input size the model was made for"
            )
        mixed = x.reshape(batch, channels, height * width) @ self.matrix.to(x.dtype).T
        return mixed.reshape(batch, channels, height, width)


class Attention(nn.Module):
    """Multi-head self-attention over all of a stage's tokens, head dimension 32 as in the paper's hybrids.

    No position embedding: the zero-padded convolutions around it already tell tokens apart by place.
    """

    def __init__(self, dim: int, head_dim: int = 32) -> None:
        super().__init__()
        if dim % head_dim:
            raise ValueError(f"attention needs a width divisible by its head size {head_dim}, got {dim}")
        self.heads, self.head_dim = dim // head_dim, head_dim
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # (B, N, C)
        qkv = self.qkv(tokens).reshape(batch, height * width, 3, self.heads, self.head_dim)
        query, key, value = qkv.permute(2, 0, 3, 1, 4)  # each (B, heads, N, head_dim)
        mixed = F.scaled_dot_product_attention(query, key, value).transpose(1, 2).reshape(batch, -1, channels)
        return self.proj(mixed).transpose(1, 2).reshape(batch, channels, height, width)


# "pooling" is the trained 3x3 mixer; the wider pools are what-if mixers for inference-time ablations
# (the paper's Table 5 trains with pool sizes 5, 7 and 9 too; our weights all saw size 3).
TOKEN_MIXERS: dict[str, Callable[[MixerSite], nn.Module]] = {
    "pooling": lambda site: Pooling(),
    "pooling-5": lambda site: Pooling(5),
    "pooling-7": lambda site: Pooling(7),
    "identity": lambda site: IdentityMixer(),
    "depthwise": lambda site: DepthwiseConv(site.dim),
    "random": lambda site: RandomMixing(site.grid, site.seed),
    "attention": lambda site: Attention(site.dim),
}

# The zoo: named per-stage layouts, each trained from scratch under one recipe (after the paper's Table 5).
MIXER_LAYOUTS: dict[str, tuple[str, str, str, str]] = {
    "pooling": ("pooling",) * NUM_STAGES,
    "identity": ("identity",) * NUM_STAGES,
    "depthwise": ("depthwise",) * NUM_STAGES,
    "random": ("random",) * NUM_STAGES,
    "pool-attention": ("pooling", "pooling", "attention", "attention"),
    "attention": ("attention",) * NUM_STAGES,
}


def resolve_token_mixers(mixers: str | Sequence[str]) -> tuple[str, ...]:
    """Accept a layout name, one mixer name for all stages, "a,b,c,d", or one name per stage; validate them."""
    if isinstance(mixers, str):
        names = MIXER_LAYOUTS.get(mixers) or (tuple(mixers.split(",")) if "," in mixers else (mixers,) * NUM_STAGES)
    else:
        names = tuple(mixers)
    if len(names) != NUM_STAGES:
        raise ValueError(f"need one token mixer per stage ({NUM_STAGES}), got {len(names)}")
    for name in names:
        if name not in TOKEN_MIXERS:
            raise ValueError(f"unknown token mixer {name!r}; choose from {', '.join(TOKEN_MIXERS)}")
    return names


def layout_name(names: Sequence[str]) -> str:
    """The zoo name of a per-stage layout ("pool-attention"), or the names joined by commas."""
    names = tuple(names)
    return next((name for name, layout in MIXER_LAYOUTS.items() if layout == names), ",".join(names))
