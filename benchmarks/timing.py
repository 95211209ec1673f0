"""The one timing rule every benchmark here uses: warm up, then report the median wall time."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_ms(call: Callable[[], object], calls: int, warmup: int = 1) -> float:
    """Median milliseconds of `calls` runs after `warmup` untimed ones; medians shrug off noisy neighbours."""
    for _ in range(warmup):
        call()
    timings = []
    for _ in range(calls):
        start = time.perf_counter()
        call()
        timings.append((time.perf_counter() - start) * 1000)
    return statistics.median(timings)
