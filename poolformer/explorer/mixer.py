"""What pooling does: the mixer as a filter on the photo, and one token's 3 × 3 neighbourhood in the model."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from poolformer.explorer.cache import loaded_model, status_line
from poolformer.explorer.catalogue import ModelChoice
from poolformer.explorer.common import (
    ALL_STAGES,
    ExplorerError,
    LoadReporter,
    PhotoSource,
    energy,
    input_photo,
    model_input,
    photo_from,
    shown,
)
from poolformer.mixer_filter import POOL_SIZE, kernel_at, pool_minus_identity
from poolformer.model import PoolFormer, token_grids
from poolformer.preprocess import INPUT_SIZE


@dataclass(frozen=True)
class MixerFilter:
    """The photo through pool(x) − x, beside what the model's own first pooling mixer does."""

    choice: ModelChoice
    status: str
    photo: Image.Image  # the 224 × 224 crop the model saw
    filtered: np.ndarray  # (224, 224, 3): pool(x) − x per colour channel, on pixel values in [0, 1]
    token_mixer: str  # of stage 1: "pooling", or "identity" for an IdentityFormer
    stage1_change: np.ndarray  # (56, 56): ‖pool(x) − x‖ of stage 1's first block, as in the Predict view


@torch.inference_mode()
def filter_photo(source: PhotoSource | None, value: str, report: LoadReporter | None = None) -> MixerFilter:
    """Apply the mixer's filter to the crop the model saw, and run the model for its stage-1 mixer map."""
    photo = photo_from(source)
    choice, model = loaded_model(value, report)
    pixels = model_input(photo, model.variant)
    photo = input_photo(pixels)
    rgb = np.asarray(photo, dtype=np.float64).transpose(2, 0, 1) / 255.0
    first_block = model.stages[0].blocks[0]  # only the stem runs before it: no need for a whole pass
    stage1_change = first_block.token_mixer(first_block.norm1(first_block_input(model, pixels, 1)))
    return MixerFilter(
        choice=choice,
        status=status_line(model),
        photo=photo,
        filtered=pool_minus_identity(rgb).transpose(1, 2, 0),
        token_mixer=model.token_mixers[0],
        stage1_change=energy(stage1_change),
    )


@dataclass(frozen=True)
class Token:
    """One token's neighbourhood as the first block of its stage sees it (after norm1), and what pooling passes on."""

    choice: ModelChoice
    stage: int
    row: int
    column: int
    grid: tuple[int, int]  # (H, W) of the stage
    token_mixer: str
    energies: np.ndarray  # (3, 3): ‖norm1(x)‖ of each neighbour, NaN off the map
    weights: np.ndarray  # (3, 3): the filter kernel at this token (1/n, centre 1/n − 1, 0 off the map)
    centre_norm: float  # ‖norm1(x)‖ of the token itself
    mean_norm: float  # ‖mean of the neighbourhood‖: pool(x)
    change_norm: float  # ‖mean − centre‖: pool(x) − x, what the pooling mixer passes on
    cosine: float  # cosine similarity of the token and its neighbourhood mean
    update_norm: float  # ‖layer_scale1 · mixer(norm1(x))‖ at the token: what the block's first branch adds to it
    residual_norm: float  # ‖x‖ of the token before the block, for scale


def first_block_input(model: PoolFormer, pixels: torch.Tensor, stage: int) -> torch.Tensor:
    """The (1, C, H, W) tensor entering the first block of `stage` (numbered 1-4): after stem and downsampling."""
    x = model.stem(pixels)
    for number, block_stage in zip(ALL_STAGES, model.stages):
        x = block_stage.downsample(x)
        if number == stage:
            return x
        x = block_stage.blocks(x)
    raise ExplorerError(f"stages are numbered 1 to {len(ALL_STAGES)}; got {stage}")


@torch.inference_mode()
def inspect_token(
    source: PhotoSource | None, value: str, stage: int, row: int, column: int, report: LoadReporter | None = None
) -> Token:
    """A token's 3 × 3 neighbourhood in the first block of its stage: energies, their mean, and mean − centre."""
    try:
        stage, row, column = int(stage), int(row), int(column)
    except (TypeError, ValueError, OverflowError):
        raise ExplorerError(
            f"stage, row and column must be whole numbers; got {shown(stage)}, {shown(row)}, {shown(column)}"
        ) from None
    if stage not in ALL_STAGES:
        raise ExplorerError(f"stages are numbered 1 to {len(ALL_STAGES)}; got {shown(stage)}")
    height, width = token_grids(INPUT_SIZE)[stage - 1]  # known before the model runs, so a bad token costs nothing
    if not (0 <= row < height and 0 <= column < width):
        raise ExplorerError(
            f"stage {stage} has {height} × {width} tokens; row and column run from 0 to {height - 1}, "
            f"got ({shown(row)}, {shown(column)})"
        )
    photo = photo_from(source)
    choice, model = loaded_model(value, report)
    pixels = model_input(photo, model.variant)
    x = first_block_input(model, pixels, stage)
    block = model.stages[stage - 1].blocks[0]
    normed = block.norm1(x)[0]  # (C, H, W)

    radius = POOL_SIZE // 2
    energies = np.full((POOL_SIZE, POOL_SIZE), np.nan)
    neighbours = []
    for dr in range(-radius, radius + 1):
        for dc in range(-radius, radius + 1):
            if 0 <= row + dr < height and 0 <= column + dc < width:
                vector = normed[:, row + dr, column + dc]
                energies[dr + radius, dc + radius] = float(vector.norm())
                neighbours.append(vector)
    centre = normed[:, row, column]
    mean = torch.stack(neighbours).mean(dim=0)
    change = mean - centre
    update = block.layer_scale1(block.token_mixer(normed[None]))[0, :, row, column]  # the model's own mixer
    return Token(
        choice=choice,
        stage=stage,
        row=row,
        column=column,
        grid=(height, width),
        token_mixer=model.token_mixers[stage - 1],
        energies=energies,
        weights=kernel_at(row, column, height, width),
        centre_norm=float(centre.norm()),
        mean_norm=float(mean.norm()),
        change_norm=float(change.norm()),
        cosine=float(torch.nn.functional.cosine_similarity(centre, mean, dim=0)),
        update_norm=float(update.norm()),
        residual_norm=float(x[0, :, row, column].norm()),
    )
