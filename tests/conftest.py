"""Shared fixtures: one real `python app.py` server for the API and browser tests.

The server runs offline exactly as a visitor's would: HF_HUB_OFFLINE=1 with an empty Hugging Face
cache (so the official variants are unavailable and must fail clearly), and the bundled checkpoints.
"""

from __future__ import annotations

import json
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
from safetensors.torch import save_file

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # `pytest` (unlike `python -m pytest`) doesn't put the repo root on the path

from poolformer.model import VARIANTS, PoolFormer  # noqa: E402
BUNDLED_DIR = REPO / "assets" / "checkpoints"
BUNDLED_MODEL = "s12-imagenette"  # the API value of assets/checkpoints/poolformer_s12_imagenette.safetensors
SERVER_START_TIMEOUT_S = 60

# Imagenette's ten classes (fastai's Imagenette, Apache-2.0), in ImageNet index order.
IMAGENETTE_WNIDS = [
    "n01440764", "n02102040", "n02979186", "n03000684", "n03028079",
    "n03394916", "n03417042", "n03425413", "n03445777", "n03888257",
]  # fmt: skip
IMAGENETTE_NAMES = [
    "tench", "English springer", "cassette player", "chain saw", "church",
    "French horn", "garbage truck", "gas pump", "golf ball", "parachute",
]  # fmt: skip


def write_standin_checkpoints(directory: Path) -> Path:
    """Random-weight files shaped and labelled like the bundled Imagenette checkpoints.

    Used only while assets/checkpoints/ does not hold the trained files yet; everything the app
    reads (fp16 tensors in our key layout, the metadata keys) matches the real ones.
    """
    directory.mkdir(parents=True, exist_ok=True)
    for mixer, prefix, accuracy in (("pooling", "poolformer", "0.900"), ("identity", "identityformer", "0.880")):
        torch.manual_seed(0)
        model = PoolFormer(VARIANTS["s12"], num_classes=10, token_mixers=mixer)
        display = "PoolFormer" if mixer == "pooling" else "IdentityFormer"
        metadata = {
            "variant": "s12",
            "token_mixer": mixer,
            "name": f"{display}-S12 · Imagenette (stand-in)",
            "wnids": json.dumps(IMAGENETTE_WNIDS),
            "class_names": json.dumps(IMAGENETTE_NAMES),
            "val_top1": accuracy,
            "recipe": "random weights standing in for the trained checkpoint",
            "dataset": "imagenette2",
        }
        tensors = {key: value.half().contiguous() for key, value in model.state_dict().items()}
        save_file(tensors, str(directory / f"{prefix}_s12_imagenette.safetensors"), metadata=metadata)
    return directory


@pytest.fixture(scope="session")
def checkpoint_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled checkpoints once the lead has committed them, stand-ins until then."""
    if all((BUNDLED_DIR / f"{prefix}_s12_imagenette.safetensors").is_file() for prefix in ("poolformer", "identityformer")):
        return BUNDLED_DIR
    return write_standin_checkpoints(tmp_path_factory.mktemp("checkpoints"))


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


def offline_app_env(checkpoints: Path, scratch: Path, port: int) -> dict[str, str]:
    """Environment of an offline visitor's machine: no hub, empty HF cache, bundled models only."""
    return {
        **os.environ,
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "GRADIO_TEMP_DIR": str(scratch / "gradio"),
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(scratch / "empty-hf-cache"),
        "POOLFORMER_CHECKPOINT_DIR": str(checkpoints),
    }


@contextmanager
def running_app(checkpoints: Path, scratch: Path) -> Iterator[str]:
    """`python app.py` in a subprocess on a free port, offline; yields its URL once it serves."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    with (scratch / "app.log").open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "app.py"],
            cwd=REPO,
            env=offline_app_env(checkpoints, scratch, port),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until_serving(url, server, SERVER_START_TIMEOUT_S)
            yield url
        finally:
            server.terminate()
            server.wait(timeout=20)


@pytest.fixture(scope="session")
def app_url(checkpoint_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One app server shared by all API and browser tests (starting one takes a few seconds)."""
    with running_app(checkpoint_dir, tmp_path_factory.mktemp("app")) as url:
        yield url
