"""Deletion and insertion curves drawn: points for the native line plots, and the areas under them in a table."""

from __future__ import annotations

import pandas as pd

from poolformer.explorer import Faithfulness
from visualize.text import percent

CURVE_X, CURVE_Y, CURVE_COLOUR = "cells (%)", "probability (%)", "cell order"
# The map's own order in the theme's indigo, the random baseline in grey, the pooling-off map's order in amber.
ORDER_COLOURS = ("#4f46e5", "#8a8f98", "#d97706")


def curve_colours(result: Faithfulness) -> dict[str, str]:
    """{curve name: colour}, the same colour for the same role whichever attribution method named the curves."""
    return {curve.name: colour for curve, colour in zip(result.curves, ORDER_COLOURS)}


def curve_points(result: Faithfulness, insertion: bool) -> pd.DataFrame:
    """One row per point of every curve, for gr.LinePlot: x the share of cells greyed (or revealed), y P(target)."""
    records = [
        {
            CURVE_X: round(100 * float(fraction), 1),
            CURVE_Y: round(100 * float(probability), 2),
            CURVE_COLOUR: curve.name,
        }
        for curve in result.curves
        for fraction, probability in zip(result.fractions, curve.insertion if insertion else curve.deletion)
    ]
    return pd.DataFrame.from_records(records, columns=[CURVE_X, CURVE_Y, CURVE_COLOUR])


def faithfulness_summary(result: Faithfulness) -> str:
    """Each order's two areas, and whether the map's own order beats the random one on this photo."""
    mapped, random = result.curves[0], result.curves[1]
    cells = result.grid[0] * result.grid[1]
    lines = [
        f"P(**{result.target_name}**) as the {result.grid[0]} × {result.grid[1]} stage-4 cells are greyed out "
        f"(deletion) or revealed on grey (insertion), {round(cells * float(result.fractions[1]))} cells at a time. "
        f"The photo alone: {percent(result.full_probability)}; all grey: {percent(result.grey_probability)}. "
        "The area under each curve (AUC, 0 to 1) sums it up: **deletion lower is better** (the answer collapses "
        "as soon as the cells the map ranks first are gone), **insertion higher is better**.",
        "",
        "| cell order | deletion AUC (lower = better) | insertion AUC (higher = better) |",
        "|---|---|---|",
    ]
    lines += [f"| {curve.name} | {curve.deletion_auc:.3f} | {curve.insertion_auc:.3f} |" for curve in result.curves]
    wins = [
        "deletion" if mapped.deletion_auc < random.deletion_auc else None,
        "insertion" if mapped.insertion_auc > random.insertion_auc else None,
    ]
    won = [test for test in wins if test]
    if len(won) == 2:
        reading = (
            f"On this photo {mapped.name}'s order beats the random order on both: it ranks first what the model uses."
        )
    elif won:
        reading = f"On this photo {mapped.name}'s order beats the random order on {won[0]} only."
    else:
        reading = f"On this photo {mapped.name}'s order does not beat the random order: it ranks no better than chance."
    return "\n".join(lines + ["", reading])
