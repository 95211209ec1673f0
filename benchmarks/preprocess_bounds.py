"""What each extreme file (tests/extreme_images.py) costs to decode and preprocess, against a 12-MP phone photo.

    python benchmarks/preprocess_bounds.py [--runs 3] [--whole-up-to MP]

For every file of the corpus: the median wall time and CPU time of bytes → model input (or refusal), the peak
memory above what the process held before (VmHWM, reset per run), and the ratio of the time to the peer's: a
4032 x 3024 phone JPEG through the same path, timed in the same run. Bounds (issue 17): ~1 s and ~300 MB.

Then, for the long thin files, the cheap centre-crop path against the plain whole resize (what transformers
does): both timed, and the crops compared byte for byte. Whole resizes larger than --whole-up-to megapixels
(default 700, which includes the 20000 x 2 strip: about 30 s and 2.4 GB) are skipped.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from extreme_images import CORPUS  # noqa: E402
from PIL import Image  # noqa: E402
from preprocess_speed import photo_bytes  # noqa: E402

from poolformer.preprocess import (  # noqa: E402
    ImageError,
    center_crop_box,
    load_image,
    preprocess,
    resized_crop,
    resized_size,
)

SECONDS_BOUND, MEGABYTES_BOUND = 1.0, 300


def status_mb(field: str) -> float:
    line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith(field))
    return int(line.split()[1]) / 1024


def measured(call, runs: int) -> tuple[float, float, float, str]:
    """Median wall seconds, median CPU seconds, the largest peak MB above the start, and the outcome."""
    walls, cpus, peaks, outcome = [], [], [], ""
    for _ in range(runs):
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
        before = status_mb("VmRSS")
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            call()
            outcome = "answer"
        except ImageError as error:
            outcome = f"refused: {error}"
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        peaks.append(status_mb("VmHWM") - before)
    return statistics.median(walls), statistics.median(cpus), max(peaks), outcome


def corpus_section(runs: int) -> None:
    phone = photo_bytes(4032, 3024)
    peer_wall, peer_cpu, peer_mb, _ = measured(lambda: preprocess(load_image(phone), 0.9), runs)
    print(f"peer: 4032x3024 phone JPEG ({len(phone) / 1e6:.1f} MB): {peer_wall * 1000:.0f} ms, "
          f"CPU {peer_cpu * 1000:.0f} ms, +{peer_mb:.0f} MB")
    print(f"\n{'file':34} {'bytes':>10} {'wall':>8} {'CPU':>8} {'× peer':>7} {'memory':>8}  outcome")
    worst_wall = worst_mb = 0.0
    for extreme in CORPUS:
        data = extreme.make()
        wall, cpu, megabytes, outcome = measured(lambda: preprocess(load_image(data), 0.9), runs)
        worst_wall, worst_mb = max(worst_wall, wall), max(worst_mb, megabytes)
        print(f"{extreme.name:34} {len(data):>10,} {wall * 1000:>6.0f}ms {cpu * 1000:>6.0f}ms "
              f"{wall / peer_wall:>7.2f} {megabytes:>6.0f}MB  {outcome[:90]}")
    print(f"\nworst: {worst_wall:.2f} s (bound {SECONDS_BOUND:.0f} s), +{worst_mb:.0f} MB (bound {MEGABYTES_BOUND} MB)")


def whole_section(whole_up_to_mp: float) -> None:
    print("\ncheap centre crop against the whole resize (short edge 248, crop 224):")
    for extreme in CORPUS:
        if extreme.refusal is not None:
            continue
        image = load_image(extreme.make())
        size = resized_size(image.size, 248)
        if size[0] * size[1] <= 4_000_000:
            continue  # resized whole by both paths
        if size[0] * size[1] > whole_up_to_mp * 1e6:
            print(f"  {extreme.name:34} whole resize {size[0]}x{size[1]} ({size[0] * size[1] / 1e6:,.0f} MP): skipped")
            continue
        crops = {}

        def cheap() -> None:
            crops["cheap"] = np.asarray(resized_crop(image, 248, 224))

        def whole() -> None:
            crops["whole"] = np.asarray(image.resize(size, Image.Resampling.BICUBIC).crop(center_crop_box(size, 224)))

        cheap_wall, _, cheap_mb, _ = measured(cheap, 1)
        whole_wall, _, whole_mb, _ = measured(whole, 1)
        same = "byte-equal" if np.array_equal(crops["cheap"], crops["whole"]) else "DIFFERENT"
        print(f"  {extreme.name:34} cheap {cheap_wall * 1000:7.1f} ms +{cheap_mb:4.0f} MB · whole "
              f"{size[0]}x{size[1]} {whole_wall:6.2f} s +{whole_mb:5.0f} MB · {same}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--whole-up-to", type=float, default=700, metavar="MP")
    args = parser.parse_args()
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC · {platform.processor() or platform.machine()} · "
          f"{os.cpu_count()} cores · load average {load} · Pillow {Image.__version__}")
    corpus_section(args.runs)
    whole_section(args.whole_up_to)
    print(f"load average at the end: {', '.join(f'{value:.1f}' for value in os.getloadavg())}")


if __name__ == "__main__":
    main()
