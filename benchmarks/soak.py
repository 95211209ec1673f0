"""A long run against one `python app.py`: does it keep answering right, and does its memory level off?

    python benchmarks/soak.py [--calls 600] [--clients 4] [--new-visitor-every 10] [--sweep 60,60] [--env K=V ...]

The app runs offline on loopback with the bundled models only (as tests/conftest.py starts it). First a lone visitor
calls every endpoint once: those are the answers every later call must equal. Then a warm-up of `--clients` x 10
calls (one per endpoint), after which the server's RSS is read, and the soak: `--calls` calls mixing every endpoint
(seeded order), spread over `--clients` gradio_client clients calling at once; every `--new-visitor-every`-th call
of a client comes from a fresh client, as a new visitor's page would (its own Gradio session). Each upload is the
same photo with a different trailing comment, so Gradio stores every one anew and the temp-file sweep (`--sweep
FREQUENCY,AGE` seconds, POOLFORMER_TEMP_FILE_SWEEP) has something to delete.

Printed: calls served, errors (failures and answers unlike the lone visitor's), p50/p95 latency, server RSS after
warm-up, at the half and at the end (targets: the second half adds at most 30 MB, the end at most 1.0 GB), its
threads, and the temp folder's size (at most what the sweep lets through). `--env MALLOC_ARENA_MAX=2` and the like
run the server with other settings, to find out what its memory is.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from app_calls import CALLS, EVIDENCE, EXPLAIN, Call  # noqa: E402
from conftest import BUNDLED_DIR, app_server, local_client  # noqa: E402
from gradio_client import handle_file  # noqa: E402

PHOTO = REPO / "assets" / "examples" / "cat.jpg"
ALL_CALLS: list[Call] = [*CALLS, EXPLAIN, *EVIDENCE]
RSS_GROWTH_TARGET_MB, RSS_TARGET_MB = 30, 1000
SAMPLE_EVERY_S = 1.0


def status_field(pid: int, field_name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise KeyError(field_name)


def rss_mb(pid: int) -> float:
    return status_field(pid, "VmRSS") / 1024


def folder_mb(folder: Path) -> float:
    """Megabytes of the files under `folder`; what the temp sweep deletes while they are counted counts nothing
    (os.walk skips folders that vanish)."""
    total = 0
    for parent, _, names in os.walk(folder):
        for name in names:
            try:
                total += os.stat(os.path.join(parent, name)).st_size
            except FileNotFoundError:
                pass
    return total / 1e6


def server_temp_dir(pid: int) -> Path:
    """GRADIO_TEMP_DIR of the running server, read from its environment."""
    variables = dict(entry.split("=", 1) for entry in Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in entry)
    return Path(variables.get("GRADIO_TEMP_DIR", Path(tempfile.gettempdir()) / "gradio"))


class Uploads:
    """The photo with a different trailing comment each time: JPEG decoders stop at the end-of-image marker, so
    the pixels (and the answers) are the photo's, while Gradio stores each upload as a new file."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.count, self.lock = folder, 0, threading.Lock()
        self.photo = PHOTO.read_bytes()

    def next(self) -> Path:
        with self.lock:
            self.count += 1
            path = self.folder / f"photo-{self.count}.jpg"
        path.write_bytes(self.photo + f"upload {self.count}".encode())
        return path


@dataclass
class Samples:
    """The server's RSS, threads and temp-folder size, read every second while the soak runs."""

    times: list[float] = field(default_factory=list)
    rss: list[float] = field(default_factory=list)
    threads: list[int] = field(default_factory=list)
    temp: list[float] = field(default_factory=list)


def sample_until(stop: threading.Event, pid: int, temp_dir: Path, samples: Samples) -> None:
    start = time.monotonic()
    while not stop.wait(SAMPLE_EVERY_S):
        samples.times.append(time.monotonic() - start)
        samples.rss.append(rss_mb(pid))
        samples.threads.append(status_field(pid, "Threads"))
        samples.temp.append(folder_mb(temp_dir))


@dataclass
class Soak:
    served: int = 0
    errors: list[str] = field(default_factory=list)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    rss_at: dict[int, float] = field(default_factory=dict)  # calls served -> server RSS then
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, name: str, seconds: float, error: str | None, rss: float) -> None:
        with self.lock:
            self.served += 1
            self.latencies.setdefault(name, []).append(seconds)
            if error:
                self.errors.append(f"{name}: {error}")
            self.rss_at[self.served] = rss


def lone_answers(url: str) -> dict[str, object]:
    """What a lone visitor gets from every endpoint: the answers every soak call must equal."""
    client = local_client(url)
    return {name: compare(client.predict(handle_file(PHOTO), *args, api_name=name)) for name, args, compare in ALL_CALLS}


def run_calls(
    url: str, pid: int, schedule: list[Call], clients: int, new_visitor_every: int, expected: dict, uploads: Uploads
) -> Soak:
    """`schedule` spread over `clients` threads calling at once, each answer compared with `expected`."""
    soak = Soak()
    shares = [schedule[index::clients] for index in range(clients)]

    def visitor(calls: list[Call]) -> None:
        client = local_client(url)
        for number, (name, args, compare) in enumerate(calls, start=1):
            if new_visitor_every and number % new_visitor_every == 0:
                client = local_client(url)  # a new page: a new Gradio session
            began, error = time.perf_counter(), None
            try:
                answer = compare(client.predict(handle_file(uploads.next()), *args, api_name=name))
                if answer != expected[name]:
                    error = "answer differs from the lone visitor's"
            except Exception as failure:  # every failure counts; the report lists them
                error = f"{type(failure).__name__}: {failure}"
            soak.record(name, time.perf_counter() - began, error, rss_mb(pid))

    threads = [threading.Thread(target=visitor, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return soak


def warm_up(url: str, pid: int, clients: int, expected: dict, uploads: Uploads) -> Soak:
    """Each client calls every endpoint once (seeded order), so that caches, sessions and malloc's arenas have
    filled before memory is read."""
    return run_calls(url, pid, mixed_schedule(clients * len(ALL_CALLS), seed=1), clients, 0, expected, uploads)


def mixed_schedule(calls: int, seed: int = 0) -> list[Call]:
    """`calls` calls, every endpoint about equally often, in a seeded random order."""
    schedule = [ALL_CALLS[index % len(ALL_CALLS)] for index in range(calls)]
    random.Random(seed).shuffle(schedule)
    return schedule


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def report(soak: Soak, warm_rss: float, samples: Samples, elapsed: float, sweep: str) -> bool:
    """Print the figures and whether each target is met; True if all are."""
    every = [seconds for values in soak.latencies.values() for seconds in values]
    print(f"served {soak.served} calls in {elapsed:.0f} s ({soak.served / elapsed:.1f}/s), errors {len(soak.errors)}")
    for error in soak.errors[:10]:
        print(f"  {error[:160]}")
    print(f"latency: p50 {statistics.median(every):.2f} s, p95 {percentile(every, 0.95):.2f} s")
    for name, values in sorted(soak.latencies.items()):
        print(f"  {name:14} {len(values):4d} calls  p50 {statistics.median(values):.2f} s  p95 {percentile(values, 0.95):.2f} s")
    half, end = soak.rss_at[soak.served // 2], soak.rss_at[soak.served]
    print(f"server RSS: after warm-up {warm_rss:.0f} MB, at call {soak.served // 2} {half:.0f} MB, "
          f"at the end {end:.0f} MB (second half {end - half:+.0f} MB), highest {max(samples.rss, default=end):.0f} MB")
    checkpoints = sorted(soak.rss_at)[:: max(1, soak.served // 10)]
    print("  RSS by calls served: " + ", ".join(f"{calls}: {soak.rss_at[calls]:.0f}" for calls in checkpoints))
    print(f"server threads: {min(samples.threads, default=0)} to {max(samples.threads, default=0)}")
    print(f"temp folder: {samples.temp[-1] if samples.temp else 0:.1f} MB at the end, at most "
          f"{max(samples.temp, default=0):.1f} MB (sweep every/older than {sweep} s)")
    targets = {
        "no errors": not soak.errors,
        f"second half adds ≤ {RSS_GROWTH_TARGET_MB} MB": end - half <= RSS_GROWTH_TARGET_MB,
        f"RSS ≤ {RSS_TARGET_MB / 1000:.1f} GB": max(samples.rss, default=end) <= RSS_TARGET_MB,
    }
    for target, met in targets.items():
        print(f"  {'met' if met else 'NOT MET'}: {target}")
    return all(targets.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=600)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--new-visitor-every", type=int, default=10, metavar="N")
    parser.add_argument("--sweep", default="60,60", metavar="FREQUENCY,AGE")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="for the server")
    args = parser.parse_args()
    env = {"POOLFORMER_TEMP_FILE_SWEEP": args.sweep, **dict(item.split("=", 1) for item in args.env)}
    load: Callable[[], str] = lambda: ", ".join(f"{value:.1f}" for value in os.getloadavg())  # noqa: E731
    print(f"soak: {args.calls} calls, {args.clients} clients, a new visitor every {args.new_visitor_every} calls, "
          f"server env {env} · {os.cpu_count()} cores · load average {load()}")
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        (scratch / "uploads").mkdir()
        uploads = Uploads(scratch / "uploads")
        with app_server(BUNDLED_DIR, scratch, env=env) as (url, server):
            expected = lone_answers(url)
            warm_up(url, server.pid, args.clients, expected, uploads)
            warm_rss = rss_mb(server.pid)
            samples, stop = Samples(), threading.Event()
            sampler = threading.Thread(target=sample_until, args=(stop, server.pid, server_temp_dir(server.pid), samples))
            sampler.start()
            began = time.monotonic()
            soak = run_calls(
                url, server.pid, mixed_schedule(args.calls), args.clients, args.new_visitor_every, expected, uploads
            )
            elapsed = time.monotonic() - began
            stop.set()
            sampler.join()
        met = report(soak, warm_rss, samples, elapsed, args.sweep)
    print(f"load average at the end: {load()}")
    sys.exit(0 if met else 1)


if __name__ == "__main__":
    main()
