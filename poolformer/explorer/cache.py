"""The shared model cache: models load once and are shared read-only by every request."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from poolformer.compiled import compile_in_background, compiling_pays_off
from poolformer.explorer.catalogue import ModelChoice, find_choice
from poolformer.explorer.common import DEVICE, LoadReporter
from poolformer.explorer.downloads import DOWNLOADS
from poolformer.model import CpuServedPoolFormer, PoolFormer
from poolformer.weights import create_model


class ModelCache:
    """Bounded least-recently-used cache of eval-mode models, shared read-only by all requests.

    Each model has its own loading lock, so two visitors asking for the same model load it once,
    while a slow load never blocks visitors of models already in the cache. Hub weights that are
    not on disk yet are fetched by DOWNLOADS, waited for outside any lock and for a bounded time.
    Models are stored as their inference twins; on CUDA a compiled twin (poolformer/compiled.py) replaces one
    once it has been built in the background, so compiling never delays an answer. On CPU the twin's ONNX
    Runtime session (poolformer/fast_cpu.py) is built in the background the second time a model is asked for
    while cached, and the twin switches to it by itself: a session holds 1.4-2.2x the weights again, and a
    /compare sweep that loads each model once (most then evicted) would otherwise build one for every model.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._models: OrderedDict[str, PoolFormer] = OrderedDict()
        self._loading: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()  # guards the two tables above
        self._uncached_turn = threading.Lock()  # one model outside the cache at a time (see `borrowed`)

    def get(self, choice: ModelChoice, report: LoadReporter | None = None) -> PoolFormer:
        model, loading = self._cached(choice.value)
        if model is not None:
            if isinstance(model, CpuServedPoolFormer):  # asked for again while cached: worth its session now
                model.cpu_passes.build_in_background()  # (only the first time)
            return model
        if choice.repo is not None:
            DOWNLOADS.fetch(choice.repo, report, rules=choice.rules)
        with loading:
            model, _ = self._cached(choice.value)  # another request may have loaded it meanwhile
            if model is None:
                self._make_room()
                model = self._create(choice, report)
                self._store(choice.value, model)
                if compiling_pays_off(DEVICE):
                    compile_in_background(model, lambda twin: self._replace(choice.value, model, twin), choice.name)
            return model

    @contextmanager
    def borrowed(self, choice: ModelChoice, report: LoadReporter | None = None) -> Iterator[PoolFormer]:
        """A model for one pass of a sweep over many (/compare, the zoo): the cached one if it is cached, else a
        load of its own that is dropped after the pass. A sweep over more models than the cache holds would
        otherwise evict every model visitors are using (and their CPU sessions) and keep none; kept in free room,
        whichever model a sweep met first held it with its session (90-180 MB) though nobody had picked it.
        Such loads take turns in the whole process: two sweeps at once each held one (up to 130 MB apiece)."""
        if self.peek(choice.value) is not None:
            yield self.get(choice, report)
            return
        if choice.repo is not None:
            DOWNLOADS.fetch(choice.repo, report, rules=choice.rules)  # a slow download holds no turn
        with self._uncached_turn:
            yield self._create(choice, report)

    @staticmethod
    def _create(choice: ModelChoice, report: LoadReporter | None) -> PoolFormer:
        if report is not None:
            report(f"Loading {choice.name} weights…")
        # Views call this under inference_mode; weights made there could never enter the
        # autograd graph that Grad-CAM needs, so they are always created outside it.
        with torch.inference_mode(False):
            return create_model(
                choice.variant.name if choice.variant else None,
                weights=choice.repo or choice.weights,
                device=DEVICE,
                hub_rules=choice.rules,
            ).for_inference()

    def peek(self, value: str) -> PoolFormer | None:
        """The model if it is loaded, without loading it or changing its place in the LRU order."""
        with self._lock:
            return self._models.get(value)

    def _cached(self, value: str) -> tuple[PoolFormer | None, threading.Lock]:
        """The cached model (marked most recently used) or None, and the model's loading lock."""
        with self._lock:
            if value in self._models:
                self._models.move_to_end(value)
            return self._models.get(value), self._loading.setdefault(value, threading.Lock())

    def _replace(self, value: str, old: PoolFormer, new: PoolFormer) -> None:
        """Swap in `new` for `old`, unless `old` has left the cache meanwhile."""
        with self._lock:
            if self._models.get(value) is old:
                self._models[value] = new

    def _store(self, value: str, model: PoolFormer) -> None:
        with self._lock:
            self._models[value] = model
            while len(self._models) > self.capacity:  # two different models loaded side by side
                self._models.popitem(last=False)

    def _make_room(self) -> None:
        """Evict least recently used models until the one about to load fits within the capacity.

        Evicting before loading rather than after keeps at most `capacity` models in memory at once,
        which bounds the peak (/compare loads every variant in turn).
        """
        with self._lock:
            while self._models and len(self._models) >= self.capacity:
                self._models.popitem(last=False)


MODELS = ModelCache(capacity=int(os.environ.get("POOLFORMER_MODEL_CACHE_SIZE", "3")))


def status_line(model: PoolFormer, *, landed: bool = False) -> str:
    """Which weights are loaded, on which device, and how the default model's download is going."""
    line = f"**Loaded:** {model.weights_source} · **device:** {DEVICE.type}"
    note = DOWNLOADS.note(landed=landed)
    return f"{line}  \n{note}" if note else line


def loaded_model(value: str | None, report: LoadReporter | None = None) -> tuple[ModelChoice, PoolFormer]:
    """The picker entry of an API value and its model, loaded (and downloaded) if need be.

    The entry comes back completed by the model: a Hub repo's variant and classes are known only once it has loaded.
    """
    choice = find_choice(value)
    model = MODELS.get(choice, report)
    return choice.knowing(model), model


def loaded_status(value: str | None) -> str | None:
    """The status line of a model already loaded (None if it is not), with the download's latest news."""
    model = MODELS.peek(find_choice(value).value)
    return status_line(model, landed=True) if model is not None else None


def load(value: str, report: LoadReporter | None = None) -> str:
    """Make sure a model is loaded (the picker calls this on change) and return the status line."""
    return status_line(MODELS.get(find_choice(value), report))
