"""Build a PoolFormer and fill it with weights from the Hub, a transformers directory or one checkpoint file.

Where the weights come from is one "weights reference": "hub" (the official ImageNet weights of a variant),
a local file or folder (poolformer/checkpoints.py reads them), or a Hub repo id `owner/name[@revision]` in
transformers format (poolformer/hub.py fetches it). The variant and the classes come from the checkpoint.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch

from poolformer import hub
from poolformer.checkpoints import Checkpoint, UnreadableWeights, WeightsError, load_checkpoint, read_json, shorten
from poolformer.labels import imagenet_class_names
from poolformer.mixers import layout_name
from poolformer.model import NUM_STAGES, VARIANTS, PoolFormer, Variant
from poolformer.transformers_config import config_problem

DEFAULT_VARIANT = "s12"
IMAGENET_CLASSES = 1000


def default_class_names(num_classes: int) -> list[str]:
    """ImageNet-1k names for 1000 outputs, otherwise neutral "class i" names."""
    if num_classes == IMAGENET_CLASSES:
        return imagenet_class_names()
    return [f"class {index}" for index in range(num_classes)]


# --- the Hugging Face Hub ------------------------------------------------------------------------


def _load_hub(repo: hub.HubRepo, rules: hub.Rules = hub.OPEN, shapes_only: bool = False) -> Checkpoint:
    """A Hub repo's config and weights from the cache if they are there, otherwise downloaded (with progress bars).

    A cached file that can't be read names itself and the fix, rather than a bare parsing error.
    """
    files = hub.cached_files(repo, rules)
    how = "local HF cache"
    if files is None:
        try:
            files = hub.download(repo, rules=rules)
        except hub.HubError as error:
            raise WeightsError(str(error)) from None
        how = "downloaded from the Hub"
    config, weights = files
    try:
        problem = config_problem(read_json(config))
    except WeightsError as error:
        raise WeightsError(hub.damaged(repo, config, str(error))) from None
    if problem:
        raise WeightsError(f"{repo.ref} {problem}")
    source = f"official ImageNet-1k weights, {repo.repo_id}" if repo.variant else repo.ref
    try:
        return load_checkpoint(weights, source=f"{source} ({how})", config_path=config, shapes_only=shapes_only)
    except UnreadableWeights as error:
        raise WeightsError(hub.damaged(repo, weights, str(error))) from None


WeightsRef = str | Path | hub.HubRepo  # "hub", a path, a Hub repo id, or a repo itself


def read_checkpoint(
    weights: WeightsRef, variant: str | None = None, rules: hub.Rules = hub.OPEN, *, shapes_only: bool = False
) -> Checkpoint:
    """The checkpoint a weights reference names: "hub" (official, of `variant`), a path, or a Hub repo.

    A name that exists on disk is a path, as in transformers; `owner/name[@revision]` is otherwise a Hub
    repo. With `shapes_only` (local files, or Hub files already cached) no tensor data is read.
    """
    if isinstance(weights, str) and weights == "hub":
        return _load_hub(hub.official(variant_named(variant or DEFAULT_VARIANT)), rules, shapes_only)
    repo = hub_repo_named(weights)
    if repo is None:
        return load_checkpoint(Path(weights), shapes_only=shapes_only)
    return _load_hub(repo, rules, shapes_only)


def hub_repo_named(weights: WeightsRef) -> hub.HubRepo | None:
    """The Hub repo a weights reference names (owner/name[@revision]), or None for a local path or "hub"."""
    if isinstance(weights, hub.HubRepo):
        return weights
    if isinstance(weights, Path) or Path(weights).exists():
        return None
    return hub.parse_ref(weights)


@dataclass(frozen=True)
class CheckpointFacts:
    """What a checkpoint holds, read without its tensor data: for catalogues and model cards."""

    variant: Variant
    class_names: list[str]
    token_mixer: str
    parameters: int
    metadata: dict[str, str]


def checkpoint_facts(weights: WeightsRef, rules: hub.Rules = hub.OPEN) -> CheckpointFacts | None:
    """The facts of a local checkpoint or a cached Hub repo; None for a Hub repo not downloaded yet. No network."""
    repo = hub_repo_named(weights)
    if repo is not None and hub.cached_files(repo, rules) is None:
        return None
    checkpoint = read_checkpoint(weights, rules=rules, shapes_only=True)
    with torch.device("meta"):
        model = _model_from_checkpoint(checkpoint, None, None)
    return CheckpointFacts(
        variant=model.variant,
        class_names=list(model.class_names),
        token_mixer=layout_name(model.token_mixers),
        parameters=sum(tensor.numel() for tensor in checkpoint.tensors.values()),
        metadata=checkpoint.metadata,
    )


# --- building the model --------------------------------------------------------------------------


def create_model(
    variant: str | None = None,
    *,
    weights: WeightsRef | None = None,
    num_classes: int | None = None,
    device: str | torch.device | None = None,
    hub_rules: hub.Rules = hub.OPEN,
) -> PoolFormer:
    """An eval-mode PoolFormer with `class_names`, `weights_source` and `checkpoint_metadata` attributes.

    weights: None (random init), "hub" (official ImageNet weights of `variant`), a file or folder path, or a
    Hub repo (an id `owner/name[@revision]` or a HubRepo) in transformers format, fetched under `hub_rules`.
    variant and num_classes default to s12/1000, or to what a checkpoint's tensors describe.
    """
    target = resolve_device(device)
    if weights is None:
        model = PoolFormer(variant_named(variant or DEFAULT_VARIANT), num_classes or IMAGENET_CLASSES)
        model.class_names = default_class_names(model.num_classes)
    else:
        model = _model_from_checkpoint(read_checkpoint(weights, variant, hub_rules), variant, num_classes)
    return model.to(target).eval()


def _model_from_checkpoint(checkpoint: Checkpoint, variant: str | None, num_classes: int | None) -> PoolFormer:
    tensors = checkpoint.tensors
    chosen = _choose_variant(checkpoint, variant)
    head = tensors.get("head.fc.weight")
    classes = num_classes or (head.shape[0] if head is not None else IMAGENET_CLASSES)
    try:
        # Built on the meta device and then handed the checkpoint's own tensors (assign=True): no random init
        # for the checkpoint to overwrite (seconds for the M variants) and no second copy of the weights in memory.
        with torch.device("meta"):
            model = PoolFormer(chosen, classes, **mixer_settings(checkpoint.metadata))
    except ValueError as error:
        raise WeightsError(f"{checkpoint.origin}: {error}") from None
    _check_fits(model, checkpoint)  # every tensor is in the checkpoint, so none stays on the meta device
    model.load_state_dict(tensors, assign=True)
    class_names = checkpoint.class_names or default_class_names(classes)
    if len(class_names) != classes:
        raise WeightsError(f"{checkpoint.origin} names {len(class_names)} classes but its head has {classes} outputs")
    model.class_names = class_names
    model.weights_source = checkpoint.source
    model.checkpoint_metadata = checkpoint.metadata
    return model


def mixer_settings(metadata: dict[str, str]) -> dict[str, object]:
    """The PoolFormer arguments a checkpoint's metadata records about its token mixers (pooling if none)."""
    settings: dict[str, object] = {"token_mixers": metadata.get("token_mixer", "pooling")}
    for key in ("image_size", "mixer_seed"):  # what a random mixer's frozen matrices are drawn for
        if key in metadata:
            settings[key] = int(metadata[key])
    return settings


def _choose_variant(checkpoint: Checkpoint, requested: str | None) -> Variant:
    """The variant the tensors describe; a requested one must agree with it."""
    depths, widths = _architecture_of(checkpoint.tensors)
    inferred = next((v for v in VARIANTS.values() if (v.depths, v.widths) == (depths, widths)), None)
    if requested is not None:
        chosen = variant_named(requested)
        if inferred is not None and inferred != chosen:
            raise WeightsError(
                f"{checkpoint.origin} holds PoolFormer-{inferred.name} weights, not {chosen.name}; "
                f"choose {inferred.name} or leave the variant out"
            )
        return chosen
    if inferred is None:
        raise WeightsError(
            f"{checkpoint.origin} ({checkpoint.key_format} keys): blocks per stage {depths} and widths {widths} "
            f"match no variant ({', '.join(VARIANTS)}); name the variant explicitly"
        )
    return inferred


def _architecture_of(tensors: dict[str, torch.Tensor]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Blocks per stage (counted from the keys) and stage widths (from the first norm's size)."""
    depths, widths = [], []
    for stage in range(NUM_STAGES):
        block_pattern = re.compile(rf"stages\.{stage}\.blocks\.(\d+)\.")
        depths.append(len({match[1] for key in tensors if (match := block_pattern.match(key))}))
        norm = tensors.get(f"stages.{stage}.blocks.0.norm1.weight")
        widths.append(norm.shape[0] if norm is not None else 0)
    return tuple(depths), tuple(widths)


def _check_fits(model: PoolFormer, checkpoint: Checkpoint) -> None:
    """Name missing, unexpected and mis-shaped tensors instead of load_state_dict's long traceback."""
    expected = model.state_dict()
    found = checkpoint.tensors
    missing = sorted(expected.keys() - found.keys())
    unexpected = sorted(checkpoint.original_keys[key] for key in found.keys() - expected.keys())
    misshaped = [
        f"{checkpoint.original_keys[key]} {tuple(found[key].shape)} vs {tuple(expected[key].shape)}"
        for key in sorted(expected.keys() & found.keys())
        if found[key].shape != expected[key].shape
    ]
    problems = [
        f"{label} {shorten(names)}"
        for label, names in (
            (f"missing {len(missing)} (timm names):", missing),
            (f"unexpected {len(unexpected)}:", unexpected),
            (f"wrong shape {len(misshaped)} (file vs model):", misshaped),
        )
        if names
    ]
    if problems:
        raise WeightsError(
            f"{checkpoint.origin} ({checkpoint.key_format} keys) does not fit PoolFormer-{model.variant.name} "
            f"with {model.num_classes} classes: {'; '.join(problems)}"
        )


def variant_named(name: str) -> Variant:
    """The VARIANTS row for a name, or a WeightsError listing the valid names."""
    if name not in VARIANTS:
        raise WeightsError(f"unknown variant {name!r}; choose one of {', '.join(VARIANTS)}")
    return VARIANTS[name]


def resolve_device(device: str | torch.device | None) -> torch.device:
    """None or "auto" picks CUDA when present; asking for CUDA without a GPU is a clear error."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise WeightsError(f"unknown device {device!r}; use auto, cpu or cuda") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise WeightsError("device 'cuda' was asked for but no CUDA GPU is available; use cpu or auto")
    return resolved
