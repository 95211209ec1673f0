"""Our PoolFormer, loaded by create_model from every key layout and file type, against transformers.

Run with `-s` to see the table of max |Δ| per variant, layout and file type.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from reference import LAYOUTS, in_layout, key_rows, reference_model, save_tensors

from poolformer import VARIANTS, create_model

TOLERANCE = 1e-4
FILE_TYPES = (".safetensors", ".bin")
MEASURED: dict[tuple[str, str, str], float] = {}


@dataclass
class Reference:
    """One transformers model per variant, its weights and its outputs on a fixed batch."""

    variant: str
    state_dict: dict[str, torch.Tensor]
    images: torch.Tensor
    logits: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...]


@pytest.fixture(scope="module", params=list(VARIANTS))
def reference(request) -> Reference:
    variant = request.param
    model = reference_model(variant, seed=list(VARIANTS).index(variant))
    images = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        output = model(pixel_values=images, output_hidden_states=True)
    return Reference(variant, model.state_dict(), images, output.logits, output.hidden_states)


@pytest.fixture(scope="module", autouse=True)
def parity_table():
    """Print the measured max |Δ| once all variants ran (visible with `pytest -s`)."""
    yield
    print("\nmax |logit Δ| vs transformers (fp32, CPU)")
    print(f"{'variant':8}" + "".join(f"{layout + ' ' + suffix:>26}" for layout in LAYOUTS for suffix in FILE_TYPES))
    for variant in VARIANTS:
        cells = [MEASURED.get((variant, layout, suffix)) for layout in LAYOUTS for suffix in FILE_TYPES]
        print(f"{variant:8}" + "".join(f"{'-' if cell is None else f'{cell:.3g}':>26}" for cell in cells))


def load_from_file(reference: Reference, layout: str, suffix: str, folder) -> torch.nn.Module:
    path = save_tensors(in_layout(reference.state_dict, reference.variant, layout), folder / f"weights{suffix}")
    return create_model(weights=path)  # variant and class count are inferred from the tensors


@pytest.mark.parametrize("suffix", FILE_TYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_logits_match_transformers(reference: Reference, layout: str, suffix: str, tmp_path) -> None:
    model = load_from_file(reference, layout, suffix, tmp_path)
    assert model.variant.name == reference.variant
    assert model.num_classes == 1000
    with torch.no_grad():
        logits = model(reference.images)
    delta = (logits - reference.logits).abs().max().item()
    MEASURED[reference.variant, layout, suffix] = delta
    assert delta <= TOLERANCE


@pytest.mark.parametrize("twin", ["plain", "for_inference"])
def test_stage_outputs_match_hidden_states(reference: Reference, twin: str, tmp_path) -> None:
    """The trainable model and its folded inference twin (what the app and CLI run) both match transformers."""
    model = load_from_file(reference, "timm", ".safetensors", tmp_path)
    if twin == "for_inference":
        model = model.for_inference()
    with torch.no_grad():
        logits, stages = model.forward_with_stages(reference.images)
    assert len(stages) == len(reference.hidden_states) == 4
    for ours, theirs in zip(stages, reference.hidden_states, strict=True):
        assert ours.shape == theirs.shape
        assert (ours - theirs).abs().max().item() <= TOLERANCE
    assert (logits - reference.logits).abs().max().item() <= TOLERANCE


def test_key_table_names_every_reference_tensor(reference: Reference) -> None:
    transformers_names = [row[0] for row in key_rows(VARIANTS[reference.variant].depths)]
    assert sorted(transformers_names) == sorted(reference.state_dict)
    if reference.variant == "s12":
        assert len(transformers_names) == 132  # the count REFERENCE.md gives


def test_tolerance_would_catch_a_mapping_mistake(tmp_path) -> None:
    """Swapping two blocks' weights must move the logits far beyond the tolerance, or parity proves little."""
    model = reference_model("s12")
    images = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    timm_state = in_layout(model.state_dict(), "s12", "timm")
    swapped = dict(timm_state)
    for name in ("norm1.weight", "mlp.fc1.weight", "layer_scale1.scale"):
        swapped[f"stages.2.blocks.0.{name}"], swapped[f"stages.2.blocks.1.{name}"] = (
            timm_state[f"stages.2.blocks.1.{name}"],
            timm_state[f"stages.2.blocks.0.{name}"],
        )
    right = create_model(weights=save_tensors(timm_state, tmp_path / "right.safetensors"))
    wrong = create_model(weights=save_tensors(swapped, tmp_path / "wrong.safetensors"))
    with torch.no_grad():
        assert (right(images) - wrong(images)).abs().max().item() > 100 * TOLERANCE
