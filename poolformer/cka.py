"""Do two token mixers learn the same features? Linear CKA, stage by stage, against the pooling model.

Linear CKA (Kornblith et al., "Similarity of Neural Network Representations Revisited", ICML 2019): for
activations X (n × p1) and Y (n × p2) of the same n inputs, each column centred,
    CKA(X, Y) = ‖YᵀX‖²_F / (‖XᵀX‖_F ‖YᵀY‖_F).
It is 1 when Y is X up to a rotation, a reflection and one overall scale, and it is not fooled by the two
models numbering their channels differently. Raghu et al. (NeurIPS 2021) used it layer by layer to show
that ViTs and ResNets see differently; here it asks whether the MetaFormer frame makes mixers converge.

Rows are **token positions, not pooled images**: every (image, row, column) of a stage output is one row,
so n = images × H × W (500 images give 1.6 M rows in stage 1 and 24,500 in stage 4). Averaging each image
over positions first would throw away exactly what token mixers act on, where in the map a feature sits,
and would leave fewer rows (500) than stage 4 has channels (512), where linear CKA is biased towards 1.

The probe set is fixed: the first N images (file names sorted) of every class folder of the val split,
preprocessed as for evaluation (resize 248 bicubic, centre crop 224), so every checkpoint sees the same
pixels. `train summarize` measures it once and writes it into every checkpoint (`cka_to_pooling`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import groupby
from pathlib import Path

import torch
from tqdm import tqdm

from poolformer.evaluation import DECODE_THREADS, DatasetError, Sample, find_samples
from poolformer.model import NUM_STAGES, PoolFormer
from poolformer.preprocess import load_image, preprocess
from poolformer.seeds import read_metadata, rewrite_metadata, seed_of
from poolformer.weights import create_model

CKA_KEY = "cka_to_pooling"
PROBE_PER_CLASS = 50  # 500 Imagenette val images, about an eighth of the split
BATCH_SIZE = 25


class CrossMoments:
    """Running sums for the linear CKA of two feature matrices fed a block of rows at a time.

    Centring needs the column means of all rows, which are known only at the end, so the sums of x, y,
    xᵀx, yᵀy and xᵀy are kept (float64) and centred once: Σ(x − x̄)ᵀ(y − ȳ) = Σxᵀy − n·x̄ᵀȳ. Every block is
    first shifted by the first block's means, which leaves CKA unchanged but keeps that subtraction exact
    when a channel's mean is large against its spread.
    """

    def __init__(self) -> None:
        self.rows = 0
        self.shift_x = self.shift_y = torch.zeros(0)
        self.sum_x = self.sum_y = torch.zeros(0)
        self.xx = self.yy = self.xy = torch.zeros(0)

    def add(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Take in rows of x (m × p1) and y (m × p2) that belong to the same m inputs."""
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"x and y need the same rows, got {x.shape[0]} and {y.shape[0]}")
        x, y = x.detach().double(), y.detach().double()
        if self.rows == 0:
            self.shift_x, self.shift_y = x.mean(dim=0), y.mean(dim=0)
            self.sum_x, self.sum_y = torch.zeros_like(self.shift_x), torch.zeros_like(self.shift_y)
            self.xx = x.new_zeros(x.shape[1], x.shape[1])
            self.yy = y.new_zeros(y.shape[1], y.shape[1])
            self.xy = x.new_zeros(x.shape[1], y.shape[1])
        x, y = x - self.shift_x, y - self.shift_y
        self.rows += x.shape[0]
        self.sum_x += x.sum(dim=0)
        self.sum_y += y.sum(dim=0)
        self.xx += x.T @ x
        self.yy += y.T @ y
        self.xy += x.T @ y

    def cka(self) -> float:
        """‖YᵀX‖²_F / (‖XᵀX‖_F ‖YᵀY‖_F) of the column-centred rows seen so far."""
        mean_x, mean_y = self.sum_x / self.rows, self.sum_y / self.rows
        xx = self.xx - self.rows * torch.outer(mean_x, mean_x)
        yy = self.yy - self.rows * torch.outer(mean_y, mean_y)
        xy = self.xy - self.rows * torch.outer(mean_x, mean_y)
        return float(xy.square().sum() / (torch.linalg.matrix_norm(xx) * torch.linalg.matrix_norm(yy)))


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA of two (n × p) feature matrices whose rows are the same n inputs."""
    moments = CrossMoments()
    moments.add(x, y)
    return moments.cka()


def token_rows(features: torch.Tensor) -> torch.Tensor:
    """A (B, C, H, W) stage output as (B·H·W, C): one row per token position, image by image."""
    return features.permute(0, 2, 3, 1).reshape(-1, features.shape[1])


def probe_samples(val_dir: Path, per_class: int = PROBE_PER_CLASS) -> list[Sample]:
    """The first `per_class` images (sorted by file name) of every class folder: the same set every time."""
    chosen = []
    for wnid, group in groupby(find_samples(val_dir), key=lambda sample: sample.wnid):
        samples = list(group)[:per_class]
        if len(samples) < per_class:
            raise DatasetError(
                f"{val_dir / wnid} has only {len(samples)} images; "
                f"the CKA probe takes {per_class} per class (--probe-images)"
            )
        chosen += samples
    return chosen


def probe_batches(samples: Sequence[Sample], crop_pct: float, batch_size: int = BATCH_SIZE) -> Iterator[torch.Tensor]:
    """The probe images as model input, preprocessed as for evaluation, decoded a few at a time on threads."""
    with ThreadPoolExecutor(DECODE_THREADS) as pool:
        for start in range(0, len(samples), batch_size):
            batch = samples[start : start + batch_size]
            yield torch.cat(list(pool.map(lambda sample: preprocess(load_image(sample.path), crop_pct), batch)))


@torch.inference_mode()
def stage_cka(
    reference: PoolFormer, models: dict[str, PoolFormer], samples: Sequence[Sample], batch_size: int = BATCH_SIZE
) -> dict[str, list[float]]:
    """Per model, the linear CKA of each stage's output with the reference's on the probe images."""
    moments = {name: [CrossMoments() for _ in range(NUM_STAGES)] for name in models}
    with tqdm(total=len(samples), unit="img", desc="CKA probe", file=sys.stderr) as progress:
        for pixels in probe_batches(samples, reference.variant.crop_pct, batch_size):
            _, reference_stages = reference.forward_with_stages(pixels)
            for name, model in models.items():
                _, stages = model.forward_with_stages(pixels)
                for stage_moments, ours, theirs in zip(moments[name], reference_stages, stages):
                    stage_moments.add(token_rows(ours), token_rows(theirs))
            progress.update(len(pixels))
    return {name: [stage.cka() for stage in per_stage] for name, per_stage in moments.items()}


def compared_checkpoints(finalized: Sequence[Path], ship_seed: int) -> tuple[Path | None, dict[str, Path]]:
    """The reference (pooling, the shipped seed) and what is set against it: every other mixer's shipped seed,
    and one more pooling seed (the lowest other one), which shows how far two runs of one model differ."""
    by_run = {(read_metadata(path)["token_mixer"], seed_of(read_metadata(path))): path for path in finalized}
    reference = by_run.get(("pooling", ship_seed))
    compared = {mixer: path for (mixer, seed), path in by_run.items() if seed == ship_seed and mixer != "pooling"}
    other_pooling_seeds = sorted(seed for mixer, seed in by_run if mixer == "pooling" and seed != ship_seed)
    if other_pooling_seeds:
        compared[f"pooling seed {other_pooling_seeds[0]}"] = by_run[("pooling", other_pooling_seeds[0])]
    return reference, dict(sorted(compared.items()))


def record_cka(finalized: Sequence[Path], val_dir: Path, per_class: int, ship_seed: int) -> dict | None:
    """Measure stage-by-stage CKA to the pooling model and write it into every finalized checkpoint.

    Returns the record, or None when there is no pooling checkpoint of the shipped seed to compare with.
    """
    reference_path, compared = compared_checkpoints(finalized, ship_seed)
    if reference_path is None or not compared:
        return None
    samples = probe_samples(val_dir, per_class)
    reference = create_model(weights=reference_path, device="cpu")
    models = {name: create_model(weights=path, device="cpu") for name, path in compared.items()}
    classes = len({sample.wnid for sample in samples})
    record = {
        "reference": f"pooling seed {ship_seed}",
        "probe": (
            f"the first {per_class} images (file names sorted) of each of the {classes} class folders of "
            f"{val_dir.name}, resize {int(224 / reference.variant.crop_pct)} bicubic + centre crop 224, CPU fp32"
        ),
        "images": len(samples),
        "rows": "token positions (images × height × width of each stage)",
        "stages": stage_cka(reference, models, samples),
    }
    for path in finalized:
        rewrite_metadata(path, {CKA_KEY: json.dumps(record)})
    return record


def cka_table(record: dict) -> str:
    """The README's table: one row per model compared, one column per stage."""
    lines = ["| CKA to pooling | stage 1 | stage 2 | stage 3 | stage 4 |", "|---|---|---|---|---|"]
    for name, values in record["stages"].items():
        lines.append(f"| {name} | " + " | ".join(f"{value:.3f}" for value in values) + " |")
    return "\n".join(lines) + f"\n\n{record['images']} probe images: {record['probe']}; rows are {record['rows']}."
