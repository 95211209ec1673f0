"""Where a CPU forward pass spends its time, operator by operator: ours (plain and inference twin) and transformers'.

    python benchmarks/op_shares.py [--variant s12] [--batch 1] [--runs 20] [--threads N]

torch.profiler slows this torch 2.13 CPU build 12-30x, which makes its shares meaningless. This times each
ATen operator instead, from a TorchDispatchMode: the clock runs only inside the operator, so the Python
around it is not counted, and the sum over operators is compared with the pass's own time. Before/after for
issue 8: "plain" is our model as trained (the same operators as transformers'), "twin" is
`PoolFormer.for_inference()` run eagerly (its ONNX Runtime session, poolformer/fast_cpu.py, not built).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from model_speed import same_weights  # noqa: E402

# ATen operators grouped as a reader thinks of them.
GROUPS = {
    "conv2d": "convolution", "convolution": "convolution", "avg_pool2d": "average pool",
    "group_norm": "GroupNorm", "native_group_norm": "GroupNorm", "gelu": "GELU",
    "addcmul": "residual update", "add": "residual update", "mul": "residual update", "sub": "pool − x",
    "contiguous": "layout copies", "clone": "layout copies", "copy_": "layout copies",
    "linear": "head", "mean": "head",
}  # fmt: skip


class OperatorClock(TorchDispatchMode):
    """Adds up the wall time of every ATen operator called while active, by operator name."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: dict[str, float] = defaultdict(float)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001 - torch's signature
        started = time.perf_counter()
        result = func(*args, **(kwargs or {}))
        self.seconds[func.overloadpacket.__name__] += time.perf_counter() - started
        return result


def shares(model: Callable[[torch.Tensor], object], x: torch.Tensor, runs: int) -> tuple[dict[str, float], float]:
    """Median ms per operator group over `runs` passes, and the median ms of a pass timed without the clock."""
    per_run: list[dict[str, float]] = []
    plain_ms = []
    with torch.inference_mode():
        for _ in range(3):
            model(x)
        for _ in range(runs):
            started = time.perf_counter()
            model(x)
            plain_ms.append((time.perf_counter() - started) * 1000)
            clock = OperatorClock()
            with clock:
                model(x)
            groups: dict[str, float] = defaultdict(float)
            for name, seconds in clock.seconds.items():
                groups[GROUPS.get(name, "other")] += seconds * 1000
            per_run.append(groups)
    names = sorted({name for groups in per_run for name in groups})
    return {name: statistics.median(groups.get(name, 0.0) for groups in per_run) for name in names}, statistics.median(plain_ms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", default="s12")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    plain, reference = same_weights(args.variant, torch.device("cpu"))
    models = {"transformers": reference, "ours, plain": plain, "ours, twin": plain.for_inference()}
    x = torch.randn(args.batch, 3, 224, 224)
    print(f"{args.variant} batch {args.batch}, fp32, {args.threads} threads, torch {torch.__version__}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; ms per pass (share of the operators' sum)")
    results = {name: shares(model, x, args.runs) for name, model in models.items()}
    groups = sorted({group for by_group, _ in results.values() for group in by_group},
                    key=lambda group: -results["transformers"][0].get(group, 0.0))
    print(f"{'':18}" + "".join(f"{name:>26}" for name in results))
    for group in groups:
        cells = []
        for by_group, _ in results.values():
            total = sum(by_group.values())
            value = by_group.get(group, 0.0)
            cells.append(f"{value:9.2f} ms ({value / total:5.1%})" if value else f"{'—':>20}")
        print(f"{group:18}" + "".join(f"{cell:>26}" for cell in cells))
    print(f"{'operators, sum':18}" + "".join(f"{sum(g.values()):23.2f} ms" for g, _ in results.values()))
    print(f"{'pass, no clock':18}" + "".join(f"{ms:23.2f} ms" for _, ms in results.values()))
    theirs = results["transformers"][1]
    print(f"{'ratio to transf.':18}" + "".join(f"{ms / theirs:26.2f}" for _, ms in results.values()))


if __name__ == "__main__":
    main()
