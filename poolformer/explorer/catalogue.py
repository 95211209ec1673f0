"""Which models a visitor can pick: the five official variants and the bundled checkpoints, and the default."""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open

from poolformer import hub
from poolformer.explorer.common import ExplorerError, shown, text
from poolformer.explorer.downloads import DOWNLOADS
from poolformer.hub import hub_weights_cached
from poolformer.model import VARIANTS, Variant

ASSETS = Path(__file__).resolve().parent.parent.parent / "assets"
OFFICIAL_DEFAULT = "s12"  # the paper's smallest variant: the default whenever its official weights are cached


@dataclass(frozen=True)
class ModelChoice:
    """One entry of the model picker: a variant plus where its weights come from."""

    value: str  # the API value: "s12" ... "m48", or a bundled checkpoint's name like "s12-imagenette"
    name: str  # display name
    variant: Variant
    weights: str  # "hub" or the path of a bundled checkpoint
    token_mixer: str  # what the weights were trained with
    metadata: dict[str, str]  # a bundled checkpoint's safetensors metadata; {} for hub models

    @property
    def bundled(self) -> bool:
        return self.weights != "hub"


def checkpoint_dir() -> Path:
    """Where bundled checkpoints live; POOLFORMER_CHECKPOINT_DIR overrides it (tests, experiments)."""
    return Path(os.environ.get("POOLFORMER_CHECKPOINT_DIR", ASSETS / "checkpoints"))


def official_choice(variant: Variant) -> ModelChoice:
    """The official ImageNet-1k weights of one paper variant, fetched from the Hub."""
    return ModelChoice(variant.name, f"PoolFormer-{variant.name.upper()}", variant, "hub", "pooling", {})


def bundled_choice(path: Path) -> ModelChoice:
    """Describe a bundled checkpoint from its safetensors header alone, without loading tensors."""
    with safe_open(str(path), framework="pt") as checkpoint:
        metadata = dict(checkpoint.metadata() or {})
    value = path.stem.removeprefix("poolformer_").replace("_", "-")
    return ModelChoice(
        value=value,
        name=metadata.get("name", value),
        variant=VARIANTS[metadata.get("variant", "s12")],
        weights=str(path),
        token_mixer=metadata.get("token_mixer", "pooling"),
        metadata=metadata,
    )


def bundled_choices(directory: Path) -> list[ModelChoice]:
    """Every readable checkpoint in `directory`, pooling models first; a broken file is skipped, not fatal."""
    choices = []
    for path in sorted(directory.glob("*.safetensors")):
        try:
            choices.append(bundled_choice(path))
        except (SafetensorError, OSError, KeyError) as error:
            warnings.warn(f"skipping bundled checkpoint {path}: {error!r}", stacklevel=2)
    return sorted(choices, key=lambda choice: (choice.token_mixer != "pooling", choice.value))


@cache
def model_choices() -> tuple[ModelChoice, ...]:
    """The five official variants, then every bundled checkpoint (read once per process)."""
    bundled = bundled_choices(checkpoint_dir())
    return tuple(official_choice(variant) for variant in VARIANTS.values()) + tuple(bundled)


def choice_label(choice: ModelChoice) -> str:
    """The picker's text: the name and where the weights come from (bundled names already say so)."""
    if choice.bundled:
        return choice.name
    where = "in local cache" if hub_weights_cached(choice.variant.name) else "download from the Hub"
    return f"{choice.name} · ImageNet-1k · {where}"


def find_choice(value: str | None) -> ModelChoice:
    """The picker entry for an API value; None (an API call that leaves the model out) means the default."""
    value = text(value, "the model") or default_choice()
    for choice in model_choices():
        if choice.value == value:
            return choice
    known = ", ".join(choice.value for choice in model_choices())
    raise ExplorerError(f"unknown model {shown(value)}; choose one of: {known}")


def default_choice() -> str:
    """The one place that decides the default model, asked afresh on every page load and API call.

    Official S12 if its weights are in the local Hugging Face cache, else the bundled pooling model
    (so a fresh or offline machine works at once), else S12 from the Hub. Online, a fresh start
    fetches S12 in the background (`fetch_official_default`), so the default moves to it once it lands.
    """
    bundled = [choice for choice in model_choices() if choice.bundled and choice.token_mixer == "pooling"]
    if hub_weights_cached(OFFICIAL_DEFAULT) or not bundled:
        return OFFICIAL_DEFAULT
    return bundled[0].value


def fetch_official_default() -> bool:
    """Online with official S12 not cached: download it in the background. True if a download started."""
    variant = VARIANTS[OFFICIAL_DEFAULT]
    if hub.is_offline() or hub.cached_files(variant) is not None:
        return False
    DOWNLOADS.start(variant, background=True)
    return True


def weights_available(choice: ModelChoice) -> bool:
    """True when the model can load without the network: bundled, or already in the HF cache."""
    return choice.bundled or hub_weights_cached(choice.variant.name)


def scratch_twin(choice: ModelChoice) -> ModelChoice | None:
    """The bundled identity-mixer model trained like `choice` from scratch, if one is shipped."""
    if not choice.bundled or choice.token_mixer != "pooling":
        return None
    for other in model_choices():
        if (
            other.bundled
            and other.token_mixer == "identity"
            and other.variant == choice.variant
            and other.metadata.get("dataset") == choice.metadata.get("dataset")
        ):
            return other
    return None


def count_parameters(choice: ModelChoice) -> float:
    """Parameters in millions; exact for bundled checkpoints (read from the header), else the paper's."""
    if not choice.bundled:
        return choice.variant.params_m
    with safe_open(choice.weights, framework="pt") as checkpoint:
        total = sum(int(np.prod(checkpoint.get_slice(key).get_shape())) for key in checkpoint.keys())
    return total / 1e6


def describe(choice: ModelChoice) -> str:
    """A Markdown card: size, cost, accuracy, and where the weights come from."""
    variant = choice.variant
    facts = f"{count_parameters(choice):.1f} M params · {variant.macs_g} GMACs"
    if choice.bundled:
        classes = json.loads(choice.metadata.get("class_names", "[]"))
        accuracy = choice.metadata.get("val_top1")
        measured = f"{float(accuracy) * 100:.1f} % top-1 on {choice.metadata.get('dataset', 'its')} val" if accuracy else "accuracy not recorded"
        return (
            f"**{choice.name}** — {facts} · {measured}  \n"
            f"Knows only these {len(classes)} classes: {', '.join(classes)}.  \n"
            f"Token mixer: **{choice.token_mixer}**, trained from scratch. "
            f"Weights: bundled checkpoint `{Path(choice.weights).name}` (works offline).  \n"
            f"Recipe: {choice.metadata.get('recipe', 'not recorded')}"
        )
    where = (
        "in the local Hugging Face cache"
        if hub_weights_cached(variant.name)
        else "not cached yet: downloaded from the Hub on first use (needs network)"
    )
    return (
        f"**{choice.name}** — {facts} · paper top-1 **{variant.top1} %** on ImageNet-1k  \n"
        f"Weights: official `{variant.hub_repo}`, {where}."
    )


