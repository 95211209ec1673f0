"""Every public endpoint of the app as a call, with what of its answer must equal a lone visitor's answer.

Shared by the load test (tests/test_server_limits.py), the soak (benchmarks/soak.py) and its short CI version
(tests/test_soak.py). Latency and drawn pictures' temp paths differ from call to call; the numbers do not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from conftest import BUNDLED_MODEL


def top5(label: dict) -> list[tuple[str, float]]:
    return [(entry["label"], round(entry["confidence"], 5)) for entry in label["confidences"]]


def comparable_predict(outputs: tuple) -> Any:
    return top5(outputs[0]), outputs[1:-1:2]  # the labels and the stage headings (pictures are drawn from them)


def comparable_ablate(outputs: tuple) -> Any:
    return top5(outputs[0]), top5(outputs[1]), outputs[3], top5(outputs[4])


def comparable_compare(outputs: tuple) -> Any:
    table = outputs[0]
    # Latency is measured anew each time, and a model's CPU session may have been built since ("run by").
    measured_now = {table["headers"].index(column) for column in ("latency (ms)", "run by")}
    return [[cell for index, cell in enumerate(row) if index not in measured_now] for row in table["data"]]


def comparable_explain(outputs: tuple) -> Any:
    return top5(outputs[0]), outputs[2:9:2], outputs[-2]  # top-5, the four stage captions, the comparison summary


def comparable_text(position: int) -> Callable[[tuple], Any]:
    """The Markdown output at `position`: the numbers it reports are the answer."""
    return lambda outputs: outputs[position]


# (api name, arguments after the photo, what of its answer must equal the lone visitor's answer)
Call = tuple[str, tuple, Callable[[Any], Any]]
CALLS: list[Call] = [
    ("/predict", (BUNDLED_MODEL,), comparable_predict),
    ("/ablate", (BUNDLED_MODEL, [3, 4]), comparable_ablate),
    ("/compare", (), comparable_compare),
    ("/mixer_filter", (BUNDLED_MODEL,), comparable_text(2)),
    ("/token", (BUNDLED_MODEL, 2, 5, 9), comparable_text(1)),
    ("/architecture", (BUNDLED_MODEL,), lambda svg: svg),  # one output: the diagram itself
]
EXPLAIN: Call = ("/explain", (BUNDLED_MODEL,), comparable_explain)
# The views that run several models or many passes per call: the zoo, the sanity check, the deletion curves.
EVIDENCE: list[Call] = [
    ("/mixers", (), comparable_text(1)),  # the table: every zoo model's top-5 and the target's probability
    ("/sanity", (BUNDLED_MODEL,), comparable_text(1)),  # each randomisation step's rank correlation
    ("/faithfulness", (BUNDLED_MODEL,), comparable_text(2)),  # the areas under the curves
]
