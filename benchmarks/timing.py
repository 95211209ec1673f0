"""The timing rules every benchmark here uses: warm up, then report medians (and a tail) of wall times."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping


def time_ms(call: Callable[[], object]) -> float:
    """Wall time of one call, in milliseconds."""
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1000


def median_ms(call: Callable[[], object], calls: int, warmup: int = 1) -> float:
    """Median milliseconds of `calls` runs after `warmup` untimed ones; medians shrug off noisy neighbours."""
    for _ in range(warmup):
        call()
    return statistics.median(time_ms(call) for _ in range(calls))


def interleaved_ms(calls: Mapping[str, Callable[[], object]], runs: int, warmup: int = 1) -> dict[str, list[float]]:
    """Every call timed `runs` times in alternation (the order rotating), so drift on a busy machine hits all alike."""
    names = list(calls)
    for _ in range(warmup):
        for name in names:
            calls[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for run in range(runs):
        for name in names[run % len(names) :] + names[: run % len(names)]:
            samples[name].append(time_ms(calls[name]))
    return samples


def p95(samples: list[float]) -> float:
    """95th percentile (inclusive method, so it stays within the samples)."""
    if len(samples) < 2:
        return samples[0]
    return statistics.quantiles(samples, n=20, method="inclusive")[-1]
