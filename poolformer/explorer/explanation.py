"""Where it looks: Grad-CAM (or HiResCAM) at every stage, for the model as trained, with pooling switched off,
and for the identity-mixer model trained from scratch, so a visitor sees how the evidence moves when
tokens stop mixing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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
from poolformer.gradcam import ATTRIBUTIONS, DEFAULT_ATTRIBUTION, stage_maps_with_logits
from poolformer.model import PoolFormer

TOP1 = "top-1"  # the target value meaning "the class the model ranks first"


@dataclass(frozen=True)
class ModelMaps:
    """One model's Grad-CAM maps for the explained class, and how it rates that class."""

    target_probability: float
    maps: list[np.ndarray]  # stages 1-4, (H, W) each at the stage's resolution, non-negative
    similarity: list[float]  # per stage: cosine similarity with the as-trained model's map (1 for itself)


@dataclass(frozen=True)
class ExplainedClass:
    """What every view of the Where-it-looks tab reports besides its own figures: which model, method and class."""

    choice: ModelChoice
    method: str  # a key of poolformer.gradcam.ATTRIBUTIONS
    status: str
    photo: Image.Image  # the 224x224 crop the model saw
    top5: dict[str, float]
    target: int  # class index explained
    target_name: str


@dataclass(frozen=True)
class Explanation(ExplainedClass):
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


def attribution_method(method: str | None) -> str:
    """Validate the attribution method from the UI or the API; None or "" means Grad-CAM."""
    name = (text(method, "the attribution method") or DEFAULT_ATTRIBUTION).strip().casefold()
    if name not in ATTRIBUTIONS:
        raise ExplorerError(f"attribution method {shown(method)} is not one of {', '.join(ATTRIBUTIONS)}")
    return name


@dataclass(frozen=True)
class ExplainedPhoto:
    """What every view of the Where-it-looks tab starts from: the photo as the model sees it, the model, its
    answer and the class to explain."""

    choice: ModelChoice
    model: PoolFormer
    pixels: torch.Tensor  # (1, 3, 224, 224), normalised
    probabilities: torch.Tensor  # (classes,)
    target: int

    def described(self, method: str) -> dict[str, Any]:
        """The ExplainedClass fields, for the views' results: `Result(**explained.described(method), ...)`."""
        return {
            "choice": self.choice,
            "method": method,
            "status": status_line(self.model),
            "photo": input_photo(self.pixels),
            "top5": top_k(self.probabilities, self.model.class_names),
            "target": self.target,
            "target_name": self.model.class_names[self.target],
        }


def explained_photo(
    source: PhotoSource | None, value: str, target: str | None, report: LoadReporter | None
) -> ExplainedPhoto:
    """Decode the photo, load the model, classify the photo and pick the class to explain (top-1 by default)."""
    text(target, "the class to explain")  # refused before any work, not after the model ran
    photo = photo_from(source)
    choice, model = loaded_model(value, report)
    pixels = model_input(photo, model.variant)
    probabilities = class_probabilities(model, pixels)
    return ExplainedPhoto(choice, model, pixels, probabilities, target_index(target, probabilities, model.class_names))


def model_maps(
    model: PoolFormer,
    pixels: torch.Tensor,
    target: int,
    reference: list[np.ndarray] | None,
    method: str = DEFAULT_ATTRIBUTION,
) -> ModelMaps:
    """One model's stage maps for `target`; `reference` (the as-trained maps) gives the similarity."""
    logits, cams = stage_maps_with_logits(model, pixels, target, method)
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
    method: str | None = DEFAULT_ATTRIBUTION,
) -> Explanation:
    """Stage maps (Grad-CAM by default) for `target` (top-1 by default), beside the ablated and scratch models'."""
    method = attribution_method(method)
    chosen_stages(stages)  # refused before any work, not after the model ran
    explained = explained_photo(source, value, target, report)
    choice, model, pixels, index = explained.choice, explained.model, explained.pixels, explained.target
    trained = model_maps(model, pixels, index, None, method)

    ablated, swapped = None, ()
    if choice.token_mixer == "pooling" and chosen_stages(stages):  # no stage ticked: no ablated row
        mixers = identity_mixers(stages)
        swapped = tuple(number for number, mixer in zip(ALL_STAGES, mixers) if mixer == "identity")
        ablated = model_maps(model.with_token_mixers(mixers), pixels, index, trained.maps, method)

    twin, scratch = scratch_twin(choice), None
    if twin is not None:
        twin_model = MODELS.get(twin, report)
        if twin_model.class_names == model.class_names:  # same dataset, so the same classes in the same order
            scratch = model_maps(twin_model, pixels, index, trained.maps, method)
    return Explanation(
        **explained.described(method),
        trained=trained,
        swapped_stages=swapped,
        ablated=ablated,
        scratch=scratch,
        scratch_choice=twin if scratch is not None else None,
    )
