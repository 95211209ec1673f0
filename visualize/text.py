"""Small text formats the views share."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby


def percent(probability: float) -> str:
    return f"{probability * 100:.1f} %"


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


# What the views call each token mixer of poolformer.mixers.TOKEN_MIXERS.
MIXER_NAMES = {
    "pooling": "pooling",
    "identity": "identity",
    "depthwise": "depthwise conv",
    "random": "random matrix",
    "attention": "attention",
}


# What the first block's token mixer outputs, as the stage maps draw it (its norm over channels).
MIXER_OUTPUTS = {
    "pooling": "‖pool(x) − x‖",
    "identity": "‖norm(x)‖",
    "depthwise": "‖conv(x)‖",
    "random": "‖Wx‖",
    "attention": "‖attn(x)‖",
}


def mixer_name(mixer: str) -> str:
    """'depthwise' → 'depthwise conv'; the what-if pools ('pooling-5') read '5 × 5 pooling'."""
    if mixer.startswith("pooling-"):
        size = mixer.removeprefix("pooling-")
        return f"{size} × {size} pooling"
    return MIXER_NAMES.get(mixer, mixer)


def layout_text(mixers: Sequence[str]) -> str:
    """A per-stage layout in words, runs of one mixer counted: 'pooling ×2, attention ×2'."""
    return ", ".join(f"{mixer_name(mixer)} ×{len(list(run))}" for mixer, run in groupby(mixers))
