"""PoolFormer Explorer's own PoolFormer: model, weights, preprocessing, labels, Grad-CAM / HiResCAM and CLI."""

from poolformer.gradcam import grad_cam, hires_cam
from poolformer.hub import hub_weights_cached
from poolformer.model import VARIANTS, PoolFormer, Variant
from poolformer.weights import WeightsError, create_model

__all__ = [
    "VARIANTS", "PoolFormer", "Variant", "WeightsError", "create_model", "grad_cam", "hires_cam", "hub_weights_cached",
]
