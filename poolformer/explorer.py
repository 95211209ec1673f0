"""What the Explorer app computes: its model catalogue, a shared model cache, and the three views.

Everything returns plain data (numpy arrays, dicts, dataclasses); drawing lives in `visualize/`
and the web UI in `app.py`. Nothing here imports gradio, so it is easy to test and reuse.

Models are loaded once into a bounded least-recently-used cache and shared read-only by every
request; the ablation derives an identity-mixer twin with `with_token_mixers`, which shares the
cached parameters without ever modifying the cached model.
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors import SafetensorError, safe_open

from poolformer.model import NUM_STAGES, VARIANTS, PoolFormer, Variant
from poolformer.preprocess import IMAGENET_MEAN, IMAGENET_STD, load_image, preprocess
from poolformer.weights import create_model, hub_weights_cached, resolve_device

ASSETS = Path(__file__).resolve().parent.parent / "assets"
TOP_K = 5
ALL_STAGES = tuple(range(1, NUM_STAGES + 1))  # stages are numbered 1-4 in the UI, as in the paper
CHANNELS_SHOWN = 8
TIMED_RUNS = 3
DEVICE = resolve_device(None)  # CUDA when present, else CPU

# MetaFormer paper (arXiv 2111.11418), Table 5: S12 trained from scratch on ImageNet-1k.
PAPER_S12_TOP1 = {"pooling": 77.2, "identity": 74.3}

LoadReporter = Callable[[str], None]
PhotoSource = str | Path | bytes | Image.Image


class ExplorerError(ValueError):
    """A request the app can't serve (unknown model, nothing to ablate); str is one line for the user."""


# --- the catalogue: which models a visitor can pick ---------------------------------------------


@dataclass(frozen=True)
class ModelChoice:
    """One entry of the model picker: a variant plus where its weights come from."""

    value: str  # the API value: "s12" ... "m48", or a bundled checkpoint's name like "s12-imagenette"
    name: str  # display name
    variant: Variant
    weights: str  # "hub" or the path of a bundled checkpoint
    token_mixer: str  # what the weights were trained with
    metadata: dict[str, str]  # a bundled checkpoint's safetensors metadata; {} for hub models

    @property
    def bundled(self) -> bool:
        return self.weights != "hub"


def checkpoint_dir() -> Path:
    """Where bundled checkpoints live; POOLFORMER_CHECKPOINT_DIR overrides it (tests, experiments)."""
    return Path(os.environ.get("POOLFORMER_CHECKPOINT_DIR", ASSETS / "checkpoints"))


def official_choice(variant: Variant) -> ModelChoice:
    """The official ImageNet-1k weights of one paper variant, fetched from the Hub."""
    return ModelChoice(variant.name, f"PoolFormer-{variant.name.upper()}", variant, "hub", "pooling", {})


def bundled_choice(path: Path) -> ModelChoice:
    """Describe a bundled checkpoint from its safetensors header alone, without loading tensors."""
    with safe_open(str(path), framework="pt") as checkpoint:
        metadata = dict(checkpoint.metadata() or {})
    value = path.stem.removeprefix("poolformer_").replace("_", "-")
    return ModelChoice(
        value=value,
        name=metadata.get("name", value),
        variant=VARIANTS[metadata.get("variant", "s12")],
        weights=str(path),
        token_mixer=metadata.get("token_mixer", "pooling"),
        metadata=metadata,
    )


def bundled_choices(directory: Path) -> list[ModelChoice]:
    """Every readable checkpoint in `directory`, pooling models first; a broken file is skipped, not fatal."""
    choices = []
    for path in sorted(directory.glob("*.safetensors")):
        try:
            choices.append(bundled_choice(path))
        except (SafetensorError, OSError, KeyError) as error:
            warnings.warn(f"skipping bundled checkpoint {path}: {error!r}", stacklevel=2)
    return sorted(choices, key=lambda choice: (choice.token_mixer != "pooling", choice.value))


@cache
def model_choices() -> tuple[ModelChoice, ...]:
    """The five official variants, then every bundled checkpoint (read once per process)."""
    bundled = bundled_choices(checkpoint_dir())
    return tuple(official_choice(variant) for variant in VARIANTS.values()) + tuple(bundled)


def choice_label(choice: ModelChoice) -> str:
    """The picker's text: the name and where the weights come from (bundled names already say so)."""
    if choice.bundled:
        return choice.name
    where = "in local cache" if hub_weights_cached(choice.variant.name) else "download from the Hub"
    return f"{choice.name} · ImageNet-1k · {where}"


def find_choice(value: str) -> ModelChoice:
    for choice in model_choices():
        if choice.value == value:
            return choice
    known = ", ".join(choice.value for choice in model_choices())
    raise ExplorerError(f"unknown model {value!r}; choose one of: {known}")


def default_choice() -> str:
    """The one place that decides the default model.

    Official S12 if its weights are already in the local Hugging Face cache, else the bundled
    pooling model (so a fresh offline machine works at once), else S12 from the Hub.
    """
    bundled = [choice for choice in model_choices() if choice.bundled and choice.token_mixer == "pooling"]
    if hub_weights_cached("s12") or not bundled:
        return "s12"
    return bundled[0].value


def weights_available(choice: ModelChoice) -> bool:
    """True when the model can load without the network: bundled, or already in the HF cache."""
    return choice.bundled or hub_weights_cached(choice.variant.name)


def scratch_twin(choice: ModelChoice) -> ModelChoice | None:
    """The bundled identity-mixer model trained like `choice` from scratch, if one is shipped."""
    if not choice.bundled or choice.token_mixer != "pooling":
        return None
    for other in model_choices():
        if (
            other.bundled
            and other.token_mixer == "identity"
            and other.variant == choice.variant
            and other.metadata.get("dataset") == choice.metadata.get("dataset")
        ):
            return other
    return None


def count_parameters(choice: ModelChoice) -> float:
    """Parameters in millions; exact for bundled checkpoints (read from the header), else the paper's."""
    if not choice.bundled:
        return choice.variant.params_m
    with safe_open(choice.weights, framework="pt") as checkpoint:
        total = sum(int(np.prod(checkpoint.get_slice(key).get_shape())) for key in checkpoint.keys())
    return total / 1e6


def describe(choice: ModelChoice) -> str:
    """A Markdown card: size, cost, accuracy, and where the weights come from."""
    variant = choice.variant
    facts = f"{count_parameters(choice):.1f} M params · {variant.macs_g} GMACs"
    if choice.bundled:
        classes = json.loads(choice.metadata.get("class_names", "[]"))
        accuracy = choice.metadata.get("val_top1")
        measured = f"{float(accuracy) * 100:.1f} % top-1 on {choice.metadata.get('dataset', 'its')} val" if accuracy else "accuracy not recorded"
        return (
            f"**{choice.name}** — {facts} · {measured}  \n"
            f"Knows only these {len(classes)} classes: {', '.join(classes)}.  \n"
            f"Token mixer: **{choice.token_mixer}**, trained from scratch. "
            f"Weights: bundled checkpoint `{Path(choice.weights).name}` (works offline).  \n"
            f"Recipe: {choice.metadata.get('recipe', 'not recorded')}"
        )
    where = (
        "in the local Hugging Face cache"
        if hub_weights_cached(variant.name)
        else "not cached yet: downloaded from the Hub on first use (needs network)"
    )
    return (
        f"**{choice.name}** — {facts} · paper top-1 **{variant.top1} %** on ImageNet-1k  \n"
        f"Weights: official `{variant.hub_repo}`, {where}."
    )


# --- the model cache ------------------------------------------------------------------------------


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


# --- shared steps -------------------------------------------------------------------------------


def photo_from(source: PhotoSource | None) -> Image.Image:
    """Decode the visitor's photo; no photo at all is a request error, not a crash."""
    if source is None:
        raise ExplorerError("no photo yet: upload, paste or drop one, or pick an example")
    return load_image(source)


def model_input(photo: Image.Image, variant: Variant) -> torch.Tensor:
    """Preprocess exactly as the weights were evaluated (the crop depends on the variant)."""
    return preprocess(photo, variant.crop_pct).to(DEVICE)


def input_photo(pixels: torch.Tensor) -> Image.Image:
    """The 224x224 crop the model actually saw, so overlays line up with the feature maps."""
    rgb = (pixels.cpu() * IMAGENET_STD + IMAGENET_MEAN)[0].clamp(0, 1).mul(255).round().byte()
    return Image.fromarray(rgb.permute(1, 2, 0).numpy())


def top_k(probabilities: torch.Tensor, class_names: Sequence[str], k: int = TOP_K) -> dict[str, float]:
    """Best k classes as {name: probability}, best first; the form gr.Label displays.

    ImageNet has a few repeated names ("crane", "maillot"); the class index disambiguates them.
    """
    values, indices = probabilities.topk(min(k, probabilities.numel()))
    result: dict[str, float] = {}
    for value, index in zip(values.tolist(), indices.tolist()):
        name = class_names[index]
        result[name if name not in result else f"{name} (class {index})"] = value
    return result


def energy(features: torch.Tensor) -> np.ndarray:
    """L2 norm over channels at each position of a (1, C, H, W) map: how strongly a stage responds."""
    return features[0].norm(dim=0).cpu().numpy()


# --- Predict --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StageView:
    """What one stage computed for one photo; maps are raw magnitudes, drawing normalises them."""

    number: int
    shape: tuple[int, int, int]  # (channels, height, width) of the stage output
    depth: int
    token_mixer: str  # "pooling", or "identity" for an IdentityFormer
    energy: np.ndarray  # (H, W): L2 norm over channels of the stage output
    top_channels: list[tuple[int, np.ndarray]]  # the most active channels: (index, (H, W) map)
    mixer_change: np.ndarray  # (H, W): L2 norm of the first block's token-mixer output, pool(x) - x


@dataclass(frozen=True)
class Prediction:
    choice: ModelChoice
    status: str
    photo: Image.Image  # the 224x224 crop the model saw
    top5: dict[str, float]
    stages: list[StageView]


@torch.inference_mode()
def forward_with_mixer_views(model: PoolFormer, pixels: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """Logits, stage outputs, and each stage's first token-mixer output, from one forward pass.

    It runs the stages one by one (as `forward_with_stages` does) so that, on the way, the first
    block's normalised input can also go through its token mixer: that is pool(x) - x, what
    pooling adds to each token at the start of the stage. It costs one extra norm + pool per stage.
    """
    x = model.stem(pixels)
    stage_outputs, mixer_outputs = [], []
    for stage in model.stages:
        x = stage.downsample(x)
        first_block = stage.blocks[0]
        mixer_outputs.append(first_block.token_mixer(first_block.norm1(x)))
        x = stage.blocks(x)
        stage_outputs.append(x)
    return model.head(x), stage_outputs, mixer_outputs


def stage_view(number: int, model: PoolFormer, features: torch.Tensor, mixer_output: torch.Tensor) -> StageView:
    channel_strength = features[0].mean(dim=(1, 2))
    strongest = channel_strength.topk(min(CHANNELS_SHOWN, channel_strength.numel())).indices.tolist()
    return StageView(
        number=number,
        shape=tuple(features.shape[1:]),
        depth=model.variant.depths[number - 1],
        token_mixer=model.token_mixers[number - 1],
        energy=energy(features),
        top_channels=[(index, features[0, index].cpu().numpy()) for index in strongest],
        mixer_change=energy(mixer_output),
    )


def predict(source: PhotoSource | None, value: str, report: LoadReporter | None = None) -> Prediction:
    """Top-5 and a per-stage look inside the network, for one photo and one model."""
    choice = find_choice(value)
    pixels = model_input(photo_from(source), choice.variant)
    model = MODELS.get(choice, report)
    logits, stage_outputs, mixer_outputs = forward_with_mixer_views(model, pixels)
    stages = [
        stage_view(number, model, features, mixed)
        for number, features, mixed in zip(ALL_STAGES, stage_outputs, mixer_outputs)
    ]
    return Prediction(
        choice=choice,
        status=status_line(model),
        photo=input_photo(pixels),
        top5=top_k(logits[0].softmax(-1), model.class_names),
        stages=stages,
    )


# --- Token-mixer ablation -------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One model's answer in the ablation: its name, full class probabilities and top-5."""

    name: str
    probabilities: np.ndarray
    top5: dict[str, float]


@dataclass(frozen=True)
class Ablation:
    choice: ModelChoice
    status: str
    swapped_stages: tuple[int, ...]
    class_names: list[str]
    pooling: Run
    identity: Run
    stage_cosine: list[float]  # per stage: cosine similarity of pooling vs identity features
    top1_agrees: bool
    kl_divergence: float  # KL(pooling || identity), nats
    scratch: Run | None  # the identity-mixer model trained from scratch, when one is bundled
    scratch_choice: ModelChoice | None


def run_of(name: str, logits: torch.Tensor, class_names: Sequence[str]) -> Run:
    probabilities = logits[0].softmax(-1)
    return Run(name, probabilities.cpu().numpy(), top_k(probabilities, class_names))


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0))


def kl_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p || q) in nats; probabilities are clipped so an impossible class can't make it infinite."""
    p64, q64 = p.astype(np.float64), np.clip(q.astype(np.float64), 1e-12, None)
    divergence = float(np.sum(p64 * (np.log(np.clip(p64, 1e-12, None)) - np.log(q64))))
    return max(divergence, 0.0)  # float32 probabilities can sum to 1 +- 1e-7, giving a tiny negative


def identity_mixers(stages: Sequence[int]) -> list[str]:
    """Per-stage mixer names with the chosen stages (numbered 1-4) switched to identity."""
    try:
        chosen = {int(stage) for stage in stages}
    except (TypeError, ValueError):
        raise ExplorerError(f"stages must be numbers from 1 to {NUM_STAGES}; got {list(stages)}") from None
    if not chosen:
        raise ExplorerError("tick at least one stage whose token mixer should become identity")
    if not chosen <= set(ALL_STAGES):
        raise ExplorerError(f"stages are numbered 1 to {NUM_STAGES}; got {sorted(chosen)}")
    return ["identity" if number in chosen else "pooling" for number in ALL_STAGES]


@torch.inference_mode()
def ablate(
    source: PhotoSource | None,
    value: str,
    stages: Sequence[int] = ALL_STAGES,
    report: LoadReporter | None = None,
) -> Ablation:
    """The same weights with pooling swapped for identity in the chosen stages, side by side."""
    choice = find_choice(value)
    if choice.token_mixer != "pooling":
        raise ExplorerError(f"{choice.name} already mixes tokens by identity; pick a pooling model to ablate")
    mixers = identity_mixers(stages)
    pixels = model_input(photo_from(source), choice.variant)
    model = MODELS.get(choice, report)
    pooled_logits, pooled_stages = model.forward_with_stages(pixels)
    identity_logits, identity_stages = model.with_token_mixers(mixers).forward_with_stages(pixels)
    pooling = run_of("pooling (as trained)", pooled_logits, model.class_names)
    identity = run_of("identity swapped in", identity_logits, model.class_names)

    twin = scratch_twin(choice)
    scratch = None
    if twin is not None:
        twin_model = MODELS.get(twin, report)  # same dataset, so the same classes in the same order
        scratch = run_of("identity, trained from scratch", twin_model(pixels), twin_model.class_names)
    return Ablation(
        choice=choice,
        status=status_line(model),
        swapped_stages=tuple(number for number, mixer in zip(ALL_STAGES, mixers) if mixer == "identity"),
        class_names=list(model.class_names),
        pooling=pooling,
        identity=identity,
        stage_cosine=[cosine(a, b) for a, b in zip(pooled_stages, identity_stages)],
        top1_agrees=int(pooling.probabilities.argmax()) == int(identity.probabilities.argmax()),
        kl_divergence=kl_divergence(pooling.probabilities, identity.probabilities),
        scratch=scratch,
        scratch_choice=twin,
    )


# --- Compare variants -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """One model's row in the comparison table, plus its stage-4 map for the side-by-side view."""

    choice: ModelChoice
    top5: dict[str, float]
    params_m: float
    latency_ms: float  # median of TIMED_RUNS forward passes on DEVICE
    photo: Image.Image
    stage4_energy: np.ndarray


def median_latency_ms(model: PoolFormer, pixels: torch.Tensor) -> float:
    """Median wall time of a forward pass; the caller's own pass has already warmed the model up."""
    timings = []
    for _ in range(TIMED_RUNS):
        start = time.perf_counter()
        model(pixels)
        if DEVICE.type == "cuda":
            torch.cuda.synchronize()
        timings.append((time.perf_counter() - start) * 1000)
    return statistics.median(timings)


@torch.inference_mode()
def compare_one(choice: ModelChoice, photo: Image.Image, report: LoadReporter | None) -> Comparison:
    pixels = model_input(photo, choice.variant)
    model = MODELS.get(choice, report)
    logits, stage_outputs = model.forward_with_stages(pixels)
    return Comparison(
        choice=choice,
        top5=top_k(logits[0].softmax(-1), model.class_names),
        params_m=sum(parameter.numel() for parameter in model.parameters()) / 1e6,
        latency_ms=median_latency_ms(model, pixels),
        photo=input_photo(pixels),
        stage4_energy=energy(stage_outputs[-1]),
    )


def compare(source: PhotoSource | None, report: LoadReporter | None = None) -> list[Comparison]:
    """One photo through every model whose weights are on this machine (bundled or HF-cached)."""
    photo = photo_from(source)
    available = [choice for choice in model_choices() if weights_available(choice)]
    if not available:
        raise ExplorerError("no model weights on this machine: download one with the CLI or pick a model to fetch it")
    return [compare_one(choice, photo, report) for choice in available]
