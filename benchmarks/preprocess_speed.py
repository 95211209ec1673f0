"""Photo → model input: our loader and preprocessing against transformers' PoolFormer processor, same process.

    python benchmarks/preprocess_speed.py [--runs 15]

A phone-sized JPEG (4032x3024, 12 MP) and a web-sized one (640x480), from encoded bytes to the
(1, 3, 224, 224) tensor. Our path shrinks large JPEGs while decoding (DCT scaling); the peer
decodes at full size, as `PoolFormerImageProcessorPil` on `Image.open` does.
"""

from __future__ import annotations

import argparse
import io
import platform
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers.models.poolformer.image_processing_pil_poolformer import PoolFormerImageProcessorPil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from timing import median_ms  # noqa: E402

from poolformer.preprocess import load_image, preprocess  # noqa: E402


def photo_bytes(width: int, height: int) -> bytes:
    """A JPEG with photo-like content (smooth gradients plus noise), so the decoder does real work."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height)], axis=-1)
    pixels = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    processor = PoolFormerImageProcessorPil(crop_pct=0.9, do_convert_rgb=True)
    print(f"machine: {platform.machine()} · {torch.get_num_threads()} torch threads · Pillow {Image.__version__}")
    for width, height in ((4032, 3024), (640, 480)):
        data = photo_bytes(width, height)
        ours = median_ms(lambda: preprocess(load_image(data), 0.9), args.runs)
        peer = median_ms(lambda: processor(Image.open(io.BytesIO(data)), return_tensors="pt"), args.runs)
        print(f"{width}x{height} JPEG: ours {ours:.1f} ms · transformers {peer:.1f} ms · ratio {ours / peer:.2f}")


if __name__ == "__main__":
    main()
