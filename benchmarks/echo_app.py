"""The Gradio floor: the real app, whose timed endpoints answer with outputs computed once at start.

    python benchmarks/echo_app.py    (app_latency.py starts it; GRADIO_SERVER_PORT picks the port)

Same page, components, event settings and output values as `python app.py` (so Gradio encodes the
same pictures and the client reads the same answer), but no computing per request: what a request
costs here is Gradio's and the client's own share, the floor the app's latency is measured against.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import app  # noqa: E402
from poolformer import explorer  # noqa: E402

PHOTO = REPO / "assets" / "examples" / "cat.jpg"
# The endpoints app_latency.py times.
ECHOED = ("predict", "ablate", "compare", "architecture", "explain", "mixers", "sanity", "faithfulness")


def echo(function: Callable[..., Any], answer: Any) -> Callable[..., Any]:
    """`function`'s signature (so Gradio passes the same arguments, progress tracker included), `answer` as result."""

    @functools.wraps(function)
    def answer_again(*args: Any, **kwargs: Any) -> Any:
        return answer

    return answer_again


def main() -> None:
    model = explorer.default_choice()
    explorer.load(model)  # loaded before the answers are computed, so no progress is reported outside an event
    blocks = app.build_app()
    for block_function in blocks.fns.values():
        if block_function.api_name in ECHOED:
            # The real callback, called once as Gradio calls it when a client sends the photo and leaves the
            # other inputs (the model, the stages...) at their defaults, as app_latency.py's calls do.
            photo, *others = block_function.inputs
            answer = block_function.fn({"path": str(PHOTO)}, *(component.value for component in others))
            block_function.fn = echo(block_function.fn, answer)
    app.serve(blocks)
    blocks.block_thread()


if __name__ == "__main__":
    main()
