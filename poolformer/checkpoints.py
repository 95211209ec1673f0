"""Checkpoint files: the three key layouts of the same tensors, read with safe loaders only.

Three key layouts exist in the wild (see ../shared/REFERENCE.md): transformers (`sail/poolformer_*` on the
Hub), the original sail-sg release (also timm before 2023) and current timm, which is our own layout. Each
is turned into ours by one small table of rename rules. Files are read with safetensors or
torch.load(weights_only=True), never by unpickling anything else.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from poolformer.hub import WEIGHT_FILES as HUB_WEIGHT_FILES
from poolformer.transformers_config import config_class_names, config_problem

# Training scripts often save {"state_dict": ...} or {"model": ...} around the tensors, and
# DataParallel / torch.compile prefix every key with "module." / "_orig_mod.".
WRAPPER_KEYS = ("state_dict", "model")
WRAPPER_PREFIXES = ("module.", "_orig_mod.")


class WeightsError(ValueError):
    """A one-line, user-facing reason why weights could not be loaded, with what to do about it."""


class UnreadableWeights(WeightsError):
    """The file's bytes are not a checkpoint at all (truncated, garbage): for a cached download, damage."""


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
        f"sail-sg 'network.*', timm 'stages.*'); it starts with {shorten(keys)}"
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


def load_checkpoint(
    path: Path, *, source: str | None = None, config_path: Path | None = None, shapes_only: bool = False
) -> Checkpoint:
    """Read one weights file (or a transformers directory) and rename its tensors into our layout.

    With `shapes_only` the tensors are meta tensors (shapes, no data): enough to tell what the checkpoint is.
    """
    if path.is_dir():
        return _load_transformers_dir(path, shapes_only)
    if not path.is_file():
        raise WeightsError(
            f"weights file {path} does not exist; pass a checkpoint file or folder, a Hub repo id (owner/name), or 'hub'"
        )
    origin = str(path)
    raw, metadata = _read_tensors(path, shapes_only)
    key_format = detect_key_format(raw, origin)
    original_keys = {key_format.to_our_key(key): key for key in raw}
    config = read_json(config_path) if config_path else {}
    if config and (problem := config_problem(config)):
        raise WeightsError(f"{config_path.parent} {problem}")
    return Checkpoint(
        tensors={ours: _as_float32(raw[theirs]) for ours, theirs in original_keys.items()},
        original_keys=original_keys,
        key_format=key_format.name,
        origin=origin,
        source=source or _describe_file(path, key_format, metadata),
        class_names=config_class_names(config) or _labels_from_metadata(metadata, origin),
        metadata=metadata,
    )


def _load_transformers_dir(directory: Path, shapes_only: bool = False) -> Checkpoint:
    """A save_pretrained() folder: config.json for the labels beside model.safetensors or pytorch_model.bin."""
    weights = next((directory / name for name in HUB_WEIGHT_FILES if (directory / name).is_file()), None)
    if weights is None:
        raise WeightsError(f"{directory} holds neither {' nor '.join(HUB_WEIGHT_FILES)}; point at the weights file")
    config = directory / "config.json"
    return load_checkpoint(
        weights,
        source=f"transformers checkpoint {directory}",
        config_path=config if config.is_file() else None,
        shapes_only=shapes_only,
    )


def _read_tensors(path: Path, shapes_only: bool = False) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and safetensors metadata from a file; pickles are opened with weights_only=True."""
    if path.suffix == ".safetensors":
        try:
            with safe_open(path, framework="pt") as reader:
                if shapes_only:
                    tensors = {key: _meta_tensor(reader.get_slice(key)) for key in reader.keys()}
                else:
                    tensors = {key: reader.get_tensor(key) for key in reader.keys()}
                return tensors, dict(reader.metadata() or {})
        except (SafetensorError, OSError) as error:
            raise UnreadableWeights(f"{path} is not a readable safetensors file ({first_line(error)})") from None
    try:
        loaded = torch.load(path, map_location="meta" if shapes_only else "cpu", weights_only=True)
    except Exception as error:  # torch.load raises many exception types on foreign bytes
        # A real pickle that names classes or functions to rebuild (torch says "unsupported GLOBAL").
        if "unsupported global" in str(error).lower():
            raise WeightsError(
                f"{path} contains pickled Python objects besides tensors, which are unsafe to load; "
                "re-save just its state_dict (or convert it to .safetensors)"
            ) from None
        # torch's own text here advises weights_only=False, which we never do; keep only the verdict.
        detail = "" if "Weights only load failed" in str(error) else f" (torch.load: {first_line(error)})"
        raise UnreadableWeights(
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


def _meta_tensor(tensor_slice) -> torch.Tensor:
    """A shape-only stand-in for a tensor in a safetensors file (its dtype does not matter here)."""
    return torch.empty(tensor_slice.get_shape(), device="meta")


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


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise WeightsError(f"{path} is not a readable JSON config ({first_line(error)})") from None


# --- message helpers -----------------------------------------------------------------------------


def shorten(names: Iterable[str], limit: int = 3) -> str:
    names = list(names)
    shown = ", ".join(names[:limit])
    return shown + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
