"""Reading images and turning them into exactly the tensors the official PoolFormer weights expect.

`preprocess` reproduces transformers' PoolFormerImageProcessorPil (with RGB conversion on): resize
the short edge to int(224 / crop_pct) with PIL bicubic, center-crop 224, scale to 0..1, normalise
with the ImageNet mean/std. `load_image` decodes whatever Pillow opens into the upright 8-bit RGB
picture a person would see, and refuses broken or oversized files with a one-line ImageError.
"""

from __future__ import annotations

import io
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
        image = to_rgb(_upright(image))
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
        raise ImageError(f"{name}: not an image format Pillow knows; use a JPEG, PNG, WebP, GIF, BMP or TIFF file") from None
    except Exception as error:  # Pillow's decoders raise many exception types for malformed files.
        raise ImageError(f"{name}: damaged or unreadable image ({_one_line(error)}); re-export or re-download it") from None
    return _shrink_large(image)


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB the way transformers converts (transparency composited onto white), plus 16-bit/float scaling."""
    if image.mode == "RGB":
        return image
    if _is_high_bit_depth(image.mode):
        image = _scale_to_8bit(image)
    if image.mode in ALPHA_MODES or image.info.get("transparency") is not None:
        background = Image.new("RGBA", image.size, WHITE)
        return Image.alpha_composite(background, image.convert("RGBA")).convert("RGB")
    return image.convert("RGB")


def preprocess(image: Image.Image, crop_pct: float) -> torch.Tensor:
    """The (1, 3, 224, 224) model input, identical to PoolFormerImageProcessorPil for this crop_pct."""
    if not 0 < crop_pct <= 1:
        raise ValueError(f"crop_pct must be in (0, 1], got {crop_pct}")
    image = to_rgb(image)
    resized = image.resize(resized_size(image.size, int(INPUT_SIZE / crop_pct)), Image.Resampling.BICUBIC)
    cropped = resized.crop(center_crop_box(resized.size, INPUT_SIZE))
    pixels = torch.from_numpy(np.array(cropped)).permute(2, 0, 1).unsqueeze(0).float()
    return ((pixels / 255.0 - IMAGENET_MEAN) / IMAGENET_STD).contiguous()


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
    with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
        _refuse_huge(image, name)
        factor = _shrink_factor(image.size)
        if factor > 1 and image.format == "JPEG":
            image.draft(image.mode, (image.width // factor, image.height // factor))
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


def _scale_to_8bit(image: Image.Image) -> Image.Image:
    """Map 16-bit/32-bit/float pixels onto 0..255 by their range; Pillow's own conversion clips them to white."""
    values = np.nan_to_num(np.asarray(image, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    black = float(values.min(initial=0.0))  # 0 unless the data goes negative
    white = _white_level(image.mode, float(values.max(initial=0.0)))
    scaled = (values - black) * (255.0 / (white - black)) if white > black else np.zeros_like(values)
    return Image.fromarray(np.rint(scaled).astype(np.uint8))


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
