"""The CPU fast path (poolformer/fast_cpu.py): ONNX Runtime serves the as-trained passes within 1e-5 of eager,
only where it can be exact, and anything it can't serve (or a missing engine) runs eagerly.

Speed is measured by benchmarks/model_speed.py, not here.
"""

from __future__ import annotations

import gc
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from reference import in_layout, reference_model

from poolformer import fast_cpu
from poolformer.fast_cpu import TOLERANCE, CpuPasses, largest_relative_difference
from poolformer.gradcam import grad_cam
from poolformer.model import TOKEN_MIXERS, VARIANTS, CpuServedPoolFormer, PoolFormer
from poolformer.preprocess import load_image, preprocess
from poolformer.weights import create_model

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((REPO / "assets" / "examples").glob("*.jpg"))
BUNDLED = {
    "pooling": REPO / "assets" / "checkpoints" / "poolformer_s12_imagenette.safetensors",
    "identity": REPO / "assets" / "checkpoints" / "identityformer_s12_imagenette.safetensors",
}


def random_model(variant: str, seed: int = 3) -> PoolFormer:
    """Our model with transformers' perturbed random weights (layer scales near 0.5: every block counts)."""
    model = PoolFormer(VARIANTS[variant]).eval()
    model.load_state_dict(in_layout(reference_model(variant, seed=seed).state_dict(), variant, "timm"))
    return model


def served_twin(model: PoolFormer) -> CpuServedPoolFormer:
    twin = model.for_inference()
    assert isinstance(twin, CpuServedPoolFormer)
    assert twin.cpu_passes.build(), f"the session was not built: {twin.cpu_passes.state}"
    return twin


def assert_served_exactly(model: PoolFormer, twin: CpuServedPoolFormer, pixels: torch.Tensor) -> None:
    """Both passes come from the session (its call count moves) and every output is within the tolerance."""
    calls = twin.cpu_passes.calls
    with torch.inference_mode():
        eager_views, served_views = model.forward_with_mixer_views(pixels), twin.forward_with_mixer_views(pixels)
        (eager_logits, eager_stages), (served_logits, served_stages) = (
            model.forward_with_stages(pixels), twin.forward_with_stages(pixels)
        )  # fmt: skip
    assert twin.cpu_passes.calls == calls + 2
    assert largest_relative_difference(served_views, eager_views) <= TOLERANCE
    assert largest_relative_difference((served_logits, served_stages, []), (eager_logits, eager_stages, [])) <= TOLERANCE
    assert [tuple(t.shape) for t in served_views[1] + served_views[2]] == [
        tuple(t.shape) for t in eager_views[1] + eager_views[2]
    ]


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_variant_is_served_within_tolerance(variant: str) -> None:
    model = random_model(variant)
    pixels = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(7))
    assert_served_exactly(model, served_twin(model), pixels)


@pytest.mark.parametrize("mixer", list(BUNDLED))
def test_bundled_models_are_served_within_tolerance_on_real_photos(mixer: str) -> None:
    model = create_model(weights=BUNDLED[mixer])
    twin = served_twin(model)
    for path in EXAMPLES:
        pixels = preprocess(load_image(path), model.variant.crop_pct)
        assert_served_exactly(model, twin, pixels)
        with torch.inference_mode():
            assert twin(pixels).argmax() == model(pixels).argmax()


@pytest.fixture(scope="module")
def s12() -> PoolFormer:
    return random_model("s12")


@pytest.fixture(scope="module")
def s12_served(s12: PoolFormer) -> CpuServedPoolFormer:
    return served_twin(s12)


@pytest.mark.parametrize("threads", [1, 2])
def test_batches_of_any_size_are_served(s12: PoolFormer, threads: int) -> None:
    """With two threads a batch is cut in parts run side by side on a one-thread session; with one it is not."""
    twin = s12.for_inference()
    assert twin.cpu_passes.build(threads)
    assert (twin.cpu_passes._batch_session is not None) == (threads > 1)
    for batch in (2, 5):
        assert_served_exactly(s12, twin, torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(2)))


def test_other_inputs_and_gradients_run_eagerly(s12: PoolFormer, s12_served: CpuServedPoolFormer) -> None:
    """Another size, or a gradient wanted (Grad-CAM): the session is not used, eager answers."""
    calls = s12_served.cpu_passes.calls
    small = torch.randn(1, 3, 160, 160, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        for twin_out, model_out in zip(s12_served.forward_with_stages(small)[1], s12.forward_with_stages(small)[1]):
            assert (twin_out - model_out).abs().max() <= TOLERANCE * model_out.abs().max()
    pixels = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(4))
    served_maps, eager_maps = grad_cam(s12_served, pixels), grad_cam(s12, pixels)
    for served, eager in zip(served_maps, eager_maps, strict=True):
        assert (served - eager).abs().max() <= 1e-4 * eager.abs().max()
    assert s12_served.cpu_passes.calls == calls


def test_ablation_twins_run_eagerly(s12: PoolFormer, s12_served: CpuServedPoolFormer) -> None:
    """A twin with other mixers is a plain PoolFormer: the session computes the as-trained model only."""
    mixers = ["pooling", "identity", "pooling-5", "pooling"]
    ablated = s12_served.with_token_mixers(mixers)
    assert type(ablated) is PoolFormer
    pixels = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        difference = (ablated(pixels) - s12.with_token_mixers(mixers)(pixels)).abs().max()
    assert difference <= TOLERANCE * s12.with_token_mixers(mixers)(pixels).abs().max()


@pytest.mark.parametrize("mixer", list(TOKEN_MIXERS))
def test_a_model_with_any_mixer_is_served_exactly_or_eagerly(mixer: str) -> None:
    """Every mixer of the zoo (and any added later): either the session is exact, or eager serves it all."""
    torch.manual_seed(9)
    model = PoolFormer(VARIANTS["s12"], num_classes=10, token_mixers=mixer).eval()
    twin = model.for_inference()
    pixels = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(6))
    if twin.cpu_passes.build():
        assert_served_exactly(model, twin, pixels)
    else:
        with torch.inference_mode():
            assert largest_relative_difference(
                twin.forward_with_mixer_views(pixels), model.forward_with_mixer_views(pixels)
            ) <= TOLERANCE
        assert twin.cpu_passes.calls == 0


def test_background_build_serves_eagerly_until_ready(s12: PoolFormer) -> None:
    """The app's way: calls made while the session is being built run eagerly; once `ready` is called, it serves."""
    twin = s12.for_inference()
    ready = []
    twin.cpu_passes.build_in_background(ready=lambda: ready.append(time.perf_counter()))
    assert twin.cpu_passes.state in ("queued", "building")
    pixels = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(8))
    with torch.inference_mode():
        eager_logits = twin(pixels)  # the build takes seconds; this is answered now
    assert twin.cpu_passes.calls == 0
    deadline = time.perf_counter() + 120
    while not ready and time.perf_counter() < deadline:
        time.sleep(0.1)
    assert ready and twin.cpu_passes.state == "ready"
    with torch.inference_mode():
        served_logits = twin(pixels)
    assert twin.cpu_passes.calls == 1
    assert (served_logits - eager_logits).abs().max() <= TOLERANCE * eager_logits.abs().max()


def test_a_dropped_model_is_not_built(s12: PoolFormer, caplog: pytest.LogCaptureFixture) -> None:
    """A model dropped (evicted from the app's cache) while its build waits for its turn is never built."""
    caplog.set_level(logging.INFO, logger="poolformer.fast_cpu")
    with fast_cpu.BUILDING:  # another build is under way
        passes = CpuPasses(s12, "dropped model")
        thread = passes.build_in_background()
        del passes  # the waiting thread holds only a weak reference
        gc.collect()
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert not [record for record in caplog.records if "dropped model" in record.getMessage()]


RUN_WITHOUT_ONNXRUNTIME = """
import sys, torch
sys.modules["onnxruntime"] = None  # what an uninstalled package looks like to `import`
from poolformer.model import PoolFormer, VARIANTS
model = PoolFormer(VARIANTS["s12"]).eval()
twins = [model.for_inference() for _ in range(2)]
assert [twin.cpu_passes.build() for twin in twins] == [False, False]
pixels = torch.randn(1, 3, 224, 224)
with torch.inference_mode():
    assert torch.allclose(twins[0](pixels), model(pixels), atol=1e-5)
print("served eagerly")
"""


def test_without_onnxruntime_it_runs_eagerly_with_one_log_line() -> None:
    result = subprocess.run(
        [sys.executable, "-c", RUN_WITHOUT_ONNXRUNTIME], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "served eagerly"
    assert [line for line in result.stderr.splitlines() if line.strip()] == [
        "ONNX Runtime is not installed (import of onnxruntime halted; None in sys.modules): the CPU passes run eagerly"
    ]


def test_the_switch_turns_it_off() -> None:
    """POOLFORMER_FAST_CPU=0 (how the benchmarks time the app without it) leaves every pass eager."""
    script = "from poolformer.model import *; twin = PoolFormer(VARIANTS['s12']).eval().for_inference()\n" \
        "print(twin.cpu_passes.build(), twin.cpu_passes.state)"  # fmt: skip
    environment = {**os.environ, "POOLFORMER_FAST_CPU": "0"}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300, env=environment
    )
    assert result.stdout.split() == ["False", "off"], result.stderr


def test_the_app_builds_a_models_session_when_it_is_asked_for_again() -> None:
    """The app's model cache: the first load serves eagerly at once; asked for again, the model's session is built
    in the background, and the same cached twin then answers /predict's pass from it."""
    from poolformer.explorer.cache import ModelCache
    from poolformer.explorer.catalogue import find_choice

    cache, choice = ModelCache(capacity=1), find_choice("s12-imagenette")
    model = cache.get(choice)
    assert isinstance(model, CpuServedPoolFormer) and model.cpu_passes.state == "not built"
    assert cache.get(choice) is model and model.cpu_passes.state in ("queued", "building", "ready")
    deadline = time.perf_counter() + 120
    while model.cpu_passes.state != "ready" and time.perf_counter() < deadline:
        time.sleep(0.1)
    pixels = preprocess(load_image(EXAMPLES[0]), model.variant.crop_pct)
    with torch.inference_mode():
        logits, stages, mixers = cache.get(choice).forward_with_mixer_views(pixels)
    assert model.cpu_passes.calls == 1 and len(stages) == len(mixers) == 4
