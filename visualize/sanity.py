"""The sanity check drawn: each step of the cascading randomisation as a row of stage maps, and how much of the
as-trained map's ordering each one keeps (Spearman's ρ)."""

from __future__ import annotations

from PIL import Image

from poolformer.explorer import RandomisedMaps, SanityCheck
from poolformer.gradcam import ATTRIBUTION_NAMES
from visualize.gradcam import CAM_COLORMAP
from visualize.maps import overlay, titled_column, titled_row
from visualize.text import percent

SANITY_TILE = 112  # a multiple of 56, so every stage's cells stay whole squares; seven rows of four must fit a page
FELL_APART = 0.3  # ρ below this: the map no longer orders the cells as the trained model's map did


def step_title(step: RandomisedMaps) -> str:
    """ "as trained", "head randomised", "randomised down to stage 3", ..., "randomised down to the stem"."""
    if not step.randomised:
        return "as trained"
    if len(step.randomised) == 1:
        return f"{step.randomised[0]} randomised"
    last = step.randomised[-1]
    return f"randomised down to {'the stem' if last == 'stem' else last}"


def signed(value: float) -> str:
    """+0.12 or −0.12, with a true minus sign."""
    return f"{value:+.2f}".replace("-", "−")


def head_reading(rho: float) -> str:
    """What stage 4's ρ says once only the head is random: the trained features' order kept, lost or reversed."""
    if rho >= FELL_APART:
        return "some of the trained map's order survives"
    if rho <= -FELL_APART:
        return "the order is largely reversed (a random head can weigh the same features with the opposite sign)"
    return "little of the order is left already"


def sanity_picture(check: SanityCheck) -> Image.Image:
    """One row of four stage maps per step, the model as trained on top; each panel names its ρ."""
    photo = check.photo.resize((SANITY_TILE, SANITY_TILE), Image.Resampling.BICUBIC)
    rows = []
    for step in check.steps:
        panels = []
        for number, (cam, rho) in enumerate(zip(step.maps, step.rank_correlation), 1):
            title = f"stage {number}" if not step.randomised else f"{number} · ρ {signed(rho)}"
            panels.append((title, overlay(photo, cam, CAM_COLORMAP)))
        heading = f"{step_title(step)} · P = {percent(step.target_probability)}"
        rows.append((heading, titled_row(panels)))
    return titled_column(rows)


def sanity_summary(check: SanityCheck) -> str:
    """The rank correlations as a table, and what the last rows say about this photo's maps."""
    name = ATTRIBUTION_NAMES[check.method]
    lines = [
        f"{name} for **{check.target_name}**, each map on its own colour scale. Each stage column is Spearman's "
        f"rank correlation ρ between the map and the as-trained model's map (1 = the cells in the same order, "
        f"0 = no order in common, −1 = reversed). Random weights are drawn with seed {check.seed}, as PoolFormer is "
        "initialised before training, so the same photo always gets the same check.",
        "",
        "| weights | P | stage 1 | stage 2 | stage 3 | stage 4 |",
        "|---|---|---|---|---|---|",
    ]
    for step in check.steps:
        rhos = " | ".join(signed(rho) for rho in step.rank_correlation)
        lines.append(f"| {step_title(step)} | {percent(step.target_probability)} | {rhos} |")
    last = check.steps[-1].rank_correlation[-1]
    head_only = check.steps[1].rank_correlation[-1]
    verdict = (
        f"it **fell apart** (ρ < {FELL_APART}), as a map of what the model learnt must"
        if last < FELL_APART
        else f"it **still resembles the original** (ρ ≥ {FELL_APART}): on this photo the map shows something of the "
        "picture itself, not only of the learnt weights"
    )
    lines += [
        "",
        f"With the head alone randomised, stage 4's map has ρ = {signed(head_only)}: the features below are still "
        f"the trained ones, only what they are weighed with is random, so {head_reading(head_only)}. "
        f"With every weight random, ρ = {signed(last)}: {verdict}.",
    ]
    return "\n".join(lines)
