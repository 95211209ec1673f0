"""PoolFormer as a MetaFormer: stem, four stages of blocks, head; the token mixer is a swappable part.

Structure follows Yu et al., "MetaFormer is Actually What You Need for Vision" (arXiv 2111.11418).
Parameter names follow timm's layout so its checkpoints load with no renaming.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import nn
from torch.nn import functional as F

from poolformer.fast_cpu import CpuPasses, MixerViews
from poolformer.mixers import NUM_STAGES, TOKEN_MIXERS, MixerSite, Pooling, RandomMixing, resolve_token_mixers

M = TypeVar("M", bound=nn.Module)


@dataclass(frozen=True)
class Variant:
    """One row of the paper's model table (numbers from the sail-sg/poolformer README)."""

    name: str
    depths: tuple[int, int, int, int]
    widths: tuple[int, int, int, int]
    layer_scale_init: float
    crop_pct: float
    params_m: float  # millions, 1000 classes
    macs_g: float  # GMACs at 224 px, counted by the authors with fvcore
    top1: float  # ImageNet-1k top-1, %

    @property
    def hub_repo(self) -> str:
        return f"sail/poolformer_{self.name}"


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("s12", (2, 2, 6, 2), (64, 128, 320, 512), 1e-5, 0.90, 11.9, 1.8, 77.2),
        Variant("s24", (4, 4, 12, 4), (64, 128, 320, 512), 1e-5, 0.90, 21.4, 3.4, 80.3),
        Variant("s36", (6, 6, 18, 6), (64, 128, 320, 512), 1e-6, 0.90, 30.9, 5.0, 81.4),
        Variant("m36", (6, 6, 18, 6), (96, 192, 384, 768), 1e-6, 0.95, 56.2, 8.8, 82.1),
        Variant("m48", (8, 8, 24, 8), (96, 192, 384, 768), 1e-6, 0.95, 73.5, 11.6, 82.5),
    )
}


def token_grids(image_size: int) -> list[tuple[int, int]]:
    """Each stage's token grid for a square input: the stride-4 stem (7x7, padding 2), then halvings (3x3, padding 1)."""
    side = (image_size + 2 * 2 - 7) // 4 + 1
    grids = []
    for stage in range(NUM_STAGES):
        if stage:
            side = (side + 2 - 3) // 2 + 1
        grids.append((side, side))
    return grids


class PatchEmbed(nn.Module):
    """Strided conv that downsamples and widens between stages (and is the stem)."""

    def __init__(self, in_chans: int, out_chans: int, kernel_size: int, stride: int, padding: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_chans, out_chans, kernel_size, stride, padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Mlp(nn.Module):
    """Channel MLP as two 1x1 convs, so the tensor stays (B, C, H, W) throughout."""

    def __init__(self, dim: int, ratio: int = 4) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(dim, dim * ratio, 1)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(dim * ratio, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class LayerScale(nn.Module):
    """Per-channel residual scale, initialised small so deep stacks start close to identity."""

    def __init__(self, dim: int, init_value: float) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.full((dim,), init_value))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale.view(1, -1, 1, 1)


class DropPath(nn.Module):
    """Stochastic depth: drops a whole residual branch per sample while training."""

    def __init__(self, prob: float) -> None:
        super().__init__()
        self.prob = prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.prob == 0.0:
            return x
        keep = 1.0 - self.prob
        mask = x.new_empty((x.shape[0], 1, 1, 1)).bernoulli_(keep)
        return x * mask / keep


class MetaFormerBlock(nn.Module):
    """x + mixer(norm(x)), then x + mlp(norm(x)); GroupNorm(1, C) normalises over C, H and W."""

    def __init__(self, dim: int, token_mixer: nn.Module, layer_scale_init: float, drop_path: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(1, dim)
        self.token_mixer = token_mixer
        self.layer_scale1 = LayerScale(dim, layer_scale_init)
        self.norm2 = nn.GroupNorm(1, dim)
        self.mlp = Mlp(dim)
        self.layer_scale2 = LayerScale(dim, layer_scale_init)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.layer_scale1(self.token_mixer(self.norm1(x))))
        return x + self.drop_path(self.layer_scale2(self.mlp(self.norm2(x))))


class FoldedPoolingBlock(MetaFormerBlock):
    """A pooling block rewritten for eval-mode inference: same parameters and function, fewer passes over memory.

    Pooling is linear with weights that sum to one, so pool(γ·x̂ + β) − (γ·x̂ + β) = γ·(pool(x̂) − x̂): β cancels
    and norm1's γ joins layer_scale1. Each residual update is then one `addcmul` (x + scale·branch), and
    activations are kept channels-last, where CPU average pooling vectorises over channels. Every step is an
    ordinary differentiable op, so gradients match the unfolded block too. Drop path is left out (eval only).
    Made by `PoolFormer.for_inference()`, never constructed directly.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        normalised = F.group_norm(x, 1, eps=self.norm1.eps)  # x̂: norm1 without its affine part
        mix_scale = (self.layer_scale1.scale * self.norm1.weight).view(1, -1, 1, 1)
        x = torch.addcmul(x, self.token_mixer(normalised), mix_scale)
        return torch.addcmul(x, self.mlp(self.norm2(x)), self.layer_scale2.scale.view(1, -1, 1, 1))


class Stage(nn.Module):
    """Optional downsampling, then `depth` blocks at one resolution."""

    def __init__(self, downsample: nn.Module, blocks: Sequence[MetaFormerBlock]) -> None:
        super().__init__()
        self.downsample = downsample
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


class Head(nn.Module):
    """The original head order: GroupNorm on the final map, spatial mean, then Linear."""

    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(1, dim)
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.norm(x).mean(dim=(-2, -1)))


class PoolFormer(nn.Module):
    """A MetaFormer whose per-stage token mixer is named in `token_mixers` ("pooling" by default).

    `image_size` and `mixer_seed` matter only to the random mixer: its frozen matrices are drawn from the seed
    for the token grids of that input size.
    """

    def __init__(
        self,
        variant: Variant,
        num_classes: int = 1000,
        token_mixers: str | Sequence[str] = "pooling",
        drop_path_rate: float = 0.0,
        image_size: int = 224,
        mixer_seed: int = 0,
    ) -> None:
        super().__init__()
        self.variant = variant
        self.num_classes = num_classes
        self.token_mixers = resolve_token_mixers(token_mixers)
        self.image_size = image_size
        self.mixer_seed = mixer_seed
        widths, depths = variant.widths, variant.depths
        # Stochastic depth grows linearly with block index across the whole network.
        # (On the CPU even under `torch.device("meta")`, which builds a shape-only model for the diagram.)
        drop_rates = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()

        self.stem = PatchEmbed(3, widths[0], kernel_size=7, stride=4, padding=2)
        stages, block_index = [], 0
        for i in range(NUM_STAGES):
            downsample = nn.Identity() if i == 0 else PatchEmbed(widths[i - 1], widths[i], 3, 2, 1)
            blocks = [
                MetaFormerBlock(
                    widths[i],
                    self._make_mixer(self.token_mixers[i], i, block_index + j),
                    variant.layer_scale_init,
                    drop_rates[block_index + j],
                )
                for j in range(depths[i])
            ]
            block_index += depths[i]
            stages.append(Stage(downsample, blocks))
        self.stages = nn.ModuleList(stages)
        self.head = Head(widths[-1], num_classes)
        self.apply(_init_weights)
        # What the outputs mean and where the weights came from; `create_model` fills these in.
        self.class_names: list[str] = [f"class {index}" for index in range(num_classes)]
        self.weights_source = "random init"
        self.checkpoint_metadata: dict[str, str] = {}

    def forward_with_stages(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits and the four stage outputs from one pass, for the feature-map views."""
        stage_outputs = []
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
            stage_outputs.append(x)
        return self.head(x), stage_outputs

    def forward_with_mixer_views(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """Logits, the four stage outputs, and what each stage's first token mixer outputs, from one pass.

        On the way through each stage, the first block's normalised input also goes through its token mixer
        (for pooling, pool(x) - x: what pooling adds to each token at the start of the stage), so the views can
        show it. It costs one extra norm + mixer per stage.
        """
        stage_outputs, mixer_outputs = [], []
        x = self.stem(x)
        for stage in self.stages:
            x = stage.downsample(x)
            first_block = stage.blocks[0]
            mixer_outputs.append(first_block.token_mixer(first_block.norm1(x)))
            x = stage.blocks(x)
            stage_outputs.append(x)
        return self.head(x), stage_outputs, mixer_outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_stages(x)[0]

    def with_token_mixers(self, token_mixers: str | Sequence[str]) -> PoolFormer:
        """A twin that shares every parameter with this model but mixes tokens differently.

        Only the module tree is copied, so this model is never mutated and concurrent callers
        of it are unaffected; weights are not duplicated in memory. A stage that keeps its mixer keeps the
        trained one (folded pooling stays folded); a new mixer must be one without weights to learn, since
        none were trained (pooling -> depthwise or attention is refused).
        """
        names = resolve_token_mixers(token_mixers)
        for old, new in zip(self.token_mixers, names):
            if new != old and _has_parameters(TOKEN_MIXERS[new], self.variant.widths[0]):
                raise ValueError(f"a {new} token mixer has weights to learn, so {old} can't be swapped for it")

        def swap(stage: int, block: nn.Module, index: int) -> nn.Module:
            if names[stage] == self.token_mixers[stage]:
                return block
            return _with_mixer(block, self._make_mixer(names[stage], stage, index))

        twin = self._with_blocks(swap)
        twin.token_mixers = names
        return twin

    def with_image_size(self, image_size: int) -> PoolFormer:
        """A twin, sharing every parameter, whose random mixers are drawn again for another input size.

        Training uses it to finish a random-mixer model at the size it will serve; other mixers are unchanged.
        """

        def redraw(stage: int, block: nn.Module, index: int) -> nn.Module:
            if not isinstance(block.token_mixer, RandomMixing):
                return block
            mixer = RandomMixing(token_grids(image_size)[stage], self._block_seed(index))
            return _with_mixer(block, mixer.to(next(block.parameters()).device))  # where the model is (GPU)

        twin = self._with_blocks(redraw)
        twin.image_size = image_size
        return twin

    def _make_mixer(self, name: str, stage: int, block_index: int) -> nn.Module:
        site = MixerSite(self.variant.widths[stage], token_grids(self.image_size)[stage], self._block_seed(block_index))
        return TOKEN_MIXERS[name](site)

    def _block_seed(self, block_index: int) -> int:
        """Each block's random matrix gets its own seed, drawn from the model's `mixer_seed`."""
        return self.mixer_seed * 1000 + block_index

    def for_inference(self) -> PoolFormer:
        """A twin for eval-mode inference: pooling blocks run folded, activations stay channels-last.

        It shares every parameter except the downsampling convolutions' weights, which it keeps one
        channels-last copy of (a few MB): oneDNN would otherwise re-lay them out on every call. Its outputs equal
        this model's up to float rounding (tests/test_parity.py holds both to transformers). The app and the
        CLI build one per loaded model; on CPU it comes as a `CpuServedPoolFormer`, whose ONNX Runtime session
        they build (poolformer/fast_cpu.py), on CUDA they compile it (poolformer/compiled.py).
        """
        twin = self._with_blocks(lambda stage, block, index: _folded(block))
        for stage in twin.stages:  # copies already, so the model's own stages are untouched
            stage._modules["downsample"] = _with_channels_last_weights(stage.downsample)
        if self.head.fc.weight.device.type == "cpu":  # the session exports the model as it is (made plain)
            twin = shallow_copy(twin, CpuServedPoolFormer)
            twin.cpu_passes = CpuPasses(shallow_copy(self, PoolFormer), self.weights_source)
        return twin

    def _with_blocks(self, make_block: Callable[[int, nn.Module, int], nn.Module]) -> PoolFormer:
        """A plain PoolFormer twin sharing all parameters, each block replaced by
        make_block(stage index, block, block index in the whole network)."""
        twin = shallow_copy(self, PoolFormer)  # a plain PoolFormer even from a compiled twin: its graph would not fit
        twin._modules["stages"] = shallow_copy(self.stages)
        block_index = 0
        for i, stage in enumerate(self.stages):
            stage = shallow_copy(stage)
            stage._modules["blocks"] = shallow_copy(stage.blocks)
            for key, block in stage.blocks._modules.items():
                stage.blocks._modules[key] = make_block(i, block, block_index)
                block_index += 1
            twin.stages._modules[str(i)] = stage
        return twin


class CpuServedPoolFormer(PoolFormer):
    """The CPU inference twin: ONNX Runtime serves its as-trained passes once `cpu_passes` is built, eager runs
    the rest (and all before); twins made from it (`with_token_mixers`) are plain, eager PoolFormers."""

    cpu_passes: CpuPasses

    def forward_with_stages(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        served = self.cpu_passes(x)
        return super().forward_with_stages(x) if served is None else (served[0], served[1])

    def forward_with_mixer_views(self, x: torch.Tensor) -> MixerViews:
        return self.cpu_passes(x) or super().forward_with_mixer_views(x)


def _has_parameters(make_mixer: Callable[[MixerSite], nn.Module], dim: int) -> bool:
    with torch.device("meta"):  # shapes only: nothing is allocated or drawn
        return any(True for _ in make_mixer(MixerSite(dim, (1, 1), 0)).parameters())


def _with_mixer(block: MetaFormerBlock, mixer: nn.Module) -> MetaFormerBlock:
    """A copy of `block` with another token mixer; a folded block stays folded only if the new mixer pools."""
    folded = isinstance(block, FoldedPoolingBlock) and isinstance(mixer, Pooling)
    twin = shallow_copy(block, FoldedPoolingBlock if folded else MetaFormerBlock)
    twin._modules["token_mixer"] = mixer
    return twin


def _with_channels_last_weights(downsample: nn.Module) -> nn.Module:
    """A copy of a downsampling PatchEmbed whose 3x3 conv weight is a channels-last copy (Identity passes)."""
    if not isinstance(downsample, PatchEmbed):
        return downsample
    conv = shallow_copy(downsample.conv)
    weight = downsample.conv.weight
    conv._parameters["weight"] = nn.Parameter(
        weight.detach().contiguous(memory_format=torch.channels_last), requires_grad=weight.requires_grad
    )
    twin = shallow_copy(downsample)
    twin._modules["conv"] = conv
    return twin


def _folded(block: MetaFormerBlock) -> MetaFormerBlock:
    return shallow_copy(block, FoldedPoolingBlock) if isinstance(block.token_mixer, Pooling) else block


def shallow_copy(module: M, as_type: type[M] | None = None) -> M:
    """Copy a module object with its own child table, sharing the children and parameters.

    `as_type` gives the copy another class with the same children (a folded block, a compiled twin).
    """
    clone = copy.copy(module)
    if as_type is not None:
        clone.__class__ = as_type
    clone._modules = dict(module._modules)
    clone._parameters = dict(module._parameters)
    clone._buffers = dict(module._buffers)
    return clone


def _init_weights(module: nn.Module) -> None:
    # Truncated normal for conv/linear weights as in the original training code; zero biases.
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
