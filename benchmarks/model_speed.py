"""Our PoolFormer against transformers' on the same weights, in the same process: latency and throughput.

    python benchmarks/model_speed.py [--variants s12 m48] [--device auto|cpu|cuda] [--batch 256] [--runs 20]

Batch-1 latency in fp32 (what the app does per photo) and batched throughput (bf16 autocast on CUDA,
fp32 on CPU). Prints medians and our/transformers ratios; transformers is only the reference peer here.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from reference import in_layout, reference_model, save_tensors  # noqa: E402

from poolformer.model import VARIANTS  # noqa: E402
from poolformer.weights import create_model, resolve_device  # noqa: E402


def paired_medians(calls: list[Callable[[], object]], runs: int, device: torch.device) -> list[float]:
    """Median seconds of each call, timed in alternation so drift on a noisy machine hits both alike."""

    def timed(call: Callable[[], object]) -> float:
        start = time.perf_counter()
        call()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    for _ in range(3):
        for call in calls:
            timed(call)
    samples: list[list[float]] = [[] for _ in calls]
    for _ in range(runs):
        for call, times in zip(calls, samples):
            times.append(timed(call))
    return [statistics.median(times) for times in samples]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch", type=int, default=None, help="throughput batch (default 256 on CUDA, 16 on CPU)")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    device = resolve_device(args.device)
    batch = args.batch or (256 if device.type == "cuda" else 16)
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"{platform.processor() or platform.machine()}"
    print(f"machine: {name} · {device.type} · torch {torch.__version__} · {torch.get_num_threads()} CPU threads")
    print(f"{'variant':8} {'b1 ours':>9} {'b1 ref':>9} {'ratio':>6}   {f'b{batch} ours img/s':>16} {'ref img/s':>10} {'ratio':>6}")

    for variant in args.variants:
        reference = reference_model(variant)
        path = save_tensors(in_layout(reference.state_dict(), variant, "timm"), Path(f"/tmp/speed-{variant}.safetensors"))
        ours, reference = create_model(weights=path, device=device), reference.to(device)
        one = torch.randn(1, 3, 224, 224, device=device)
        many = torch.randn(batch, 3, 224, 224, device=device)
        autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

        with torch.inference_mode():
            latency = paired_medians([lambda: ours(one), lambda: reference(one)], args.runs, device)
            with autocast:
                per_batch = paired_medians([lambda: ours(many), lambda: reference(many)], max(5, args.runs // 4), device)
        ours_ms, ref_ms = (seconds * 1000 for seconds in latency)
        ours_tp, ref_tp = (batch / seconds for seconds in per_batch)
        print(
            f"{variant:8} {ours_ms:7.1f}ms {ref_ms:7.1f}ms {ours_ms / ref_ms:6.2f}   "
            f"{ours_tp:16.0f} {ref_tp:10.0f} {ours_tp / ref_tp:6.2f}"
        )


if __name__ == "__main__":
    main()
