"""`python -m poolformer predict | eval | train`: classify images, measure accuracy, or train.

Every failure a user can cause (unreadable image, missing or mismatched weights, a folder that is
not a class) ends with exit status 2 and one `error: ...` line on stderr that says what to do.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from poolformer.labels import wnid_to_imagenet_index
from poolformer.model import VARIANTS, PoolFormer
from poolformer.preprocess import ImageError, load_image, preprocess
from poolformer.weights import DEFAULT_VARIANT, WeightsError, create_model

USAGE_ERROR = 2
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
DECODE_THREADS = 4  # Pillow releases the GIL while decoding and resizing


class CliError(Exception):
    """A one-line problem with the command's input that the user can fix."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "train":  # the trainer parses its own arguments; import it only when asked
        from poolformer.train import main as train_main

        return train_main(extra)
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.run(args)
    except (CliError, ImageError, WeightsError) as error:
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
    evaluate.add_argument("dir", type=Path, metavar="DIR", help="one sub-folder per class, named by WordNet id")
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
        help="'hub' (official ImageNet weights, the default), a checkpoint file or a transformers folder",
    )
    command.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def load_model(args: argparse.Namespace) -> PoolFormer:
    """Hub weights follow --variant (default s12); a checkpoint says its own variant unless one is given."""
    return create_model(args.variant, weights=args.weights, device=args.device)


def model_input(model: PoolFormer, source: str | Path) -> torch.Tensor:
    """Decode an image and preprocess it the way this model's variant was evaluated."""
    return preprocess(load_image(source), model.variant.crop_pct)


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


@dataclass(frozen=True)
class Sample:
    path: Path
    wnid: str


def run_eval(args: argparse.Namespace) -> int:
    samples = find_samples(args.dir)  # checked before the (slower) model load
    model = load_model(args)
    targets = class_indices(model, samples, args.dir)
    top1, top5 = evaluate(model, samples, targets, args.batch_size)
    n = len(samples)
    if args.json:
        print(json.dumps({"top1": top1 / n, "top5": top5 / n, "n": n}))
    else:
        print(f"top-1 {top1 / n:.2%}   top-5 {top5 / n:.2%}   n={n}   ({describe(model)})")
    return 0


def find_samples(directory: Path) -> list[Sample]:
    """Images in DIR/<wnid>/, in a stable order; hidden and non-image files are ignored."""
    if not directory.is_dir():
        raise CliError(f"{directory} is not a folder; eval needs DIR/<wnid>/<image> files")
    samples = [
        Sample(path, folder.name)
        for folder in sorted(directory.iterdir())
        if folder.is_dir() and not folder.name.startswith(".")
        for path in sorted(folder.iterdir())
        if path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")
    ]
    if not samples:
        raise CliError(f"no images found in {directory}/<wnid>/; eval needs one sub-folder of images per class")
    return samples


def class_indices(model: PoolFormer, samples: list[Sample], directory: Path) -> list[int]:
    """Each sample's output index: the checkpoint's own wnid list, else ImageNet-1k's for 1000 classes."""
    mapping = wnid_mapping(model)
    unknown = sorted({s.wnid for s in samples} - mapping.keys())
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" (+{len(unknown) - 5} more)" if len(unknown) > 5 else "")
        raise CliError(
            f"folders in {directory} that are not classes of this model: {shown}; "
            "name class folders by the WordNet ids the model was trained on, or remove the others"
        )
    return [mapping[s.wnid] for s in samples]


def wnid_mapping(model: PoolFormer) -> dict[str, int]:
    if "wnids" in model.checkpoint_metadata:
        wnids = parse_wnids(model.checkpoint_metadata["wnids"])
        if len(wnids) != model.num_classes:
            raise CliError(f"the checkpoint lists {len(wnids)} wnids but has {model.num_classes} classes")
        return {wnid: index for index, wnid in enumerate(wnids)}
    if model.num_classes == len(wnid_to_imagenet_index()):
        return wnid_to_imagenet_index()
    raise CliError(
        f"the weights have {model.num_classes} classes but no 'wnids' list in their metadata, so class "
        "folders cannot be matched to outputs; use ImageNet-1k weights or a checkpoint saved with wnids"
    )


def parse_wnids(text: str) -> list[str]:
    try:
        wnids = json.loads(text)
    except ValueError:
        wnids = None
    if not isinstance(wnids, list) or not all(isinstance(wnid, str) for wnid in wnids):
        raise CliError("the checkpoint's 'wnids' metadata is not a JSON list of WordNet ids; re-save it")
    return wnids


def evaluate(model: PoolFormer, samples: list[Sample], targets: list[int], batch_size: int) -> tuple[int, int]:
    """Count top-1 and top-5 hits, decoding each batch on a few threads while showing progress on stderr."""
    device = next(model.parameters()).device
    k = min(5, model.num_classes)
    top1 = top5 = 0
    with ThreadPoolExecutor(DECODE_THREADS) as pool, tqdm(total=len(samples), unit="img", file=sys.stderr) as bar:
        for start in range(0, len(samples), batch_size):
            batch = samples[start : start + batch_size]
            images = torch.cat(list(pool.map(lambda s: model_input(model, s.path), batch)))
            labels = torch.tensor(targets[start : start + batch_size], device=device)
            with torch.inference_mode():
                hits = model(images.to(device)).topk(k, dim=-1).indices == labels[:, None]
            top1 += int(hits[:, 0].sum())
            top5 += int(hits.any(dim=-1).sum())
            bar.update(len(batch))
    return top1, top5
