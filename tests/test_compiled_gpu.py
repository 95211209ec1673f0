"""The compiled CUDA path (poolformer/compiled.py) on the bundled S12 and the example photos.

Every test here needs a CUDA GPU and skips without one, so CI (CPU only) never compiles; run this file
on a GPU machine. Compiling takes tens of seconds per test. Speed is in benchmarks/model_speed.py.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import pytest
import torch

from poolformer.compiled import APP_METHODS, COMPILE_OPTIONS, CompiledPoolFormer, compile_model
from poolformer.model import PoolFormer
from poolformer.preprocess import load_image, preprocess
from poolformer.weights import create_model

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

ASSETS = Path(__file__).resolve().parent.parent / "assets"
BUNDLED = ASSETS / "checkpoints" / "poolformer_s12_imagenette.safetensors"
PHOTOS = sorted((ASSETS / "examples").glob("*.jpg"))
LOGITS_TOLERANCE = 1e-5  # relative to the largest |logit| (at least 1)
STAGES_TOLERANCE = 1e-4  # relative to each stage map's largest value; the trained model's reach about 20


@pytest.fixture(scope="module")
def eager() -> PoolFormer:
    return create_model(weights=BUNDLED, device="cuda").for_inference()


@pytest.fixture(scope="module")
def photos() -> torch.Tensor:
    return torch.cat([preprocess(load_image(path), 0.9) for path in PHOTOS]).cuda()


def deltas(a: tuple, b: tuple) -> tuple[float, float]:
    """Largest |a - b| of the logits and of the four stage outputs, each relative to the largest |b| (at least 1).

    fp32 rounds at about 1e-7 of a value's size and compiled kernels sum in another order, so an absolute bound
    on stage maps of size 20 would test the order of additions, not the function.
    """

    def relative(x: torch.Tensor, y: torch.Tensor) -> float:
        return ((x - y).abs().max() / y.abs().max().clamp(min=1)).item()

    return relative(a[0], b[0]), max(relative(x, y) for x, y in zip(a[1], b[1], strict=True))


def assert_close(a: tuple, b: tuple) -> None:
    logits, stages = deltas(a, b)
    print(f"compiled vs eager fp32: logits {logits:.1e}, stage outputs {stages:.1e} (relative)")
    assert logits <= LOGITS_TOLERANCE and stages <= STAGES_TOLERANCE


@pytest.mark.parametrize("options", list(COMPILE_OPTIONS))
def test_graphed_fp32_equals_eager(eager: PoolFormer, photos: torch.Tensor, options: str) -> None:
    """Batch-1 logits and all four stage outputs from the CUDA graph equal eager fp32 (logits to 1e-5, stage maps
    to 1e-4, relative), photo after photo (each replay must see its own input), with every set of compile options;
    other shapes and swapped mixers run eagerly."""
    torch._dynamo.reset()
    compiled = compile_model(eager, options=options)
    with torch.inference_mode():
        for photo in photos:
            one = photo[None]
            assert_close(compiled.forward_with_stages(one), eager.forward_with_stages(one))
        assert not compiled.graphs["forward_with_stages"].accepts(photos)  # batch of 6: eager fallback, same answer
        assert_close(compiled.forward_with_stages(photos), eager.forward_with_stages(photos))
    ablated = compiled.with_token_mixers("identity")  # a plain eager twin, not the pooling graph
    assert type(ablated) is PoolFormer
    with torch.inference_mode():
        assert (
            ablated(photos[:1]) - eager.with_token_mixers("identity")(photos[:1])
        ).abs().max().item() <= LOGITS_TOLERANCE


def test_bf16_compiled_keeps_the_fp32_top5(eager: PoolFormer, photos: torch.Tensor) -> None:
    """bf16 weights, compiled (the throughput path): every photo keeps its fp32 top-1 and top-5 set."""
    bf16 = torch.compile(copy.deepcopy(eager).to(torch.bfloat16), dynamic=False)
    with torch.inference_mode():
        fp32_top5 = eager(photos).topk(5).indices
        bf16_top5 = bf16(photos.to(torch.bfloat16)).float().topk(5).indices
    assert torch.equal(bf16_top5[:, 0], fp32_top5[:, 0])
    assert torch.equal(bf16_top5.sort().values, fp32_top5.sort().values)


def test_mixer_views_graph_equals_eager(eager: PoolFormer, photos: torch.Tensor) -> None:
    """The graph behind /predict and the pooling-filter view: logits, stage maps and first-mixer maps equal eager."""
    torch._dynamo.reset()
    compiled = compile_model(eager, methods=APP_METHODS)
    with torch.inference_mode():
        for photo in photos:
            logits, stages, mixers = compiled.forward_with_mixer_views(photo[None])
            eager_logits, eager_stages, eager_mixers = eager.forward_with_mixer_views(photo[None])
            assert_close((logits, stages), (eager_logits, eager_stages))
            assert_close((logits, mixers), (eager_logits, eager_mixers))
    assert compiled.graphs["forward_with_mixer_views"].replays == len(photos)


def test_cache_serves_eager_at_once_then_compiled(monkeypatch) -> None:
    """The app's cache answers with the eager twin immediately and swaps in the compiled one when it is ready;
    then /predict's and /compare's computations replay its graphs."""
    from poolformer.explorer import cache
    from poolformer.explorer.catalogue import bundled_choice

    monkeypatch.setattr(cache, "DEVICE", torch.device("cuda"))
    models = cache.ModelCache(capacity=2)
    choice = bundled_choice(BUNDLED)
    started = time.perf_counter()
    first = models.get(choice)
    assert time.perf_counter() - started < 10 and not isinstance(first, CompiledPoolFormer)
    deadline = time.perf_counter() + 240
    while not isinstance(models.get(choice), CompiledPoolFormer):
        assert time.perf_counter() < deadline, "the background compile did not finish"
        time.sleep(0.5)
    compiled = models.get(choice)
    photo = torch.randn(1, 3, 224, 224, device="cuda")
    with torch.inference_mode():
        assert_close(compiled.forward_with_stages(photo), first.forward_with_stages(photo))

    from poolformer.explorer import prediction

    monkeypatch.setattr(prediction, "MODELS", models)  # the app's predict, served from this cache
    replays = compiled.graphs["forward_with_mixer_views"].replays
    predicted = prediction.predict(PHOTOS[0], choice.value)
    assert compiled.graphs["forward_with_mixer_views"].replays == replays + 1
    with torch.inference_mode():
        eager_logits = first(preprocess(load_image(PHOTOS[0]), 0.9).cuda())
    assert list(predicted.top5) == [first.class_names[i] for i in eager_logits[0].topk(5).indices.tolist()]
