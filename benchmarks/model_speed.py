"""Our PoolFormer against transformers' on the same weights, in the same process: model speed on CPU and CUDA.

    python benchmarks/model_speed.py [--device auto|cpu|cuda] [--variants s12 m36] [--runs 20] [--threads 1 2]
                                     [--mode default]

As a library: `model_speed_rows(device, variants=None, runs=20, ...)` returns the rows this script prints
(a list of `Row`, each our median time beside transformers' from the same run); benchmarks/speed_report.py
imports it.

CPU (fp32, batch 1 and 8, 1 and 2 torch threads, each quiet and contended): the fast path
(`PoolFormer.for_inference()` with its ONNX Runtime session built: poolformer/fast_cpu.py, what the app and
`eval` run), the same twin eager (its session not built), our plain trainable model, and transformers'
PoolFormerForImageClassification, timed in alternation so a noisy neighbour hits all alike, each call right after
an untimed call of itself (so no engine's threads linger into another's timing). "Contended" times
them again with a CPU-bound process pinned to core 0 (a shared Space's neighbour). Each row notes the 1-minute
load average. Targets (issue 18): the fast path <= 0.6x transformers' time quiet, <= 0.7x contended.
Beside them, timed in the same alternation, a large fp32 matrix product through torch's GEMM and through ONNX
Runtime's: the "at the best matmul rate" row is the model's multiply-accumulates done at the faster product's
rate with pooling, norms and activations free, how near the cores' fp32 peak a path runs. Both engines, since
neither is always the faster: on AMD's Zen 5 cores torch's GEMM (MKL) reached 107 GFLOP/s on one thread where
ONNX Runtime's reached 233. Quiet rows only: with a neighbour the product's own threads wait on the busy core.
CUDA: batch 1 fp32 eager, and compiled + CUDA graph (the app's path; poolformer/compiled.py) with its max |Δ|
from eager; batch 256 bf16: ours compiled with bf16 weights against transformers eager under bf16 autocast
(and ours eager under autocast). Target: >= 2.2x transformers' throughput.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from reference import in_layout, reference_model, save_tensors

from poolformer.compiled import compile_model, exact_fp32
from poolformer.complexity import macs
from poolformer.fast_cpu import OPSET, onnxruntime_module
from poolformer.model import VARIANTS, PoolFormer
from poolformer.weights import create_model, resolve_device

CPU_VARIANTS = ("s12", "m36")
CPU_BATCHES = (1, 8)
CPU_THREADS = (1, 2)
GPU_BATCH = 256
MATMUL_SHAPE = (2048, 1024, 1024)  # (M, K, N): 4.3 GFLOP, large enough for torch's GEMM to run at its best rate


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
    threads: int = 0  # CPU rows: torch (and ONNX Runtime) intra-op threads
    contended: bool = False  # CPU rows: timed with a busy process on core 0

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
        setting = f"{self.threads}t {'busy ' if self.contended else 'quiet'} " if self.threads else ""
        return f"{self.variant:4} b{self.batch:<4} {self.precision:5} {setting}{self.path:26} {figures}" + (
            f"   {self.note}" if self.note else ""
        )


def paired_medians(
    calls: Sequence[Callable[[], object]], runs: int, device: torch.device, after_itself: bool = False
) -> list[float]:
    """Median milliseconds of each call, timed in alternation so drift on a noisy machine hits all alike.

    `after_itself` runs each call once untimed just before it is timed, so that no call starts while another
    engine's threads still hold a core: torch's OpenMP threads spin for 5-10 ms after each parallel region, which
    halved ONNX Runtime's two-thread matrix product (250 against 445 GFLOP/s 10 ms later; README, Speed).
    """

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
            if after_itself:
                call()
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


@contextmanager
def busy_neighbour() -> Iterator[None]:
    """A CPU-bound process pinned to core 0 for as long as the block runs."""
    spin = subprocess.Popen(
        [sys.executable, "-c", "import os; os.sched_setaffinity(0, {0})\nwhile True: pass"],
        stdin=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.2)  # running before the timing starts
        yield
    finally:
        spin.kill()
        spin.wait()


def load_note() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def cpu_rows(
    variants: Sequence[str], batches: Sequence[int], threads: Sequence[int], runs: int, on_row: RowReport | None
) -> list[Row]:
    rows = []
    default_threads = torch.get_num_threads()
    try:
        for count in threads:
            torch.set_num_threads(count)
            for variant in variants:
                for row in cpu_variant_rows(variant, batches, count, runs):
                    emit(rows, on_row, row)
    finally:
        torch.set_num_threads(default_threads)
    return rows


def matmul_calls(threads: int) -> tuple[dict[str, Callable[[], object]], int]:
    """A large fp32 matrix product through each engine at hand, and its floating-point operations: the rate
    these cores compute at."""
    rows, inner, columns = MATMUL_SHAPE
    a, b = torch.randn(rows, inner), torch.randn(inner, columns)
    calls: dict[str, Callable[[], object]] = {"torch": lambda: torch.mm(a, b)}
    onnxruntime = onnxruntime_module()
    if onnxruntime is not None:
        from onnx import TensorProto, helper, numpy_helper

        graph = helper.make_graph(
            [helper.make_node("MatMul", ["a", "b"], ["product"])], "matmul",
            [helper.make_tensor_value_info("a", TensorProto.FLOAT, [rows, inner])],
            [helper.make_tensor_value_info("product", TensorProto.FLOAT, [rows, columns])],
            [numpy_helper.from_array(b.numpy(), "b")],
        )  # fmt: skip
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as the fast path runs
        product = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8)
        session = onnxruntime.InferenceSession(product.SerializeToString(), options, providers=["CPUExecutionProvider"])
        a_array = a.numpy()
        calls["ONNX Runtime"] = lambda: session.run(None, {"a": a_array})
    return calls, 2 * rows * inner * columns


def cpu_variant_rows(variant: str, batches: Sequence[int], threads: int, runs: int) -> Iterator[Row]:
    plain, reference = same_weights(variant, torch.device("cpu"))
    image_flops = 2 * macs(plain)
    matmuls, matmul_flops = matmul_calls(threads)
    eager = plain.for_inference()  # its session never built: the folded twin, eager
    fast = plain.for_inference()
    started = time.perf_counter()
    built = fast.cpu_passes.build(threads)
    build_note = f"session built in {time.perf_counter() - started:.1f} s" if built else f"NOT BUILT ({fast.cpu_passes.state})"
    for batch in batches:
        x = torch.randn(batch, 3, 224, 224)
        for contended in (False, True):
            # The matrix product only where its rate means something (quiet: see the module's docstring).
            calls = [lambda: fast(x), lambda: reference(x), lambda: eager(x), lambda: plain(x)]
            with busy_neighbour() if contended else nullcontext(), torch.inference_mode():
                served, theirs, ours_eager, unfolded, *matmul_ms = paired_medians(
                    calls if contended else [*calls, *matmuls.values()], max(5, runs // batch), torch.device("cpu"),
                    after_itself=True,
                )
                load = load_note()
            setting = {"threads": threads, "contended": contended}
            note = f"{load}, {build_note}" if batch == batches[0] and not contended else load
            yield Row(variant, batch, "fp32", "ONNX Runtime (fast path)", served, theirs, note, **setting)
            yield Row(variant, batch, "fp32", "eager, inference twin", ours_eager, theirs, load, **setting)
            yield Row(variant, batch, "fp32", "eager, plain model", unfolded, theirs, load, **setting)
            if matmul_ms:
                rates = {engine: matmul_flops / ms for engine, ms in zip(matmuls, matmul_ms)}  # FLOP per ms
                best = max(rates.values())
                flops = image_flops * batch
                engines = ", ".join(f"{engine} {rate / 1e6:.0f}" for engine, rate in rates.items())
                rate_note = f"{flops / 1e9:.1f} GFLOP at {engines} GFLOP/s"
                yield Row(variant, batch, "fp32", "at the best matmul rate", flops / best, theirs, rate_note, **setting)


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
    threads: Sequence[int] = CPU_THREADS,
) -> list[Row]:
    """The benchmark's rows: CPU (s12, m36 at batch 1 and 8, 1 and 2 threads, quiet and contended, by default)
    or CUDA (all five variants by default).

    `on_row` sees each row as soon as it is measured (CUDA compiles take minutes).
    """
    device = resolve_device(device)
    if device.type == "cuda":
        return cuda_rows(variants or list(VARIANTS), runs, mode, graph_variants, on_row)
    return cpu_rows(variants or CPU_VARIANTS, CPU_BATCHES, threads, runs, on_row)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), help="default: s12 m36 on CPU, all on CUDA")
    parser.add_argument("--runs", type=int, default=20, help="timed calls per model at batch 1 (fewer for big batches)")
    parser.add_argument("--mode", default="default", help="torch.compile mode for the CUDA batch-256 rows")
    parser.add_argument("--graph-variants", nargs="*", default=["s12"], help="CUDA variants to compile for batch 1")
    parser.add_argument("--threads", nargs="+", type=int, default=list(CPU_THREADS), help="CPU intra-op thread counts")
    args = parser.parse_args()
    device = resolve_device(args.device)
    print(f"machine: {machine(device)}")
    print("ours vs transformers' PoolFormerForImageClassification, same weights, medians, same run")
    model_speed_rows(
        device, args.variants, args.runs, args.mode, args.graph_variants, lambda row: print(row.line(), flush=True),
        args.threads,
    )  # fmt: skip
    print(f"load average at the end: {', '.join(f'{value:.1f}' for value in os.getloadavg())}")


if __name__ == "__main__":
    main()
