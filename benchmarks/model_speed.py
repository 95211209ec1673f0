"""Our PoolFormer against transformers' on the same weights, in the same process: model speed on CPU and CUDA.

    python benchmarks/model_speed.py [--device auto|cpu|cuda] [--variants s12 m36] [--runs 20] [--mode default]

As a library: `model_speed_rows(device, variants=None, runs=20, ...)` returns the rows this script prints
(a list of `Row`, each our median time beside transformers' from the same run); benchmarks/speed_report.py
imports it.

CPU (fp32, batch 1 and 8): our inference twin (`PoolFormer.for_inference()`, what the app and CLI run), our
plain trainable model, and transformers' PoolFormerForImageClassification, timed in alternation so a noisy
neighbour hits all three alike. Target: ours <= 0.8x transformers' time.
CUDA: batch 1 fp32 eager, and compiled + CUDA graph (the app's path; poolformer/compiled.py) with its max |Δ|
from eager; batch 256 bf16: ours compiled with bf16 weights against transformers eager under bf16 autocast
(and ours eager under autocast). Target: >= 2.2x transformers' throughput.
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from reference import in_layout, reference_model, save_tensors

from poolformer.compiled import compile_model, exact_fp32
from poolformer.model import VARIANTS, PoolFormer
from poolformer.weights import create_model, resolve_device

CPU_VARIANTS = ("s12", "m36")
CPU_BATCHES = (1, 8)
GPU_BATCH = 256


@dataclass(frozen=True)
class Row:
    """One measurement: our median time per batch beside transformers', measured in the same run."""

    variant: str
    batch: int
    precision: str  # "fp32" or "bf16"
    path: str  # what of ours ran
    ours_ms: float
    transformers_ms: float
    note: str = ""

    @property
    def ratio(self) -> float:
        """Our time over transformers' (below 1 is faster)."""
        return self.ours_ms / self.transformers_ms

    def line(self) -> str:
        if self.batch == 1:
            figures = f"{self.ours_ms:8.2f} ms vs {self.transformers_ms:8.2f} ms   time ratio {self.ratio:.2f}"
        else:
            ours, theirs = (self.batch * 1000 / ms for ms in (self.ours_ms, self.transformers_ms))
            figures = (
                f"{self.ours_ms:8.1f} ms vs {self.transformers_ms:8.1f} ms   time ratio {self.ratio:.2f}   "
                f"{ours:,.{0 if theirs >= 100 else 1}f} vs {theirs:,.{0 if theirs >= 100 else 1}f} img/s ({1 / self.ratio:.2f}x)"
            )
        return f"{self.variant:4} b{self.batch:<4} {self.precision:5} {self.path:26} {figures}" + (
            f"   {self.note}" if self.note else ""
        )


def paired_medians(calls: Sequence[Callable[[], object]], runs: int, device: torch.device) -> list[float]:
    """Median milliseconds of each call, timed in alternation so drift on a noisy machine hits all alike."""

    def timed(call: Callable[[], object]) -> float:
        start = time.perf_counter()
        call()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - start) * 1000

    for _ in range(2):
        for call in calls:
            timed(call)
    samples: list[list[float]] = [[] for _ in calls]
    for _ in range(runs):
        for call, times in zip(calls, samples):
            times.append(timed(call))
    return [statistics.median(times) for times in samples]


def same_weights(variant: str, device: torch.device) -> tuple[PoolFormer, torch.nn.Module]:
    """Our model (plain, loaded through create_model) and transformers', holding the same random weights."""
    reference = reference_model(variant)
    path = save_tensors(in_layout(reference.state_dict(), variant, "timm"), Path(f"/tmp/speed-{variant}.safetensors"))
    return create_model(weights=path, device=device), reference.to(device)


RowReport = Callable[[Row], None]


def emit(rows: list[Row], on_row: RowReport | None, row: Row) -> None:
    rows.append(row)
    if on_row is not None:
        on_row(row)


def cpu_rows(variants: Sequence[str], batches: Sequence[int], runs: int, on_row: RowReport | None) -> list[Row]:
    rows = []
    for variant in variants:
        plain, reference = same_weights(variant, torch.device("cpu"))
        folded = plain.for_inference()
        for batch in batches:
            x = torch.randn(batch, 3, 224, 224)
            with torch.inference_mode():
                ours, theirs, unfolded = paired_medians(
                    [lambda: folded(x), lambda: reference(x), lambda: plain(x)],
                    max(5, runs // batch),
                    torch.device("cpu"),
                )
            emit(rows, on_row, Row(variant, batch, "fp32", "eager, inference twin", ours, theirs))
            emit(rows, on_row, Row(variant, batch, "fp32", "eager, plain model", unfolded, theirs))
    return rows


def max_difference(a: object, b: object) -> float:
    """Largest |a - b| over a (logits, [stage outputs]) pair of results."""
    pairs = [(a[0], b[0]), *zip(a[1], b[1])] if isinstance(a, tuple) else [(a, b)]
    return max((x.float() - y.float()).abs().max().item() for x, y in pairs)


def cuda_rows(
    variants: Sequence[str], runs: int, mode: str, graph_variants: Sequence[str], on_row: RowReport | None
) -> list[Row]:
    exact_fp32()  # fp32 rows are true fp32 for both models
    rows: list[Row] = []
    for variant in variants:
        for row in cuda_variant_rows(variant, runs, mode, variant in graph_variants):
            emit(rows, on_row, row)
        torch._dynamo.reset()
        torch.cuda.empty_cache()
    return rows


def cuda_variant_rows(variant: str, runs: int, mode: str, graph: bool) -> Iterator[Row]:
    device = torch.device("cuda")
    plain, reference = same_weights(variant, device)
    eager = plain.for_inference()
    one = torch.randn(1, 3, 224, 224, device=device)
    many = torch.randn(GPU_BATCH, 3, 224, 224, device=device)
    with torch.inference_mode():
        ours, theirs, unfolded = paired_medians(
            [lambda: eager(one), lambda: reference(one), lambda: plain(one)], runs, device
        )
    yield Row(variant, 1, "fp32", "eager, inference twin", ours, theirs)
    yield Row(variant, 1, "fp32", "eager, plain model", unfolded, theirs)

    if graph:
        started = time.perf_counter()
        graphed = compile_model(eager)
        seconds = time.perf_counter() - started
        with torch.inference_mode():
            delta = max_difference(graphed.forward_with_stages(one), eager.forward_with_stages(one))
            ours, theirs = paired_medians(
                [lambda: graphed.forward_with_stages(one), lambda: reference(one)], runs, device
            )
        yield Row(
            variant,
            1,
            "fp32",
            "compiled + CUDA graph",
            ours,
            theirs,
            f"compile {seconds:.0f} s, max |Δ| vs eager {delta:.1e}",
        )

    bf16 = copy.deepcopy(plain).to(torch.bfloat16).for_inference()
    compiled = torch.compile(bf16, mode=None if mode == "default" else mode, dynamic=False)
    many_bf16 = many.to(torch.bfloat16)

    def autocast_call(model: torch.nn.Module) -> Callable[[], object]:
        def call() -> object:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                return model(many)

        return call

    with torch.inference_mode():
        started = time.perf_counter()
        compiled(many_bf16)
        torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        fast, theirs, ours_eager, unfolded = paired_medians(
            [lambda: compiled(many_bf16), autocast_call(reference), autocast_call(eager), autocast_call(plain)],
            max(5, runs // 4),
            device,
        )
    yield Row(variant, GPU_BATCH, "bf16", "eager autocast, twin", ours_eager, theirs)
    yield Row(variant, GPU_BATCH, "bf16", "eager autocast, plain", unfolded, theirs)
    yield Row(variant, GPU_BATCH, "bf16", f"compiled ({mode}), bf16 weights", fast, theirs, f"compile {seconds:.0f} s")


def machine(device: torch.device) -> str:
    chip = torch.cuda.get_device_name() if device.type == "cuda" else (platform.processor() or platform.machine())
    return f"{chip} · {device.type} · torch {torch.__version__} · {torch.get_num_threads()} CPU threads · {time.strftime('%Y-%m-%d')}"


def model_speed_rows(
    device: str | torch.device = "auto",
    variants: Sequence[str] | None = None,
    runs: int = 20,
    mode: str = "default",
    graph_variants: Sequence[str] = ("s12",),
    on_row: RowReport | None = None,
) -> list[Row]:
    """The benchmark's rows: CPU (s12, m36 at batch 1 and 8 by default) or CUDA (all five variants by default).

    `on_row` sees each row as soon as it is measured (CUDA compiles take minutes).
    """
    device = resolve_device(device)
    if device.type == "cuda":
        return cuda_rows(variants or list(VARIANTS), runs, mode, graph_variants, on_row)
    return cpu_rows(variants or CPU_VARIANTS, CPU_BATCHES, runs, on_row)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), help="default: s12 m36 on CPU, all on CUDA")
    parser.add_argument("--runs", type=int, default=20, help="timed calls per model at batch 1 (fewer for big batches)")
    parser.add_argument("--mode", default="default", help="torch.compile mode for the CUDA batch-256 rows")
    parser.add_argument("--graph-variants", nargs="*", default=["s12"], help="CUDA variants to compile for batch 1")
    args = parser.parse_args()
    device = resolve_device(args.device)
    print(f"machine: {machine(device)}")
    print("ours vs transformers' PoolFormerForImageClassification, same weights, medians, same run")
    model_speed_rows(
        device, args.variants, args.runs, args.mode, args.graph_variants, lambda row: print(row.line(), flush=True)
    )


if __name__ == "__main__":
    main()
