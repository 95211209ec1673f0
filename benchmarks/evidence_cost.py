"""What the Where-it-looks evidence costs to compute, against the tab's own /explain computation in the same run.

    python benchmarks/evidence_cost.py [--calls 7] [--photo assets/examples/reims_cathedral.jpg]

In process, as the app runs a request (one torch thread, the helper lanes beside it), bundled S12, warm:
`explorer.explain`, `explorer.sanity_check` and `explorer.faithfulness`, interleaved call by call so a busy
machine slows all three alike, then the drawing of each. Prints medians, the ratio to explain, and the load.
benchmarks/app_latency.py --endpoints /explain /sanity /faithfulness times the same through the HTTP API.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
from timing import interleaved_ms, median_ms, p95  # noqa: E402

from poolformer import explorer  # noqa: E402
from visualize.faithfulness import curve_points, faithfulness_summary  # noqa: E402
from visualize.gradcam import cam_comparison_picture  # noqa: E402
from visualize.sanity import sanity_picture, sanity_summary  # noqa: E402

BUNDLED_MODEL = "s12-imagenette"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=7, help="timed calls of each, interleaved")
    parser.add_argument("--photo", type=Path, default=REPO / "assets" / "examples" / "reims_cathedral.jpg")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as app.py's torch_threads_per_request gives each run on 2 cores
    photo = args.photo.read_bytes()
    calls = {
        "explain": lambda: explorer.explain(photo, BUNDLED_MODEL),
        "sanity": lambda: explorer.sanity_check(photo, BUNDLED_MODEL),
        "faithfulness": lambda: explorer.faithfulness(photo, BUNDLED_MODEL),
    }
    load = os.getloadavg()[0]
    samples = interleaved_ms(calls, args.calls, warmup=1)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"load average {load:.1f} → {os.getloadavg()[0]:.1f}; {args.calls} interleaved calls each")  # fmt: skip
    explain_ms = statistics.median(samples["explain"])
    for name, values in samples.items():
        middle = statistics.median(values)
        print(f"  {name:12} median {middle:6.0f} ms (p95 {p95(values):6.0f}) = {middle / explain_ms:.2f} × explain")
    explanation, check, curves = (call() for call in calls.values())
    drawing = {
        "explain's comparison picture": lambda: cam_comparison_picture(explanation),
        "sanity picture and table": lambda: (sanity_picture(check), sanity_summary(check)),
        "curve points and table": lambda: [curve_points(curves, insertion) for insertion in (False, True)]
        + [faithfulness_summary(curves)],
    }
    for name, draw in drawing.items():
        print(f"  drawing the {name}: median {median_ms(draw, args.calls):.0f} ms")


if __name__ == "__main__":
    main()
