"""The soak's short version (benchmarks/soak.py runs the long one): after a warm-up, mixed calls over every endpoint
from four clients at once, fresh visitors among them, on the shared server; every answer equals a lone visitor's."""

from __future__ import annotations

from pathlib import Path

from conftest import SERVER_PIDS

from benchmarks.soak import ALL_CALLS, Uploads, lone_answers, mixed_schedule, rss_mb, run_calls, warm_up

CLIENTS = 4
CALLS = 2 * len(ALL_CALLS)  # each endpoint twice, after the warm-up's four times
# Loose: the long soak's figure is what counts (README, Deploying). Read after the warm-up: the first calls from
# several clients at once fill caches, CPU sessions and malloc's arenas (CI once saw +344 MB without one).
RSS_GROWTH_CEILING_MB = 300


def test_a_short_soak_is_served_without_an_error(app_url: str, tmp_path: Path) -> None:
    pid = SERVER_PIDS[app_url]
    expected, uploads = lone_answers(app_url), Uploads(tmp_path)
    assert warm_up(app_url, pid, CLIENTS, expected, uploads).errors == []
    before = rss_mb(pid)
    soak = run_calls(app_url, pid, mixed_schedule(CALLS), CLIENTS, 3, expected, uploads)
    assert soak.errors == []
    assert soak.served == CALLS and set(soak.latencies) == {name for name, _, _ in ALL_CALLS}
    assert rss_mb(pid) - before < RSS_GROWTH_CEILING_MB
