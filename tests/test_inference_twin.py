"""`PoolFormer.for_inference()`: the folded twin computes the same function as the trainable model it shares
parameters with (other pool sizes, swapped mixers and gradients included) and never mutates that model.

Parity of both with transformers is in test_parity.py; speed is in benchmarks/model_speed.py.
"""

from __future__ import annotations

import pytest
import torch
from reference import in_layout, reference_model

from poolformer.compiled import compiling_pays_off
from poolformer.model import VARIANTS, FoldedPoolingBlock, MetaFormerBlock, PoolFormer, Pooling, shallow_copy

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def s12() -> PoolFormer:
    """Our S12 with transformers' perturbed random weights (layer scales near 0.5, so every block matters)."""
    model = PoolFormer(VARIANTS["s12"]).eval()
    model.load_state_dict(in_layout(reference_model("s12", seed=5).state_dict(), "s12", "timm"))
    return model


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(4))


def blocks(model: PoolFormer) -> list[torch.nn.Module]:
    return [block for stage in model.stages for block in stage.blocks]


def max_delta(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


def test_twin_shares_parameters_and_keys_and_leaves_the_model_alone(s12: PoolFormer) -> None:
    """Same keys; every tensor shared except the downsampling convs' weights, copied once channels-last."""
    before = {name: tensor.data_ptr() for name, tensor in s12.state_dict().items()}
    twin = s12.for_inference()
    after = {name: tensor.data_ptr() for name, tensor in twin.state_dict().items()}
    assert after.keys() == before.keys()
    copied = {name for name in before if after[name] != before[name]}
    assert copied == {f"stages.{i}.downsample.conv.weight" for i in (1, 2, 3)}
    assert {name: tensor.data_ptr() for name, tensor in s12.state_dict().items()} == before
    assert all(type(block) is MetaFormerBlock for block in blocks(s12))
    assert all(type(block) is FoldedPoolingBlock for block in blocks(twin))


def test_twin_equals_the_model_with_stage_outputs(s12: PoolFormer, images: torch.Tensor) -> None:
    with torch.no_grad():
        logits, stages = s12.forward_with_stages(images)
        twin_logits, twin_stages = s12.for_inference().forward_with_stages(images)
    assert max_delta(twin_logits, logits) <= TOLERANCE
    for ours, theirs in zip(twin_stages, stages, strict=True):
        assert max_delta(ours, theirs) <= TOLERANCE


@pytest.mark.parametrize("pool_size", [5, 7])
def test_folding_holds_for_other_pool_sizes(s12: PoolFormer, pool_size: int) -> None:
    """The fold needs only pooling weights that sum to one, which holds for any odd pool, borders included."""
    block = shallow_copy(s12.stages[1].blocks[0])
    block._modules["token_mixer"] = Pooling(pool_size)
    x = torch.randn(2, VARIANTS["s12"].widths[1], 28, 28, generator=torch.Generator().manual_seed(pool_size))
    with torch.no_grad():
        assert max_delta(shallow_copy(block, FoldedPoolingBlock)(x), block(x)) <= TOLERANCE


def test_swapping_mixers_on_the_twin_matches_the_model(s12: PoolFormer, images: torch.Tensor) -> None:
    """Ablating a stage of the twin gives the plain model's ablation; stages that still pool stay folded."""
    mixers = ["pooling", "identity", "pooling", "identity"]
    ablated = s12.for_inference().with_token_mixers(mixers)
    assert [type(stage.blocks[0]) for stage in ablated.stages] == [
        FoldedPoolingBlock, MetaFormerBlock, FoldedPoolingBlock, MetaFormerBlock
    ]  # fmt: skip
    with torch.no_grad():
        assert max_delta(ablated(images), s12.with_token_mixers(mixers)(images)) <= TOLERANCE
        assert max_delta(ablated.for_inference()(images), ablated(images)) <= TOLERANCE


def test_twin_gradients_match_the_model(s12: PoolFormer, images: torch.Tensor) -> None:
    """Views that back-propagate (saliency) get the same input gradients through the twin."""
    gradients = []
    for model in (s12, s12.for_inference()):
        x = images[:1].clone().requires_grad_()
        (gradient,) = torch.autograd.grad(model(x)[0, 3], x)  # no parameter .grad is touched
        gradients.append(gradient)
    assert max_delta(*gradients) <= TOLERANCE * gradients[0].abs().max().item()


def test_compiling_is_off_on_cpu() -> None:
    """CI never compiles: on CPU the fast path is ONNX Runtime (tests/test_fast_cpu.py), not torch.compile."""
    assert not compiling_pays_off(torch.device("cpu"))
