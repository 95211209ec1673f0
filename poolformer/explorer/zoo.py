"""The mixer zoo: the visitor's photo through every bundled model that differs from PoolFormer only in its
token mixer, side by side, with what each one measured on val and what the paper found for that mixer.

Every model explains the same class (PoolFormer's top-1 unless the visitor names one), so their Grad-CAM
maps answer one question: where does each mixer find the evidence for it?
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from PIL import Image

from poolformer.explorer.cache import MODELS
from poolformer.explorer.catalogue import ModelChoice, zoo_choices
from poolformer.explorer.common import (
    ExplorerError,
    LoadReporter,
    PhotoSource,
    energy,
    in_lanes,
    input_photo,
    model_input,
    photo_from,
    shown,
    text,
    top_k,
)
from poolformer.explorer.explanation import TOP1
from poolformer.explorer.measured import FeatureSimilarity, MeasuredRun, feature_similarity, measured_run
from poolformer.gradcam import stage_maps_with_features
from poolformer.model import PoolFormer

CAM_STAGES = (3, 4)  # the stages whose Grad-CAM maps sit on the object (tests/test_gradcam_faithfulness.py)


@dataclass(frozen=True)
class ZooMember:
    """One zoo model's answer for the photo, and what it measured on val when it was trained."""

    choice: ModelChoice
    token_mixers: tuple[str, ...]  # per stage, e.g. ("pooling", "pooling", "attention", "attention")
    top5: dict[str, float]
    explained: int  # the class index its maps are for
    target_probability: float  # its probability for that class
    cams: list[np.ndarray]  # Grad-CAM at CAM_STAGES, (H, W) each at the stage's resolution, non-negative
    stage4_energy: np.ndarray  # (7, 7): L2 norm over channels of the stage-4 output
    measured: MeasuredRun | None  # None for a checkpoint that recorded no val accuracy


@dataclass(frozen=True)
class Zoo:
    photo: Image.Image  # the 224 × 224 crop every model saw
    target: int  # class index explained in every model
    target_name: str
    target_chosen: bool  # False: the pooling model's top-1
    members: list[ZooMember]  # pooling first, then the layouts in MIXER_LAYOUTS order


def zoo_class_names() -> list[str]:
    """The classes every zoo model knows (they were trained on one dataset), or none without a zoo."""
    choices = zoo_choices()
    return list(choices[0].class_names) if choices else []


def zoo_similarity() -> FeatureSimilarity | None:
    """The zoo's stage CKA to pooling, as the pooling checkpoint records it."""
    choices = zoo_choices()
    return feature_similarity(choices[0]) if choices else None


def zoo_target(target: str | None, class_names: list[str]) -> int | None:
    """The class to explain: None for the pooling model's top-1 (None, "" or "top-1"), else a class by name."""
    wanted = (text(target, "the class to explain") or TOP1).strip()
    if wanted.casefold() == TOP1:
        return None
    for index, name in enumerate(class_names):
        if name.casefold() == wanted.casefold():
            return index
    known = ", ".join(class_names)
    raise ExplorerError(f"the zoo's models know no class {shown(wanted)}; pick one of: {known}, or {TOP1!r}")


def zoo_member(choice: ModelChoice, model: PoolFormer, pixels: torch.Tensor, target: int | None) -> ZooMember:
    """One pass with gradients gives the top-5, the Grad-CAM maps and the stage-4 energy; the model is only read."""
    logits, stage_outputs, maps = stage_maps_with_features(model, pixels, target)
    probabilities = logits[0].softmax(-1)
    explained = int(probabilities.argmax()) if target is None else target
    return ZooMember(
        choice=choice,
        token_mixers=model.token_mixers,
        top5=top_k(probabilities, model.class_names),
        explained=explained,
        target_probability=float(probabilities[explained]),
        cams=[maps[stage - 1].cpu().numpy() for stage in CAM_STAGES],
        stage4_energy=energy(stage_outputs[-1]),
        measured=measured_run(choice) if "val_top1" in choice.metadata else None,
    )


def borrowed_member(
    choice: ModelChoice, pixels: torch.Tensor, target: int | None, report: LoadReporter | None
) -> ZooMember:
    """zoo_member with the model borrowed from the cache for this pass only (see ModelCache.borrowed)."""
    with MODELS.borrowed(choice, report) as model:
        return zoo_member(choice, model, pixels, target)


def mixer_zoo(source: PhotoSource | None, target: str | None = TOP1, report: LoadReporter | None = None) -> Zoo:
    """The photo through every zoo model, each explaining the same class (pooling's top-1 by default)."""
    choices = zoo_choices()
    if not choices:
        raise ExplorerError("no bundled mixer models on this machine: the zoo needs a bundled pooling checkpoint")
    reference = choices[0]
    chosen = zoo_target(target, list(reference.class_names))  # a wrong class is refused before any work
    pixels = model_input(photo_from(source), reference.variant)  # one variant, so one crop for all
    first = borrowed_member(reference, pixels, chosen, report)
    # Every model explains the class the first one did; two at a time, each loaded only while it runs.
    others = in_lanes([partial(borrowed_member, choice, pixels, first.explained, report) for choice in choices[1:]])
    return Zoo(
        photo=input_photo(pixels),
        target=first.explained,
        target_name=reference.class_names[first.explained],
        target_chosen=chosen is not None,
        members=[first, *others],
    )
