"""The app's public API, as gradio_client describes it, only grows: what scripts were written against stays.

tests/api_snapshot.json is `Client(url).view_api(return_format="dict")` of the shared `python app.py`, taken
before the page was split into ui/ (issue 14) and since then only added to (/mixers, issue 15; /sanity,
/faithfulness and /explain's method, issue 19): every endpoint's name, its parameters with their defaults and its
outputs, in order. Today's API must hold every one of those endpoints with the same parameters first (new ones
only after them, each with a default, so old calls still mean what they meant) and the same outputs in the same
order (their labels may be reworded, and Gradio numbers the unnamed ones as components are added). A new
endpoint goes into the snapshot too. The model picker's choices may only grow (new checkpoints add choices), so
they are checked against the picker itself instead of against the snapshot.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import local_client

from ui.sidebar import picker_choices

SNAPSHOT = Path(__file__).parent / "api_snapshot.json"
MODEL_CHOICES = "<the model picker's choices>"


def without_model_choices(api: dict[str, Any], choices: list[str]) -> dict[str, Any]:
    """`api` with every model parameter's list of choices replaced by a marker, after checking it is `choices`."""
    api = json.loads(json.dumps(api))
    for endpoint in api["named_endpoints"].values():
        for parameter in endpoint["parameters"]:
            if parameter["parameter_name"] == "model":
                assert parameter["type"]["enum"] == choices
                assert parameter["example_input"] in choices
                parameter["type"]["enum"] = parameter["python_type"]["type"] = MODEL_CHOICES
                parameter["example_input"] = MODEL_CHOICES
    return api


def without_labels(outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{key: value for key, value in output.items() if key != "label"} for output in outputs]


def test_api_only_grows(app_url: str) -> None:
    api = local_client(app_url).view_api(return_format="dict", print_info=False)
    snapshot = json.loads(SNAPSHOT.read_text())
    old_choices = snapshot["named_endpoints"]["/predict"]["parameters"][1]["type"]["enum"]
    live_choices = [value for _, value in picker_choices()]
    assert set(old_choices) <= set(live_choices)  # choices may be added, never taken away
    live, old = without_model_choices(api, live_choices), without_model_choices(snapshot, old_choices)
    assert live["unnamed_endpoints"] == old["unnamed_endpoints"]
    for name, before in old["named_endpoints"].items():
        now = live["named_endpoints"][name]
        count = len(before["parameters"])
        assert now["parameters"][:count] == before["parameters"], name
        assert all(parameter["parameter_has_default"] for parameter in now["parameters"][count:]), name
        assert without_labels(now["returns"]) == without_labels(before["returns"]), name
    # A new endpoint (or trailing parameter) is added to api_snapshot.json, so from then on it is held to it too.
    assert set(live["named_endpoints"]) == set(old["named_endpoints"])
