"""Build a PoolFormer and fill it with weights from the Hub, a transformers directory or one checkpoint file.

Three key layouts exist in the wild for the same tensors (see ../shared/REFERENCE.md):
transformers (`sail/poolformer_*` on the Hub), the original sail-sg release (also timm before 2023)
and current timm, which is our own layout. Each layout is turned into ours by one small table of
rename rules. Only safe loaders are used: safetensors, or torch.load(weights_only=True).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from poolformer import hub
from poolformer.hub import WEIGHT_FILES as HUB_WEIGHT_FILES
from poolformer.labels import imagenet_class_names
from poolformer.model import NUM_STAGES, VARIANTS, PoolFormer, Variant

DEFAULT_VARIANT = "s12"
IMAGENET_CLASSES = 1000
# Training scripts often save {"state_dict": ...} or {"model": ...} around the tensors, and
# DataParallel / torch.compile prefix every key with "module." / "_orig_mod.".
WRAPPER_KEYS = ("state_dict", "model")
WRAPPER_PREFIXES = ("module.", "_orig_mod.")


class WeightsError(ValueError):
    """A one-line, user-facing reason why weights could not be loaded, with what to do about it."""


# --- key layouts ---------------------------------------------------------------------------------

Replacement = str | Callable[[re.Match[str]], str]


@dataclass(frozen=True)
class KeyFormat:
    """A checkpoint key layout: a key prefix that only it uses, and rename rules into our layout."""

    name: str
    marker: str
    renames: tuple[tuple[str, Replacement], ...] = ()

    def to_our_key(self, key: str) -> str:
        for pattern, replacement in self.renames:
            key = re.sub(pattern, replacement, key, count=1)
        return key


KEY_FORMATS = (
    KeyFormat(
        "transformers",
        marker="poolformer.encoder.",
        renames=(
            (r"^poolformer\.encoder\.patch_embeddings\.0\.projection\.", "stem.conv."),
            (r"^poolformer\.encoder\.patch_embeddings\.(\d)\.projection\.", r"stages.\1.downsample.conv."),
            (r"^poolformer\.encoder\.block\.(\d)\.(\d+)\.", r"stages.\1.blocks.\2."),
            (r"\.before_norm\.", ".norm1."),
            (r"\.after_norm\.", ".norm2."),
            (r"\.output\.conv(\d)\.", r".mlp.fc\1."),
            (r"\.layer_scale_(\d)$", r".layer_scale\1.scale"),
            (r"^norm\.", "head.norm."),
            (r"^classifier\.", "head.fc."),
        ),
    ),
    # sail-sg's `network` list interleaves stages and downsamplings: [stage0, down1, stage1, down2, ...].
    KeyFormat(
        "sail-sg",
        marker="network.",
        renames=(
            (r"^patch_embed\.proj\.", "stem.conv."),
            (r"^network\.(\d+)\.proj\.", lambda m: f"stages.{(int(m[1]) + 1) // 2}.downsample.conv."),
            (r"^network\.(\d+)\.(\d+)\.", lambda m: f"stages.{int(m[1]) // 2}.blocks.{m[2]}."),
            (r"\.layer_scale_(\d)$", r".layer_scale\1.scale"),
            (r"^norm\.", "head.norm."),
            (r"^head\.(weight|bias)$", r"head.fc.\1"),
        ),
    ),
    KeyFormat("timm", marker="stages."),
)


def detect_key_format(keys: Iterable[str], origin: str) -> KeyFormat:
    """Pick the layout whose marker prefix appears among the keys."""
    keys = list(keys)
    for key_format in KEY_FORMATS:
        if any(key.startswith(key_format.marker) for key in keys):
            return key_format
    raise WeightsError(
        f"{origin}: the keys match no PoolFormer checkpoint layout (transformers 'poolformer.encoder.*', "
        f"sail-sg 'network.*', timm 'stages.*'); it starts with {_shorten(keys)}"
    )


# --- reading checkpoints -------------------------------------------------------------------------


@dataclass
class Checkpoint:
    """Tensors already renamed into our layout, plus what we know about where they came from."""

    tensors: dict[str, torch.Tensor]
    original_keys: dict[str, str]  # our key -> the key in the file, for error messages
    key_format: str
    origin: str  # the file, as the user named it
    source: str  # the one-line `weights_source` description
    class_names: list[str] | None = None
    metadata: dict[str, str] = field(default_factory=dict)


def load_checkpoint(path: Path, *, source: str | None = None, config_path: Path | None = None) -> Checkpoint:
    """Read one weights file (or a transformers directory) and rename its tensors into our layout."""
    if path.is_dir():
        return _load_transformers_dir(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist; pass a checkpoint file or directory, or 'hub'")
    origin = str(path)
    raw, metadata = _read_tensors(path)
    key_format = detect_key_format(raw, origin)
    original_keys = {key_format.to_our_key(key): key for key in raw}
    config = _read_json(config_path) if config_path else {}
    return Checkpoint(
        tensors={ours: _as_float32(raw[theirs]) for ours, theirs in original_keys.items()},
        original_keys=original_keys,
        key_format=key_format.name,
        origin=origin,
        source=source or _describe_file(path, key_format, metadata),
        class_names=_labels_from_config(config) or _labels_from_metadata(metadata, origin),
        metadata=metadata,
    )


def _load_transformers_dir(directory: Path) -> Checkpoint:
    """A save_pretrained() folder: config.json for the labels beside model.safetensors or pytorch_model.bin."""
    weights = next((directory / name for name in HUB_WEIGHT_FILES if (directory / name).is_file()), None)
    if weights is None:
        raise WeightsError(f"{directory} holds neither {' nor '.join(HUB_WEIGHT_FILES)}; point at the weights file")
    config = directory / "config.json"
    return load_checkpoint(
        weights,
        source=f"transformers checkpoint {directory}",
        config_path=config if config.is_file() else None,
    )


def _read_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and safetensors metadata from a file; pickles are opened with weights_only=True."""
    if path.suffix == ".safetensors":
        try:
            with safe_open(path, framework="pt") as reader:
                return {key: reader.get_tensor(key) for key in reader.keys()}, dict(reader.metadata() or {})
        except (SafetensorError, OSError) as error:
            raise WeightsError(f"{path} is not a readable safetensors file ({_first_line(error)})") from None
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch.load raises many exception types on foreign bytes
        # A real pickle that names classes or functions to rebuild (torch says "unsupported GLOBAL").
        if "unsupported global" in str(error).lower():
            raise WeightsError(
                f"{path} contains pickled Python objects besides tensors, which are unsafe to load; "
                "re-save just its state_dict (or convert it to .safetensors)"
            ) from None
        # torch's own text here advises weights_only=False, which we never do; keep only the verdict.
        detail = "" if "Weights only load failed" in str(error) else f" (torch.load: {_first_line(error)})"
        raise WeightsError(
            f"{path} is not a PyTorch checkpoint{detail}; pass a .safetensors, .bin or .pth weights file"
        ) from None
    return _unwrap_state_dict(loaded, path), {}


def _unwrap_state_dict(loaded: object, path: Path) -> dict[str, torch.Tensor]:
    """Dig through the WRAPPER_KEYS dicts, keep the tensors and strip the WRAPPER_PREFIXES."""
    while isinstance(loaded, dict):
        inner = next((loaded[key] for key in WRAPPER_KEYS if isinstance(loaded.get(key), dict)), None)
        if inner is None:
            break
        loaded = inner
    tensors = loaded if isinstance(loaded, dict) else {}
    tensors = {_strip_prefixes(str(key)): value for key, value in tensors.items() if torch.is_tensor(value)}
    if not tensors:
        raise WeightsError(f"{path} holds no named tensors, so it is not a model checkpoint")
    return tensors


def _strip_prefixes(key: str) -> str:
    while key.startswith(WRAPPER_PREFIXES):
        key = key.split(".", 1)[1]
    return key


def _as_float32(tensor: torch.Tensor) -> torch.Tensor:
    """Bundled checkpoints are fp16; the model always runs in fp32."""
    return tensor.float() if tensor.is_floating_point() else tensor


def _describe_file(path: Path, key_format: KeyFormat, metadata: dict[str, str]) -> str:
    if "name" in metadata:
        return f"{metadata['name']} ({path.name})"
    return f"{key_format.name} checkpoint {path}"


# --- labels --------------------------------------------------------------------------------------


def _labels_from_config(config: dict) -> list[str] | None:
    """transformers' id2label, unless it is only the LABEL_0, LABEL_1... placeholders."""
    id2label = config.get("id2label") or {}
    names = [id2label.get(str(index)) for index in range(len(id2label))]
    if not names or None in names or all(name == f"LABEL_{i}" for i, name in enumerate(names)):
        return None
    return names


def _labels_from_metadata(metadata: dict[str, str], origin: str) -> list[str] | None:
    """Our bundled checkpoints carry their class names as a JSON list in the safetensors metadata."""
    if "class_names" not in metadata:
        return None
    try:
        names = json.loads(metadata["class_names"])
    except json.JSONDecodeError:
        names = None
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise WeightsError(f"{origin}: metadata 'class_names' must be a JSON list of strings")
    return names


def default_class_names(num_classes: int) -> list[str]:
    """ImageNet-1k names for 1000 outputs, otherwise neutral "class i" names."""
    if num_classes == IMAGENET_CLASSES:
        return imagenet_class_names()
    return [f"class {index}" for index in range(num_classes)]


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise WeightsError(f"{path} is not a readable JSON config ({_first_line(error)})") from None


# --- the Hugging Face Hub ------------------------------------------------------------------------


def _load_hub(variant: Variant) -> Checkpoint:
    """Official weights from the cache if they are there, otherwise downloaded (with progress bars).

    A cached file that can't be read names itself and the fix, rather than a bare parsing error.
    """
    files = hub.cached_files(variant)
    how = "local HF cache"
    if files is None:
        try:
            files = hub.download(variant)
        except hub.HubError as error:
            raise WeightsError(str(error)) from None
        how = "downloaded from the Hub"
    config, weights = files
    try:
        _read_json(config)
    except WeightsError as error:
        raise WeightsError(hub.damaged(variant, config, str(error))) from None
    try:
        return load_checkpoint(
            weights, source=f"official ImageNet-1k weights, {variant.hub_repo} ({how})", config_path=config
        )
    except WeightsError as error:
        raise WeightsError(hub.damaged(variant, weights, str(error))) from None


# --- building the model --------------------------------------------------------------------------


def create_model(
    variant: str | None = None,
    *,
    weights: str | Path | None = None,
    num_classes: int | None = None,
    device: str | torch.device | None = None,
) -> PoolFormer:
    """An eval-mode PoolFormer with `class_names`, `weights_source` and `checkpoint_metadata` attributes.

    weights: None (random init), "hub" (official ImageNet weights) or a file/directory path.
    variant and num_classes default to s12/1000, or to what a checkpoint's tensors describe.
    """
    target = resolve_device(device)
    if weights is None:
        model = PoolFormer(variant_named(variant or DEFAULT_VARIANT), num_classes or IMAGENET_CLASSES)
        model.class_names = default_class_names(model.num_classes)
    else:
        if str(weights) == "hub":
            checkpoint = _load_hub(variant_named(variant or DEFAULT_VARIANT))
        else:
            checkpoint = load_checkpoint(Path(weights))
        model = _model_from_checkpoint(checkpoint, variant, num_classes)
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
        f"{label} {_shorten(names)}"
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


# --- message helpers -----------------------------------------------------------------------------


def _shorten(names: Iterable[str], limit: int = 3) -> str:
    names = list(names)
    shown = ", ".join(names[:limit])
    return shown + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
