"""Grad-CAM at every stage: which positions of a stage's output raise the score of one class.

Grad-CAM (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
Localization", ICCV 2017, arXiv 1610.02391) weights each channel of a feature map by the spatial mean
of the class score's gradient with respect to it, sums the weighted channels and keeps the positive
part: ReLU(sum_k mean(d score / d A_k) * A_k). The sail-sg authors' script reads the last stage only;
here every stage gets its map, at its own resolution.
"""

from __future__ import annotations

import torch

from poolformer.model import PoolFormer


def grad_cam(model: PoolFormer, pixels: torch.Tensor, target: int | None = None) -> list[torch.Tensor]:
    """The four stages' Grad-CAM maps, (H, W) each and non-negative, for class `target` (top-1 if None).

    Gradients are taken with `torch.autograd.grad` with respect to the stage outputs only, so no
    parameter's `.grad` is written and no `requires_grad` flag is changed: a model shared by
    concurrent requests is only read. `pixels` is one (1, 3, H, W) image.
    """
    return grad_cam_with_logits(model, pixels, target)[1]


def grad_cam_with_logits(
    model: PoolFormer, pixels: torch.Tensor, target: int | None = None
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """`grad_cam`, plus the (1, classes) logits of the same forward pass, for callers that also report them."""
    logits, _, maps = grad_cam_with_stages(model, pixels, target)
    return logits, maps


def grad_cam_with_stages(
    model: PoolFormer, pixels: torch.Tensor, target: int | None = None
) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """`grad_cam_with_logits`, plus the four stage outputs of the same pass (detached), for views that also map them."""
    if pixels.shape[0] != 1:
        raise ValueError(f"grad_cam explains one image at a time; got a batch of {pixels.shape[0]}")
    if any(parameter.is_inference() for parameter in model.parameters()):
        raise ValueError("the model's weights were made under torch.inference_mode(); load it outside to explain it")
    # A graph is needed even when the caller runs under inference_mode or no_grad, and even when
    # the parameters are frozen: the input (a private copy) is what makes the stage outputs require grad.
    with torch.inference_mode(False), torch.enable_grad():
        image = pixels.detach().clone().requires_grad_(True)
        logits, stage_outputs = model.forward_with_stages(image)
        index = int(logits[0].argmax()) if target is None else int(target)
        if not 0 <= index < logits.shape[-1]:
            raise ValueError(f"target class {index} is out of range for {logits.shape[-1]} classes")
        gradients = torch.autograd.grad(logits[0, index], stage_outputs)
    maps = [class_activation(features, gradient) for features, gradient in zip(stage_outputs, gradients)]
    return logits.detach(), [features.detach() for features in stage_outputs], maps


def class_activation(features: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
    """ReLU of the channels summed with weights = the gradient's spatial mean; (1, C, H, W) -> (H, W)."""
    channel_weights = gradient[0].mean(dim=(1, 2), keepdim=True)
    return torch.relu((channel_weights * features[0].detach()).sum(dim=0))
