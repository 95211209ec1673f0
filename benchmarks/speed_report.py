"""Every speed figure of the project from one command, with the machine and the date.

    python benchmarks/speed_report.py [--calls 20] [--rounds 3] [--browser-runs 5] [--starts 3] [--skip model ...]

1. model: our forward against transformers' on the same weights (benchmarks/model_speed.py), on the
   CPU and on the GPU where there is one;
2. app: /predict and /ablate of `python app.py` (bundled S12, warm) through gradio_client with
   download_files=False (a browser fetches the pictures in parallel, the client would fetch them one by
   one), each against the Gradio floor: benchmarks/echo_app.py, the same app answering with outputs
   computed once at start, timed interleaved with it in the same run;
3. browser: headless Chromium presses Predict; time until the fourth stage picture is decoded, app and floor;
4. start: `python app.py` until the page answers HTTP 200;
5. memory: peak RSS of the app while /compare runs every variant from a local Hugging Face cache (random
   weights, built once the way tests/reference.py's fake_hub_snapshot lays it out) and the bundled models.

Ratios and differences are against peers measured in the same run, as other work may share the machine.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]  # the app launcher and the Chromium flags are shared with the tests

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import torch  # noqa: E402
from conftest import BUNDLED_DIR, BUNDLED_MODEL, app_server  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402
from timing import interleaved_ms, p95  # noqa: E402

from poolformer.model import VARIANTS  # noqa: E402

PHOTO = REPO / "assets" / "examples" / "cat.jpg"
ENDPOINT_BUDGET_MS = {"/predict": 70, "/ablate": 130}  # over the floor (issue 8)
START_TARGET_S = 4.5
MEMORY_TARGET_GB = 1.5
DEFAULT_HUB_CACHE = Path.home() / ".cache" / "poolformer-explorer" / "speed-report-hf-cache"
SECTIONS = ("model", "app", "browser", "start", "memory")


def say(line: str = "") -> None:
    print(line, flush=True)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return (
        f"{cpu} · {os.cpu_count()} cores · torch {torch.__version__} with {torch.get_num_threads()} threads · "
        f"GPU: {gpu} · load average {load} · {platform.platform()}"
    )


def folder(parent: Path, name: str) -> Path:
    """A scratch folder of its own for each server (its log, its Gradio temp files)."""
    path = parent / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def spread(values: list[float], unit: str, digits: int = 0) -> str:
    """Median and range of repeated measurements, e.g. '62 ms (58–71 over 3 rounds)'."""
    middle = statistics.median(values)
    if len(values) == 1:
        return f"{middle:.{digits}f} {unit}"
    return f"{middle:.{digits}f} {unit} ({min(values):.{digits}f}–{max(values):.{digits}f} over {len(values)} rounds)"


# --- 1. the model ---------------------------------------------------------------------------------


MODEL_CASES = (("s12", 1), ("s12", 8), ("m36", 1), ("m36", 8))  # issue 8's CPU targets: ours ≤ 0.8× transformers'


def model_ratio_rows(runs: int) -> list[str]:
    """Adapter over model_speed.py's interleaved timer, until its own rows function is merged."""
    from model_speed import paired_medians
    from reference import in_layout, reference_model, save_tensors

    from poolformer.weights import create_model

    rows = []
    device = torch.device("cpu")
    for variant, batch in MODEL_CASES:
        reference = reference_model(variant)
        with tempfile.TemporaryDirectory() as scratch:
            path = save_tensors(in_layout(reference.state_dict(), variant, "timm"), Path(scratch) / "weights.safetensors")
            ours = create_model(weights=path, device=device)
        pixels = torch.randn(batch, 3, 224, 224)
        with torch.inference_mode():
            ours_s, reference_s = paired_medians([lambda: ours(pixels), lambda: reference(pixels)], runs, device)
        rows.append(
            f"cpu {variant} batch {batch} fp32: ours {ours_s * 1000:.1f} ms, transformers {reference_s * 1000:.1f} ms, "
            f"ratio {ours_s / reference_s:.2f}"
        )
    return rows


def model_section(runs: int) -> None:
    """Ours / transformers' time per forward on the CPU (model_speed.py covers the GPU where there is one)."""
    for row in model_ratio_rows(runs):
        say(f"  {row}")


# --- 2. the app's endpoints against the floor -----------------------------------------------------


@contextmanager
def app_and_floor(scratch: Path) -> Iterator[tuple[str, str]]:
    """`python app.py` and the echo app, both serving, both offline with the bundled models."""
    with (
        app_server(BUNDLED_DIR, folder(scratch, "app")) as (app_url, _),
        app_server(BUNDLED_DIR, folder(scratch, "floor"), script="benchmarks/echo_app.py") as (floor_url, _),
    ):
        yield app_url, floor_url


def endpoint_call(url: str, endpoint: str) -> Callable[[], object]:
    client = Client(url, verbose=False, download_files=False)
    return lambda: client.predict(handle_file(PHOTO), BUNDLED_MODEL, api_name=endpoint)


def app_section(app_url: str, floor_url: str, calls: int, rounds: int, warmup: int) -> dict[str, list[float]]:
    """Per endpoint and round: app and floor median and p95 over `calls` interleaved calls; returns the overheads."""
    overheads: dict[str, list[float]] = {}
    for endpoint in ENDPOINT_BUDGET_MS:
        calls_by_name = {"app": endpoint_call(app_url, endpoint), "floor": endpoint_call(floor_url, endpoint)}
        for round_number in range(1, rounds + 1):
            samples = interleaved_ms(calls_by_name, calls, warmup)
            app_ms, floor_ms = statistics.median(samples["app"]), statistics.median(samples["floor"])
            overheads.setdefault(endpoint, []).append(app_ms - floor_ms)
            say(
                f"  {endpoint:9} round {round_number}: app median {app_ms:4.0f} ms, p95 {p95(samples['app']):4.0f} · "
                f"floor median {floor_ms:4.0f} ms, p95 {p95(samples['floor']):4.0f} · app − floor {app_ms - floor_ms:+4.0f} ms "
                f"({calls} calls each)"
            )
    for endpoint, values in overheads.items():
        verdict = "meets" if statistics.median(values) <= ENDPOINT_BUDGET_MS[endpoint] else "MISSES"
        say(f"  {endpoint}: floor + {spread(values, 'ms')} · target ≤ floor + {ENDPOINT_BUDGET_MS[endpoint]} ms: {verdict}")
    return overheads


# --- 3. the browser -------------------------------------------------------------------------------

# Starts timing on the click itself and stops once the fourth stage picture is decoded (polled every frame).
TIME_CLICK_TO_PICTURE = """() => {
    window.clickToPicture = undefined;
    document.querySelector('#predict-button').addEventListener('click', () => {
        const clicked = performance.now();
        const poll = () => {
            const picture = document.querySelector('#stage-4 img');
            if (picture && picture.complete && picture.naturalWidth > 0) window.clickToPicture = performance.now() - clicked;
            else requestAnimationFrame(poll);
        };
        poll();
    }, {once: true, capture: true});
}"""


def browser_section(app_url: str, floor_url: str, runs: int) -> None:
    """A fresh visit per run: load the page, upload the photo, press Predict, wait for the stage-4 picture."""
    from playwright.sync_api import expect, sync_playwright
    from test_browser import CHROMIUM, CHROMIUM_FLAGS, upload

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        # Tall enough for all four stage pictures: Gradio loads images lazily, only once in view.
        context = browser.new_context(viewport={"width": 1400, "height": 2600})

        def click_to_picture(url: str) -> float:
            page = context.new_page()
            page.goto(url)
            expect(page.locator("#status")).to_contain_text("Loaded", timeout=60_000)
            upload(page, PHOTO)
            page.evaluate(TIME_CLICK_TO_PICTURE)
            page.locator("#predict-button").click()
            page.wait_for_function("() => window.clickToPicture !== undefined", timeout=60_000)
            elapsed = page.evaluate("() => window.clickToPicture")
            page.close()
            return elapsed

        samples: dict[str, list[float]] = {"app": [], "floor": []}
        click_to_picture(app_url), click_to_picture(floor_url)  # warm-up: the browser caches the page's scripts
        for run in range(runs):
            for name, url in (("app", app_url), ("floor", floor_url))[:: 1 if run % 2 == 0 else -1]:
                samples[name].append(click_to_picture(url))
        browser.close()
    app_ms, floor_ms = statistics.median(samples["app"]), statistics.median(samples["floor"])
    say(
        f"  Predict clicked → stage-4 picture decoded: app median {app_ms:.0f} ms (p95 {p95(samples['app']):.0f}) · "
        f"floor median {floor_ms:.0f} ms (p95 {p95(samples['floor']):.0f}) · app − floor {app_ms - floor_ms:+.0f} ms "
        f"({runs} fresh visits each, Chromium headless)"
    )


# --- 4. start time --------------------------------------------------------------------------------


def start_section(scratch: Path, starts: int) -> None:
    seconds = []
    for number in range(starts):
        started = time.perf_counter()
        with app_server(BUNDLED_DIR, folder(scratch, f"start-{number}")):
            seconds.append(time.perf_counter() - started)
    verdict = "meets" if statistics.median(seconds) <= START_TARGET_S else "MISSES"
    say(f"  python app.py → HTTP 200: {spread(seconds, 's', 2)} · target ≤ {START_TARGET_S} s: {verdict}")


# --- 5. memory ------------------------------------------------------------------------------------


def five_variant_hub_cache(directory: Path) -> Path:
    """A local HF cache holding sail/poolformer_<variant> for every variant, random weights; built once."""
    from reference import fake_hub_snapshot, reference_model

    for name, variant in VARIANTS.items():
        repo_dir = directory / f"models--{variant.hub_repo.replace('/', '--')}"
        if (repo_dir / "refs" / "main").is_file():
            continue
        say(f"  (building the local HF cache: {variant.hub_repo}, random weights, once)")
        reference_model(name).save_pretrained(fake_hub_snapshot(directory, variant.hub_repo))
    return directory


def peak_rss_gb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in GB."""
    line = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024 / 1e9


def memory_section(scratch: Path, hub_cache: Path) -> None:
    cache = five_variant_hub_cache(hub_cache)
    capacity = os.environ.get("POOLFORMER_MODEL_CACHE_SIZE", "3 (default)")
    with app_server(BUNDLED_DIR, folder(scratch, "memory"), hf_cache=cache) as (url, server):
        client = Client(url, verbose=False, download_files=False)
        time.sleep(2)  # let the warm-up (default model) settle before reading the baseline
        before = peak_rss_gb(server.pid)
        started = time.perf_counter()
        table, _ = client.predict(handle_file(PHOTO), api_name="/compare")
        took = time.perf_counter() - started
        peak = peak_rss_gb(server.pid)
    verdict = "meets" if peak <= MEMORY_TARGET_GB else "MISSES"
    say(
        f"  /compare over {len(table['data'])} models ({', '.join(row[0] for row in table['data'])}) in {took:.1f} s, "
        f"model cache size {capacity}: peak RSS {peak:.2f} GB (before it {before:.2f} GB) · "
        f"target ≤ {MEMORY_TARGET_GB} GB: {verdict}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20, help="timed calls per endpoint and round, app and floor each")
    parser.add_argument("--rounds", type=int, default=3, help="repeats of the endpoint measurement, for the spread")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls per round first")
    parser.add_argument("--browser-runs", type=int, default=5, help="fresh visits per server in the browser")
    parser.add_argument("--starts", type=int, default=3, help="how many times to start python app.py")
    parser.add_argument("--model-runs", type=int, default=10, help="timed forwards per model measurement")
    parser.add_argument("--hub-cache", type=Path, default=DEFAULT_HUB_CACHE, help="where the five-variant HF cache is kept")
    parser.add_argument("--skip", nargs="*", default=[], choices=SECTIONS, help="sections to leave out")
    args = parser.parse_args()

    say(f"PoolFormer Explorer speed report · {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC")
    say(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as scratch_dir, ExitStack() as servers:
        scratch = Path(scratch_dir)
        if "model" not in args.skip:
            say("\nmodel: our forward / transformers' forward, same weights, interleaved (< 1 = ours faster)")
            model_section(args.model_runs)
        if "app" not in args.skip or "browser" not in args.skip:
            app_url, floor_url = servers.enter_context(app_and_floor(scratch))
            if "app" not in args.skip:
                say("\napp through gradio_client (download_files=False), bundled S12, warm, against the echo floor:")
                app_section(app_url, floor_url, args.calls, args.rounds, args.warmup)
            if "browser" not in args.skip:
                say("\nbrowser:")
                browser_section(app_url, floor_url, args.browser_runs)
            servers.close()
        if "start" not in args.skip:
            say("\nstart:")
            start_section(scratch, args.starts)
        if "memory" not in args.skip:
            say("\nmemory:")
            memory_section(scratch, args.hub_cache)


if __name__ == "__main__":
    main()
