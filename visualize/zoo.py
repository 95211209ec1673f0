"""The mixer zoo: every bundled mixer model's maps side by side, its table against the paper's Table 5, and the
small CKA heatmap of how alike each model's stage features are to pooling's, with a reading of it."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from poolformer.explorer import CAM_STAGES, FeatureSimilarity, Zoo, paper
from visualize.gradcam import CAM_COLORMAP, CAM_TILE
from visualize.maps import (
    BACKGROUND,
    TITLE_COLOUR,
    bar_list,
    colormap_table,
    font,
    overlay,
    titled_column,
    titled_row,
)
from visualize.metaformer import measured_table, short_name
from visualize.stages import ENERGY_COLORMAP
from visualize.text import layout_text, markdown_table, percent

CKA_COLORMAP = "viridis"  # on a fixed 0-1 scale, so a colour means the same value in every cell
CKA_CELL, CKA_ROW, CKA_GAP = 64, 30, 8
ALIKE_AT_STAGE_1 = 0.7  # below it, stage 1 is not called alike (identity, depthwise, random: 0.83-0.89)


def zoo_picture(zoo: Zoo) -> Image.Image:
    """One row per model: Grad-CAM at stages 3 and 4 for the explained class, stage-4 energy, and its top-5."""
    photo = zoo.photo.resize((CAM_TILE, CAM_TILE), Image.Resampling.BICUBIC)
    rows = []
    for member in zoo.members:
        panels = [
            (f"Grad-CAM, stage {stage}", overlay(photo, cam, CAM_COLORMAP))
            for stage, cam in zip(CAM_STAGES, member.cams)
        ]
        panels.append(("stage-4 energy", overlay(photo, member.stage4_energy, ENERGY_COLORMAP)))
        panels.append(("top-5 on this photo", bar_list(list(member.top5.items()))))
        heading = (
            f"{member.choice.name} · {layout_text(member.token_mixers)} · "
            f"P({zoo.target_name}) = {percent(member.target_probability)}"
        )
        rows.append((heading, titled_row(panels)))
    return titled_column(rows)


def zoo_table(zoo: Zoo) -> str:
    """The photo's answers, model by model; then what each model measured on val beside the paper's Table 5 row."""
    chosen = "the class you picked" if zoo.target_chosen else "the pooling model's top-1"
    answers = [
        [
            short_name(member.choice.name),
            " · ".join(f"{name} {percent(probability)}" for name, probability in member.top5.items()),
            percent(member.target_probability),
        ]
        for member in zoo.members
    ]
    runs = [member.measured for member in zoo.members if member.measured is not None]
    return "\n\n".join(
        [
            f"Every map is for **{zoo.target_name}** ({chosen}), in every model, each map on its own colour scale.",
            markdown_table(["model", "top-5 on this photo", f"P({zoo.target_name})"], answers),
            measured_table(runs),
            (
                "Ours: S12 trained from scratch on Imagenette (10 classes) with one recipe; the paper's: S12 trained "
                f"from scratch on ImageNet-1k ({paper.METAFORMER_PAPER}; pool-attention is its hybrid "
                f"[Pool, Pool, Attention, Attention], and it trains attention in no other layout). The two benchmarks "
                "differ, so compare the order and the gaps, not the percentages."
            ),
        ]
    )


def similarity_picture(similarity: FeatureSimilarity) -> Image.Image:
    """A small heatmap: one row per model, one column per stage, each cell its CKA with pooling (0 to 1)."""
    label_font, value_font = font(13), font(13, bold=True)
    labels = list(similarity.stages)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label_width = round(max(probe.textlength(label, font=label_font) for label in labels)) + 12
    width = label_width + 4 * CKA_CELL
    height = CKA_ROW + len(labels) * CKA_ROW + CKA_GAP
    picture = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(picture)
    table = colormap_table(CKA_COLORMAP)
    for stage in range(4):
        middle = label_width + (stage + 0.5) * CKA_CELL
        draw.text((middle, CKA_ROW / 2), f"stage {stage + 1}", fill=TITLE_COLOUR, font=label_font, anchor="mm")
    for row, label in enumerate(labels):
        top = CKA_ROW * (row + 1)
        draw.text((label_width - 8, top + CKA_ROW / 2), label, fill=TITLE_COLOUR, font=label_font, anchor="rm")
        for stage, value in enumerate(similarity.stages[label]):
            fill = tuple(int(channel) for channel in table[round(255 * float(np.clip(value, 0.0, 1.0)))])
            left = label_width + stage * CKA_CELL
            draw.rectangle((left, top, left + CKA_CELL - 2, top + CKA_ROW - 2), fill=fill)
            ink = (255, 255, 255) if 0.299 * fill[0] + 0.587 * fill[1] + 0.114 * fill[2] < 140 else (20, 20, 28)
            centre = (left + CKA_CELL / 2 - 1, top + CKA_ROW / 2 - 1)
            draw.text(centre, f"{value:.2f}", fill=ink, font=value_font, anchor="mm")
    return picture


def similarity_reading(similarity: FeatureSimilarity | None) -> str:
    """One paragraph: what CKA measures here, what the numbers show, and how far they can be trusted."""
    if similarity is None:
        return "The bundled checkpoints record no CKA yet: `python -m poolformer train summarize` measures it."
    seeds = {name: values for name, values in similarity.stages.items() if name.startswith("pooling seed")}
    mixers = {name: values for name, values in similarity.stages.items() if name not in seeds}
    text = [
        "**Do they learn the same features?** Linear CKA (Kornblith et al., ICML 2019) compares each model's stage "
        f"output with that of the pooling model ({similarity.reference}) on the same {similarity.images} Imagenette "
        "val photos, every token position a row: 1 means the same features up to a rotation and an overall scale "
        "(channel order does not matter), 0 means nothing in common."
    ]
    for name, values in mixers.items():
        low = int(np.argmin(values))
        sentence = f"**{name}** scores {', '.join(f'{value:.2f}' for value in values)} at stages 1 to 4"
        start = (
            "alike early on, where the stem and first blocks see the same edges and colours"
            if values[0] >= ALIKE_AT_STAGE_1
            else "unlike pooling's already in stage 1, where its own mixer acts from the first block"
        )
        if low == 0:
            sentence += ": least alike at once, in stage 1"
        elif low < 3:
            sentence += f": {start}, least alike at stage {low + 1}"
            if values[3] > values[low]:
                sentence += ", and closer again at stage 4, which both heads read to tell the same classes apart"
        else:
            sentence += f": {start}, and ever less alike deeper down, where the mixer has shaped more blocks"
        text.append(sentence + ".")
    if seeds:
        name, values = next(iter(seeds.items()))
        text.append(
            f"Two pooling runs that differ only in their seed ({name}) score "
            f"{', '.join(f'{value:.2f}' for value in values)}: "
            "a mixer near that line learned features no more different than a reseeded PoolFormer, one well below it "
            "learned something else."
        )
    else:
        text.append(
            "No second pooling seed is bundled to show how far two runs of one model drift apart, so a value below 1 "
            "does not yet say how much of the difference is the mixer's and how much the seed's."
        )
    return " ".join(text)
