"""Fast CPU inference: the as-trained pass exported to ONNX and run by ONNX Runtime, checked against eager.

On CPU the eager model spends its time in convolutions and in many small element-wise passes over memory.
ONNX Runtime lays the convolutions out in blocks of channels (NCHWc) and fuses the element-wise work into
them, which is about 1.6-2x faster than transformers' eager model here and degrades far less when the cores are
shared (README, Speed; benchmarks/model_speed.py). Only the fixed-shape pass is exported: 224 x 224 RGB, any
batch, all nine outputs of `forward_with_mixer_views` (logits, four stage maps, four first-mixer maps), so one
session serves /predict, the pooling filter, the diagram and /compare; ONNX Runtime's common-subexpression pass
merges the view's norm + mixer with the block's own, so the views cost nothing extra.

Exactness: a build runs one random image through both and keeps the session only if every output is within
1e-5 of the eager output's largest magnitude (tests/test_fast_cpu.py holds it to that for all five variants and
the bundled models). Anything that can't be served exactly (other shapes, gradients, a failed export or check,
onnxruntime not installed) runs eagerly, with one log line for a failure. Exporting needs no compiler and no
network: torch traces the model and writes the graph in-process (its TorchScript-based exporter).
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
import warnings
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)

INPUT_SIZE = 224  # what every view feeds the model (poolformer/preprocess.py crops to it)
TOLERANCE = 1e-5  # of each output's largest magnitude
OPSET = 17
# POOLFORMER_FAST_CPU=0 keeps every CPU pass eager (the benchmarks time the app both ways in one run).
ENABLED = os.environ.get("POOLFORMER_FAST_CPU", "1") != "0"
MixerViews = tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]

# One build at a time: torch's exporter keeps global state, each build holds the weights twice more for a
# moment (the exported graph, then the session's own copy), and /compare loads every model in turn.
BUILDING = threading.RLock()
_missing_engine_logged = False


def onnxruntime_module():  # noqa: ANN201 - the module, or None when it is not installed
    """ONNX Runtime, imported on first use (0.3 s) so that nothing pays for it until a session is built."""
    global _missing_engine_logged
    try:
        import onnxruntime
    except ImportError as error:
        if not _missing_engine_logged:
            log.warning("ONNX Runtime is not installed (%s): the CPU passes run eagerly", error)
            _missing_engine_logged = True
        return None
    return onnxruntime


class _FlatMixerViews(nn.Module):
    """`forward_with_mixer_views` with its outputs as one flat tuple, the form an ONNX graph returns."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        logits, stage_outputs, mixer_outputs = self.model.forward_with_mixer_views(x)
        return (logits, *stage_outputs, *mixer_outputs)


def _group_norm_with_float64_moments(g, x, groups, weight, bias, eps, cudnn_enabled):  # noqa: ANN001, ANN202
    """GroupNorm(1, C) as ONNX ops whose mean and variance are summed in float64.

    torch's exporter writes GroupNorm as InstanceNormalization, whose float32 sums over a whole stage map
    (up to 300k values) put the bundled S12 and random M36 1.2e-5 away from eager; summed in float64 they stay
    within 2e-6, at about 1 % of the pass's time. Other group counts keep torch's own translation.
    """
    if groups != 1 or torch.onnx.symbolic_helper._is_none(weight) or torch.onnx.symbolic_helper._is_none(bias):
        return torch.onnx.symbolic_opset9.group_norm(g, x, groups, weight, bias, eps, cudnn_enabled)
    wide = g.op("Cast", x, to_i=11)  # 11: DOUBLE
    mean = g.op("ReduceMean", wide, axes_i=[1, 2, 3], keepdims_i=1)
    count = g.op("Cast", g.op("ReduceProd", g.op("Shape", x, start_i=1), keepdims_i=1), to_i=11)
    mean_square = g.op("Div", g.op("ReduceSumSquare", wide, axes_i=[1, 2, 3], keepdims_i=1), count)
    variance = g.op("Sub", mean_square, g.op("Mul", mean, mean))  # exact enough in float64
    epsilon = g.op("Constant", value_t=torch.tensor(eps, dtype=torch.float64))
    inverse_std = g.op("Cast", g.op("Reciprocal", g.op("Sqrt", g.op("Add", variance, epsilon))), to_i=1)  # 1: FLOAT
    channel_axes = g.op("Constant", value_t=torch.tensor([1, 2]))
    scale = g.op("Mul", inverse_std, g.op("Unsqueeze", weight, channel_axes))  # (N, C, 1, 1)
    centred = g.op("Sub", x, g.op("Cast", mean, to_i=1))
    return g.op("Add", g.op("Mul", centred, scale), g.op("Unsqueeze", bias, channel_axes))


def export_onnx(model: nn.Module, path: Path) -> None:
    """Write the ONNX graph of `model.forward_with_mixer_views` for (any batch, 3, 224, 224) fp32 input."""
    example = torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE)
    # Registered for this process's TorchScript-based exports (the same function, written more precisely) here
    # rather than at import, which would load the exporter (0.1-0.4 s) into every process that imports the model.
    typed = torch.onnx.symbolic_helper.parse_args("v", "i", "v", "v", "f", "i")(_group_norm_with_float64_moments)
    torch.onnx.register_custom_op_symbolic("aten::group_norm", typed, OPSET)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice; torch is pinned
        torch.onnx.export(
            _FlatMixerViews(model), (example,), str(path), dynamo=False, opset_version=OPSET,
            input_names=["pixels"], dynamic_axes={"pixels": {0: "batch"}},
        )  # fmt: skip


def largest_relative_difference(served: MixerViews, eager: MixerViews) -> float:
    """max |served - eager| / max |eager| over the outputs, the worst of them."""
    pairs = [(served[0], eager[0]), *zip(served[1], eager[1]), *zip(served[2], eager[2])]
    return max(float((a - b).abs().max() / b.abs().max().clamp_min(1e-30)) for a, b in pairs)


def lower_this_threads_priority() -> None:
    """Nice the calling thread (Linux schedules threads one by one), so a build yields the cores to requests."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):  # not Linux, or not allowed: the build just competes evenly
        pass


class CpuPasses:
    """An ONNX Runtime session for one model's as-trained pass, built on request, serving only once built.

    `__call__` returns the nine outputs for inputs it can serve exactly, and None for the rest (and while
    nothing is built), so the caller runs eagerly. ONNX Runtime's `run` may be called from several threads at
    once; each run uses `threads` intra-op threads (default: torch's setting when the build starts), without
    spin-waiting, so that a busy neighbour costs little. A batch runs image by image: one image's maps stay in the
    caches where a batch's spill out (S12 batch 8, one thread: 439 against 514 ms at once; README, Speed). With two
    or more threads its images are shared among that many workers, each running a second, one-thread session:
    ONNX Runtime gains only 1.5x from a second thread within a run (S12 batch 8: 264 ms, against 214 ms split).
    That costs a second copy of the weights, so only a direct `build` (the CLI, evaluation, benchmarks) makes it;
    the app's background builds do not, as it runs one picture, or lanes of them, per thread.
    """

    def __init__(self, model: nn.Module, name: str = "model") -> None:
        self.name = name
        self.state = "not built"  # then "queued", "building", and "ready" or "failed" ("off": POOLFORMER_FAST_CPU=0)
        self.calls = 0  # calls served by the session (tests check that the views go through it)
        self._model: nn.Module | None = model  # the eager model to export; dropped once built
        self._session = None
        self._batch_session = None  # two or more threads: the one-thread session a batch's parts share
        self._batch_workers: ThreadPoolExecutor | None = None  # one per thread, each running the batch session

    def accepts(self, x: torch.Tensor) -> bool:
        """The exported shape, fp32 on the CPU, and no gradient wanted (the session has none)."""
        shape_fits = x.dim() == 4 and tuple(x.shape[1:]) == (3, INPUT_SIZE, INPUT_SIZE)
        return shape_fits and x.dtype == torch.float32 and x.device.type == "cpu" and not torch.is_grad_enabled()

    def __call__(self, x: torch.Tensor) -> MixerViews | None:
        session = self._session
        if session is None or not self.accepts(x):
            return None
        pixels = x.contiguous().numpy()
        images = [pixels[index : index + 1] for index in range(len(pixels))]
        if self._batch_workers is None or len(images) == 1:
            runs = [session.run(None, {"pixels": image}) for image in images]
        else:
            runs = list(self._batch_workers.map(lambda image: self._batch_session.run(None, {"pixels": image}), images))
        arrays = runs[0] if len(runs) == 1 else [np.concatenate(outputs) for outputs in zip(*runs)]
        outputs = [torch.from_numpy(array) for array in arrays]
        self.calls += 1
        return outputs[0], outputs[1:5], outputs[5:9]

    def build(self, threads: int | None = None, split_batches: bool = True) -> bool:
        """Export, start a session (and with `split_batches` the one-thread one for batches, when threads > 1) and
        check them against eager now; True if it serves. Seconds for S12."""
        with BUILDING:
            if self.state in ("ready", "failed", "off"):
                return self.state == "ready"
            if not ENABLED:
                self.state = "off"
                return False
            self.state = "building"
            started = time.perf_counter()
            threads = threads or torch.get_num_threads()
            try:
                self._session, self._batch_session = self._checked_sessions(threads, split_batches)
            except Exception as error:  # noqa: BLE001 - any failure only means this model stays eager
                log.warning("ONNX Runtime passes for %s failed, serving it eagerly: %s", self.name, error)
            if self._batch_session is not None:
                self._batch_workers = ThreadPoolExecutor(threads, f"onnx {self.name}")
            self.state = "ready" if self._session is not None else "failed"
            self._model = None
            if self._session is not None:
                log.info("ONNX Runtime passes for %s ready in %.1f s", self.name, time.perf_counter() - started)
            return self._session is not None

    def build_in_background(
        self, threads: int | None = None, ready: Callable[[], None] | None = None
    ) -> threading.Thread | None:
        """Build on a daemon thread, one build at a time, while the eager model serves; `ready` is called after.

        A model dropped (say, evicted from the app's cache) before its turn is not built at all.
        """
        if self.state != "not built":
            return None
        self.state = "queued"
        threads = threads or torch.get_num_threads()  # the caller's setting, not the new thread's default
        waiting = weakref.ref(self)

        def work() -> None:
            if threads == 1:  # a pool thread made now would inherit the priority and slow later runs
                lower_this_threads_priority()
            with BUILDING:
                passes = waiting()
                if passes is not None and passes.build(threads, split_batches=False) and ready is not None:
                    ready()

        thread = threading.Thread(target=work, name=f"onnx {self.name}", daemon=True)
        thread.start()
        return thread

    def _checked_sessions(self, threads: int, split_batches: bool):  # noqa: ANN202 - (session or None, one-thread batch session or None)
        onnxruntime = onnxruntime_module()
        if onnxruntime is None or self._model is None:
            return None, None

        def session(graph: Path, threads: int):  # noqa: ANN202 - an onnxruntime.InferenceSession
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            # ONNX Runtime's CPU arena keeps the largest run's intermediates for the session's life: one batch of 8
            # left S12's session 187 MB bigger for good. Without it a run's buffers go back, at no cost in speed.
            options.enable_cpu_mem_arena = False
            return onnxruntime.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])

        # Through a file: a session made from bytes keeps them for its whole life (S12: 46 MB more per session).
        with tempfile.TemporaryDirectory(prefix="poolformer-onnx-") as folder:
            graph = Path(folder) / "model.onnx"
            export_onnx(self._model, graph)
            sessions = (session(graph, threads), session(graph, 1) if split_batches and threads > 1 else None)
        probe = torch.randn(1, 3, INPUT_SIZE, INPUT_SIZE, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            eager = self._model.forward_with_mixer_views(probe)
        for served in filter(None, sessions):
            outputs = [torch.from_numpy(array) for array in served.run(None, {"pixels": probe.numpy()})]
            difference = largest_relative_difference((outputs[0], outputs[1:5], outputs[5:9]), eager)
            if not difference <= TOLERANCE:
                raise ValueError(f"its outputs differ from eager by {difference:.1e} of their scale (> {TOLERANCE})")
        return sessions
