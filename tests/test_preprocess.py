"""Preprocessing parity with transformers' PoolFormerImageProcessorPil, and load_image on awkward files."""

from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np
import pytest
import torch
from PIL import Image
from transformers.models.poolformer.image_processing_pil_poolformer import PoolFormerImageProcessorPil

from poolformer.preprocess import ImageError, load_image, preprocess

EIGHT_BIT_MODES = ["RGB", "L", "LA", "P", "RGBA", "CMYK"]
# (width, height): degenerate, tiny, extreme aspect both ways, common photo sizes, exactly the crop.
SIZES = [(1, 1), (5, 3), (37, 301), (301, 37), (640, 480), (500, 333), (333, 500), (224, 224), (1000, 249)]


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def random_rgba(width: int, height: int, seed: int) -> Image.Image:
    """Noise with varied alpha, so resampling, compositing and palette conversion all matter."""
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 4), dtype=np.uint8)
    return Image.fromarray(pixels, "RGBA")


def reference(image: Image.Image, crop_pct: float) -> torch.Tensor:
    processor = PoolFormerImageProcessorPil(crop_pct=crop_pct, do_convert_rgb=True)
    return processor(image, return_tensors="pt")["pixel_values"]


@pytest.mark.parametrize("crop_pct", [0.9, 0.95])
@pytest.mark.parametrize("mode", EIGHT_BIT_MODES)
def test_matches_transformers_in_every_8bit_mode(mode: str, crop_pct: float) -> None:
    for seed, (width, height) in enumerate(SIZES):
        image = random_rgba(width, height, seed).convert(mode)
        ours = preprocess(load_image(image), crop_pct)
        assert ours.shape == (1, 3, 224, 224) and ours.dtype == torch.float32
        assert (ours - reference(image, crop_pct)).abs().max().item() <= 1e-5, (mode, width, height)


def test_palette_transparency_is_composited_like_transformers() -> None:
    image = random_rgba(300, 200, seed=7).convert("P")
    image.info["transparency"] = 5  # one palette entry is see-through, as in many GIFs and PNGs
    assert (preprocess(load_image(image), 0.9) - reference(image, 0.9)).abs().max().item() <= 1e-5


def test_encoded_files_match_transformers_on_the_decoded_pixels() -> None:
    """The path and bytes routes decode exactly what Pillow decodes (no draft at ordinary sizes)."""
    photo = random_rgba(800, 600, seed=3).convert("RGB")
    data = encode(photo, "JPEG", quality=90)
    expected = reference(Image.open(io.BytesIO(data)), 0.9)
    assert torch.equal(preprocess(load_image(data), 0.9), expected)


def test_16bit_gradient_looks_like_the_8bit_gradient() -> None:
    gradient16 = np.tile(np.linspace(0, 65535, 256).round().astype(np.uint16), (8, 1))
    gradient8 = np.rint(gradient16 / 257).astype(np.uint8)
    for fmt in ("PNG", "TIFF"):
        opened = Image.open(io.BytesIO(encode(Image.fromarray(gradient16), fmt)))
        assert opened.mode == "I;16"
        assert np.mean(np.asarray(opened.convert("L")) == 255) > 0.9  # Pillow's own conversion clips to white
        rgb = np.asarray(load_image(opened))
        assert rgb.shape == (8, 256, 3)
        assert np.abs(rgb[..., 0].astype(int) - gradient8).max() <= 1
    big_endian = Image.frombytes("I;16B", (256, 8), gradient16.astype(">u2").tobytes())
    assert np.abs(np.asarray(load_image(big_endian))[..., 1].astype(int) - gradient8).max() <= 1


@pytest.mark.parametrize("white", [1.0, 255.0])
def test_float_and_32bit_images_are_scaled_by_their_range(white: float) -> None:
    ramp = np.tile(np.linspace(0, 1, 256, dtype=np.float32), (4, 1))
    expected = np.rint(ramp * 255).astype(int)
    float_image = Image.fromarray(ramp * white)
    assert float_image.mode == "F"
    assert np.abs(np.asarray(load_image(float_image))[..., 2] - expected).max() <= 1
    int_image = Image.fromarray(np.rint(ramp * 65535).astype(np.int32))
    assert int_image.mode == "I"
    assert np.abs(np.asarray(load_image(int_image))[..., 0] - expected).max() <= 1


def test_exif_orientation_is_applied() -> None:
    photo = random_rgba(60, 40, seed=11).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view"
    data = encode(photo, "JPEG", quality=95, exif=exif)
    decoded = Image.open(io.BytesIO(data)).convert("RGB")
    upright = np.asarray(decoded.transpose(Image.Transpose.ROTATE_270))
    loaded = load_image(data)
    assert loaded.size == (40, 60)
    assert np.array_equal(np.asarray(loaded), upright)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_animations_give_their_first_frame(fmt: str) -> None:
    frames = [Image.new("RGB", (30, 20), color) for color in ((200, 0, 0), (0, 200, 0), (0, 0, 200))]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, lossless=True)
    assert Image.open(io.BytesIO(data)).n_frames == 3
    image = load_image(data)
    assert image.mode == "RGB" and image.getpixel((10, 10)) == (200, 0, 0)


def test_large_jpeg_is_reduced_while_decoding() -> None:
    """A 12-MP photo decodes at half size (DCT scaling); the model input barely changes.

    How much time that saves is measured by benchmarks/preprocess_speed.py, not asserted here."""
    smooth = Image.linear_gradient("L").resize((4032, 3024)).convert("RGB")
    data = encode(smooth, "JPEG", quality=90)
    image = load_image(data)
    assert image.size == (2016, 1512)
    exact = reference(Image.open(io.BytesIO(data)), 0.9)
    assert (preprocess(image, 0.9) - exact).abs().max().item() < 0.05


def test_large_png_is_box_reduced() -> None:
    image = load_image(encode(Image.new("RGB", (3000, 2100), (10, 20, 30)), "PNG"))
    assert image.size == (1500, 1050) and image.getpixel((0, 0)) == (10, 20, 30)


def png_with_declared_size(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a huge size: only the header is read before refusing it."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # pytest re-enables Pillow's warning
@pytest.mark.parametrize("side", [10_000, 100_000])  # over Pillow's warning limit; over its error limit
def test_decompression_bombs_are_refused(side: int) -> None:
    start = time.perf_counter()
    with pytest.raises(ImageError, match="downscale it first") as caught:
        load_image(png_with_declared_size(side, side))
    assert "\n" not in str(caught.value)
    assert time.perf_counter() - start < 1


def bad_files(tmp_path) -> dict[str, object]:
    jpeg = encode(random_rgba(64, 48, seed=5).convert("RGB"), "JPEG")
    png = encode(random_rgba(64, 48, seed=6), "PNG")
    text_file = tmp_path / "notes.jpg"
    text_file.write_text("not an image at all\n")
    return {
        "truncated jpeg": jpeg[: len(jpeg) // 2],
        "truncated png": png[:-40],
        "text bytes": b"hello world",
        "empty": b"",
        "text file named .jpg": text_file,
        "missing file": tmp_path / "missing.png",
        "a folder": tmp_path,
    }


def test_unreadable_inputs_raise_one_line_image_errors(tmp_path) -> None:
    files = bad_files(tmp_path)
    for label, source in files.items():
        with pytest.raises(ImageError) as caught:
            load_image(source)
        message = str(caught.value)
        assert message and "\n" not in message, label
        assert "Traceback" not in message and "<_io." not in message, label
    with pytest.raises(ImageError, match="no such file"):
        load_image(files["missing file"])
    with pytest.raises(ImageError, match="not an image format"):
        load_image(files["text file named .jpg"])
    with pytest.raises(ImageError, match="damaged or unreadable"):
        load_image(files["truncated jpeg"])


def test_crop_pct_is_validated() -> None:
    with pytest.raises(ValueError, match="crop_pct"):
        preprocess(Image.new("RGB", (10, 10)), 1.5)
