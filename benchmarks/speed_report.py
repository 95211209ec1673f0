"""Every speed figure of the project from one command, with the machine and the date.

    python benchmarks/speed_report.py [--skip model app memory] [app_latency.py's and app_memory.py's options]

1. model (model_speed.py): our forward against transformers' on the same weights, CPU (the ONNX Runtime fast
   path, our eager twin and plain model; 1 and 2 threads, quiet and with a busy process on core 0), and GPU
   where present;
2. app (app_latency.py): /predict, /ablate, /compare, /architecture and /explain against the same-shape echo
   floor, median and p95 per round, with the CPU fast path and without (POOLFORMER_FAST_CPU=0); the browser's
   click-to-picture time; `python app.py` → HTTP 200 with and without the fast path, and to a built session;
3. memory (app_memory.py): peak RSS while /compare runs all five variants from a local HF cache.
Every ratio and difference is against a peer measured in the same run, as other work may share the machine.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

import app_latency  # noqa: E402
import app_memory  # noqa: E402
import torch  # noqa: E402
from app_latency import say  # noqa: E402

SECTIONS = ("model", "app", "memory")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        cpu = next(
            (
                line.split(":", 1)[1].strip()
                for line in cpuinfo.read_text().splitlines()
                if line.startswith("model name")
            ),
            cpu,
        )
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return (
        f"{cpu} · {os.cpu_count()} cores · torch {torch.__version__}, {torch.get_num_threads()} threads · GPU: {gpu} · "
        f"load average {load} (1, 5, 15 min)"
    )


def model_section(runs: int) -> None:
    """model_speed.py's rows: the CPU, then CUDA where there is one."""
    from model_speed import model_speed_rows

    for device in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
        model_speed_rows(device, runs=runs, on_row=lambda row, device=device: say(f"  {device}: {row.line().strip()}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip", nargs="*", default=[], choices=SECTIONS, help="sections to leave out")
    parser.add_argument("--model-runs", type=int, default=20, help="timed forwards per model measurement at batch 1")
    app_latency.add_arguments(parser)
    app_memory.add_arguments(parser)
    args = parser.parse_args()

    say(f"PoolFormer Explorer speed report · {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC")
    say(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        if "model" not in args.skip:
            say("\nmodel: ours against transformers' PoolFormerForImageClassification, same weights, interleaved")
            model_section(args.model_runs)
        if "app" not in args.skip:
            app_latency.run(args, scratch)
        if "memory" not in args.skip:
            say("\nmemory:")
            app_memory.memory_section(scratch, args.hub_cache)
    say(f"\nload average at the end: {', '.join(f'{value:.1f}' for value in os.getloadavg())}")


if __name__ == "__main__":
    main()
