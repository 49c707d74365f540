"""Snapshots and recovery (risk/recovery.py): a venue recovered from a snapshot plus the
journal after it is the venue a full replay gives, and behaves identically afterwards (the
same events and state hashes for the same commands, on both books); a snapshot that cannot
be used for any reason is skipped for an older one or for the full journal.

The journals are written by a real venue driven by the seeded ``Flow`` of
``test_conservation`` (orders, cancels, crashes of the index, funding, liquidations, cross
accounts in two markets, conditional orders)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from gaemi.risk import Deposit, Venue, usd
from gaemi.risk import recovery as R
from gaemi.risk.events import Rejected
from gaemi.risk.venue import persist
from tests.conftest import implementations
from tests.risk.test_conservation import Flow, small_markets

SEED = 11


def _run(venue: Venue, flow: Flow, n: int) -> list[list[object]]:
    return [venue.submit(flow.next()) for _ in range(n)]


def _journaled(path: Path, impl: str, n: int, seed: int = SEED) -> tuple[Venue, Flow]:
    venue = Venue(small_markets(), book=impl, journal=path)
    flow = Flow(seed, venue, n_accounts=12)
    for command in flow.opening():
        venue.submit(command)
    _run(venue, flow, n)
    return venue, flow


@pytest.mark.parametrize("loaded_on", implementations())
def test_snapshot_plus_journal_equals_a_full_replay_and_runs_on_identically(
        tmp_path: Path, impl: str, loaded_on: str) -> None:
    # Arrange: snapshots at three points of a run with liquidations, then more commands
    path = tmp_path / "j.gaemij"
    venue, flow = _journaled(path, impl, 150)
    kinds = set()
    for _ in range(3):
        R.write_snapshot(venue, owner={"guards": [1, 2]})
        kinds.update(e.kind for events in _run(venue, flow, 150) for e in events)
    assert {"liquidation", "funding", "order_triggered"} <= kinds, kinds
    live = venue.state_hash()
    venue.close()

    # Act
    from_snapshot = R.recover(path, book=loaded_on)
    from_journal = R.recover(path, book=loaded_on, snapshots=False)

    # Assert: the newest snapshot was used and only the commands after it were replayed
    assert from_snapshot.snapshot == R.snapshot_paths(path)[0]
    assert from_snapshot.owner == {"guards": [1, 2]}
    assert 0 < from_snapshot.replayed < from_journal.replayed
    assert from_snapshot.venue.state_hash() == from_journal.venue.state_hash() == live
    from_snapshot.venue.check_invariants()

    # Act: the same commands to both; the flow reads the venue it drives
    a, b = from_snapshot.venue, from_journal.venue
    for v in (a, b):  # both were reattached to the same file: run on without a journal
        v.close()
        v.attach_journal(None)
    follow = Flow(SEED + 1, a, n_accounts=12)
    for _ in range(300):
        command = follow.next()
        # Assert: identical events and states, command by command
        assert a.submit(command) == b.submit(command), command
        assert a.state_hash() == b.state_hash()


def test_recovery_falls_back_past_unusable_snapshots(tmp_path: Path, impl: str,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    # Arrange: three snapshots; the newest damaged, the middle one from other code
    path = tmp_path / "j.gaemij"
    venue, flow = _journaled(path, impl, 100)
    R.write_snapshot(venue)
    _run(venue, flow, 50)
    real = R.code_fingerprint()
    persist._FINGERPRINT = "0" * 16
    try:
        R.write_snapshot(venue)
    finally:
        persist._FINGERPRINT = real
    _run(venue, flow, 50)
    R.write_snapshot(venue)
    _run(venue, flow, 50)
    live = venue.state_hash()
    venue.close()
    newest, middle, oldest = R.snapshot_paths(path)
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    newest.write_bytes(bytes(data))

    # Act
    with caplog.at_level(logging.WARNING, logger="gaemi.recovery"):
        result = R.recover(path, book=impl)

    # Assert: the oldest one served; both others were named with their reason
    assert result.snapshot == oldest
    assert [p for p, _ in result.skipped] == [newest, middle]
    assert "damaged" in result.skipped[0][1] and "other code" in result.skipped[1][1]
    assert result.venue.state_hash() == live
    assert sum("not used" in r.getMessage() for r in caplog.records) == 2
    result.venue.close()


def test_a_snapshot_is_never_applied_to_another_journal_or_past_its_end(
        tmp_path: Path, impl: str) -> None:
    # Arrange: a snapshot of journal A copied beside a longer journal B of the same markets
    # (the same header); and a journal cut short of the end of its snapshot's last record
    a_path, b_path = tmp_path / "a.gaemij", tmp_path / "b.gaemij"
    a, _ = _journaled(a_path, impl, 80)
    snap = R.write_snapshot(a)
    a.close()
    b, _ = _journaled(b_path, impl, 300, seed=SEED + 7)
    b_seq = b.seq
    b.close()
    (tmp_path / (b_path.name + snap.name[len(a_path.name):])).write_bytes(snap.read_bytes())
    c_path = tmp_path / "c.gaemij"
    c, flow = _journaled(c_path, impl, 80)
    R.write_snapshot(c)
    before_last = c.journal.position[0]
    _run(c, flow, 20)
    c.close()
    data = c_path.read_bytes()
    short = c_path.with_name("short.gaemij")
    cut = (before_last - 5)  # inside the snapshot's last record: it is not in the journal
    short.write_bytes(data[:cut])
    (tmp_path / ("short.gaemij" + R.snapshot_paths(c_path)[0].name[len(c_path.name):])) \
        .write_bytes(R.snapshot_paths(c_path)[0].read_bytes())

    # Act
    b_result = R.recover(b_path, book=impl)
    short_result = R.recover(short, book=impl)

    # Assert
    assert b_result.snapshot is None and "another journal" in b_result.skipped[0][1]
    assert b_result.venue.seq == b_seq
    assert short_result.snapshot is None and "ends before" in short_result.skipped[0][1]
    assert short_result.torn is not None
    b_result.venue.close()
    short_result.venue.close()


def test_only_the_newest_snapshots_are_kept(tmp_path: Path, impl: str) -> None:
    # Arrange
    path = tmp_path / "j.gaemij"
    venue, flow = _journaled(path, impl, 20)

    # Act
    written = []
    for _ in range(5):
        _run(venue, flow, 10)
        written.append(R.write_snapshot(venue))
    venue.close()

    # Assert: the three newest, newest first, named by their sequence numbers
    assert R.snapshot_paths(path) == written[::-1][:R.KEEP]
    assert not list(tmp_path.glob("*.tmp"))


def test_notes_after_the_snapshot_come_back_in_order(tmp_path: Path, impl: str) -> None:
    # Arrange
    path = tmp_path / "j.gaemij"
    venue = Venue(small_markets(), book=impl, journal=path)
    venue.note({"n": 1})
    venue.submit(Deposit(1, usd(5)))
    R.write_snapshot(venue, owner="before")
    venue.note({"n": 2})
    venue.submit(Deposit(2, usd(5)))
    venue.note({"n": 3})
    venue.close()

    # Act
    with_snapshot = R.recover(path, book=impl)
    full = R.recover(path, book=impl, snapshots=False)

    # Assert: notes are not commands (no sequence number) and keep their order
    assert (with_snapshot.owner, with_snapshot.notes) == ("before", [{"n": 2}, {"n": 3}])
    assert (full.owner, full.notes) == (None, [{"n": 1}, {"n": 2}, {"n": 3}])
    assert with_snapshot.venue.seq == full.venue.seq == 2
    with_snapshot.venue.close()
    full.venue.close()


def test_a_recovered_venue_appends_after_the_snapshot_and_recovers_again(
        tmp_path: Path, impl: str) -> None:
    # Arrange
    path = tmp_path / "j.gaemij"
    venue, flow = _journaled(path, impl, 60)
    R.write_snapshot(venue)
    venue.close()

    # Act: recover (from the snapshot, nothing to replay), append, recover again
    first = R.recover(path, book=impl)
    assert first.replayed == 0
    assert not isinstance(first.venue.submit(Deposit(3, usd(9)))[0], Rejected)
    expected = first.venue.state_hash()
    first.venue.close()
    second = R.recover(path, book=impl)

    # Assert
    assert second.replayed == 1 and second.venue.state_hash() == expected

    # Act: a snapshot of the venue that replayed a record: its anchor must hold too
    snap = R.write_snapshot(second.venue)
    second.venue.close()
    third = R.recover(path, book=impl)

    # Assert
    assert (third.snapshot, third.skipped, third.replayed) == (snap, [], 0)
    assert third.venue.state_hash() == expected
    third.venue.close()
