"""Grad-CAM's and HiResCAM's contract: four non-negative maps at the stages' resolutions, equal to the textbook
computation (and, for the last stage, to gradients worked out by hand), and no trace left on a model that
concurrent requests share."""

from __future__ import annotations

import copy
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import BUNDLED_MODEL, REPO

from poolformer import PoolFormer, create_model, explorer, grad_cam, hires_cam
from poolformer.gradcam import ATTRIBUTIONS, last_stage_map_with_logits, stage_maps_with_logits
from poolformer.preprocess import load_image, preprocess

EXAMPLES = REPO / "assets" / "examples"
STAGE_SIZES = [(56, 56), (28, 28), (14, 14), (7, 7)]


@pytest.fixture(scope="module")
def model(checkpoint_dir: Path) -> PoolFormer:
    return create_model("s12", weights=checkpoint_dir / "poolformer_s12_imagenette.safetensors", device="cpu")


@pytest.fixture(scope="module")
def cat() -> torch.Tensor:
    return preprocess(load_image(EXAMPLES / "cat.jpg"), 0.9)


def hooked_stage_gradients(
    model: PoolFormer, pixels: torch.Tensor, target: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The textbook recipe on a private copy: forward hooks keep the stage outputs and .backward() fills
    their .grad; (features, gradient) per stage."""
    twin = copy.deepcopy(model)
    activations: list[torch.Tensor] = []

    def keep(_module: torch.nn.Module, _inputs: object, output: torch.Tensor) -> None:
        output.retain_grad()
        activations.append(output)

    for stage in twin.stages:
        stage.register_forward_hook(keep)
    twin(pixels)[0, target].backward()
    return [(features.detach(), features.grad) for features in activations]


def hooked_grad_cam(model: PoolFormer, pixels: torch.Tensor, target: int) -> list[torch.Tensor]:
    """ReLU(sum_k mean(grad_k) * A_k) (Selvaraju et al. 2017, eq. 1-2)."""
    return [
        torch.relu((gradient.mean(dim=(2, 3), keepdim=True) * features).sum(dim=1))[0]
        for features, gradient in hooked_stage_gradients(model, pixels, target)
    ]


def hooked_hires_cam(model: PoolFormer, pixels: torch.Tensor, target: int) -> list[torch.Tensor]:
    """ReLU(sum_k grad_k ⊙ A_k) (Draelos and Carin 2020, with Grad-CAM's ReLU)."""
    stages = hooked_stage_gradients(model, pixels, target)
    return [torch.relu((gradient * features).sum(dim=1))[0] for features, gradient in stages]


def hand_stage4_gradient(model: PoolFormer, features: torch.Tensor, target: int) -> torch.Tensor:
    """d score / d stage-4 output worked out on paper, no autograd: the head is y = W·mean(γ x̂ + β) + b with
    x̂ = (x − μ) / s over all C·H·W values (GroupNorm, one group). With G = W[target, c] γ_c / HW at every
    position, dy/dx = (G − mean(G) − x̂ · mean(G x̂)) / s."""
    x = features[0].double()
    norm = model.head.norm
    mean, variance = x.mean(), x.var(unbiased=False)
    scale = torch.sqrt(variance + norm.eps)
    normalised = (x - mean) / scale
    height, width = x.shape[1:]
    per_channel = model.head.fc.weight[target].double() * norm.weight.double() / (height * width)
    upstream = per_channel.view(-1, 1, 1).expand_as(x)
    return (upstream - upstream.mean() - normalised * (upstream * normalised).mean()) / scale


def test_four_non_negative_maps_at_stage_resolution(model: PoolFormer, cat: torch.Tensor) -> None:
    maps = grad_cam(model, cat)
    assert [tuple(cam.shape) for cam in maps] == STAGE_SIZES
    for cam in maps:
        assert torch.isfinite(cam).all() and (cam >= 0).all()
        assert not cam.requires_grad
    assert maps[-1].sum() > 0  # the top-1 class has evidence somewhere in the last stage


def test_maps_equal_the_textbook_computation(model: PoolFormer, cat: torch.Tensor) -> None:
    with torch.inference_mode():
        ranked = model(cat)[0].argsort(descending=True).tolist()
    for target in (ranked[0], ranked[3]):
        for ours, reference in zip(grad_cam(model, cat, target), hooked_grad_cam(model, cat, target), strict=True):
            torch.testing.assert_close(ours, reference, rtol=1e-4, atol=1e-6)
    for ours, top1 in zip(grad_cam(model, cat), grad_cam(model, cat, ranked[0])):
        torch.testing.assert_close(ours, top1, rtol=0, atol=0)  # None means the top-1 class


def test_hires_cam_equals_the_textbook_computation_and_the_hand_worked_gradient(
    model: PoolFormer, cat: torch.Tensor
) -> None:
    with torch.inference_mode():
        logits, stages = model.forward_with_stages(cat)
    ranked = logits[0].argsort(descending=True).tolist()
    assert hires_cam(model, cat, ranked[0])[-1].sum() > 0  # the top-1 class has evidence somewhere in the last stage
    for target in (ranked[0], ranked[3]):
        ours = hires_cam(model, cat, target)
        for mine, reference in zip(ours, hooked_hires_cam(model, cat, target), strict=True):
            torch.testing.assert_close(mine, reference, rtol=1e-4, atol=1e-6)
        # The last stage with no autograd at all: the head's gradient by hand, both maps from it.
        features = stages[-1][0].double()
        gradient = hand_stage4_gradient(model, stages[-1], target)
        by_hand_hires = torch.relu((gradient * features).sum(dim=0))
        by_hand_grad_cam = torch.relu((gradient.mean(dim=(1, 2), keepdim=True) * features).sum(dim=0))
        torch.testing.assert_close(ours[-1].double(), by_hand_hires, rtol=1e-4, atol=1e-7)
        torch.testing.assert_close(grad_cam(model, cat, target)[-1].double(), by_hand_grad_cam, rtol=1e-4, atol=1e-7)


def test_the_last_stage_alone_is_the_same_map_for_the_cost_of_a_pass(model: PoolFormer, cat: torch.Tensor) -> None:
    """The deletion curves only need stage 4's map; its gradient comes from the head alone."""
    with torch.inference_mode():
        fourth = int(model(cat)[0].argsort(descending=True)[3])
        for method in ATTRIBUTIONS:
            for target in (None, fourth):
                logits, maps = stage_maps_with_logits(model, cat, target, method)
                last_logits, last = last_stage_map_with_logits(model, cat, target, method)
                torch.testing.assert_close(last_logits, logits, rtol=0, atol=0)
                torch.testing.assert_close(last, maps[-1], rtol=1e-6, atol=1e-7)
    assert all(parameter.grad is None for parameter in model.parameters())


def test_the_two_methods_are_different_maps(model: PoolFormer, cat: torch.Tensor) -> None:
    """Where the gradient varies across a stage, averaging it (Grad-CAM) and not (HiResCAM) disagree."""
    for grad_cam_map, hires_map in zip(grad_cam(model, cat), hires_cam(model, cat), strict=True):
        assert grad_cam_map.shape == hires_map.shape
        assert not torch.allclose(grad_cam_map, hires_map, rtol=1e-2, atol=1e-6)


@pytest.mark.parametrize("trainable", [True, False], ids=["trainable", "frozen"])
def test_no_gradient_left_behind_and_flags_unchanged(model: PoolFormer, cat: torch.Tensor, trainable: bool) -> None:
    """Works whether or not the weights require grad, even under inference_mode, and changes neither."""
    subject = copy.deepcopy(model).requires_grad_(trainable)
    pixels = cat.clone()
    with torch.inference_mode():
        maps = grad_cam(subject, pixels)
    assert maps[-1].sum() > 0
    assert all(parameter.grad is None for parameter in subject.parameters())
    assert all(parameter.requires_grad is trainable for parameter in subject.parameters())
    assert pixels.grad is None and not pixels.requires_grad
    torch.testing.assert_close(pixels, cat, rtol=0, atol=0)


def test_concurrent_explanations_evidence_and_predictions_match_sequential_ones() -> None:
    """/explain, /sanity, /faithfulness and /predict requests on threads share one cached model; each gets its
    sequential answer, and the model's weights (bit for bit, in the same tensors), flags and mixers are as before."""
    cat, cathedral = EXAMPLES / "cat.jpg", EXAMPLES / "reims_cathedral.jpg"
    jobs = [  # "golf ball" is in the cat photo's top-5 for the bundled model
        ("explain", cat, None), ("explain", cat, "golf ball"), ("explain", cathedral, None),
        ("sanity", cat, None), ("sanity", cathedral, "hirescam"), ("faithfulness", cat, None),
        ("predict", cat, None), ("predict", cathedral, None),
    ]  # fmt: skip
    shared = explorer.MODELS.get(explorer.find_choice(BUNDLED_MODEL))
    before = {name: (parameter.data_ptr(), parameter.detach().clone()) for name, parameter in shared.named_parameters()}

    def run(job: tuple[str, Path, str | None]) -> list[np.ndarray]:
        kind, photo, option = job
        if kind == "explain":
            explanation = explorer.explain(photo, BUNDLED_MODEL, option)
            return [*explanation.trained.maps, *explanation.ablated.maps, *explanation.scratch.maps,
                    np.array(list(explanation.top5.values()))]  # fmt: skip
        if kind == "sanity":
            steps = explorer.sanity_check(photo, BUNDLED_MODEL, method=option).steps
            return [cam for step in steps for cam in step.maps]
        if kind == "faithfulness":
            curves = explorer.faithfulness(photo, BUNDLED_MODEL, method=option).curves
            return [values for curve in curves for values in (curve.deletion, curve.insertion)]
        prediction = explorer.predict(photo, BUNDLED_MODEL)
        return [stage.energy for stage in prediction.stages] + [np.array(list(prediction.top5.values()))]

    sequential = [run(job) for job in jobs]
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        concurrent = list(pool.map(run, jobs))
    for expected, got in zip(sequential, concurrent, strict=True):
        for a, b in zip(expected, got, strict=True):
            np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
    assert explorer.MODELS.get(explorer.find_choice(BUNDLED_MODEL)) is shared
    for name, parameter in shared.named_parameters():
        pointer, values = before[name]
        assert parameter.data_ptr() == pointer, name
        torch.testing.assert_close(parameter, values, rtol=0, atol=0)
        assert parameter.grad is None and parameter.requires_grad, name
    assert shared.token_mixers == ("pooling",) * 4
