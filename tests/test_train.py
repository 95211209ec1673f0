"""The training pipeline end to end on CPU: pack → fit → finalize gives a checkpoint the app and CLI load.

The data is two colours of noise, so a few epochs must learn it; that checks augmentation, mixing,
the optimiser step and EMA together without a GPU.
"""

from __future__ import annotations

import json
import math
import re
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from reference import IMAGENETTE
from test_cka import hsic_cka
from safetensors import safe_open

from poolformer.cka import CKA_KEY, token_rows
from poolformer.explorer import bundled_choice, feature_similarity, measured_run
from poolformer.mixers import resolve_token_mixers
from poolformer.preprocess import load_image, preprocess
from poolformer.run_state import resume_path
from poolformer.seeds import PAUSED, SUMMARY_KEY, gap_interval, read_metadata, summary, summary_table, t_quantile
from poolformer.train import main as train_main
from poolformer.training_data import holdout_split
from poolformer.weights import create_model
from visualize.ablation import scratch_comparison

WNIDS = list(IMAGENETTE)[:2]  # tench, English springer: real ImageNet ids, so finalize can name them


@pytest.fixture(scope="module")
def colour_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Class 0 is reddish noise, class 1 bluish noise, 24 images each."""
    root = tmp_path_factory.mktemp("colours")
    rng = np.random.default_rng(0)
    for label, wnid in enumerate(WNIDS):
        (root / wnid).mkdir()
        for i in range(24):
            pixels = rng.integers(0, 120, size=(56, 64, 3))
            pixels[..., 0 if label == 0 else 2] += 120
            Image.fromarray(pixels.astype(np.uint8)).save(root / wnid / f"{i}.png")
    return root


def test_pack_fit_finalize_produces_a_working_checkpoint(colour_dataset: Path, tmp_path: Path) -> None:
    packed, raw, final = tmp_path / "train.safetensors", tmp_path / "raw.safetensors", tmp_path / "final.safetensors"
    assert train_main(["pack", str(colour_dataset), str(packed), "--size", "40"]) == 0
    assert train_main([
        "fit", "--data", str(packed), "--val", str(packed), "--out", str(raw), "--mixer", "identity",
        "--epochs", "8", "--warmup-epochs", "1", "--batch-size", "8", "--size", "32", "--lr", "1e-3",
        "--ema", "0.9", "--no-compile",
    ]) == 0  # fmt: skip
    assert train_main(["finalize", str(raw), "--val", str(colour_dataset), "--out", str(final)]) == 0

    with safe_open(str(final), framework="pt") as checkpoint:
        metadata = checkpoint.metadata()
    assert metadata["token_mixer"] == "identity" and json.loads(metadata["wnids"]) == WNIDS
    assert json.loads(metadata["class_names"]) == [IMAGENETTE[wnid][1] for wnid in WNIDS]
    assert float(metadata["val_top1"]) >= 0.9, metadata["val_top1"]

    model = create_model(weights=final)
    assert model.token_mixers == ("identity",) * 4 and model.num_classes == 2


def test_holdout_fit_with_a_final_phase_scores_the_holdout_at_the_eval_protocol(
    colour_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Recipes are compared on held-out train images at 224 px (as `eval` sees val), whatever they trained at."""
    packed, raw = tmp_path / "train.safetensors", tmp_path / "raw.safetensors"
    assert train_main(["pack", str(colour_dataset), str(packed), "--size", "40"]) == 0
    assert train_main([
        "fit", "--data", str(packed), "--out", str(raw), "--holdout", "0.25", "--epochs", "6", "--warmup-epochs", "1",
        "--batch-size", "8", "--size", "32", "--final-size", "48", "--final-epochs", "2", "--lr", "1e-3", "--ema", "0.5",
        "--no-compile",
    ]) == 0  # fmt: skip
    log = capsys.readouterr().out
    assert "data: 36 train, 12 val" in log
    score = re.search(r"holdout EMA top-1 at the eval protocol \(resize 248, crop 224\): ([0-9.]+) on 12 images", log)
    assert score is not None, log[-1500:]
    assert float(score.group(1)) >= 0.75  # two colour-coded classes: learnt even in six tiny epochs
    assert "(last 2 at 48px)" in read_metadata(raw)["recipe"]


def test_fit_runs_data_parallel_under_torchrun(colour_dataset: Path, tmp_path: Path) -> None:
    """Two processes (gloo on CPU; NCCL on GPUs): each trains on its share, rank 0 writes the checkpoint."""
    packed, out = tmp_path / "train.safetensors", tmp_path / "ddp.safetensors"
    assert train_main(["pack", str(colour_dataset), str(packed), "--size", "40"]) == 0
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "poolformer", "train", "fit", "--data", str(packed), "--out", str(out),
        "--epochs", "2", "--warmup-epochs", "1", "--batch-size", "8", "--size", "32", "--no-compile",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=Path(__file__).parent.parent)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "batch 8 on 2 process(es)" in result.stdout and result.stdout.count("saved EMA weights") == 1
    assert create_model(weights=out).num_classes == 2


def test_holdout_is_stratified_disjoint_and_seed_independent() -> None:
    labels = torch.tensor([0] * 30 + [1] * 10)
    train, held = holdout_split(labels, 0.2)
    assert sorted(torch.cat([train, held]).tolist()) == list(range(40))
    assert labels[held].bincount().tolist() == [6, 2]  # 20 % of each class
    torch.manual_seed(99)  # the global seed (a training seed) must not change which images are held out
    assert torch.equal(holdout_split(labels, 0.2)[1], held)


def test_welch_interval_matches_textbook_quantiles() -> None:
    assert t_quantile(0.975, 10) == pytest.approx(2.2281, abs=1e-4)
    assert t_quantile(0.975, 3) == pytest.approx(3.1824, abs=1e-4)
    # Equal sizes and spreads: df = 2(n-1) = 6, half-width t(0.975, 6) * sqrt(2 sd^2 / n).
    a, b = [0.90, 0.91, 0.92, 0.93], [0.88, 0.89, 0.90, 0.91]
    gap, low, high = gap_interval(a, b)
    half = 2.4469 * math.sqrt(2 * statistics.variance(a) / 4)
    assert gap == pytest.approx(0.02) and (low, high) == pytest.approx((0.02 - half, 0.02 + half), abs=1e-5)


def test_seeds_then_summarize_record_every_seed_and_the_app_text_shows_them(
    colour_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two seeds of each mixer (one after another on CPU), then the per-seed figures land in every checkpoint."""
    packed = tmp_path / "train.safetensors"
    assert train_main(["pack", str(colour_dataset), str(packed), "--size", "40"]) == 0
    fit_args = ["--data", str(packed), "--epochs", "1", "--warmup-epochs", "1", "--batch-size", "8", "--size", "32", "--no-compile"]
    runs = tmp_path / "runs"
    assert train_main(["seeds", "--seeds", "0", "1", "--out-dir", str(runs), "--", *fit_args]) == 0
    raw = sorted(runs.glob("*.safetensors"))
    assert [path.name for path in raw] == [f"{m}-seed{s}.safetensors" for m in ("identity", "pooling") for s in (0, 1)]
    assert "epoch   1/1" in (runs / "identity-seed1.train.log").read_text()
    final = tmp_path / "final"
    probe = ["--probe-images", "3"]
    assert train_main(["summarize", *map(str, raw), "--val", str(colour_dataset), "--out-dir", str(final), *probe]) == 0

    summaries = {json.dumps(json.loads(read_metadata(path)[SUMMARY_KEY]), sort_keys=True) for path in final.iterdir()}
    assert len(summaries) == 1  # every checkpoint carries the same, complete summary
    summary = json.loads(summaries.pop())
    for mixer in ("pooling", "identity"):
        recorded = {seed: float(read_metadata(final / f"{mixer}-seed{seed}.safetensors")["val_top1"]) for seed in (0, 1)}
        assert summary[mixer]["top1"] == {str(seed): value for seed, value in recorded.items()}
        assert summary[mixer]["mean"] == pytest.approx(statistics.fmean(recorded.values()))
    low, high = summary["gap"]["ci95"]
    assert low <= summary["gap"]["mean"] <= high
    assert_cka_recorded(final, colour_dataset)

    # Adding a seed later: runs measured before are not measured again, and the summary covers them all.
    assert train_main(["seeds", "--seeds", "2", "--mixers", "pooling", "--out-dir", str(runs), "--", *fit_args]) == 0
    again = tmp_path / "again"
    measured = [*final.iterdir(), runs / "pooling-seed2.safetensors"]
    assert train_main(["summarize", *map(str, measured), "--val", str(colour_dataset), "--out-dir", str(again), *probe]) == 0
    assert capsys.readouterr().out.count("already measured") == 4
    summary_again = json.loads(read_metadata(again / "identity-seed0.safetensors")[SUMMARY_KEY])
    assert summary_again["identity"] == summary["identity"] and len(summary_again["pooling"]["top1"]) == 3

    # Only the shipped seed-0 files (as in assets/checkpoints): the other seeds' figures they record are kept.
    shipped = tmp_path / "shipped"
    seed0 = [again / "pooling-seed0.safetensors", again / "identity-seed0.safetensors"]
    assert train_main(["summarize", *map(str, seed0), "--val", str(colour_dataset), "--out-dir", str(shipped), *probe]) == 0
    assert json.loads(read_metadata(shipped / "pooling-seed0.safetensors")[SUMMARY_KEY]) == summary_again

    runs = [measured_run(bundled_choice(final / f"{mixer}-seed0.safetensors")) for mixer in ("pooling", "identity")]
    text = scratch_comparison(runs)
    pooling = summary["pooling"]
    assert f"{pooling['mean'] * 100:.2f} ± {pooling['sd'] * 100:.2f} (2 seeds)" in text
    assert f"{summary['vs_pooling']['identity']['mean'] * 100:+.2f} points against pooling (95 % interval" in text


def assert_cka_recorded(final: Path, val_dir: Path) -> None:
    """Every checkpoint carries the same CKA record, and its figures are the HSIC form's on the probe's token rows."""
    records = {read_metadata(path)[CKA_KEY] for path in final.iterdir()}
    assert len(records) == 1
    record = json.loads(records.pop())
    assert record["reference"] == "pooling seed 0" and record["images"] == 6 and "first 3 images" in record["probe"]
    assert list(record["stages"]) == ["identity", "pooling seed 1"]  # other mixers, then another pooling seed
    read_back = feature_similarity(bundled_choice(final / "identity-seed0.safetensors"))  # as the app reads it
    assert read_back is not None and read_back.stages == record["stages"] and read_back.images == record["images"]
    probe = [sorted((val_dir / wnid).iterdir())[:3] for wnid in WNIDS]
    pixels = torch.cat([preprocess(load_image(path), 0.9) for paths in probe for path in paths])
    with torch.inference_mode():
        _, reference = create_model(weights=final / "pooling-seed0.safetensors").forward_with_stages(pixels)
        for name, checkpoint in (("identity", "identity-seed0"), ("pooling seed 1", "pooling-seed1")):
            _, stages = create_model(weights=final / f"{checkpoint}.safetensors").forward_with_stages(pixels)
            for stage in (2, 3):  # 6 × 196 and 6 × 49 token rows: small enough for n × n Gram matrices
                expected = hsic_cka(token_rows(reference[stage]), token_rows(stages[stage]))
                assert record["stages"][name][stage] == pytest.approx(expected, rel=1e-6)


def test_zoo_summary_gives_every_mixer_its_gap_to_pooling() -> None:
    top1 = {
        "pooling": {0: 0.91, 1: 0.90, 2: 0.92},
        "identity": {0: 0.89, 1: 0.90, 2: 0.88},
        "depthwise": {0: 0.92, 1: 0.93, 2: 0.91},
    }
    result = summary(top1)
    gap, low, high = gap_interval(list(top1["depthwise"].values()), list(top1["pooling"].values()))
    assert result["vs_pooling"]["depthwise"] == {"mean": pytest.approx(gap), "ci95": pytest.approx([low, high])}
    gap, low, high = gap_interval(list(top1["pooling"].values()), list(top1["identity"].values()))
    assert result["gap"] == {"mean": pytest.approx(gap), "ci95": pytest.approx([low, high])}
    table = summary_table(result)
    assert "| depthwise | 92.00, 93.00, 91.00 | 92.00 ± 1.00 % | +1.00 [" in table


def test_a_mixer_with_one_seed_gets_its_gap_without_an_interval() -> None:
    result = summary({"pooling": {0: 0.91, 1: 0.90}, "pool-attention": {0: 0.72}})
    assert result["vs_pooling"]["pool-attention"]["mean"] == pytest.approx(0.72 - 0.905)
    assert "| pool-attention | 72.00 | 72.00 % (one seed) | -18.50 (one seed) |" in summary_table(result)


@pytest.mark.parametrize("mixer", ["depthwise", "pool-attention"])
def test_fit_trains_each_zoo_mixer_into_a_checkpoint_the_app_loads(colour_dataset: Path, tmp_path: Path, mixer: str) -> None:
    packed, raw = tmp_path / "train.safetensors", tmp_path / f"{mixer}.safetensors"
    assert train_main(["pack", str(colour_dataset), str(packed), "--size", "40"]) == 0
    assert train_main([
        "fit", "--data", str(packed), "--out", str(raw), "--mixer", mixer, "--epochs", "1", "--warmup-epochs", "1",
        "--batch-size", "8", "--size", "32", "--no-compile",
    ]) == 0  # fmt: skip
    model = create_model(weights=raw)
    assert model.token_mixers == resolve_token_mixers(mixer) and read_metadata(raw)["token_mixer"] == mixer


def test_a_paused_random_mixer_run_resumes_to_the_uninterrupted_weights(colour_dataset: Path, tmp_path: Path) -> None:
    """Paused after epoch 1 by --time-limit and run again, the run ends where one uninterrupted run does,
    across the redraw of its random matrices for the final phase's size."""
    packed = tmp_path / "train.safetensors"
    assert train_main(["pack", str(colour_dataset), str(packed), "--size", "40"]) == 0
    fit_args = ["fit", "--data", str(packed), "--mixer", "random", "--epochs", "2", "--warmup-epochs", "1",
                "--batch-size", "8", "--size", "32", "--final-size", "48", "--final-epochs", "1", "--no-compile"]
    straight, resumed = tmp_path / "straight.safetensors", tmp_path / "resumed.safetensors"
    assert train_main([*fit_args, "--out", str(straight)]) == 0
    with pytest.raises(SystemExit) as paused:
        train_main([*fit_args, "--out", str(resumed), "--time-limit", "0.001"])
    assert paused.value.code == PAUSED and resume_path(resumed).is_file() and not resumed.exists()
    assert train_main([*fit_args, "--out", str(resumed)]) == 0
    assert not resume_path(resumed).exists()
    with safe_open(str(straight), framework="pt") as a, safe_open(str(resumed), framework="pt") as b:
        assert a.keys() == b.keys()
        for key in a.keys():
            assert torch.equal(a.get_tensor(key), b.get_tensor(key)), key
    metadata = read_metadata(resumed)
    assert (metadata["image_size"], metadata["mixer_seed"]) == ("48", "0")
    assert create_model(weights=resumed).stages[0].blocks[0].token_mixer.matrix.shape == (144, 144)  # 12 x 12 tokens


def test_seeds_starts_no_run_too_late_to_pause_and_says_launch_again(tmp_path: Path) -> None:
    """With less than a run's start-up left of --time-limit, nothing starts and the launcher exits PAUSED."""
    code = train_main(["seeds", "--seeds", "0", "--mixers", "pooling", "--out-dir", str(tmp_path),
                       "--time-limit", "30", "--", "--data", str(tmp_path / "unused.safetensors")])  # fmt: skip
    assert code == PAUSED
    assert not list(tmp_path.iterdir())  # no run was started, so no log either
