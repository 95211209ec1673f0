"""The Where-it-looks tab's evidence through the HTTP API: /sanity and /faithfulness (and /explain's attribution
method), called with gradio_client against the shared `python app.py`.

Probabilities are checked against the bundled model loaded here; the rank correlations and areas against the
same computation run in this process, so the server is shown to answer what poolformer computes (whose
faithfulness tests/test_randomisation.py and tests/test_gradcam_faithfulness.py check).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from conftest import BUNDLED_MODEL, REPO
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image
from test_app_api import reference_top5, summary_rows, table_percent

from poolformer import explorer
from poolformer.deletion import FRACTION_STEPS
from poolformer.randomisation import CASCADE
from visualize.faithfulness import CURVE_COLOUR, CURVE_X, CURVE_Y
from visualize.maps import PANEL_GAP, TITLE_HEIGHT
from visualize.sanity import SANITY_TILE

CAT = REPO / "assets" / "examples" / "cat.jpg"
SANITY_ROW = (4 * SANITY_TILE + 3 * PANEL_GAP, 2 * TITLE_HEIGHT + SANITY_TILE)  # one step's four maps, headed
STEPS = 1 + len(CASCADE)  # as trained, then one row per randomised part


def signed_numbers(cells: list[str]) -> list[float]:
    return [float(cell.replace("−", "-")) for cell in cells]


def plot_points(plot: dict) -> list[dict]:
    """The rows of a native plot's value as {column: value}."""
    data = plot.get("value", plot)
    return [dict(zip(data["columns"], row)) for row in data["data"]]


def test_the_evidence_endpoints_take_what_explain_takes(client: Client) -> None:
    """(photo, model, target) exactly as /explain has them, then the attribution method, optional like /explain's."""
    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    explain = endpoints["/explain"]["parameters"]
    assert [parameter["parameter_name"] for parameter in explain] == ["photo", "model", "target", "stages", "method"]
    for name in ("/sanity", "/faithfulness"):
        parameters = endpoints[name]["parameters"]
        assert parameters[:3] == explain[:3], name
        assert parameters[3] == explain[4], name
        assert parameters[3]["parameter_default"] == "grad-cam" and len(parameters) == 4, name


@pytest.fixture(scope="module")
def default_sanity(client: Client) -> list:
    return client.predict(handle_file(CAT), api_name="/sanity")


@pytest.fixture(scope="module")
def default_faithfulness(client: Client) -> list:
    return client.predict(handle_file(CAT), api_name="/faithfulness")


def test_sanity_with_only_the_photo_randomises_the_top1_grad_cam(
    default_sanity: list, bundled_model: torch.nn.Module
) -> None:
    picture, summary, status = default_sanity
    image = Image.open(picture)
    assert image.height == STEPS * SANITY_ROW[1] + (STEPS - 1) * PANEL_GAP
    assert SANITY_ROW[0] <= image.width <= 2 * SANITY_ROW[0]
    top1, probability = reference_top5(bundled_model, CAT)[0]
    assert f"Grad-CAM for **{top1}**" in summary
    rows = summary_rows(summary)
    assert list(rows)[0] == "as trained" and len(rows) == STEPS
    assert rows["as trained"] == [table_percent(probability), "+1.00", "+1.00", "+1.00", "+1.00"]
    expected = explorer.sanity_check(CAT, BUNDLED_MODEL)  # the same check, run here
    for (title, cells), step in zip(rows.items(), expected.steps, strict=True):
        assert cells[0] == table_percent(step.target_probability), title
        assert signed_numbers(cells[1:]) == pytest.approx(step.rank_correlation, abs=0.015), title
    # The reading under the table follows the head-only step's stage-4 ρ: kept, reversed or lost.
    head_only = signed_numbers(rows["head randomised"][1:])[-1]
    reading = "order survives" if head_only >= 0.3 else "largely reversed" if head_only <= -0.3 else "little of the order"
    assert reading in summary
    assert "poolformer_s12_imagenette.safetensors" in status


def test_sanity_with_hirescam_for_a_named_class(client: Client, bundled_model: torch.nn.Module) -> None:
    name, probability = reference_top5(bundled_model, CAT)[2]
    _, summary, _ = client.predict(handle_file(CAT), BUNDLED_MODEL, name, "hirescam", api_name="/sanity")
    assert f"HiResCAM for **{name}**" in summary
    assert summary_rows(summary)["as trained"][0] == table_percent(probability)
    expected = explorer.sanity_check(CAT, BUNDLED_MODEL, name, "hirescam")
    last = signed_numbers(summary_rows(summary)["randomised down to the stem"][1:])
    assert last == pytest.approx(expected.steps[-1].rank_correlation, abs=0.015)


def test_faithfulness_with_only_the_photo_draws_three_orders(
    default_faithfulness: list, bundled_model: torch.nn.Module
) -> None:
    deletion_plot, insertion_plot, summary, status = default_faithfulness
    top1, probability = reference_top5(bundled_model, CAT)[0]
    target = bundled_model.class_names.index(top1)
    grey = reference_target_probability_of_grey(bundled_model, target)
    expected = explorer.faithfulness(CAT, BUNDLED_MODEL)
    names = ["Grad-CAM", "random order", "Grad-CAM, pooling off"]
    for plot, insertion in ((deletion_plot, False), (insertion_plot, True)):
        points = plot_points(plot)
        assert len(points) == len(names) * (FRACTION_STEPS + 1)
        for name, curve in zip(names, expected.curves, strict=True):
            line = [point for point in points if point[CURVE_COLOUR] == name]
            assert [point[CURVE_X] for point in line] == pytest.approx(
                [100 * step / FRACTION_STEPS for step in range(FRACTION_STEPS + 1)], abs=0.05
            )
            values = [point[CURVE_Y] / 100 for point in line]
            assert values == pytest.approx(list(curve.insertion if insertion else curve.deletion), abs=1e-4)
            ends = (grey, probability) if insertion else (probability, grey)
            assert (values[0], values[-1]) == pytest.approx(ends, abs=1e-4)  # the photo and the grey picture
    rows = summary_rows_without_percent(summary)
    assert list(rows) == names
    for name, curve in zip(names, expected.curves, strict=True):
        assert [float(cell) for cell in rows[name]] == pytest.approx(
            [curve.deletion_auc, curve.insertion_auc], abs=1.5e-3
        )
    assert f"The photo alone: {table_percent(probability)}" in summary
    assert "poolformer_s12_imagenette.safetensors" in status


def test_explain_draws_hirescam_when_asked(client: Client, bundled_model: torch.nn.Module) -> None:
    """/explain's trailing attribution input: HiResCAM maps, not Grad-CAM's, with the same top-5."""
    grad_cam_maps = client.predict(handle_file(CAT), BUNDLED_MODEL, explorer.TOP1, [1, 2, 3, 4], api_name="/explain")
    hires = client.predict(
        handle_file(CAT), BUNDLED_MODEL, explorer.TOP1, [1, 2, 3, 4], "hirescam", api_name="/explain"
    )
    assert hires[0] == grad_cam_maps[0]
    assert "HiResCAM" in hires[10] and "Grad-CAM" in grad_cam_maps[10]
    assert Image.open(hires[7]).tobytes() != Image.open(grad_cam_maps[7]).tobytes()  # the stage-4 picture


def test_an_identity_model_has_no_pooling_to_switch_off(client: Client, checkpoint_dir: Path) -> None:
    identity = explorer.bundled_choice(checkpoint_dir / "identityformer_s12_imagenette.safetensors")
    _, _, summary, _ = client.predict(handle_file(CAT), identity.value, api_name="/faithfulness")
    assert list(summary_rows_without_percent(summary)) == ["Grad-CAM", "random order"]


@pytest.mark.parametrize("endpoint", ["/sanity", "/faithfulness"])
def test_bad_requests_get_one_line_errors(client: Client, endpoint: str) -> None:
    for arguments, message in (
        ((None,), "no photo yet"),
        ((handle_file(CAT), BUNDLED_MODEL, "zebra"), "not in this photo's top-5"),
        ((handle_file(CAT), BUNDLED_MODEL, explorer.TOP1, "guided backprop"), "grad-cam, hirescam"),
        ((handle_file(CAT), BUNDLED_MODEL, "x" * 4000), "at most 200"),  # refused before any model pass
        ((handle_file(CAT), BUNDLED_MODEL, explorer.TOP1, "m" * 4000), "at most 200"),
        ((handle_file(CAT), BUNDLED_MODEL, explorer.TOP1, ["grad-cam"] * 100), "must be text"),
    ):
        with pytest.raises(AppError) as error:
            client.predict(*arguments, api_name=endpoint)
        assert message in str(error.value) and "\n" not in str(error.value) and len(str(error.value)) < 200


def summary_rows_without_percent(summary: str) -> dict[str, list[str]]:
    """The /faithfulness AUC table as {cell order: [deletion AUC, insertion AUC]}."""
    rows = [line.strip("| ").split(" | ") for line in summary.splitlines() if re.match(r"\| [^-|]", line)]
    return {cells[0]: cells[1:] for cells in rows[1:]}  # the first row is the header


def reference_target_probability_of_grey(model: torch.nn.Module, target: int) -> float:
    """P(target) on the all-grey picture: zero everywhere after normalising, the ImageNet mean colour."""
    with torch.inference_mode():
        return float(model(torch.zeros(1, 3, 224, 224))[0].softmax(-1)[target])
