"""PoolFormer Explorer's own PoolFormer: model, weights, preprocessing, labels and CLI."""

from poolformer.hub import hub_weights_cached
from poolformer.model import VARIANTS, PoolFormer, Variant
from poolformer.weights import WeightsError, create_model

__all__ = ["VARIANTS", "PoolFormer", "Variant", "WeightsError", "create_model", "hub_weights_cached"]
