"""The LOBSTER reader and the real-day replay, checked against the files' own ground truth.

The thresholds below are the replay's measured results (docs/replay.md explains every class
of difference that remains); the negative controls show that the checks can fail.
"""

from __future__ import annotations

import gzip
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from gaemi.clients.replay.lobster import (
    BookRow,
    Message,
    read_messages,
    read_orderbook,
    replay,
    sample_files,
)
from tests.conftest import book_class

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "lobster-samples"


@pytest.fixture(scope="module")
def amzn() -> tuple[list[Message], list[BookRow], int]:
    message_file, orderbook_file, levels = sample_files("AMZN")
    return list(read_messages(message_file)), list(read_orderbook(orderbook_file)), levels


@pytest.fixture(scope="module")
def aapl() -> tuple[list[Message], list[BookRow], int]:
    message_file, orderbook_file, levels = sample_files("AAPL")
    return list(read_messages(message_file)), list(read_orderbook(orderbook_file)), levels


# -- the reader ------------------------------------------------------------------------------


def test_reader_amzn_day_has_the_documented_rows_and_types(amzn) -> None:
    # Arrange
    messages, rows, levels = amzn

    # Act
    types = Counter(m.type for m in messages)

    # Assert: the counts the data README gives
    assert levels == 1
    assert len(messages) == len(rows) == 57_515
    assert types == {1: 27_845, 2: 16, 3: 18_235, 4: 8_974, 5: 2_445}
    assert messages[0] == Message(34_200_017_459_617, 5, 0, 1, 2_238_200, -1)
    assert rows[0] == BookRow(bids=((2_231_800, 100),), asks=((2_239_500, 100),))
    assert messages[-1].time_ns == 57_599_959_359_650  # "57599.95935965", exact


def test_reader_aapl_level_10_rows_have_ten_levels_per_side(aapl) -> None:
    messages, rows, levels = aapl
    assert levels == 10
    assert len(messages) == len(rows) == 999
    assert Counter(m.type for m in messages) == {1: 471, 3: 369, 4: 98, 5: 61}
    assert all(len(r.bids) == 10 and len(r.asks) == 10 for r in rows)
    assert all(r.bids[0][0] < r.asks[0][0] for r in rows)


def test_reader_time_is_parsed_exactly_without_floats(tmp_path: Path) -> None:
    # Arrange
    path = tmp_path / "x_message_1.csv"
    path.write_text("34200.1,1,7,10,1000000,1\n34200.123456789,3,7,10,1000000,1\n")

    # Act
    times = [m.time_ns for m in read_messages(path)]

    # Assert
    assert times == [34_200_100_000_000, 34_200_123_456_789]


def test_reader_empty_levels_are_dropped(tmp_path: Path) -> None:
    path = tmp_path / "x_orderbook_1.csv.gz"
    with gzip.open(path, "wt") as f:
        f.write("9999999999,0,1000000,5\n")
    assert list(read_orderbook(path)) == [BookRow(bids=((1_000_000, 5),), asks=())]


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared is not beside this checkout")
def test_reader_shipped_copies_equal_the_shared_data() -> None:
    # the package carries the real files unchanged
    for name in ("AMZN", "AAPL"):
        for shipped in sample_files(name)[:2]:
            assert shipped.read_bytes() == (SHARED / shipped.name).read_bytes()


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared is not beside this checkout")
def test_reader_reads_the_shared_files_too() -> None:
    message_file, orderbook_file, levels = sample_files(str(SHARED / "AAPL"))
    assert levels == 10
    assert sum(1 for _ in read_messages(message_file)) == 999
    assert sum(1 for _ in read_orderbook(orderbook_file)) == 999


# -- the replay against the file's ground truth ----------------------------------------------


def test_replay_aapl_level_10_reproduces_every_row_and_execution(impl, aapl) -> None:
    # Arrange
    messages, rows, levels = aapl
    book = book_class(impl)()

    # Act
    report = replay(messages, rows, book, levels)

    # Assert: with ten levels visible the file leaves nothing to guess at the touch
    book.check_invariants()
    assert report.rows_unexplained == 0 and report.rows_after_data_limit == 0
    assert report.rows_equal + report.rows_beyond_window == 999
    assert report.rows_equal >= 985
    assert report.executions == 98
    assert report.executions_hit_named == 98
    assert report.executions_requeued == 0
    assert report.defects == {}


def test_replay_amzn_full_day_matches_the_file(impl, amzn) -> None:
    # Arrange
    messages, rows, levels = amzn
    book = book_class(impl)()

    # Act
    report = replay(messages, rows, book, levels)
    print(report.summary())

    # Assert: golden figures of the real day (docs/replay.md explains each class; a change
    # here is a change of behaviour and must be explained there)
    book.check_invariants()
    assert report.rows_compared == 57_515
    assert report.rows_unexplained == 0
    assert report.rows_equal == 49_312
    assert report.rows_beyond_window == 8_148
    assert report.rows_after_data_limit == 55
    assert report.executions == 8_974
    assert report.execution_hit_fraction == 1.0
    # price-time priority, plainly: a known named order already heads its queue
    assert report.executions_named_known == 5_710
    assert report.executions_requeued == 89
    # the only unexplained class: a few executions where an order never hidden stood ahead
    assert report.defects == {"a certain order stood ahead of the named one": 4}
    assert f"{report.final_state_hash:016x}" == "81ec71117a624f30"


def test_replay_recorded_commands_rerun_in_one_batch_to_the_same_state(impl, amzn) -> None:
    # Arrange
    messages, rows, levels = amzn
    report = replay(messages, rows, book_class("reference")(), levels)
    book = book_class(impl)()

    # Act
    events = book.apply_batch(report.commands)

    # Assert
    assert book.state_hash() == report.final_state_hash
    assert len(events) > 0
    book.check_invariants()


# -- negative controls: the checks can fail --------------------------------------------------


def test_replay_detects_a_corrupted_book_row(impl, aapl) -> None:
    # Arrange: one shown size off by one share, deep in the file
    messages, rows, levels = aapl
    bad = list(rows)
    row = bad[500]
    bad[500] = BookRow(((row.bids[0][0], row.bids[0][1] + 1), *row.bids[1:]), row.asks)

    # Act
    report = replay(messages, bad, book_class(impl)(), levels)

    # Assert
    assert report.rows_unexplained >= 1


def test_replay_detects_an_execution_against_the_wrong_order(impl, aapl) -> None:
    # Arrange: an execution that names an order which is in the book but not at the head
    messages, rows, levels = aapl
    bad = list(messages)
    live: dict[int, Message] = {}
    target = None
    for i, m in enumerate(messages):
        if m.type == 1:
            live[m.order_id] = m
        elif m.type in (2, 3):
            live.pop(m.order_id, None)
        elif m.type == 4 and target is None:
            # another live order at the same price, placed after the named one
            later = [o for o in live.values() if o.price == m.price and o.order_id > m.order_id
                     and o.direction == m.direction]
            if later:
                target = i
                bad[i] = replace(m, order_id=later[0].order_id)
    assert target is not None

    # Act
    report = replay(bad, rows, book_class(impl)(), levels)

    # Assert
    assert report.defects.get("a certain order stood ahead of the named one", 0) >= 1


class _DropsEveryNthCancel:
    """A real book with one fault injected: every n-th cancel is silently lost."""

    def __init__(self, book, n: int) -> None:
        self._book, self._n, self._count = book, n, 0

    def cancel(self, order_id):
        self._count += 1
        if self._count % self._n == 0:
            return []
        return self._book.cancel(order_id)

    def __getattr__(self, name):
        return getattr(self._book, name)


def test_replay_detects_lost_cancels(impl, amzn) -> None:
    # Arrange
    messages, rows, levels = amzn
    faulty = _DropsEveryNthCancel(book_class(impl)(), 25)

    # Act
    report = replay(messages[:20_000], rows[:20_000], faulty, levels)

    # Assert: a book that fails to clear the touch is not excused as a data limit
    assert report.rows_unexplained > 100
