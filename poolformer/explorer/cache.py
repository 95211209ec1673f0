"""The shared model cache: models load once and are shared read-only by every request."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict

import torch

from poolformer.explorer.catalogue import ModelChoice, find_choice
from poolformer.explorer.common import DEVICE, LoadReporter
from poolformer.model import PoolFormer
from poolformer.weights import create_model


class ModelCache:
    """Bounded least-recently-used cache of eval-mode models, shared read-only by all requests.

    Each model has its own loading lock, so two visitors asking for the same model load it once,
    while a slow load (a Hub download) never blocks visitors of models already in the cache.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._models: OrderedDict[str, PoolFormer] = OrderedDict()
        self._loading: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()  # guards the two tables above

    def get(self, choice: ModelChoice, report: LoadReporter | None = None) -> PoolFormer:
        model, loading = self._cached(choice.value)
        if model is not None:
            return model
        with loading:
            model, _ = self._cached(choice.value)  # another request may have loaded it meanwhile
            if model is None:
                if report is not None:
                    report(f"Loading {choice.name} weights…")
                # Views call this under inference_mode; weights made there could never enter the
                # autograd graph that Grad-CAM needs, so they are always created outside it.
                with torch.inference_mode(False):
                    model = create_model(choice.variant.name, weights=choice.weights, device=DEVICE)
                self._store(choice.value, model)
            return model

    def _cached(self, value: str) -> tuple[PoolFormer | None, threading.Lock]:
        """The cached model (marked most recently used) or None, and the model's loading lock."""
        with self._lock:
            if value in self._models:
                self._models.move_to_end(value)
            return self._models.get(value), self._loading.setdefault(value, threading.Lock())

    def _store(self, value: str, model: PoolFormer) -> None:
        with self._lock:
            self._models[value] = model
            while len(self._models) > self.capacity:
                self._models.popitem(last=False)


MODELS = ModelCache(capacity=int(os.environ.get("POOLFORMER_MODEL_CACHE_SIZE", "3")))


def status_line(model: PoolFormer) -> str:
    """Which weights are loaded, on which device: shown under the picker at all times."""
    return f"**Loaded:** {model.weights_source} · **device:** {DEVICE.type}"


def load(value: str, report: LoadReporter | None = None) -> str:
    """Make sure a model is loaded (the picker calls this on change) and return the status line."""
    return status_line(MODELS.get(find_choice(value), report))


