"""Where it looks: class-activation maps (Grad-CAM or HiResCAM) per stage, and the same maps for the models that stop
mixing tokens."""

from __future__ import annotations

import numpy as np
from PIL import Image

from poolformer.explorer import Explanation, ModelMaps
from poolformer.gradcam import ATTRIBUTION_NAMES
from visualize.maps import PHOTO_SIZE, overlay, titled_column, titled_row
from visualize.text import percent

CAM_COLORMAP = "plasma"  # not the energy maps' inferno: this is evidence for one class, not activation


# How to read each stage's map; the stages see ever larger regions, ever further from pixels.
CAM_READING = {
    1: "Edges and colours. This far from the classifier the gradient is noisy: read it as speckle, not an outline.",
    2: "Textures and small parts; still noisy, but it starts to gather on the object.",
    3: "Object parts: usually the first stage whose bright cells sit on the object.",
    4: "What the classifier reads directly (a mean over these cells); the only stage the authors' script draws.",
}
CAM_TILE = 168  # comparison tiles: a multiple of 56, so every stage's cells stay whole squares


def cam_caption(number: int, cam: np.ndarray, target_name: str) -> str:
    """Stage, map size and cell size, and what its bright cells mean for the explained class."""
    height, width = cam.shape
    cell = PHOTO_SIZE // height
    return (
        f"**Stage {number}** · {height} × {width} cells of {cell} × {cell} px. Bright = the features here raise "
        f"the score of **{target_name}**. {CAM_READING[number]}"
    )


def cam_picture(photo: Image.Image, cam: np.ndarray) -> Image.Image:
    return overlay(photo, cam, CAM_COLORMAP)


def explained_runs(explanation: Explanation) -> list[tuple[str, ModelMaps]]:
    """(row title, maps) for the model as trained, then with identity swapped in, then from scratch."""
    swapped = ", ".join(str(number) for number in explanation.swapped_stages)
    runs = [(f"{explanation.choice.name}, as trained", explanation.trained)]
    if explanation.ablated is not None:
        runs.append((f"identity swapped into stage(s) {swapped}, same weights", explanation.ablated))
    if explanation.scratch is not None and explanation.scratch_choice is not None:
        runs.append((f"{explanation.scratch_choice.name}, trained from scratch", explanation.scratch))
    return runs


def cam_comparison_picture(explanation: Explanation) -> Image.Image | None:
    """One row of four stage maps per model; None when there is nothing to compare with."""
    runs = explained_runs(explanation)
    if len(runs) == 1:
        return None
    photo = explanation.photo.resize((CAM_TILE, CAM_TILE), Image.Resampling.BICUBIC)
    target = explanation.target_name
    rows = []
    for title, run in runs:
        panels = [(f"stage {number}", overlay(photo, cam, CAM_COLORMAP)) for number, cam in enumerate(run.maps, 1)]
        rows.append((f"{title} · P({target}) = {percent(run.target_probability)}", titled_row(panels)))
    return titled_column(rows)


def cam_comparison_summary(explanation: Explanation) -> str:
    """Each model's probability for the class, and how alike its maps are to the as-trained ones."""
    runs = explained_runs(explanation)
    if len(runs) == 1:
        mixer = explanation.choice.token_mixer
        how = "already mixes tokens by identity" if mixer == "identity" else f"is the zoo's {mixer} model, with no twin"
        return f"{explanation.choice.name} {how}: pick a pooling model to see its maps change without pooling."
    lines = [
        (
            f"{ATTRIBUTION_NAMES[explanation.method]} for **{explanation.target_name}** in every model, each map on "
            "its own colour scale. "
            f"**P** is the model's probability for **{explanation.target_name}**; each stage column is the cosine "
            "similarity between the model's map and the as-trained model's map (1 = the same places in the same "
            "proportions, 0 = no overlap)."
        ),
        "",
        "| model | P | stage 1 | stage 2 | stage 3 | stage 4 |",
        "|---|---|---|---|---|---|",
    ]
    for title, run in runs:
        similarity = " | ".join(f"{value:.2f}" for value in run.similarity)
        lines.append(f"| {title} | {percent(run.target_probability)} | {similarity} |")
    return "\n".join(lines)
