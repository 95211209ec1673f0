"""Peak memory of the app while /compare runs every variant from a local Hugging Face cache.

    python benchmarks/app_memory.py [--hub-cache DIR]

The cache holds sail/poolformer_<variant> for all five variants with random weights (transformers'
save_pretrained laid out as tests/reference.py's fake_hub_snapshot does: no network), built once and
kept in --hub-cache. The app is `python app.py`, offline, with the bundled models too; its model cache
size is POOLFORMER_MODEL_CACHE_SIZE (3 unless set). Target (issue 8): peak RSS ≤ 1.5 GB on CPU.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from app_latency import PHOTO, folder, say, verdict, wait_for_sessions  # noqa: E402
from conftest import BUNDLED_DIR, app_server, local_client  # noqa: E402
from gradio_client import handle_file  # noqa: E402

from poolformer.model import VARIANTS  # noqa: E402

MEMORY_TARGET_GB = 1.5
DEFAULT_HUB_CACHE = Path.home() / ".cache" / "poolformer-explorer" / "speed-report-hf-cache"
WARM_UP_SETTLE_S = 2  # the app loads its default model in the background after it starts serving


def five_variant_hub_cache(directory: Path) -> Path:
    """A local HF cache holding sail/poolformer_<variant> for every variant, random weights; built once."""
    from reference import fake_hub_snapshot, reference_model

    for name, variant in VARIANTS.items():
        if (directory / f"models--{variant.hub_repo.replace('/', '--')}" / "refs" / "main").is_file():
            continue
        say(f"  (building the local HF cache, once: {variant.hub_repo}, random weights)")
        reference_model(name).save_pretrained(fake_hub_snapshot(directory, variant.hub_repo))
    return directory


def peak_rss_gb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in GB."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    return int(next(line for line in status if line.startswith("VmHWM:")).split()[1]) * 1024 / 1e9


def memory_section(scratch: Path, hub_cache: Path) -> None:
    cache = five_variant_hub_cache(hub_cache)
    capacity = os.environ.get("POOLFORMER_MODEL_CACHE_SIZE", "3 (default)")
    with app_server(BUNDLED_DIR, folder(scratch, "memory"), hf_cache=cache) as (url, server):
        client = local_client(url)
        time.sleep(WARM_UP_SETTLE_S)
        before = peak_rss_gb(server.pid)
        started = time.perf_counter()
        table = client.predict(handle_file(PHOTO), api_name="/compare")[0]
        took = time.perf_counter() - started
        peak = peak_rss_gb(server.pid)
        # A model asked for again while cached gets its CPU session built in the background (the default model
        # does during the warm-up; /compare asks for each model once): the peak once that has happened.
        sessions = wait_for_sessions(folder(scratch, "memory") / "app.log", 1, timeout_s=240)
        time.sleep(WARM_UP_SETTLE_S)
        settled = peak_rss_gb(server.pid)
    say(
        f"  /compare over {len(table['data'])} models ({', '.join(row[0] for row in table['data'])}) "
        f"took {took:.1f} s; "
        f"model cache size {capacity}: peak RSS {peak:.2f} GB (before /compare {before:.2f} GB) · "
        f"target ≤ {MEMORY_TARGET_GB} GB: {verdict(peak, MEMORY_TARGET_GB)}; "
        f"peak with the background CPU sessions built {settled:.2f} GB ({'; '.join(sessions)})"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--hub-cache", type=Path, default=DEFAULT_HUB_CACHE, help="where the five-variant HF cache is kept"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        say("memory:")
        memory_section(Path(scratch), args.hub_cache)


if __name__ == "__main__":
    main()
