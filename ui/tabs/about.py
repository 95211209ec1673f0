"""The About tab: how PoolFormer works, its variants, where the weights come from, what the pictures mean."""

from __future__ import annotations

import gradio as gr

from poolformer import explorer
from ui.shared import Shared
from visualize.metaformer import variant_table

ABOUT = f"""
### How PoolFormer works
The image is cut into patches by a strided convolution (stride 4), then passes through **four stages** at
56², 28², 14² and 7² positions for a 224-pixel input; between stages a convolution halves the resolution and
widens the channels. Every block computes `x + mixer(norm(x))` then `x + mlp(norm(x))`, where `norm` is a
GroupNorm over all channels and positions, `mlp` a 1 × 1-conv MLP with 4× expansion, and `mixer` is
`avgpool3x3(x) − x` (the block adds `x` back). A GroupNorm, a spatial mean and a linear layer make the head.

### The variants (numbers from the paper's authors)
{variant_table()}

### Where the weights come from
- **Official ImageNet-1k weights**: `sail/poolformer_<variant>` on the Hugging Face Hub, read from the local
  Hugging Face cache. On a machine without network, fetch them elsewhere with `hf download sail/poolformer_s12`
  and copy the cache (`~/.cache/huggingface/hub`).
- **Bundled models**: small 10-class PoolFormer-S12 and IdentityFormer-S12 checkpoints trained from scratch on
  Imagenette, shipped in `assets/checkpoints/`; they always work offline. The Imagenette classes are tench,
  English springer, cassette player, chain saw, church, French horn, garbage truck, gas pump, golf ball and parachute.

### What the pictures mean
- **Activation energy**: the length of the feature vector at each position (L2 norm over channels), drawn at the
  stage's own resolution — one square per token.
- **Most active channels**: the eight channels with the largest mean activation, each scaled on its own.
- **What pooling adds**: `‖pool(x) − x‖` for the first block of the stage, i.e. how much averaging with its
  neighbours changes each token. Flat regions barely change; edges and textures do.

Example photos are public domain or CC0 (see `assets/examples/LICENSES.md`). Running on **{explorer.DEVICE.type}**.
"""


def build(shared: Shared) -> None:
    with gr.Tab("About", id="about"):
        gr.Markdown(ABOUT)
