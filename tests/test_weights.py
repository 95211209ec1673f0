"""create_model's sources of weights: random init, transformers folders, wrapped and bundled files, the
HF cache (in a fresh process, as a user would run it), and the one-line errors for bad checkpoints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from reference import LAYOUTS, fake_hub_snapshot, in_layout, key_rows, reference_model, save_tensors

from poolformer import VARIANTS, PoolFormer, WeightsError, create_model
from poolformer.weights import resolve_device

REPO_ROOT = Path(__file__).resolve().parent.parent
TOLERANCE = 1e-4
TEN_CLASSES = ["tench", "English springer", "cassette player", "chain saw", "church",
               "French horn", "garbage truck", "gas pump", "golf ball", "parachute"]  # fmt: skip


@pytest.fixture(scope="module")
def s12():
    """A perturbed transformers S12, its state dict, a fixed batch and the reference logits."""
    model = reference_model("s12", seed=7)
    images = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        logits = model(pixel_values=images).logits
    return model, model.state_dict(), images, logits


def logits_of(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(images)


def one_line_error(excinfo: pytest.ExceptionInfo) -> str:
    message = str(excinfo.value)
    assert message and "\n" not in message
    return message


# --- good sources ----------------------------------------------------------------------------------


def test_random_init_defaults_to_s12_with_imagenet_names() -> None:
    model = create_model()
    assert isinstance(model, PoolFormer) and not model.training
    assert model.variant == VARIANTS["s12"] and model.num_classes == 1000
    assert model.class_names[0] == "tench" and len(model.class_names) == 1000
    assert model.weights_source == "random init"
    assert model.checkpoint_metadata == {}
    assert logits_of(model, torch.zeros(2, 3, 224, 224)).shape == (2, 1000)


def test_random_init_with_other_class_count_gets_neutral_names() -> None:
    model = create_model("s12", num_classes=3)
    assert model.class_names == ["class 0", "class 1", "class 2"]


def test_transformers_directory_loads_with_its_id2label(tmp_path: Path) -> None:
    reference = reference_model("s12", seed=5, id2label=dict(enumerate(TEN_CLASSES)))
    reference.save_pretrained(tmp_path)
    images = torch.randn(1, 3, 224, 224)
    model = create_model(weights=tmp_path)
    assert model.class_names == TEN_CLASSES
    assert model.weights_source == f"transformers checkpoint {tmp_path}"
    with torch.no_grad():
        expected = reference(pixel_values=images).logits
    assert (logits_of(model, images) - expected).abs().max().item() <= TOLERANCE


@pytest.mark.parametrize(
    ("wrapper", "filename"),
    [("state_dict", "checkpoint.pth.tar"), ("model", "checkpoint.pth")],
)
def test_training_wrappers_and_key_prefixes_are_unwrapped(s12, tmp_path: Path, wrapper, filename) -> None:
    _, state, images, expected = s12
    sail_state = {f"module._orig_mod.{key}": value for key, value in in_layout(state, "s12", "sail-sg").items()}
    torch.save({wrapper: sail_state, "epoch": 300}, tmp_path / filename)
    model = create_model(weights=tmp_path / filename)
    assert model.weights_source == f"sail-sg checkpoint {tmp_path / filename}"
    assert model.class_names[0] == "tench"  # no labels in the file: ImageNet names for 1000 classes
    assert (logits_of(model, images) - expected).abs().max().item() <= TOLERANCE


def test_bundled_style_fp16_checkpoint_brings_names_mixer_and_metadata(tmp_path: Path) -> None:
    trained = PoolFormer(VARIANTS["s12"], num_classes=10, token_mixers="identity").eval()
    half = {key: value.half() for key, value in trained.state_dict().items()}
    metadata = {
        "variant": "s12",
        "token_mixer": "identity",
        "name": "IdentityFormer-S12 · Imagenette (bundled)",
        "wnids": json.dumps(["n01440764"] * 10),
        "class_names": json.dumps(TEN_CLASSES),
        "val_top1": "0.850",
        "recipe": "test recipe",
        "dataset": "imagenette2",
    }
    path = save_tensors(half, tmp_path / "identityformer_s12_imagenette.safetensors", metadata)
    model = create_model(weights=path)
    assert model.token_mixers == ("identity",) * 4
    assert model.class_names == TEN_CLASSES
    assert model.checkpoint_metadata == metadata
    assert model.weights_source == f"IdentityFormer-S12 · Imagenette (bundled) ({path.name})"
    assert all(param.dtype == torch.float32 for param in model.parameters())
    trained.load_state_dict({key: value.float() for key, value in half.items()})
    images = torch.randn(1, 3, 224, 224)
    assert torch.equal(logits_of(model, images), logits_of(trained, images))


def test_device_choice() -> None:
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert next(create_model(device="cpu").parameters()).device.type == "cpu"
    with pytest.raises(WeightsError, match="unknown device") as excinfo:
        create_model(device="abacus")
    one_line_error(excinfo)


def test_asking_for_cuda_gives_a_cuda_model_or_a_clear_error() -> None:
    if torch.cuda.is_available():
        assert next(create_model(device="cuda").parameters()).is_cuda
    else:
        with pytest.raises(WeightsError, match="no CUDA GPU") as excinfo:
            create_model(device="cuda")
        one_line_error(excinfo)


# --- the Hugging Face cache, in a fresh process with the user's environment variables --------------

LOAD_FROM_HUB = """
import json, sys, time, torch
from poolformer import WeightsError, create_model, hub_weights_cached
variant, images, logits = sys.argv[1:]
report = {"cached": {name: hub_weights_cached(name) for name in ("s12", "s24", "m48")}}
start = time.perf_counter()
try:
    model = create_model(variant, weights="hub")
except WeightsError as error:
    report.update(error=str(error), seconds=time.perf_counter() - start)
else:
    with torch.no_grad():
        torch.save(model(torch.load(images)), logits)
    report.update(source=model.weights_source, labels=model.class_names)
print(json.dumps(report))
"""


def load_from_hub_in_fresh_process(variant: str, cache: Path, images: torch.Tensor, work: Path) -> dict:
    """huggingface_hub reads HF_HUB_CACHE/HF_HUB_OFFLINE at import, so each case gets its own process."""
    torch.save(images, work / "images.pt")
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO_ROOT)}
    args = [sys.executable, "-c", LOAD_FROM_HUB, variant, str(work / "images.pt"), str(work / "logits.pt")]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120, check=True)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    if "source" in report:
        report["logits"] = torch.load(work / "logits.pt")
    return report


def test_hub_weights_load_from_the_cache_with_config_labels(s12, tmp_path: Path) -> None:
    model, _, images, expected = s12
    model.save_pretrained(fake_hub_snapshot(tmp_path / "cache", "sail/poolformer_s12"))
    report = load_from_hub_in_fresh_process("s12", tmp_path / "cache", images, tmp_path)
    assert report["cached"] == {"s12": True, "s24": False, "m48": False}
    assert report["source"] == "official ImageNet-1k weights, sail/poolformer_s12 (local HF cache)"
    assert report["labels"][:2] == ["imagenet class 0", "imagenet class 1"]  # from config.json's id2label
    assert (report["logits"] - expected).abs().max().item() <= TOLERANCE


def test_hub_repo_with_only_pytorch_model_bin_loads(tmp_path: Path) -> None:
    """s24 and s36 publish only pytorch_model.bin."""
    reference = reference_model("s24", seed=11)
    snapshot = fake_hub_snapshot(tmp_path / "cache", "sail/poolformer_s24")
    reference.config.save_pretrained(snapshot)
    torch.save(reference.state_dict(), snapshot / "pytorch_model.bin")
    images = torch.randn(1, 3, 224, 224)
    report = load_from_hub_in_fresh_process("s24", tmp_path / "cache", images, tmp_path)
    assert report["cached"] == {"s12": False, "s24": True, "m48": False}
    assert report["source"] == "official ImageNet-1k weights, sail/poolformer_s24 (local HF cache)"
    with torch.no_grad():
        expected = reference(pixel_values=images).logits
    assert (report["logits"] - expected).abs().max().item() <= TOLERANCE


def test_hub_weights_missing_offline_fail_fast_with_instructions(tmp_path: Path) -> None:
    (tmp_path / "cache").mkdir()
    report = load_from_hub_in_fresh_process("m48", tmp_path / "cache", torch.zeros(1), tmp_path)
    assert report["cached"] == {"s12": False, "s24": False, "m48": False}
    assert report["seconds"] < 3
    message = report["error"]
    assert "\n" not in message
    for hint in ("m48", "HF_HUB_OFFLINE", "hf download sail/poolformer_m48", "--weights PATH"):
        assert hint in message


# --- bad checkpoints -------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
def test_missing_and_unexpected_keys_are_named(s12, tmp_path: Path, layout: str) -> None:
    state = in_layout(s12[1], "s12", layout)
    dropped = next(row for row in key_rows(VARIANTS["s12"].depths) if row[2] == "stages.2.blocks.3.norm2.weight")
    del state[dropped[LAYOUTS.index(layout)]]
    state["extra.weight"] = torch.ones(3)
    path = save_tensors(state, tmp_path / "broken.safetensors")
    with pytest.raises(WeightsError) as excinfo:
        create_model(weights=path)
    message = one_line_error(excinfo)
    assert str(path) in message and f"({layout} keys)" in message
    assert "missing 1 (timm names): stages.2.blocks.3.norm2.weight" in message
    assert "unexpected 1: extra.weight" in message


def test_wrong_shapes_are_named_in_the_files_own_names(s12, tmp_path: Path) -> None:
    sail_state = in_layout(s12[1], "s12", "sail-sg")
    sail_state["network.4.0.mlp.fc1.weight"] = torch.zeros(1280, 320, 3, 3)
    path = save_tensors(sail_state, tmp_path / "reshaped.bin")
    with pytest.raises(WeightsError) as excinfo:
        create_model(weights=path)
    message = one_line_error(excinfo)
    assert "(sail-sg keys)" in message
    assert "wrong shape 1 (file vs model): network.4.0.mlp.fc1.weight (1280, 320, 3, 3) vs (1280, 320, 1, 1)" in message


def test_class_count_and_variant_must_agree_with_the_tensors(s12, tmp_path: Path) -> None:
    path = save_tensors(in_layout(s12[1], "s12", "timm"), tmp_path / "s12.safetensors")
    with pytest.raises(WeightsError, match=r"head\.fc\.weight \(1000, 512\) vs \(10, 512\)") as excinfo:
        create_model(weights=path, num_classes=10)
    one_line_error(excinfo)
    with pytest.raises(WeightsError, match="holds PoolFormer-s12 weights, not s24") as excinfo:
        create_model("s24", weights=path)
    one_line_error(excinfo)


def test_unknown_key_layout_is_explained(tmp_path: Path) -> None:
    path = save_tensors({"encoder.layer.0.weight": torch.ones(2)}, tmp_path / "bert.safetensors")
    with pytest.raises(WeightsError, match="match no PoolFormer checkpoint layout") as excinfo:
        create_model(weights=path)
    assert "encoder.layer.0.weight" in one_line_error(excinfo)


@pytest.mark.parametrize(
    ("filename", "content", "expected"),
    [
        ("notes.safetensors", b"just some text, not tensors", "not a readable safetensors file"),
        ("notes.bin", b"just some text, not tensors", "not a PyTorch checkpoint"),
        ("empty.pth.tar", b"", "not a PyTorch checkpoint"),
    ],
)
def test_files_that_are_not_checkpoints(tmp_path: Path, filename: str, content: bytes, expected: str) -> None:
    (tmp_path / filename).write_bytes(content)
    with pytest.raises(WeightsError, match=expected) as excinfo:
        create_model(weights=tmp_path / filename)
    message = one_line_error(excinfo)
    assert filename in message
    assert "weights_only" not in message  # never pass on torch's advice to load unsafely


def test_a_pickle_without_tensors_is_not_a_checkpoint(tmp_path: Path) -> None:
    torch.save({"epoch": 3, "values": [1, 2, 3]}, tmp_path / "stats.pth")
    with pytest.raises(WeightsError, match="holds no named tensors") as excinfo:
        create_model(weights=tmp_path / "stats.pth")
    one_line_error(excinfo)


class MakesADirectoryWhenUnpickled:
    """A pickle payload: unpickling it unsafely would run os.mkdir(target)."""

    def __init__(self, target: Path) -> None:
        self.target = str(target)

    def __reduce__(self):
        return os.mkdir, (self.target,)


def test_pickles_with_arbitrary_objects_are_refused_unopened(tmp_path: Path) -> None:
    target = tmp_path / "created-by-the-pickle"
    torch.save({"state_dict": {"head.weight": torch.ones(1)}, "hook": MakesADirectoryWhenUnpickled(target)},
               tmp_path / "evil.pth")  # fmt: skip
    with pytest.raises(WeightsError, match="unsafe to load") as excinfo:
        create_model(weights=tmp_path / "evil.pth")
    one_line_error(excinfo)
    assert not target.exists()


def test_missing_paths_and_empty_directories(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="does not exist") as excinfo:
        create_model(weights=tmp_path / "nowhere.safetensors")
    one_line_error(excinfo)
    with pytest.raises(WeightsError, match="holds neither model.safetensors nor pytorch_model.bin") as excinfo:
        create_model(weights=tmp_path)
    one_line_error(excinfo)


def test_unknown_variant_lists_the_choices() -> None:
    with pytest.raises(WeightsError, match="unknown variant 's99'; choose one of s12, s24, s36, m36, m48"):
        create_model("s99")


def test_a_truncated_network_matches_no_variant_unless_one_is_named(s12, tmp_path: Path) -> None:
    state = {key: value for key, value in in_layout(s12[1], "s12", "timm").items() if ".blocks.1." not in key}
    path = save_tensors(state, tmp_path / "truncated.safetensors")
    with pytest.raises(WeightsError, match=r"blocks per stage \(1, 1, 5, 1\) .* match no variant") as excinfo:
        create_model(weights=path)
    one_line_error(excinfo)
    with pytest.raises(WeightsError, match=r"missing 40 \(timm names\): stages\.0\.blocks\.1\.") as excinfo:
        create_model("s12", weights=path)
    one_line_error(excinfo)
