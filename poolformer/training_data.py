"""What training reads and how it sees it: packed WebP data sets, the held-out slice of train, and the
batched GPU augmentation and evaluation transforms (`python -m poolformer train pack` writes the packs)."""

from __future__ import annotations

import io
import json
import math
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

from poolformer.preprocess import IMAGENET_MEAN, IMAGENET_STD

# ----------------------------------------------------------------------------- packing


def _encode_webp(job: tuple[str, int, int]) -> bytes:
    path, size, quality = job
    image = Image.open(path).convert("RGB").resize((size, size), Image.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, "WEBP", quality=quality, method=4)
    return buffer.getvalue()


def pack(src: Path, out: Path, size: int, quality: int) -> None:
    """Store every image of `src/<wnid>/*` as a square WebP inside one safetensors file."""
    wnids = sorted(p.name for p in src.iterdir() if p.is_dir())
    files = [(f, label) for label, wnid in enumerate(wnids) for f in sorted((src / wnid).iterdir())]
    with ProcessPoolExecutor() as pool:
        blobs = list(pool.map(_encode_webp, [(str(f), size, quality) for f, _ in files], chunksize=64))
    offsets = np.cumsum([0] + [len(b) for b in blobs])
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(
        {
            "webp": torch.frombuffer(bytearray(b"".join(blobs)), dtype=torch.uint8),
            "offsets": torch.from_numpy(offsets.astype(np.int64)),
            "labels": torch.tensor([label for _, label in files]),
        },
        str(out),
        metadata={"wnids": json.dumps(wnids), "size": str(size), "source": str(src)},
    )
    print(f"packed {len(files)} images of {len(wnids)} classes at {size}px into {out} ({offsets[-1] / 2**20:.1f} MiB)")


def _decode_webp(blob: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(blob)).convert("RGB"))


def load_packed(path: Path, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Decode a packed file into uint8 images (N, 3, S, S) and labels, both on `device`."""
    with safe_open(str(path), framework="pt") as packed:
        webp = packed.get_tensor("webp").numpy().tobytes()
        offsets = packed.get_tensor("offsets").tolist()
        labels = packed.get_tensor("labels")
        wnids = json.loads(packed.metadata()["wnids"])
    blobs = [webp[a:b] for a, b in zip(offsets[:-1], offsets[1:])]
    with ProcessPoolExecutor(min(16, os.cpu_count() or 1)) as pool:
        arrays = list(pool.map(_decode_webp, blobs, chunksize=128))
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return images.to(device), labels.to(device), wnids


def holdout_split(labels: torch.Tensor, fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (train, held out): the same stratified `fraction` of every class, whatever the seed.

    Recipe choices are judged on this slice of *train*, so the val split stays untouched until the end.
    """
    generator = torch.Generator().manual_seed(12345)  # fixed: every seed and mixer holds out the same images
    keep, held = [], []
    for label in labels.cpu().unique().tolist():
        members = (labels.cpu() == label).nonzero().flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        count = round(len(members) * fraction)
        held.append(members[:count])
        keep.append(members[count:])
    return torch.cat(keep).sort().values, torch.cat(held).sort().values


# ----------------------------------------------------------------------------- augmentation


class GpuAugment:
    """Batched random-resized-crop, flip, small rotation/shear and colour jitter in one pass.

    All geometry is folded into one affine grid per image, so the whole batch is resampled by a
    single `grid_sample`; this is what lets augmentation keep pace with a compiled model.
    """

    def __init__(self, out_size: int, scale: tuple[float, float], magnitude: float) -> None:
        self.out_size = out_size
        self.scale = scale
        self.magnitude = magnitude

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, device = images.shape[0], images.device

        def uniform(low: float, high: float) -> torch.Tensor:
            return torch.rand(n, device=device, generator=generator) * (high - low) + low

        # Random resized crop: area fraction and log-uniform aspect ratio, as fractions of the image.
        area = uniform(*self.scale)
        log_ratio = uniform(math.log(3 / 4), math.log(4 / 3))
        width = torch.sqrt(area * log_ratio.exp()).clamp(max=1.0)
        height = torch.sqrt(area / log_ratio.exp()).clamp(max=1.0)
        centre_x = uniform(-1, 1) * (1 - width)
        centre_y = uniform(-1, 1) * (1 - height)
        flip = torch.where(torch.rand(n, device=device, generator=generator) < 0.5, -1.0, 1.0)
        angle = uniform(-1, 1) * math.radians(30) * self.magnitude
        shear = uniform(-1, 1) * 0.3 * self.magnitude
        cos, sin = angle.cos(), angle.sin()
        theta = torch.stack(
            [
                torch.stack([width * flip * cos, -height * (sin + shear * cos), centre_x], dim=1),
                torch.stack([width * flip * sin, height * (cos - shear * sin), centre_y], dim=1),
            ],
            dim=1,
        )
        grid = F.affine_grid(theta, [n, 3, self.out_size, self.out_size], align_corners=False)
        x = F.grid_sample(images.float() / 255, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

        # Colour jitter, each factor drawn per image within +-magnitude*0.4.
        spread = 0.4 * self.magnitude
        brightness = uniform(1 - spread, 1 + spread).view(n, 1, 1, 1)
        contrast = uniform(1 - spread, 1 + spread).view(n, 1, 1, 1)
        saturation = uniform(1 - spread, 1 + spread).view(n, 1, 1, 1)
        x = x * brightness
        grey = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
        x = (x - grey.mean(dim=(2, 3), keepdim=True)) * contrast + grey.mean(dim=(2, 3), keepdim=True)
        grey = 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
        x = ((x - grey) * saturation + grey).clamp(0, 1)
        return normalise(x)


def normalise(x: torch.Tensor) -> torch.Tensor:
    """ImageNet mean/std, as at inference; channels-last is the fast layout for the convs on GPU."""
    mean, std = IMAGENET_MEAN.to(x.device), IMAGENET_STD.to(x.device)
    return ((x - mean) / std).contiguous(memory_format=torch.channels_last)


def mix_batch(
    x: torch.Tensor, targets: torch.Tensor, prob: float, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """With probability `prob`, blend the batch with its reverse by mixup (alpha 0.8) or cutmix (alpha 1.0)."""
    if rng.random() >= prob:
        return x, targets
    flipped_x, flipped_t = x.flip(0), targets.flip(0)
    if rng.random() < 0.5:
        lam = rng.beta(0.8, 0.8)
        return x * lam + flipped_x * (1 - lam), targets * lam + flipped_t * (1 - lam)
    size = x.shape[-1]
    cut = int(size * math.sqrt(1 - rng.beta(1.0, 1.0)))
    top, left = rng.integers(0, size - cut + 1, size=2)
    x = x.clone()
    x[..., top : top + cut, left : left + cut] = flipped_x[..., top : top + cut, left : left + cut]
    lam = 1 - cut * cut / (size * size)  # the pasted area decides the label weight
    return x, targets * lam + flipped_t * (1 - lam)


def eval_transform(images: torch.Tensor, size: int) -> torch.Tensor:
    """Whole image resized to the training resolution: a cheap per-epoch proxy of the real eval."""
    x = F.interpolate(images.float() / 255, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return normalise(x)


def protocol_transform(images: torch.Tensor, crop_pct: float, crop: int = 224) -> torch.Tensor:
    """The real eval's geometry on packed images (resize to crop / crop_pct, centre crop), so recipes
    trained at different resolutions are judged at the resolution the app and `eval` use."""
    resize = int(crop / crop_pct)
    x = F.interpolate(images.float() / 255, size=(resize, resize), mode="bicubic", antialias=True, align_corners=False)
    top = (resize - crop) // 2
    return normalise(x[..., top : top + crop, top : top + crop].clamp(0, 1))
