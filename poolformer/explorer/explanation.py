"""Where it looks: Grad-CAM at every stage, for the model as trained, with pooling switched off, and
for the identity-mixer model trained from scratch, so a visitor sees how the evidence moves when
tokens stop mixing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from poolformer.explorer.ablation import chosen_stages, cosine, identity_mixers
from poolformer.explorer.cache import MODELS, loaded_model, status_line
from poolformer.explorer.catalogue import ModelChoice, scratch_twin
from poolformer.explorer.common import (
    ALL_STAGES,
    ExplorerError,
    LoadReporter,
    PhotoSource,
    input_photo,
    model_input,
    photo_from,
    shown,
    text,
    top_k,
)
from poolformer.gradcam import grad_cam_with_logits
from poolformer.model import PoolFormer

TOP1 = "top-1"  # the target value meaning "the class the model ranks first"


@dataclass(frozen=True)
class ModelMaps:
    """One model's Grad-CAM maps for the explained class, and how it rates that class."""

    target_probability: float
    maps: list[np.ndarray]  # stages 1-4, (H, W) each at the stage's resolution, non-negative
    similarity: list[float]  # per stage: cosine similarity with the as-trained model's map (1 for itself)


@dataclass(frozen=True)
class Explanation:
    choice: ModelChoice
    status: str
    photo: Image.Image  # the 224x224 crop the model saw
    top5: dict[str, float]
    target: int  # class index explained
    target_name: str
    trained: ModelMaps
    swapped_stages: tuple[int, ...]  # stages whose pooling became identity in `ablated`
    ablated: ModelMaps | None  # None when the model already mixes by identity, or no stage was ticked
    scratch: ModelMaps | None  # the bundled identity-mixer model trained from scratch, where shipped
    scratch_choice: ModelChoice | None


def class_probabilities(model: PoolFormer, pixels: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model(pixels)[0].softmax(-1)


def target_index(target: str | None, probabilities: torch.Tensor, class_names: Sequence[str]) -> int:
    """The class to explain: the top-1 for None, "" or "top-1", else a class named in the top-5."""
    wanted = (text(target, "the class to explain") or TOP1).strip()
    if wanted.casefold() == TOP1:
        return int(probabilities.argmax())
    top5 = top_k(probabilities, class_names)  # best first, the labels the visitor sees
    indices = probabilities.topk(len(top5)).indices.tolist()
    for label, index in zip(top5, indices):
        if label.casefold() == wanted.casefold():
            return index
    choices = ", ".join(top5)
    raise ExplorerError(f"target {shown(wanted)} is not in this photo's top-5 ({choices}); pick one of those or {TOP1!r}")


def model_maps(model: PoolFormer, pixels: torch.Tensor, target: int, reference: list[np.ndarray] | None) -> ModelMaps:
    """Grad-CAM of one model for `target`; `reference` (the as-trained maps) gives the similarity."""
    logits, cams = grad_cam_with_logits(model, pixels, target)
    maps = [cam.cpu().numpy() for cam in cams]
    return ModelMaps(
        target_probability=float(logits[0].softmax(-1)[target]),
        maps=maps,
        similarity=[cosine(torch.from_numpy(a), torch.from_numpy(b)) for a, b in zip(maps, reference or maps)],
    )


def explain(
    source: PhotoSource | None,
    value: str,
    target: str | None = None,
    stages: Sequence[int] = ALL_STAGES,
    report: LoadReporter | None = None,
) -> Explanation:
    """Grad-CAM maps at every stage for `target` (top-1 by default), beside the ablated and scratch models'."""
    text(target, "the class to explain")  # refused before any work, not after the model ran
    chosen_stages(stages)
    photo = photo_from(source)
    choice, model = loaded_model(value, report)
    pixels = model_input(photo, model.variant)
    probabilities = class_probabilities(model, pixels)
    index = target_index(target, probabilities, model.class_names)
    trained = model_maps(model, pixels, index, None)

    ablated, swapped = None, ()
    if choice.token_mixer == "pooling" and chosen_stages(stages):  # no stage ticked: no ablated row
        mixers = identity_mixers(stages)
        swapped = tuple(number for number, mixer in zip(ALL_STAGES, mixers) if mixer == "identity")
        ablated = model_maps(model.with_token_mixers(mixers), pixels, index, trained.maps)

    twin, scratch = scratch_twin(choice), None
    if twin is not None:
        twin_model = MODELS.get(twin, report)
        if twin_model.class_names == model.class_names:  # same dataset, so the same classes in the same order
            scratch = model_maps(twin_model, pixels, index, trained.maps)
    return Explanation(
        choice=choice,
        status=status_line(model),
        photo=input_photo(pixels),
        top5=top_k(probabilities, model.class_names),
        target=index,
        target_name=model.class_names[index],
        trained=trained,
        swapped_stages=swapped,
        ablated=ablated,
        scratch=scratch,
        scratch_choice=twin if scratch is not None else None,
    )
