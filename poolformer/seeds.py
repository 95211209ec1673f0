"""Several training seeds at once, and what they add up to: mean ± sd per mixer and the gap's 95 % interval.

One seed says little on a 3,925-image val split (seed-to-seed spread is about half a point), so the
bundled ablation is trained with several seeds per mixer:
  seeds      — run `train fit` once per mixer and seed, one process per visible GPU (one after another on CPU);
  summarize  — measure every run on val with the app's own CPU preprocessing, then write the per-seed
               figures into each checkpoint, so the app can show the spread beside the paper's numbers.
"""

from __future__ import annotations

import json
import math
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

SUMMARY_KEY = "seed_summary"
MIN_RUN_SECONDS = 120  # a run's start (data, compiling, one epoch) before it could pause with its state saved
PAUSED = 75  # `train fit`'s exit status when --time-limit stopped it with its state saved (EX_TEMPFAIL)


def rewrite_metadata(path: Path, updates: dict[str, str], out: Path | None = None) -> None:
    """Copy a safetensors file's tensors unchanged, with its metadata updated."""
    with safe_open(str(path), framework="pt") as checkpoint:
        metadata = dict(checkpoint.metadata() or {})
        tensors = {key: checkpoint.get_tensor(key) for key in checkpoint.keys()}
    metadata.update(updates)
    target = out or path
    target.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(target), metadata=metadata)


def read_metadata(path: Path) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as checkpoint:
        return dict(checkpoint.metadata() or {})


def seed_of(metadata: dict[str, str]) -> int:
    """The training seed; checkpoints from before the `seed` key record it only at the end of their recipe."""
    if "seed" in metadata:
        return int(metadata["seed"])
    match = re.search(r"\bseed (\d+)", metadata.get("recipe", ""))
    if match is None:
        raise ValueError("the checkpoint records no training seed")
    return int(match.group(1))


# ----------------------------------------------------------------------------- launching


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as names a child's CUDA_VISIBLE_DEVICES accepts.

    Under `CUDA_VISIBLE_DEVICES=2,3` the children must get "2" and "3", not torch's local indices 0 and 1.
    """
    count = torch.cuda.device_count()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return [str(index) for index in range(count)]
    return [name.strip() for name in visible.split(",") if name.strip()][:count]


def launch(
    seeds: Sequence[int], mixers: Sequence[str], out_dir: Path, fit_args: Sequence[str], per_gpu: int = 1,
    time_limit: float = 0.0,
) -> int:
    """Train `out_dir/<mixer>-seed<S>.safetensors` for every mixer and seed, keeping every visible GPU busy.

    Each run is an ordinary `train fit` in its own process (pinned to one GPU, `per_gpu` of them sharing it), so a
    single-GPU run and a run in a batch of seeds are the same program; the logs go beside the checkpoints. Runs
    whose checkpoint exists are skipped, and a run paused by `--time-limit` resumes when launched again.
    With `time_limit`, every run gets only the launcher's time left, so one started late still pauses in time,
    and none starts with less than MIN_RUN_SECONDS left.
    """
    slots = [gpu for gpu in (visible_gpus() or [None]) for _ in range(per_gpu)]
    out_dir.mkdir(parents=True, exist_ok=True)
    pending = [(mixer, seed) for seed in seeds for mixer in mixers]  # a pair of mixers finishes together
    pending = [(m, s) for m, s in pending if not (out_dir / f"{m}-seed{s}.safetensors").is_file()]
    running: dict[tuple[str, int], tuple[int, subprocess.Popen]] = {}
    failed = paused = 0
    started = time.perf_counter()
    while pending or running:
        left = time_limit - (time.perf_counter() - started) if time_limit else 0.0
        if time_limit and left < MIN_RUN_SECONDS and pending:
            paused += len(pending)  # too late to start anything that could save its state; launching again does
            pending.clear()
        while pending and len(running) < len(slots):
            mixer, seed = pending.pop(0)
            slot = next(i for i in range(len(slots)) if i not in {busy for busy, _ in running.values()})
            gpu = slots[slot]
            env = dict(os.environ, **({"CUDA_VISIBLE_DEVICES": gpu} if gpu is not None else {}))
            name = f"{mixer}-seed{seed}"
            command = [
                sys.executable, "-m", "poolformer", "train", "fit", *fit_args,
                "--mixer", mixer, "--seed", str(seed), "--out", str(out_dir / f"{name}.safetensors"),
                *(["--time-limit", f"{left:.0f}"] if time_limit else []),
            ]  # fmt: skip
            with (out_dir / f"{name}.train.log").open("a") as log:  # a resumed run goes on in the same log
                running[(mixer, seed)] = (slot, subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env))
            print(f"{name}: started on {'GPU ' + str(gpu) if gpu is not None else 'CPU'}", flush=True)
        time.sleep(0.5)
        for (mixer, seed), (_, process) in list(running.items()):
            if process.poll() is not None:
                del running[(mixer, seed)]
                code = process.returncode
                status = {0: "done", PAUSED: "paused (launch again to resume)"}.get(code, f"FAILED (exit {code})")
                print(f"{mixer}-seed{seed}: {status} after {time.perf_counter() - started:.0f}s", flush=True)
                failed += code not in (0, PAUSED)
                paused += code == PAUSED
    return 1 if failed else (PAUSED if paused else 0)


# ----------------------------------------------------------------------------- statistics


def _student_t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t, by Simpson's rule on the density (no SciPy at run time)."""
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)

    def density(x: float) -> float:
        return math.exp(log_norm - (df + 1) / 2 * math.log1p(x * x / df))

    steps = 2000
    h = abs(t) / steps
    area = density(0) + density(abs(t)) + sum((4 if i % 2 else 2) * density(i * h) for i in range(1, steps))
    half = area * h / 3
    return 0.5 + half if t >= 0 else 0.5 - half


def t_quantile(p: float, df: float) -> float:
    """The p-quantile of Student's t with `df` degrees of freedom, by bisection."""
    low, high = 0.0, 1000.0
    for _ in range(100):
        middle = (low + high) / 2
        low, high = (middle, high) if _student_t_cdf(middle, df) < p else (low, middle)
    return (low + high) / 2


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else float("nan")


def gap_interval(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """mean(a) - mean(b) and its Welch t interval (unequal variances, Welch-Satterthwaite df)."""
    (mean_a, sd_a), (mean_b, sd_b) = mean_sd(a), mean_sd(b)
    gap = mean_a - mean_b
    if len(a) < 2 or len(b) < 2:
        return gap, float("nan"), float("nan")
    va, vb = sd_a**2 / len(a), sd_b**2 / len(b)
    if va + vb == 0:
        return gap, gap, gap
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = t_quantile(0.5 + level / 2, df) * math.sqrt(va + vb)
    return gap, gap - half, gap + half


def summary(top1_by_mixer: dict[str, dict[int, float]]) -> dict:
    """Per mixer: each seed's top-1, mean and sd; each mixer's gap to pooling with its 95 % interval
    (`vs_pooling`), and the pooling - identity gap on its own (`gap`), the ablation the app quotes."""
    result: dict = {}
    for mixer, by_seed in top1_by_mixer.items():
        mean, sd = mean_sd(list(by_seed.values()))
        result[mixer] = {"top1": {str(seed): value for seed, value in sorted(by_seed.items())}, "mean": mean, "sd": sd}
    if "pooling" not in top1_by_mixer:
        return result
    pooling = list(top1_by_mixer["pooling"].values())
    versus = {}
    for mixer, by_seed in top1_by_mixer.items():
        if mixer != "pooling":
            gap, low, high = gap_interval(list(by_seed.values()), pooling)
            versus[mixer] = {"mean": gap, "ci95": [low, high]}
    if versus:
        result["vs_pooling"] = versus
    if "identity" in versus:
        identity = versus["identity"]
        result["gap"] = {"mean": -identity["mean"], "ci95": [-identity["ci95"][1], -identity["ci95"][0]]}
    return result


def recorded_top1(summary_text: str) -> dict[str, dict[int, float]]:
    """Every seed's top-1 per mixer from a checkpoint's `seed_summary` JSON ("{}" or absent: none)."""
    recorded = json.loads(summary_text or "{}")
    return {
        mixer: {int(seed): value for seed, value in row["top1"].items()}
        for mixer, row in recorded.items()
        if mixer not in ("gap", "vs_pooling")
    }


def summarize(finalized: Sequence[Path]) -> dict:
    """Read each finalized checkpoint's val top-1 and write the whole summary into every one of them.

    Seeds that a checkpoint's earlier summary records but whose own files are not among `finalized` are kept
    (the shipped checkpoints are the only copies of some seeds' figures); a file given here overrides them.
    """
    top1: dict[str, dict[int, float]] = {}
    for path in finalized:
        for mixer, by_seed in recorded_top1(read_metadata(path).get(SUMMARY_KEY, "")).items():
            for seed, value in by_seed.items():
                top1.setdefault(mixer, {}).setdefault(seed, value)
    for path in finalized:
        metadata = read_metadata(path)
        top1.setdefault(metadata["token_mixer"], {})[seed_of(metadata)] = float(metadata["val_top1"])
    result = summary(top1)
    for path in finalized:
        rewrite_metadata(path, {SUMMARY_KEY: json.dumps(result)})
    return result


def summary_table(result: dict) -> str:
    """The README's table: one row per mixer, every seed, mean ± sd and the gap to pooling; then pooling − identity."""
    lines = ["| token mixer | val top-1 per seed | mean ± sd | gap to pooling (95 % interval) |", "|---|---|---|---|"]
    for mixer, row in result.items():
        if mixer in ("gap", "vs_pooling"):
            continue
        seeds = ", ".join(f"{value * 100:.2f}" for value in row["top1"].values())
        versus = result.get("vs_pooling", {}).get(mixer)
        gap = "" if versus is None else f"{versus['mean'] * 100:+.2f}" + (
            " (one seed)" if math.isnan(versus["ci95"][0])
            else f" [{versus['ci95'][0] * 100:+.2f}, {versus['ci95'][1] * 100:+.2f}]"
        )
        spread = " % (one seed)" if math.isnan(row["sd"]) else f" ± {row['sd'] * 100:.2f} %"
        lines.append(f"| {mixer} | {seeds} | {row['mean'] * 100:.2f}{spread} | {gap} |")
    if "gap" in result:
        gap = result["gap"]
        low, high = (value * 100 for value in gap["ci95"])
        lines.append(f"\nGap pooling − identity: {gap['mean'] * 100:+.2f} points, 95 % interval [{low:+.2f}, {high:+.2f}] (Welch).")
    return "\n".join(lines)
