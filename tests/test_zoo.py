"""The mixer zoo in process: each model's maps are its own Grad-CAM for one class, the shared models are only
read, a checkpoint of any zoo layout joins by its metadata alone, and every existing view handles it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from conftest import BUNDLED_DIR, REPO, bundled_zoo
from PIL import Image
from reference import TABLE_5_TOP1
from safetensors import safe_open
from safetensors.torch import save_file

from poolformer import VARIANTS, PoolFormer, explorer, grad_cam
from poolformer.explorer import catalogue
from poolformer.explorer.comparison import compare_one
from poolformer.explorer.measured import FeatureSimilarity
from poolformer.mixers import MIXER_LAYOUTS, resolve_token_mixers
from poolformer.preprocess import load_image, preprocess
from poolformer.train import ZOO_NAMES
from poolformer.weights import create_model
from visualize.architecture import architecture_svg
from visualize.gradcam import CAM_TILE, cam_comparison_summary
from visualize.maps import PANEL_GAP, TITLE_HEIGHT
from visualize.mixer import filter_caption, token_views
from visualize.stages import stage_pictures
from visualize.zoo import ALIKE_AT_STAGE_1, similarity_picture, similarity_reading, zoo_picture, zoo_table

CAT = REPO / "assets" / "examples" / "cat.jpg"
POOLING = BUNDLED_DIR / "poolformer_s12_imagenette.safetensors"
IDENTITY = BUNDLED_DIR / "identityformer_s12_imagenette.safetensors"
ZOO_ROW_HEIGHT = 2 * TITLE_HEIGHT + CAM_TILE  # a model's heading, its panels' titles, its maps
ZOO = list(bundled_zoo().values())  # pooling, identity, and whichever new zoo mixers are shipped


def test_the_bundled_zoo_is_every_mixer_model_pooling_first() -> None:
    assert ZOO[:2] == [POOLING, IDENTITY]
    assert [Path(choice.weights) for choice in explorer.zoo_choices()] == ZOO
    assert explorer.zoo_class_names() == json.loads(explorer.zoo_choices()[0].metadata["class_names"])


def test_each_models_maps_are_its_own_grad_cam_for_the_pooling_models_top1() -> None:
    """Against each checkpoint loaded on its own (the plain model, not the app's folded twin) and torch's autograd."""
    shared = [explorer.MODELS.get(choice) for choice in explorer.zoo_choices()]
    before = [{name: p.detach().clone() for name, p in model.named_parameters()} for model in shared]
    zoo = explorer.mixer_zoo(CAT)
    pixels = preprocess(load_image(CAT), 0.9)
    pooling = create_model(weights=POOLING)
    with torch.inference_mode():
        top1 = int(pooling(pixels).argmax())
    assert zoo.target == top1 and not zoo.target_chosen and zoo.target_name == pooling.class_names[top1]
    assert len(zoo.members) == len(ZOO)
    for member, path in zip(zoo.members, ZOO):
        model = create_model(weights=path)
        with torch.inference_mode():
            logits, stages = model.forward_with_stages(pixels)
        probabilities = logits[0].softmax(-1)
        assert list(member.top5) == [model.class_names[i] for i in probabilities.topk(5).indices.tolist()]
        assert member.target_probability == pytest.approx(float(probabilities[top1]), abs=1e-5)
        maps = grad_cam(model, pixels, top1)
        # The app's twin runs its pooling blocks folded, which rounds differently in the last bits; attention's
        # softmax backward amplifies that about a hundredfold in the stage-3 map of [P, P, A, A] (1.6e-4 of its peak).
        scale = 1e-3 if "attention" in model.token_mixers else 1e-5
        for stage, cam in zip(explorer.CAM_STAGES, member.cams):
            peak = float(maps[stage - 1].max())
            torch.testing.assert_close(torch.from_numpy(cam), maps[stage - 1], rtol=1e-4, atol=scale * peak)
        torch.testing.assert_close(torch.from_numpy(member.stage4_energy), stages[3][0].norm(dim=0), rtol=1e-4, atol=1e-4)
    for model, parameters in zip(shared, before):  # read, never written: no .grad, no flag changed, same values
        for name, parameter in model.named_parameters():
            assert parameter.grad is None and torch.equal(parameter, parameters[name]), name


def test_a_named_class_is_explained_in_every_model() -> None:
    zoo = explorer.mixer_zoo(CAT, "Parachute")  # names match without regard to case
    assert zoo.target_name == "parachute" and zoo.target_chosen
    pixels = preprocess(load_image(CAT), 0.9)
    for member, path in zip(zoo.members, ZOO, strict=True):
        with torch.inference_mode():
            probability = float(create_model(weights=path)(pixels)[0].softmax(-1)[zoo.target])
        assert member.target_probability == pytest.approx(probability, abs=1e-5)
    assert "**parachute** (the class you picked)" in zoo_table(zoo)


def test_an_unknown_class_is_a_one_line_error() -> None:
    with pytest.raises(explorer.ExplorerError, match="know no class 'tabby'") as error:
        explorer.mixer_zoo(CAT, "tabby")
    assert "\n" not in str(error.value) and "parachute" in str(error.value)


def test_the_table_sets_our_figures_beside_table_5() -> None:
    zoo = explorer.mixer_zoo(CAT)
    lines = [line for line in zoo_table(zoo).splitlines() if line.startswith("| ")]
    count = len(ZOO)  # two tables, each a header and a row per model: the photo's answers, then what each measured
    answers, measured = lines[1 : 1 + count], lines[2 + count : 2 + 2 * count]
    summary = json.loads(explorer.zoo_choices()[0].metadata["seed_summary"])
    for member, answer, row in zip(zoo.members, answers, measured, strict=True):
        short, mixer = member.choice.name.split(" · ")[0], member.choice.token_mixer
        top5 = " · ".join(f"{name} {value * 100:.1f} %" for name, value in member.top5.items())
        assert answer == f"| {short} | {top5} | {member.target_probability * 100:.1f} % |"
        seeds = summary[mixer]
        assert row.startswith(f"| {short} | ") and row.endswith(f"| {TABLE_5_TOP1[mixer]} |")
        if len(seeds["top1"]) == 1:  # no spread yet, so no interval either
            assert f"| {seeds['mean'] * 100:.2f} (1 seed) | " in row
            gap = summary["vs_pooling"][mixer]
            assert f"{gap['mean'] * 100:+.2f} (one seed: no interval yet)" in row
            continue
        assert f"{seeds['mean'] * 100:.2f} ± {seeds['sd'] * 100:.2f} ({len(seeds['top1'])} seeds)" in row
        if mixer != "pooling":
            gap = summary["vs_pooling"][mixer]
            assert f"{gap['mean'] * 100:+.2f} [{gap['ci95'][0] * 100:+.2f}, {gap['ci95'][1] * 100:+.2f}]" in row
    picture = zoo_picture(zoo)
    assert picture.height == count * ZOO_ROW_HEIGHT + (count - 1) * PANEL_GAP  # one row per model


def test_the_cka_heatmap_and_its_reading_come_from_the_shipped_record() -> None:
    similarity = explorer.zoo_similarity()
    with safe_open(str(POOLING), framework="pt") as reader:
        record = json.loads(reader.metadata()["cka_to_pooling"])
    assert similarity is not None and similarity.stages == record["stages"]
    mixers = [name for name in record["stages"] if not name.startswith("pooling seed")]
    assert mixers == sorted(choice.token_mixer for choice in explorer.zoo_choices()[1:])  # every other zoo model
    picture = similarity_picture(similarity)
    assert picture.width < 500 and picture.height < 40 + 30 * len(record["stages"])  # drawn small: a row per model
    reading = similarity_reading(similarity)
    for name, values in record["stages"].items():
        assert ", ".join(f"{value:.2f}" for value in values) in reading, name
    for name in mixers:  # each mixer's sentence names the stage where it is least like pooling
        values = record["stages"][name]
        sentence = reading.split(f"**{name}** scores ")[1].split(". ")[0]
        low = min(range(4), key=values.__getitem__)
        assert (f"least alike at stage {low + 1}" in sentence) == (low in (1, 2)), (name, sentence)
        assert ("least alike at once, in stage 1" in sentence) == (low == 0)
        assert ("ever less alike deeper down" in sentence) == (low == 3)
        if low > 0:  # "alike early on" only where stage 1 is (attention in every stage is not: 0.55)
            assert ("alike early on" in sentence) == (values[0] >= ALIKE_AT_STAGE_1), (name, sentence)
    assert f"same {similarity.images} Imagenette val photos" in reading
    assert ("No second pooling seed" in reading) == (mixers == list(record["stages"]))
    alone = FeatureSimilarity("pooling seed 0", "", 500, "", {"identity": [0.9, 0.8, 0.5, 0.7]})
    with_seed = FeatureSimilarity("pooling seed 0", "", 500, "", {**alone.stages, "pooling seed 1": [0.95] * 4})
    assert "Two pooling runs that differ only in their seed (pooling seed 1) score 0.95" in similarity_reading(with_seed)
    assert "No second pooling seed" in similarity_reading(alone)
    assert similarity_picture(with_seed).height == similarity_picture(alone).height + 30  # one more row


def zoo_checkpoint(path: Path, layout: str) -> Path:
    """A checkpoint of `layout` as `train fit` + `finalize` would write it (random weights, the identity model's
    classes and recipe), so the app sees a new zoo member arrive with nothing but its file."""
    with safe_open(str(IDENTITY), framework="pt") as reader:
        metadata = dict(reader.metadata())
    metadata.update(token_mixer=layout, name=f"{ZOO_NAMES[layout]}-S12 · Imagenette (bundled)", val_top1="0.9000",
                    image_size="224", mixer_seed="0")  # fmt: skip
    for key in ("seed_summary", "cka_to_pooling"):
        metadata.pop(key)
    torch.manual_seed(1)
    model = PoolFormer(VARIANTS["s12"], 10, token_mixers=layout)
    save_file({key: value.half().contiguous() for key, value in model.state_dict().items()}, str(path), metadata=metadata)
    return path


@pytest.fixture
def zoo_with(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[explorer.ModelChoice]:
    """The bundled pair plus one checkpoint of the layout asked for, as the app's checkpoint folder."""
    for shipped in (POOLING, IDENTITY):
        (tmp_path / shipped.name).symlink_to(shipped)
    zoo_checkpoint(tmp_path / f"{request.param.replace('-', '')}former_s12_imagenette.safetensors", request.param)
    monkeypatch.setenv("POOLFORMER_CHECKPOINT_DIR", str(tmp_path))
    catalogue.picker_entries.cache_clear()
    try:
        yield explorer.zoo_choices()[-1]
    finally:
        monkeypatch.undo()
        catalogue.picker_entries.cache_clear()


NEW_LAYOUTS = [layout for layout in MIXER_LAYOUTS if layout not in ("pooling", "identity")]
TABLE_5_GMACS = {"depthwise": 1.8, "random": 3.3, "pool-attention": 2.5}


@pytest.mark.parametrize("zoo_with", NEW_LAYOUTS, indirect=True)
def test_a_new_zoo_checkpoint_joins_and_every_view_handles_it(zoo_with: explorer.ModelChoice) -> None:
    layout, value = zoo_with.token_mixer, zoo_with.value
    assert [choice.token_mixer for choice in explorer.zoo_choices()] == ["pooling", "identity", layout]
    zoo = explorer.mixer_zoo(CAT)
    member = zoo.members[-1]
    assert member.token_mixers == resolve_token_mixers(layout) and member.choice == zoo_with
    assert zoo_picture(zoo).height == 3 * ZOO_ROW_HEIGHT + 2 * PANEL_GAP
    row = [line for line in zoo_table(zoo).splitlines() if line.startswith(f"| {zoo_with.name.split(' · ')[0]} |")][1]
    assert "90.00 (1 seed)" in row and ("not in Table 5" in row) == (layout == "attention")

    # The views of the other tabs take the new model as the selected one.
    prediction = explorer.predict(CAT, value)
    assert [stage.token_mixer for stage in prediction.stages] == list(resolve_token_mixers(layout))
    assert all(isinstance(picture, Image.Image) for picture in stage_pictures(prediction.photo, prediction.stages))
    mixers = resolve_token_mixers(layout)
    for photo in (CAT, None):  # shapes measured on the photo, or from the architecture alone
        svg = architecture_svg(explorer.trace(photo, value))
        assert [svg.count(f'data-mixer="{mixer}"') for mixer in mixers] == [mixers.count(mixer) for mixer in mixers]
    assert ("no pooling there" in filter_caption(explorer.filter_photo(CAT, value))) == (mixers[0] != "pooling")
    picture, summary = token_views(explorer.inspect_token(CAT, value, 4, 3, 3))
    assert isinstance(picture, Image.Image) and "would pass on" in summary
    assert "pick a pooling model" in cam_comparison_summary(explorer.explain(CAT, value))
    with pytest.raises(explorer.ExplorerError, match=f"mixes tokens by {layout}; pick a pooling model") as error:
        explorer.ablate(CAT, value)
    assert "\n" not in str(error.value)
    ablation = explorer.ablate(CAT, explorer.zoo_choices()[0].value)
    assert [run.name for run in ablation.zoo] == [choice.name for choice in explorer.zoo_choices()]
    gmacs = compare_one(zoo_with, load_image(CAT), None).gmacs
    assert gmacs == TABLE_5_GMACS.get(layout, gmacs) and not math.isnan(gmacs)  # attention in every stage: no row
