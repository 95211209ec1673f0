"""The token-mixer ablation chart: class probabilities side by side, and feature similarity per stage.

Drawn with matplotlib's object API (a Figure with an Agg canvas, never pyplot), which is safe to
call from the web server's worker threads.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

CHART_SIZE = (960, 380)  # pixels
DPI = 100
RUN_COLOURS = ("#3b6fb6", "#e07b39", "#4c9a5b")  # as trained, ablated (identity or resized pools), identity from scratch
MAX_CLASSES = 8


def chart_classes(probabilities: Sequence[np.ndarray], top: int = 5) -> list[int]:
    """The union of every run's top classes, ordered by the first run's probability."""
    chosen: list[int] = []
    for run in probabilities:
        for index in np.argsort(run)[::-1][:top]:
            if int(index) not in chosen:
                chosen.append(int(index))
    return sorted(chosen, key=lambda index: -probabilities[0][index])[:MAX_CLASSES]


def ablation_chart(
    run_names: Sequence[str],
    probabilities: Sequence[np.ndarray],
    class_names: Sequence[str],
    stage_cosine: Sequence[float],
) -> Image.Image:
    """Left: probabilities of the runs' top classes as grouped bars; right: cosine per stage."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(CHART_SIZE[0] / DPI, CHART_SIZE[1] / DPI), dpi=DPI, layout="constrained")
    canvas = FigureCanvasAgg(figure)
    bars, similarity = figure.subplots(1, 2, width_ratios=(2.3, 1))

    classes = chart_classes(probabilities)
    rows = np.arange(len(classes))
    height = 0.8 / len(probabilities)
    for offset, (name, run, colour) in enumerate(zip(run_names, probabilities, RUN_COLOURS)):
        bars.barh(rows + offset * height - 0.4 + height / 2, run[classes], height, label=name, color=colour)
    bars.set_yticks(rows, [class_names[index] for index in classes])
    bars.invert_yaxis()
    bars.set_xlim(0, 1)
    bars.set_xlabel("probability")
    bars.set_title("Class probabilities", loc="left", fontsize=11)
    bars.legend(loc="lower right", fontsize=9, frameon=False)

    stages = np.arange(1, len(stage_cosine) + 1)
    similarity.bar(stages, stage_cosine, color="#7a5ba6")
    for stage, value in zip(stages, stage_cosine):
        similarity.text(stage, value + 0.02, f"{value:.2f}", ha="center", fontsize=9)
    similarity.set_xticks(stages)
    similarity.set_xlabel("stage")
    similarity.set_ylim(min(0.0, min(stage_cosine) - 0.1), 1.1)  # cosine can be negative
    similarity.set_ylabel("cosine similarity")
    similarity.set_title("Features: as trained vs ablated", loc="left", fontsize=11)

    for axes in (bars, similarity):
        axes.spines[["top", "right"]].set_visible(False)
    canvas.draw()
    return Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3].copy())
