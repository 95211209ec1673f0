"""Parameters and multiply-accumulates of a model, counted as the MetaFormer authors did (fvcore):
convolutions and matrix products only, so pooling, norms and activations cost nothing."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from poolformer.model import PoolFormer


def _attention_flops(query_shape: torch.Size, key_shape: torch.Size, value_shape: torch.Size, *args, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


# On the CPU, scaled_dot_product_attention runs as an op FlopCounterMode has no formula for: QKᵀ and AV count too.
_CPU_ATTENTION = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _attention_flops}


def trainable_parameters(model: PoolFormer) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def frozen_numbers(model: PoolFormer) -> int:
    """Numbers the model uses but never trains (the random mixer's matrices), persistent or not."""
    return sum(buffer.numel() for buffer in model.buffers())


def macs(model: PoolFormer, image_size: int | None = None) -> int:
    """Multiply-accumulates of one forward pass at `image_size` px (the model's own size by default)."""
    size = image_size or model.image_size
    parameter = next(model.parameters())
    pixels = torch.zeros(1, 3, size, size, device=parameter.device, dtype=parameter.dtype)
    with FlopCounterMode(display=False, custom_mapping=_CPU_ATTENTION) as counter, torch.inference_mode():
        model(pixels)
    return counter.get_total_flops() // 2  # a multiply-accumulate is two floating-point operations
