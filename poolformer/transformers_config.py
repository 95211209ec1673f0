"""What a transformers `config.json` says about a PoolFormer checkpoint, and whether our model runs it exactly.

transformers' PoolFormerConfig has settings our PoolFormer fixes (pool size, MLP ratio, patch sizes...). Every
`sail/` repo and every fine-tune of one keeps transformers' defaults; a config that changes one is refused
by name rather than run with the wrong arithmetic. The variant is read from `depths` and `hidden_sizes`.
"""

from __future__ import annotations

import re

from poolformer.model import VARIANTS, Variant

MODEL_TYPE = "poolformer"
# The settings our model hard-codes, at the values transformers defaults to.
FIXED_SETTINGS = {
    "num_channels": 3,
    "pool_size": 3,
    "mlp_ratio": 4.0,
    "patch_sizes": [7, 3, 3, 3],
    "strides": [4, 2, 2, 2],
    "padding": [2, 1, 1, 1],
    "num_encoder_blocks": 4,
    "hidden_act": "gelu",
    "use_layer_scale": True,
}
PLACEHOLDER_LABEL = re.compile(r"LABEL_(\d+)")  # what transformers names classes nobody named


def config_problem(config: dict) -> str | None:
    """Why this config is not a PoolFormer our model computes exactly, as words to follow its name; None if it is."""
    model_type = config.get("model_type")
    if model_type != MODEL_TYPE:
        said = f"model_type {model_type!r}" if model_type else "no model_type"
        return f"is not a PoolFormer: its config.json has {said}; only model_type '{MODEL_TYPE}' checkpoints open here"
    for key, expected in FIXED_SETTINGS.items():
        if key in config and config[key] != expected:
            return f"sets {key} = {config[key]!r} in its config.json; this PoolFormer implements only {expected!r}"
    if config_variant(config) is None:
        depths, widths = config.get("depths"), config.get("hidden_sizes")
        return (
            f"has depths {depths} and hidden_sizes {widths}, which match no PoolFormer variant "
            f"({', '.join(VARIANTS)})"
        )
    return None


def config_variant(config: dict) -> Variant | None:
    """The variant whose blocks per stage and widths the config names (transformers' defaults are S12's)."""
    depths = tuple(config.get("depths", (2, 2, 6, 2)))
    widths = tuple(config.get("hidden_sizes", (64, 128, 320, 512)))
    return next((v for v in VARIANTS.values() if (v.depths, v.widths) == (depths, widths)), None)


def config_class_names(config: dict) -> list[str] | None:
    """The config's id2label as a list; transformers' LABEL_3 placeholders become "class 3".

    None when there is no id2label, or when every name is a placeholder (the caller then picks defaults:
    ImageNet's names for 1000 classes).
    """
    id2label = config.get("id2label") or {}
    names = [id2label.get(str(index), id2label.get(index)) for index in range(len(id2label))]
    if not names or None in names:
        return None
    placeholders = [PLACEHOLDER_LABEL.fullmatch(str(name)) for name in names]
    if all(placeholders):
        return None
    return [f"class {match[1]}" if match else str(name) for name, match in zip(names, placeholders)]
