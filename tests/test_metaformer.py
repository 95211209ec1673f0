"""The MetaFormer tab's computations: the diagram's tensor shapes, the what-if pool sizes, the cited tables.

References are built independently here: the real model's own forward pass for shapes, torch's
AvgPool2d for the wider pooling mixers, and the numbers of the papers (../shared/REFERENCE.md).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from conftest import BUNDLED_DIR, BUNDLED_MODEL, REPO, bundled_zoo
from reference import TABLE_5_TOP1
from safetensors import safe_open
from torch import nn

from poolformer import VARIANTS, PoolFormer, create_model
from poolformer.explorer import ExplorerError, MeasuredRun, ablate, measured_mixer_runs, trace
from poolformer.explorer.ablation import ablation_mixers
from poolformer.mixers import TOKEN_MIXERS, MixerSite
from poolformer.preprocess import load_image, preprocess
from visualize.ablation import ablation_summary
from visualize.architecture import architecture_svg
from visualize.metaformer import baselines_table, measured_table, paper_mixer_tables

CAT = REPO / "assets" / "examples" / "cat.jpg"
POOLING_CHECKPOINT = BUNDLED_DIR / "poolformer_s12_imagenette.safetensors"


def diagram_shapes(svg: str) -> dict[str, tuple[int, ...]]:
    """The tensor shapes the diagram declares: the input, each stage's output, the logits."""
    shapes = {}
    for kind, stage, shape in re.findall(r'<g class="(input|stage|head)"(?: data-stage="(\d)")?[^>]*? data-shape="([\d,]+)"', svg):
        shapes[f"{kind}{stage}"] = tuple(int(size) for size in shape.split(","))
    return shapes


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_diagram_shapes_equal_the_real_models_on_a_224_input(variant: str) -> None:
    """Without a photo the diagram's shapes come from the architecture alone; they must be the real tensors'.

    The reference runs real CPU kernels on real memory; its weights are left uninitialised (`to_empty`)
    because shapes don't depend on them and random init of M48 alone takes seconds on a small CPU.
    """
    with torch.device("meta"):
        model = PoolFormer(VARIANTS[variant])
    model = model.to_empty(device="cpu").eval()
    pixels = torch.randn(1, 3, 224, 224)
    with torch.inference_mode():
        logits, stage_outputs = model.forward_with_stages(pixels)
    shapes = diagram_shapes(architecture_svg(trace(None, variant)))
    assert shapes["input"] == tuple(pixels.shape)
    assert [shapes[f"stage{number}"] for number in range(1, 5)] == [tuple(output.shape) for output in stage_outputs]
    assert shapes["head"] == tuple(logits.shape)
    widths = [output.shape[1] for output in stage_outputs]
    assert widths == list(VARIANTS[variant].widths)


def test_diagram_on_a_photo_shows_that_photos_tensors() -> None:
    model = create_model("s12", weights=POOLING_CHECKPOINT)
    pixels = preprocess(load_image(CAT), model.variant.crop_pct)
    with torch.inference_mode():
        logits, stage_outputs = model.forward_with_stages(pixels)
    architecture = trace(CAT, BUNDLED_MODEL)
    assert architecture.measured
    shapes = diagram_shapes(architecture_svg(architecture))
    assert [shapes[f"stage{number}"] for number in range(1, 5)] == [tuple(output.shape) for output in stage_outputs]
    assert shapes["head"] == (1, 10)
    for stage, output in zip(architecture.stages, stage_outputs):
        # The app runs the inference twin (folded norms, channels-last): the same function up to float rounding.
        torch.testing.assert_close(torch.from_numpy(stage.energy), output[0].norm(dim=0), rtol=1e-5, atol=1e-4)
    assert architecture.top1[0] == model.class_names[int(logits.argmax())]


class ReferencePool(nn.Module):
    """The paper's pooling mixer written out with torch's own layer: AvgPool2d(k, 1, k // 2) − x, borders not padded."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(size, stride=1, padding=size // 2, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x) - x


@pytest.mark.parametrize("size", [5, 7])
def test_what_if_pooling_mixers_are_avgpool_minus_x(size: int) -> None:
    x = torch.randn(2, 16, 11, 9, generator=torch.Generator().manual_seed(size))
    torch.testing.assert_close(TOKEN_MIXERS[f"pooling-{size}"](MixerSite(x.shape[1], tuple(x.shape[2:]), 0))(x), ReferencePool(size)(x), rtol=0, atol=0)


def test_ablation_with_wider_pools_equals_a_model_built_with_reference_mixers() -> None:
    """Identity in stage 4, pools 5, 7, 3 before it: the app's answer equals the hand-built network's."""
    reference = create_model("s12", weights=POOLING_CHECKPOINT)
    for stage, mixer in zip(reference.stages, [ReferencePool(5), ReferencePool(7), ReferencePool(3), nn.Identity()]):
        for block in stage.blocks:
            block.token_mixer = mixer
    with torch.inference_mode():
        expected = reference(preprocess(load_image(CAT), 0.9))[0].softmax(-1).numpy()
    ablation = ablate(CAT, BUNDLED_MODEL, [4], pool_sizes=[5, 7, 3, 3])
    assert ablation.mixers == ("pooling-5", "pooling-7", "pooling", "identity")
    torch.testing.assert_close(torch.from_numpy(ablation.identity.probabilities), torch.from_numpy(expected), rtol=0, atol=1e-6)
    summary = ablation_summary(ablation)
    assert "stage(s) **4**" in summary and "what-if" in summary and "trained with 3 × 3" in summary


def test_default_pool_sizes_give_the_identity_ablation_as_before() -> None:
    assert ablation_mixers([2, 4]) == ablation_mixers([2, 4], [3, 3, 3, 3]) == ["pooling", "identity", "pooling", "identity"]
    assert ablation_mixers([], [7, 3, 3, 3]) == ["pooling-7", "pooling", "pooling", "pooling"]
    assert ablation_mixers([1], [7, 5, 3, 3]) == ["identity", "pooling-5", "pooling", "pooling"]


@pytest.mark.parametrize(
    ("stages", "pool_sizes", "message"),
    [([], [3, 3, 3, 3], "tick at least one stage"), ([1], [4, 3, 3, 3], "3, 5 or 7"), ([1], [5, 5], "one pool size per stage")],
)
def test_bad_ablation_requests_are_one_line_errors(stages: list[int], pool_sizes: list[int], message: str) -> None:
    with pytest.raises(ExplorerError, match=message) as error:
        ablation_mixers(stages, pool_sizes)
    assert "\n" not in str(error.value)


def table_rows(markdown: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in markdown.splitlines() if line.startswith("| ")]


def test_paper_tables_hold_the_papers_rows() -> None:
    """Every row of the MetaFormer paper's Table 5 and the Baselines table, as listed in ../shared/REFERENCE.md."""
    rows = table_rows(paper_mixer_tables()) + table_rows(baselines_table())
    expected = [
        ["pooling", "77.2"], ["identity", "74.3"], ["global random matrix", "75.8"], ["depthwise convolution", "78.1"],
        ["5 × 5", "77.2"], ["7 × 7", "77.1"], ["9 × 9", "76.8"],
        ["no normalisation", "46.1"], ["no residual connections", "0.1"], ["no channel MLP", "5.7"],
        ["hybrid stages [Pool, Pool, Attention, Attention]", "81.0"],
        ["IdentityFormer", "74.6", "78.2", "79.3", "80.0", "80.4"],
        ["RandFormer", "76.6", "78.2", "79.5", "81.2", "81.4"],
        ["PoolFormerV2", "78.0", "80.7", "81.6", "82.2", "82.6"],
    ]
    for row in expected:
        assert row in rows
    assert "2111.11418" in paper_mixer_tables() and "2210.13452" in baselines_table()


def recorded_metadata(path: Path) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as checkpoint:
        return checkpoint.metadata()


def test_our_result_is_read_from_the_bundled_checkpoints() -> None:
    """The shipped checkpoints record every seed: the table shows each mixer's mean ± sd and the gap's interval,
    one row per shipped zoo model in the zoo's order, beside Table 5."""
    metadata = recorded_metadata(BUNDLED_DIR / "poolformer_s12_imagenette.safetensors")
    seeds = json.loads(metadata["seed_summary"])

    def gap_cell(mixer: str) -> str:
        if mixer == "pooling":
            return "—"
        gap = seeds["vs_pooling"][mixer]
        if len(seeds[mixer]["top1"]) == 1:
            return f"{gap['mean'] * 100:+.2f} (one seed: no interval yet)"
        return f"{gap['mean'] * 100:+.2f} [{gap['ci95'][0] * 100:+.2f}, {gap['ci95'][1] * 100:+.2f}]"

    def accuracy_cell(mixer: str) -> str:
        runs = seeds[mixer]["top1"]
        if len(runs) == 1:
            return f"{seeds[mixer]['mean'] * 100:.2f} (1 seed)"
        return f"{seeds[mixer]['mean'] * 100:.2f} ± {seeds[mixer]['sd'] * 100:.2f} ({len(runs)} seeds)"

    expected = [
        [recorded_metadata(path)["name"].split(" · ")[0], accuracy_cell(mixer), gap_cell(mixer), TABLE_5_TOP1[mixer]]
        for mixer, path in bundled_zoo().items()
    ]  # fmt: skip
    assert [row[0] for row in expected[:2]] == ["PoolFormer-S12", "IdentityFormer-S12"]
    text = measured_table(measured_mixer_runs())
    assert table_rows(text)[1:] == expected
    low, high = (value * 100 for value in seeds["gap"]["ci95"])
    assert f"**{seeds['gap']['mean'] * 100:.2f} points** on average over seeds (95 % interval {low:+.2f} to {high:+.2f})" in text
    assert ("still includes no gap" in text) == (low <= 0)


def test_our_result_without_seeds_is_the_single_run() -> None:
    runs = [MeasuredRun("P", "pooling", "imagenette2", 0.9103, {}), MeasuredRun("I", "identity", "imagenette2", 0.8948, {})]
    text = measured_table(runs)
    assert [row[:2] for row in table_rows(text)[1:]] == [["P", "91.03 (1 seed)"], ["I", "89.48 (1 seed)"]]
    assert "**1.55 points** (one training run each)" in text


def test_our_result_shows_the_spread_over_seeds_when_recorded() -> None:
    """Checkpoints finalised by `train seeds summarize` carry mean ± sd per mixer and the gap's interval."""
    summary = {
        "pooling": {"top1": {"0": 0.91, "1": 0.905}, "mean": 0.9075, "sd": 0.0035},
        "identity": {"top1": {"0": 0.895, "1": 0.89}, "mean": 0.8925, "sd": 0.0035},
        "gap": {"mean": 0.015, "ci95": [0.005, 0.025]},
    }
    runs = [MeasuredRun("P", "pooling", "imagenette2", 0.91, summary), MeasuredRun("I", "identity", "imagenette2", 0.895, summary)]
    text = measured_table(runs)
    assert [row[1] for row in table_rows(text)[1:]] == ["90.75 ± 0.35 (2 seeds)", "89.25 ± 0.35 (2 seeds)"]
    assert "**1.50 points** on average over seeds (95 % interval +0.50 to +2.50)" in text
