"""The app's HTTP API, called the way users script it: gradio_client against a real `python app.py`.

The expected answers are computed independently in this process (create_model + preprocessing),
so the tests check what the server computes, not just that it answers.
"""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import BUNDLED_DIR, BUNDLED_MODEL, REPO, local_client, running_app
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image
from reference import fake_hub_snapshot, reference_model
from test_metaformer import diagram_shapes

from poolformer import explorer, grad_cam
from poolformer.explorer import ModelCache, ModelChoice, bundled_choice
from poolformer.model import PoolFormer
from poolformer.preprocess import load_image, preprocess
from poolformer.weights import create_model
from visualize.charts import CHART_SIZE
from visualize.gradcam import CAM_TILE
from visualize.maps import GRID_SIZE, PANEL_GAP, PHOTO_SIZE, TITLE_HEIGHT
from visualize.stages import COLOUR_SCALES

CAT = REPO / "assets" / "examples" / "cat.jpg"
STAGE_PICTURE_SIZE = (2 * PHOTO_SIZE + GRID_SIZE[0] + 2 * PANEL_GAP, TITLE_HEIGHT + PHOTO_SIZE)
STAGE_SHAPES = ["64 × 56 × 56", "128 × 28 × 28", "320 × 14 × 14", "512 × 7 × 7"]
UNAVAILABLE_ERROR_WITHIN_S = 10
CAM_ROW_SIZE = (4 * CAM_TILE + 3 * PANEL_GAP, 2 * TITLE_HEIGHT + CAM_TILE)  # one model's four stage maps, headed


def reference_top5(model: torch.nn.Module, photo: Path) -> list[tuple[str, float]]:
    """Top-5 computed here, independently of the app, for the same photo."""
    with torch.inference_mode():
        probabilities = model(preprocess(load_image(photo), model.variant.crop_pct))[0].softmax(-1)
    values, indices = probabilities.topk(5)
    return [(model.class_names[index], value) for value, index in zip(values.tolist(), indices.tolist())]


def label_pairs(label: dict) -> list[tuple[str, float]]:
    return [(entry["label"], entry["confidence"]) for entry in label["confidences"]]


def assert_top5(label: dict, expected: list[tuple[str, float]]) -> None:
    pairs = label_pairs(label)
    confidences = [confidence for _, confidence in pairs]
    assert len(pairs) == 5
    assert confidences == sorted(confidences, reverse=True)
    assert sum(confidences) <= 1 + 1e-6
    assert [name for name, _ in pairs] == [name for name, _ in expected]
    np.testing.assert_allclose(confidences, [p for _, p in expected], atol=1e-5)


def assert_image(path: str, size: tuple[int, int]) -> None:
    with Image.open(path) as image:
        image.load()  # decodes every pixel: a truncated file fails here
        assert image.size == size
        assert image.mode == "RGB"


def test_predict_gives_top5_and_one_picture_per_stage(client: Client, bundled_model: torch.nn.Module) -> None:
    outputs = client.predict(handle_file(CAT), api_name="/predict")
    label, stage_outputs, status = outputs[0], outputs[1:-1], outputs[-1]
    assert_top5(label, reference_top5(bundled_model, CAT))
    headings, pictures = stage_outputs[0::2], stage_outputs[1::2]
    for heading, shape in zip(headings, STAGE_SHAPES, strict=True):
        assert shape in heading
    for picture in pictures:
        assert_image(picture, STAGE_PICTURE_SIZE)
    assert "poolformer_s12_imagenette.safetensors" in status and "cpu" in status


def mean_brightness(path: str, box: tuple[int, int, int, int]) -> float:
    with Image.open(path) as image:
        return float(np.asarray(image.convert("L").crop(box), dtype=np.float64).mean())


def test_predict_draws_the_stage_maps_on_each_colour_scale(client: Client, bundled_model: torch.nn.Module) -> None:
    """The optional colour scale keeps /predict's answer; "map" is the old default; "global" darkens weak stages."""
    default = client.predict(handle_file(CAT), api_name="/predict")
    drawn = {
        scale: client.predict(handle_file(CAT), BUNDLED_MODEL, scale, api_name="/predict") for scale in COLOUR_SCALES
    }
    for outputs in drawn.values():
        assert_top5(outputs[0], reference_top5(bundled_model, CAT))
        assert len(outputs) == len(default)  # the per-visitor state stays out of the API
        for picture in outputs[2:-1:2]:
            assert_image(picture, STAGE_PICTURE_SIZE)
    energy_panel = (0, TITLE_HEIGHT, PHOTO_SIZE, TITLE_HEIGHT + PHOTO_SIZE)
    for stage in range(4):
        same = [mean_brightness(outputs[2 + 2 * stage], energy_panel) for outputs in (default, drawn["map"])]
        assert same[0] == pytest.approx(same[1], abs=0.5)  # JPEG: equal pictures, up to encoding
    # On one global scale stage 1 (mean energy ~2.6 on this photo) is far darker than stage 4 (~330).
    stage1_global, stage4_global = (mean_brightness(drawn["global"][2 + 2 * stage], energy_panel) for stage in (0, 3))
    assert stage1_global < mean_brightness(drawn["map"][2], energy_panel) - 10
    assert stage1_global < stage4_global


def test_unknown_colour_scale_is_a_one_line_error(client: Client) -> None:
    with pytest.raises(AppError) as error:
        client.predict(handle_file(CAT), BUNDLED_MODEL, "logarithmic", api_name="/predict")
    assert "unknown colour scale" in str(error.value) and "\n" not in str(error.value)


def test_mixer_filter_shows_the_photo_through_pool_minus_x(client: Client) -> None:
    """The slider's right picture is the crop through AvgPool2d(3, 1, 1, count_include_pad=False) − x, grey = 0."""
    pictures, stage1_map, caption = client.predict(handle_file(CAT), BUNDLED_MODEL, api_name="/mixer_filter")
    photo_path, filtered_path = pictures
    with Image.open(photo_path) as photo, Image.open(filtered_path) as filtered:
        assert photo.size == filtered.size == (PHOTO_SIZE, PHOTO_SIZE)
        pixels = torch.from_numpy(np.asarray(photo.convert("RGB"), dtype=np.float64) / 255).permute(2, 0, 1)[None]
        shown = np.asarray(filtered.convert("RGB"), dtype=np.float64)
    high_pass = (torch.nn.AvgPool2d(3, 1, 1, count_include_pad=False)(pixels) - pixels)[0].permute(1, 2, 0).numpy()
    full_scale = np.percentile(np.abs(high_pass), 99.5)
    expected = 255 * (0.5 + 0.5 * np.clip(high_pass / full_scale, -1, 1))
    np.testing.assert_allclose(shown, expected, atol=1.0)
    assert_image(stage1_map, (2 * PHOTO_SIZE, 2 * PHOTO_SIZE))
    assert f"±{full_scale:.3f}" in caption and "56 × 56" in caption


@pytest.mark.parametrize(("stage", "row", "column"), [(1, 0, 0), (2, 10, 27), (4, 3, 3)])
def test_token_endpoint_reports_what_pooling_passes_on(
    client: Client, bundled_model: torch.nn.Module, stage: int, row: int, column: int
) -> None:
    """‖pool(x) − x‖ at the token, as the server reports it, against this process's own model run."""
    with torch.inference_mode():
        x = bundled_model.stem(preprocess(load_image(CAT), 0.9))
        for earlier in bundled_model.stages[: stage - 1]:
            x = earlier(x)
        block = bundled_model.stages[stage - 1].blocks[0]
        mixed = block.token_mixer(block.norm1(bundled_model.stages[stage - 1].downsample(x)))
    expected = float(mixed[0, :, row, column].norm())
    picture, summary = client.predict(handle_file(CAT), BUNDLED_MODEL, stage, row, column, api_name="/token")
    reported = float(re.search(r"‖pool\(x\) − x‖ = ([0-9.]+)\*\*, what pooling passes on", summary).group(1))
    assert reported == pytest.approx(expected, abs=1e-3)
    assert f"row {row}, column {column}" in summary
    with Image.open(picture) as image:
        image.load()
        assert image.width > image.height > 0


def test_token_off_the_map_is_a_one_line_error(client: Client) -> None:
    with pytest.raises(AppError) as error:
        client.predict(handle_file(CAT), BUNDLED_MODEL, 4, 7, 0, api_name="/token")
    assert "7 × 7 tokens" in str(error.value) and "\n" not in str(error.value)


def test_odd_but_valid_uploads_are_accepted(client: Client, tmp_path: Path) -> None:
    """16-bit greyscale and transparent PNGs are converted, not rejected."""
    photo = np.asarray(Image.open(CAT).convert("L"), dtype=np.uint16) * 257
    Image.fromarray(photo).save(tmp_path / "grey16.png")
    Image.open(CAT).convert("RGBA").save(tmp_path / "transparent.png")
    for name in ("grey16.png", "transparent.png"):
        label = client.predict(handle_file(tmp_path / name), BUNDLED_MODEL, api_name="/predict")[0]
        assert len(label["confidences"]) == 5


def test_ablation_swaps_pooling_for_identity(client: Client, bundled_model: torch.nn.Module) -> None:
    pooling, identity, chart, summary, scratch, status = client.predict(handle_file(CAT), api_name="/ablate")
    assert_top5(pooling, reference_top5(bundled_model, CAT))
    assert_top5(identity, reference_top5(bundled_model.with_token_mixers("identity"), CAT))
    assert len(scratch["confidences"]) == 5  # the bundled identity model, trained from scratch
    assert_image(chart, CHART_SIZE)
    assert "77.2" in summary and "74.3" in summary and "KL" in summary
    assert "stage(s) **1, 2, 3, 4**" in summary
    # Beside the paper's figures: our measured mean ± sd over seeds, as recorded in the shipped checkpoint.
    seeds = json.loads(bundled_choice(BUNDLED_DIR / "poolformer_s12_imagenette.safetensors").metadata["seed_summary"])
    for mixer in ("pooling", "identity"):
        count = len(seeds[mixer]["top1"])
        assert f"**{seeds[mixer]['mean'] * 100:.2f} ± {seeds[mixer]['sd'] * 100:.2f} ({count} seeds)**" in summary
    gap = seeds["vs_pooling"]["identity"]
    low, high = (value * 100 for value in gap["ci95"])
    assert f"{gap['mean'] * 100:+.2f} points against pooling (95 % interval {low:+.2f} to {high:+.2f})" in summary


def test_ablating_only_stage4_leaves_earlier_stages_identical(client: Client) -> None:
    summary = client.predict(handle_file(CAT), BUNDLED_MODEL, [4], api_name="/ablate")[3]
    cosines = re.search(r"cosine similarity of stage outputs \| (.+) \|", summary).group(1).split(" | ")
    assert cosines[:3] == ["1.000", "1.000", "1.000"]
    assert "stage(s) **4**" in summary


def test_concurrent_ablations_leave_the_shared_model_untouched(client: Client, bundled_model: torch.nn.Module) -> None:
    """Ablations swap mixers on a twin; predictions running alongside must still see pooling."""
    jobs = [client.submit(handle_file(CAT), api_name=name) for name in ("/ablate", "/predict") * 3]
    expected = reference_top5(bundled_model, CAT)
    for job in jobs[1::2]:
        assert_top5(job.result()[0], expected)
    for job in jobs[0::2]:
        assert_top5(job.result()[0], expected)


def test_compare_runs_every_available_model(client: Client, checkpoint_dir: Path) -> None:
    table, gallery = client.predict(handle_file(CAT), api_name="/compare")[:2]  # the third output, a plot: test_app_metaformer
    bundled = sorted(checkpoint_dir.glob("*.safetensors"))
    assert len(table["data"]) == len(gallery) == len(bundled)  # no official weights offline
    # Every bundled model (the whole zoo), with its trainable parameters: 11.4 M for S12 with 10 classes,
    # more for the zoo's attention stages (a random mixer's frozen matrices are no parameters).
    params = {}
    for path in bundled:
        model = create_model(weights=path)
        params[bundled_choice(path).name] = sum(parameter.numel() for parameter in model.parameters()) / 1e6
    pooling = bundled_choice(BUNDLED_DIR / "poolformer_s12_imagenette.safetensors").name
    assert params[pooling] == pytest.approx(11.4, abs=0.1)
    columns = table["headers"]
    assert sorted(row[columns.index("model")] for row in table["data"]) == sorted(params)
    for row in table["data"]:
        assert float(row[columns.index("latency (ms)")]) > 0
        assert row[columns.index("run by")] in ("ONNX Runtime", "torch eager, cpu")  # which one depends on its use
        assert float(row[columns.index("params (M)")]) == pytest.approx(params[row[columns.index("model")]], abs=0.05)
        assert row[columns.index("top-5")].count("%") == 5
    for item in gallery:
        assert_image(item["image"], (PHOTO_SIZE, PHOTO_SIZE))


def test_unavailable_official_weights_fail_fast_and_clearly(client: Client) -> None:
    started = time.monotonic()
    with pytest.raises(AppError) as error:
        client.predict(handle_file(CAT), "s12", api_name="/ablate")
    assert time.monotonic() - started < UNAVAILABLE_ERROR_WITHIN_S
    message = str(error.value)
    assert "s12" in message and "hf download sail/poolformer_s12" in message
    assert "\n" not in message
    assert len(client.predict(handle_file(CAT), api_name="/predict")[0]["confidences"]) == 5  # still serving


@pytest.mark.parametrize(
    "content",
    [b"\xff\xd8\xff\xe0" + b"\x00" * 64 + b"truncated jpeg", b"just some text, not a picture\n"],
    ids=["truncated-jpeg", "text-file"],
)
def test_corrupt_upload_gives_one_line_error(client: Client, tmp_path: Path, content: bytes) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(content)
    with pytest.raises(AppError) as error:
        client.predict(handle_file(broken), api_name="/predict")
    message = str(error.value)
    assert message.startswith("uploaded image") and "\n" not in message
    assert len(client.predict(handle_file(CAT), api_name="/predict")[0]["confidences"]) == 5  # still serving


def assert_cam_comparison(path: str, models: int) -> None:
    """One row of four stage maps per model; a long row heading may widen the picture."""
    with Image.open(path) as image:
        image.load()
        assert image.height == models * CAM_ROW_SIZE[1] + (models - 1) * PANEL_GAP
        assert CAM_ROW_SIZE[0] <= image.width <= CAM_ROW_SIZE[0] + PHOTO_SIZE


def summary_rows(summary: str) -> dict[str, list[str]]:
    """The /explain summary table as {model: [P(target), similarity per stage...]}."""
    rows = [line.strip("| ").split(" | ") for line in summary.splitlines() if line.startswith("| ") and "%" in line]
    return {cells[0]: cells[1:] for cells in rows}


def table_percent(probability: float) -> str:
    """How the /explain summary table writes a probability."""
    return f"{probability * 100:.1f} %"


def reference_target_probability(model: torch.nn.Module, photo: Path, target: int) -> float:
    with torch.inference_mode():
        return float(model(preprocess(load_image(photo), 0.9))[0].softmax(-1)[target])


def bundled_name(checkpoint: str) -> str:
    return bundled_choice(BUNDLED_DIR / checkpoint).name


POOLING_NAME = bundled_name("poolformer_s12_imagenette.safetensors")
IDENTITY_NAME = bundled_name("identityformer_s12_imagenette.safetensors")


@pytest.fixture(scope="module")
def default_explanation(client: Client) -> list:
    """/explain with only the photo: the default (bundled) model, explaining its top-1 class."""
    return client.predict(handle_file(CAT), api_name="/explain")


def test_explain_with_only_the_photo_explains_the_top1(
    default_explanation: list, bundled_model: torch.nn.Module
) -> None:
    label, stage_outputs, summary, status = default_explanation[0], default_explanation[1:9], *default_explanation[10:]
    expected = reference_top5(bundled_model, CAT)
    assert_top5(label, expected)
    top1 = expected[0][0]
    pictures, captions = stage_outputs[0::2], stage_outputs[1::2]
    for number, (picture, caption, size) in enumerate(zip(pictures, captions, (56, 28, 14, 7), strict=True), 1):
        assert_image(picture, (PHOTO_SIZE, PHOTO_SIZE))
        assert f"**Stage {number}** · {size} × {size} cells" in caption and f"**{top1}**" in caption
    assert f"probability for **{top1}**" in summary
    as_trained = summary_rows(summary)[f"{POOLING_NAME}, as trained"]
    assert as_trained[0] == table_percent(expected[0][1])
    assert as_trained[1:] == ["1.00"] * 4  # the model's own maps, compared with themselves
    assert "poolformer_s12_imagenette.safetensors" in status


def test_explain_shows_the_identity_twins_maps(
    default_explanation: list, checkpoint_dir: Path, bundled_model: torch.nn.Module
) -> None:
    """The bundled pooling model has both comparisons: identity swapped in, and identity trained from scratch."""
    comparison, summary = default_explanation[9], default_explanation[10]
    assert_cam_comparison(comparison, models=3)
    rows = summary_rows(summary)
    assert len(rows) == 3
    twin = create_model("s12", weights=checkpoint_dir / "identityformer_s12_imagenette.safetensors")
    top1 = reference_top5(bundled_model, CAT)[0][0]
    target = bundled_model.class_names.index(top1)
    scratch = rows[f"{IDENTITY_NAME}, trained from scratch"]
    assert scratch[0] == table_percent(reference_target_probability(twin, CAT, target))
    pixels = preprocess(load_image(CAT), 0.9)
    pairs = zip(grad_cam(bundled_model, pixels, target), grad_cam(twin, pixels, target), strict=True)
    cosines = [float(torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0)) for a, b in pairs]
    assert scratch[1:] == [f"{value:.2f}" for value in cosines]
    swapped = rows["identity swapped into stage(s) 1, 2, 3, 4, same weights"]
    ablated = bundled_model.with_token_mixers("identity")
    assert swapped[0] == table_percent(reference_target_probability(ablated, CAT, target))


def test_explain_a_named_class_from_the_top5(client: Client, bundled_model: torch.nn.Module) -> None:
    expected = reference_top5(bundled_model, CAT)
    name, probability = expected[2]
    outputs = client.predict(handle_file(CAT), BUNDLED_MODEL, name, [4], api_name="/explain")
    assert_top5(outputs[0], expected)  # the top-5 stays the photo's, whatever class is explained
    assert all(f"**{name}**" in caption for caption in outputs[2:9:2])
    rows = summary_rows(outputs[10])
    assert rows[f"{POOLING_NAME}, as trained"][0] == table_percent(probability)
    assert "identity swapped into stage(s) 4, same weights" in rows


def test_explain_an_identity_model_has_nothing_to_switch_off(client: Client, checkpoint_dir: Path) -> None:
    identity = bundled_choice(checkpoint_dir / "identityformer_s12_imagenette.safetensors")
    outputs = client.predict(handle_file(CAT), identity.value, api_name="/explain")
    assert len(outputs[0]["confidences"]) == 5
    assert outputs[9] is None and "already mixes tokens by identity" in outputs[10]
    assert "identityformer_s12_imagenette.safetensors" in outputs[11]


def test_explain_an_unknown_class_gives_one_line_error(client: Client) -> None:
    with pytest.raises(AppError) as error:
        client.predict(handle_file(CAT), BUNDLED_MODEL, "zebra", api_name="/explain")
    message = str(error.value)
    assert "'zebra' is not in this photo's top-5" in message and "\n" not in message
    assert len(client.predict(handle_file(CAT), api_name="/predict")[0]["confidences"]) == 5  # still serving


def test_a_kept_prediction_holds_only_the_numbers_it_shows() -> None:
    """The Predict tab keeps each visitor's last prediction (gr.State, up to SESSIONS_KEPT of them): its arrays
    must own their numbers, not view whole stage outputs (1.6 MB a visitor for S12's eight channels a stage)."""
    prediction = explorer.predict(CAT, BUNDLED_MODEL)
    arrays = [array for stage in prediction.stages for _, array in stage.top_channels]
    arrays += [array for stage in prediction.stages for array in (stage.energy, stage.mixer_change)]
    held = sum(array.nbytes if array.base is None else memory_behind(array) for array in arrays)
    assert held == sum(array.nbytes for array in arrays) < 200_000


def memory_behind(array: np.ndarray) -> int:
    base = array.base
    return base.untyped_storage().nbytes() if isinstance(base, torch.Tensor) else base.nbytes


def test_model_cache_keeps_the_most_recently_used_models(checkpoint_dir: Path) -> None:
    pooling = bundled_choice(checkpoint_dir / "poolformer_s12_imagenette.safetensors")
    identity = bundled_choice(checkpoint_dir / "identityformer_s12_imagenette.safetensors")
    cache = ModelCache(capacity=1)
    first = cache.get(pooling)
    assert cache.get(pooling) is first  # a hit: no reload
    assert cache.get(identity).token_mixers == ("identity",) * 4
    assert cache.get(pooling) is not first  # evicted by the identity model, loaded again


def test_a_sweep_borrows_models_without_evicting_the_ones_in_use(checkpoint_dir: Path) -> None:
    """/compare and the zoo go through more models than the cache holds: the cached ones serve, the rest load for
    the pass and are not kept, even where the cache has room, one such load at a time in the process."""
    pooling = bundled_choice(checkpoint_dir / "poolformer_s12_imagenette.safetensors")
    identity = bundled_choice(checkpoint_dir / "identityformer_s12_imagenette.safetensors")
    cache = ModelCache(capacity=1)
    in_use = cache.get(pooling)
    with cache.borrowed(pooling) as again:
        assert again is in_use and in_use.cpu_passes.state != "not built"  # asked again: as `get`
    deadline = time.perf_counter() + 120  # (its session builds in the background; let it end before the process)
    while in_use.cpu_passes.state not in ("ready", "failed") and time.perf_counter() < deadline:
        time.sleep(0.1)
    with cache.borrowed(identity) as borrowed:
        assert borrowed.token_mixers == ("identity",) * 4
        assert cache.peek(identity.value) is None and cache.get(pooling) is in_use  # nothing evicted, nothing kept
        second_sweep: list[PoolFormer] = []
        other = threading.Thread(target=lambda: second_sweep.append(enter_and_leave(cache, identity)))
        other.start()
        other.join(timeout=2)
        assert other.is_alive() and not second_sweep  # a second uncached load waits for this one's turn to end
    other.join(timeout=60)
    assert second_sweep and second_sweep[0] is not borrowed  # then loads a model of its own
    roomy = ModelCache(capacity=2)
    roomy.get(pooling)
    with roomy.borrowed(identity) as passing:
        assert passing.token_mixers == ("identity",) * 4
    assert roomy.peek(identity.value) is None  # free room is kept for the models visitors pick


def enter_and_leave(cache: ModelCache, choice: ModelChoice) -> PoolFormer:
    with cache.borrowed(choice) as model:
        return model


def test_cached_official_s12_becomes_the_default_and_serves_every_endpoint(tmp_path: Path) -> None:
    """With sail/poolformer_s12 in the local HF cache (here: transformers' model, random weights),
    the app defaults to it, answers exactly as transformers' model does on our preprocessing, and every
    teaching view (where it looks, the filter, a token, the diagram) runs on those official-format weights."""
    reference = reference_model("s12", seed=5)
    snapshot = fake_hub_snapshot(tmp_path / "hf-cache", "sail/poolformer_s12")
    reference.save_pretrained(snapshot)
    with torch.inference_mode():
        logits = reference(pixel_values=preprocess(load_image(CAT), 0.9)).logits
    values, indices = logits[0].softmax(-1).topk(5)
    expected = [(reference.config.id2label[index], value) for value, index in zip(values.tolist(), indices.tolist())]

    with running_app(BUNDLED_DIR, tmp_path, hf_cache=tmp_path / "hf-cache") as url:
        client = local_client(url, download_files=str(tmp_path / "downloads"))
        predicted = client.predict(handle_file(CAT), api_name="/predict")  # the default model
        assert_top5(predicted[0], expected)
        assert "sail/poolformer_s12 (local HF cache)" in predicted[-1]
        ablated = client.predict(handle_file(CAT), "s12", api_name="/ablate")
        assert_top5(ablated[0], expected)
        compared = client.predict(handle_file(CAT), api_name="/compare")
        assert "PoolFormer-S12" in [row[0] for row in compared[0]["data"]]
        explained = client.predict(handle_file(CAT), api_name="/explain")  # default model, its top-1 class
        assert_top5(explained[0], expected)
        assert f"**{expected[0][0]}**" in explained[8]  # the stage-4 caption names the explained class
        assert_cam_comparison(explained[9], models=2)  # as trained and identity swapped in; no scratch twin
        assert list(summary_rows(explained[10])) == [
            "PoolFormer-S12, as trained",
            "identity swapped into stage(s) 1, 2, 3, 4, same weights",
        ]
        # The teaching views run on the official weights too: the filter, one token, the live diagram.
        _, stage1_map, caption = client.predict(handle_file(CAT), api_name="/mixer_filter")
        assert_image(stage1_map, (2 * PHOTO_SIZE, 2 * PHOTO_SIZE))
        assert "56 × 56" in caption
        ours = create_model(weights=snapshot)  # the same files, through our loader
        with torch.inference_mode():
            block = ours.stages[1].blocks[0]
            stage1_output = ours.stages[0](ours.stem(preprocess(load_image(CAT), 0.9)))
            mixed = block.token_mixer(block.norm1(ours.stages[1].downsample(stage1_output)))
        _, token = client.predict(handle_file(CAT), "s12", 2, 10, 27, api_name="/token")
        reported = float(re.search(r"‖pool\(x\) − x‖ = ([0-9.]+)\*\*, what pooling passes on", token).group(1))
        assert reported == pytest.approx(float(mixed[0, :, 10, 27].norm()), abs=1e-3)
        # The evidence for the maps too: the sanity check and the curves, on the official-format weights.
        _, sanity, _ = client.predict(handle_file(CAT), api_name="/sanity")
        assert f"Grad-CAM for **{expected[0][0]}**" in sanity and "randomised down to the stem" in sanity
        _, _, curves, _ = client.predict(handle_file(CAT), "s12", "top-1", "hirescam", api_name="/faithfulness")
        assert "HiResCAM, pooling off" in curves
        photo_alone = float(re.search(r"The photo alone: ([0-9.]+) %", curves).group(1))
        assert photo_alone == pytest.approx(100 * expected[0][1], abs=0.06)
        svg = client.predict(handle_file(CAT), "s12", api_name="/architecture")
        assert 'data-measured="true"' in svg
        assert [diagram_shapes(svg)[f"stage{number}"] for number in (1, 4)] == [(1, 64, 56, 56), (1, 512, 7, 7)]
