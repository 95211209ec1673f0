"""Shared test helpers: transformers reference models, the three checkpoint key layouts, a fake HF cache.

transformers is the reference implementation (test-only). The key layouts are written out row by row
from the table in ../shared/REFERENCE.md, independently of poolformer/weights.py's rename rules, so
the parity tests do not check the production mapping against itself.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import PoolFormerConfig, PoolFormerForImageClassification

from poolformer.model import VARIANTS

LAYOUTS = ("transformers", "sail-sg", "timm")

# REFERENCE.md's Imagenette table: wnid -> (ImageNet index, class name).
IMAGENETTE = {
    "n01440764": (0, "tench"),
    "n02102040": (217, "English springer"),
    "n02979186": (482, "cassette player"),
    "n03000684": (491, "chain saw"),
    "n03028079": (497, "church"),
    "n03394916": (566, "French horn"),
    "n03417042": (569, "garbage truck"),
    "n03425413": (571, "gas pump"),
    "n03445777": (574, "golf ball"),
    "n03888257": (701, "parachute"),
}
# Yu et al., arXiv 2111.11418, Table 5 (PoolFormer-S12 from scratch on ImageNet-1k, top-1 %) by zoo layout, as
# the app prints it; the paper trains attention only in the [Pool, Pool, Attention, Attention] hybrid.
TABLE_5_TOP1 = {
    "pooling": "77.2",
    "identity": "74.3",
    "depthwise": "78.1",
    "random": "75.8",
    "pool-attention": "81.0",
    "attention": "not in Table 5",
}

FAKE_COMMIT = "0123456789abcdef0123456789abcdef01234567"


def reference_config(variant: str, id2label: dict[int, str] | None = None) -> PoolFormerConfig:
    """The transformers config of the official `sail/poolformer_<variant>` checkpoints."""
    spec = VARIANTS[variant]
    labels = id2label or {index: f"imagenet class {index}" for index in range(1000)}
    return PoolFormerConfig(
        depths=list(spec.depths),
        hidden_sizes=list(spec.widths),
        layer_scale_init_value=spec.layer_scale_init,
        id2label=labels,
        label2id={name: index for index, name in labels.items()},
    )


def reference_model(variant: str, *, seed: int = 0, id2label: dict[int, str] | None = None):
    """transformers' PoolFormerForImageClassification with random weights pushed away from their init.

    At init the layer scales are 1e-5 or 1e-6, so every block is nearly the identity and a wrong
    mapping of block weights would hardly show in the logits; the perturbation makes every tensor count.
    """
    torch.manual_seed(seed)
    model = PoolFormerForImageClassification(reference_config(variant, id2label)).eval()
    with torch.no_grad():
        for name, tensor in model.named_parameters():
            if "layer_scale" in name:
                tensor.copy_(0.5 + 0.15 * torch.randn_like(tensor))
            elif name.endswith("bias"):
                tensor.add_(0.05 * torch.randn_like(tensor))
            elif "norm" in name:  # GroupNorm weights
                tensor.mul_(1 + 0.2 * torch.randn_like(tensor))
    return model


def key_rows(depths: tuple[int, ...]) -> list[tuple[str, str, str]]:
    """(transformers, sail-sg, timm) name of every tensor, one row per tensor, as in REFERENCE.md."""
    rows: list[tuple[str, str, str]] = []

    def add(transformers: str, sail: str, timm: str, params: tuple[str, ...] = ("weight", "bias")) -> None:
        rows.extend((f"{transformers}.{p}", f"{sail}.{p}", f"{timm}.{p}") for p in params)

    add("poolformer.encoder.patch_embeddings.0.projection", "patch_embed.proj", "stem.conv")
    for stage in range(1, 4):
        add(
            f"poolformer.encoder.patch_embeddings.{stage}.projection",
            f"network.{2 * stage - 1}.proj",
            f"stages.{stage}.downsample.conv",
        )
    for stage, depth in enumerate(depths):
        for block in range(depth):
            transformers = f"poolformer.encoder.block.{stage}.{block}"
            sail = f"network.{2 * stage}.{block}"
            timm = f"stages.{stage}.blocks.{block}"
            add(f"{transformers}.before_norm", f"{sail}.norm1", f"{timm}.norm1")
            add(f"{transformers}.after_norm", f"{sail}.norm2", f"{timm}.norm2")
            add(f"{transformers}.output.conv1", f"{sail}.mlp.fc1", f"{timm}.mlp.fc1")
            add(f"{transformers}.output.conv2", f"{sail}.mlp.fc2", f"{timm}.mlp.fc2")
            rows.append((f"{transformers}.layer_scale_1", f"{sail}.layer_scale_1", f"{timm}.layer_scale1.scale"))
            rows.append((f"{transformers}.layer_scale_2", f"{sail}.layer_scale_2", f"{timm}.layer_scale2.scale"))
    add("norm", "norm", "head.norm")
    add("classifier", "head", "head.fc")
    return rows


def in_layout(transformers_state: dict[str, torch.Tensor], variant: str, layout: str) -> dict[str, torch.Tensor]:
    """A transformers state dict renamed into `layout` ("transformers", "sail-sg" or "timm")."""
    column = LAYOUTS.index(layout)
    return {row[column]: transformers_state[row[0]].clone() for row in key_rows(VARIANTS[variant].depths)}


def save_tensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> Path:
    """.safetensors through safetensors, anything else as a plain torch.save'd state dict."""
    if path.suffix == ".safetensors":
        save_file({key: value.contiguous() for key, value in tensors.items()}, path, metadata=metadata)
    else:
        torch.save(tensors, path)
    return path


def fake_hub_snapshot(cache_dir: Path, repo: str) -> Path:
    """Lay out models--<org>--<name>/refs/main and an empty snapshot folder, as a real download leaves them."""
    repo_dir = cache_dir / f"models--{repo.replace('/', '--')}"
    snapshot = repo_dir / "snapshots" / FAKE_COMMIT
    snapshot.mkdir(parents=True)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(FAKE_COMMIT)
    return snapshot


