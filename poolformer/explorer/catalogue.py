"""Which models a visitor can pick, and the default.

In the picker's order: the five official variants, the bundled checkpoints, then the models whoever runs
the app adds (`python app.py --model REF`, or POOLFORMER_MODELS=REF,REF for a Space). A REF is a Hub repo
id `owner/name[@revision]` in transformers format, a local save_pretrained folder, or one checkpoint file;
its API value is the REF exactly as given. With POOLFORMER_ALLOW_VISITOR_MODELS=1 a visitor may also name
any Hub repo id, fetched under `visitor_rules()` (safetensors only, a size cap, one download at a time).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open

from poolformer import hub
from poolformer.explorer.common import ExplorerError, shown, text
from poolformer.explorer.downloads import DOWNLOADS
from poolformer.hub import HubRepo, hub_weights_cached
from poolformer.mixers import MIXER_LAYOUTS
from poolformer.model import VARIANTS, PoolFormer, Variant
from poolformer.weights import IMAGENET_CLASSES, WeightsError, checkpoint_facts, hub_repo_named

ASSETS = Path(__file__).resolve().parent.parent.parent / "assets"
OFFICIAL_DEFAULT = "s12"  # the paper's smallest variant: the default whenever its official weights are cached
MODELS_ENV = "POOLFORMER_MODELS"  # comma-separated REFs the operator adds to the picker
VISITOR_MODELS_ENV = "POOLFORMER_ALLOW_VISITOR_MODELS"  # "1": visitors may name Hub repos
VISITOR_MAX_MB_ENV = "POOLFORMER_VISITOR_MAX_MB"
# Every PoolFormer fits (M48 in fp32 is 295 MB), while a stranger can't make the server fetch gigabytes.
VISITOR_MAX_MB = 400
CLASSES_SHOWN = 20  # a model card lists at most this many class names


@dataclass(frozen=True)
class ModelChoice:
    """One entry of the model picker: a variant plus where its weights come from."""

    value: str  # the API value: "s12" ... "m48", a bundled checkpoint's name like "s12-imagenette", or a REF as given
    name: str  # display name
    kind: str  # "official", "bundled", "added" (by whoever runs the app) or "visitor" (named on the page)
    variant: Variant | None  # None only for a Hub repo not downloaded yet: known once it has loaded (`knowing`)
    weights: str  # "hub", the path of a bundled checkpoint, or the REF
    token_mixer: str  # what the weights were trained with
    metadata: dict[str, str]  # a checkpoint's safetensors metadata; {} for official models
    class_names: tuple[str, ...] = ()  # () for the official ImageNet-1k models and for a Hub repo not loaded yet
    repo: HubRepo | None = None  # where the weights are fetched from, for official models and Hub REFs

    @property
    def bundled(self) -> bool:
        return self.kind == "bundled"

    @property
    def official(self) -> bool:
        return self.kind == "official"

    @property
    def num_classes(self) -> int:
        return len(self.class_names) if self.class_names else IMAGENET_CLASSES

    @property
    def rules(self) -> hub.Rules:
        """What fetching it may download: anything the operator named; within `visitor_rules()` for visitors."""
        return visitor_rules() if self.kind == "visitor" else hub.OPEN

    def knowing(self, model: PoolFormer) -> ModelChoice:
        """This entry with what its loaded model says; a Hub repo's variant and classes are known only then."""
        if self.variant is not None:
            return self
        return replace(self, variant=model.variant, class_names=tuple(model.class_names), metadata=model.checkpoint_metadata)


def checkpoint_dir() -> Path:
    """Where bundled checkpoints live; POOLFORMER_CHECKPOINT_DIR overrides it (tests, experiments)."""
    return Path(os.environ.get("POOLFORMER_CHECKPOINT_DIR", ASSETS / "checkpoints"))


def official_choice(variant: Variant) -> ModelChoice:
    """The official ImageNet-1k weights of one paper variant, fetched from the Hub."""
    name = f"PoolFormer-{variant.name.upper()}"
    return ModelChoice(variant.name, name, "official", variant, "hub", "pooling", {}, repo=hub.official(variant))


def bundled_choice(path: Path) -> ModelChoice:
    """Describe a bundled checkpoint from its safetensors header alone, without loading tensors."""
    with safe_open(str(path), framework="pt") as checkpoint:
        metadata = dict(checkpoint.metadata() or {})
    value = path.stem.removeprefix("poolformer_").replace("_", "-")
    return ModelChoice(
        value=value,
        name=metadata.get("name", value),
        kind="bundled",
        variant=VARIANTS[metadata.get("variant", "s12")],
        weights=str(path),
        token_mixer=metadata.get("token_mixer", "pooling"),
        metadata=metadata,
        class_names=tuple(json.loads(metadata.get("class_names", "[]"))),
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


def added_choice(ref: str, kind: str = "added") -> ModelChoice:
    """A REF as a picker entry, read from its header and config (no tensor data, no network).

    A Hub repo not downloaded yet gets no variant or classes until it has loaded. A visitor's REF is
    always a Hub repo id, never a path on this machine.
    """
    repo = hub.parse_ref(ref) if kind == "visitor" else hub_repo_named(ref)
    if kind == "visitor" and repo is None:
        raise ExplorerError(f"{ref!r} is not a Hub repo id; type one as owner/name, or owner/name@revision")
    try:
        facts = checkpoint_facts(repo or ref, visitor_rules() if kind == "visitor" else hub.OPEN)
    except WeightsError as error:
        raise ExplorerError(f"model {ref}: {error}") from None
    if facts is None:  # a Hub repo that is not in the local cache yet
        return ModelChoice(ref, ref, kind, None, ref, "pooling", {}, repo=repo)
    return ModelChoice(
        value=ref,
        name=facts.metadata.get("name", ref if repo else Path(ref).name),
        kind=kind,
        variant=facts.variant,
        weights=ref,
        token_mixer=facts.token_mixer,
        metadata=facts.metadata,
        class_names=tuple(facts.class_names),
        repo=repo,
    )


# --- the models whoever runs the app adds -----------------------------------------------------------------

_ADDED_ON_COMMAND_LINE: list[str] = []  # `python app.py --model REF`, set once before the page is built


def add_models(refs: Iterable[str]) -> None:
    """Add the command line's REFs to the picker (app.py calls this before building the page)."""
    _ADDED_ON_COMMAND_LINE.extend(refs)
    picker_entries.cache_clear()


def added_refs() -> list[str]:
    """The command line's REFs, then POOLFORMER_MODELS', each once, in the order given."""
    from_env = [ref.strip() for ref in os.environ.get(MODELS_ENV, "").split(",") if ref.strip()]
    return list(dict.fromkeys([*_ADDED_ON_COMMAND_LINE, *from_env]))


def visitor_models_allowed() -> bool:
    return os.environ.get(VISITOR_MODELS_ENV, "") == "1"


@cache
def visitor_rules() -> hub.Rules:
    """What a visitor's repo may make this server download: safetensors only, within the size cap, one at a time."""
    max_mb = float(os.environ.get(VISITOR_MAX_MB_ENV, VISITOR_MAX_MB))
    return hub.Rules(weight_files=("model.safetensors",), max_weights_bytes=int(max_mb * 1e6), one_at_a_time=True)


@cache
def picker_entries() -> tuple[ModelChoice, ...]:
    """The five official variants, every bundled checkpoint, then the added models (read once per process)."""
    bundled = bundled_choices(checkpoint_dir())
    official = [official_choice(variant) for variant in VARIANTS.values()]
    taken = {choice.value for choice in (*official, *bundled)}
    added = [added_choice(ref) for ref in added_refs() if ref not in taken]
    return (*official, *bundled, *added)


def model_choices() -> tuple[ModelChoice, ...]:
    """Every entry of the picker, as of now: a Hub repo not downloaded at start is read again, since it may
    have landed since (a look into the local cache, no network)."""
    return tuple(added_choice(choice.value) if choice.variant is None else choice for choice in picker_entries())


def find_choice(value: str | None) -> ModelChoice:
    """The picker entry for an API value; None (an API call that leaves the model out) means the default.

    With visitor models allowed, any Hub repo id is an entry too.
    """
    value = text(value, "the model") or default_choice()
    for choice in picker_entries():
        if choice.value == value:
            return added_choice(value) if choice.variant is None else choice
    if visitor_models_allowed() and isinstance(value, str) and hub.parse_ref(value) is not None:
        return added_choice(value, kind="visitor")
    known = ", ".join(choice.value for choice in picker_entries())
    also = " or a Hub repo id (owner/name)" if visitor_models_allowed() else ""
    raise ExplorerError(f"unknown model {shown(value)}; choose one of: {known}{also}")


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
    repo = hub.official(VARIANTS[OFFICIAL_DEFAULT])
    if hub.is_offline() or hub.cached_files(repo) is not None:
        return False
    DOWNLOADS.start(repo, background=True)
    return True


def weights_available(choice: ModelChoice) -> bool:
    """True when the model can load without the network: a local file, or Hub files already in the HF cache."""
    return choice.repo is None or hub.cached_files(choice.repo, choice.rules) is not None


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


def zoo_choices() -> list[ModelChoice]:
    """The token-mixer zoo: every bundled checkpoint trained with one of the zoo's layouts, pooling first.

    A checkpoint joins by its metadata alone (`token_mixer` names a layout of MIXER_LAYOUTS), as long as it
    was trained like the first bundled pooling model: same variant, dataset and classes, so one photo and
    one class mean the same to all of them.
    """
    bundled = [choice for choice in model_choices() if choice.bundled and choice.token_mixer in MIXER_LAYOUTS]
    reference = next((choice for choice in bundled if choice.token_mixer == "pooling"), None)
    if reference is None:
        return []

    def trained_alike(choice: ModelChoice) -> bool:
        return choice.variant == reference.variant and all(
            choice.metadata.get(key) == reference.metadata.get(key) for key in ("dataset", "class_names")
        )

    order = list(MIXER_LAYOUTS)
    return sorted(filter(trained_alike, bundled), key=lambda choice: (order.index(choice.token_mixer), choice is not reference))


def count_parameters(choice: ModelChoice) -> float:
    """Parameters in millions; exact for checkpoints on this machine (read from the header), else the paper's."""
    if choice.official:
        return choice.variant.params_m
    if choice.bundled:
        with safe_open(choice.weights, framework="pt") as checkpoint:
            total = sum(int(np.prod(checkpoint.get_slice(key).get_shape())) for key in checkpoint.keys())
        return total / 1e6
    facts = checkpoint_facts(choice.repo or choice.weights, choice.rules)
    return facts.parameters / 1e6 if facts else choice.variant.params_m


def choice_label(choice: ModelChoice) -> str:
    """The picker's text: the name and where the weights come from (bundled names already say so)."""
    if choice.bundled:
        return choice.name
    where = "in local cache" if weights_available(choice) else "download from the Hub"
    if choice.official:
        return f"{choice.name} · ImageNet-1k · {where}"
    classes = [f"{choice.num_classes} classes"] if choice.class_names else []
    return " · ".join([choice.name, *classes, *([where] if choice.repo else [])])


def class_list(names: Iterable[str]) -> str:
    names = list(names)
    shown = ", ".join(names[:CLASSES_SHOWN])
    return shown + (f" and {len(names) - CLASSES_SHOWN} more" if len(names) > CLASSES_SHOWN else "")


def describe(choice: ModelChoice) -> str:
    """A Markdown card: size, cost, accuracy, and where the weights come from."""
    if choice.official:
        return describe_official(choice)
    if choice.bundled:
        return describe_bundled(choice)
    return describe_added(choice)


def describe_official(choice: ModelChoice) -> str:
    variant = choice.variant
    where = (
        "in the local Hugging Face cache"
        if weights_available(choice)
        else "not cached yet: downloaded from the Hub on first use (needs network)"
    )
    return (
        f"**{choice.name}** — {count_parameters(choice):.1f} M params · {variant.macs_g} GMACs · "
        f"paper top-1 **{variant.top1} %** on ImageNet-1k  \n"
        f"Weights: official `{variant.hub_repo}`, {where}."
    )


def describe_bundled(choice: ModelChoice) -> str:
    accuracy = choice.metadata.get("val_top1")
    measured = f"{float(accuracy) * 100:.1f} % top-1 on {choice.metadata.get('dataset', 'its')} val" if accuracy else "accuracy not recorded"
    return (
        f"**{choice.name}** — {count_parameters(choice):.1f} M params · {choice.variant.macs_g} GMACs · {measured}  \n"
        f"Knows only these {len(choice.class_names)} classes: {', '.join(choice.class_names)}.  \n"
        f"Token mixer: **{choice.token_mixer}**, trained from scratch. "
        f"Weights: bundled checkpoint `{Path(choice.weights).name}` (works offline).  \n"
        f"Recipe: {choice.metadata.get('recipe', 'not recorded')}"
    )


def describe_added(choice: ModelChoice) -> str:
    """A model the operator or a visitor named: what its checkpoint says about itself."""
    if choice.repo is None:
        where = f"the local checkpoint `{choice.weights}`"
    elif weights_available(choice):
        where = f"the Hub repo `{choice.repo.ref}`, in the local Hugging Face cache"
    else:
        where = f"the Hub repo `{choice.repo.ref}`, downloaded on first use (needs network)"
    if choice.variant is None:
        return f"**{choice.name}** — a PoolFormer from {where}: its size and classes show once it has loaded."
    lines = [
        f"**{choice.name}** — PoolFormer-{choice.variant.name.upper()} ({choice.token_mixer} token mixer) · "
        f"{count_parameters(choice):.1f} M params · {choice.variant.macs_g} GMACs",
        f"Its {choice.num_classes} classes: {class_list(choice.class_names)}.",
        f"Weights: {where}.",
    ]
    if "heldout_top1" in choice.metadata:  # written by `train finetune`
        lines.append(
            f"Fine-tuned from {choice.metadata.get('base_model', 'another PoolFormer')}: "
            f"{float(choice.metadata['heldout_top1']) * 100:.1f} % top-1 on {choice.metadata.get('heldout_images', 'its')} "
            "held-out photos."
        )
    return "  \n".join(lines)
