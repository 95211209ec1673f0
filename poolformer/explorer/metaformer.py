"""The MetaFormer tab's diagram: the selected model's architecture with the tensor shapes of the visitor's photo
(our own trained-from-scratch results beside the paper's are in `measured`)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import torch
from PIL import Image

from poolformer.explorer.cache import loaded_model
from poolformer.explorer.catalogue import ModelChoice, find_choice
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
from poolformer.mixers import resolve_token_mixers
from poolformer.model import NUM_STAGES, VARIANTS, PoolFormer
from poolformer.preprocess import INPUT_SIZE
from poolformer.weights import WeightsError

Shape = tuple[int, ...]


@dataclass(frozen=True)
class StageTrace:
    """One stage of the diagram: its blocks, its width, its mixer, and the tensor it hands on."""

    number: int
    depth: int
    width: int
    token_mixer: str
    output_shape: Shape  # (batch, channels, height, width)
    energy: np.ndarray | None  # (H, W) activation energy on the visitor's photo, when it ran


@dataclass(frozen=True)
class Architecture:
    choice: ModelChoice
    input_shape: Shape  # what the stem receives: the preprocessed crop
    stages: list[StageTrace]
    logits_shape: Shape
    photo: Image.Image | None  # the crop the model saw, when it ran on a photo
    top1: tuple[str, float] | None
    measured: bool  # True: shapes measured on the visitor's photo; False: from the architecture alone
    note: str


@cache
def architecture_shapes(variant: str, num_classes: int, size: int = INPUT_SIZE) -> tuple[Shape, tuple[Shape, ...], Shape]:
    """Input, stage-output and logit shapes from the real model code run on the meta device.

    A meta tensor has a shape but no data, so this costs neither weights nor arithmetic: the diagram
    works for every variant, even one whose weights are not on this machine.
    """
    with torch.device("meta"):
        model = PoolFormer(VARIANTS[variant], num_classes)
        pixels = torch.empty(1, 3, size, size)
        logits, stage_outputs = model.forward_with_stages(pixels)
    return tuple(pixels.shape), tuple(tuple(output.shape) for output in stage_outputs), tuple(logits.shape)


def stage_traces(choice: ModelChoice, mixers: tuple[str, ...], shapes: tuple[Shape, ...], energies: list[np.ndarray | None]) -> list[StageTrace]:
    variant = choice.variant
    return [
        StageTrace(number, variant.depths[i], variant.widths[i], mixers[i], shapes[i], energies[i])
        for i, number in enumerate(ALL_STAGES)
    ]


def from_architecture(choice: ModelChoice, note: str) -> Architecture:
    """The diagram without running the model: shapes for a standard crop."""
    input_shape, shapes, logits_shape = architecture_shapes(choice.variant.name, choice.num_classes)
    stages = stage_traces(choice, resolve_token_mixers(choice.token_mixer), shapes, [None] * NUM_STAGES)
    return Architecture(choice, input_shape, stages, logits_shape, None, None, False, note)


@torch.inference_mode()
def trace(source: PhotoSource | None, value: str, report: LoadReporter | None = None) -> Architecture:
    """The selected model's architecture; with a photo, every shape is the real tensor's on that photo.

    A Hub repo whose config has not been read yet is loaded first: only then are its variant and classes known.
    """
    choice = find_choice(value)
    no_photo = f"No photo yet: shapes for a {INPUT_SIZE} × {INPUT_SIZE} crop."
    if source is None and choice.variant is not None:
        return from_architecture(choice, no_photo)
    photo = None if source is None else photo_from(source)
    try:
        choice, model = loaded_model(value, report)
    except WeightsError:
        if choice.variant is None:
            raise
        return from_architecture(
            choice, f"{choice.name}'s weights are not on this machine: shapes from the architecture alone."
        )
    if photo is None:
        return from_architecture(choice, no_photo)
    pixels = model_input(photo, model.variant)
    logits, stage_outputs = model.forward_with_stages(pixels)
    name, probability = next(iter(top_k(logits[0].softmax(-1), model.class_names, k=1).items()))
    stages = stage_traces(
        choice,
        model.token_mixers,
        tuple(tuple(output.shape) for output in stage_outputs),
        [energy(output) for output in stage_outputs],
    )
    return Architecture(
        choice=choice,
        input_shape=tuple(pixels.shape),
        stages=stages,
        logits_shape=tuple(logits.shape),
        photo=input_photo(pixels),
        top1=(name, probability),
        measured=True,
        note="Shapes of the tensors your photo produced, read from the forward pass.",
    )
