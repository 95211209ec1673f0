"""Small files that decode into extreme pictures: strips, slivers, 1-pixel lines, big palettes, many frames,
decompression bombs. Shared by tests/test_preprocess_bounds.py and benchmarks/preprocess_bounds.py.

Each file either gets an answer (`refusal is None`) or a one-line refusal containing `refusal`, which names
the limit it hit. Pixels are seeded noise or patterns, so resampling has real work to do.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Extreme:
    name: str  # a file name with the format's extension, as an upload would have
    make: Callable[[], bytes]
    refusal: str | None  # None: it must be answered; else a word of its one-line refusal


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def noise(width: int, height: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    bands = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, bands), dtype=np.uint8)
    return Image.fromarray(pixels.squeeze(-1) if bands == 1 else pixels, mode)


def pattern(width: int, height: int) -> Image.Image:
    """A repeating 0-255 ramp with a colour twist: compresses to almost nothing, yet every pixel differs from its neighbours."""
    ramp = np.arange(width * height, dtype=np.uint32).reshape(height, width)
    pixels = np.stack([ramp % 256, (ramp * 7) % 256, (ramp * 13) % 256], axis=-1).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height and holds no pixels: only the header is read before refusing it."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(b"")) + png_chunk(b"IEND", b"")


def png_with_text_bomb(chunks: int = 100) -> bytes:
    """An 8 x 8 PNG carrying `chunks` compressed text chunks of 1 MB each (100 KB on the wire)."""
    plain = encode(Image.new("RGB", (8, 8), (5, 6, 7)), "PNG")
    text = b"".join(png_chunk(b"zTXt", b"k%d\0\0" % i + zlib.compress(b"\0" * 1_000_000, 9)) for i in range(chunks))
    return plain[:33] + text + plain[33:]  # after the 8-byte signature and the 25-byte IHDR chunk


def palette_with_alpha(width: int, height: int) -> bytes:
    """A 256-colour PNG whose every palette entry has its own transparency (tRNS)."""
    image = pattern(width, height).getchannel(1).convert("P")
    image.putpalette(np.random.default_rng(4).integers(0, 256, 768, dtype=np.uint8).tobytes())
    return encode(image, "PNG", transparency=bytes(range(256)))


def frames(fmt: str, count: int, **options) -> bytes:
    """An animation (or multi-page TIFF) of `count` different 16 x 16 frames."""
    shots = [Image.new("RGB", (16, 16), (index % 256, index * 7 % 256, index * 13 % 256)) for index in range(count)]
    return encode(shots[0], fmt, save_all=True, append_images=shots[1:], **options)


def gif_with_local_palettes(count: int = 50) -> bytes:
    """Frames that each carry their own 256-colour table."""
    shots = [noise(64, 64, seed=index).quantize(256) for index in range(count)]
    return encode(shots[0], "GIF", save_all=True, append_images=shots[1:], duration=20)


EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\nnewpath 0 0 moveto 100 100 lineto stroke showpage\n"

CORPUS = [
    # strips and slivers: a few hundred bytes to a few hundred KB, resized to millions of pixels by the plain path
    Extreme("strip-20000x2.png", lambda: encode(noise(20000, 2), "PNG"), None),
    Extreme("strip-2x20000.png", lambda: encode(noise(2, 20000), "PNG"), None),
    Extreme("sliver-5000x8.png", lambda: encode(noise(5000, 8), "PNG"), None),
    Extreme("sliver-8x5000.webp", lambda: encode(noise(8, 5000), "WEBP", lossless=True), None),
    Extreme("sliver-300x40000.png", lambda: encode(pattern(300, 40000), "PNG"), None),  # Pillow shrinks its height first
    Extreme("line-65535x1.gif", lambda: encode(pattern(65535, 1), "GIF"), None),
    Extreme("line-1x65535.png", lambda: encode(noise(1, 65535), "PNG"), None),
    Extreme("line-16000000x1.png", lambda: encode(pattern(16_000_000, 1), "PNG"), None),  # at the decoding limit
    Extreme("line-1x65500-cmyk.jpg", lambda: encode(pattern(1, 65500).convert("CMYK"), "JPEG"), None),  # JPEG's longest
    Extreme("dot-1x1.bmp", lambda: encode(Image.new("RGB", (1, 1), (200, 10, 10)), "BMP"), None),
    # palettes and depth
    Extreme("palette-alpha-4000x4000.png", lambda: palette_with_alpha(4000, 4000), None),
    Extreme("palettes-50-frames.gif", gif_with_local_palettes, None),
    Extreme("deep-16bit-4000x4000.png", lambda: encode(Image.new("I;16", (4000, 4000), 300), "PNG"), None),
    Extreme("float-4000x4000.tif", lambda: encode(Image.new("F", (4000, 4000), 0.5), "TIFF", compression="tiff_deflate"), None),
    Extreme("alpha-4000x4000.png", lambda: encode(Image.new("RGBA", (4000, 4000), (9, 99, 199, 100)), "PNG"), None),
    # many frames or pages: only the first is decoded
    Extreme("frames-5000.gif", lambda: frames("GIF", 5000, duration=10), None),
    Extreme("frames-5000.png", lambda: frames("PNG", 5000, duration=10), None),
    Extreme("frames-1000.webp", lambda: frames("WEBP", 1000, duration=10, lossless=True), None),
    Extreme("pages-500.tif", lambda: frames("TIFF", 500), None),
    # decompression bombs: small files that would decode to tens of megapixels or more
    Extreme("bomb-declared-100000x100000.png", lambda: png_declaring(100_000, 100_000), "decompression bomb"),
    Extreme("bomb-5000x5000.png", lambda: encode(Image.new("RGB", (5000, 5000)), "PNG"), "megapixel"),
    Extreme("bomb-8000x8000.gif", lambda: encode(Image.new("P", (8000, 8000)), "GIF"), "megapixel"),
    Extreme("bomb-5000x5000.webp", lambda: encode(Image.new("RGB", (5000, 5000)), "WEBP", lossless=True), "megapixel"),
    Extreme("bomb-5000x5000.tif", lambda: encode(Image.new("RGB", (5000, 5000)), "TIFF", compression="tiff_deflate"), "megapixel"),
    Extreme("bomb-text-chunks.png", png_with_text_bomb, "MAX_TEXT_MEMORY"),
    Extreme("bomb-9000x9000.jpg", lambda: encode(Image.new("RGB", (9000, 9000), (30, 60, 90)), "JPEG"), None),
    Extreme("panorama-40000x2200.jpg", lambda: encode(Image.new("RGB", (40000, 2200), (90, 60, 30)), "JPEG"), None),
    # a format Pillow opens through an outside program (Ghostscript), which this app never runs
    Extreme("drawing.eps", lambda: EPS, "format"),
]


def write_corpus(directory: Path) -> dict[str, Path]:
    """Every file of the corpus in `directory`, by name."""
    paths = {}
    for extreme in CORPUS:
        paths[extreme.name] = directory / extreme.name
        paths[extreme.name].write_bytes(extreme.make())
    return paths
