"""The MetaFormer additions to the API through gradio_client against the shared `python app.py`:
/ablate's per-stage pool sizes (and its unchanged answer without them), /compare's plot, /architecture.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from conftest import BUNDLED_MODEL, REPO
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from safetensors import safe_open
from test_app_api import assert_top5, label_pairs, reference_top5
from test_metaformer import ReferencePool, diagram_shapes

from poolformer.preprocess import load_image, preprocess
from poolformer.weights import create_model

CAT = REPO / "assets" / "examples" / "cat.jpg"


def with_mixers(checkpoint_dir: Path, mixers: list[torch.nn.Module]) -> torch.nn.Module:
    """The bundled model with each stage's token mixer replaced by hand (a separate copy)."""
    model = create_model("s12", weights=checkpoint_dir / "poolformer_s12_imagenette.safetensors")
    for stage, mixer in zip(model.stages, mixers):
        for block in stage.blocks:
            block.token_mixer = mixer
    return model


def test_ablate_without_pool_sizes_answers_as_before(client: Client, bundled_model: torch.nn.Module) -> None:
    """Today's call (image, model, stages) and the same call with the default sizes spelled out agree."""
    before = client.predict(handle_file(CAT), BUNDLED_MODEL, [3, 4], api_name="/ablate")
    spelled_out = client.predict(handle_file(CAT), BUNDLED_MODEL, [3, 4], 3, 3, 3, 3, api_name="/ablate")
    assert_top5(before[1], reference_top5(bundled_model.with_token_mixers(["pooling", "pooling", "identity", "identity"]), CAT))
    assert label_pairs(before[1]) == label_pairs(spelled_out[1])
    assert before[3] == spelled_out[3]
    assert "stage(s) **3, 4**" in before[3] and "what-if" not in before[3]


def test_ablate_with_wider_pools(client: Client, checkpoint_dir: Path) -> None:
    outputs = client.predict(handle_file(CAT), BUNDLED_MODEL, [], 5, 5, 7, 7, api_name="/ablate")
    reference = with_mixers(checkpoint_dir, [ReferencePool(5), ReferencePool(5), ReferencePool(7), ReferencePool(7)])
    assert_top5(outputs[1], reference_top5(reference, CAT))
    summary = outputs[3]
    assert "stage 1: **5 × 5**" in summary and "stage 4: **7 × 7**" in summary
    assert "what-if" in summary and "Pooling replaced by identity" not in summary


def test_ablate_rejects_a_pool_size_it_has_no_mixer_for(client: Client) -> None:
    with pytest.raises(AppError) as error:
        client.predict(handle_file(CAT), BUNDLED_MODEL, [1], 4, 3, 3, 3, api_name="/ablate")
    assert "3, 5 or 7" in str(error.value) and "\n" not in str(error.value)


def test_compare_plots_top1_against_latency(client: Client, checkpoint_dir: Path) -> None:
    table, _, plot = client.predict(handle_file(CAT), api_name="/compare")
    data = plot["value"]  # an update: the points, and an x axis that ends past the slowest model
    points = [dict(zip(data["columns"], row)) for row in data["data"]]
    rows = [dict(zip(table["headers"], row)) for row in table["data"]]
    assert len(points) == len(rows) == len(list(checkpoint_dir.glob("*.safetensors")))
    assert data["mark"] == "point"
    assert plot["x_lim"][0] == 0 and plot["x_lim"][1] > max(point["latency (ms)"] for point in points)
    for point, row in zip(points, rows):
        assert point["model"] == row["model"]
        assert point["latency (ms)"] == pytest.approx(float(row["latency (ms)"]))
        assert point["top-1 (%)"] == pytest.approx(float(row["top-1 (%)"]))
        first = re.match(r"(.+? \d+\.\d %)", row["top-5"]).group(1)  # the photo's top-1 in the table
        assert point["this photo"] == first
        assert point["params"] == f"{float(row['params (M)']):.1f} M"
    for path in checkpoint_dir.glob("*.safetensors"):
        with safe_open(str(path), framework="pt") as checkpoint:
            recorded = float(checkpoint.metadata()["val_top1"]) * 100
        assert round(recorded, 1) in [point["top-1 (%)"] for point in points]


def test_architecture_shows_the_photos_tensor_shapes(client: Client, bundled_model: torch.nn.Module) -> None:
    svg = client.predict(handle_file(CAT), BUNDLED_MODEL, api_name="/architecture")
    pixels = preprocess(load_image(CAT), 0.9)
    with torch.inference_mode():
        logits, stage_outputs = bundled_model.forward_with_stages(pixels)
    shapes = diagram_shapes(svg)
    assert shapes["input"] == tuple(pixels.shape) and shapes["head"] == tuple(logits.shape)
    assert [shapes[f"stage{number}"] for number in range(1, 5)] == [tuple(output.shape) for output in stage_outputs]
    assert 'data-measured="true"' in svg and svg.count("<image ") == 5  # the crop and four energy maps


def test_architecture_of_a_model_without_weights_here_still_draws(client: Client) -> None:
    """Official M48 is not in the (empty) HF cache: the diagram comes from the architecture alone."""
    svg = client.predict(handle_file(CAT), "m48", api_name="/architecture")
    assert 'data-measured="false"' in svg and "not on this machine" in svg
    assert diagram_shapes(svg)["stage4"] == (1, 768, 7, 7)


def test_architecture_of_a_corrupt_upload_is_a_one_line_error(client: Client, tmp_path: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a picture at all\n")
    with pytest.raises(AppError) as error:
        client.predict(handle_file(broken), BUNDLED_MODEL, api_name="/architecture")
    assert str(error.value).startswith("uploaded image") and "\n" not in str(error.value)
    assert 'data-measured="true"' in client.predict(handle_file(CAT), BUNDLED_MODEL, api_name="/architecture")
