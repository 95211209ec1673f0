"""Accuracy on a folder of class folders: shared by `python -m poolformer eval` and the trainer's finalize step."""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from poolformer.labels import wnid_to_imagenet_index
from poolformer.model import CpuServedPoolFormer, PoolFormer
from poolformer.preprocess import load_image, preprocess

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
DECODE_THREADS = 4  # Pillow releases the GIL while decoding and resizing


class DatasetError(Exception):
    """A one-line problem with the evaluation folder or the checkpoint's class list that the user can fix."""


def model_input(model: PoolFormer, source: str | Path) -> torch.Tensor:
    """Decode an image and preprocess it the way this model's variant was evaluated."""
    return preprocess(load_image(source), model.variant.crop_pct)


@dataclass(frozen=True)
class Sample:
    path: Path
    wnid: str


def find_samples(directory: Path) -> list[Sample]:
    """Images in DIR/<class>/, in a stable order; hidden and non-image files are ignored."""
    if not directory.is_dir():
        raise DatasetError(f"{directory} is not a folder; give DIR/<class>/<image> files, one folder per class")
    samples = [
        Sample(path, folder.name)
        for folder in sorted(directory.iterdir())
        if folder.is_dir() and not folder.name.startswith(".")
        for path in sorted(folder.iterdir())
        if path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")
    ]
    if not samples:
        raise DatasetError(f"no images found in {directory}/<class>/; give one sub-folder of images per class")
    return samples


def class_indices(model: PoolFormer, samples: list[Sample], directory: Path) -> list[int]:
    """Each sample's output index, by its folder's name (see `folder_mapping`)."""
    mapping, named_by = folder_mapping(model)
    unknown = sorted({s.wnid for s in samples} - mapping.keys())
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" (+{len(unknown) - 5} more)" if len(unknown) > 5 else "")
        raise DatasetError(
            f"folders in {directory} that are not classes of this model: {shown}; "
            f"name class folders by {named_by}, or remove the others"
        )
    return [mapping[s.wnid] for s in samples]


def folder_mapping(model: PoolFormer) -> tuple[dict[str, int], str]:
    """Class folder name -> output index, and what the folders must be named by.

    The checkpoint's own wnid list; else ImageNet-1k's wnids for 1000 classes; else the model's class names
    (a fine-tune: `train finetune` names classes after their folders, a Hub repo after its id2label).
    """
    if "wnids" in model.checkpoint_metadata:
        wnids = parse_wnids(model.checkpoint_metadata["wnids"])
        if len(wnids) != model.num_classes:
            raise DatasetError(f"the checkpoint lists {len(wnids)} wnids but has {model.num_classes} classes")
        return {wnid: index for index, wnid in enumerate(wnids)}, "the WordNet ids the model was trained on"
    if model.num_classes == len(wnid_to_imagenet_index()):
        return wnid_to_imagenet_index(), "ImageNet WordNet ids (n01440764 ...)"
    shown = ", ".join(model.class_names[:5]) + (" ..." if model.num_classes > 5 else "")
    return {name: index for index, name in enumerate(model.class_names)}, f"the model's class names ({shown})"


def parse_wnids(text: str) -> list[str]:
    try:
        wnids = json.loads(text)
    except ValueError:
        wnids = None
    if not isinstance(wnids, list) or not all(isinstance(wnid, str) for wnid in wnids):
        raise DatasetError("the checkpoint's 'wnids' metadata is not a JSON list of WordNet ids; re-save it")
    return wnids


WORTH_BUILDING_BATCHES = 8  # an ONNX Runtime session costs about as much to build as this many batches


def evaluate(model: PoolFormer, samples: list[Sample], targets: list[int], batch_size: int) -> tuple[int, int]:
    """Count top-1 and top-5 hits, decoding each batch on a few threads while showing progress on stderr.

    A long run goes through the inference twin, on CPU through ONNX Runtime once its session is built and checked
    (seconds, as much as a few batches; then about 2.5x faster than eager on a busy 2-core machine).
    """
    device = next(model.parameters()).device
    served = model.for_inference()
    if isinstance(served, CpuServedPoolFormer) and len(samples) > WORTH_BUILDING_BATCHES * batch_size:
        served.cpu_passes.build()
    k = min(5, model.num_classes)
    top1 = top5 = 0
    with ThreadPoolExecutor(DECODE_THREADS) as pool, tqdm(total=len(samples), unit="img", file=sys.stderr) as bar:
        for start in range(0, len(samples), batch_size):
            batch = samples[start : start + batch_size]
            images = torch.cat(list(pool.map(lambda s: model_input(model, s.path), batch)))
            labels = torch.tensor(targets[start : start + batch_size], device=device)
            with torch.inference_mode():
                hits = served(images.to(device)).topk(k, dim=-1).indices == labels[:, None]
            top1 += int(hits[:, 0].sum())
            top5 += int(hits.any(dim=-1).sum())
            bar.update(len(batch))
    return top1, top5
