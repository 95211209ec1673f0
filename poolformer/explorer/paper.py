"""What the MetaFormer papers measured, cited for the MetaFormer tab (ImageNet-1k top-1, %, not re-measured here).

Sources: Yu et al., "MetaFormer is Actually What You Need for Vision" (CVPR 2022, arXiv 2111.11418), Table 5,
all rows PoolFormer-S12 trained from scratch; and Yu et al., "MetaFormer Baselines for Vision"
(arXiv 2210.13452), whose models use the newer MetaFormer block (StarReLU, no biases, and so on).
"""

from __future__ import annotations

METAFORMER_PAPER = "Yu et al., MetaFormer is Actually What You Need for Vision, arXiv 2111.11418, Table 5"
BASELINES_PAPER = "Yu et al., MetaFormer Baselines for Vision, arXiv 2210.13452"
METAFORMER_URL = "https://arxiv.org/abs/2111.11418"
BASELINES_URL = "https://arxiv.org/abs/2210.13452"

# Table 5, token mixer section: the same S12 network trained from scratch with each mixer, and its hybrid
# with attention in the last two stages (16.5 M parameters against 11.9 M).
HYBRID = "hybrid stages [Pool, Pool, Attention, Attention]"
TOKEN_MIXER_TOP1: dict[str, float] = {
    "pooling": 77.2,
    "identity": 74.3,
    "global random matrix": 75.8,
    "depthwise convolution": 78.1,
    HYBRID: 81.0,
}

# The Table 5 row each zoo layout (poolformer.mixers.MIXER_LAYOUTS) was trained after. Attention in all four
# stages has none: the paper trains attention only in the hybrid.
TABLE_5_ROWS: dict[str, str] = {
    "pooling": "pooling",
    "identity": "identity",
    "depthwise": "depthwise convolution",
    "random": "global random matrix",
    "pool-attention": HYBRID,
}


def table_5_row(layout: str) -> tuple[str, float] | None:
    """(row name, ImageNet-1k top-1 %) of the paper's Table 5 for a zoo layout, or None where it has no row."""
    row = TABLE_5_ROWS.get(layout)
    return None if row is None else (row, TOKEN_MIXER_TOP1[row])

# Table 5, pool size section: S12 trained from scratch with each pooling window (3 is PoolFormer's).
POOL_SIZE_TOP1: dict[int, float] = {3: 77.2, 5: 77.2, 7: 77.1, 9: 76.8}

# Table 5, the other MetaFormer parts taken away one at a time.
COMPONENT_TOP1: dict[str, float] = {
    "PoolFormer-S12, nothing removed": 77.2,
    "no normalisation": 46.1,
    "no residual connections": 0.1,
    "no channel MLP": 5.7,
}

# MetaFormer Baselines: the plainest mixers at every model size.
BASELINE_SIZES = ("s12", "s24", "s36", "m36", "m48")
BASELINE_TOP1: dict[str, tuple[float, ...]] = {
    "IdentityFormer": (74.6, 78.2, 79.3, 80.0, 80.4),
    "RandFormer": (76.6, 78.2, 79.5, 81.2, 81.4),
    "PoolFormerV2": (78.0, 80.7, 81.6, 82.2, 82.6),
}
