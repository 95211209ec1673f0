"""Fine-tune a PoolFormer on your own photos: `python -m poolformer train finetune DIR --out FILE.safetensors`.

DIR holds one folder of photos per class (any names). A fixed, stratified fifth of each class is held out
and never trained on; each epoch ends with the loss and the accuracy on that part. The defaults suit a
laptop CPU and a few classes of tens of photos: start from the official S12 weights when they are in the
Hugging Face cache (else the bundled Imagenette S12), replace the head, and train only the last stage and
the new head for a short schedule. The frozen stages cost most of a pass, so they see a few augmented
224-pixel crops of each photo once, and the epochs train on what they output (about 1 MB per photo).
The result is a safetensors checkpoint in our key layout whose metadata records the class names, the base
model, the recipe and the held-out accuracy; the app opens it with `python app.py --model FILE`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file
from torch import nn
from tqdm import tqdm

from poolformer.evaluation import DECODE_THREADS, DatasetError, Sample, find_samples
from poolformer.explorer.catalogue import checkpoint_dir
from poolformer.hub import hub_weights_cached
from poolformer.mixers import layout_name
from poolformer.model import NUM_STAGES, VARIANTS, PoolFormer
from poolformer.preprocess import INPUT_SIZE, ImageError, load_image, preprocess, resized_size
from poolformer.train import lr_at, parameter_groups
from poolformer.training_data import GpuAugment, holdout_split
from poolformer.weights import WeightsError, create_model, resolve_device

HOLDOUT = 0.2  # a fifth of every class, the same photos on every run (train.holdout_split's fixed seed)
MIN_PHOTOS_PER_CLASS = 5  # so that at least one of each class is held out and four are trained on
STORED_SIZE = 256  # each training photo is kept as its centre square at this size; crops are taken from it
# Which parts learn: the new head only, or the last stage and the head (the default); the rest is frozen.
FROZEN_STAGES = {"head": NUM_STAGES, "last": NUM_STAGES - 1}
VIEWS = 4  # augmented crops of each training photo that go through the frozen stages (once each)
HEAD_LR, BODY_LR = 1e-3, 1e-4  # the new head learns faster than the pretrained stages it sits on
WEIGHT_DECAY = 0.05
LABEL_SMOOTHING = 0.1
MIN_SCALE, MAGNITUDE = 0.35, 0.3  # random-resized-crop area and rotation/shear/colour strength (GpuAugment)
BUNDLED_BASE = "poolformer_s12_imagenette.safetensors"
USAGE_ERROR = 2


@dataclass
class PhotoSet:
    """The class names (folder names) and the photos: training squares and held-out model inputs."""

    class_names: list[str]
    train_images: torch.Tensor  # (N, 3, STORED_SIZE, STORED_SIZE) uint8
    train_labels: torch.Tensor
    heldout_inputs: torch.Tensor  # (M, 3, 224, 224), preprocessed exactly as the app and `eval` do
    heldout_labels: torch.Tensor


def centre_square(path: Path) -> torch.Tensor:
    """A photo's centre square at STORED_SIZE, as a (3, S, S) uint8 tensor."""
    photo = load_image(path)
    resized = photo.resize(resized_size(photo.size, STORED_SIZE), Image.Resampling.BICUBIC)
    left, top = (resized.width - STORED_SIZE) // 2, (resized.height - STORED_SIZE) // 2
    square = resized.crop((left, top, left + STORED_SIZE, top + STORED_SIZE))
    return torch.from_numpy(np.array(square)).permute(2, 0, 1).contiguous()


def class_photos(directory: Path) -> tuple[list[Sample], list[str]]:
    """The photos of DIR/<class>/* and the class names (folder names, sorted), checked before any model loads."""
    samples = find_samples(directory)
    class_names = sorted({sample.wnid for sample in samples})
    if len(class_names) < 2:
        raise DatasetError(f"{directory} has photos of {len(class_names)} class; fine-tuning needs at least two folders")
    counts = {name: sum(sample.wnid == name for sample in samples) for name in class_names}
    few = [f"{name} ({count})" for name, count in counts.items() if count < MIN_PHOTOS_PER_CLASS]
    if few:
        raise DatasetError(
            f"too few photos in {', '.join(few)}; give each class at least {MIN_PHOTOS_PER_CLASS} (a fifth is held out)"
        )
    return samples, class_names


def load_photos(samples: list[Sample], class_names: list[str], crop_pct: float) -> PhotoSet:
    """Split off the held-out part, and decode each photo once (on a few threads)."""
    labels = torch.tensor([class_names.index(sample.wnid) for sample in samples])
    train_index, heldout_index = holdout_split(labels, HOLDOUT)
    train: list[Sample] = [samples[i] for i in train_index.tolist()]
    heldout: list[Sample] = [samples[i] for i in heldout_index.tolist()]
    with ThreadPoolExecutor(DECODE_THREADS) as pool:
        squares = list(pool.map(lambda sample: centre_square(sample.path), train))
        inputs = list(pool.map(lambda sample: preprocess(load_image(sample.path), crop_pct), heldout))
    return PhotoSet(class_names, torch.stack(squares), labels[train_index], torch.cat(inputs), labels[heldout_index])


def default_base() -> str:
    """The official S12 weights if they are cached (no download needed), else the bundled Imagenette S12."""
    return "s12" if hub_weights_cached("s12") else str(checkpoint_dir() / BUNDLED_BASE)


def base_model(ref: str, device: torch.device) -> PoolFormer:
    """The model to start from: an official variant's name ("s12" ... "m48"), or any weights reference."""
    if ref in VARIANTS:
        return create_model(ref, weights="hub", device=device)
    return create_model(weights=ref, device=device)


def with_new_head(model: PoolFormer, class_names: list[str]) -> PoolFormer:
    """Replace the classifier by a freshly initialised one for these classes (the head's norm is kept)."""
    fc = nn.Linear(model.head.fc.in_features, len(class_names), device=model.head.fc.weight.device)
    nn.init.trunc_normal_(fc.weight, std=0.02)
    nn.init.zeros_(fc.bias)
    model.head.fc = fc
    model.num_classes = len(class_names)
    model.class_names = list(class_names)
    return model


def frozen_features(
    model: PoolFormer,
    images: torch.Tensor,
    frozen: int,
    batch_size: int,
    transform: Callable[[torch.Tensor], torch.Tensor] = lambda x: x,
) -> torch.Tensor:
    """The stem and the first `frozen` stages over model inputs (`transform` makes them from `images`),
    without gradients, batch by batch."""
    device = next(model.parameters()).device
    outputs = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            x = model.stem(transform(images[start : start + batch_size].to(device)))
            for stage in model.stages[:frozen]:
                x = stage(x)
            outputs.append(x)
    return torch.cat(outputs)


def learning_part(model: PoolFormer, features: torch.Tensor, frozen: int) -> torch.Tensor:
    """The rest of the pass from the frozen stages' output: the stages that learn, and the head."""
    for stage in model.stages[frozen:]:
        features = stage(features)
    return model.head(features)


def training_views(model: PoolFormer, photos: PhotoSet, frozen: int, batch_size: int, seed: int) -> torch.Tensor:
    """(VIEWS, N, C, H, W): the frozen stages' output on VIEWS augmented crops of every training photo.

    The frozen stages cost most of a pass and never change, so each view goes through them once, not once per
    epoch; every epoch then takes one view of each photo at random, flipped or not.
    """
    augment = GpuAugment(INPUT_SIZE, (MIN_SCALE, 1.0), MAGNITUDE)
    generator = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    crops = lambda squares: augment(squares, generator).contiguous()
    views = [
        frozen_features(model, photos.train_images, frozen, batch_size, crops)
        for _ in tqdm(range(VIEWS), desc="frozen stages", unit="view", file=sys.stderr)
    ]
    return torch.stack(views)


def optimiser(model: PoolFormer, frozen: int) -> torch.optim.AdamW:
    """AdamW over the learning stages and the new head only; the frozen ones get no gradients at all."""
    model.requires_grad_(False)
    groups = []
    for part, lr in [(model.head, HEAD_LR)] + [(model.stages[i], BODY_LR) for i in range(frozen, NUM_STAGES)]:
        part.requires_grad_(True)
        groups += [dict(group, lr=lr, base_lr=lr) for group in parameter_groups(part, WEIGHT_DECAY)]
    return torch.optim.AdamW(groups)


@torch.no_grad()
def accuracy(model: PoolFormer, features: torch.Tensor, labels: torch.Tensor, frozen: int) -> float:
    model.eval()
    predicted = learning_part(model, features, frozen).argmax(-1).cpu()
    return float((predicted == labels).float().mean())


def fine_tune(model: PoolFormer, photos: PhotoSet, epochs: int, batch_size: int, train: str, seed: int) -> list[dict]:
    """Train in place; one {epoch, loss, heldout} row per epoch, each shown as a progress bar on stderr."""
    frozen = FROZEN_STAGES[train]
    optimizer = optimiser(model, frozen)
    views = training_views(model, photos, frozen, batch_size, seed)
    heldout = frozen_features(model, photos.heldout_inputs, frozen, batch_size)
    device, count = views.device, len(photos.train_labels)
    labels = photos.train_labels.to(device)
    draws = torch.Generator().manual_seed(seed + 1)  # which view of each photo, and whether it is flipped
    steps_per_epoch = math.ceil(count / batch_size)
    total = epochs * steps_per_epoch
    history, step = [], 0
    for epoch in range(1, epochs + 1):
        order = torch.randperm(count, generator=draws)
        losses = []
        bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch}/{epochs}", unit="batch", file=sys.stderr)
        model.train()
        for start in range(0, count, batch_size):
            index = order[start : start + batch_size]
            features = views[torch.randint(VIEWS, (len(index),), generator=draws), index]
            flip = (torch.rand(len(index), generator=draws) < 0.5).view(-1, 1, 1, 1).to(device)
            features = torch.where(flip, features.flip(-1), features)
            for group in optimizer.param_groups:  # one warm-up epoch, then cosine decay to 1 %
                group["lr"] = group["base_lr"] * lr_at(step, total, steps_per_epoch, 1.0, 0.01)
            logits = learning_part(model, features, frozen)
            loss = F.cross_entropy(logits, labels[index], label_smoothing=LABEL_SMOOTHING)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses):.3f}")
        held_out = accuracy(model, heldout, photos.heldout_labels, frozen)
        bar.set_postfix(loss=f"{np.mean(losses):.3f}", held_out=f"{held_out:.1%}")
        bar.close()
        history.append({"epoch": epoch, "loss": round(float(np.mean(losses)), 4), "heldout": round(held_out, 4)})
    model.requires_grad_(True)
    return history


def save(model: PoolFormer, out: Path, metadata: dict[str, str]) -> None:
    """fp32 safetensors in our key layout: the held-out figure is that of exactly these weights."""
    state = {key: value.detach().to("cpu", torch.float32).contiguous() for key, value in model.state_dict().items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out), metadata=metadata)


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    device = resolve_device(args.device)
    samples, class_names = class_photos(args.dir)
    model = base_model(args.base or default_base(), device)
    photos = load_photos(samples, class_names, model.variant.crop_pct)
    print(
        f"fine-tuning {model.weights_source} [{model.variant.name}] on {len(photos.train_labels)} photos of "
        f"{len(photos.class_names)} classes ({', '.join(photos.class_names)}), holding out "
        f"{len(photos.heldout_labels)}, on {device.type}",
        file=sys.stderr,
    )
    torch.manual_seed(args.seed)  # the new head's initial weights and drop-path's draws: a rerun is the same run
    model = with_new_head(model, photos.class_names)
    history = fine_tune(model, photos, args.epochs, args.batch_size, args.train, args.seed)
    accuracy = history[-1]["heldout"]
    seconds = time.perf_counter() - started
    recipe = (
        f"{args.epochs} epochs, batch {args.batch_size}, learning: {args.train} (head lr {HEAD_LR}, stages lr {BODY_LR}), "
        f"AdamW wd {WEIGHT_DECAY}, 1 warm-up epoch + cosine, label smoothing {LABEL_SMOOTHING}, {VIEWS} views per photo "
        f"(random-resized crop, scale >= {MIN_SCALE}, rotation/shear/colour magnitude {MAGNITUDE}, {INPUT_SIZE} px) "
        f"through the frozen stages once, each epoch one of them, flipped at random, "
        f"a fixed stratified {HOLDOUT:.0%} of each class held out, seed {args.seed}"
    )
    save(
        model,
        args.out,
        {
            "format": "pt",
            "name": f"{args.out.stem} (PoolFormer-{model.variant.name.upper()}, fine-tuned)",
            "variant": model.variant.name,
            "token_mixer": layout_name(model.token_mixers),
            "image_size": str(model.image_size),  # what a random mixer's frozen matrices were drawn for
            "mixer_seed": str(model.mixer_seed),
            "class_names": json.dumps(photos.class_names),
            "base_model": model.weights_source,
            "recipe": recipe,
            "heldout_top1": f"{accuracy:.4f}",
            "heldout_images": str(len(photos.heldout_labels)),
            "train_images": str(len(photos.train_labels)),
            "history": json.dumps(history),
            "train_seconds": f"{seconds:.0f}",
            "device": device.type,
            "dataset": args.dir.name,
        },
    )
    print(
        f"held-out top-1 {accuracy:.1%} on {len(photos.heldout_labels)} photos after {seconds:.0f} s; wrote {args.out} "
        f"(open it with: python app.py --model {args.out})",
        file=sys.stderr,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m poolformer train finetune", description=__doc__.split("\n\n")[0].split(": ", 1)[0]
    )
    parser.add_argument("dir", type=Path, metavar="DIR", help="one folder of photos per class (any names)")
    parser.add_argument(
        "--from",
        dest="base",
        metavar="REF",
        help="the model to start from: s12 ... m48 (official), a checkpoint file or folder, or a Hub repo id "
        "(default: official S12 if it is in the Hugging Face cache, else the bundled Imagenette S12)",
    )
    parser.add_argument("--out", type=Path, required=True, metavar="FILE.safetensors")
    parser.add_argument("--epochs", type=int, default=8, metavar="N")
    parser.add_argument("--batch-size", type=int, default=16, metavar="B")
    parser.add_argument("--train", choices=list(FROZEN_STAGES), default="last",
                        help="what learns: the new head only, or the last stage and the head (default)")
    parser.add_argument("--seed", type=int, default=0, metavar="S",
                        help="seeds the new head, the crops and the training draws (default 0)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.out.suffix != ".safetensors":
        parser.error(f"--out {args.out} must end in .safetensors")
    if min(args.epochs, args.batch_size) < 1:
        parser.error("--epochs and --batch-size must be at least 1")
    try:
        return run(args)
    except (DatasetError, ImageError, WeightsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE_ERROR
