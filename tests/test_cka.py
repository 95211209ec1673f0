"""Linear CKA against an independent implementation (the HSIC form with centring matrices) and on the cases
whose answer is known; the probe set; and stage CKA of real models against features gathered by hand.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from poolformer import VARIANTS, PoolFormer
from poolformer.cka import CrossMoments, linear_cka, probe_samples, stage_cka, token_rows
from poolformer.evaluation import DatasetError
from poolformer.preprocess import load_image, preprocess


def hsic_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Kornblith et al.'s definition from Gram matrices: HSIC(K, L) / √(HSIC(K, K) HSIC(L, L)), with
    K = XXᵀ, L = YYᵀ, HSIC(K, L) = tr(KHLH) / (n − 1)² and H = I − 11ᵀ/n (n × n, so small n only)."""
    x, y = x.double(), y.double()
    n = x.shape[0]
    centring = torch.eye(n, dtype=torch.float64) - torch.ones(n, n, dtype=torch.float64) / n
    k, l = x @ x.T, y @ y.T

    def hsic(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.trace(a @ centring @ b @ centring) / (n - 1) ** 2

    return float(hsic(k, l) / torch.sqrt(hsic(k, k) * hsic(l, l)))


def random_features(rows: int = 60, columns: int = 8, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(rows, columns, generator=generator, dtype=torch.float64)


def test_matches_the_hsic_form_on_related_and_unrelated_features() -> None:
    x = random_features()
    related = torch.tanh(x @ random_features(8, 12, seed=1)) + 0.3 * random_features(60, 12, seed=2)
    unrelated = random_features(60, 5, seed=3)
    for y in (related, unrelated, x[:, :3] ** 2):
        assert linear_cka(x, y) == pytest.approx(hsic_cka(x, y), rel=1e-10)
    assert 0.2 < linear_cka(x, related) < 0.95  # neither the same nor unrelated


def test_fed_in_uneven_blocks_it_equals_one_pass() -> None:
    x, y = random_features(100, 6), random_features(100, 9, seed=4) + 5.0
    moments = CrossMoments()
    for start, stop in ((0, 7), (7, 50), (50, 51), (51, 100)):
        moments.add(x[start:stop], y[start:stop])
    assert moments.cka() == pytest.approx(linear_cka(x, y), rel=1e-12)
    assert moments.cka() == pytest.approx(hsic_cka(x, y), rel=1e-10)


def test_a_representation_is_identical_to_itself_rotated_scaled_or_shifted() -> None:
    x = random_features(80, 10)
    rotation, _ = torch.linalg.qr(random_features(10, 10, seed=5))  # orthogonal: rotation and reflection
    assert torch.allclose(rotation.T @ rotation, torch.eye(10, dtype=torch.float64))
    permutation = x[:, torch.randperm(10, generator=torch.Generator().manual_seed(6))]  # channels renumbered
    for same in (x, x @ rotation, 3.7 * x, 0.01 * x @ rotation, x + 40.0, permutation):
        assert linear_cka(x, same) == pytest.approx(1.0, abs=1e-12)


def test_an_arbitrary_linear_map_changes_it() -> None:
    """CKA is invariant to orthogonal maps and one overall scale only: stretching some directions is seen."""
    x = random_features(80, 10)
    stretch = torch.diag(torch.tensor([10.0, 5.0, 1, 1, 1, 1, 1, 0.2, 0.1, 0.1], dtype=torch.float64))
    mixing = random_features(10, 10, seed=7)
    for changed in (x @ stretch, x @ mixing):
        assert linear_cka(x, changed) < 0.9
        assert linear_cka(x, changed) == pytest.approx(hsic_cka(x, changed), rel=1e-10)


def test_large_channel_means_do_not_cost_precision() -> None:
    """Channel means far above their spread: centring from plain running sums would cancel every digit
    (sums of squares near 1e18 against a spread near 1e2); shifting by the first block's means keeps it exact."""
    x, y = random_features(200, 4), random_features(200, 4, seed=8)
    mixed = x + 0.5 * y
    moments = CrossMoments()
    for block in range(0, 200, 40):
        moments.add((x + 1e8)[block : block + 40], (mixed - 3e7)[block : block + 40])
    assert moments.cka() == pytest.approx(hsic_cka(x, mixed), rel=1e-9)


def test_unrelated_features_score_near_zero_only_with_many_more_rows_than_columns() -> None:
    """Why the probe uses token positions as rows: with fewer rows than channels, unrelated features look alike."""
    assert linear_cka(random_features(20000, 8), random_features(20000, 8, seed=9)) < 0.01
    assert linear_cka(random_features(40, 512), random_features(40, 512, seed=10)) > 0.9


def test_token_rows_keep_each_position_with_its_channels() -> None:
    features = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    rows = token_rows(features)
    assert rows.shape == (2 * 4 * 5, 3)
    assert torch.equal(rows[1 * 20 + 2 * 5 + 3], features[1, :, 2, 3])


def make_tree(root: Path, counts: dict[str, int]) -> Path:
    for wnid, count in counts.items():
        (root / wnid).mkdir(parents=True)
        for index in reversed(range(count)):  # written out of order: the probe must sort
            Image.new("RGB", (40, 30), (index * 20, 90, 160)).save(root / wnid / f"img{index:02d}.png")
    return root


def test_probe_set_is_the_first_images_of_every_class_in_sorted_order(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "val", {"n01440764": 5, "n02102040": 4})
    probe = probe_samples(root, 3)
    assert [(sample.wnid, sample.path.name) for sample in probe] == [
        (wnid, f"img{index:02d}.png") for wnid in ("n01440764", "n02102040") for index in range(3)
    ]
    with pytest.raises(DatasetError, match="only 4 images"):
        probe_samples(root, 5)


def test_stage_cka_of_real_models_matches_features_gathered_by_hand(tmp_path: Path) -> None:
    """Two differently initialised S12s (pooling and identity) on a small probe: the streamed, batched
    measurement equals the HSIC form on all token rows collected at once; a model against itself gives 1."""
    root = make_tree(tmp_path / "val", {"n01440764": 3, "n02102040": 3})
    probe = probe_samples(root, 3)
    torch.manual_seed(0)
    pooling = PoolFormer(VARIANTS["s12"], 2).eval()
    identity = PoolFormer(VARIANTS["s12"], 2, token_mixers="identity").eval()
    measured = stage_cka(pooling, {"identity": identity, "itself": pooling}, probe, batch_size=4)

    pixels = torch.cat([preprocess(load_image(sample.path), 0.9) for sample in probe])
    with torch.inference_mode():
        _, ours = pooling.forward_with_stages(pixels)
        _, theirs = identity.forward_with_stages(pixels)
    for stage in (2, 3):  # stages 3 and 4: few enough token rows (6 × 196, 6 × 49) for n × n Gram matrices
        x = ours[stage].permute(0, 2, 3, 1).reshape(-1, ours[stage].shape[1])
        y = theirs[stage].permute(0, 2, 3, 1).reshape(-1, theirs[stage].shape[1])
        assert measured["identity"][stage] == pytest.approx(hsic_cka(x, y), rel=1e-6)
    for stage in range(4):
        x, y = token_rows(ours[stage]), token_rows(theirs[stage])
        assert measured["identity"][stage] == pytest.approx(linear_cka(x, y), rel=1e-6)
    assert measured["itself"] == pytest.approx([1.0] * 4, abs=1e-9)
