"""The Compare variants tab: the photo through every model on the machine, as a table, a scatter plot and maps."""

from __future__ import annotations

from typing import Any

import gradio as gr

from poolformer import explorer
from ui.shared import Shared, friendly_errors, reporter, uploaded_photo
from visualize.comparison import (
    COMPARISON_COLUMN_WIDTHS,
    COMPARISON_COLUMNS,
    PLOT_COLOUR,
    PLOT_TOOLTIP,
    PLOT_X,
    PLOT_Y,
    comparison_gallery,
    comparison_plot,
    comparison_row,
    latency_axis_end,
)


def compare_outputs(rows: list[explorer.Comparison]) -> list[Any]:
    points = comparison_plot(rows)
    plot = gr.ScatterPlot(points, x_lim=[0, latency_axis_end(points)])  # room right of the slowest point
    return [[comparison_row(row) for row in rows], comparison_gallery(rows), plot]


@friendly_errors
def run_compare(photo: dict[str, Any] | None, progress: gr.Progress = gr.Progress()) -> list[Any]:
    return compare_outputs(explorer.compare(uploaded_photo(photo), reporter(progress)))


def build(shared: Shared) -> None:
    with gr.Tab("Compare variants", id="compare"):
        gr.Markdown(
            "The photo through **every model whose weights are on this machine** (bundled, official weights in "
            "the local Hugging Face cache, and models added to this app). Top-1 is the paper's ImageNet figure for "
            "official weights, our measured val accuracy for bundled ones, and the held-out accuracy a fine-tune "
            "recorded. Latency is the median of "
            f"{explorer.TIMED_RUNS} forward passes on **{explorer.DEVICE.type}**, batch 1, as this server runs "
            "each model now (\"run by\"): models in use here get a faster engine (ONNX Runtime on a CPU) than "
            "those loaded for this comparison alone, so compare latencies within one engine."
        )
        compare_button = gr.Button("Compare", variant="primary", elem_id="compare-button")
        table = gr.Dataframe(
            headers=COMPARISON_COLUMNS,
            column_widths=COMPARISON_COLUMN_WIDTHS,
            label="Models",
            wrap=True,
            interactive=False,
            elem_id="compare-table",
        )
        plot = gr.ScatterPlot(
            x=PLOT_X,
            y=PLOT_Y,
            color=PLOT_COLOUR,
            tooltip=PLOT_TOOLTIP,
            x_title=f"latency on {explorer.DEVICE.type}, batch 1 (ms)",
            y_title="top-1 (%)",
            title="Accuracy against speed",
            caption="Hover or tap a point: its model, size and answer for your photo.",
            y_lim=[60, 100],  # ImageNet (paper) and Imagenette (ours) top-1 both fall in here
            label="Top-1 against latency",
            elem_id="compare-plot",
        )
        gr.Markdown("**Stage-4 activation energy** (7 × 7) of each model, over the crop it saw:")
        maps = gr.Gallery(
            label="Stage-4 activation energy (7 × 7) of each model",
            show_label=False,
            columns=4,
            fit_columns=False,
            height="auto",
            format="jpeg",
            elem_id="compare-maps",
        )

    compare_button.click(run_compare, [shared.photo], [table, maps, plot], api_name="compare", preprocess=False)
