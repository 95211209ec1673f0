"""The Gradio floor: the real app, whose /predict and /ablate answer with outputs computed once at start.

    python benchmarks/echo_app.py    (speed_report.py starts it; GRADIO_SERVER_PORT picks the port)

Same page, components, event settings and output values as `python app.py` (so Gradio encodes the
same pictures and the client reads the same answer), but no computing per request: what a request
costs here is Gradio's and the client's own share, the floor the app's latency is measured against.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import gradio as gr  # noqa: E402

import app  # noqa: E402
from poolformer import explorer  # noqa: E402

PHOTO = REPO / "assets" / "examples" / "cat.jpg"


def main() -> None:
    model = explorer.default_choice()
    predicted = app.predict_outputs(explorer.predict(PHOTO, model))
    ablated = app.ablate_outputs(explorer.ablate(PHOTO, model))

    # The same parameters as app.run_predict / app.run_ablate, progress tracker included.
    def answer_predict(photo: Any, model: str, progress: gr.Progress = gr.Progress()) -> list[Any]:
        return predicted

    def answer_ablate(photo: Any, model: str, stages: Any = None, progress: gr.Progress = gr.Progress()) -> list[Any]:
        return ablated

    blocks = app.build_app()
    answers = {"predict": answer_predict, "ablate": answer_ablate}
    for block_function in blocks.fns.values():
        if block_function.api_name in answers:
            block_function.fn = answers[block_function.api_name]
    blocks.launch(theme=app.THEME, css=app.CSS)


if __name__ == "__main__":
    main()
