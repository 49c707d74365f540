"""The command journal: recovery reproduces the venue, a torn tail loses exactly the command
being written, damage anywhere else is refused.

The journals are written by a real venue driven by the seeded ``Flow`` of
``test_conservation`` (orders, cancels, index crashes, funding, liquidations). The record
layout used to cut and damage files is the one ``risk/journal.py`` documents: the magic, then
per record a little-endian ``u32`` length, a ``u32`` CRC-32 and the msgpack payload; it is
parsed here independently of ``read_records``.
"""

from __future__ import annotations

import struct
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from gaemi.engine.codes import Side
from gaemi.risk import Deposit, PlaceConditional, PlaceOrder, SetIndexPrice, Venue, Withdraw, usd
from gaemi.risk.commands import decode, encode
from gaemi.risk.events import Rejected
from gaemi.risk.journal import MAGIC, JournalCorrupt, read_records
from tests.conftest import implementations
from tests.risk.test_conservation import NVDA, TSLA, Flow, small_markets

FLOW_SEED = 5  # with 12 accounts its first 300 commands liquidate several of them
N_ACCOUNTS = 12
APPENDED = Deposit(1, usd(7))  # always accepted: what a recovered venue appends


def journaled_run(path: Path, impl: str, n: int, seed: int = FLOW_SEED,
                  venue: Venue | None = None) -> tuple[Venue, list[Any], Counter[str]]:
    """Drive a (journaling) venue with ``n`` flow commands (plus the opening ones when the
    venue is new); the accepted commands and the event kinds."""
    fresh = venue is None
    if venue is None:
        venue = Venue(small_markets(), book=impl, journal=path)
    flow = Flow(seed, venue, n_accounts=N_ACCOUNTS)
    accepted: list[Any] = []
    kinds: Counter[str] = Counter()
    for command in flow.commands(n) if fresh else (flow.next() for _ in range(n)):
        events = venue.submit(command)
        kinds.update(e.kind for e in events)
        if not (len(events) == 1 and isinstance(events[0], Rejected)):
            accepted.append(command)
    return venue, accepted, kinds


def replayed(impl: str, commands: list[Any]) -> Venue:
    """A venue without a journal that received exactly ``commands``, all accepted."""
    venue = Venue(small_markets(), book=impl)
    for command in commands:
        events = venue.submit(command)
        assert not (len(events) == 1 and isinstance(events[0], Rejected)), (command, events)
    return venue


def frames(data: bytes) -> list[tuple[int, int]]:
    """(start, end) byte offsets of every record, from the documented layout."""
    assert data.startswith(MAGIC)
    out, offset = [], len(MAGIC)
    while offset < len(data):
        length, _crc = struct.unpack_from("<II", data, offset)
        out.append((offset, offset + 8 + length))
        offset += 8 + length
    assert offset == len(data)
    return out


def flipped(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]


# -- recovery -------------------------------------------------------------------------------------


def test_recovery_reproduces_the_state_and_keeps_appending(tmp_path: Path, impl: str) -> None:
    # Arrange
    path = tmp_path / "j.log"
    venue, accepted, kinds = journaled_run(path, impl, 300)
    assert kinds["liquidation"] > 0, sorted(kinds.items())
    assert kinds["rejected"] > 0, sorted(kinds.items())
    live = venue.state_hash()
    venue.close()

    # Act
    recovered = Venue.recover(path, book=impl)

    # Assert: the journal holds the accepted commands, in order, and replays to the same state
    records, end, torn = read_records(path)
    assert (end, torn) == (path.stat().st_size, False)
    assert [decode(r) for r in records[1:]] == accepted
    assert recovered.state_hash() == live
    assert recovered.seq == len(accepted)
    recovered.check_invariants()

    # Act: continue on the recovered venue, then recover a second time
    recovered, more, _ = journaled_run(path, impl, 100, seed=FLOW_SEED + 1, venue=recovered)
    assert more, "the continuation accepted nothing"
    continued = recovered.state_hash()
    recovered.close()
    again = Venue.recover(path, book=impl)

    # Assert
    records, _, torn = read_records(path)
    assert not torn
    assert [decode(r) for r in records[1:]] == accepted + more
    assert again.state_hash() == continued
    again.close()


def test_resting_orders_recover_to_the_same_state_hash(tmp_path: Path, impl: str) -> None:
    """The journal stores a side as a plain int: a venue whose orders were placed with
    ``Side`` values must still recover to its own state hash."""
    # Arrange
    path = tmp_path / "j.log"
    venue = Venue(small_markets(), book=impl, journal=path)
    for command in (SetIndexPrice(NVDA, 20_000), Deposit(1, usd(100)),
                    PlaceOrder(1, NVDA, Side.BUY, 19_990, 1),
                    PlaceConditional(1, NVDA, Side.SELL, 1, 19_000, "stop")):
        assert not isinstance(venue.submit(command)[0], Rejected), command
    venue.close()

    # Act
    recovered = Venue.recover(path, book=impl)

    # Assert
    assert recovered.open_orders(1) == venue.open_orders(1)
    assert recovered.state_hash() == venue.state_hash()
    recovered.close()


def test_a_journal_recovers_alike_on_every_book(tmp_path: Path, impl: str) -> None:
    # Arrange: written on one implementation
    path = tmp_path / "j.log"
    venue, _, _ = journaled_run(path, impl, 200)
    live = venue.state_hash()
    venue.close()

    for other in implementations():
        # Act
        recovered = Venue.recover(path, book=other)

        # Assert
        assert recovered.state_hash() == live, other
        recovered.close()


def test_rejected_commands_are_not_journaled(tmp_path: Path, impl: str) -> None:
    # Arrange
    path = tmp_path / "j.log"
    venue = Venue(small_markets(), book=impl, journal=path)
    commands = [
        SetIndexPrice(NVDA, 20_000),
        Deposit(1, usd(100)),
        Withdraw(2, usd(1)),  # unknown account
        Withdraw(1, usd(101)),  # more than there is
        PlaceOrder(1, NVDA, 1, 20_000, 10**6),  # far beyond the margin
        PlaceOrder(1, TSLA, 1, 30_000, 1),  # no index in TSLA yet
        PlaceOrder(1, NVDA, 1, 20_010, 5),
        Deposit(1, 0),  # not a positive amount
    ]

    # Act
    answers = [venue.submit(c) for c in commands]
    venue.close()

    # Assert
    rejected = [len(a) == 1 and isinstance(a[0], Rejected) for a in answers]
    assert rejected == [False, False, True, True, True, True, False, True]
    records, _, _ = read_records(path)
    kept = [c for c, r in zip(commands, rejected, strict=True) if not r]
    assert [decode(r) for r in records[1:]] == kept
    assert Venue.recover(path, book=impl).state_hash() == venue.state_hash()


def test_a_nonempty_file_is_not_overwritten(tmp_path: Path, impl: str) -> None:
    # Arrange: a real journal, and a file that is not one
    journal = tmp_path / "j.log"
    Venue(small_markets(), book=impl, journal=journal).close()
    other = tmp_path / "notes.txt"
    other.write_bytes(b"keep me")
    contents = {p: p.read_bytes() for p in (journal, other)}

    for path in (journal, other):
        # Act / Assert
        with pytest.raises(FileExistsError):
            Venue(small_markets(), book=impl, journal=path)
        assert path.read_bytes() == contents[path]


def test_an_empty_file_may_become_a_journal(tmp_path: Path, impl: str) -> None:
    # Arrange
    path = tmp_path / "j.log"
    path.touch()

    # Act
    venue = Venue(small_markets(), book=impl, journal=path)
    venue.submit(Deposit(1, usd(5)))
    venue.close()

    # Assert
    assert Venue.recover(path, book=impl).state_hash() == venue.state_hash()


# -- a torn tail ----------------------------------------------------------------------------------


def test_torn_tail_drops_exactly_the_last_command(tmp_path: Path, impl: str) -> None:
    # Arrange
    path = tmp_path / "j.log"
    venue, accepted, _ = journaled_run(path, impl, 60)
    venue.close()
    data = path.read_bytes()
    start, end = frames(data)[-1]
    assert end == len(data) and end - start > 9
    good, _, _ = read_records(path)
    # the venue that never received the last command; and the same commands as the journal
    # decodes them (plain ints for enums), which isolates the tail handling from how a
    # command's values are represented
    without_last = replayed(impl, accepted[:-1]).state_hash()
    as_decoded = replayed(impl, [decode(r) for r in good[1:-1]]).state_hash()
    with_appended = replayed(impl, accepted[:-1] + [APPENDED]).state_hash()
    assert without_last != venue.state_hash() != with_appended

    # every cut from the record's first byte (a clean cut) through its frame header
    # (start + 1 .. start + 7) and its payload, up to one byte short of the whole record
    for cut in range(start, end):
        torn = tmp_path / f"torn-{cut}.log"
        torn.write_bytes(data[:cut])

        # Act
        recovered = Venue.recover(torn, book=impl)

        # Assert: the last command is gone, nothing else
        assert torn.stat().st_size == start, cut
        assert recovered.seq == len(accepted) - 1, cut
        assert recovered.state_hash() == as_decoded, cut
        assert recovered.state_hash() == without_last, cut

        # Act: the recovered venue appends where the good records end
        assert not isinstance(recovered.submit(APPENDED)[0], Rejected)
        recovered.close()

        # Assert
        records, _, was_torn = read_records(torn)
        assert not was_torn and records == good[:-1] + [encode(APPENDED)], cut
        again = Venue.recover(torn, book=impl)
        assert again.state_hash() == with_appended, cut
        again.close()


def test_a_last_record_with_a_bad_checksum_is_a_torn_tail(tmp_path: Path, impl: str) -> None:
    # Arrange: the whole last record is there but one payload byte is wrong
    path = tmp_path / "j.log"
    venue, accepted, _ = journaled_run(path, impl, 60)
    venue.close()
    data = path.read_bytes()
    start, end = frames(data)[-1]
    path.write_bytes(flipped(data, end - 1))

    # Act
    recovered = Venue.recover(path, book=impl)

    # Assert
    assert recovered.state_hash() == replayed(impl, accepted[:-1]).state_hash()
    assert path.stat().st_size == start
    recovered.close()


# -- damage ---------------------------------------------------------------------------------------


def middle_record(tmp_path: Path, impl: str) -> tuple[Path, bytes, int, int]:
    path = tmp_path / "j.log"
    venue, _, _ = journaled_run(path, impl, 40)
    venue.close()
    data = path.read_bytes()
    spans = frames(data)
    start, end = spans[len(spans) // 2]
    return path, data, start, end


def test_a_damaged_payload_before_the_tail_raises(tmp_path: Path, impl: str) -> None:
    # Arrange
    path, data, start, end = middle_record(tmp_path, impl)

    for at in range(start + 8, end):
        damaged = flipped(data, at)
        path.write_bytes(damaged)

        # Act / Assert: refused, and the file is left as it was
        with pytest.raises(JournalCorrupt):
            read_records(path)
        with pytest.raises(JournalCorrupt):
            Venue.recover(path, book=impl)
        assert path.read_bytes() == damaged, at


def test_a_damaged_frame_header_before_the_tail_raises(tmp_path: Path, impl: str) -> None:
    """A length or checksum byte of an earlier record: including a length that now runs past
    the end of the file, which must not pass for a torn tail (it would drop good records)."""
    # Arrange
    path, data, start, _ = middle_record(tmp_path, impl)

    for at in range(start, start + 8):
        damaged = flipped(data, at)
        path.write_bytes(damaged)

        # Act / Assert
        with pytest.raises(JournalCorrupt):
            Venue.recover(path, book=impl)
        assert path.read_bytes() == damaged, at


@pytest.mark.parametrize("content", [
    b"definitely not a journal\n",
    b"GAEMIJ2\n" + bytes(40),  # another version's magic
    b"\x00" * 64,
])
def test_a_file_that_is_not_a_journal_raises(tmp_path: Path, impl: str, content: bytes) -> None:
    # Arrange
    path = tmp_path / "j.log"
    path.write_bytes(content)

    # Act / Assert
    with pytest.raises(JournalCorrupt):
        Venue.recover(path, book=impl)
    assert path.read_bytes() == content


def test_a_journal_without_a_header_raises(tmp_path: Path, impl: str) -> None:
    # Arrange: a crash while the magic itself was written
    path = tmp_path / "j.log"
    path.write_bytes(MAGIC[:5])

    # Act / Assert
    with pytest.raises(ValueError):
        Venue.recover(path, book=impl)


# -- tails of zeros, dropped bytes kept, damage named ------------------------------------------


@pytest.mark.parametrize("zeros", [1, 7, 8, 9, 4096, 70_000])
def test_a_tail_of_zero_bytes_is_a_torn_tail(tmp_path: Path, impl: str, zeros: int,
                                             caplog: pytest.LogCaptureFixture) -> None:
    """What a power loss often leaves: the file's new size reached the disk, its data did
    not. The journal must still recover (it used to be refused as corrupt)."""
    # Arrange
    path = tmp_path / "j.log"
    venue, accepted, _ = journaled_run(path, impl, 40)
    venue.close()
    good = path.read_bytes()
    path.write_bytes(good + bytes(zeros))

    # Act
    with caplog.at_level("WARNING", logger="gaemi.recovery"):
        recovered = Venue.recover(path, book=impl)

    # Assert: every command is back, the zeros are cut off and kept aside, and said so
    assert recovered.state_hash() == venue.state_hash()
    assert recovered.seq == len(accepted)
    assert path.read_bytes() == good
    kept = path.with_name(f"j.log.torn-{len(good)}")
    assert kept.read_bytes() == bytes(zeros)
    [warning] = [r.getMessage() for r in caplog.records]
    assert f"{zeros} bytes at byte {len(good)}" in warning
    assert f"seq {len(accepted)}" in warning
    recovered.close()


def test_a_last_record_never_written_leaves_zeros_and_is_a_torn_tail(tmp_path: Path,
                                                                      impl: str) -> None:
    # Arrange: the space of the last record is there, its bytes are all zero
    path = tmp_path / "j.log"
    venue, accepted, _ = journaled_run(path, impl, 40)
    venue.close()
    data = path.read_bytes()
    start, end = frames(data)[-1]
    path.write_bytes(data[:start] + bytes(end - start))

    # Act
    recovered = Venue.recover(path, book=impl)

    # Assert
    assert recovered.state_hash() == replayed(impl, accepted[:-1]).state_hash()
    assert path.stat().st_size == start
    recovered.close()


def test_a_dropped_torn_tail_is_kept_beside_the_journal(tmp_path: Path, impl: str,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    # Arrange: a crash in the middle of the last record's payload
    path = tmp_path / "j.log"
    venue, accepted, _ = journaled_run(path, impl, 40)
    venue.close()
    data = path.read_bytes()
    start, end = frames(data)[-1]
    cut = (start + end) // 2
    path.write_bytes(data[:cut])

    # Act: recover twice with the same tail (the second file does not overwrite the first)
    with caplog.at_level("WARNING", logger="gaemi.recovery"):
        Venue.recover(path, book=impl).close()
        path.write_bytes(data[:cut])
        Venue.recover(path, book=impl).close()

    # Assert: the exact bytes, the offset, the count and the last good sequence number
    first = path.with_name(f"j.log.torn-{start}")
    second = path.with_name(f"j.log.torn-{start}-2")
    assert first.read_bytes() == second.read_bytes() == data[start:cut]
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert all(f"{cut - start} bytes at byte {start}" in m and f"seq {len(accepted) - 1}" in m
               for m in messages)


def test_zeros_before_the_tail_are_damage_and_name_their_offset(tmp_path: Path,
                                                                impl: str) -> None:
    # Arrange: a middle record zeroed out, good records after it
    path, data, start, end = middle_record(tmp_path, impl)
    damaged = data[:start] + bytes(end - start) + data[end:]
    path.write_bytes(damaged)

    # Act / Assert: refused loudly, with the byte offset, and nothing is cut
    with pytest.raises(JournalCorrupt, match=f"at byte {start}"):
        Venue.recover(path, book=impl)
    assert path.read_bytes() == damaged
    assert not list(tmp_path.glob("*.torn-*"))
