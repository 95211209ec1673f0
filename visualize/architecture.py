"""The architecture diagram as SVG: stem, four stages and head on top, one MetaFormer block below.

Plain SVG text (no external service, no JavaScript), so the page draws it at any width and the API
returns it as a string. Every box carries `data-*` attributes with its tensor shape for scripts and tests.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from html import escape
from itertools import pairwise

from PIL import Image

from poolformer.explorer import Architecture, StageTrace, pool_size
from visualize.maps import overlay

WIDTH, HEIGHT = 1000, 532
FONT = "ui-sans-serif, system-ui, sans-serif"
MONO = "ui-monospace, Menlo, monospace"
INK, MUTED, LINE = "#1f2430", "#5b6170", "#8a90a0"
# Every pooling size shares the default colour; the zoo's other mixers each get their own.
MIXER_COLOURS = {"identity": "#e07b39", "depthwise": "#3f7f4e", "random": "#7a5ba6", "attention": "#b0413e"}
POOLING_COLOUR = "#3b6fb6"
BOX_FILL, STAGE_FILL, ADD_FILL = "#f4f6fb", "#eef2fb", "#ffffff"
THUMB = 84  # px, photo and per-stage energy maps


def shape_text(shape: Sequence[int]) -> str:
    """A tensor shape the way PyTorch prints it, e.g. [1, 64, 56, 56]."""
    return "[" + ", ".join(str(size) for size in shape) + "]"


# The label on a stage's mixer for the mixers without a pool size, and what each does, for the block's note.
MIXER_LABELS = {"identity": "identity", "depthwise": "depthwise 3×3", "random": "random W·x", "attention": "attention"}
MIXER_NOTES = {
    "identity": "identity, so tokens never exchange information inside a block — only the stem and downsampling convs mix neighbours.",
    "depthwise": "a learned 3×3 filter per channel: the trainable cousin of pooling, each token a weighted mix of its neighbourhood.",
    "random": "a fixed random matrix (never trained) that makes every token a blend of all the stage's tokens.",
    "attention": "self-attention: every token weighs all the stage's tokens by how well they match it (heads of 32 channels).",
}


def mixer_text(mixer: str) -> str:
    """'pooling-5' → 'pool 5×5 − x'; the trained 'pooling' is 3×3."""
    if mixer in MIXER_LABELS:
        return MIXER_LABELS[mixer]
    size = pool_size(mixer)
    return f"pool {size}×{size} − x"


def mixer_colour(mixer: str) -> str:
    return MIXER_COLOURS.get(mixer, POOLING_COLOUR)


def data_uri(picture: Image.Image, size: int = 2 * THUMB) -> str:
    """A small JPEG inlined into the SVG (drawn at twice the display size for sharp screens)."""
    buffer = io.BytesIO()
    picture.convert("RGB").resize((size, size), Image.Resampling.BILINEAR).save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def text(x: float, y: float, content: str, *, size: int = 12, weight: str = "normal", colour: str = INK,
         anchor: str = "middle", family: str = FONT) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-family="{family}" font-size="{size}" font-weight="{weight}" '
        f'fill="{colour}" text-anchor="{anchor}">{escape(content)}</text>'
    )


def box(x: float, y: float, width: float, height: float, *, fill: str = BOX_FILL, stroke: str = LINE,
        radius: int = 8, stroke_width: float = 1.2) -> str:
    return (
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{height:.1f}" rx="{radius}" '
        f'fill="{fill}" stroke="{stroke}" stroke-width="{stroke_width}"/>'
    )


def arrow(x1: float, y1: float, x2: float, y2: float, label: str = "") -> str:
    line = f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{LINE}" stroke-width="1.6" marker-end="url(#arrowhead)"/>'
    return line + (text((x1 + x2) / 2, y1 - 6, label, size=10, colour=MUTED) if label else "")


def token_grid(x: float, y: float, size: float, cells: int) -> str:
    """The stage's grid of tokens, when there is no photo to colour it: one square per position."""
    parts = [box(x, y, size, size, fill="#ffffff", radius=2)]
    step = size / cells
    for index in range(1, cells):
        offset = index * step
        parts.append(f'<line x1="{x + offset:.1f}" y1="{y:.1f}" x2="{x + offset:.1f}" y2="{y + size:.1f}" stroke="#d5d9e3" stroke-width="0.5"/>')
        parts.append(f'<line x1="{x:.1f}" y1="{y + offset:.1f}" x2="{x + size:.1f}" y2="{y + offset:.1f}" stroke="#d5d9e3" stroke-width="0.5"/>')
    return "".join(parts)


def picture(x: float, y: float, size: float, source: Image.Image) -> str:
    return f'<image x="{x:.1f}" y="{y:.1f}" width="{size}" height="{size}" href="{data_uri(source)}" preserveAspectRatio="none"/>'


def stage_box(x: float, y: float, width: float, height: float, stage: StageTrace, architecture: Architecture) -> str:
    _, _, rows, columns = stage.output_shape
    centre = x + width / 2
    colour = mixer_colour(stage.token_mixer)
    thumb_x, thumb_y = centre - THUMB / 2, y + 78
    if stage.energy is not None and architecture.photo is not None:
        tokens = picture(thumb_x, thumb_y, THUMB, overlay(architecture.photo, stage.energy))
    else:
        tokens = token_grid(thumb_x, thumb_y, THUMB, rows)
    return (
        f'<g class="stage" data-stage="{stage.number}" data-depth="{stage.depth}" data-width="{stage.width}" '
        f'data-mixer="{stage.token_mixer}" data-shape="{",".join(map(str, stage.output_shape))}">'
        + box(x, y, width, height, fill=STAGE_FILL, stroke=colour, stroke_width=1.8)
        + text(centre, y + 20, f"Stage {stage.number}", size=14, weight="bold")
        + text(centre, y + 38, f"{stage.depth} blocks · width {stage.width}", size=11, colour=MUTED)
        + box(x + 10, y + 47, width - 20, 20, fill=colour, stroke=colour, radius=10)
        + text(centre, y + 61, mixer_text(stage.token_mixer), size=11, weight="bold", colour="#ffffff")
        + tokens
        + text(centre, y + 180, f"{rows} × {columns} tokens", size=11, colour=MUTED)
        + text(centre, y + 198, shape_text(stage.output_shape), size=11, family=MONO)
        + "</g>"
    )


def macro_row(architecture: Architecture, top: float) -> str:
    """Input → stem → four stages (downsampling between them) → head, one box each."""
    height, gap = 210, 22
    widths = [108, 104] + [128] * 4 + [118]
    lefts, left = [], 8.0
    for width in widths:
        lefts.append(left)
        left += width + gap
    parts = []

    x, width = lefts[0], widths[0]
    centre = x + width / 2
    photo = (
        picture(centre - THUMB / 2, top + 40, THUMB, architecture.photo)
        if architecture.photo is not None
        else box(centre - THUMB / 2, top + 40, THUMB, THUMB, fill="#ffffff") + text(centre, top + 86, "your photo", size=11, colour=MUTED)
    )
    parts.append(
        f'<g class="input" data-shape="{",".join(map(str, architecture.input_shape))}">'
        + box(x, top, width, height)
        + text(centre, top + 22, "Input crop", size=14, weight="bold")
        + photo
        + text(centre, top + 150, "RGB, normalised", size=11, colour=MUTED)
        + text(centre, top + 198, shape_text(architecture.input_shape), size=11, family=MONO)
        + "</g>"
    )

    x, width = lefts[1], widths[1]
    centre = x + width / 2
    first = architecture.stages[0]
    parts.append(
        '<g class="stem">'
        + box(x, top, width, height)
        + text(centre, top + 22, "Stem", size=14, weight="bold")
        + text(centre, top + 60, "conv 7×7", size=12)
        + text(centre, top + 78, "stride 4", size=12)
        + text(centre, top + 110, "cuts the crop into", size=11, colour=MUTED)
        + text(centre, top + 126, f"{first.output_shape[2]} × {first.output_shape[3]} patches", size=11, colour=MUTED)
        + text(centre, top + 142, f"of {first.width} channels", size=11, colour=MUTED)
        + "</g>"
    )

    for index, stage in enumerate(architecture.stages):
        parts.append(stage_box(lefts[2 + index], top, widths[2 + index], height, stage, architecture))

    x, width = lefts[-1], widths[-1]
    centre = x + width / 2
    head = [
        f'<g class="head" data-shape="{",".join(map(str, architecture.logits_shape))}">',
        box(x, top, width, height),
        text(centre, top + 22, "Head", size=14, weight="bold"),
        text(centre, top + 52, "GroupNorm", size=12),
        text(centre, top + 70, "mean over tokens", size=12),
        text(centre, top + 88, "Linear", size=12),
        text(centre, top + 120, f"{architecture.logits_shape[-1]} class scores", size=11, colour=MUTED),
    ]
    if architecture.top1 is not None:
        name, probability = architecture.top1
        head += [text(centre, top + 150, "top-1:", size=11, colour=MUTED), text(centre, top + 166, f"{name[:18]} {probability * 100:.0f} %", size=12, weight="bold")]
    head += [text(centre, top + 198, shape_text(architecture.logits_shape), size=11, family=MONO), "</g>"]
    parts.append("".join(head))

    middle = top + height / 2
    for index in range(len(widths) - 1):
        start, end = lefts[index] + widths[index] + 2, lefts[index + 1] - 2
        label = "/2" if 2 <= index <= 4 else ""
        parts.append(arrow(start, middle, end, middle, label))
    return "".join(parts)


def block_row(architecture: Architecture, top: float) -> str:
    """One MetaFormer block drawn out: norm → token mixer → add, then norm → channel MLP → add."""
    stage = architecture.stages[0]
    _, channels, rows, columns = stage.output_shape
    hidden = (stage.output_shape[0], 4 * channels, rows, columns)
    colour = mixer_colour(stage.token_mixer)
    parts = [
        text(8, top, f"Inside every block — stage 1 shown, where x is {shape_text(stage.output_shape)} and keeps that shape:",
             size=13, weight="bold", anchor="start")
    ]
    y, height = top + 58, 64
    middle = y + height / 2
    # (label, sublabel, width, fill, text colour); None marks an add node
    steps: list[tuple[str, str, float, str, str] | None] = [
        ("x", shape_text(stage.output_shape), 120, ADD_FILL, INK),
        ("GroupNorm", "over C, H, W", 96, BOX_FILL, INK),
        ("Token mixer", mixer_text(stage.token_mixer), 118, colour, "#ffffff"),
        None,
        ("GroupNorm", "over C, H, W", 96, BOX_FILL, INK),
        ("Channel MLP", f"1×1 conv {channels}→{4 * channels}, GELU, →{channels}", 200, BOX_FILL, INK),
        None,
        ("out", shape_text(stage.output_shape), 120, ADD_FILL, INK),
    ]
    gap, left, centres = 22, 8.0, []
    for step in steps:
        width = 28 if step is None else step[2]
        centres.append((left, width))
        left += width + gap
    adds = []
    for (x, width), step in zip(centres, steps):
        if step is None:
            cx = x + width / 2
            adds.append(cx)
            parts.append(f'<circle class="add" cx="{cx:.1f}" cy="{middle:.1f}" r="13" fill="{ADD_FILL}" stroke="{INK}" stroke-width="1.4"/>')
            parts.append(text(cx, middle + 5, "+", size=16, weight="bold"))
            continue
        label, sublabel, _, fill, ink = step
        parts.append(box(x, y, width, height, fill=fill, stroke=fill if fill != ADD_FILL else LINE))
        parts.append(text(x + width / 2, middle - 4, label, size=13, weight="bold", colour=ink))
        parts.append(text(x + width / 2, middle + 14, sublabel, size=10.5, colour=ink, family=MONO if label in ("x", "out") else FONT))
    for (x, width), (next_x, _) in pairwise(centres):
        parts.append(arrow(x + width + 1, middle, next_x - 1, middle))
    # The residual paths: the block's input skips the mixer branch, the sum skips the MLP branch.
    first_skip_from = centres[0][0] + centres[0][1] - 20
    second_skip_from = adds[0]
    for start, end, label in ((first_skip_from, adds[0], "residual: + x"), (second_skip_from, adds[1], "residual")):
        arc_y = y - 22
        parts.append(
            f'<path d="M {start:.1f} {y:.1f} L {start:.1f} {arc_y:.1f} L {end:.1f} {arc_y:.1f} L {end:.1f} {middle - 14:.1f}" '
            f'fill="none" stroke="{LINE}" stroke-width="1.4" stroke-dasharray="5 3" marker-end="url(#arrowhead)"/>'
        )
        parts.append(text((start + end) / 2, arc_y - 5, label, size=10, colour=MUTED))
    notes = [
        f"Token mixer: {mixer_note(stage.token_mixer)}",
        f"Channel MLP: each token alone, widened to {4 * channels} channels ({shape_text(hidden)}) and back — no mixing between tokens.",
        "Each branch is scaled per channel by a learned layer scale before it is added back.",
        "Between stages (/2 above), a 3×3 conv with stride 2 halves the grid and widens the channels.",
    ]
    for index, note in enumerate(notes):
        parts.append(text(8, y + height + 30 + 18 * index, note, size=11.5, colour=MUTED, anchor="start"))
    return "".join(parts)


def mixer_note(mixer: str) -> str:
    if mixer in MIXER_NOTES:
        return MIXER_NOTES[mixer]
    size = pool_size(mixer)
    return f"each token becomes the mean of its {size}×{size} neighbourhood minus itself (the add puts x back), with no weights at all."


def architecture_svg(architecture: Architecture) -> str:
    """The whole diagram as one inline <svg> element."""
    variant = architecture.choice.variant
    depths = "-".join(map(str, variant.depths))
    title = f"{architecture.choice.name}: {sum(variant.depths)} MetaFormer blocks in four stages ({depths})"
    return (
        f'<svg id="architecture-svg" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" '
        f'role="img" aria-label="{escape(title)}" data-measured="{str(architecture.measured).lower()}" '
        f'style="max-width:{WIDTH}px;height:auto;background:#ffffff">'
        f'<defs><marker id="arrowhead" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        f'<path d="M 0 0 L 10 5 L 0 10 z" fill="{LINE}"/></marker></defs>'
        + text(8, 20, title, size=13, colour=INK, anchor="start")
        + macro_row(architecture, 36)
        + block_row(architecture, 282)
        + text(8, HEIGHT - 10, architecture.note, size=11.5, colour=INK, anchor="start")
        + "</svg>"
    )
