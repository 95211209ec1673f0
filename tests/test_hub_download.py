"""The download path, end to end, against a local stand-in for the Hub (tests/hub_server.py).

The CLI and one online `python app.py` are pointed at it with HF_ENDPOINT and start from an empty
HF_HUB_CACHE, so real huggingface_hub code downloads, resumes, fails and caches exactly as it would
against huggingface.co. The served weights are transformers' PoolFormer with random weights, rounded to
fp16 to keep the files small; every answer is checked against that transformers model.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import httpx  # gradio's own HTTP client
import pytest
import torch
import yaml
from conftest import BUNDLED_DIR, BUNDLED_MODEL, REPO, free_port, local_client, running_app
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from hub_server import StandInHub
from playwright.sync_api import Browser, expect
from reference import fake_hub_snapshot, reference_model
from safetensors.torch import save_file
from test_browser import screenshot

from poolformer.model import VARIANTS
from poolformer.preprocess import load_image, preprocess
from poolformer.weights import create_model

CAT = REPO / "assets" / "examples" / "cat.jpg"
TIMEOUTS = {"HF_HUB_ETAG_TIMEOUT": "5"}  # the Hub's first answer, for huggingface_hub (default 10 s) as for our probe
CLEAR_ERROR_WITHIN_S = 30
PAGE_TIMEOUT_MS = 30_000
# The online app runs with a small upload limit and a fast temp-file sweep, to show both settings act.
ONLINE_UPLOAD_LIMIT = "2mb"
ONLINE_TEMP_FILE_SWEEP = (1, 6)  # every second, delete files older than 6 s


@dataclass
class OfficialRepo:
    """What the stand-in Hub serves for one variant, and the transformers model holding the same weights."""

    variant: str
    files: dict[str, Path]
    reference: torch.nn.Module

    @property
    def repo(self) -> str:
        return VARIANTS[self.variant].hub_repo

    def top5(self, photo: Path = CAT) -> list[tuple[str, float]]:
        """transformers' top-5 on our preprocessing, computed here independently of the app and CLI."""
        pixels = preprocess(load_image(photo), VARIANTS[self.variant].crop_pct)
        with torch.inference_mode():
            probabilities = self.reference(pixel_values=pixels).logits[0].softmax(-1)
        values, indices = probabilities.topk(5)
        return [(self.reference.config.id2label[i], v) for v, i in zip(values.tolist(), indices.tolist())]


def official_repo(folder: Path, variant: str, weights_name: str, seed: int) -> OfficialRepo:
    """A transformers PoolFormer saved as the Hub repo has it: config.json plus fp16 weights in `weights_name`."""
    reference = reference_model(variant, seed=seed)
    half = {key: value.half().contiguous() for key, value in reference.state_dict().items()}
    reference.load_state_dict({key: value.float() for key, value in half.items()})  # the served values exactly
    folder.mkdir(parents=True)
    reference.config.to_json_file(folder / "config.json")
    if weights_name.endswith(".safetensors"):
        save_file(half, folder / weights_name, metadata={"format": "pt"})
    else:
        torch.save(half, folder / weights_name)
    return OfficialRepo(
        variant, {"config.json": folder / "config.json", weights_name: folder / weights_name}, reference
    )


@pytest.fixture(scope="module")
def repos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, OfficialRepo]:
    """S12 with model.safetensors, S24 with only pytorch_model.bin, as on the Hub. M36/M48 are never
    served whole: the tests that ask for them fail before any file is read."""
    root = tmp_path_factory.mktemp("hub-files")
    return {
        "s12": official_repo(root / "s12", "s12", "model.safetensors", seed=21),
        "s24": official_repo(root / "s24", "s24", "pytorch_model.bin", seed=22),
    }


@pytest.fixture(scope="module")
def hub(repos: dict[str, OfficialRepo]) -> Iterator[StandInHub]:
    with StandInHub({official.repo: official.files for official in repos.values()}) as server:
        yield server


@pytest.fixture(autouse=True)
def healthy_hub_afterwards(hub: StandInHub) -> Iterator[None]:
    yield
    hub.heal()


@dataclass
class OnlineApp:
    url: str
    hf_cache: Path
    hf_home: Path
    gradio_temp: Path
    log: Path


@pytest.fixture(scope="module")
def online_app(hub: StandInHub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OnlineApp]:
    """The one online app server of the suite: a fresh Space with an empty HF cache and the Hub reachable.

    It starts while the Hub holds S12's weights halfway, so the first test sees the download in progress.
    Its model cache holds one model, so a test can make the app read a variant from disk again.
    """
    scratch = tmp_path_factory.mktemp("online-app")
    env = {
        "HF_ENDPOINT": hub.url,
        "HF_HUB_OFFLINE": "0",
        "HF_HOME": str(scratch / "hf-home"),
        "POOLFORMER_MODEL_CACHE_SIZE": "1",
        "POOLFORMER_MAX_UPLOAD": ONLINE_UPLOAD_LIMIT,
        "POOLFORMER_TEMP_FILE_SWEEP": ",".join(map(str, ONLINE_TEMP_FILE_SWEEP)),
        **TIMEOUTS,
    }
    hub.set_mode("held")
    with running_app(BUNDLED_DIR, scratch, hf_cache=scratch / "hf-cache", env=env) as url:
        yield OnlineApp(url, scratch / "hf-cache", scratch / "hf-home", scratch / "gradio", scratch / "app.log")


@pytest.fixture(scope="module")
def client(online_app: OnlineApp) -> Client:
    """Output pictures are not fetched: these tests read labels and text, and the sweep may remove pictures."""
    return local_client(online_app.url)


def top5_of(label: dict) -> list[tuple[str, float]]:
    return [(entry["label"], entry["confidence"]) for entry in label["confidences"]]


def assert_same_top5(label: dict, expected: list[tuple[str, float]]) -> None:
    got = top5_of(label)
    assert [name for name, _ in got] == [name for name, _ in expected]
    assert [p for _, p in got] == pytest.approx([p for _, p in expected], abs=1e-5)


def bundled_top5() -> list[tuple[str, float]]:
    model = create_model(weights=BUNDLED_DIR / "poolformer_s12_imagenette.safetensors")
    with torch.inference_mode():
        probabilities = model(preprocess(load_image(CAT), model.variant.crop_pct))[0].softmax(-1)
    values, indices = probabilities.topk(5)
    return [(model.class_names[i], v) for v, i in zip(values.tolist(), indices.tolist())]


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert message and "\n" not in message and "upstream Gradio app has raised" not in message
    return message


def cached_weights(cache: Path, official: OfficialRepo, name: str) -> list[Path]:
    """Snapshot entries named `name` for the repo; partial downloads anywhere in the cache fail the test."""
    assert not list(cache.rglob("*.incomplete")), "a partial download was left in the cache"
    return list((cache / f"models--{official.repo.replace('/', '--')}").glob(f"snapshots/*/{name}"))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- the Space's configuration --------------------------------------------------------------------------

# Which weights file each official repo publishes (s24 and s36 have only the .bin).
PUBLISHED_WEIGHTS = {"s12": "model.safetensors", "s24": "pytorch_model.bin", "s36": "pytorch_model.bin",
                     "m36": "model.safetensors", "m48": "model.safetensors"}  # fmt: skip


def test_space_front_matter_preloads_and_links_the_five_official_repos() -> None:
    front_matter = yaml.safe_load((REPO / "README.md").read_text(encoding="utf-8").split("---")[1])
    assert (front_matter["sdk"], front_matter["sdk_version"], front_matter["app_file"]) == (
        "gradio",
        version("gradio"),
        "app.py",
    )
    repos = [variant.hub_repo for variant in VARIANTS.values()]
    assert front_matter["models"] == repos
    preloads = [line.split(" ") for line in front_matter["preload_from_hub"]]
    assert [repo for repo, _ in preloads] == repos
    for (repo, files), variant in zip(preloads, VARIANTS):
        assert files.split(",") == ["config.json", PUBLISHED_WEIGHTS[variant]], repo


# --- the app ---------------------------------------------------------------------------------------


def test_fresh_online_start_serves_at_once_and_official_s12_becomes_the_default(
    online_app: OnlineApp, client: Client, hub: StandInHub, repos: dict[str, OfficialRepo], browser: Browser
) -> None:
    """Runs first: the Hub holds S12's weights halfway until this test releases them."""
    # Served at once by the bundled model, while S12 can't possibly have landed: nothing waits for it.
    answer = client.predict(handle_file(CAT), api_name="/predict")  # the model left out: the default
    assert_same_top5(answer[0], bundled_top5())
    assert "Downloading the official PoolFormer-S12 weights in the background" in answer[-1]
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(online_app.url)
    expect(page.locator("#status")).to_contain_text("in the background", timeout=PAGE_TIMEOUT_MS)
    expect(page.locator("#model input")).to_have_value("PoolFormer-S12 · Imagenette (bundled)")
    screenshot(page, "online-start-downloading")

    hub.release()
    # The open page's status line follows the download to its end...
    expect(page.locator("#status")).to_contain_text("have been downloaded", timeout=PAGE_TIMEOUT_MS)
    assert cached_weights(online_app.hf_cache, repos["s12"], "model.safetensors")
    # ...API calls that leave the model out now get official S12...
    answer = client.predict(handle_file(CAT), api_name="/predict")
    assert_same_top5(answer[0], repos["s12"].top5())
    assert "sail/poolformer_s12" in answer[-1]
    # ...and so does the picker on a new visit (a reload would reopen the view its address links to: bundled).
    page.goto(online_app.url)
    expect(page.locator("#model input")).to_have_value("PoolFormer-S12 · ImageNet-1k · in local cache")
    expect(page.locator("#status")).to_contain_text("sail/poolformer_s12 (local HF cache)", timeout=PAGE_TIMEOUT_MS)
    screenshot(page, "online-start-downloaded")
    page.close()
    log = online_app.log.read_text()
    assert "sail/poolformer_s12: 100 % of 23.8 MB" in log
    assert "sail/poolformer_s12: downloaded into the Hugging Face cache" in log


def test_bin_only_variant_downloads_on_demand(
    client: Client, hub: StandInHub, repos: dict[str, OfficialRepo], online_app: OnlineApp
) -> None:
    answer = client.predict(handle_file(CAT), "s24", api_name="/predict")
    assert_same_top5(answer[0], repos["s24"].top5())
    assert "sail/poolformer_s24" in answer[-1]
    assert hub.gets("pytorch_model.bin") >= 1
    assert ("HEAD", "/sail/poolformer_s24/resolve/main/model.safetensors") in hub.requests  # asked, then fell back
    [weights] = cached_weights(online_app.hf_cache, repos["s24"], "pytorch_model.bin")
    assert sha256(weights) == sha256(repos["s24"].files["pytorch_model.bin"])


def forget_s24(client: Client, online_app: OnlineApp) -> None:
    """Out of the HF cache, and out of the app's one-model memory cache (another model takes its place)."""
    for path in sorted(online_app.hf_cache.glob("models--sail--poolformer_s24/**/*"), reverse=True):
        path.unlink() if path.is_file() or path.is_symlink() else path.rmdir()
    client.predict(handle_file(CAT), BUNDLED_MODEL, api_name="/predict")


def test_cut_download_fails_clearly_leaves_nothing_and_the_next_request_succeeds(
    client: Client, hub: StandInHub, repos: dict[str, OfficialRepo], online_app: OnlineApp
) -> None:
    forget_s24(client, online_app)
    hub.set_mode("cut")
    with pytest.raises(AppError) as error:
        client.predict(handle_file(CAT), "s24", api_name="/predict")
    message = one_line(error)
    assert "downloading pytorch_model.bin failed" in message and "nothing partial was kept" in message
    assert not cached_weights(online_app.hf_cache, repos["s24"], "pytorch_model.bin")
    assert not list(
        online_app.hf_cache.glob(
            "models--sail--poolformer_s24/blobs/" + hub.etag(repos["s24"].files["pytorch_model.bin"])
        )
    )
    assert_same_top5(client.predict(handle_file(CAT), BUNDLED_MODEL, api_name="/predict")[0], bundled_top5())

    hub.heal()
    answer = client.predict(handle_file(CAT), "s24", api_name="/predict")
    assert_same_top5(answer[0], repos["s24"].top5())
    [weights] = cached_weights(online_app.hf_cache, repos["s24"], "pytorch_model.bin")
    assert sha256(weights) == sha256(repos["s24"].files["pytorch_model.bin"])


def test_silent_hub_gives_a_clear_error_in_time_while_other_visitors_are_served(
    online_app: OnlineApp, hub: StandInHub
) -> None:
    hub.set_mode("silent")
    waiting, other = (local_client(online_app.url) for _ in range(2))
    started = time.monotonic()
    job = waiting.submit(handle_file(CAT), "m48", api_name="/predict")
    served = other.predict(handle_file(CAT), BUNDLED_MODEL, api_name="/predict")
    assert not job.done(), "the other visitor was served only after the Hub gave up"
    assert_same_top5(served[0], bundled_top5())
    with pytest.raises(AppError) as error:
        job.result(timeout=CLEAR_ERROR_WITHIN_S)
    assert time.monotonic() - started < CLEAR_ERROR_WITHIN_S
    message = one_line(error)
    assert "sail/poolformer_m48" in message and "the Hub did not answer within 5 s" in message


def test_hub_5xx_gives_a_clear_error(client: Client, hub: StandInHub) -> None:
    hub.set_mode("error")
    with pytest.raises(AppError) as error:
        client.predict(handle_file(CAT), "m36", api_name="/ablate")
    message = one_line(error)
    assert "sail/poolformer_m36" in message and "the Hub answered HTTP 503" in message
    assert_same_top5(client.predict(handle_file(CAT), BUNDLED_MODEL, api_name="/predict")[0], bundled_top5())


def test_damaged_cached_weights_name_the_file_and_the_fix(
    client: Client, repos: dict[str, OfficialRepo], online_app: OnlineApp
) -> None:
    client.predict(handle_file(CAT), "s12", api_name="/predict")  # cached (downloaded if need be)
    client.predict(handle_file(CAT), BUNDLED_MODEL, api_name="/predict")  # and out of the app's memory
    [snapshot_entry] = cached_weights(online_app.hf_cache, repos["s12"], "model.safetensors")
    blob = snapshot_entry.resolve()
    blob.write_bytes(blob.read_bytes()[: blob.stat().st_size // 2])  # truncated, as by a full disk

    with pytest.raises(AppError) as error:
        client.predict(handle_file(CAT), "s12", api_name="/predict")
    message = one_line(error)
    assert str(blob) in message and "delete it" in message and "hf cache verify sail/poolformer_s12" in message
    assert_same_top5(client.predict(handle_file(CAT), BUNDLED_MODEL, api_name="/predict")[0], bundled_top5())

    blob.unlink()  # the fix the message gives: the weights download again on next use
    assert_same_top5(client.predict(handle_file(CAT), "s12", api_name="/predict")[0], repos["s12"].top5())


def test_uploads_over_the_configured_limit_are_refused_with_413(online_app: OnlineApp) -> None:
    """This server runs with POOLFORMER_MAX_UPLOAD=2mb; the default limit is tested on the shared server."""
    upload = f"{online_app.url}gradio_api/upload"
    too_big = httpx.post(upload, files={"files": ("big.jpg", b"\xff" * 2_100_000)}, timeout=30)
    assert too_big.status_code == 413
    assert httpx.post(upload, files={"files": ("cat.jpg", CAT.read_bytes())}, timeout=30).status_code == 200


def test_temporary_files_are_swept(online_app: OnlineApp) -> None:
    """This server sweeps every second for files older than 6 s (POOLFORMER_TEMP_FILE_SWEEP=1,6).

    The upload is unique: Gradio stores uploads by content, and the example photos are kept for good.
    """
    response = httpx.post(
        f"{online_app.url}gradio_api/upload", files={"files": ("photo.jpg", os.urandom(4096))}, timeout=30
    )
    [uploaded] = map(Path, response.json())
    assert uploaded.is_file() and uploaded.is_relative_to(online_app.gradio_temp)
    frequency, age = ONLINE_TEMP_FILE_SWEEP
    deadline = time.monotonic() + age + 5 * frequency + 5
    while uploaded.exists() and time.monotonic() < deadline:
        time.sleep(frequency)
    assert not uploaded.exists()


def test_hf_cache_token_and_repository_are_never_served(online_app: OnlineApp, repos: dict[str, OfficialRepo]) -> None:
    online_app.hf_home.mkdir(exist_ok=True)
    (online_app.hf_home / "token").write_text("hf_not_a_real_token")
    [weights] = cached_weights(online_app.hf_cache, repos["s24"], "pytorch_model.bin")
    gradio_temp = online_app.hf_cache.parent / "gradio"
    for path in (
        weights,
        weights.resolve(),
        online_app.hf_home / "token",
        f"{gradio_temp}/../hf-cache/{weights.relative_to(online_app.hf_cache)}",  # a way out of the temp dir
        REPO / "app.py",
        REPO / "assets" / "checkpoints" / "poolformer_s12_imagenette.safetensors",
    ):
        response = httpx.get(f"{online_app.url}gradio_api/file={path}", timeout=30)
        assert response.status_code in (403, 404), path


# --- the CLI ---------------------------------------------------------------------------------------


def run_cli(endpoint: str, cache: Path, *args: str, offline: bool = False) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "HF_ENDPOINT": endpoint,
        "HF_HUB_CACHE": str(cache),
        "HF_HOME": str(cache.parent / "hf-home"),
        "HF_HUB_OFFLINE": "1" if offline else "0",
        "PYTHONPATH": str(REPO),
        **TIMEOUTS,
    }
    command = [sys.executable, "-m", "poolformer", "predict", "--json", *args, str(CAT)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)


def assert_cli_top5(result: subprocess.CompletedProcess, official: OfficialRepo) -> None:
    assert result.returncode == 0, result.stderr
    [answer] = json.loads(result.stdout)
    got = [(entry["label"], entry["prob"]) for entry in answer["top"]]
    expected = official.top5()
    assert [name for name, _ in got] == [name for name, _ in expected]
    assert [p for _, p in got] == pytest.approx([p for _, p in expected], abs=1e-5)


def cli_error(result: subprocess.CompletedProcess) -> str:
    """The CLI's one `error:` line (huggingface_hub's own retry warnings may precede it)."""
    assert result.returncode == 2, result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and result.stderr.strip().endswith(errors[0]), result.stderr
    return errors[0]


def test_cli_fresh_online_start_downloads_official_s12_by_default(
    hub: StandInHub, repos: dict[str, OfficialRepo], tmp_path: Path
) -> None:
    result = run_cli(hub.url, tmp_path / "hf-cache")
    assert_cli_top5(result, repos["s12"])
    assert cached_weights(tmp_path / "hf-cache", repos["s12"], "model.safetensors")


def test_cli_cut_download_fails_clearly_then_the_bin_only_variant_downloads_on_demand(
    hub: StandInHub, repos: dict[str, OfficialRepo], tmp_path: Path
) -> None:
    """Two cases in one, to save a CLI start: S24 publishes only pytorch_model.bin."""
    hub.set_mode("cut")
    message = cli_error(run_cli(hub.url, tmp_path / "hf-cache", "--variant", "s24"))
    assert "downloading pytorch_model.bin failed" in message and "nothing partial was kept" in message
    assert not cached_weights(tmp_path / "hf-cache", repos["s24"], "pytorch_model.bin")
    hub.heal()
    assert_cli_top5(run_cli(hub.url, tmp_path / "hf-cache", "--variant", "s24"), repos["s24"])
    [weights] = cached_weights(tmp_path / "hf-cache", repos["s24"], "pytorch_model.bin")
    assert sha256(weights) == sha256(repos["s24"].files["pytorch_model.bin"])


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("silent", "the Hub did not answer within 5 s"),
        ("error", "the Hub answered HTTP 503"),
        ("unreachable", "the Hub can't be reached"),
    ],
    ids=["hub-never-answers", "hub-5xx", "no-network"],
)
def test_cli_hub_failures_give_a_clear_error_in_time(hub: StandInHub, tmp_path: Path, mode: str, expected: str) -> None:
    """"unreachable": HF_ENDPOINT points at a port nobody listens on, as without network."""
    endpoint = f"http://127.0.0.1:{free_port()}" if mode == "unreachable" else hub.url
    hub.set_mode("ok" if mode == "unreachable" else mode)
    started = time.monotonic()
    message = cli_error(run_cli(endpoint, tmp_path / "hf-cache", "--variant", "m48"))
    assert time.monotonic() - started < CLEAR_ERROR_WITHIN_S
    assert expected in message and "sail/poolformer_m48" in message


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_cli_damaged_cached_weights_name_the_file_and_the_fix(
    hub: StandInHub, repos: dict[str, OfficialRepo], tmp_path: Path, damage: str
) -> None:
    """A cache laid out by hand, offline: the file is named with the two ways to repair it."""
    snapshot = fake_hub_snapshot(tmp_path / "hf-cache", "sail/poolformer_s12")
    (snapshot / "config.json").write_bytes(repos["s12"].files["config.json"].read_bytes())
    good = repos["s12"].files["model.safetensors"].read_bytes()
    broken = good[: len(good) // 2] if damage == "truncated" else os.urandom(4096)
    (snapshot / "model.safetensors").write_bytes(broken)
    message = cli_error(run_cli(hub.url, tmp_path / "hf-cache", offline=True))
    assert str(snapshot / "model.safetensors") in message
    assert "delete it" in message and "hf cache verify sail/poolformer_s12" in message
