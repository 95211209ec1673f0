"""Class-activation maps at every stage: which positions of a stage's output raise the score of one class.

Grad-CAM (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
Localization", ICCV 2017, arXiv 1610.02391) weights each channel of a feature map by the spatial mean
of the class score's gradient with respect to it, sums the weighted channels and keeps the positive
part: ReLU(sum_k mean(d score / d A_k) * A_k). The sail-sg authors' script reads the last stage only;
here every stage gets its map, at its own resolution.

HiResCAM (Draelos and Carin, "Use HiResCAM instead of Grad-CAM for faithful explanations of convolutional
neural networks", arXiv 2011.08891) skips the averaging: each position's features are multiplied by the
gradient at that very position, ReLU(sum_k d score / d A_k ⊙ A_k), i.e. gradient × input of the stage's
features summed over channels. Where the gradient varies across the map, the two disagree. (The ReLU is
ours, as in Grad-CAM: both maps show evidence for the class only.)
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from poolformer.model import PoolFormer

StageMap = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (features, gradient), (1, C, H, W) -> (H, W)


def class_activation(features: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
    """Grad-CAM: ReLU of the channels summed with weights = the gradient's spatial mean; (1, C, H, W) -> (H, W)."""
    channel_weights = gradient[0].mean(dim=(1, 2), keepdim=True)
    return torch.relu((channel_weights * features[0].detach()).sum(dim=0))


def high_resolution_activation(features: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
    """HiResCAM: ReLU of the channels summed with weights = the gradient at each position; (1, C, H, W) -> (H, W)."""
    return torch.relu((gradient[0] * features[0].detach()).sum(dim=0))


ATTRIBUTIONS: dict[str, StageMap] = {"grad-cam": class_activation, "hirescam": high_resolution_activation}
ATTRIBUTION_NAMES = {"grad-cam": "Grad-CAM", "hirescam": "HiResCAM"}
DEFAULT_ATTRIBUTION = "grad-cam"


def grad_cam(model: PoolFormer, pixels: torch.Tensor, target: int | None = None) -> list[torch.Tensor]:
    """The four stages' Grad-CAM maps, (H, W) each and non-negative, for class `target` (top-1 if None).

    Gradients are taken with `torch.autograd.grad` with respect to the stage outputs only, so no
    parameter's `.grad` is written and no `requires_grad` flag is changed: a model shared by
    concurrent requests is only read. `pixels` is one (1, 3, H, W) image.
    """
    return stage_maps_with_logits(model, pixels, target)[1]


def hires_cam(model: PoolFormer, pixels: torch.Tensor, target: int | None = None) -> list[torch.Tensor]:
    """The four stages' HiResCAM maps, as `grad_cam` gives Grad-CAM's."""
    return stage_maps_with_logits(model, pixels, target, "hirescam")[1]


def stage_maps_with_logits(
    model: PoolFormer, pixels: torch.Tensor, target: int | None = None, method: str = DEFAULT_ATTRIBUTION
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The (1, classes) logits and the four stage maps of `method` (a key of ATTRIBUTIONS) from one pass."""
    logits, _, maps = stage_maps_with_features(model, pixels, target, method)
    return logits, maps


def stage_maps_with_features(
    model: PoolFormer, pixels: torch.Tensor, target: int | None = None, method: str = DEFAULT_ATTRIBUTION
) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """`stage_maps_with_logits`, plus the four stage outputs of the same pass (detached), for views that map them."""
    check_request(model, pixels, method)
    # A graph is needed even when the caller runs under inference_mode or no_grad, and even when the parameters
    # are frozen. It starts at stage 1's output: no gradient is wanted inside the stem or stage 1, so they run
    # without one, which saves what they would have kept for the backward pass (S12: 59 -> 35 MB a pass).
    with torch.inference_mode(False):
        with torch.no_grad():
            first = model.stages[0](model.stem(pixels.detach().clone()))
        with torch.enable_grad():
            stage_outputs = [first.requires_grad_(True)]
            for stage in model.stages[1:]:
                stage_outputs.append(stage(stage_outputs[-1]))
            logits = model.head(stage_outputs[-1])
            index = target_of(logits, target)
            gradients = torch.autograd.grad(logits[0, index], stage_outputs)
    stage_map = ATTRIBUTIONS[method]
    maps = [stage_map(features, gradient) for features, gradient in zip(stage_outputs, gradients)]
    return logits.detach(), [features.detach() for features in stage_outputs], maps


def last_stage_map_with_logits(
    model: PoolFormer, pixels: torch.Tensor, target: int | None = None, method: str = DEFAULT_ATTRIBUTION
) -> tuple[torch.Tensor, torch.Tensor]:
    """The logits and the last stage's map alone, for about the cost of a forward pass: its gradient comes from
    the head only, so the stages run without a graph. The same map as stage_maps_with_logits(...)[1][-1]."""
    check_request(model, pixels, method)
    with torch.inference_mode(False):
        with torch.no_grad():
            features = model.forward_with_stages(pixels.detach().clone())[1][-1]
        with torch.enable_grad():
            features.requires_grad_(True)
            logits = model.head(features)
            (gradient,) = torch.autograd.grad(logits[0, target_of(logits, target)], features)
    return logits.detach(), ATTRIBUTIONS[method](features, gradient)


def check_request(model: PoolFormer, pixels: torch.Tensor, method: str) -> None:
    if method not in ATTRIBUTIONS:
        raise ValueError(f"unknown attribution method {method!r}; choose from {', '.join(ATTRIBUTIONS)}")
    if pixels.shape[0] != 1:
        raise ValueError(f"class-activation maps explain one image at a time; got a batch of {pixels.shape[0]}")
    if any(parameter.is_inference() for parameter in model.parameters()):
        raise ValueError("the model's weights were made under torch.inference_mode(); load it outside to explain it")


def target_of(logits: torch.Tensor, target: int | None) -> int:
    """The class index to explain: the top-1 when None, else `target`, checked against the class count."""
    index = int(logits[0].argmax()) if target is None else int(target)
    if not 0 <= index < logits.shape[-1]:
        raise ValueError(f"target class {index} is out of range for {logits.shape[-1]} classes")
    return index
