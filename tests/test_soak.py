"""The soak's short version (benchmarks/soak.py runs the long one): a few dozen mixed calls over every endpoint from
four clients at once, fresh visitors among them, on the shared server; every answer equals a lone visitor's."""

from __future__ import annotations

from pathlib import Path

from conftest import SERVER_PIDS

from benchmarks.soak import ALL_CALLS, Uploads, lone_answers, mixed_schedule, rss_mb, run_calls

CLIENTS = 4
CALLS = 4 * len(ALL_CALLS)  # each endpoint four times
RSS_GROWTH_CEILING_MB = 300  # loose: the long soak's figure is what counts (README, Deploying)


def test_a_short_soak_is_served_without_an_error(app_url: str, tmp_path: Path) -> None:
    pid = SERVER_PIDS[app_url]
    expected = lone_answers(app_url)
    before = rss_mb(pid)
    soak = run_calls(app_url, pid, mixed_schedule(CALLS), CLIENTS, 3, expected, Uploads(tmp_path))
    assert soak.errors == []
    assert soak.served == CALLS and set(soak.latencies) == {name for name, _, _ in ALL_CALLS}
    assert rss_mb(pid) - before < RSS_GROWTH_CEILING_MB
