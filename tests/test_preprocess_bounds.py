"""What one photo may cost: the extreme-file corpus (tests/extreme_images.py) through load_image and preprocess,
the CLI and the app, each answered or refused in one line within the bounds; and the centre-crop resampling
that long thin images take, byte-equal to PIL's whole resize on many shapes and to transformers' processor.

The bounds are asserted loosely, as a ceiling that catches issue 17's case (a 208-byte 20000 x 2 PNG took 36 s
and 2.7 GB); benchmarks/preprocess_bounds.py measures what each file really costs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import BUNDLED_DIR, REPO, SERVER_PIDS, local_client
from extreme_images import CORPUS, noise, write_corpus
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image
from transformers.models.poolformer.image_processing_pil_poolformer import PoolFormerImageProcessorPil

from poolformer import preprocess as preprocessing
from poolformer.preprocess import ImageError, center_crop_box, load_image, preprocess, resized_crop, resized_size

SECONDS_CEILING = 10  # per file; the bound is ~1 s (measured: at most 0.6 s of CPU on the shared 2-core machine)
MEGABYTES_CEILING = 400  # above the memory before the file; the bound is ~300 MB (measured: at most 155 MB)
CROP = preprocessing.INPUT_SIZE
SHORT_EDGES = (224, 235, 248, 256)  # int(224 / crop_pct) for crop_pct 1, 0.95, 0.9 and one that is not a model's
WHOLE_RESIZE_AFFORDABLE = 60_000_000  # pixels: where the plain path is fast enough to compare against in a test
BUNDLED_S12 = BUNDLED_DIR / "poolformer_s12_imagenette.safetensors"


@pytest.fixture(scope="module")
def corpus_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_corpus(tmp_path_factory.mktemp("extreme"))


def status_mb(pid: int | str, field: str) -> float:
    line = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith(field))
    return int(line.split()[1]) / 1024


def reset_peak(pid: int | str) -> float:
    """Reset the process's peak resident memory (VmHWM) to what it holds now, and return that."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return status_mb(pid, "VmRSS")


def whole_resized_crop(image: Image.Image, short_edge: int) -> Image.Image:
    """The plain path, as transformers takes it: PIL resizes the whole picture, then the centre is cropped."""
    size = resized_size(image.size, short_edge)
    return image.resize(size, Image.Resampling.BICUBIC).crop(center_crop_box(size, CROP))


def assert_one_line(message: str, word: str) -> None:
    assert message and "\n" not in message and "Traceback" not in message, message
    assert word in message, message


# --- in process -------------------------------------------------------------------------------------------


def test_every_extreme_file_is_answered_or_refused_in_one_line_within_the_bounds(corpus_files: dict[str, Path]) -> None:
    preprocess(load_image(REPO / "assets" / "examples" / "cat.jpg"), 0.9)  # imports and first-call set-up
    for extreme in CORPUS:
        data = corpus_files[extreme.name].read_bytes()
        before = reset_peak("self")
        start = time.perf_counter()
        try:
            pixels, refusal = preprocess(load_image(data), 0.9), None
        except ImageError as error:
            pixels, refusal = None, str(error)
        seconds, megabytes = time.perf_counter() - start, status_mb("self", "VmHWM") - before
        assert seconds < SECONDS_CEILING and megabytes < MEGABYTES_CEILING, (extreme.name, seconds, megabytes)
        if extreme.refusal is None:
            assert refusal is None, (extreme.name, refusal)
            assert pixels.shape == (1, 3, CROP, CROP)
        else:
            assert_one_line(refusal, extreme.refusal)


def test_the_cheap_path_equals_the_whole_resize_on_every_corpus_file_where_both_run(corpus_files: dict[str, Path]) -> None:
    compared = 0
    for extreme in CORPUS:
        if extreme.refusal is not None:
            continue
        image = load_image(corpus_files[extreme.name])
        width, height = resized_size(image.size, 248)
        if width * height > WHOLE_RESIZE_AFFORDABLE:
            continue  # the plain path itself is what costs too much (e.g. 615 MP for the 20000 x 2 strip)
        assert np.array_equal(np.asarray(resized_crop(image, 248, CROP)), np.asarray(whole_resized_crop(image, 248))), extreme.name
        compared += 1
    assert compared >= 15


def shapes_to_compare() -> list[tuple[int, int]]:
    """Strips, slivers, squares, photos and big shrinks both ways up, plus the edge cases Pillow treats apart."""
    rng = np.random.default_rng(17)
    shapes = [(1, 1), (1, 2), (2, 1), (224, 224), (248, 248), (249, 248), (1, 900), (900, 1), (3, 701), (701, 3),
              (2, 2000), (224, 5000), (5000, 224), (260, 30000), (30000, 260), (101, 10101), (10101, 101)]
    shapes += [(260, 26001), (249, 25000)]  # taller than 100 x their width while shrinking: Pillow does the height first
    for _ in range(100):
        short = int(rng.choice([rng.integers(1, 16), rng.integers(16, 248), rng.integers(248, 1200)]))
        long = int(rng.integers(short, max(short + 1, min(20 * short, 6000) + 1)))
        shapes.append((short, long) if rng.integers(2) else (long, short))
    return shapes


def test_centre_crop_resampling_is_byte_equal_to_the_whole_resize_on_many_shapes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(preprocessing, "WHOLE_RESIZE_MAX_PIXELS", 0)  # every shape takes the cheap path
    for index, (width, height) in enumerate(shapes_to_compare()):
        image = noise(width, height, seed=index)
        short_edge = SHORT_EDGES[index % len(SHORT_EDGES)]
        cheap = np.asarray(resized_crop(image, short_edge, CROP))
        assert np.array_equal(cheap, np.asarray(whole_resized_crop(image, short_edge))), (width, height, short_edge)


@pytest.mark.parametrize("size", [(5000, 8), (8, 5000), (300, 26000)])
@pytest.mark.parametrize("crop_pct", [0.9, 0.95])
def test_long_thin_images_match_transformers_processor(size: tuple[int, int], crop_pct: float) -> None:
    """The cheap path, as the app takes it, against the reference implementation itself."""
    image = noise(*size, mode="RGB", seed=sum(size))
    width, height = resized_size(image.size, int(CROP / crop_pct))
    assert width * height > preprocessing.WHOLE_RESIZE_MAX_PIXELS  # these do take the cheap path
    expected = PoolFormerImageProcessorPil(crop_pct=crop_pct, do_convert_rgb=True)(image, return_tensors="pt")["pixel_values"]
    assert (preprocess(load_image(image), crop_pct) - expected).abs().max().item() <= 1e-5


# --- the CLI ----------------------------------------------------------------------------------------------


def run_cli(paths: list[Path]) -> tuple[int, str, str, float, float]:
    """`python -m poolformer predict --json` on the bundled S12: status, stdout, stderr, seconds, peak RSS in MB."""
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        start = time.perf_counter()
        cli = subprocess.Popen(
            [sys.executable, "-m", "poolformer", "predict", "--json", "--weights", str(BUNDLED_S12), *map(str, paths)],
            cwd=REPO,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            text=True,
        )
        _, wait_status, usage = os.wait4(cli.pid, 0)  # the child's own peak memory comes with its exit
        cli.returncode = os.waitstatus_to_exitcode(wait_status)
        seconds = time.perf_counter() - start
        stdout.seek(0), stderr.seek(0)
        return cli.returncode, stdout.read(), stderr.read(), seconds, usage.ru_maxrss / 1024


def test_cli_answers_or_refuses_every_extreme_file_in_one_line(corpus_files: dict[str, Path]) -> None:
    *_, one_photo_mb = run_cli([REPO / "assets" / "examples" / "cat.jpg"])
    status, stdout, stderr, seconds, peak_mb = run_cli(list(corpus_files.values()))
    answered = {Path(result["image"]).name for result in json.loads(stdout)}
    errors = {line.removeprefix("error: ").split(":")[0]: line for line in stderr.splitlines()}
    assert status == 2  # some files are refused
    for extreme in CORPUS:
        if extreme.refusal is None:
            assert extreme.name in answered, (extreme.name, stderr)
        else:
            line = next(line for path, line in errors.items() if path.endswith(extreme.name))
            assert_one_line(line, extreme.refusal)
    assert len(stderr.splitlines()) == sum(extreme.refusal is not None for extreme in CORPUS)  # nothing else
    assert seconds < SECONDS_CEILING * 5  # the model's load and every file, within a generous ceiling
    assert peak_mb - one_photo_mb < MEGABYTES_CEILING, (peak_mb, one_photo_mb)


# --- the app ----------------------------------------------------------------------------------------------


def test_app_answers_or_refuses_every_extreme_file_in_one_line(app_url: str, corpus_files: dict[str, Path]) -> None:
    """/predict on the shared server: each file within the ceilings of time and of server memory."""
    client = local_client(app_url)
    server = SERVER_PIDS[app_url]
    client.predict(handle_file(REPO / "assets" / "examples" / "cat.jpg"), api_name="/predict")  # warm
    for extreme in CORPUS:
        before = reset_peak(server)
        start = time.perf_counter()
        try:
            label, refusal = client.predict(handle_file(corpus_files[extreme.name]), api_name="/predict")[0], None
        except AppError as error:
            label, refusal = None, str(error)
        seconds, megabytes = time.perf_counter() - start, status_mb(server, "VmHWM") - before
        assert seconds < SECONDS_CEILING and megabytes < MEGABYTES_CEILING, (extreme.name, seconds, megabytes)
        if extreme.refusal is None:
            assert refusal is None and len(label["confidences"]) == 5, (extreme.name, refusal)
        else:
            assert_one_line(refusal, extreme.refusal)
