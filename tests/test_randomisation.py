"""The sanity check (cascading randomisation, Adebayo et al. 2018): its twins, its rank correlation, and what
it finds on photos. Run with `-s` to print the figures quoted in the README.

A faithful map must fall apart once the weights are random, and randomising nothing must give back the original
exactly. (That the model every visitor shares comes out untouched, also when sanity checks overlap with other
requests, is tests/test_gradcam.py's concurrency test.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import BUNDLED_MODEL, REPO

from poolformer import PoolFormer, explorer
from poolformer.gradcam import ATTRIBUTION_NAMES, ATTRIBUTIONS, stage_maps_with_logits
from poolformer.model import LayerScale
from poolformer.preprocess import load_image, preprocess
from poolformer.randomisation import CASCADE, cascade, fresh_parts, part_of, randomised, rank_correlation, with_parts

CAT = REPO / "assets" / "examples" / "cat.jpg"
NEAR_ZERO = 0.15  # |mean rank correlation| over the photos once every weight is random


@pytest.fixture(scope="module")
def model() -> PoolFormer:
    """The shared cached model itself (the folded inference twin the app serves)."""
    return explorer.MODELS.get(explorer.find_choice(BUNDLED_MODEL))


@pytest.fixture(scope="module")
def cat(model: PoolFormer) -> torch.Tensor:
    return preprocess(load_image(CAT), model.variant.crop_pct)


def test_rank_correlation_equals_hand_worked_examples() -> None:
    # No ties: ranks 1..5 against 2, 1, 4, 3, 5, so d = -1, 1, -1, 1, 0 and rho = 1 - 6 * 4 / (5 * 24) = 0.8.
    assert rank_correlation(
        torch.tensor([10.0, 20, 30, 40, 50]), torch.tensor([12.0, 11, 35, 33, 60])
    ) == pytest.approx(0.8)
    # Ties share their mean rank: (1.5, 1.5, 3, 4) and (1, 2.5, 2.5, 4); Pearson of those = 3.75 / 4.5.
    tied = rank_correlation(torch.tensor([[0.0, 0], [1, 2]]), torch.tensor([[0.0, 1], [1, 3]]))
    assert tied == pytest.approx(3.75 / 4.5)
    values = torch.rand(7, 7, generator=torch.Generator().manual_seed(1))
    assert rank_correlation(values, values) == 1.0
    assert rank_correlation(values, values.exp()) == pytest.approx(1.0)  # ranks only: any increasing function
    assert rank_correlation(values, -values) == pytest.approx(-1.0)
    assert rank_correlation(values, torch.zeros(7, 7)) == 0.0  # a flat map orders nothing
    with pytest.raises(ValueError, match="different shapes"):
        rank_correlation(values, torch.zeros(14, 14))


def test_randomising_nothing_gives_back_the_original_maps_exactly(model: PoolFormer, cat: torch.Tensor) -> None:
    for twin in (randomised(model, []), with_parts(model, {})):
        for method in ATTRIBUTIONS:
            ours = stage_maps_with_logits(model, cat, None, method)
            theirs = stage_maps_with_logits(twin, cat, None, method)
            torch.testing.assert_close(theirs[0], ours[0], rtol=0, atol=0)
            for a, b in zip(ours[1], theirs[1], strict=True):
                torch.testing.assert_close(b, a, rtol=0, atol=0)
    check = explorer.sanity_check(CAT, BUNDLED_MODEL)
    explanation = explorer.explain(CAT, BUNDLED_MODEL)
    assert check.steps[0].randomised == () and check.steps[0].rank_correlation == [1.0] * 4
    for a, b in zip(check.steps[0].maps, explanation.trained.maps, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_randomised_twin_has_fresh_tensors_only_where_it_is_randomised(model: PoolFormer) -> None:
    twin = randomised(model, ["head", "stage 4"])
    shared = {parameter.data_ptr() for parameter in model.parameters()}
    ours, theirs = dict(model.named_parameters()), dict(twin.named_parameters())
    assert ours.keys() == theirs.keys()
    for name, parameter in theirs.items():
        fresh = name.startswith(("head.", "stages.3."))
        assert (parameter.data_ptr() not in shared) is fresh, name
        assert parameter.shape == ours[name].shape and parameter.dtype == ours[name].dtype
        assert parameter.grad is None and parameter.requires_grad == ours[name].requires_grad
    assert twin.token_mixers == model.token_mixers and type(twin.stages[3].blocks[0]) is type(model.stages[3].blocks[0])

    # Fresh as before training: weights ~ N(0, 0.02), biases 0, norms scale by 1, layer scales at the variant's init.
    head = dict(part_of(twin, "head").named_parameters())
    assert head["fc.weight"].std().item() == pytest.approx(0.02, rel=0.05)
    assert torch.all(head["fc.bias"] == 0) and torch.all(head["norm.weight"] == 1) and torch.all(head["norm.bias"] == 0)
    layer_scales = [module.scale for module in part_of(twin, "stage 4").modules() if isinstance(module, LayerScale)]
    assert layer_scales and all(torch.all(scale == model.variant.layer_scale_init) for scale in layer_scales)


def test_the_cascade_builds_on_its_earlier_steps_and_is_the_same_every_time(model: PoolFormer) -> None:
    steps = cascade(model)
    assert [parts for parts, _ in steps] == [CASCADE[: count + 1] for count in range(len(CASCADE))]
    assert CASCADE == ("head", "stage 4", "stage 3", "stage 2", "stage 1", "stem")
    for (_, earlier), (_, later) in zip(steps, steps[1:]):
        assert part_of(later, "head") is part_of(earlier, "head")  # the head drawn once, kept all the way down
    last = steps[-1][1]
    shared = {parameter.data_ptr() for parameter in model.parameters()}
    assert not any(parameter.data_ptr() in shared for parameter in last.parameters())  # every weight is fresh
    again = fresh_parts(model, ["stage 2"])["stage 2"]
    for a, b in zip(part_of(last, "stage 2").parameters(), again.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)  # seeded per part: the same weights on every call
    other_seed = fresh_parts(model, ["stage 2"], seed=1)["stage 2"]
    assert not torch.equal(next(again.parameters()), next(other_seed.parameters()))


def test_randomising_every_weight_scrambles_the_stage4_map_on_photos(val_photos: list[Path]) -> None:
    """The stage-4 map of the fully random model shares (almost) no ordering with the trained one's."""
    photos = [CAT, *val_photos]
    print(f"\nCascading randomisation, bundled S12, {len(photos)} photos: mean Spearman rank correlation with the "
          "as-trained map (stages 1-4), then the mean of its absolute value")  # fmt: skip
    for method in ATTRIBUTIONS:
        checks = [explorer.sanity_check(photo, BUNDLED_MODEL, method=method) for photo in photos]
        table = np.array([[step.rank_correlation for step in check.steps] for check in checks])  # photo, step, stage
        print(f"  {ATTRIBUTION_NAMES[method]}:")
        for number, step in enumerate(checks[0].steps):
            label = "as trained" if not step.randomised else f"+ {step.randomised[-1]}"
            means, absolute = table[:, number].mean(0), np.abs(table[:, number]).mean(0)
            print(
                f"    {label:>11}: "
                + "  ".join(f"{m:+.2f}" for m in means)
                + "   |ρ| "
                + "  ".join(f"{m:.2f}" for m in absolute)
            )
        assert np.all(table[:, 0] == 1.0)
        everything_random = table[:, -1, -1]  # every photo's stage-4 map once all weights are random
        assert abs(everything_random.mean()) < NEAR_ZERO, (method, everything_random)
