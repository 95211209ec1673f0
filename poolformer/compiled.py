"""Compiled inference on CUDA: `torch.compile` for one fixed input shape, replayed as a CUDA graph.

At batch 1 a PoolFormer on a GPU is bound by kernel launches, not arithmetic: compiling fuses the
element-wise work into fewer kernels and a CUDA graph launches all of them at once.

Exactness: the compiled graph computes the eager model's function in fp32; only the order of additions
differs. TF32 is switched off for convolutions and matrix products when a graph is built (the CUDA default
lets cuDNN use TF32). tests/test_compiled_gpu.py holds logits to 1e-5 and stage maps to 1e-4 of their
largest value (measured on an H100 with the bundled S12: at most 7.4e-7 and 1.8e-6, the first-mixer maps of
`forward_with_mixer_views` included). The bf16 throughput
path in benchmarks/model_speed.py is approximate by nature; that test checks it keeps the fp32 top-5.

On CPU nothing here is used: Inductor's CPU code needs a C++ compiler at run time and took 36-86 s per
process; the CPU fast path is ONNX Runtime instead (poolformer/fast_cpu.py).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Sequence

import torch
from torch.utils._pytree import tree_map

from poolformer.model import PoolFormer, shallow_copy

StageOutputs = tuple[torch.Tensor, list[torch.Tensor]]


def compiling_pays_off(device: torch.device) -> bool:
    """Compile only on CUDA; on CPU the eager folded model is faster than what compiling gives."""
    return device.type == "cuda"


def exact_fp32() -> None:
    """Make fp32 mean fp32 on CUDA: no TF32 in cuDNN convolutions or cuBLAS matrix products."""
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


class GraphedFunction:
    """One function compiled for one input shape and captured as a CUDA graph.

    Calls copy the input into the graph's static buffer, replay, and return fresh copies of the outputs,
    under a lock: the graph's buffers are shared, so concurrent callers take turns (a replay is short).
    """

    def __init__(
        self, function: Callable[[torch.Tensor], object], example: torch.Tensor, options: dict[str, object], warmup: int = 3
    ) -> None:
        compiled = torch.compile(function, dynamic=False, fullgraph=True, options=options)
        self.input = example.clone()
        self.lock = threading.Lock()
        self.replays = 0  # calls served by the graph (the GPU tests check that the app's views go through it)
        with torch.inference_mode():
            side = torch.cuda.Stream()  # warm up (compile, autotune, allocate) off the default stream
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(warmup):
                    compiled(self.input)
            torch.cuda.current_stream().wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            # thread_local: requests served eagerly on other threads meanwhile don't break the capture.
            with torch.cuda.graph(self.graph, capture_error_mode="thread_local"):
                self.output = compiled(self.input)
        torch.cuda.synchronize()

    def accepts(self, x: torch.Tensor) -> bool:
        """Only the captured shape, dtype and device, and only when no gradient is wanted (the graph has none)."""
        same = x.shape == self.input.shape and x.dtype == self.input.dtype and x.device == self.input.device
        return same and not torch.is_grad_enabled()

    def __call__(self, x: torch.Tensor):
        with self.lock, torch.inference_mode():
            self.input.copy_(x)
            self.graph.replay()
            self.replays += 1
            return tree_map(torch.clone, self.output)


class CompiledPoolFormer(PoolFormer):
    """A twin of a PoolFormer (same modules, same parameters) whose `forward_with_stages` and
    `forward_with_mixer_views` replay CUDA graphs for the one input shape they were built for, and run eagerly
    for any other input (or a method that has no graph).

    Everything else (the stem, the stages, `with_token_mixers`) is the eager model's own.
    """

    graphs: dict[str, GraphedFunction]

    def _replay_or_run(self, method: str, x: torch.Tensor):
        graph = self.graphs.get(method)
        if graph is not None and graph.accepts(x):
            return graph(x)
        return getattr(super(), method)(x)

    def forward_with_stages(self, x: torch.Tensor) -> StageOutputs:
        return self._replay_or_run("forward_with_stages", x)

    def forward_with_mixer_views(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        return self._replay_or_run("forward_with_mixer_views", x)


# Inductor settings to build the graph with; benchmarks/cuda_graph_options.py times each. "1x1-as-mm" turns the
# channel MLP's 1x1 convolutions into matrix products that Inductor fuses with their neighbours: on an H100 it
# took S12's batch-1 replay from 1.21 to 0.93 ms. (max_autotune found faster fp32 GEMMs, but its search for
# this one shape ran past four minutes.)
COMPILE_OPTIONS: dict[str, dict[str, object]] = {
    "default": {},
    "1x1-as-mm": {"conv_1x1_as_mm": True},
}
APP_OPTIONS = "1x1-as-mm"
# What the app graphs: /compare and the MetaFormer diagram call forward_with_stages, /predict calls
# forward_with_mixer_views. `eval` and the benchmarks need only the first.
APP_METHODS = ("forward_with_stages", "forward_with_mixer_views")


def compile_model(
    model: PoolFormer,
    batch: int = 1,
    size: int = 224,
    options: str = APP_OPTIONS,
    methods: Sequence[str] = ("forward_with_stages",),
) -> CompiledPoolFormer:
    """Build the graphed twin of an eval-mode CUDA model for (batch, 3, size, size) fp32 input; takes seconds
    per method."""
    device = next(model.parameters()).device
    exact_fp32()
    example = torch.zeros(batch, 3, size, size, device=device)
    twin = shallow_copy(model, CompiledPoolFormer)
    twin.graphs = {method: GraphedFunction(getattr(model, method), example, COMPILE_OPTIONS[options]) for method in methods}
    return twin


def compile_in_background(
    model: PoolFormer, ready: Callable[[CompiledPoolFormer], None], name: str
) -> threading.Thread:
    """Compile `model` on a daemon thread and hand the twin to `ready`; the eager model keeps serving meanwhile.

    The time it took goes to the log (stderr); a failure is logged and leaves the eager model in place.
    """

    def work() -> None:
        started = time.perf_counter()
        try:
            twin = compile_model(model, methods=APP_METHODS)
        except Exception as error:  # noqa: BLE001 - any failure here only means we stay eager
            print(f"compiling {name} failed, serving it eagerly: {error}", file=sys.stderr, flush=True)
            return
        print(f"compiled {name} for batch 1 in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
        ready(twin)

    thread = threading.Thread(target=work, name=f"compile {name}", daemon=True)
    thread.start()
    return thread
