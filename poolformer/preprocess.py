"""Reading images and turning them into exactly the tensors the official PoolFormer weights expect.

`preprocess` reproduces transformers' PoolFormerImageProcessorPil (with RGB conversion on): resize
the short edge to int(224 / crop_pct) with PIL bicubic, center-crop 224, scale to 0..1, normalise
with the ImageNet mean/std. `load_image` decodes a JPEG, PNG, WebP, GIF, BMP or TIFF file into the
upright 8-bit RGB picture a person would see, and refuses broken or oversized files with a one-line
ImageError. Both cost little whatever the file: decoding is bounded by MAX_DECODED_PIXELS, and a long
thin image has only its centre crop resampled (`resized_crop`), byte for byte what PIL gives.
"""

from __future__ import annotations

import io
import math
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import ExifTags, Image, ImageOps

INPUT_SIZE = 224
IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
# Large photos are shrunk while decoding, but never below this short edge: smaller images keep
# exact parity with transformers, and the picture stays sharp enough to display.
WORKING_SHORT_EDGE = 1024
ALPHA_MODES = ("RGBA", "LA", "PA")
WHITE = (255, 255, 255, 255)
# What the app and CLI read; Pillow opens forty more (some through outside programs, e.g. EPS via Ghostscript).
FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
# Pixels decoded at most: 16 MP (a 5K screen is 15 MP) keeps any file within ~1 s and ~300 MB to decode and
# convert (benchmarks/preprocess_bounds.py). libwebp hands Pillow the picture through two extra copies, so
# WebP gets less. JPEGs are scaled while decoding, so any JPEG up to Pillow's own limit (89 MP) is read.
MAX_DECODED_PIXELS = 16_000_000
MAX_DECODED_PIXELS_BY_FORMAT = {"WEBP": 12_000_000}
# A resized photo larger than this (a 1:65 strip at 248 px) is never made whole: only its centre crop is.
WHOLE_RESIZE_MAX_PIXELS = 4_000_000
BAND_PIXELS = 1_000_000  # pictures are converted to RGB this many pixels at a time
PRECISION_BITS = 22  # PIL's fixed-point resampling: 32 bits less 8 for the pixel and 2 for overshoot

# load_image refuses images over Image.MAX_IMAGE_PIXELS itself, so Pillow's warning about them
# (issued while opening, before our check) would only be noise next to our one-line error.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


class ImageError(ValueError):
    """An image that cannot be used; its message is one line saying what is wrong and what to do."""


ImageSource = str | Path | bytes | Image.Image


def load_image(source: ImageSource) -> Image.Image:
    """Decode a path, encoded bytes or a PIL image into upright 8-bit RGB (first frame if animated).

    Photos with a short edge of 2 * WORKING_SHORT_EDGE or more come back reduced by an integer
    factor (cheap JPEG DCT scaling while decoding); everything smaller is returned at full size.
    """
    name = _describe(source)
    try:
        image = _decode_first_frame(source, name)
        image = _upright(image)  # (two statements, so the decoded picture is freed before the RGB one is made)
        image = to_rgb(image)
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(f"{name}: no such file; check the path") from None
    except IsADirectoryError:
        raise ImageError(f"{name}: is a folder; give the path of an image file") from None
    except Image.DecompressionBombError as error:
        reason = _one_line(error).rstrip(".")
        raise ImageError(f"{name}: too large ({reason}); downscale it first") from None
    except Image.UnidentifiedImageError:
        raise ImageError(
            f"{name}: not an image format this app reads; use a JPEG, PNG, WebP, GIF, BMP or TIFF file"
        ) from None
    except Exception as error:  # Pillow's decoders raise many exception types for malformed files.
        raise ImageError(f"{name}: damaged or unreadable image ({_one_line(error)}); re-export or re-download it") from None
    return _shrink_large(image)


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB the way transformers converts (transparency composited onto white), plus 16-bit/float scaling.

    A big picture is converted a band of pixels at a time (every step is per pixel, so the result is the
    same), which keeps the cost to the RGB copy: compositing it whole took four picture-sized copies.
    """
    if image.mode == "RGB":
        return image
    levels = _levels(image) if _is_high_bit_depth(image.mode) else None
    if image.width * image.height <= BAND_PIXELS:
        return _band_to_rgb(image, levels)
    rgb = Image.new("RGB", image.size)
    for box in _bands(image.size):
        rgb.paste(_band_to_rgb(image.crop(box), levels), box[:2])
    return rgb


def _band_to_rgb(image: Image.Image, levels: tuple[float, float] | None) -> Image.Image:
    if levels is not None:
        image = _scale_to_8bit(image, *levels)
    if image.mode in ALPHA_MODES or image.info.get("transparency") is not None:
        background = Image.new("RGBA", image.size, WHITE)
        return Image.alpha_composite(background, image.convert("RGBA")).convert("RGB")
    return image.convert("RGB")


def _bands(size: tuple[int, int]) -> list[tuple[int, int, int, int]]:
    """Crop boxes of at most about BAND_PIXELS pixels that tile the picture, cut across its long side."""
    width, height = size
    if height >= width:
        step = max(1, BAND_PIXELS // width)
        return [(0, top, width, min(top + step, height)) for top in range(0, height, step)]
    step = max(1, BAND_PIXELS // height)
    return [(left, 0, min(left + step, width), height) for left in range(0, width, step)]


def preprocess(image: Image.Image, crop_pct: float) -> torch.Tensor:
    """The (1, 3, 224, 224) model input, identical to PoolFormerImageProcessorPil for this crop_pct."""
    if not 0 < crop_pct <= 1:
        raise ValueError(f"crop_pct must be in (0, 1], got {crop_pct}")
    cropped = resized_crop(to_rgb(image), int(INPUT_SIZE / crop_pct), INPUT_SIZE)
    pixels = torch.from_numpy(np.array(cropped)).permute(2, 0, 1).unsqueeze(0).float()
    return ((pixels / 255.0 - IMAGENET_MEAN) / IMAGENET_STD).contiguous()


def resized_crop(image: Image.Image, short_edge: int, crop: int) -> Image.Image:
    """The centre crop x crop of an RGB `image` resized (PIL bicubic) to `short_edge`: PIL's resize, then crop.

    A long thin image (20000 x 2 resizes to 2,480,000 x 248) is not resized whole: only the pixels the crop
    keeps are resampled, with PIL's own arithmetic, so the bytes are the same (tests/test_preprocess_bounds.py).
    """
    size = resized_size(image.size, short_edge)
    box = center_crop_box(size, crop)
    if size[0] * size[1] <= WHOLE_RESIZE_MAX_PIXELS:
        return image.resize(size, Image.Resampling.BICUBIC).crop(box)
    left, top, right, bottom = box
    columns = BicubicTaps(image.width, size[0], left, right - left)
    rows = BicubicTaps(image.height, size[1], top, bottom - top)
    source = image.crop((columns.first, rows.first, columns.end, rows.end))  # only what the crop reads
    pixels = np.asarray(source, dtype=np.int64)
    if _pil_resizes_rows_first(image.size, size):
        pixels = columns.resample(rows.resample(pixels, axis=0), axis=1)
    else:
        pixels = rows.resample(columns.resample(pixels, axis=1), axis=0)
    return Image.fromarray(pixels.astype(np.uint8), "RGB")


class BicubicTaps:
    """PIL's bicubic resampling of one axis (in_size to out_size), for outputs start .. start + count only.

    The weights are computed in the order of operations of Pillow's precompute_coeffs and rounded to its
    fixed point as normalize_coeffs_8bpc does, and applied in integers, so every output byte equals the
    one PIL's whole resize computes. Indices are of the source; `first`/`end` bound the pixels read.
    """

    SUPPORT = 2.0  # the bicubic kernel's radius, in source pixels when enlarging

    def __init__(self, in_size: int, out_size: int, start: int, count: int) -> None:
        scale = float(np.float32(in_size)) / out_size  # Pillow passes the source box as C floats
        filter_scale = max(scale, 1.0)  # shrinking widens the kernel to cover every source pixel
        support = self.SUPPORT * filter_scale
        width = math.ceil(support) * 2 + 1
        centres = (np.arange(start, start + count) + 0.5) * scale
        lows = np.maximum((centres - support + 0.5).astype(np.int64), 0)  # C's (int) truncates, as astype
        highs = np.minimum((centres + support + 0.5).astype(np.int64), in_size)
        taps = np.arange(width)
        used = taps < (highs - lows)[:, None]
        distances = ((lows[:, None] + taps).astype(np.float64) - centres[:, None] + 0.5) * (1.0 / filter_scale)
        weights = np.where(used, _bicubic(distances), 0.0)
        total = np.zeros(count)
        for tap in taps:  # summed left to right as PIL does (np.sum would pair them up and round differently)
            total = total + weights[:, tap]
        weights = weights / np.where(total == 0.0, 1.0, total)[:, None]  # PIL leaves all-zero weights as they are
        scaled = weights * float(1 << PRECISION_BITS)
        self.fixed = np.where(weights < 0, -0.5 + scaled, 0.5 + scaled).astype(np.int64)  # truncated, as in C
        self.lows, self.width = lows, width
        self.first, self.end = int(lows.min()), int(highs.max())

    def resample(self, pixels: np.ndarray, axis: int) -> np.ndarray:
        """Resample `pixels` (whose `axis` starts at source index self.first) along that axis, as 8-bit values."""
        last = pixels.shape[axis] - 1
        total = np.full(1, 1 << (PRECISION_BITS - 1), dtype=np.int64)
        for tap in range(self.width):
            index = np.minimum(self.lows - self.first + tap, last)  # unused taps weigh 0; keep them in bounds
            shape = [1] * pixels.ndim
            shape[axis] = len(index)
            total = total + np.take(pixels, index, axis=axis) * self.fixed[:, tap].reshape(shape)
        return np.clip(total >> PRECISION_BITS, 0, 255)


def _bicubic(x: np.ndarray) -> np.ndarray:
    """PIL's bicubic kernel (a = -0.5), each step in its order of operations."""
    x = np.abs(x)
    near = (1.5 * x - 2.5) * x * x + 1
    far = (((x - 5) * x + 8) * x - 4) * -0.5
    return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))


def _pil_resizes_rows_first(size: tuple[int, int], new_size: tuple[int, int]) -> bool:
    """Pillow (Image.resize) shrinks a very tall image's height before its width; otherwise width goes first."""
    return size[1] > size[0] * 100 and new_size[1] < size[1]


def resized_size(size: tuple[int, int], short_edge: int) -> tuple[int, int]:
    """(width, height) with the short edge set and the long edge truncated, as transformers rounds it."""
    width, height = size
    short, long = min(width, height), max(width, height)
    new_long = int(short_edge * long / short)
    return (short_edge, new_long) if width <= height else (new_long, short_edge)


def center_crop_box(size: tuple[int, int], crop: int) -> tuple[int, int, int, int]:
    """PIL crop box of a crop x crop square; odd margins put the extra pixel right and bottom."""
    width, height = size
    left, top = (width - crop) // 2, (height - crop) // 2
    return left, top, left + crop, top + crop


def _decode_first_frame(source: ImageSource, name: str) -> Image.Image:
    """Open, check the declared size before any pixels are decoded, then decode frame 0."""
    if isinstance(source, Image.Image):
        _refuse_huge(source, name)
        if getattr(source, "is_animated", False):
            source.seek(0)
        source.load()
        return source
    with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source, formats=FORMATS) as image:
        _refuse_huge(image, name)
        if image.format in ("JPEG", "MPO"):  # MPO: a phone's JPEG with extra pictures after the first
            factor = _jpeg_scale(image.size)
            if factor > 1:
                image.draft(image.mode, (max(1, image.width // factor), max(1, image.height // factor)))
        _refuse_costly(image, name)
        image.load()
    return image


def _refuse_huge(image: Image.Image, name: str) -> None:
    """Pillow's decompression-bomb limit, applied from the first pixel over it (Pillow only warns there)."""
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and image.width * image.height > limit:
        raise ImageError(
            f"{name}: {image.width}x{image.height} pixels is over the {limit / 1e6:.0f}-megapixel limit "
            "(a possible decompression bomb); downscale it first"
        )


def _refuse_costly(image: Image.Image, name: str) -> None:
    """More pixels than MAX_DECODED_PIXELS would cost more time and memory to decode than a request is worth."""
    pixels, limit = image.width * image.height, MAX_DECODED_PIXELS_BY_FORMAT.get(image.format, MAX_DECODED_PIXELS)
    if pixels > limit:
        raise ImageError(
            f"{name}: {image.width}x{image.height} pixels ({pixels / 1e6:.0f} MP) is over the "
            f"{limit / 1e6:.0f}-megapixel limit for {image.format} files; downscale it, or save it as a JPEG"
        )


def _jpeg_scale(size: tuple[int, int]) -> int:
    """The JPEG decoder's scale-down (1, 2, 4 or 8): toward WORKING_SHORT_EDGE, and within MAX_DECODED_PIXELS."""
    wanted = _shrink_factor(size)
    for factor in (1, 2, 4, 8):
        decoded = math.ceil(size[0] / factor) * math.ceil(size[1] / factor)
        if factor * 2 > wanted and decoded <= MAX_DECODED_PIXELS:
            return factor
    return 8


def _shrink_factor(size: tuple[int, int]) -> int:
    """The integer factor that brings the short edge down toward WORKING_SHORT_EDGE, at least 1."""
    return max(1, min(size) // WORKING_SHORT_EDGE)


def _shrink_large(image: Image.Image) -> Image.Image:
    """Box-reduce what JPEG draft decoding could not (other formats, or a leftover factor)."""
    factor = _shrink_factor(image.size)
    return image.reduce(factor) if factor > 1 else image


def _upright(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation tag, so a phone photo is the right way up; untagged images pass as is."""
    if image.getexif().get(ExifTags.Base.Orientation, 1) == 1:
        return image
    return ImageOps.exif_transpose(image)


def _is_high_bit_depth(mode: str) -> bool:
    return mode in ("I", "F") or mode.startswith("I;16")


def _levels(image: Image.Image) -> tuple[float, float]:
    """The black and white levels of a 16-bit, 32-bit or float picture, read a band at a time."""
    black, peak = 0.0, 0.0  # 0 unless the data goes negative; a blank picture peaks at 0
    for box in _bands(image.size):
        values = _finite(image.crop(box))
        black, peak = min(black, float(values.min(initial=0.0))), max(peak, float(values.max(initial=0.0)))
    return black, _white_level(image.mode, peak)


def _scale_to_8bit(image: Image.Image, black: float, white: float) -> Image.Image:
    """Map 16-bit/32-bit/float pixels onto 0..255 between the levels; Pillow's own conversion clips them to white."""
    if white <= black:
        return Image.new("L", image.size, 0)
    values = _finite(image)
    values -= black
    values *= 255.0 / (white - black)
    np.rint(values, out=values)
    return Image.fromarray(values.astype(np.uint8))


def _finite(image: Image.Image) -> np.ndarray:
    """The pixels as a float32 array of its own, NaN and infinities read as 0."""
    values = np.array(image, dtype=np.float32)
    return np.nan_to_num(values, copy=False, nan=0.0, posinf=0.0, neginf=0.0)


def _white_level(mode: str, peak: float) -> float:
    """Full scale: 65535 for 16-bit; otherwise the smallest usual range (1, 255, 65535) holding the data."""
    if mode.startswith("I;16"):
        return 65535.0
    usual_ranges = (1.0, 255.0, 65535.0) if mode == "F" else (255.0, 65535.0)
    return next((level for level in usual_ranges if peak <= level), peak)


def _describe(source: ImageSource) -> str:
    """How to name the image in an error message."""
    if isinstance(source, Image.Image):
        return f"{source.width}x{source.height} {source.mode} image"
    if isinstance(source, bytes):
        return f"uploaded image ({len(source)} bytes)"
    return str(source)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__
