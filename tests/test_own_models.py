"""Your own PoolFormer (issue 16): a fine-tune from the Hub, a local folder or one file, in the app and the CLI.

The stand-in Hub (tests/hub_server.py) serves a fine-tune made with transformers: PoolFormerForImageClassification
with three labels and perturbed random weights, saved with save_pretrained, plus a .bin-only copy and repos that
must be refused (not a PoolFormer, no weights). One online `python app.py` runs against it from an empty Hugging
Face cache with POOLFORMER_MODELS naming that repo, a local save_pretrained folder and one checkpoint file in timm's
key layout; every answer is held to transformers' own model on transformers' own preprocessing.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from conftest import BUNDLED_DIR, REPO, free_port, local_client, running_app
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from hub_server import StandInHub
from PIL import Image
from playwright.sync_api import Browser, expect
from reference import in_layout, reference_model, save_tensors
from test_browser import screenshot, upload
from test_hub_download import TIMEOUTS, cli_error, one_line
from transformers import ViTConfig
from transformers.models.poolformer.image_processing_pil_poolformer import PoolFormerImageProcessorPil

from poolformer.preprocess import load_image, preprocess
from poolformer.weights import create_model

CAT, COFFEE = (REPO / "assets" / "examples" / f"{name}.jpg" for name in ("cat", "coffee"))
HUB_REF, BIN_REF, NOT_POOLFORMER, NO_WEIGHTS = "owner/flowers", "owner/flowers-bin", "owner/vit-flowers", "owner/empty"
HUB_LABELS = {0: "daisy", 1: "rose", 2: "tulip"}
FOLDER_LABELS = {0: "iris", 1: "LABEL_1", 2: "lily"}  # an unnamed class, as transformers names it
PARITY = 1e-5  # max |Δ| of probabilities against transformers
PAGE_TIMEOUT_MS = 30_000


@dataclass
class FineTune:
    """A transformers fine-tune and the labels the app and CLI must show for it."""

    reference: torch.nn.Module
    labels: list[str]

    def probabilities(self, photo: Path = CAT) -> list[float]:
        """transformers' own processor and model on the photo file, independently of our code."""
        processor = PoolFormerImageProcessorPil(crop_pct=0.9, do_convert_rgb=True)
        with torch.inference_mode():
            logits = self.reference(**processor(Image.open(photo), return_tensors="pt")).logits
        return logits.softmax(-1)[0].tolist()

    def ranked(self, photo: Path = CAT) -> list[tuple[str, float]]:
        return sorted(zip(self.labels, self.probabilities(photo)), key=lambda pair: -pair[1])


def fine_tune(seed: int, id2label: dict[int, str]) -> torch.nn.Module:
    """PoolFormerForImageClassification with its own labels and perturbed random weights (not near init)."""
    return reference_model("s12", seed=seed, id2label=id2label)


@dataclass
class World:
    """Everything the module serves and opens."""

    hub_model: FineTune
    folder: Path
    folder_model: FineTune
    file: Path
    file_model: FineTune
    repos: dict[str, dict[str, Path]]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("own-models")
    flowers = fine_tune(31, HUB_LABELS)
    flowers.save_pretrained(root / "flowers")
    (root / "flowers-bin").mkdir()
    flowers.config.to_json_file(root / "flowers-bin" / "config.json")
    torch.save(flowers.state_dict(), root / "flowers-bin" / "pytorch_model.bin")
    (root / "vit").mkdir()
    ViTConfig().to_json_file(root / "vit" / "config.json")
    (root / "empty").mkdir()
    flowers.config.to_json_file(root / "empty" / "config.json")

    local = fine_tune(32, FOLDER_LABELS)
    local.save_pretrained(root / "local-folder")
    unnamed = fine_tune(33, {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"})
    timm_file = save_tensors(in_layout(unnamed.state_dict(), "s12", "timm"), root / "timm_layout.pth")
    repos = {
        HUB_REF: {name: root / "flowers" / name for name in ("config.json", "model.safetensors")},
        BIN_REF: {name: root / "flowers-bin" / name for name in ("config.json", "pytorch_model.bin")},
        NOT_POOLFORMER: {"config.json": root / "vit" / "config.json", "model.safetensors": root / "flowers" / "model.safetensors"},
        NO_WEIGHTS: {"config.json": root / "empty" / "config.json"},
    }
    return World(
        hub_model=FineTune(flowers, list(HUB_LABELS.values())),
        folder=root / "local-folder",
        folder_model=FineTune(local, ["iris", "class 1", "lily"]),
        file=timm_file,
        file_model=FineTune(unnamed, ["class 0", "class 1", "class 2"]),
        repos=repos,
    )


@pytest.fixture(scope="module")
def hub(world: World) -> Iterator[StandInHub]:
    with StandInHub(world.repos, tags={HUB_REF: {"v1"}}) as server:
        yield server


@dataclass
class App:
    url: str
    log: Path


@pytest.fixture(scope="module")
def app(hub: StandInHub, world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    """The app as an operator runs it: POOLFORMER_MODELS names a Hub repo, a folder and a file."""
    scratch = tmp_path_factory.mktemp("own-models-app")
    env = {
        "HF_ENDPOINT": hub.url,
        "HF_HUB_OFFLINE": "0",
        "HF_HOME": str(scratch / "hf-home"),
        "POOLFORMER_MODELS": f"{HUB_REF}, {world.folder},{world.file}",
        **TIMEOUTS,
    }
    with running_app(BUNDLED_DIR, scratch, hf_cache=scratch / "hf-cache", env=env) as url:
        yield App(url, scratch / "app.log")


@pytest.fixture(scope="module")
def client(app: App, tmp_path_factory: pytest.TempPathFactory) -> Client:
    return local_client(app.url, download_files=str(tmp_path_factory.mktemp("own-models-downloads")))


def confidences(label: dict) -> list[tuple[str, float]]:
    return [(entry["label"], entry["confidence"]) for entry in label["confidences"]]


def assert_exact(label: dict, model: FineTune, photo: Path = CAT) -> float:
    """Its labels, best first, with transformers' probabilities; returns max |Δ|."""
    got, expected = confidences(label), model.ranked(photo)
    assert [name for name, _ in got] == [name for name, _ in expected]
    delta = max(abs(p - q) for (_, p), (_, q) in zip(got, expected))
    assert delta <= PARITY
    return delta


# --- the app ---------------------------------------------------------------------------------------


def test_a_hub_fine_tune_answers_with_its_own_labels_exact_to_transformers(
    client: Client, world: World, app: App, hub: StandInHub
) -> None:
    """Runs first: the repo downloads in the background on the first request, with progress in the log."""
    answer = client.predict(handle_file(CAT), HUB_REF, api_name="/predict")
    delta = assert_exact(answer[0], world.hub_model)
    print(f"\n{HUB_REF} /predict on cat.jpg: max |Δ| to transformers {delta:.2e}")
    assert f"**Loaded:** {HUB_REF} (local HF cache)" in answer[-1]  # fetched by the background download
    assert hub.gets("model.safetensors", HUB_REF) == 1
    log = app.log.read_text()
    assert re.search(rf"{HUB_REF}: 100 % of 4\d\.\d MB", log) and f"{HUB_REF}: downloaded into the Hugging Face cache" in log
    # A second photo, now from the cache.
    assert_exact(client.predict(handle_file(COFFEE), HUB_REF, api_name="/predict")[0], world.hub_model, COFFEE)


def test_a_local_folder_and_one_checkpoint_file_answer_exact_to_transformers(client: Client, world: World) -> None:
    folder = client.predict(handle_file(CAT), str(world.folder), api_name="/predict")
    assert_exact(folder[0], world.folder_model)  # id2label's LABEL_1 is shown as "class 1"
    assert f"transformers checkpoint {world.folder}" in folder[-1]
    assert_exact(client.predict(handle_file(CAT), str(world.file), api_name="/predict")[0], world.file_model)


def test_every_view_answers_for_the_hub_fine_tune(client: Client, world: World) -> None:
    model = world.hub_model
    ranked = model.ranked()
    second = ranked[1][0]

    explanation = client.predict(handle_file(CAT), HUB_REF, second, [1, 2, 3, 4], api_name="/explain")
    assert_exact(explanation[0], model)
    captions = explanation[2:10:2]
    assert all(f"the score of **{second}**" in caption for caption in captions)
    summary = explanation[-2]
    # The explained class's probability, as transformers gives it (the table shows it to 0.1 %).
    assert f"| {HUB_REF}, as trained | {100 * dict(ranked)[second]:.1f} % |" in summary

    pooling, identity, chart, ablation_summary, scratch, _ = client.predict(handle_file(CAT), HUB_REF, api_name="/ablate")
    assert_exact(pooling, model)
    ours = create_model(weights=world.folder.parent / "flowers").with_token_mixers("identity")
    assert [name for name, _ in confidences(identity)] == [name for name, _ in ranked_by(ours, CAT)]
    assert not scratch  # empty: no identity twin was trained from scratch for it
    assert Path(chart).is_file() and "identity" in ablation_summary

    table = client.predict(handle_file(CAT), api_name="/compare")[0]
    rows = {row[0]: row for row in table["data"]}
    column = {name: rows[HUB_REF][index] for index, name in enumerate(table["headers"])}
    assert column["top-5"] == " · ".join(f"{name} {100 * probability:.1f} %" for name, probability in ranked)
    assert (column["weights"], column["top-1 (%)"]) == ("3 classes, Hub (HF cache)", "—")  # no accuracy recorded
    assert rows["timm_layout.pth"][1] == "3 classes, local file"

    _, stage1, caption = client.predict(handle_file(CAT), HUB_REF, api_name="/mixer_filter")
    assert Path(stage1).is_file() and "pool" in caption.lower()

    svg = client.predict(handle_file(CAT), HUB_REF, api_name="/architecture")
    assert f"{HUB_REF}: 12 MetaFormer blocks" in svg and 'class="head" data-shape="1,3"' in svg

    picture, token = client.predict(handle_file(CAT), HUB_REF, 4, 3, 3, api_name="/token")
    assert Path(picture).is_file() and "**Stage 4, token row 3, column 3** of 7 × 7" in token


def ranked_by(model: torch.nn.Module, photo: Path) -> list[tuple[str, float]]:
    """Our own model's ranking (for the ablated twin, which transformers has no counterpart of)."""
    with torch.inference_mode():
        probabilities = model(preprocess(load_image(photo), model.variant.crop_pct))[0].softmax(-1).tolist()
    return sorted(zip(model.class_names, probabilities), key=lambda pair: -pair[1])


def test_the_picker_offers_them_after_official_and_bundled_and_shows_their_labels(
    browser: Browser, app: App, world: World
) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(app.url)
    expect(page.locator("#status")).to_contain_text("Loaded", timeout=PAGE_TIMEOUT_MS)
    page.locator("#model input").click()
    options = [text.strip() for text in page.get_by_role("option").all_inner_texts()]
    assert [option.split(" · ")[0] for option in options[-3:]] == [HUB_REF, "local-folder", "timm_layout.pth"]
    assert options[:5] == [f"PoolFormer-{v} · ImageNet-1k · download from the Hub" for v in ("S12", "S24", "S36", "M36", "M48")]
    assert options[-3] == f"{HUB_REF} · 3 classes · in local cache"
    page.get_by_role("option", name=options[-3]).click()
    expect(page.locator("#status")).to_contain_text(f"{HUB_REF} (local HF cache)", timeout=PAGE_TIMEOUT_MS)
    upload(page, CAT)
    page.locator("#predict-button").click()
    labels = page.locator("#top5 .confidence-set")
    expect(labels).to_have_count(3, timeout=PAGE_TIMEOUT_MS)
    expect(page.locator("#top5 h2")).to_have_text(world.hub_model.ranked()[0][0])
    screenshot(page, "own-model-predict")

    page.get_by_role("tab", name="Where it looks").click()
    page.locator("#explain-button").click()
    expect(page.locator("#explain-top5 .confidence-set")).to_have_count(3, timeout=PAGE_TIMEOUT_MS)
    page.locator("#target input").click()
    menu = [text.strip() for text in page.get_by_role("option").all_inner_texts()]
    assert menu[1:] == [name for name, _ in world.hub_model.ranked()]  # after "the top-1 class"
    page.keyboard.press("Escape")
    screenshot(page, "own-model-where-it-looks")
    page.close()


# --- the CLI ---------------------------------------------------------------------------------------


def run_cli(hub: StandInHub, cache: Path, *args: str, endpoint: str | None = None) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "HF_ENDPOINT": endpoint or hub.url,
        "HF_HUB_CACHE": str(cache),
        "HF_HOME": str(cache.parent / "hf-home"),
        "HF_HUB_OFFLINE": "0",
        "PYTHONPATH": str(REPO),
        **TIMEOUTS,
    }
    command = [sys.executable, "-m", "poolformer", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)


def cli_top(result: subprocess.CompletedProcess) -> list[tuple[str, float]]:
    assert result.returncode == 0, result.stderr
    [answer] = json.loads(result.stdout)
    return [(entry["label"], entry["prob"]) for entry in answer["top"]]


def assert_cli_exact(result: subprocess.CompletedProcess, model: FineTune) -> None:
    got, expected = cli_top(result), model.ranked()
    assert [name for name, _ in got] == [name for name, _ in expected]
    assert max(abs(p - q) for (_, p), (_, q) in zip(got, expected)) <= PARITY


@pytest.mark.parametrize("ref", [HUB_REF, f"{HUB_REF}@v1", BIN_REF])
def test_cli_predicts_with_a_hub_repo(hub: StandInHub, world: World, tmp_path: Path, ref: str) -> None:
    """A repo id, a pinned revision, and a repo that publishes only pytorch_model.bin (read with weights_only)."""
    result = run_cli(hub, tmp_path / "hf-cache", "predict", "--weights", ref, "--json", str(CAT))
    assert_cli_exact(result, world.hub_model)


def test_cli_predicts_with_a_local_folder_and_evaluates_by_class_name(hub: StandInHub, world: World, tmp_path: Path) -> None:
    assert_cli_exact(run_cli(hub, tmp_path / "cache", "predict", "--weights", str(world.folder), "--json", str(CAT)), world.folder_model)
    # eval matches class folders to its class names; the answer is counted from transformers' own predictions.
    photos = [REPO / "assets" / "examples" / f"{name}.jpg" for name in ("cat", "coffee", "rocket", "astronaut")]
    hits = 0
    for number, photo in enumerate(photos):
        truth = HUB_LABELS[number % 3]
        (tmp_path / "val" / truth).mkdir(parents=True, exist_ok=True)
        (tmp_path / "val" / truth / photo.name).symlink_to(photo)
        hits += world.hub_model.ranked(photo)[0][0] == truth
    result = run_cli(hub, tmp_path / "cache", "eval", str(tmp_path / "val"), "--weights", HUB_REF, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"top1": pytest.approx(hits / 4), "top5": 1.0, "n": 4}


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        (NOT_POOLFORMER, f"{NOT_POOLFORMER} is not a PoolFormer: its config.json has model_type 'vit'"),
        (NO_WEIGHTS, f"{NO_WEIGHTS} holds no weights: neither model.safetensors nor pytorch_model.bin"),
        ("owner/nothing-here", "owner/nothing-here was not found on the Hub"),
        (f"{HUB_REF}@v2", f"{HUB_REF} has no revision 'v2' on the Hub"),
        ("unreachable", f"{HUB_REF} is not in the local Hugging Face cache and the Hub can't be reached"),
    ],
    ids=["not-a-poolformer", "no-weights", "no-such-repo", "no-such-revision", "hub-unreachable"],
)
def test_cli_refusals_are_one_clear_line(hub: StandInHub, tmp_path: Path, ref: str, expected: str) -> None:
    """"unreachable": HF_ENDPOINT points at a port nobody listens on, as without network."""
    endpoint = f"http://127.0.0.1:{free_port()}" if ref == "unreachable" else None
    weights = HUB_REF if ref == "unreachable" else ref
    message = cli_error(run_cli(hub, tmp_path / "hf-cache", "predict", "--weights", weights, str(CAT), endpoint=endpoint))
    assert expected in message
    assert hub.gets("model.safetensors", NOT_POOLFORMER) == 0  # refused on its config alone


def test_cli_damaged_cached_repo_names_the_file_and_the_fix(hub: StandInHub, world: World, tmp_path: Path) -> None:
    cache = tmp_path / "hf-cache"
    assert_cli_exact(run_cli(hub, cache, "predict", "--weights", HUB_REF, "--json", str(CAT)), world.hub_model)
    [entry] = (cache / "models--owner--flowers").glob("snapshots/*/model.safetensors")
    blob = entry.resolve()
    blob.write_bytes(blob.read_bytes()[:1000])  # truncated, as by a full disk
    message = cli_error(run_cli(hub, cache, "predict", "--weights", HUB_REF, str(CAT)))
    assert str(blob) in message and "delete it" in message and f"hf cache verify {HUB_REF}" in message


def test_app_refuses_a_broken_repo_in_one_line_and_keeps_serving(client: Client, world: World) -> None:
    """An API value that is not in the picker is refused: visitors can't name repos unless allowed."""
    with pytest.raises(AppError) as error:
        client.predict(handle_file(CAT), NOT_POOLFORMER, api_name="/predict")
    assert f"unknown model '{NOT_POOLFORMER}'" in one_line(error)
    assert_exact(client.predict(handle_file(CAT), HUB_REF, api_name="/predict")[0], world.hub_model)


def test_a_broken_added_model_stops_the_app_with_one_clear_line(tmp_path: Path) -> None:
    """An operator's typo is caught at start, not by the first visitor."""
    missing = tmp_path / "missing.safetensors"
    result = subprocess.run(
        [sys.executable, "app.py", "--model", str(missing)],
        cwd=REPO,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "cache"), "GRADIO_SERVER_PORT": str(free_port())},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: model {missing}: weights file {missing} does not exist")
