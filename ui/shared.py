"""What every tab reads: the photo, the model picker and the status line, and the callback helpers they share."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from poolformer import explorer
from poolformer.preprocess import ImageError
from poolformer.weights import WeightsError

STAGE_CHOICES = [(f"Stage {number}", number) for number in explorer.ALL_STAGES]
FIGURE_BUTTONS = ["download", "fullscreen"]  # on the figures a teacher would save for slides or show large
TOP1_CHOICE = ("the top-1 class", explorer.TOP1)  # the class-to-explain menus' first entry


@dataclass(frozen=True)
class Shared:
    """The components and events of the page that tabs read from or write to (the sidebar builds them)."""

    page: gr.Blocks
    photo: gr.Image
    model: gr.Dropdown
    status: gr.Markdown  # the loaded model's status line; a run's outputs may refresh it
    model_selected: gr.events.Dependency  # the picked model has loaded (or failed to): chain with .then


def uploaded_photo(payload: dict[str, Any] | None) -> bytes | None:
    """The uploaded file's bytes, for `poolformer.preprocess.load_image` to decode.

    The events run with preprocess=False: Gradio's own image preprocessing would answer a corrupt
    upload with a bare "Error", while our loader names the problem in one line. Gradio still checks
    that the path is one of its uploads. Bytes rather than the path keep temp paths out of messages.
    """
    return Path(payload["path"]).read_bytes() if payload else None


def friendly_errors(function: Callable) -> Callable:
    """Show expected failures (bad photo, missing weights, bad request) as a one-line gr.Error."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except (ImageError, WeightsError, explorer.ExplorerError) as error:
            raise gr.Error(str(error), print_exception=False) from None

    return wrapper


def reporter(progress: gr.Progress) -> explorer.LoadReporter:
    """Forward 'loading weights…' messages from the model cache to Gradio's progress bar."""
    return lambda message: progress(0, desc=message)
