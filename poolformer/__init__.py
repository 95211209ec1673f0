"""PoolFormer Explorer's own PoolFormer: model, weights, preprocessing, labels and CLI."""

from poolformer.model import VARIANTS, PoolFormer, Variant

__all__ = ["VARIANTS", "PoolFormer", "Variant"]
