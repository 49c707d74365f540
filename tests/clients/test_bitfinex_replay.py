"""The Bitfinex raw (L3) book feed driven order by order through an engine book, checked
against the feed's own ground truth; the negative controls show that each check can fail."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gaemi.clients.replay.bitfinex import (
    GRID,
    FeedError,
    RawOrder,
    read_feed,
    replay,
    sample_file,
)
from gaemi.clients.replay.rescale import Rescale
from gaemi.engine.codes import Side
from tests.conftest import book_class

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "nautilus-test-data"
FULL = SHARED / "bitfinex_tBTCUSD_raw_book_L3_feed.json.gz"


@pytest.fixture(scope="module")
def sample():
    return read_feed(sample_file())


# -- the reader ------------------------------------------------------------------------------------


def test_reader_sample_has_the_documented_shape(sample) -> None:
    # Assert: clients/replay/data/bitfinex/README.md
    assert sample.channel_id == 8047 and sample.length == 25
    assert sample.subscribed["symbol"] == "tBTCUSD" and sample.subscribed["prec"] == "R0"
    assert len(sample.snapshot) == 50 and len(sample.updates) == 39_997
    assert sample.snapshot[0] == RawOrder(2, 60_504_777_678, Decimal(60945), Decimal("0.246386"))
    assert sample.updates[0] == RawOrder(3, 60_504_617_884, Decimal(60977),
                                         Decimal("-0.00212042"))
    assert sample.updates[2].is_delete and sample.updates[2].side == Side.BUY
    assert sample.updates[-1].index == 39_999
    # exact decimals, never floats
    assert all(isinstance(o.price, Decimal) and isinstance(o.amount, Decimal)
               for o in sample.snapshot + sample.updates)


def _write(tmp_path: Path, elements: list[Any]) -> Path:
    path = tmp_path / "feed.json"
    path.write_text(json.dumps(elements))
    return path


SUBSCRIBED = {"event": "subscribed", "channel": "book", "chanId": 7, "symbol": "tBTCUSD",
              "prec": "R0", "freq": "F0", "len": "25"}


@pytest.mark.parametrize(("bad", "why"), [
    ([8, [1, 100, 1]], "not subscribed"),
    ([7, [1, 100]], "an order is"),
    ([7, [1, 0, 2]], "not an order event"),
    ([7, [0, 100, 1]], "order id"),
    ([7, [1, "100", 1]], "price"),
    ([7, [1, 100, 0]], "not an order event"),
])
def test_reader_names_the_element_it_cannot_read(tmp_path: Path, bad, why: str) -> None:
    # Arrange: info, subscribed, snapshot, one good update, then the bad one (index 4)
    path = _write(tmp_path, [{"event": "info"}, SUBSCRIBED, [7, [[1, 100, 1], [2, 101, -1]]],
                             [7, "hb"], bad])

    # Act / Assert
    with pytest.raises(FeedError, match=why) as caught:
        read_feed(path)
    assert caught.value.index == 4


def test_reader_skips_heartbeats_and_reads_exact_decimals(tmp_path: Path) -> None:
    path = tmp_path / "feed.json"
    path.write_text('[{"event": "info"}, ' + json.dumps(SUBSCRIBED) +
                    ', [7, [[1, 100.10, 0.3]]], [7, "hb"], [7, [1, 0, 1]]]')
    feed = read_feed(path)
    assert feed.snapshot == (RawOrder(2, 1, Decimal("100.10"), Decimal("0.3")),)
    assert feed.updates == (RawOrder(4, 1, Decimal(0), Decimal(1)),)


# -- the replay ------------------------------------------------------------------------------------


def test_sample_replays_with_no_defect(sample, impl) -> None:
    # Act
    report = replay(sample, book_class(impl)())

    # Assert: the feed's ground truth, measured (docs/replay.md)
    assert (report.snapshot_bids, report.snapshot_asks) == (25, 25)
    assert report.snapshot_sorted and report.snapshot_book_equal
    assert report.events == {"add": 14_474, "delete": 14_475, "update price": 5_321,
                             "update price and size": 5_314, "update size": 413}
    assert report.deletes_unknown == report.delete_side_flag_wrong == report.side_flips == 0
    assert report.max_per_side == (25, 25) and report.over_length == 0
    # the one crossed episode of the slice: 6 states, one order held out of the engine
    assert report.crossed_indices == list(range(33_249, 33_255))
    assert (report.held_on_arrival, report.max_held) == (1, 1)
    assert report.full_checks == 40 and report.full_check_failures == 0
    assert report.count_mismatches == report.order_mismatches == report.engine_fills == 0
    assert report.engine_rejections == {}
    assert (report.prices_distinct, report.prices_rounded, report.tick_collisions) == (
        861, 349, 0)
    assert report.sizes_rounded == 12_032 and report.updates_lost_to_grid == 3
    assert report.final_orders == 49 and report.defects == 0
    assert f"{report.final_state_hash:016x}" == "3516b95376f8349e"  # equal on both books


def test_real_feed_replays_with_no_defect() -> None:
    # Arrange
    if not FULL.exists():
        pytest.skip(f"{FULL} is not here (the shared data folder is optional)")
    feed = read_feed(FULL)

    # Act
    report = replay(feed, book_class("auto")())

    # Assert: the figures of the data's README, and the replay's own
    assert len(feed.updates) == 99_998
    assert report.events["delete"] == 37_021 and report.deletes_unknown == 0
    assert report.events.total() - report.events["delete"] == 62_977
    assert report.events == {"add": 37_009, "delete": 37_021, "update price": 13_037,
                             "update price and size": 11_870, "update size": 1_061}
    assert report.crossed_states == 21
    assert report.crossed_indices == list(range(33_249, 33_255)) + list(range(61_965, 61_980))
    assert (report.held_on_arrival, report.max_held) == (2, 1)
    assert report.final_orders == 38 and report.defects == 0
    assert (report.prices_distinct, report.prices_rounded, report.tick_collisions) == (
        1_777, 714, 0)
    assert report.sizes_rounded == 28_415 and report.updates_lost_to_grid == 6
    assert report.full_checks == 100 and report.full_check_failures == 0
    assert f"{report.final_state_hash:016x}" == "5dccb75ae39da031"


# -- negative controls -----------------------------------------------------------------------------


def _prefix(feed, n: int):
    return replace(feed, updates=feed.updates[:n])


def test_a_lost_add_shows_up_as_an_unknown_delete(sample) -> None:
    # Arrange: drop the add of the first order whose only events are that add and a delete
    feed = _prefix(sample, 3_000)
    events: dict[int, list[int]] = {}
    for i, o in enumerate(feed.updates):
        events.setdefault(o.order_id, []).append(i)
    drop = next(v[0] for k, v in events.items() if len(v) == 2
                and not feed.updates[v[0]].is_delete and feed.updates[v[1]].is_delete
                and k not in {o.order_id for o in feed.snapshot})
    tampered = replace(feed, updates=feed.updates[:drop] + feed.updates[drop + 1:])

    # Act
    report = replay(tampered, book_class("auto")())

    # Assert
    assert report.deletes_unknown == 1 and report.defects == 1


def test_a_wrong_side_flag_on_a_delete_is_caught(sample) -> None:
    feed = _prefix(sample, 2_000)
    i = next(i for i, o in enumerate(feed.updates) if o.is_delete)
    flipped = replace(feed.updates[i], amount=-feed.updates[i].amount)
    tampered = replace(feed, updates=feed.updates[:i] + (flipped,) + feed.updates[i + 1:])
    report = replay(tampered, book_class("auto")())
    assert report.delete_side_flag_wrong == 1 and report.defects == 1


def test_a_grid_that_merges_prices_is_reported(sample) -> None:
    report = replay(_prefix(sample, 2_000), book_class("auto")(),
                    grid=Rescale(tick=1, lot=GRID.lot))
    assert report.tick_collisions > 0 and report.defects >= report.tick_collisions


class _ForgetfulBook:
    """An engine book that silently drops every 500th cancel: the checks must notice."""

    def __init__(self, book: Any) -> None:
        self._book = book
        self._cancels = 0

    def cancel(self, order_id: int) -> list[Any]:
        self._cancels += 1
        if self._cancels % 500 == 0:
            return [type("E", (), {"kind": 4})()]  # looks like CANCELED, changes nothing
        return self._book.cancel(order_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._book, name)

    def __len__(self) -> int:
        return len(self._book)


def test_a_book_that_loses_cancels_fails_the_checks(sample) -> None:
    report = replay(_prefix(sample, 5_000), _ForgetfulBook(book_class("auto")()))
    assert report.count_mismatches > 100
    assert report.full_check_failures >= 1
    assert report.defects > 0


def test_a_shuffled_snapshot_is_not_sorted(sample) -> None:
    feed = replace(sample, snapshot=sample.snapshot[25:] + sample.snapshot[:25],
                   updates=sample.updates[:10])
    report = replay(feed, book_class("auto")())
    assert not report.snapshot_sorted and report.snapshot_book_equal
    assert report.defects == 1


def test_a_crossing_order_is_held_until_the_book_uncrosses(tmp_path: Path, impl) -> None:
    # Arrange: bid 100 / ask 101; a bid arrives at 102 before the ask it crosses leaves
    path = _write(tmp_path, [SUBSCRIBED, [7, [[1, 100, 1], [2, 101, -0.5]]],
                             [7, [3, 102, 0.25]],  # crosses: held, the file's book is crossed
                             [7, [3, 102, 0.2]],  # an update of the held order
                             [7, [2, 0, -1]],  # the crossed ask leaves: the bid can rest
                             [7, [1, 0, 1]]])
    book = book_class(impl)()

    # Act
    report = replay(read_feed(path), book)

    # Assert
    assert report.crossed_indices == [2, 3] and report.held_on_arrival == 1
    assert report.defects == 0 and report.engine_fills == 0
    assert book.depth(5) == ([(GRID.ticks(102), GRID.lots(Decimal("0.2")))], [])
    assert [o.order_id for o in book.snapshot()[0]] == [3]
