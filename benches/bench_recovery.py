"""Recovery of a venue after a crash: the newest snapshot plus the journal after it, against a
full replay of the journal in the same run (risk/recovery.py, docs/reliability.md).

Workload
--------
The venue pipeline's declared mix (bench_venue.py: one market, NVDA-PERP, 10,000 funded
accounts, ~1,000 resting orders), journaled, with a snapshot every ``SNAPSHOT_EVERY``
commands (25,000, what ``gaemi serve`` does; here written in process, the server forks a
child for it). The stream is sized so that the journal ends ``SNAPSHOT_EVERY - 1`` commands
after the last snapshot: the worst case, where recovery replays the most. Full run:
``1,024,999`` journaled commands (setup included), the last snapshot at 1,000,000; smoke run
(``--benchmark-disable``): 49,999 and 25,000.

* **snapshot + journal**: ``recover(path)``: checks and loads the newest snapshot, replays
  the 24,999 commands after it. 5 rounds after 1 warm-up round.
* **full journal** (the baseline): ``recover(path, snapshots=False)``, every command replayed.
  1 round (it takes tens of seconds).

Both must give the state hash of the venue that wrote the journal. The summary prints both
times, the ratio, and what one snapshot costs to write (pickle + fsync) and weighs.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from bench_venue import ACCOUNTS, _fresh_venue, _markets, generate_flow

from gaemi.gateway.server import SNAPSHOT_EVERY
from gaemi.risk import Venue
from gaemi.risk.recovery import recover, snapshot_paths, write_snapshot

FULL_TOTAL = 1_024_999  # journaled commands in the full run
SMOKE_TOTAL = 49_999
_SETUP = ACCOUNTS + 1 + 1_000  # deposits, the index, the starting book (bench_venue)


class _Journal:
    def __init__(self, path: Path, total: int, state_hash: str, snapshot_s: float,
                 snapshot_bytes: int) -> None:
        self.path, self.total, self.state_hash = path, total, state_hash
        self.snapshot_s, self.snapshot_bytes = snapshot_s, snapshot_bytes


@pytest.fixture(scope="module")
def journal(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> _Journal:
    smoke = bool(request.config.getoption("benchmark_disable"))
    total = SMOKE_TOTAL if smoke else FULL_TOTAL
    flow = generate_flow("1-mkt", total - _SETUP)
    path = tmp_path_factory.mktemp("recovery") / "journal.gaemij"
    venue = _fresh_venue(flow, "compiled", journal=path)
    assert venue.seq == _SETUP, venue.seq
    spent, size = [], 0
    for cmd in flow.commands:
        venue.submit(cmd)
        if venue.seq % SNAPSHOT_EVERY == 0:
            started = time.perf_counter()
            snap = write_snapshot(venue)
            spent.append(time.perf_counter() - started)
            size = snap.stat().st_size
    assert venue.seq == total and venue.seq % SNAPSHOT_EVERY == SNAPSHOT_EVERY - 1
    venue.sync()
    state = venue.state_hash()
    venue.close()
    return _Journal(path, total, state, sorted(spent)[len(spent) // 2], size)


_FIGURES: dict[str, Any] = {}


def _recover(path: Path, snapshots: bool) -> Venue:
    result = recover(path, book="compiled", snapshots=snapshots)
    # the journal is reattached for appending: close it, the file stays as it was
    result.venue.close()
    return result.venue


def test_recovery_from_snapshot(benchmark: Any, journal: _Journal) -> None:
    benchmark.group = "recovery"
    venues: list[Venue] = []
    benchmark.pedantic(lambda: venues.append(_recover(journal.path, True)), rounds=5,
                       warmup_rounds=1, iterations=1)
    assert all(v.state_hash() == journal.state_hash for v in venues)
    assert len(snapshot_paths(journal.path)) == min(3, journal.total // SNAPSHOT_EVERY)
    _note(benchmark, "snapshot + journal", journal)


def test_recovery_full_replay(benchmark: Any, journal: _Journal) -> None:
    benchmark.group = "recovery"
    venues: list[Venue] = []
    benchmark.pedantic(lambda: venues.append(_recover(journal.path, False)), rounds=1,
                       iterations=1)
    assert all(v.state_hash() == journal.state_hash for v in venues)
    _note(benchmark, "full journal", journal)


def _note(benchmark: Any, label: str, journal: _Journal) -> None:
    benchmark.extra_info.update(journaled=journal.total, snapshot_write_s=journal.snapshot_s,
                                snapshot_bytes=journal.snapshot_bytes)
    stats = getattr(benchmark, "stats", None)
    if stats is not None:
        _FIGURES[label] = stats.stats.median
    _FIGURES["journal"] = journal



@pytest.fixture(scope="module", autouse=True)
def _summary(request: pytest.FixtureRequest) -> Any:
    yield
    if "snapshot + journal" not in _FIGURES:
        return
    j = _FIGURES["journal"]
    fast = _FIGURES["snapshot + journal"]
    line = (f"\nrecovery of {j.total:,} journaled commands ({_markets(('NVDA-PERP',))[0].symbol},"
            f" {ACCOUNTS:,} accounts): snapshot + {SNAPSHOT_EVERY - 1:,} commands "
            f"{fast:.2f} s (median)")
    if "full journal" in _FIGURES:
        full = _FIGURES["full journal"]
        line += f"; full replay {full:.1f} s ({full / fast:.0f}x)"
    line += (f"; one snapshot: {j.snapshot_bytes / 1e6:.1f} MB, written in "
             f"{j.snapshot_s * 1000:.0f} ms (median)")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(line)
