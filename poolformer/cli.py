"""`python -m poolformer predict | eval | train`: classify images, measure accuracy, or train.

Every failure a user can cause (unreadable image, missing or mismatched weights, a folder that is
not a class) ends with exit status 2 and one `error: ...` line on stderr that says what to do.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from poolformer.compiled import compile_model, compiling_pays_off
from poolformer.evaluation import DatasetError, class_indices, evaluate, find_samples, model_input
from poolformer.model import VARIANTS, CpuServedPoolFormer, PoolFormer
from poolformer.preprocess import ImageError
from poolformer.weights import DEFAULT_VARIANT, WeightsError, create_model

USAGE_ERROR = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "train":  # the trainers parse their own arguments; import them only when asked
        if extra[:1] == ["finetune"]:
            from poolformer.finetune import main as finetune_main

            return finetune_main(extra[1:])
        from poolformer.train import main as train_main

        return train_main(extra)
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.run(args)
    except (DatasetError, ImageError, WeightsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE_ERROR
    except torch.OutOfMemoryError:
        print("error: out of memory; use a smaller --batch-size or --device cpu", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m poolformer", description="PoolFormer image classifier.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    predict = commands.add_parser("predict", help="top-k classes for each image")
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    add_model_options(predict)
    predict.add_argument("--top", type=positive_int, default=5, metavar="K", help="how many classes to show")
    predict.add_argument("--json", action="store_true", help="print a JSON list instead of text")
    predict.set_defaults(run=run_predict)

    evaluate = commands.add_parser("eval", help="top-1/top-5 accuracy on a folder of class folders")
    evaluate.add_argument(
        "dir", type=Path, metavar="DIR", help="one sub-folder per class, named by WordNet id or by the model's class name"
    )
    add_model_options(evaluate)
    evaluate.add_argument("--batch-size", type=positive_int, default=32, metavar="N")
    evaluate.add_argument("--json", action="store_true", help='print {"top1", "top5", "n"} as JSON')
    evaluate.set_defaults(run=run_eval)

    commands.add_parser("train", add_help=False, help="train on a class-per-folder dataset (see train --help)")
    return parser


def add_model_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--variant", choices=list(VARIANTS), help=f"model size (default {DEFAULT_VARIANT}, or what --weights holds)"
    )
    command.add_argument(
        "--weights",
        default="hub",
        metavar="W",
        help="'hub' (official ImageNet weights, the default), a checkpoint file, a transformers folder, "
        "or a Hub repo id owner/name[@revision] in transformers format",
    )
    command.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def load_model(args: argparse.Namespace) -> PoolFormer:
    """Hub weights follow --variant (default s12); a checkpoint says its own variant unless one is given.

    The model comes as its inference twin (same parameters). `eval` then builds its CPU session or CUDA graph;
    `predict` runs eagerly, since a few images take less time than the build.
    """
    return create_model(args.variant, weights=args.weights, device=args.device).for_inference()


def describe(model: PoolFormer) -> str:
    """Which weights, which architecture: an IdentityFormer is not called a PoolFormer."""
    mixers = sorted(set(model.token_mixers))
    mixer = mixers[0] if len(mixers) == 1 else "/".join(model.token_mixers)
    return f"{model.weights_source} [{model.variant.name}, {mixer} token mixer]"


# --- predict -------------------------------------------------------------------------------------


def run_predict(args: argparse.Namespace) -> int:
    """Every readable image gets its answer; each unreadable one an `error:` line, and the exit status is 2."""
    model = load_model(args)
    results, failures = [], []
    for image in args.images:
        try:
            results.append(predict_one(model, image, args.top))
        except ImageError as error:
            failures.append(error)
    if results:
        print(json.dumps(results, indent=2) if args.json else predictions_as_text(results, describe(model)))
    for error in failures:
        print(f"error: {error}", file=sys.stderr)
    return USAGE_ERROR if failures else 0


def predict_one(model: PoolFormer, image: str, top: int) -> dict:
    device = next(model.parameters()).device
    with torch.inference_mode():
        probs = model(model_input(model, image).to(device)).softmax(dim=-1)[0]
    best = probs.topk(min(top, probs.numel()))
    return {
        "image": image,
        "variant": model.variant.name,
        "top": [
            {"index": index, "label": model.class_names[index], "prob": prob}
            for prob, index in zip(best.values.tolist(), best.indices.tolist())
        ],
    }


def predictions_as_text(results: list[dict], model_line: str) -> str:
    lines = [model_line]
    for result in results:
        lines.append(f"\n{result['image']}")
        lines += [f"  {p['prob']:6.1%}  {p['label']} (#{p['index']})" for p in result["top"]]
    return "\n".join(lines)


# --- eval ----------------------------------------------------------------------------------------


def run_eval(args: argparse.Namespace) -> int:
    samples = find_samples(args.dir)  # checked before the (slower) model load
    model = load_model(args)
    targets = class_indices(model, samples, args.dir)
    device = next(model.parameters()).device
    started = time.perf_counter()
    if compiling_pays_off(device) and len(samples) >= args.batch_size:  # full batches replay a CUDA graph
        model = compile_model(model, batch=args.batch_size)
        print(f"compiled for batch {args.batch_size} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    elif isinstance(model, CpuServedPoolFormer) and model.cpu_passes.build():  # seconds, repaid within a batch
        print(f"ONNX Runtime session built in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    top1, top5 = evaluate(model, samples, targets, args.batch_size)
    n = len(samples)
    if args.json:
        print(json.dumps({"top1": top1 / n, "top5": top5 / n, "n": n}))
    else:
        print(f"top-1 {top1 / n:.2%}   top-5 {top5 / n:.2%}   n={n}   ({describe(model)})")
    return 0
