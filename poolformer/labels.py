"""ImageNet-1k class names and WordNet ids in the order of the official models' 1000 outputs.

The data lives in assets/imagenet_classes.json (taken from the timm wheel's synset files; the file
header names the source). It is read once per process.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

CLASSES_FILE = Path(__file__).resolve().parent.parent / "assets" / "imagenet_classes.json"


@cache
def _imagenet_table() -> tuple[tuple[str, str], ...]:
    """(wnid, name) per class index; the file's explicit index column guards against reordering."""
    rows = json.loads(CLASSES_FILE.read_text(encoding="utf-8"))["classes"]
    for position, (index, _, _) in enumerate(rows):
        if index != position:
            raise ValueError(f"{CLASSES_FILE}: row {position} has index {index}; the file is out of order")
    return tuple((wnid, name) for _, wnid, name in rows)


def imagenet_class_names() -> list[str]:
    """Short human names (first WordNet lemma), e.g. index 0 -> "tench"."""
    return [name for _, name in _imagenet_table()]


def imagenet_wnids() -> list[str]:
    """WordNet ids, e.g. index 0 -> "n01440764"; ImageNet folders are named by these."""
    return [wnid for wnid, _ in _imagenet_table()]


@cache
def wnid_to_imagenet_index() -> dict[str, int]:
    """Map a WordNet id to its output index in a 1000-class ImageNet model."""
    return {wnid: index for index, wnid in enumerate(imagenet_wnids())}
