"""/mixers through gradio_client against the shared `python app.py`: every bundled mixer model on one photo.

The expected answers come from each checkpoint loaded here on its own (tests/test_zoo.py holds the maps to
Grad-CAM computed independently), so these tests check what the server computes and sends.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import BUNDLED_DIR, REPO
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image
from reference import TABLE_5_TOP1
from test_app_api import reference_top5, table_percent
from test_zoo import ZOO

from poolformer import explorer
from poolformer.preprocess import load_image, preprocess
from poolformer.weights import create_model
from visualize.gradcam import CAM_TILE
from visualize.maps import BAR_LABEL_WIDTH, BAR_LENGTH, PANEL_GAP, TITLE_HEIGHT
from visualize.zoo import zoo_picture

CAT = REPO / "assets" / "examples" / "cat.jpg"
ZOO_ROW_WIDTH = 3 * CAM_TILE + (BAR_LABEL_WIDTH + BAR_LENGTH + 70) + 3 * PANEL_GAP  # three maps and the top-5 bars
ZOO_ROW_HEIGHT = 2 * TITLE_HEIGHT + CAM_TILE


def class_probabilities(model: torch.nn.Module) -> torch.Tensor:
    with torch.inference_mode():
        return model(preprocess(load_image(CAT), model.variant.crop_pct))[0].softmax(-1)


def table_rows(markdown: str) -> list[dict[str, list[str]]]:
    """Each table's rows by model: the photo's answers first, then the measured figures (headers skipped)."""
    tables: list[dict[str, list[str]]] = []
    for line in markdown.splitlines():
        cells = line.strip("| ").split(" | ")
        if line.startswith("| ") and cells[0] == "model":
            tables.append({})
        elif line.startswith("| "):
            tables[-1][cells[0]] = cells[1:]
    return tables


def test_mixers_with_only_the_photo_runs_every_bundled_mixer(client: Client) -> None:
    picture, table = client.predict(handle_file(CAT), api_name="/mixers")
    with Image.open(picture) as image:
        image.load()
        height = len(ZOO) * (ZOO_ROW_HEIGHT + PANEL_GAP) - PANEL_GAP  # one row per model
        assert image.mode == "RGB" and image.size == (ZOO_ROW_WIDTH, height)
        served = np.asarray(image, dtype=np.float64)
    answers, measured = table_rows(table)
    assert len(answers) == len(measured) == len(ZOO)  # one row per bundled zoo model, in each table
    pooling = create_model(weights=ZOO[0])
    target = reference_top5(pooling, CAT)[0][0]  # every model explains the pooling model's top-1
    assert f"**{target}** (the pooling model's top-1)" in table
    for checkpoint in ZOO:
        choice = explorer.bundled_choice(checkpoint)
        model = create_model(weights=checkpoint)
        short = choice.name.split(" · ")[0]
        top5, probability = answers[short]
        expected = reference_top5(model, CAT)
        assert top5 == " · ".join(f"{name} {table_percent(value)}" for name, value in expected)
        assert probability == table_percent(float(class_probabilities(model)[model.class_names.index(target)]))
        accuracy, _, paper = measured[short]
        seeds = json.loads(choice.metadata["seed_summary"])[choice.token_mixer]
        if len(seeds["top1"]) == 1:
            assert accuracy == f"{seeds['mean'] * 100:.2f} (1 seed)"
        else:
            assert accuracy == f"{seeds['mean'] * 100:.2f} ± {seeds['sd'] * 100:.2f} ({len(seeds['top1'])} seeds)"
        assert paper == TABLE_5_TOP1[choice.token_mixer]
    # The served picture is the one drawn here from the same computation (a JPEG, so within its rounding).
    expected_picture = np.asarray(zoo_picture(explorer.mixer_zoo(CAT)), dtype=np.float64)
    assert np.abs(served - expected_picture).mean() < 3.0


def test_mixers_explains_a_named_class_in_every_model(client: Client) -> None:
    _, table = client.predict(handle_file(CAT), "church", api_name="/mixers")
    assert "**church** (the class you picked)" in table
    answers = table_rows(table)[0]
    for checkpoint in ZOO:
        model = create_model(weights=checkpoint)
        church = float(class_probabilities(model)[model.class_names.index("church")])
        assert answers[model.checkpoint_metadata["name"].split(" · ")[0]][1] == table_percent(church)


@pytest.mark.parametrize(
    "target, message",
    [("tabby", "know no class 'tabby'"), ("x" * 5000, "5,000 characters long"), ("", None)],
    ids=["unknown-class", "huge-value", "empty-means-top1"],
)
def test_mixers_target_is_checked_in_one_line(client: Client, target: str, message: str | None) -> None:
    if message is None:
        assert "the pooling model's top-1" in client.predict(handle_file(CAT), target, api_name="/mixers")[1]
        return
    with pytest.raises(AppError) as error:
        client.predict(handle_file(CAT), target, api_name="/mixers")
    assert message in str(error.value) and "\n" not in str(error.value)
    assert len(table_rows(client.predict(handle_file(CAT), api_name="/mixers")[1])[0]) == len(ZOO)  # still serving


def test_mixers_without_a_photo_is_a_one_line_error(client: Client) -> None:
    with pytest.raises(AppError) as error:
        client.predict(None, api_name="/mixers")
    assert str(error.value).startswith("no photo yet") and "\n" not in str(error.value)
