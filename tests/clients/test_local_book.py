"""The local order book's sans-I/O part: snapshots, deltas and the gap rule of
docs/protocol.md §5, driven by hand-made push sequences."""

from __future__ import annotations

import pytest

from gaemi.clients.live.book import EMPTY, RESYNCING, SYNCED, LocalBook

CH = "book.NVDA-PERP"


def snap(seq: int, bids=(), asks=()) -> dict:
    return {"ch": CH, "seq": seq, "prev": None,
            "data": {"type": "snapshot", "bids": [list(x) for x in bids],
                     "asks": [list(x) for x in asks], "ts": seq}}


def delta(seq: int, bids=(), asks=(), prev: int | None = None) -> dict:
    return {"ch": CH, "seq": seq, "prev": seq - 1 if prev is None else prev,
            "data": {"type": "delta", "bids": [list(x) for x in bids],
                     "asks": [list(x) for x in asks], "ts": seq}}


def requested(seq: int, bids=(), asks=()) -> dict:
    """A ``snapshot.book`` result."""
    return {"symbol": "NVDA-PERP", "seq": seq, "bids": [list(x) for x in bids],
            "asks": [list(x) for x in asks], "ts": seq}


def started() -> LocalBook:
    book = LocalBook("NVDA-PERP")
    assert book.feed(snap(10, bids=[(100, 5), (99, 7)], asks=[(101, 3), (103, 1)])) is False
    return book


# -- in order ----------------------------------------------------------------------------------


def test_snapshot_then_deltas_in_order_build_the_book() -> None:
    # Arrange
    book = started()

    # Act
    needs = [book.feed(delta(11, bids=[(100, 2)])),          # a level changes size
             book.feed(delta(12, asks=[(101, 0), (102, 4)])),  # best ask leaves, one joins
             book.feed(delta(13, bids=[(98, 1)]))]             # a deeper level

    # Assert
    assert needs == [False, False, False]
    assert book.state == SYNCED and book.seq == 13
    assert book.best_bid() == (100, 2)
    assert book.best_ask() == (102, 4)
    assert book.depth() == ([(100, 2), (99, 7), (98, 1)], [(102, 4), (103, 1)])
    assert book.depth(1) == ([(100, 2)], [(102, 4)])
    assert book.mid() == 101
    assert book.deltas == 3 and book.gaps == 0


def test_a_level_removed_that_the_book_never_had_is_harmless() -> None:
    # Arrange
    book = started()

    # Act
    book.feed(delta(11, bids=[(50, 0)]))

    # Assert
    assert book.depth()[0] == [(100, 5), (99, 7)]


def test_empty_sides_have_no_best_price_and_no_mid() -> None:
    # Arrange
    book = LocalBook()

    # Act
    book.feed(snap(0))
    book.feed(delta(1, bids=[(10, 1)]))

    # Assert
    assert book.best_ask() is None
    assert book.mid() is None
    assert book.best_bid() == (10, 1)


def test_deltas_before_the_first_snapshot_are_kept_until_it_arrives() -> None:
    # Arrange: a delta overtook the subscription snapshot
    book = LocalBook()

    # Act
    first = book.feed(delta(11, bids=[(100, 9)]))
    state_before = book.state
    book.feed(snap(10, bids=[(100, 5)]))

    # Assert: no snapshot request (one is on its way); the delta applied after it
    assert first is False and state_before == EMPTY
    assert book.state == SYNCED and book.seq == 11
    assert book.best_bid() == (100, 9)


# -- gaps ----------------------------------------------------------------------------------------


def test_a_gap_asks_for_a_snapshot_and_the_snapshot_completes_the_book() -> None:
    # Arrange
    book = started()

    # Act: 11 is lost; 12 and 13 arrive
    needs_12 = book.feed(delta(12, bids=[(100, 1)]))
    needs_13 = book.feed(delta(13, asks=[(101, 8)]))
    state = book.state
    needs_after = book.apply_snapshot(requested(12, bids=[(100, 1), (99, 7)],
                                                asks=[(101, 3), (103, 1)]))

    # Assert: 12 is dropped (the snapshot has it), 13 applied on top
    assert needs_12 is True
    assert state == RESYNCING and needs_13 is True
    assert needs_after is False
    assert book.state == SYNCED and book.seq == 13
    assert book.depth() == ([(100, 1), (99, 7)], [(101, 8), (103, 1)])
    assert book.gaps == 1


def test_deltas_at_or_before_the_snapshot_are_dropped_even_if_they_would_change_it() -> None:
    # Arrange
    book = started()
    book.feed(delta(12, bids=[(100, 111)]))  # a gap: 11 missing
    book.feed(delta(13, bids=[(100, 222)]))

    # Act: the snapshot is at 13: both buffered deltas are older
    book.apply_snapshot(requested(13, bids=[(100, 3)], asks=[(101, 3)]))

    # Assert
    assert book.best_bid() == (100, 3)
    assert book.seq == 13


def test_a_snapshot_older_than_the_buffer_leaves_a_hole_and_asks_again() -> None:
    # Arrange: 11 lost, 12 buffered
    book = started()
    book.feed(delta(12, bids=[(100, 1)]))

    # Act: a snapshot still at 10 (the request crossed) cannot bridge 11
    again = book.apply_snapshot(requested(10, bids=[(100, 5)], asks=[(101, 3)]))
    fixed = book.apply_snapshot(requested(11, bids=[(100, 4)], asks=[(101, 3)]))

    # Assert
    assert again is True and fixed is False
    assert book.state == SYNCED and book.seq == 12
    assert book.best_bid() == (100, 1)


def test_a_gap_right_after_the_subscription_snapshot_is_caught() -> None:
    # Arrange: deltas 11 and 13 arrive before the snapshot at 10; 12 is lost
    book = LocalBook()
    book.feed(delta(11, bids=[(100, 1)]))
    book.feed(delta(13, bids=[(100, 3)]))

    # Act
    needs = book.feed(snap(10, bids=[(100, 5)]))

    # Assert
    assert needs is True
    assert book.state == RESYNCING and book.seq == 11
    assert book.gaps == 1


# -- duplicates and order --------------------------------------------------------------------------


def test_a_duplicate_delta_is_ignored() -> None:
    # Arrange
    book = started()
    book.feed(delta(11, bids=[(100, 2)]))
    book.feed(delta(12, bids=[(100, 4)]))

    # Act: 11 again (it would take the level back to 2)
    needs = book.feed(delta(11, bids=[(100, 2)]))

    # Assert
    assert needs is False
    assert book.best_bid() == (100, 4)
    assert book.duplicates == 1 and book.gaps == 0 and book.state == SYNCED


def test_out_of_order_deltas_heal_without_a_snapshot_when_the_missing_one_arrives() -> None:
    # Arrange
    book = started()

    # Act: 12 before 11
    first = book.feed(delta(12, bids=[(100, 7)]))
    second = book.feed(delta(11, bids=[(100, 6)]))

    # Assert: 12 is applied after 11, not the other way round
    assert first is True and second is False
    assert book.state == SYNCED and book.seq == 12
    assert book.best_bid() == (100, 7)


def test_a_snapshot_older_than_a_synced_book_is_ignored() -> None:
    # Arrange: the gap healed by itself, then the requested snapshot arrives late
    book = started()
    book.feed(delta(12, bids=[(100, 7)]))
    book.feed(delta(11, bids=[(100, 6)]))

    # Act
    needs = book.apply_snapshot(requested(11, bids=[(100, 6)]))

    # Assert
    assert needs is False
    assert book.seq == 12 and book.best_bid() == (100, 7)
    assert book.best_ask() == (101, 3)


def test_a_snapshot_pushed_mid_stream_replaces_the_book() -> None:
    # Arrange: a resubscription's snapshot arrives while synced
    book = started()
    book.feed(delta(11, bids=[(100, 2)]))

    # Act
    needs = book.feed(snap(20, bids=[(90, 1)], asks=[(95, 2)]))
    after = book.feed(delta(21, asks=[(95, 0), (96, 5)]))

    # Assert: nothing of the old book is left
    assert needs is False and after is False
    assert book.depth() == ([(90, 1)], [(96, 5)])
    assert book.seq == 21 and book.snapshots == 2


def test_a_snapshot_pushed_during_a_resync_ends_it() -> None:
    # Arrange
    book = started()
    book.feed(delta(12, bids=[(100, 1)]))  # gap
    book.feed(delta(16, bids=[(100, 6)]))

    # Act
    needs = book.feed(snap(15, bids=[(100, 5)], asks=[(101, 1)]))

    # Assert: 12 dropped, 16 applied
    assert needs is False
    assert book.state == SYNCED and book.seq == 16 and book.best_bid() == (100, 6)


@pytest.mark.parametrize("lost", [11, 12, 13, 14])
def test_any_single_lost_delta_ends_equal_to_the_full_stream(lost: int) -> None:
    # Arrange: the reference book sees every delta
    deltas = [delta(11, bids=[(100, 1)]), delta(12, asks=[(101, 0), (102, 2)]),
              delta(13, bids=[(99, 0)]), delta(14, bids=[(98, 4)], asks=[(104, 1)]),
              delta(15, asks=[(102, 9)])]
    full = started()
    for d in deltas:
        full.feed(d)
    book = started()

    # Act: one delta lost; the snapshot is taken at 14 (the server's state then)
    reference = started()
    for d in deltas[:4]:
        reference.feed(d)
    for d in deltas:
        if d["seq"] != lost:
            book.feed(d)
    bids, asks = reference.depth()
    book.apply_snapshot(requested(14, bids=bids, asks=asks))

    # Assert
    assert book.depth() == full.depth()
    assert book.seq == 15 and book.state == SYNCED
