"""How fast the app answers, end to end through gradio_client, against two peers measured in this process.

    python benchmarks/app_latency.py [--checkpoint-dir DIR] [--calls 15] [--warmup 3]

It starts `python app.py` offline (as the tests do), times how long it takes to serve, then takes
the median warm latency of /predict, /ablate, /architecture and /explain with the bundled S12 model. The peers
put those numbers in context: the bare model (decode + preprocess + forward, no web stack) on the same photo,
and a trivial Gradio endpoint (image in, label out) that costs only Gradio's and the client's own
overhead. Targets (issue 3): /predict <= 400 ms, /ablate <= 600 ms, start <= 8 s; /architecture <= 400 ms;
/explain (issue 7) has none, and every endpoint is also given as a multiple of /predict from the same run.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]  # the app server launcher is shared with the tests

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
import torch  # noqa: E402
from conftest import free_port, running_app  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402
from timing import median_ms  # noqa: E402

from poolformer.explorer import checkpoint_dir  # noqa: E402
from poolformer.preprocess import load_image, preprocess  # noqa: E402
from poolformer.weights import create_model  # noqa: E402

PHOTO = REPO / "assets" / "examples" / "cat.jpg"
BUNDLED_MODEL = "s12-imagenette"
# /architecture runs on every photo or model change (the MetaFormer tab's diagram), so it gets /predict's budget.
TARGETS_MS: dict[str, int | None] = {"/predict": 400, "/ablate": 600, "/architecture": 400, "/explain": None}
START_TARGET_S = 8.0


def bare_model_call(checkpoints: Path) -> Callable[[], object]:
    """Decode, preprocess and run the bundled model: the work /predict can't avoid."""
    model = create_model("s12", weights=checkpoints / "poolformer_s12_imagenette.safetensors")

    @torch.inference_mode()
    def call() -> object:
        return model.forward_with_stages(preprocess(load_image(PHOTO), model.variant.crop_pct))

    return call


def trivial_endpoint_call(downloads: Path) -> Callable[[], object]:
    """A Gradio app that uploads an image and returns a constant label: pure framework overhead."""
    with gr.Blocks() as trivial:
        photo, label = gr.Image(type="filepath"), gr.Label()
        gr.Button().click(lambda _: {"cat": 1.0}, photo, label, api_name="trivial")
    port = free_port()
    trivial.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    client = Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=str(downloads))
    return lambda: client.predict(handle_file(PHOTO), api_name="/trivial")


def machine() -> str:
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return (
        f"{platform.platform()} · {platform.processor() or platform.machine()} · {os.cpu_count()} CPUs · "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads · load average {load}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint-dir", type=Path, default=checkpoint_dir(), help="where the bundled checkpoints are")
    parser.add_argument("--calls", type=int, default=15, help="timed calls per endpoint")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls first")
    args = parser.parse_args()
    checkpoints = args.checkpoint_dir.resolve()

    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        started = time.perf_counter()
        with running_app(checkpoints, scratch) as url:
            start_s = time.perf_counter() - started
            client = Client(url, verbose=False, download_files=str(scratch))
            app_ms = {
                endpoint: median_ms(
                    lambda endpoint=endpoint: client.predict(handle_file(PHOTO), BUNDLED_MODEL, api_name=endpoint),
                    args.calls,
                    args.warmup,
                )
                for endpoint in TARGETS_MS
            }
        bare_ms = median_ms(bare_model_call(checkpoints), args.calls, args.warmup)
        trivial_ms = median_ms(trivial_endpoint_call(scratch), args.calls, args.warmup)

    print(f"python app.py -> serving: {start_s:.2f} s (target <= {START_TARGET_S:.0f} s)")
    print(f"peer: bare model (decode + preprocess + forward with stages): {bare_ms:.0f} ms")
    print(f"peer: trivial Gradio endpoint through gradio_client:          {trivial_ms:.0f} ms")
    for endpoint, measured in app_ms.items():
        target = TARGETS_MS[endpoint]
        print(
            f"{endpoint}: median {measured:.0f} ms over {args.calls} warm calls "
            f"({f'target <= {target} ms' if target else 'no target'}) · {measured / app_ms['/predict']:.1f}x /predict · "
            f"{measured / bare_ms:.1f}x the bare model · {measured / trivial_ms:.1f}x the trivial endpoint"
        )


if __name__ == "__main__":
    main()
