"""Train a PoolFormer from scratch on a small class-per-folder dataset (Imagenette), on GPU.

Three steps, all under `python -m poolformer train`:
  pack      — shrink a class-per-folder image tree into one WebP-in-safetensors file (small enough
              to ship to a GPU host);
  fit       — train with all data resident on the GPU: augmentation, mixup/cutmix and the model
              step all run there, so a 16-core host keeps an H100 busy. Works unchanged under `torchrun`;
  finalize  — measure val accuracy on CPU exactly as a user would and write it into the checkpoint;
  seeds, summarize — the same recipe over several seeds, and their mean ± sd (see `poolformer.seeds`);
              summarize also measures each mixer's stage-by-stage CKA to the pooling model (`poolformer.cka`).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from poolformer.cka import PROBE_PER_CLASS, cka_table, record_cka
from poolformer.mixers import MIXER_LAYOUTS
from poolformer.model import VARIANTS, PoolFormer
from poolformer.run_state import load_state, resume_path, save_state
from poolformer.seeds import PAUSED, launch, read_metadata, rewrite_metadata, seed_of, summarize, summary_table
from poolformer.training_data import (
    GpuAugment,
    eval_transform,
    holdout_split,
    load_packed,
    mix_batch,
    pack,
    protocol_transform,
)

# ----------------------------------------------------------------------------- training


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """No weight decay on norms, biases and layer scales (all the 1-D parameters)."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def lr_at(step: int, total: int, warmup: int, peak: float, floor: float) -> float:
    """Linear warm-up, then cosine decay to `floor`."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return floor + 0.5 * (peak - floor) * (1 + math.cos(math.pi * progress))


@torch.no_grad()
def accuracy(
    model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, transform: Callable[[torch.Tensor], torch.Tensor],
    batch: int = 500,
) -> float:
    was_training = model.training
    model.eval()
    correct = 0
    for i in range(0, len(images), batch):
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=images.is_cuda):
            logits = model(transform(images[i : i + batch]))
        correct += (logits.argmax(1) == labels[i : i + batch]).sum().item()
    model.train(was_training)
    return correct / len(images)


def fit(args: argparse.Namespace) -> None:
    distributed = "RANK" in os.environ
    if distributed:
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    else:
        rank, world = 0, 1
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if torch.cuda.is_available() else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(args.seed)
    log = print if rank == 0 else (lambda *a, **k: None)
    started = time.perf_counter()

    train_images, train_labels, wnids = load_packed(args.data, device)
    if args.holdout > 0:  # judge the recipe on part of train; the real val split is not loaded at all
        train_index, held_index = (index.to(device) for index in holdout_split(train_labels, args.holdout))
        val_images, val_labels, val_wnids = train_images[held_index], train_labels[held_index], wnids
        train_images, train_labels = train_images[train_index], train_labels[train_index]
    elif args.val:
        val_images, val_labels, val_wnids = load_packed(args.val, device)
    else:
        val_images, val_labels, val_wnids = None, None, wnids
    assert val_wnids == wnids, "train and val class folders differ"
    num_classes = len(wnids)
    log(f"data: {len(train_images)} train, {0 if val_images is None else len(val_images)} val, {num_classes} classes, "
        f"loaded in {time.perf_counter() - started:.1f}s on {device}")

    variant = VARIANTS[args.variant]
    # A random mixer is bound to its token grid, so the model is drawn for the first phase's size and redrawn
    # (same seed) when a --final-size phase starts; other mixers ignore image_size.
    mixer_settings = dict(token_mixers=args.mixer, image_size=args.size, mixer_seed=args.seed)
    model = PoolFormer(variant, num_classes, drop_path_rate=args.drop_path, **mixer_settings)
    model = model.to(device, memory_format=torch.channels_last)
    ema = PoolFormer(variant, num_classes, **mixer_settings).to(device, memory_format=torch.channels_last)
    ema.load_state_dict(model.state_dict())
    ema.eval().requires_grad_(False)

    if args.compile:
        # A --final-size phase recompiles for its resolution; keep that graph static (and fast) too.
        torch._dynamo.config.automatic_dynamic_shapes = False

    def stepping(model: PoolFormer) -> torch.nn.Module:
        """What the optimisation step calls: the model, wrapped for several processes and compiled as asked."""
        step_model: torch.nn.Module = model
        if distributed:
            step_model = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None
            )
        return torch.compile(step_model) if args.compile else step_model

    step_model = stepping(model)
    optimizer = torch.optim.AdamW(
        parameter_groups(model, args.weight_decay), lr=args.lr, betas=(0.9, 0.999), fused=device.type == "cuda"
    )
    final_size = args.final_size or args.size
    generator = torch.Generator(device=device).manual_seed(args.seed + rank)
    mix_rng = np.random.default_rng(args.seed)  # same draws on every rank, so the mix is global

    steps_per_epoch = len(train_images) // args.batch_size
    total_steps, warmup_steps = args.epochs * steps_per_epoch, args.warmup_epochs * steps_per_epoch
    ema_params, model_params = list(ema.parameters()), list(model.parameters())
    log(f"model: {args.variant} mixer={args.mixer} params={sum(p.numel() for p in model_params) / 1e6:.2f}M; "
        f"{args.epochs} epochs x {steps_per_epoch} steps, batch {args.batch_size} on {world} process(es)")

    state_path = resume_path(args.out)
    step, first_epoch, earlier_seconds = 0, 0, 0.0
    if state_path.is_file():
        first_epoch, earlier_seconds = load_state(state_path, model, ema, optimizer, generator, mix_rng)
        step = first_epoch * steps_per_epoch
        log(f"resumed from {state_path} at epoch {first_epoch}", flush=True)
    for epoch in range(first_epoch, args.epochs):
        epoch_start = time.perf_counter()
        # The last --final-epochs run at the evaluation resolution (train/test resolution discrepancy).
        size = final_size if epoch >= args.epochs - args.final_epochs else args.size
        if size != model.image_size and "random" in model.token_mixers:
            model, ema = model.with_image_size(size), ema.with_image_size(size)
            step_model = stepping(model)
            log(f"random mixers redrawn for {size}px from seed {model.mixer_seed}")
        augment = GpuAugment(size, (args.min_scale, 1.0), args.magnitude)
        # Same permutation on every rank (seeded by epoch); each rank takes its own slice.
        order = torch.randperm(len(train_images), generator=torch.Generator().manual_seed(args.seed + epoch))
        loss_sum = torch.zeros((), device=device)
        model.train()
        for i in range(steps_per_epoch):
            index = order[i * args.batch_size : (i + 1) * args.batch_size][rank::world].to(device)
            x = augment(train_images[index], generator)
            targets = F.one_hot(train_labels[index], num_classes).float()
            targets = targets * (1 - args.smoothing) + args.smoothing / num_classes
            x, targets = mix_batch(x, targets, args.mix_prob, mix_rng)
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, total_steps, warmup_steps, args.lr, args.lr * 0.01)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                logits = step_model(x)
            loss = torch.sum(-targets * F.log_softmax(logits.float(), dim=1), dim=1).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            decay = min(args.ema, (1 + step) / (10 + step))
            torch._foreach_lerp_(ema_params, model_params, 1 - decay)
            loss_sum += loss.detach()
            step += 1
        train_loss = loss_sum.item() / steps_per_epoch
        line = f"epoch {epoch + 1:3d}/{args.epochs} loss {train_loss:.4f} lr {optimizer.param_groups[0]['lr']:.2e}"
        if val_images is not None and rank == 0:
            proxy = functools.partial(eval_transform, size=size)
            line += f" val {accuracy(model, val_images, val_labels, proxy):.4f}"
            if (epoch + 1) % 10 == 0 or epoch + 1 == args.epochs:
                line += f" val_ema {accuracy(ema, val_images, val_labels, proxy):.4f}"
        epoch_seconds = time.perf_counter() - epoch_start
        log(f"{line} ({epoch_seconds:.2f}s, total {time.perf_counter() - started:.0f}s)", flush=True)
        out_of_time = args.time_limit and time.perf_counter() - started + 2 * epoch_seconds > args.time_limit
        if rank == 0 and epoch + 1 < args.epochs and (out_of_time or (epoch + 1) % args.save_every == 0):
            seconds = earlier_seconds + time.perf_counter() - started
            save_state(state_path, epoch + 1, seconds, model, ema, optimizer, generator, mix_rng)
        if out_of_time and epoch + 1 < args.epochs:
            log(f"paused after epoch {epoch + 1} (--time-limit {args.time_limit:.0f}s); run again to resume")
            if distributed:
                torch.distributed.destroy_process_group()
            raise SystemExit(PAUSED)

    if rank == 0:
        train_seconds = earlier_seconds + time.perf_counter() - started  # this process and the ones it resumed
        if args.holdout > 0:  # the figure recipes are compared by
            protocol = functools.partial(protocol_transform, crop_pct=variant.crop_pct)
            log(f"holdout EMA top-1 at the eval protocol (resize {int(224 / variant.crop_pct)}, crop 224): "
                f"{accuracy(ema, val_images, val_labels, protocol):.4f} on {len(val_images)} images")
        recipe = (
            f"{args.epochs} epochs at {args.size}px"
            + (f" (last {args.final_epochs} at {final_size}px)" if args.final_epochs else "")
            + f", AdamW lr {args.lr} wd {args.weight_decay} batch {args.batch_size}, "
            f"{args.warmup_epochs} warm-up epochs + cosine, label smoothing {args.smoothing}, mixup/cutmix p={args.mix_prob}, "
            f"RRC scale>={args.min_scale}, rotate/shear/colour magnitude {args.magnitude}, drop path {args.drop_path}, "
            f"EMA {args.ema}, bf16, seed {args.seed}"
            + (f", trained without a held-out {args.holdout:.0%} of train" if args.holdout else "")
        )
        save_checkpoint(ema, args, wnids, recipe, train_seconds)
        state_path.unlink(missing_ok=True)
        log(f"saved EMA weights to {args.out} after {train_seconds:.0f}s")
    if distributed:
        torch.distributed.destroy_process_group()


def save_checkpoint(model: PoolFormer, args: argparse.Namespace, wnids: list[str], recipe: str, seconds: float) -> None:
    """fp16 safetensors in our key layout; `finalize` later adds class names and the measured accuracy."""
    metadata = {
        "variant": args.variant,
        "token_mixer": args.mixer,
        "image_size": str(model.image_size),
        "mixer_seed": str(model.mixer_seed),
        "wnids": json.dumps(wnids),
        "recipe": recipe,
        "train_seconds": f"{seconds:.0f}",
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "dataset": "imagenette2",
        "seed": str(args.seed),
    }
    state = {k: v.detach().to("cpu", torch.float16).contiguous() for k, v in model.state_dict().items()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(args.out), metadata=metadata)


def finalize(checkpoint: Path, val_dir: Path, out: Path) -> None:
    """Measure top-1 on the full val split with the model's own 224 px preprocessing, as a user would,
    and record it in the checkpoint with human class names so the app and CLI can show both."""
    from poolformer.evaluation import class_indices, evaluate, find_samples
    from poolformer.labels import imagenet_class_names, wnid_to_imagenet_index
    from poolformer.weights import create_model

    model = create_model(weights=checkpoint, device="cpu")
    samples = find_samples(val_dir)
    top1, top5 = evaluate(model, samples, class_indices(model, samples, val_dir), batch_size=64)
    metadata = dict(model.checkpoint_metadata)
    names, index = imagenet_class_names(), wnid_to_imagenet_index()
    metadata.update(
        name=f"{ZOO_NAMES.get(metadata['token_mixer'], 'MetaFormer')}-{metadata['variant'].upper()} · Imagenette (bundled)",
        class_names=json.dumps([names[index[wnid]] for wnid in json.loads(metadata["wnids"])]),
        val_top1=f"{top1 / len(samples):.4f}",
        val_top5=f"{top5 / len(samples):.4f}",
        val_images=str(len(samples)),
        eval_protocol=f"{val_dir.name} split, resize {int(224 / model.variant.crop_pct)} bicubic + centre crop 224, CPU fp32",
    )
    rewrite_metadata(checkpoint, metadata, out)
    print(f"{metadata['name']}: val top-1 {metadata['val_top1']}, top-5 {metadata['val_top5']} "
          f"on {len(samples)} images -> {out}")


# What each zoo model is called in the app and its checkpoints (MetaFormer-style names, after the papers').
ZOO_NAMES = {
    "pooling": "PoolFormer",
    "identity": "IdentityFormer",
    "depthwise": "DepthwiseFormer",
    "random": "RandomFormer",
    "pool-attention": "PoolAttentionFormer",
    "attention": "AttentionFormer",
}

# ----------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m poolformer train", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    pack_cmd = commands.add_parser("pack", help="pack a class-per-folder image tree into one file")
    pack_cmd.add_argument("src", type=Path)
    pack_cmd.add_argument("out", type=Path)
    pack_cmd.add_argument("--size", type=int, default=176)
    pack_cmd.add_argument("--quality", type=int, default=70)

    fit_cmd = commands.add_parser("fit", help="train from scratch on packed data")
    fit_cmd.add_argument("--data", type=Path, required=True, help="packed train split")
    fit_cmd.add_argument("--val", type=Path, help="packed val split, for the per-epoch log")
    fit_cmd.add_argument("--out", type=Path, required=True, help="where to write the fp16 safetensors")
    fit_cmd.add_argument("--variant", default="s12", choices=sorted(VARIANTS))
    fit_cmd.add_argument("--mixer", default="pooling", choices=sorted(MIXER_LAYOUTS),
                         help="the zoo layout: one mixer in every stage, or pool-attention = [P, P, A, A]")
    fit_cmd.add_argument("--epochs", type=int, default=300)
    fit_cmd.add_argument("--warmup-epochs", type=int, default=5)
    fit_cmd.add_argument("--size", type=int, default=160, help="training resolution")
    fit_cmd.add_argument("--batch-size", type=int, default=256)
    fit_cmd.add_argument("--lr", type=float, default=2e-3)
    fit_cmd.add_argument("--weight-decay", type=float, default=0.05)
    fit_cmd.add_argument("--smoothing", type=float, default=0.1)
    fit_cmd.add_argument("--mix-prob", type=float, default=0.3)
    fit_cmd.add_argument("--min-scale", type=float, default=0.25)
    fit_cmd.add_argument("--magnitude", type=float, default=0.5, help="strength of rotation/shear/colour jitter, 0..1")
    fit_cmd.add_argument("--drop-path", type=float, default=0.1)
    fit_cmd.add_argument("--ema", type=float, default=0.9995)
    fit_cmd.add_argument("--seed", type=int, default=0)
    fit_cmd.add_argument("--holdout", type=float, default=0.0, metavar="F",
                         help="hold out this fraction of train (same images for every seed) as the per-epoch val, "
                              "for choosing a recipe without looking at the real val split")
    fit_cmd.add_argument("--final-size", type=int, help="resolution of the last --final-epochs (e.g. 224)")
    fit_cmd.add_argument("--final-epochs", type=int, default=0)
    fit_cmd.add_argument("--no-compile", dest="compile", action="store_false")
    fit_cmd.add_argument("--save-every", type=int, default=10, metavar="E",
                         help="keep a resumable state (<out>.state.pt) every E epochs; a rerun resumes from it")
    fit_cmd.add_argument("--time-limit", type=float, default=0.0, metavar="S",
                         help=f"stop with the state saved (exit {PAUSED}) before S seconds have passed; rerun to resume")

    seeds_cmd = commands.add_parser("seeds", help="run fit once per mixer and seed, one process per GPU")
    seeds_cmd.add_argument("--seeds", type=int, nargs="+", required=True)
    seeds_cmd.add_argument("--mixers", nargs="+", default=["pooling", "identity"], choices=sorted(MIXER_LAYOUTS))
    seeds_cmd.add_argument("--per-gpu", type=int, default=1, help="runs sharing each GPU at once (small models)")
    seeds_cmd.add_argument("--time-limit", type=float, default=0.0, metavar="S",
                           help="pause every run before S seconds after the launch, however late it started")
    seeds_cmd.add_argument("--out-dir", type=Path, required=True, help="gets <mixer>-seed<S>.safetensors and logs")
    seeds_cmd.add_argument("fit_args", nargs=argparse.REMAINDER, help="-- then the fit options (no --mixer/--seed/--out)")

    summarize_cmd = commands.add_parser("summarize", help="finalize every seed's checkpoint and record mean ± sd")
    summarize_cmd.add_argument("checkpoints", type=Path, nargs="+", help="fp16 files written by fit (any mixers)")
    summarize_cmd.add_argument("--val", type=Path, required=True, help="class-per-folder val images")
    summarize_cmd.add_argument("--out-dir", type=Path, required=True, help="gets <mixer>-seed<S>.safetensors")
    summarize_cmd.add_argument("--ship-seed", type=int, default=0,
                               help="the rule, fixed before seeing val: which seed of each mixer is shipped")
    summarize_cmd.add_argument("--probe-images", type=int, default=PROBE_PER_CLASS, metavar="N",
                               help="CKA to the pooling model on the first N val images of each class (sorted)")

    # poolformer/finetune.py parses its own options (poolformer/cli.py hands them over); listed for `train --help`.
    commands.add_parser("finetune", add_help=False, help="fine-tune a PoolFormer on your own photos (finetune --help)")

    finalize_cmd = commands.add_parser("finalize", help="measure val accuracy and write the shipped checkpoint")
    finalize_cmd.add_argument("checkpoint", type=Path, help="fp16 file written by fit")
    finalize_cmd.add_argument("--val", type=Path, required=True, help="class-per-folder val images")
    finalize_cmd.add_argument("--out", type=Path, required=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "pack":
        pack(args.src, args.out, args.size, args.quality)
    elif args.command == "finalize":
        finalize(args.checkpoint, args.val, args.out)
    elif args.command == "seeds":
        fit_args = args.fit_args[1:] if args.fit_args[:1] == ["--"] else args.fit_args
        return launch(args.seeds, args.mixers, args.out_dir, fit_args, args.per_gpu, args.time_limit)
    elif args.command == "summarize":
        finalized = []
        for checkpoint in args.checkpoints:
            metadata = read_metadata(checkpoint)
            out = args.out_dir / f"{metadata['token_mixer']}-seed{seed_of(metadata)}.safetensors"
            if metadata.get("eval_protocol", "").startswith(f"{args.val.name} split"):  # measured once is enough
                print(f"{checkpoint}: already measured on {args.val.name}, val top-1 {metadata['val_top1']}")
                rewrite_metadata(checkpoint, {}, out)
            else:
                finalize(checkpoint, args.val, out)
            finalized.append(out)
        print(summary_table(summarize(finalized)))
        similarity = record_cka(finalized, args.val, args.probe_images, args.ship_seed)
        print(cka_table(similarity) if similarity else f"CKA not measured: no pooling seed-{args.ship_seed} run "
              "and another mixer's to compare it with")
        print(f"ship (seed {args.ship_seed}, fixed rule): "
              + ", ".join(str(p) for p in finalized if seed_of(read_metadata(p)) == args.ship_seed))
    else:
        fit(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
