"""Visitors' own models (POOLFORMER_ALLOW_VISITOR_MODELS=1): any Hub repo id a visitor names, within bounds.

One online `python app.py` with visitor models on and a 30 MB cap (POOLFORMER_VISITOR_MAX_MB; 400 by default)
runs against the stand-in Hub. An allowed repo (fp16 safetensors, 23 MB) loads and answers exact to transformers;
a repo that is not a PoolFormer, one that publishes only a pickle and one over the cap are refused in one line
before their weights are asked for; two downloads for visitors never run at once; a visitor's name is never
read as a path on the server.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from conftest import BUNDLED_DIR, REPO, local_client, running_app
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from hub_server import StandInHub
from playwright.sync_api import Browser, expect
from safetensors.torch import save_file
from test_browser import screenshot, upload
from test_hub_download import TIMEOUTS, one_line
from test_own_models import HUB_LABELS, PAGE_TIMEOUT_MS, FineTune, assert_exact, fine_tune
from transformers import ViTConfig

from poolformer.explorer.catalogue import VISITOR_MAX_MB, visitor_rules

CAT = REPO / "assets" / "examples" / "cat.jpg"
CAP_MB = 30  # this server's cap: S12 in fp16 (23 MB) fits, in fp32 (46 MB) does not
ALLOWED, SECOND, THIRD = "visitor/flowers", "visitor/flowers-2", "visitor/flowers-3"
NOT_POOLFORMER, PICKLE_ONLY, OVERSIZED = "visitor/vit", "visitor/pickle-only", "visitor/too-big"


def saved_fp16(model: torch.nn.Module, folder: Path) -> dict[str, Path]:
    """config.json and fp16 model.safetensors; the reference model takes the served (rounded) values."""
    half = {key: value.half().contiguous() for key, value in model.state_dict().items()}
    model.load_state_dict({key: value.float() for key, value in half.items()})
    folder.mkdir(parents=True)
    model.config.to_json_file(folder / "config.json")
    save_file(half, folder / "model.safetensors", metadata={"format": "pt"})
    return {"config.json": folder / "config.json", "model.safetensors": folder / "model.safetensors"}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, FineTune], dict[str, dict[str, Path]]]:
    root = tmp_path_factory.mktemp("visitor-repos")
    served, repos = {}, {}
    for seed, ref in enumerate((ALLOWED, SECOND, THIRD), start=41):
        model = fine_tune(seed, HUB_LABELS)
        repos[ref] = saved_fp16(model, root / ref)
        served[ref] = FineTune(model, list(HUB_LABELS.values()))
    big = fine_tune(44, HUB_LABELS)
    big.save_pretrained(root / OVERSIZED)  # fp32: 47 MB
    repos[OVERSIZED] = {name: root / OVERSIZED / name for name in ("config.json", "model.safetensors")}
    (root / PICKLE_ONLY).mkdir(parents=True)
    big.config.to_json_file(root / PICKLE_ONLY / "config.json")
    torch.save(big.state_dict(), root / PICKLE_ONLY / "pytorch_model.bin")
    repos[PICKLE_ONLY] = {name: root / PICKLE_ONLY / name for name in ("config.json", "pytorch_model.bin")}
    (root / NOT_POOLFORMER).mkdir(parents=True)
    ViTConfig().to_json_file(root / NOT_POOLFORMER / "config.json")
    repos[NOT_POOLFORMER] = {"config.json": root / NOT_POOLFORMER / "config.json", "model.safetensors": repos[ALLOWED]["model.safetensors"]}
    return served, repos


@pytest.fixture(scope="module")
def hub(models) -> Iterator[StandInHub]:
    with StandInHub(models[1]) as server:
        yield server


@pytest.fixture(autouse=True)
def healthy_hub_afterwards(hub: StandInHub) -> Iterator[None]:
    yield
    hub.heal()


@pytest.fixture(scope="module")
def app_url(hub: StandInHub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    scratch = tmp_path_factory.mktemp("visitor-app")
    env = {
        "HF_ENDPOINT": hub.url,
        "HF_HUB_OFFLINE": "0",
        "HF_HOME": str(scratch / "hf-home"),
        "POOLFORMER_ALLOW_VISITOR_MODELS": "1",
        "POOLFORMER_VISITOR_MAX_MB": str(CAP_MB),
        **TIMEOUTS,
    }
    with running_app(BUNDLED_DIR, scratch, hf_cache=scratch / "hf-cache", env=env) as url:
        yield url


@pytest.fixture(scope="module")
def client(app_url: str) -> Client:
    return local_client(app_url)


def test_the_default_cap_fits_every_poolformer_and_visitors_get_safetensors_only() -> None:
    """M48 in fp32, the largest PoolFormer, is 295 MB (REFERENCE.md: 73.5 M parameters)."""
    assert VISITOR_MAX_MB == 400 and 73.5e6 * 4 < VISITOR_MAX_MB * 1e6
    rules = visitor_rules()
    assert rules.weight_files == ("model.safetensors",) and rules.one_at_a_time


def test_an_allowed_repo_loads_and_answers_exact_to_transformers(client: Client, models, hub: StandInHub) -> None:
    served, _ = models
    answer = client.predict(handle_file(CAT), ALLOWED, api_name="/predict")
    assert_exact(answer[0], served[ALLOWED])
    assert f"**Loaded:** {ALLOWED} (local HF cache)" in answer[-1]
    assert hub.gets("model.safetensors", ALLOWED) == 1


@pytest.mark.parametrize(
    ("ref", "weights", "expected"),
    [
        (NOT_POOLFORMER, "model.safetensors", f"{NOT_POOLFORMER} is not a PoolFormer: its config.json has model_type 'vit'"),
        (PICKLE_ONLY, "pytorch_model.bin", f"{PICKLE_ONLY} was not downloaded: it publishes only pytorch_model.bin; "
                                           "this server accepts only model.safetensors"),
        (OVERSIZED, "model.safetensors", f"{OVERSIZED} was not downloaded: its model.safetensors is 46 MB, "
                                         f"over this server's {CAP_MB} MB limit"),  # S12, 3 classes, fp32
    ],
    ids=["not-a-poolformer", "pickle-only", "oversized"],
)
def test_refused_before_anything_large_is_downloaded(
    client: Client, hub: StandInHub, ref: str, weights: str, expected: str
) -> None:
    with pytest.raises(AppError) as error:
        client.predict(handle_file(CAT), ref, api_name="/predict")
    assert expected in one_line(error)
    assert hub.gets(weights, ref) == 0 and hub.gets("config.json", ref) <= 1  # a HEAD and the small config at most
    assert len(client.predict(handle_file(CAT), api_name="/predict")[0]["confidences"]) == 5  # still serving


def test_one_download_for_visitors_at_a_time(app_url: str, hub: StandInHub, models) -> None:
    served, _ = models
    first, second = (local_client(app_url) for _ in range(2))
    hub.set_mode("held")  # the first repo's weights stop halfway until released
    job = first.submit(handle_file(CAT), SECOND, api_name="/predict")
    deadline = time.monotonic() + 30
    while hub.gets("model.safetensors", SECOND) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    with pytest.raises(AppError) as error:
        second.predict(handle_file(CAT), THIRD, api_name="/predict")
    message = one_line(error)
    assert f"another model opened from this page is downloading ({SECOND}, " in message
    assert "this server fetches one at a time: try again in a minute" in message
    assert hub.gets("model.safetensors", THIRD) == 0
    hub.release()
    assert_exact(job.result(timeout=60)[0], served[SECOND])
    assert_exact(second.predict(handle_file(CAT), THIRD, api_name="/predict")[0], served[THIRD])  # now its turn


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (str(BUNDLED_DIR / "poolformer_s12_imagenette.safetensors"), "unknown model"),
        ("assets/checkpoints", "assets/checkpoints was not found on the Hub"),  # a folder here, asked of the Hub
        ("not a repo", "unknown model"),
    ],
    ids=["absolute-path", "relative-path", "not-an-id"],
)
def test_a_visitor_name_is_never_a_path_on_the_server(client: Client, value: str, expected: str) -> None:
    with pytest.raises(AppError) as error:
        client.predict(handle_file(CAT), value, api_name="/predict")
    assert expected in one_line(error)


def test_a_visitor_types_a_repo_id_and_sees_its_labels(browser: Browser, app_url: str, models) -> None:
    served, _ = models
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(app_url)
    expect(page.locator("#status")).to_contain_text("Loaded", timeout=PAGE_TIMEOUT_MS)
    box = page.locator("#visitor-model input")
    box.fill(ALLOWED)
    page.locator("#visitor-model-button").click()
    expect(page.locator("#model input")).to_have_value(f"{ALLOWED} · 3 classes · in local cache", timeout=PAGE_TIMEOUT_MS)
    expect(page.locator("#status")).to_contain_text(f"{ALLOWED} (local HF cache)", timeout=PAGE_TIMEOUT_MS)
    upload(page, CAT)
    page.locator("#predict-button").click()
    expect(page.locator("#top5 .confidence-set")).to_have_count(3, timeout=PAGE_TIMEOUT_MS)
    expect(page.locator("#top5 h2")).to_have_text(served[ALLOWED].ranked()[0][0])
    screenshot(page, "visitor-model-predict")

    box.fill(PICKLE_ONLY)
    page.locator("#visitor-model-button").click()
    expect(page.get_by_test_id("toast-body").first).to_contain_text("publishes only pytorch_model.bin", timeout=PAGE_TIMEOUT_MS)
    expect(page.locator("#model input")).to_have_value(f"{ALLOWED} · 3 classes · in local cache")  # unchanged
    screenshot(page, "visitor-model-refused")
    page.close()
