"""How long `train finetune` takes on this machine for 3 classes × 50 photos, against evaluating those photos once.

    python benchmarks/finetune_time.py [--rounds 1] [--photos 50] [--device cpu] [-- extra finetune options]

The photos are the first 50 val photos each of three Imagenette classes (church, golf ball, parachute),
linked into a temporary class-per-folder tree; the bundled S12 never trained on the val split. Each round
runs the default fine-tune, then its peer `python -m poolformer eval` of the result over the same 150
photos (process start, model load, decoding and one forward pass per photo), both as fresh processes
offline with an empty Hugging Face cache, as a user's first run. Prints each wall time, the held-out
accuracy, the median and ratio over rounds, and the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from safetensors import safe_open

REPO = Path(__file__).resolve().parent.parent
IMAGENETTE_VAL = Path(os.environ.get("IMAGENETTE_DIR", REPO.parent / "shared" / "datasets" / "imagenette2-224")) / "val"
CLASSES = {"church": "n03028079", "golf ball": "n03445777", "parachute": "n03888257"}


def photo_tree(root: Path, per_class: int) -> Path:
    tree = root / "photos"
    for name, wnid in CLASSES.items():
        (tree / name).mkdir(parents=True)
        for photo in sorted((IMAGENETTE_VAL / wnid).iterdir())[:per_class]:
            (tree / name / photo.name).symlink_to(photo)
    return tree


def timed(command: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-2000:]}")
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--photos", type=int, default=50, help="photos per class")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("extra", nargs=argparse.REMAINDER, help="-- then more `train finetune` options")
    args = parser.parse_args()
    extra = args.extra[1:] if args.extra[:1] == ["--"] else args.extra
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load average before {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        tree = photo_tree(root, args.photos)
        env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(root / "hf-cache")}
        tunes, evals = [], []
        for round_number in range(1, args.rounds + 1):
            out = root / f"round{round_number}.safetensors"
            tune_s, _ = timed(
                [sys.executable, "-m", "poolformer", "train", "finetune", str(tree), "--out", str(out),
                 "--device", args.device, *extra],
                env,
            )
            eval_s, result = timed(
                [sys.executable, "-m", "poolformer", "eval", str(tree), "--weights", str(out), "--device", args.device, "--json"],
                env,
            )
            with safe_open(str(out), framework="pt") as checkpoint:
                metadata = checkpoint.metadata()
            tunes.append(tune_s)
            evals.append(eval_s)
            print(
                f"round {round_number}: finetune {tune_s:.1f} s (held-out top-1 {float(metadata['heldout_top1']):.1%} on "
                f"{metadata['heldout_images']} photos; {metadata['recipe'].split(',')[0]}) · eval of the "
                f"{3 * args.photos} photos {eval_s:.1f} s (top-1 {json.loads(result.stdout)['top1']:.1%}) · "
                f"ratio {tune_s / eval_s:.1f}"
            )
    tune, peer = statistics.median(tunes), statistics.median(evals)
    print(f"median over {args.rounds} round(s): finetune {tune:.1f} s, eval {peer:.1f} s, ratio {tune / peer:.1f}; "
          f"load average after {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
