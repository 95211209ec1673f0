"""The zoo's token mixers against plain torch, the model sizes against the paper's Table 5, and the
random mixer's matrices drawn again from the seed a checkpoint stores.

References are written out here independently: F.conv2d with groups=C, a hand-written multi-head
softmax(QKᵀ/√d)V, and an explicit matrix product over tokens.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import save_file
from torch.nn import functional as F

from poolformer import VARIANTS, PoolFormer, create_model
from poolformer.complexity import frozen_numbers, macs, trainable_parameters
from poolformer.mixers import Attention, DepthwiseConv, RandomMixing, layout_name, resolve_token_mixers
from poolformer.model import token_grids

SHAPES = [(2, 64, 7, 7), (1, 64, 5, 9)]  # square and non-square token maps


@pytest.mark.parametrize("shape", SHAPES)
def test_depthwise_mixer_is_a_grouped_convolution(shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    mixer = DepthwiseConv(shape[1])
    x = torch.randn(shape)
    expected = F.conv2d(x, mixer.conv.weight, mixer.conv.bias, padding=1, groups=shape[1])
    torch.testing.assert_close(mixer(x), expected, rtol=0, atol=0)
    assert mixer.conv.weight.shape == (shape[1], 1, 3, 3)


@pytest.mark.parametrize("shape", SHAPES)
def test_attention_mixer_is_multi_head_softmax_attention_over_all_tokens(shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    batch, channels, height, width = shape
    mixer = Attention(channels)
    x = torch.randn(shape)
    tokens = x.flatten(2).transpose(1, 2)  # (B, N, C)
    q, k, v = (tokens @ w.T for w in mixer.qkv.weight.chunk(3))
    heads = channels // 32
    outputs = []
    for head in range(heads):
        part = slice(head * 32, (head + 1) * 32)
        weights = torch.softmax(q[..., part] @ k[..., part].transpose(1, 2) / math.sqrt(32), dim=-1)
        outputs.append(weights @ v[..., part])
    expected = torch.cat(outputs, dim=-1) @ mixer.proj.weight.T + mixer.proj.bias
    expected = expected.transpose(1, 2).reshape(batch, channels, height, width)
    torch.testing.assert_close(mixer(x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("grid", [(7, 7), (5, 9), (56, 56)])
def test_random_mixer_is_a_fixed_row_stochastic_matrix_over_tokens(grid: tuple[int, int]) -> None:
    mixer = RandomMixing(grid, seed=3)
    tokens = grid[0] * grid[1]
    matrix = mixer.matrix
    assert matrix.shape == (tokens, tokens) and not list(mixer.parameters())
    torch.testing.assert_close(matrix.sum(dim=1), torch.ones(tokens))
    # softmax of uniform [0, 1) draws: every weight within a factor e of every other in its row
    assert (matrix.max(dim=1).values / matrix.min(dim=1).values).max() < math.e
    # exactly the matrix the shipped RandomFormer was trained with (drawn whole, softmax whole), though built in place
    draws = torch.rand(tokens, tokens, generator=torch.Generator().manual_seed(3))
    assert torch.equal(matrix, torch.softmax(draws, dim=-1))
    x = torch.randn(2, 16, *grid)
    expected = torch.einsum("mn,bcn->bcm", matrix, x.flatten(2)).reshape(x.shape)
    torch.testing.assert_close(mixer(x), expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(RandomMixing(grid, seed=3).matrix, matrix, rtol=0, atol=0)  # drawn again alike
    assert not torch.equal(RandomMixing(grid, seed=4).matrix, matrix)
    with pytest.raises(ValueError, match="drawn for a"):
        mixer(torch.randn(1, 16, grid[0] + 1, grid[1]))


def test_token_grids_match_the_real_stage_outputs() -> None:
    model = PoolFormer(VARIANTS["s12"], 10).eval()
    for size in (160, 224, 97):
        with torch.inference_mode():
            _, stages = model.forward_with_stages(torch.randn(1, 3, size, size))
        assert [tuple(stage.shape[2:]) for stage in stages] == token_grids(size)


# Table 5 of the paper (S12, 224 px): trainable parameters (M), frozen numbers (M), GMACs.
TABLE_5 = {
    "pooling": (11.9, 0.0, 1.8),
    "identity": (11.9, 0.0, 1.8),
    "depthwise": (11.9, 0.0, 1.8),
    "random": (11.9, 21.1, 3.3),
    "pool-attention": (16.5, 0.0, 2.5),
}


@pytest.mark.parametrize("layout", list(TABLE_5))
def test_zoo_model_sizes_reproduce_table_5(layout: str) -> None:
    params, frozen, gmacs = TABLE_5[layout]
    model = PoolFormer(VARIANTS["s12"], 1000, token_mixers=layout).eval()
    print(f"{layout}: {trainable_parameters(model) / 1e6:.2f} M + {frozen_numbers(model) / 1e6:.2f} M frozen, "
          f"{macs(model) / 1e9:.2f} GMACs")
    assert round(trainable_parameters(model) / 1e6, 1) == params
    assert round(frozen_numbers(model) / 1e6, 1) == frozen
    assert round(macs(model) / 1e9, 1) == gmacs


@pytest.mark.parametrize("name", list(VARIANTS))
def test_pooling_variants_match_the_authors_sizes(name: str) -> None:
    with torch.device("meta"):
        model = PoolFormer(VARIANTS[name])
    assert round(trainable_parameters(model) / 1e6, 1) == VARIANTS[name].params_m
    model = model.to_empty(device="cpu").eval()
    assert abs(macs(model) / 1e9 - VARIANTS[name].macs_g) <= 0.1  # M48: 11.53 against the authors' 11.6


def test_layouts_resolve_by_name_by_list_and_by_commas() -> None:
    hybrid = ("pooling", "pooling", "attention", "attention")
    assert resolve_token_mixers("pool-attention") == hybrid
    assert resolve_token_mixers("pooling,pooling,attention,attention") == hybrid
    assert resolve_token_mixers(list(hybrid)) == hybrid and layout_name(hybrid) == "pool-attention"
    assert resolve_token_mixers("depthwise") == ("depthwise",) * 4
    assert layout_name(("identity", "pooling", "pooling", "pooling")) == "identity,pooling,pooling,pooling"
    with pytest.raises(ValueError, match="unknown token mixer"):
        resolve_token_mixers("convolution")


def test_twins_keep_trained_mixers_and_refuse_mixers_with_untrained_weights() -> None:
    torch.manual_seed(0)
    hybrid = PoolFormer(VARIANTS["s12"], 10, token_mixers="pool-attention").eval()
    twin = hybrid.with_token_mixers(("identity", "pooling", "attention", "attention"))
    assert twin.stages[2].blocks[0].token_mixer is hybrid.stages[2].blocks[0].token_mixer  # shared, trained
    assert hybrid.token_mixers == ("pooling", "pooling", "attention", "attention")  # untouched
    x = torch.randn(1, 3, 64, 64)
    reference = PoolFormer(VARIANTS["s12"], 10, token_mixers=("identity", "pooling", "attention", "attention"))
    reference.load_state_dict(hybrid.state_dict())
    with torch.inference_mode():
        torch.testing.assert_close(twin(x), reference.eval()(x), rtol=0, atol=0)
    for target in ("depthwise", "pool-attention"):
        with pytest.raises(ValueError, match="has weights to learn"):
            PoolFormer(VARIANTS["s12"], 10).with_token_mixers(target)
    with pytest.raises(ValueError, match="has weights to learn"):
        hybrid.with_token_mixers("pooling,pooling,depthwise,attention")


def test_a_random_mixer_checkpoint_stores_its_seed_not_its_matrices(tmp_path) -> None:
    """21 M frozen numbers are drawn again from the stored seed; the loaded model computes the same logits."""
    torch.manual_seed(0)
    model = PoolFormer(VARIANTS["s12"], 10, token_mixers="random", image_size=224, mixer_seed=7).eval()
    state = model.state_dict()
    assert not any("matrix" in key for key in state)
    path = tmp_path / "random.safetensors"
    metadata = {"variant": "s12", "token_mixer": "random", "image_size": "224", "mixer_seed": "7",
                "class_names": json.dumps([f"c{i}" for i in range(10)])}
    save_file({key: value.contiguous() for key, value in state.items()}, str(path), metadata=metadata)
    assert path.stat().st_size < 50e6  # the weights alone, fp32
    loaded = create_model(weights=path, device="cpu")
    assert loaded.token_mixers == ("random",) * 4 and loaded.mixer_seed == 7
    x = torch.randn(1, 3, 224, 224)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=1e-6)  # kernels differ by memory alignment
    other_seed = PoolFormer(VARIANTS["s12"], 10, token_mixers="random", mixer_seed=8).eval()
    other_seed.load_state_dict(state)
    with torch.inference_mode():
        assert not torch.allclose(other_seed(x), model(x))


def test_with_image_size_redraws_random_mixers_and_shares_the_weights() -> None:
    model = PoolFormer(VARIANTS["s12"], 10, token_mixers="random", image_size=160, mixer_seed=1).eval()
    served = model.with_image_size(224)
    assert served.image_size == 224 and model.image_size == 160
    assert served.stages[0].blocks[0].token_mixer.matrix.shape == (3136, 3136)
    assert model.stages[0].blocks[0].token_mixer.matrix.shape == (1600, 1600)
    assert served.head.fc.weight is model.head.fc.weight
    fresh = PoolFormer(VARIANTS["s12"], 10, token_mixers="random", image_size=224, mixer_seed=1)
    torch.testing.assert_close(served.stages[3].blocks[1].token_mixer.matrix, fresh.stages[3].blocks[1].token_mixer.matrix)


def test_with_image_size_draws_the_new_matrices_where_the_model_is() -> None:
    """Training redraws the random mixers on the GPU mid-run; a matrix left on the CPU broke the compiled step
    there. The meta device stands in for any device other than the CPU."""
    model = PoolFormer(VARIANTS["s12"], 10, token_mixers="random", image_size=64, mixer_seed=1).to("meta")
    served = model.with_image_size(96)
    devices = {block.token_mixer.matrix.device.type for stage in served.stages for block in stage.blocks}
    assert devices == {"meta"}
