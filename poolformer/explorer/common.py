"""Steps every view shares: the device, the visitor's photo, model input, top-k and map summaries."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from PIL import Image

from poolformer.explorer.paper import TOKEN_MIXER_TOP1
from poolformer.model import NUM_STAGES, Variant
from poolformer.preprocess import IMAGENET_MEAN, IMAGENET_STD, load_image, preprocess
from poolformer.weights import resolve_device

TOP_K = 5
ALL_STAGES = tuple(range(1, NUM_STAGES + 1))  # stages are numbered 1-4 in the UI, as in the paper
DEVICE = resolve_device(None)  # CUDA when present, else CPU

# MetaFormer paper (arXiv 2111.11418), Table 5: S12 trained from scratch on ImageNet-1k.
PAPER_S12_TOP1 = {mixer: TOKEN_MIXER_TOP1[mixer] for mixer in ("pooling", "identity")}

T = TypeVar("T")
LoadReporter = Callable[[str], None]
PhotoSource = str | Path | bytes | Image.Image


class ExplorerError(ValueError):
    """A request the app can't serve (unknown model, nothing to ablate); str is one line for the user."""


MAX_TEXT = 200  # characters: a model value, class name or option an API call sends is far shorter
SHOWN = 40  # characters of a refused value that its message quotes


def shown(value: object) -> str:
    """`value` as an error message quotes it: its repr, cut short, so a huge request is not echoed back whole."""
    if isinstance(value, (str, list, tuple)) and len(value) > SHOWN:
        value = value[:SHOWN]  # enough to quote; the repr of the whole could be megabytes
    quoted = repr(value)
    return quoted if len(quoted) <= SHOWN else f"{quoted[: SHOWN - 1]}…"


def text(value: object, what: str) -> str | None:
    """An optional short string from the UI or the API; anything else is a request error, refused before any work."""
    if value is None or (isinstance(value, str) and len(value) <= MAX_TEXT):
        return value
    if isinstance(value, str):
        raise ExplorerError(f"{what} is {len(value):,} characters long; it can be at most {MAX_TEXT}")
    raise ExplorerError(f"{what} must be text; got {shown(value)}")


# Helper threads for independent model passes of one request. Torch releases the GIL inside its operations,
# so with one intra-op thread per request (app.py) a lone visitor's passes use the otherwise idle cores.
_PASSES = ThreadPoolExecutor(max_workers=4, thread_name_prefix="model-pass")


def side_by_side(*jobs: Callable[[], T]) -> list[T]:
    """Run independent model passes at once, the first on this thread; results in order, as if run one by one.

    Grad and inference mode are per thread in torch, so the helpers take the caller's.
    """
    inference, grad = torch.is_inference_mode_enabled(), torch.is_grad_enabled()

    def in_callers_mode(job: Callable[[], T]) -> T:
        with torch.inference_mode(inference), torch.set_grad_enabled(grad):
            return job()

    others = [_PASSES.submit(in_callers_mode, job) for job in jobs[1:]]
    first = jobs[0]()
    return [first, *(future.result() for future in others)]


# Model passes one request runs at once when it has many (a sanity check, deletion curves): one per core of the
# CPU Space. More would only share the same cores while holding more activations in memory.
LANES = 2
# The same bound for the whole server: two such requests at once (the queue runs two) share the lanes rather than
# run four passes, each with its activations and gradients (the zoo beside the sanity check: +251 -> +159 MB).
_LANE_PASSES = threading.BoundedSemaphore(LANES)


def in_lanes(jobs: Sequence[Callable[[], T]], lanes: int = LANES) -> list[T]:
    """Run many independent passes `lanes` at a time (and LANES in the whole server), lane i taking jobs i,
    i + lanes, ... in turn; results in order."""

    if not jobs:
        return []

    def lane(start: int) -> list[T]:
        results = []
        for job in jobs[start::lanes]:
            with _LANE_PASSES:
                results.append(job())
        return results

    results: list[T] = [None] * len(jobs)  # type: ignore[list-item]  # every slot is filled below
    for start, values in enumerate(side_by_side(*(partial(lane, start) for start in range(min(lanes, len(jobs)))))):
        results[start::lanes] = values
    return results


def photo_from(source: PhotoSource | None) -> Image.Image:
    """Decode the visitor's photo; no photo at all is a request error, not a crash."""
    if source is None:
        raise ExplorerError("no photo yet: upload, paste or drop one, or pick an example")
    return load_image(source)


def model_input(photo: Image.Image, variant: Variant) -> torch.Tensor:
    """Preprocess exactly as the weights were evaluated (the crop depends on the variant)."""
    return preprocess(photo, variant.crop_pct).to(DEVICE)


def input_photo(pixels: torch.Tensor) -> Image.Image:
    """The 224x224 crop the model actually saw, so overlays line up with the feature maps."""
    rgb = (pixels.cpu() * IMAGENET_STD + IMAGENET_MEAN)[0].clamp(0, 1).mul(255).round().byte()
    return Image.fromarray(rgb.permute(1, 2, 0).numpy())


def top_k(probabilities: torch.Tensor, class_names: Sequence[str], k: int = TOP_K) -> dict[str, float]:
    """Best k classes as {name: probability}, best first; the form gr.Label displays.

    ImageNet has a few repeated names ("crane", "maillot"); the class index disambiguates them.
    """
    values, indices = probabilities.topk(min(k, probabilities.numel()))
    result: dict[str, float] = {}
    for value, index in zip(values.tolist(), indices.tolist()):
        name = class_names[index]
        result[name if name not in result else f"{name} (class {index})"] = value
    return result


def energy(features: torch.Tensor) -> np.ndarray:
    """L2 norm over channels at each position of a (1, C, H, W) map: how strongly a stage responds."""
    values = features[0].detach().float().cpu().numpy()
    return np.sqrt(np.einsum("chw,chw->hw", values, values))  # 8x torch's norm over dim 0 on one CPU thread
