"""PoolFormer Explorer's own PoolFormer: model, weights, preprocessing, labels, Grad-CAM and CLI."""

from poolformer.gradcam import grad_cam
from poolformer.model import VARIANTS, PoolFormer, Variant
from poolformer.weights import WeightsError, create_model, hub_weights_cached

__all__ = ["VARIANTS", "PoolFormer", "Variant", "WeightsError", "create_model", "grad_cam", "hub_weights_cached"]
