"""How fast the app answers and starts, against the Gradio floor measured in the same run.

    python benchmarks/app_latency.py [--endpoints ...] [--calls 20] [--rounds 3] [--browser-runs 5] [--starts 3]

- endpoints: /predict, /ablate, /compare, /architecture, /explain and /mixers of `python app.py` (bundled S12, warm,
  its CPU sessions built: poolformer/fast_cpu.py), of the same app with that fast path off
  (POOLFORMER_FAST_CPU=0, "eager": the app as it was before issue 18), and of the app with torch threads on
  all cores, through gradio_client with download_files=False (a browser fetches the pictures in parallel; the
  client would fetch them one by one), interleaved call by call with the floor: benchmarks/echo_app.py, the
  same app answering with outputs computed once at start. app − floor is what our own code costs per request;
  app / floor and eager / app are the ratios issue 18 sets targets for. These servers hold the two bundled
  models issue 18 measured /compare over (PoolFormer and IdentityFormer, LATENCY_MODELS), not the whole zoo: with
  six bundled models the model cache (3) reloads some on every /compare, and no session is built for them.
  `--all-bundled` serves every bundled checkpoint instead (the Mixer zoo's models, for /mixers).
- browser: headless Chromium uploads the photo on a fresh visit, waits a second as a visitor would, presses
  Predict; time until the fourth stage picture is decoded, app and floor alike.
- start: `python app.py` until the page answers HTTP 200, with the fast path and without, alternately; and
  from the start until the default model's session is built (the log says when).
Targets (issues 8 and 18): /predict ≤ floor + 70 ms and ≤ 1.3 × floor, /ablate ≤ floor + 130 ms, /compare ≥ 1.5 ×
faster than eager, start ≤ 4.5 s and no slower than eager.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]  # the app launcher and the Chromium flags are shared with the tests

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from conftest import BUNDLED_DIR, BUNDLED_MODEL, app_server, local_client  # noqa: E402
from gradio_client import handle_file  # noqa: E402
from timing import interleaved_ms, p95  # noqa: E402

PHOTO = REPO / "assets" / "examples" / "cat.jpg"
# Over the floor (issue 8). /architecture (the MetaFormer tab's diagram, redrawn on every photo or model change)
# and /explain (Grad-CAM, issue 7) have no budget of their own here; they share the same cores and model runs.
# /sanity and /faithfulness (issue 19) run seven Grad-CAM passes and ~40 forward passes: seconds, not milliseconds,
# so they are timed only when asked for (--endpoints /explain /sanity /faithfulness).
ENDPOINT_BUDGET_MS: dict[str, int | None] = {
    "/predict": 70, "/ablate": 130, "/compare": None, "/architecture": None, "/explain": None, "/mixers": None,
    "/sanity": None, "/faithfulness": None,
}  # fmt: skip
DEFAULT_ENDPOINTS = [endpoint for endpoint in ENDPOINT_BUDGET_MS if endpoint not in {"/sanity", "/faithfulness"}]
PHOTO_ONLY = {"/compare", "/mixers"}  # every model on the machine, or every bundled mixer model: the photo alone
PREDICT_FLOOR_RATIO = 1.3  # /predict's time over the floor's (issue 18)
COMPARE_SPEED_UP = 1.5  # /compare: eager's time over the fast path's (issue 18)
FAST_PATH_OFF = {"POOLFORMER_FAST_CPU": "0"}
LATENCY_MODELS = ("poolformer_s12_imagenette.safetensors", "identityformer_s12_imagenette.safetensors")
SESSION_READY = "ONNX Runtime passes for"  # poolformer/fast_cpu.py's log line once a session serves (or failed)
HUMAN_PAUSE_MS = 1000  # between the upload and the click, as a visitor would (the upload redraws the diagram)
START_TARGET_S = 4.5


def say(line: str = "") -> None:
    print(line, flush=True)


def folder(parent: Path, name: str) -> Path:
    """A scratch folder of its own for each server (its log, its Gradio temp files)."""
    path = parent / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def latency_checkpoints(scratch: Path, all_bundled: bool = False) -> Path:
    """A checkpoint folder holding the LATENCY_MODELS only (copies of the bundled files), or the bundled one."""
    if all_bundled:
        return BUNDLED_DIR
    checkpoints = folder(scratch, "checkpoints")
    for name in LATENCY_MODELS:
        shutil.copy2(BUNDLED_DIR / name, checkpoints / name)
    return checkpoints


def spread(values: list[float], unit: str, digits: int = 0, sign: str = "") -> str:
    """Median and range of repeated measurements, e.g. "62 ms (58 to 71 over 3 runs)"; sign="+" shows signs."""
    middle = statistics.median(values)
    if len(values) == 1:
        return f"{middle:{sign}.{digits}f} {unit}"
    low, high = min(values), max(values)
    return (
        f"{middle:{sign}.{digits}f} {unit} ({low:{sign}.{digits}f} to {high:{sign}.{digits}f} over {len(values)} runs)"
    )


def verdict(value: float, target: float) -> str:
    return "meets" if value <= target else "MISSES"


ALL_CORES = os.cpu_count() or 1


@contextmanager
def app_and_floor(scratch: Path, all_bundled: bool = False) -> Iterator[dict[str, str]]:
    """The URLs of `python app.py` as it starts, of the app with the CPU fast path off, of the app with torch
    threads on every core, and of the floor.

    All offline with the LATENCY_MODELS. The third app shows the trade app.py's torch_threads_per_request makes:
    more threads speed up one request on idle cores, but every operation waits for all of them. Yields once every
    app has built its sessions for both LATENCY_MODELS.
    """
    checkpoints = latency_checkpoints(scratch, all_bundled)
    with (
        app_server(checkpoints, folder(scratch, "app")) as (app_url, _),
        app_server(checkpoints, folder(scratch, "app-eager"), env=FAST_PATH_OFF) as (eager_url, _),
        app_server(checkpoints, folder(scratch, "app-all-cores"), env={"OMP_NUM_THREADS": str(ALL_CORES)}) as (
            all_cores_url,
            _,
        ),
        app_server(checkpoints, folder(scratch, "floor"), script="benchmarks/echo_app.py") as (floor_url, _),
    ):
        for url in (app_url, all_cores_url):
            endpoint_call(url, "/compare")()  # loads the second bundled model, whose session then builds
        for name in ("app", "app-all-cores"):
            for line in wait_for_sessions(folder(scratch, name) / "app.log", len(LATENCY_MODELS)):
                say(f"  {name}: {line}")
        yield {"app": app_url, "app, eager": eager_url, f"app, {ALL_CORES} threads": all_cores_url, "floor": floor_url}


def wait_for_sessions(log: Path, count: int, timeout_s: float = 300) -> list[str]:
    """The app log's session lines (built or failed, with the time it took) once there are `count` of them."""
    deadline = time.perf_counter() + timeout_s
    while True:
        lines = [line.split(": ", 1)[-1] for line in log.read_text().splitlines() if SESSION_READY in line]
        if len(lines) >= count or time.perf_counter() > deadline:
            return lines or [f"no session line in {log.name} after {timeout_s:.0f} s"]
        time.sleep(0.5)


def endpoint_call(url: str, endpoint: str) -> Callable[[], object]:
    client = local_client(url)
    arguments = () if endpoint in PHOTO_ONLY else (BUNDLED_MODEL,)
    return lambda: client.predict(handle_file(PHOTO), *arguments, api_name=endpoint)


def endpoints_section(urls: dict[str, str], endpoints: list[str], calls: int, rounds: int, warmup: int) -> None:
    """Per endpoint and round: each server's median and p95 over `calls` interleaved calls, and app − floor."""
    for endpoint in endpoints:
        budget = ENDPOINT_BUDGET_MS[endpoint]
        calls_by_name = {name: endpoint_call(url, endpoint) for name, url in urls.items()}
        overheads: dict[str, list[float]] = {name: [] for name in urls if name != "floor"}
        ratio_samples: list[dict[str, float]] = []
        for round_number in range(1, rounds + 1):
            samples = interleaved_ms(calls_by_name, calls, warmup)
            ratio_samples.append({name: statistics.median(times) for name, times in samples.items()})
            floor_ms = statistics.median(samples["floor"])
            figures = [f"floor {floor_ms:4.0f} ms (p95 {p95(samples['floor']):4.0f})"]
            for name in overheads:
                app_ms = statistics.median(samples[name])
                overheads[name].append(app_ms - floor_ms)
                figures.append(
                    f"{name} {app_ms:4.0f} ms (p95 {p95(samples[name]):4.0f}) = floor {app_ms - floor_ms:+4.0f}"
                )
            say(f"  {endpoint:9} round {round_number}, medians of {calls} calls each: " + " · ".join(figures))
        for name, values in overheads.items():
            target = f" · target ≤ floor + {budget} ms: {verdict(statistics.median(values), budget)}" if budget else ""
            say(f"  {endpoint} {name}: app − floor {spread(values, 'ms', sign='+')}{target}")
        say(f"  {endpoint} ratios, median over rounds: " + ratios(endpoint, ratio_samples))


def ratios(endpoint: str, rounds: list[dict[str, float]]) -> str:
    """app / floor for each server, and eager / app (how much faster the fast path made it), with verdicts."""
    parts = []
    for name in rounds[0]:
        if name != "floor":
            over_floor = statistics.median(medians[name] / medians["floor"] for medians in rounds)
            target = f" (target ≤ {PREDICT_FLOOR_RATIO}: {verdict(over_floor, PREDICT_FLOOR_RATIO)})"
            parts.append(f"{name} / floor {over_floor:.2f}" + (target if endpoint == "/predict" and name == "app" else ""))
    speed_up = statistics.median(medians["app, eager"] / medians["app"] for medians in rounds)
    met = "meets" if speed_up >= COMPARE_SPEED_UP else "MISSES"
    target = f" (target ≥ {COMPARE_SPEED_UP}: {met})" if endpoint == "/compare" else ""
    parts.append(f"eager / app {speed_up:.2f}{target}")
    return " · ".join(parts)


# Starts timing on the click itself and stops once the fourth stage picture is decoded (polled every frame).
TIME_CLICK_TO_PICTURE = """() => {
    window.clickToPicture = undefined;
    document.querySelector('#predict-button').addEventListener('click', () => {
        const clicked = performance.now();
        const poll = () => {
            const picture = document.querySelector('#stage-4 img');
            const shown = picture && picture.complete && picture.naturalWidth > 0;
            if (shown) window.clickToPicture = performance.now() - clicked;
            else requestAnimationFrame(poll);
        };
        poll();
    }, {once: true, capture: true});
}"""


def browser_section(urls: dict[str, str], runs: int) -> None:
    """A fresh visit per run: load the page, upload the photo, press Predict, wait for the stage-4 picture."""
    from conftest import CHROMIUM, CHROMIUM_FLAGS
    from playwright.sync_api import expect, sync_playwright
    from test_browser import upload

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        # Tall enough for all four stage pictures: Gradio loads images lazily, only once in view.
        context = browser.new_context(viewport={"width": 1400, "height": 2600})

        def click_to_picture(url: str) -> float:
            page = context.new_page()
            page.goto(url)
            expect(page.locator("#status")).to_contain_text("Loaded", timeout=60_000)
            upload(page, PHOTO)
            page.wait_for_timeout(HUMAN_PAUSE_MS)
            page.evaluate(TIME_CLICK_TO_PICTURE)
            page.locator("#predict-button").click()
            page.wait_for_function("() => window.clickToPicture !== undefined", timeout=60_000)
            elapsed = page.evaluate("() => window.clickToPicture")
            page.close()
            return elapsed

        shown = {name: urls[name] for name in ("app", "floor")}
        samples: dict[str, list[float]] = {name: [] for name in shown}
        for url in shown.values():
            click_to_picture(url)  # warm-up: the browser caches the page's scripts
        for run in range(runs):
            for name, url in list(shown.items())[:: 1 if run % 2 == 0 else -1]:
                samples[name].append(click_to_picture(url))
        browser.close()
    app_ms, floor_ms = statistics.median(samples["app"]), statistics.median(samples["floor"])
    say(
        f"  Predict pressed → stage-4 picture decoded: app median {app_ms:.0f} ms (p95 {p95(samples['app']):.0f}) · "
        f"floor median {floor_ms:.0f} ms (p95 {p95(samples['floor']):.0f}) · app − floor {app_ms - floor_ms:+.0f} ms "
        f"({runs} fresh visits each, headless Chromium)"
    )


def start_section(scratch: Path, starts: int) -> None:
    """Starts with the fast path and without, alternately; and how long after the start the session served."""
    seconds: dict[str, list[float]] = {"fast path": [], "eager": []}
    for number in range(starts):
        for name, env in (("fast path", None), ("eager", FAST_PATH_OFF))[:: 1 if number % 2 == 0 else -1]:
            started = time.perf_counter()
            scratch_folder = folder(scratch, f"start-{number}-{name.replace(' ', '-')}")
            with app_server(BUNDLED_DIR, scratch_folder, env=env):
                seconds[name].append(time.perf_counter() - started)
                if name == "fast path":
                    session = wait_for_sessions(scratch_folder / "app.log", 1)[0]
                    say(f"  start {number + 1}: {time.perf_counter() - started:.1f} s to a built session ({session})")
    fast, eager = (statistics.median(values) for values in seconds.values())
    say(
        f"  python app.py → HTTP 200: {spread(seconds['fast path'], 's', 2)} · eager {spread(seconds['eager'], 's', 2)} · "
        f"target ≤ {START_TARGET_S} s: {verdict(fast, START_TARGET_S)} · fast / eager {fast / eager:.2f}"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--endpoints", nargs="+", default=DEFAULT_ENDPOINTS, choices=list(ENDPOINT_BUDGET_MS))
    parser.add_argument("--calls", type=int, default=20, help="timed calls per endpoint and round, app and floor each")
    parser.add_argument("--rounds", type=int, default=3, help="repeats of the endpoint measurement, for the spread")
    parser.add_argument(
        "--warmup", type=int, default=10, help="untimed calls per round first (with 3, round 1 still ran ~40 ms slow)"
    )
    parser.add_argument("--browser-runs", type=int, default=5, help="fresh visits per server in the browser (0: skip)")
    parser.add_argument("--starts", type=int, default=3, help="how many times to start python app.py (0: skip)")
    parser.add_argument("--all-bundled", action="store_true", help="serve every bundled model, not LATENCY_MODELS")


def run(args: argparse.Namespace, scratch: Path) -> None:
    """The endpoint, browser and start sections, in that order."""
    with app_and_floor(scratch, args.all_bundled) as urls:
        say("\napp through gradio_client (download_files=False), bundled S12, warm, against the echo floor:")
        endpoints_section(urls, args.endpoints, args.calls, args.rounds, args.warmup)
        if args.browser_runs:
            say("\nbrowser:")
            browser_section(urls, args.browser_runs)
    if args.starts:
        say("\nstart:")
        start_section(scratch, args.starts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        run(args, Path(scratch))


if __name__ == "__main__":
    main()
