"""Which compile options make the batch-1 CUDA graph fastest, in fp32 and exact to eager (issue 8, ≤ 1 ms on an H100).

    python benchmarks/cuda_graph_options.py [--variant s12] [--runs 300] [--options default 1x1-as-mm ...]

Each option builds the app's graphed twin (poolformer/compiled.py) of the same S12 with random weights, then
times it interleaved with transformers' eager model (the peer): the app's call (input copy, replay, copies of
the logits and the four stage maps) and the bare replay. max |Δ| is against our eager model, both in fp32
without TF32.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from model_speed import max_difference, paired_medians, same_weights  # noqa: E402

from poolformer.compiled import COMPILE_OPTIONS, compile_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", default="s12")
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--options", nargs="+", default=list(COMPILE_OPTIONS))
    args = parser.parse_args()
    device = torch.device("cuda")
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    plain, reference = same_weights(args.variant, device)
    eager = plain.for_inference()
    one = torch.randn(1, 3, 224, 224, device=device)
    for option in args.options:
        torch._dynamo.reset()  # each option compiles afresh
        started = time.perf_counter()
        graphed = compile_model(eager, options=option)
        seconds = time.perf_counter() - started
        with torch.inference_mode():
            delta = max_difference(graphed.forward_with_stages(one), eager.forward_with_stages(one))
            app_call, replay, theirs = paired_medians(
                [lambda: graphed.forward_with_stages(one), graphed.graphs["forward_with_stages"].graph.replay, lambda: reference(one)],
                args.runs,
                device,
            )
        print(
            f"{args.variant} b1 fp32 {option:22} app call {app_call:.3f} ms, bare replay {replay:.3f} ms, "
            f"transformers eager {theirs:.3f} ms ({theirs / app_call:.2f}x); compile {seconds:.0f} s, "
            f"max |Δ| vs eager {delta:.1e}",
            flush=True,
        )


if __name__ == "__main__":
    main()
