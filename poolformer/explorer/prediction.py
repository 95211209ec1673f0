"""Predict: top-5 and a per-stage look inside the network, for one photo and one model."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from poolformer.explorer.cache import loaded_model, status_line
from poolformer.explorer.catalogue import ModelChoice
from poolformer.explorer.common import (
    ALL_STAGES,
    LoadReporter,
    PhotoSource,
    energy,
    input_photo,
    model_input,
    photo_from,
    top_k,
)
from poolformer.model import PoolFormer

CHANNELS_SHOWN = 8


@dataclass(frozen=True)
class StageView:
    """What one stage computed for one photo; maps are raw magnitudes, drawing normalises them."""

    number: int
    shape: tuple[int, int, int]  # (channels, height, width) of the stage output
    depth: int
    token_mixer: str  # "pooling", or "identity" for an IdentityFormer
    energy: np.ndarray  # (H, W): L2 norm over channels of the stage output
    top_channels: list[tuple[int, np.ndarray]]  # the most active channels: (index, (H, W) map)
    mixer_change: np.ndarray  # (H, W): L2 norm of the first block's token-mixer output, pool(x) - x


@dataclass(frozen=True)
class Prediction:
    choice: ModelChoice
    status: str
    photo: Image.Image  # the 224x224 crop the model saw
    top5: dict[str, float]
    stages: list[StageView]


def stage_view(number: int, model: PoolFormer, features: torch.Tensor, mixer_output: torch.Tensor) -> StageView:
    channel_strength = features[0].mean(dim=(1, 2))
    strongest = channel_strength.topk(min(CHANNELS_SHOWN, channel_strength.numel())).indices.tolist()
    return StageView(
        number=number,
        shape=tuple(features.shape[1:]),
        depth=model.variant.depths[number - 1],
        token_mixer=model.token_mixers[number - 1],
        energy=energy(features),
        # Copies: a view would keep the whole stage output alive in the visitor's gr.State (S12: 1.6 MB a visitor).
        top_channels=[(index, features[0, index].to("cpu", copy=True).numpy()) for index in strongest],
        mixer_change=energy(mixer_output),
    )


@torch.inference_mode()
def predict(source: PhotoSource | None, value: str, report: LoadReporter | None = None) -> Prediction:
    """Top-5 and a per-stage look inside the network, for one photo and one model."""
    photo = photo_from(source)
    choice, model = loaded_model(value, report)
    pixels = model_input(photo, model.variant)
    logits, stage_outputs, mixer_outputs = model.forward_with_mixer_views(pixels)
    stages = [
        stage_view(number, model, features, mixed)
        for number, features, mixed in zip(ALL_STAGES, stage_outputs, mixer_outputs)
    ]
    return Prediction(
        choice=choice,
        status=status_line(model),
        photo=input_photo(pixels),
        top5=top_k(logits[0].softmax(-1), model.class_names),
        stages=stages,
    )


