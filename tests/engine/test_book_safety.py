"""Bad batches, oversized queries and re-entry: a clear error and nothing changes."""

from __future__ import annotations

import gc
from array import array

import pytest

from gaemi.engine.codes import Side
from gaemi.engine.events import encode_place


def _resting_book(make_book):
    book = make_book()
    book.place(1, Side.SELL, 101, 5)
    book.place(2, Side.BUY, 99, 5)
    return book


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (array("d", [1.0] * 9), TypeError),  # floats
        (array("i", [1] * 18), TypeError),  # 4-byte ints
        (memoryview(array("q", [1, 7, 1, 100, 3, 1, 0, 0, 0] * 2))[::2], TypeError),  # strided
        (b"\x00" * 12, ValueError),  # not whole int64s
        (array("q", [1, 7, 1, 100, 3]), ValueError),  # not whole rows
        ([1, 7, 1, 100, 3, 1, 0, 0, 0, 1, 8, -1, 99.5, 3, 1, 0, 0, 0], TypeError),  # a float
        ([1, 7, 1, 100, 3, 1, 0, 0, 0, 1, 8, -1, None, 3, 1, 0, 0, 0], TypeError),  # a None
        ([1, 7, 1, 100, 3, 1, 0, 0, 2**63], OverflowError),  # beyond int64
    ],
)
def test_apply_batch_malformed_buffer_raises_before_any_row_runs(make_book, bad, error) -> None:
    # Arrange
    book = _resting_book(make_book)
    before = book.state_hash()

    # Act / Assert
    with pytest.raises(error):
        book.apply_batch(bad)
    assert book.state_hash() == before
    book.check_invariants()


def test_apply_batch_accepts_list_bytes_and_array_alike(make_book) -> None:
    # Arrange
    rows: array[int] = array("q")
    encode_place(rows, 7, Side.BUY, 101, 2)
    results = []

    # Act
    for batch in (rows, rows.tobytes(), rows.tolist(), memoryview(rows)):
        book = _resting_book(make_book)
        results.append((list(book.apply_batch(batch)), book.state_hash()))

    # Assert
    assert all(r == results[0] for r in results)
    assert results[0][0][1] == 1  # the first event is ACCEPTED


def test_depth_beyond_int64_returns_every_level(make_book) -> None:
    book = _resting_book(make_book)
    assert book.depth(2**63) == ([(99, 5)], [(101, 5)])
    assert book.depth(-1) == ([], [])


def test_command_from_a_finalizer_during_a_query_is_refused_and_changes_nothing(
        impl, make_book) -> None:
    # the pure book is memory-safe by construction; the compiled one walks C structs and
    # must not let Python code (here a finalizer run by the collector) change them mid-walk
    if impl == "reference":
        pytest.skip("a concern of the compiled book's C structures only")
    # Arrange: a garbage cycle whose finalizer tries to trade while the book builds a result
    book = make_book()
    for i in range(1, 60):
        book.place(i, Side.BUY, 100, 1)
    refused: list[BaseException] = []
    ran: list[bool] = []

    class Meddler:
        def __init__(self) -> None:
            self.me = self  # only the cyclic collector frees it

        def __del__(self) -> None:
            ran.append(True)
            try:
                for k in range(10**6, 10**6 + 500):
                    book.place(k, Side.BUY, 50, 1)
                for k in range(1, 60):
                    book.cancel(k)
            except RuntimeError as exc:
                refused.append(exc)

    threshold = gc.get_threshold()
    gc.set_threshold(1)
    try:
        Meddler()
        # Act
        level = book.orders_at(Side.BUY, 100)
        snapshot = book.snapshot()
    finally:
        gc.set_threshold(*threshold)
        gc.collect()

    # Assert: the finalizer ran; whatever it managed, the query saw only real orders
    assert ran
    assert all(o.price == 100 and o.qty == 1 and 1 <= o.order_id < 60 for o in level)
    assert all(o.qty > 0 for side in snapshot for o in side)
    book.check_invariants()
