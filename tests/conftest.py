"""Shared fixtures: one real `python app.py` server for the API and browser tests.

The server runs offline exactly as a visitor's would: HF_HUB_OFFLINE=1 with an empty Hugging Face
cache (so the official variants are unavailable and must fail clearly), and the bundled checkpoints.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from gradio_client import Client
from playwright.sync_api import Browser, Page, expect, sync_playwright
from safetensors import safe_open

from poolformer.mixers import MIXER_LAYOUTS
from poolformer.weights import create_model

REPO = Path(__file__).resolve().parent.parent

BUNDLED_DIR = REPO / "assets" / "checkpoints"
BUNDLED_MODEL = "s12-imagenette"  # the API value of assets/checkpoints/poolformer_s12_imagenette.safetensors
SERVER_START_TIMEOUT_S = 60
SERVER_PIDS: dict[str, int] = {}  # URL -> process id of its `python app.py`, for tests that watch its memory


def local_client(url: str, download_files: str | bool = False, httpx_kwargs: dict | None = None) -> Client:
    """A gradio_client for a server on this machine that leaves the cores to the server.

    With certificate checks on (its default), gradio_client loads the CA bundle into a new SSL context for each
    HTTP client it opens, several per call: 128-154 ms of CPU per /predict call against 10-12 ms without, on the
    2 cores the server computes on (the app's /predict took 244-273 ms against 166-208, 2026-12-04). Our servers
    speak plain HTTP, so the checks have nothing to check; a visitor's browser runs on another machine.
    """
    return Client(url, verbose=False, download_files=download_files, ssl_verify=False, httpx_kwargs=httpx_kwargs)


def bundled_zoo() -> dict[str, Path]:
    """The bundled checkpoints by the zoo layout each was trained with (its header's `token_mixer`), in
    MIXER_LAYOUTS order, pooling first: whichever of the zoo's models are shipped today."""
    found = {}
    for path in sorted(BUNDLED_DIR.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as checkpoint:
            found[(checkpoint.metadata() or {}).get("token_mixer", "pooling")] = path
    return {layout: found[layout] for layout in MIXER_LAYOUTS if layout in found}


@pytest.fixture(scope="session")
def val_dir() -> Path:
    """The Imagenette val split: ../shared/datasets beside the repository, or $IMAGENETTE_DIR.

    Its photos are ImageNet's, so they are read from there and never copied into the repo.
    """
    directory = Path(os.environ.get("IMAGENETTE_DIR", REPO.parent / "shared" / "datasets" / "imagenette2-224")) / "val"
    if not directory.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"CI must provide the Imagenette val split at {directory}")
        pytest.skip(f"Imagenette val split not found at {directory}; set IMAGENETTE_DIR")
    return directory


@pytest.fixture(scope="session")
def val_photos(val_dir: Path) -> list[Path]:
    """The first val photo of each of the ten classes: a handful of real photos for the explanation tests."""
    return [min(folder.iterdir()) for folder in sorted(val_dir.iterdir())]


@pytest.fixture(scope="session")
def checkpoint_dir() -> Path:
    """The bundled Imagenette checkpoints the app serves by default."""
    return BUNDLED_DIR


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_serving(url: str, server: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"app.py exited with code {server.returncode} before serving")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.05)
    raise TimeoutError(f"app.py did not serve {url} within {timeout_s} s")


def offline_app_env(checkpoints: Path, scratch: Path, port: int, hf_cache: Path | None) -> dict[str, str]:
    """Environment of an offline visitor's machine: no hub; an empty HF cache unless one is given."""
    return {
        **os.environ,
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "GRADIO_TEMP_DIR": str(scratch / "gradio"),
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(hf_cache or scratch / "empty-hf-cache"),
        "POOLFORMER_CHECKPOINT_DIR": str(checkpoints),
    }


@contextmanager
def app_server(
    checkpoints: Path,
    scratch: Path,
    hf_cache: Path | None = None,
    env: dict[str, str] | None = None,
    script: str = "app.py",
) -> Iterator[tuple[str, subprocess.Popen]]:
    """`python <script>` (the app, or a benchmark's variant of it) on a free port, offline unless `env` says
    otherwise. Yields its URL once it serves, and the process (benchmarks read its memory use).
    Its output goes to scratch/<script name>.log."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    with (scratch / f"{Path(script).stem}.log").open("w") as log:
        server = subprocess.Popen(
            [sys.executable, script],
            cwd=REPO,
            env={**offline_app_env(checkpoints, scratch, port, hf_cache), **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        SERVER_PIDS[url] = server.pid
        try:
            wait_until_serving(url, server, SERVER_START_TIMEOUT_S)
            yield url, server
        finally:
            server.terminate()
            server.wait(timeout=20)
            SERVER_PIDS.pop(url, None)


@contextmanager
def running_app(
    checkpoints: Path, scratch: Path, hf_cache: Path | None = None, env: dict[str, str] | None = None
) -> Iterator[str]:
    """`python app.py` in a subprocess on a free port, offline unless `env` says otherwise; yields its URL
    once it serves. Its output goes to scratch/app.log."""
    with app_server(checkpoints, scratch, hf_cache, env) as (url, _):
        yield url


@pytest.fixture(scope="session")
def app_url(checkpoint_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One app server shared by all API and browser tests (starting one takes a few seconds)."""
    with running_app(checkpoint_dir, tmp_path_factory.mktemp("app")) as url:
        yield url


# --- fixtures shared by the API and browser test modules --------------------------------------------

PAGE_LOAD_TIMEOUT_MS = 30_000
CHROMIUM = "/usr/bin/chromium"  # Debian's Chromium (never `playwright install`)
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="session")
def client(app_url: str, tmp_path_factory: pytest.TempPathFactory) -> Client:
    """A gradio_client of the shared app that downloads output files, as a script would."""
    return local_client(app_url, download_files=str(tmp_path_factory.mktemp("downloads")))


@pytest.fixture(scope="session")
def bundled_model(checkpoint_dir: Path) -> torch.nn.Module:
    """The default bundled PoolFormer-S12, loaded here to compute the answers the app must give."""
    return create_model("s12", weights=checkpoint_dir / "poolformer_s12_imagenette.safetensors")


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One headless Chromium for every browser test; each test opens its own page."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser, app_url: str) -> Iterator[Page]:
    """A fresh visitor: the page is loaded and the default (bundled) model reported as loaded."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(app_url)
    expect(page.locator("#status")).to_contain_text("Loaded", timeout=PAGE_LOAD_TIMEOUT_MS)
    yield page
    page.close()
