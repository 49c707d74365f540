"""Rule-by-rule unit tests of the order book (docs/engine.md is the specification).

Every test takes ``make_book`` so it runs on each implementation (the reference book and,
once built, the compiled one). Expected events are written out by hand as
``engine.events.Event`` objects; equality is by value across implementations.

The helpers ``place``/``cancel``/``amend`` call the book and then ``check_invariants()``, so
the invariants are checked after every command a test runs.
"""

from __future__ import annotations

import hashlib
from array import array
from enum import IntEnum
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gaemi.engine.codes import (
    MAX_ACCOUNT,
    MAX_ORDER_ID,
    MAX_PRICE,
    MAX_QTY,
    EventKind,
    RejectReason,
    SelfTradePrevention,
    Side,
    TimeInForce,
)
from gaemi.engine.events import (
    EVENT_WIDTH,
    Event,
    OrderView,
    decode_events,
    encode_amend,
    encode_cancel,
    encode_place,
)

BUY, SELL = Side.BUY, Side.SELL
GTC, IOC, FOK = TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK
STP = SelfTradePrevention
R = RejectReason
STP_REASON = RejectReason.SELF_TRADE_PREVENTED


# -- event builders ---------------------------------------------------------------------


def accepted(order_id: int, price: int, qty: int) -> Event:
    return Event(EventKind.ACCEPTED, order_id, price, qty)


def rejected(order_id: int, reason: RejectReason) -> Event:
    return Event(EventKind.REJECTED, order_id, reason=reason)


def fill(taker: int, price: int, qty: int, maker: int, maker_remaining: int) -> Event:
    return Event(EventKind.FILL, taker, price, qty, maker, maker_remaining)


def canceled(order_id: int, price: int, qty: int, reason: RejectReason = R.NONE) -> Event:
    return Event(EventKind.CANCELED, order_id, price, qty, reason=reason)


def expired(order_id: int, price: int, qty: int, reason: RejectReason = R.NONE) -> Event:
    return Event(EventKind.EXPIRED, order_id, price, qty, reason=reason)


def amended(order_id: int, price: int, qty: int, reason: RejectReason = R.NONE) -> Event:
    return Event(EventKind.AMENDED, order_id, price, qty, reason=reason)


# -- commands that check the invariants after themselves ---------------------------------


def place(book: Any, *args: Any, **kwargs: Any) -> list[Any]:
    events = book.place(*args, **kwargs)
    book.check_invariants()
    return list(events)


def cancel(book: Any, order_id: Any) -> list[Any]:
    events = book.cancel(order_id)
    book.check_invariants()
    return list(events)


def amend(book: Any, order_id: Any, **kwargs: Any) -> list[Any]:
    events = book.amend(order_id, **kwargs)
    book.check_invariants()
    return list(events)


def view(order_id: int, side: Side, price: int, qty: int, account: int = 0) -> OrderView:
    return OrderView(order_id, side, price, qty, account)


def ids(orders: list[Any]) -> list[int]:
    return [o.order_id for o in orders]


def fresh(make_book: Any) -> Any:
    book = make_book()
    book.check_invariants()
    return book


class Index:
    """Not an int, but has ``__index__``: the docs say such arguments are accepted."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __index__(self) -> int:
        return self.value


class Code(IntEnum):
    ONE = 1
    HUNDRED = 100


# =======================================================================================
# Price-time priority
# =======================================================================================


def test_place_limit_crossing_spread_fills_at_resting_price(make_book):
    # Arrange
    book = fresh(make_book)
    place(book, 1, SELL, 100, 5)
    # Act
    events = place(book, 2, BUY, 105, 3)
    # Assert
    assert events == [accepted(2, 105, 3), fill(2, 100, 3, 1, 2)]
    assert book.order(1) == view(1, SELL, 100, 2)
    assert book.order(2) is None
    assert len(book) == 1


def test_place_sell_crossing_spread_fills_at_resting_bid_price(make_book):
    # Arrange
    book = fresh(make_book)
    place(book, 1, BUY, 105, 5)
    # Act
    events = place(book, 2, SELL, 100, 5)
    # Assert
    assert events == [accepted(2, 100, 5), fill(2, 105, 5, 1, 0)]
    assert len(book) == 0


def test_place_buy_across_levels_fills_better_prices_first(make_book):
    # Arrange: asks arrive worst-first-ish so arrival order and price order differ
    book = fresh(make_book)
    place(book, 1, SELL, 102, 2)
    place(book, 2, SELL, 100, 2)
    place(book, 3, SELL, 101, 2)
    # Act
    events = place(book, 4, BUY, 102, 6)
    # Assert
    assert events == [
        accepted(4, 102, 6),
        fill(4, 100, 2, 2, 0),
        fill(4, 101, 2, 3, 0),
        fill(4, 102, 2, 1, 0),
    ]
    assert len(book) == 0


def test_place_sell_across_levels_fills_higher_bids_first(make_book):
    # Arrange
    book = fresh(make_book)
    place(book, 1, BUY, 99, 1)
    place(book, 2, BUY, 101, 1)
    place(book, 3, BUY, 100, 1)
    # Act
    events = place(book, 4, SELL, 99, 3)
    # Assert
    assert events == [
        accepted(4, 99, 3),
        fill(4, 101, 1, 2, 0),
        fill(4, 100, 1, 3, 0),
        fill(4, 99, 1, 1, 0),
    ]
    assert len(book) == 0


def test_place_same_level_fills_makers_in_arrival_order(make_book):
    # Arrange
    book = fresh(make_book)
    for order_id in (1, 2, 3):
        place(book, order_id, SELL, 100, 2)
    # Act
    events = place(book, 4, BUY, 100, 5)
    # Assert
    assert events == [
        accepted(4, 100, 5),
        fill(4, 100, 2, 1, 0),
        fill(4, 100, 2, 2, 0),
        fill(4, 100, 1, 3, 1),
    ]
    assert book.snapshot() == ([], [view(3, SELL, 100, 1)])


def test_place_partial_fill_keeps_maker_at_head_of_queue(make_book):
    # Arrange
    book = fresh(make_book)
    place(book, 1, SELL, 100, 5)
    place(book, 2, SELL, 100, 5)
    first = place(book, 3, BUY, 100, 3)
    assert first == [accepted(3, 100, 3), fill(3, 100, 3, 1, 2)]
    # Act
    events = place(book, 4, BUY, 100, 4)
    # Assert: the partly filled maker 1 is still met first
    assert events == [accepted(4, 100, 4), fill(4, 100, 2, 1, 0), fill(4, 100, 2, 2, 3)]
    assert book.snapshot() == ([], [view(2, SELL, 100, 3)])


def test_place_limit_not_reaching_best_price_rests_without_trading(make_book):
    # Arrange
    book = fresh(make_book)
    place(book, 1, SELL, 101, 5)
    # Act
    events = place(book, 2, BUY, 100, 5)
    # Assert
    assert events == [accepted(2, 100, 5)]
    assert (book.best_bid(), book.best_ask()) == (100, 101)
    assert len(book) == 2


# =======================================================================================
# Time in force and market orders
# =======================================================================================


def test_place_gtc_on_empty_book_rests(make_book):
    # Arrange
    book = fresh(make_book)
    # Act
    events = place(book, 1, BUY, 100, 5, tif=GTC, account=9)
    # Assert
    assert events == [accepted(1, 100, 5)]
    assert book.order(1) == view(1, BUY, 100, 5, 9)
    assert book.best_bid() == 100
    assert len(book) == 1


def test_place_gtc_partially_filled_rests_remainder_at_its_limit(make_book):
    # Arrange
    book = fresh(make_book)
    place(book, 1, SELL, 100, 5)
    # Act
    events = place(book, 2, BUY, 101, 8)
    # Assert
    assert events == [accepted(2, 101, 8), fill(2, 100, 5, 1, 0)]
    assert book.order(2) == view(2, BUY, 101, 3)
    assert (book.best_bid(), book.best_ask()) == (101, None)


def test_place_ioc_partially_fillable_expires_remainder(make_book):
    # Arrange
    book = fresh(make_book)
    place(book, 1, SELL, 100, 3)
    place(book, 2, SELL, 101, 3)
    place(book, 3, SELL, 102, 3)
    # Act
    events = place(book, 4, BUY, 101, 10, tif=IOC)
    # Assert
    assert events == [
        accepted(4, 101, 10),
        fill(4, 100, 3, 1, 0),
        fill(4, 101, 3, 2, 0),
        expired(4, 101, 4),
    ]
    assert book.order(4) is None
    assert book.snapshot() == ([], [view(3, SELL, 102, 3)])


def test_place_ioc_not_crossing_expires_whole_size_and_never_rests(make_book):
    # Arrange
    book = fresh(make_book)
    place(book, 1, SELL, 101, 3)
    # Act
    events = place(book, 2, BUY, 100, 5, tif=IOC)
    # Assert
    assert events == [accepted(2, 100, 5), expired(2, 100, 5)]
    assert book.order(2) is None
    assert book.best_bid() is None
    assert len(book) == 1


def test_place_ioc_fully_filled_has_no_expired_event(make_book):
    # Arrange
    book = fresh(make_book)
    place(book, 1, SELL, 100, 5)
    # Act
    events = place(book, 2, BUY, 100, 5, tif=IOC)
    # Assert
    assert events == [accepted(2, 100, 5), fill(2, 100, 5, 1, 0)]
    assert len(book) == 0


def _three_ask_levels(book: Any) -> None:
    place(book, 1, SELL, 100, 2)
    place(book, 2, SELL, 101, 3)
    place(book, 3, SELL, 102, 4)


def test_place_fok_exactly_fillable_across_levels_fills_completely(make_book):
    # Arrange
    book = fresh(make_book)
    _three_ask_levels(book)
    # Act
    events = place(book, 4, BUY, 102, 9, tif=FOK)
    # Assert: no EXPIRED, every level taken
    assert events == [
        accepted(4, 102, 9),
        fill(4, 100, 2, 1, 0),
        fill(4, 101, 3, 2, 0),
        fill(4, 102, 4, 3, 0),
    ]
    assert len(book) == 0


def test_place_fok_fillable_with_partial_last_maker_fills_completely(make_book):
    # Arrange
    book = fresh(make_book)
    place(book, 1, BUY, 100, 5)
    place(book, 2, BUY, 99, 5)
    # Act
    events = place(book, 3, SELL, 99, 7, tif=FOK)
    # Assert
    assert events == [accepted(3, 99, 7), fill(3, 100, 5, 1, 0), fill(3, 99, 2, 2, 3)]
    assert book.snapshot() == ([view(2, BUY, 99, 3)], [])


def test_place_fok_one_lot_short_expires_only_and_book_unchanged(make_book):
    # Arrange
    book = fresh(make_book)
    _three_ask_levels(book)
    before = book.state_hash()
    # Act
    events = place(book, 4, BUY, 102, 10, tif=FOK)
    # Assert
    assert events == [expired(4, 102, 10, R.FOK_NOT_FILLABLE)]
    assert book.state_hash() == before
    assert len(book) == 3


def test_place_fok_liquidity_beyond_limit_not_counted_expires(make_book):
    # Arrange
    book = fresh(make_book)
    _three_ask_levels(book)
    before = book.state_hash()
    # Act: 5 lots at or under 101, 4 more at 102 are out of reach
    events = place(book, 4, BUY, 101, 6, tif=FOK)
    # Assert
    assert events == [expired(4, 101, 6, R.FOK_NOT_FILLABLE)]
    assert book.state_hash() == before


def test_place_fok_on_empty_book_expires_not_fillable(make_book):
    # Arrange
    book = fresh(make_book)
    # Act
    events = place(book, 1, SELL, 100, 1, tif=FOK)
    # Assert
    assert events == [expired(1, 100, 1, R.FOK_NOT_FILLABLE)]
    assert len(book) == 0


def test_place_fok_market_fillable_fills_at_any_price(make_book):
    # Arrange
    book = fresh(make_book)
    place(book, 1, SELL, 100, 2)
    place(book, 2, SELL, 200, 3)
    # Act
    events = place(book, 3, BUY, None, 5, tif=FOK)
    # Assert
    assert events == [accepted(3, 0, 5), fill(3, 100, 2, 1, 0), fill(3, 200, 3, 2, 0)]
    assert len(book) == 0


def test_place_fok_market_not_fillable_expires_with_price_zero(make_book):
    # Arrange
    book = fresh(make_book)
    place(book, 1, SELL, 100, 2)
    place(book, 2, SELL, 200, 3)
    before = book.state_hash()
    # Act
    events = place(book, 3, BUY, None, 6, tif=FOK)
    # Assert
    assert events == [expired(3, 0, 6, R.FOK_NOT_FILLABLE)]
    assert book.state_hash() == before


@pytest.mark.parametrize("tif", [GTC, IOC], ids=["GTC", "IOC"])
def test_place_market_buy_takes_every_level_and_expires_rest(make_book, tif):
    # Arrange
    book = fresh(make_book)
    place(book, 1, SELL, 100, 2)
    place(book, 2, SELL, 105, 3)
    # Act
    events = place(book, 3, BUY, None, 7, tif=tif)
    # Assert: never rests, whatever the tif
    assert events == [
        accepted(3, 0, 7),
        fill(3, 100, 2, 1, 0),
        fill(3, 105, 3, 2, 0),
        expired(3, 0, 2),
    ]
    assert book.order(3) is None
    assert len(book) == 0
    assert (book.best_bid(), book.best_ask()) == (None, None)


def test_place_market_sell_takes_highest_bids_first(make_book):
    # Arrange
    book = fresh(make_book)
    place(book, 1, BUY, 90, 4)
    place(book, 2, BUY, 95, 1)
    # Act
    events = place(book, 3, SELL, None, 3)
    # Assert: fully filled, no EXPIRED
    assert events == [accepted(3, 0, 3), fill(3, 95, 1, 2, 0), fill(3, 90, 2, 1, 2)]
    assert book.snapshot() == ([view(1, BUY, 90, 2)], [])


@pytest.mark.parametrize("tif", [GTC, IOC], ids=["GTC", "IOC"])
def test_place_market_on_empty_book_expires_whole_size(make_book, tif):
    # Arrange
    book = fresh(make_book)
    # Act
    events = place(book, 1, BUY, None, 5, tif=tif)
    # Assert
    assert events == [accepted(1, 0, 5), expired(1, 0, 5)]
    assert len(book) == 0
    assert book.order(1) is None


# =======================================================================================
# Post-only
# =======================================================================================


def test_place_post_only_buy_that_would_take_rejected_book_unchanged(make_book):
    # Arrange
    book = fresh(make_book)
    place(book, 1, SELL, 100, 5)
    before = book.state_hash()
    # Act
    events = place(book, 2, BUY, 100, 3, post_only=True)
    # Assert
    assert events == [rejected(2, R.POST_ONLY_WOULD_CROSS)]
    assert book.state_hash() == before
    assert book.order(2) is None


def test_place_post_only_sell_that_would_take_rejected_book_unchanged(make_book):
    # Arrange
    book = fresh(make_book)
    place(book, 1, BUY, 100, 5)
    before = book.state_hash()
    # Act
    events = place(book, 2, SELL, 99, 3, post_only=True)
    # Assert
    assert events == [rejected(2, R.POST_ONLY_WOULD_CROSS)]
    assert book.state_hash() == before


def test_place_post_only_not_crossing_rests(make_book):
    # Arrange
    book = fresh(make_book)
    place(book, 1, SELL, 100, 5)
    # Act
    events = place(book, 2, BUY, 99, 3, post_only=True)
    # Assert
    assert events == [accepted(2, 99, 3)]
    assert book.order(2) == view(2, BUY, 99, 3)
    assert (book.best_bid(), book.best_ask()) == (99, 100)


def test_place_post_only_on_empty_book_rests(make_book):
    # Arrange
    book = fresh(make_book)
    # Act
    events = place(book, 1, SELL, 100, 3, post_only=True)
    # Assert
    assert events == [accepted(1, 100, 3)]
    assert len(book) == 1


@pytest.mark.parametrize(
    ("price", "tif"),
    [(100, IOC), (100, FOK), (None, GTC), (None, IOC), (None, FOK)],
    ids=["limit-IOC", "limit-FOK", "market-GTC", "market-IOC", "market-FOK"],
)
def test_place_post_only_not_gtc_limit_rejected_invalid_post_only(make_book, price, tif):
    # Arrange: crossing liquidity, so any execution would change the book
    book = fresh(make_book)
    place(book, 1, SELL, 100, 5)
    before = book.state_hash()
    # Act
    events = place(book, 2, BUY, price, 3, tif=tif, post_only=True)
    # Assert
    assert events == [rejected(2, R.INVALID_POST_ONLY)]
    assert book.state_hash() == before


# =======================================================================================
# Amend
# =======================================================================================


def test_amend_size_decrease_same_price_keeps_queue_priority(make_book):
    # Arrange
    book = fresh(make_book)
    place(book, 1, BUY, 100, 5)
    place(book, 2, BUY, 100, 5)
    # Act
    events = amend(book, 1, qty=3)
    # Assert: a taker still meets order 1 first
    assert events == [amended(1, 100, 3)]
    assert ids(book.snapshot()[0]) == [1, 2]
    taker = place(book, 3, SELL, 100, 4)
    assert taker == [accepted(3, 100, 4), fill(3, 100, 3, 1, 0), fill(3, 100, 1, 2, 4)]


def test_amend_size_increase_loses_queue_priority(make_book):
    # Arrange
    book = fresh(make_book)
    place(book, 1, BUY, 100, 5)
    place(book, 2, BUY, 100, 5)
    # Act
    events = amend(book, 1, qty=6)
    # Assert
    assert events == [amended(1, 100, 6)]
    assert book.snapshot()[0] == [view(2, BUY, 100, 5), view(1, BUY, 100, 6)]
    taker = place(book, 3, SELL, 100, 5)
    assert taker == [accepted(3, 100, 5), fill(3, 100, 5, 2, 0)]
    assert book.order(1) == view(1, BUY, 100, 6)


def test_amend_price_change_loses_queue_priority(make_book):
    # Arrange
    book = fresh(make_book)
    place(book, 1, BUY, 101, 5)
    place(book, 2, BUY, 100, 5)
    # Act: order 1 joins order 2's level, behind it
    events = amend(book, 1, price=100)
    # Assert
    assert events == [amended(1, 100, 5)]
    assert book.snapshot()[0] == [view(2, BUY, 100, 5), view(1, BUY, 100, 5)]
    taker = place(book, 3, SELL, 100, 5)
    assert taker == [accepted(3, 100, 5), fill(3, 100, 5, 2, 0)]


def test_amend_price_change_with_smaller_size_still_loses_queue_priority(make_book):
    # Arrange
    book = fresh(make_book)
    place(book, 1, SELL, 101, 5)
    place(book, 2, SELL, 100, 5)
    # Act
    events = amend(book, 1, price=100, qty=2)
    # Assert
    assert events == [amended(1, 100, 2)]
    assert book.snapshot()[1] == [view(2, SELL, 100, 5), view(1, SELL, 100, 2)]
    assert book.depth(5) == ([], [(100, 7)])


def test_amend_that_crosses_trades_then_rests_remainder(make_book):
    # Arrange
    book = fresh(make_book)
    place(book, 1, SELL, 102, 3)
    place(book, 2, BUY, 100, 5)
    # Act
    events = amend(book, 2, price=102)
    # Assert: AMENDED first, then the FILLs
    assert events == [amended(2, 102, 5), fill(2, 102, 3, 1, 0)]
    assert book.order(2) == view(2, BUY, 102, 2)
    assert (book.best_bid(), book.best_ask()) == (102, None)


def test_amend_that_crosses_with_new_size_trades_the_new_size(make_book):
    # Arrange
    book = fresh(make_book)
    place(book, 1, SELL, 102, 3)
    place(book, 2, SELL, 103, 10)
    place(book, 3, BUY, 100, 5)
    # Act
    events = amend(book, 3, price=103, qty=20)
    # Assert
    assert events == [amended(3, 103, 20), fill(3, 102, 3, 1, 0), fill(3, 103, 10, 2, 0)]
    assert book.snapshot() == ([view(3, BUY, 103, 7)], [])


def test_amend_that_crosses_and_fills_completely_leaves_no_order(make_book):
    # Arrange
    book = fresh(make_book)
    place(book, 1, BUY, 100, 10)
    place(book, 2, SELL, 101, 4)
    # Act
    events = amend(book, 2, price=100)
    # Assert
    assert events == [amended(2, 100, 4), fill(2, 100, 4, 1, 6)]
    assert book.order(2) is None
    assert book.snapshot() == ([view(1, BUY, 100, 6)], [])


def test_amend_post_only_to_crossing_price_rejected_and_unchanged(make_book):
    # Arrange
    book = fresh(make_book)
    place(book, 1, BUY, 100, 5, post_only=True)
    place(book, 2, SELL, 102, 5)
    before = book.state_hash()
    # Act
    events = amend(book, 1, price=102, qty=9)
    # Assert
    assert events == [rejected(1, R.POST_ONLY_WOULD_CROSS)]
    assert book.state_hash() == before
    assert book.order(1) == view(1, BUY, 100, 5)


def test_amend_post_only_to_non_crossing_price_amended(make_book):
    # Arrange
    book = fresh(make_book)
    place(book, 1, BUY, 100, 5, post_only=True)
    place(book, 2, SELL, 102, 5)
    # Act
    events = amend(book, 1, price=101)
    # Assert
    assert events == [amended(1, 101, 5)]
    assert book.order(1) == view(1, BUY, 101, 5)


def test_amend_post_only_size_increase_same_price_amended(make_book):
    # Arrange
    book = fresh(make_book)
    place(book, 1, SELL, 102, 5, post_only=True)
    place(book, 2, BUY, 101, 5)
    # Act
    events = amend(book, 1, qty=8)
    # Assert
    assert events == [amended(1, 102, 8)]
    assert book.order(1) == view(1, SELL, 102, 8)


def test_amend_without_price_or_qty_rejected_empty_amend(make_book):
    # Arrange
    book = fresh(make_book)
    place(book, 1, BUY, 100, 5)
    before = book.state_hash()
    # Act
    events = amend(book, 1)
    # Assert
    assert events == [rejected(1, R.EMPTY_AMEND)]
    assert book.state_hash() == before


def test_amend_unknown_id_rejected_unknown_order(make_book):
    # Arrange
    book = fresh(make_book)
    place(book, 1, BUY, 100, 5)
    before = book.state_hash()
    # Act
    events = amend(book, 42, qty=1)
    # Assert
    assert events == [rejected(42, R.UNKNOWN_ORDER)]
    assert book.state_hash() == before


@pytest.mark.parametrize("bad_id", [0, -1, MAX_ORDER_ID + 1, 2**63, 2**100, -(2**100)])
def test_amend_invalid_id_rejected_with_order_id_zero(make_book, bad_id):
    # Arrange
    book = fresh(make_book)
    place(book, 1, BUY, 100, 5)
    before = book.state_hash()
    # Act
    events = amend(book, bad_id, qty=1)
    # Assert
    assert events == [rejected(0, R.INVALID_ORDER_ID)]
    assert book.state_hash() == before


@pytest.mark.parametrize("bad_price", [0, -1, MAX_PRICE + 1, 2**63, 2**100, -(2**100)])
def test_amend_invalid_price_rejected_invalid_price(make_book, bad_price):
    # Arrange
    book = fresh(make_book)
    place(book, 1, BUY, 100, 5)
    before = book.state_hash()
    # Act
    events = amend(book, 1, price=bad_price)
    # Assert
    assert events == [rejected(1, R.INVALID_PRICE)]
    assert book.state_hash() == before


@pytest.mark.parametrize("bad_qty", [0, -1, MAX_QTY + 1, 2**63, 2**100, -(2**100)])
def test_amend_invalid_qty_rejected_invalid_qty(make_book, bad_qty):
    # Arrange
    book = fresh(make_book)
    place(book, 1, BUY, 100, 5)
    before = book.state_hash()
    # Act
    events = amend(book, 1, qty=bad_qty)
    # Assert
    assert events == [rejected(1, R.INVALID_QTY)]
    assert book.state_hash() == before


@pytest.mark.parametrize(
    ("order_id", "kwargs", "expected"),
    [
        (0, {}, rejected(0, R.INVALID_ORDER_ID)),
        (0, {"price": 0, "qty": 0}, rejected(0, R.INVALID_ORDER_ID)),
        (42, {}, rejected(42, R.EMPTY_AMEND)),
        (42, {"price": 0, "qty": 0}, rejected(42, R.INVALID_PRICE)),
        (42, {"price": 100, "qty": 0}, rejected(42, R.INVALID_QTY)),
        (1, {"price": -5, "qty": -5}, rejected(1, R.INVALID_PRICE)),
    ],
    ids=["id-before-empty", "id-before-price", "empty-before-unknown",
         "price-before-qty-and-unknown", "qty-before-unknown", "price-before-qty"],
)
def test_amend_several_faults_rejected_in_documented_order(make_book, order_id, kwargs,
                                                            expected):
    # Arrange
    book = fresh(make_book)
    place(book, 1, BUY, 100, 5)
    before = book.state_hash()
    # Act
    events = amend(book, order_id, **kwargs)
    # Assert
    assert events == [expected]
    assert book.state_hash() == before


def test_amend_to_same_price_and_size_amended_keeps_place(make_book):
    # Arrange
    book = fresh(make_book)
    place(book, 1, BUY, 100, 5)
    place(book, 2, BUY, 100, 5)
    before = book.state_hash()
    # Act
    events = amend(book, 1, price=100, qty=5)
    # Assert
    assert events == [amended(1, 100, 5)]
    assert book.state_hash() == before
    assert ids(book.snapshot()[0]) == [1, 2]


def test_amend_qty_of_partially_filled_order_is_new_open_size(make_book):
    # Arrange: order 1 has 6 of 10 lots left
    book = fresh(make_book)
    place(book, 1, SELL, 100, 10)
    place(book, 2, SELL, 100, 1)
    place(book, 3, BUY, 100, 4)
    # Act: 5 < 6 open lots, a decrease
    events = amend(book, 1, qty=5)
    # Assert
    assert events == [amended(1, 100, 5)]
    assert book.snapshot()[1] == [view(1, SELL, 100, 5), view(2, SELL, 100, 1)]


def test_amend_to_max_price_and_max_qty_accepted(make_book):
    # Arrange
    book = fresh(make_book)
    place(book, 1, SELL, 100, 5)
    # Act
    events = amend(book, 1, price=MAX_PRICE, qty=MAX_QTY)
    # Assert
    assert events == [amended(1, MAX_PRICE, MAX_QTY)]
    assert book.order(1) == view(1, SELL, MAX_PRICE, MAX_QTY)


def test_amend_crossing_own_order_with_cancel_incoming_expires_amended_order(make_book):
    # Arrange
    book = fresh(make_book)
    place(book, 1, SELL, 100, 5, account=7)
    place(book, 2, BUY, 99, 5, account=7, stp=STP.CANCEL_INCOMING)
    # Act
    events = amend(book, 2, price=100)
    # Assert: the amended order uses its own STP mode
    assert events == [amended(2, 100, 5), expired(2, 100, 5, STP_REASON)]
    assert book.order(2) is None
    assert book.snapshot() == ([], [view(1, SELL, 100, 5, 7)])


def test_amend_crossing_own_order_with_decrement_reduces_both(make_book):
    # Arrange
    book = fresh(make_book)
    place(book, 1, SELL, 100, 5, account=7)
    place(book, 2, BUY, 99, 3, account=7, stp=STP.DECREMENT)
    # Act
    events = amend(book, 2, price=100)
    # Assert
    assert events == [
        amended(2, 100, 3),
        amended(1, 100, 2, STP_REASON),
        expired(2, 100, 3, STP_REASON),
    ]
    assert book.snapshot() == ([], [view(1, SELL, 100, 2, 7)])


# =======================================================================================
# Cancel
# =======================================================================================


def test_cancel_resting_order_returns_canceled_with_open_qty(make_book):
    # Arrange
    book = fresh(make_book)
    place(book, 1, BUY, 100, 5)
    # Act
    events = cancel(book, 1)
    # Assert
    assert events == [canceled(1, 100, 5)]
    assert book.order(1) is None
    assert len(book) == 0
    assert book.best_bid() is None


def test_cancel_partially_filled_order_reports_open_size(make_book):
    # Arrange
    book = fresh(make_book)
    place(book, 1, SELL, 100, 10)
    place(book, 2, BUY, 100, 4)
    # Act
    events = cancel(book, 1)
    # Assert
    assert events == [canceled(1, 100, 6)]
    assert len(book) == 0


def test_cancel_unknown_id_rejected_unknown_order(make_book):
    # Arrange
    book = fresh(make_book)
    place(book, 1, BUY, 100, 5)
    before = book.state_hash()
    # Act
    events = cancel(book, 7)
    # Assert
    assert events == [rejected(7, R.UNKNOWN_ORDER)]
    assert book.state_hash() == before


def test_cancel_twice_second_rejected_unknown_order(make_book):
    # Arrange
    book = fresh(make_book)
    place(book, 1, BUY, 100, 5)
    cancel(book, 1)
    # Act
    events = cancel(book, 1)
    # Assert
    assert events == [rejected(1, R.UNKNOWN_ORDER)]


def test_cancel_filled_order_rejected_unknown_order(make_book):
    # Arrange
    book = fresh(make_book)
    place(book, 1, BUY, 100, 5)
    place(book, 2, SELL, 100, 5)
    # Act
    events = cancel(book, 1)
    # Assert
    assert events == [rejected(1, R.UNKNOWN_ORDER)]


@pytest.mark.parametrize("bad_id", [0, -1, MAX_ORDER_ID + 1, 2**63, 2**64, 2**100, -(2**100)])
def test_cancel_invalid_id_rejected_with_order_id_zero(make_book, bad_id):
    # Arrange
    book = fresh(make_book)
    place(book, 1, BUY, 100, 5)
    before = book.state_hash()
    # Act
    events = cancel(book, bad_id)
    # Assert
    assert events == [rejected(0, R.INVALID_ORDER_ID)]
    assert book.state_hash() == before


def test_cancel_last_order_of_level_removes_level_from_depth(make_book):
    # Arrange
    book = fresh(make_book)
    place(book, 1, BUY, 100, 5)
    place(book, 2, BUY, 100, 3)
    place(book, 3, BUY, 99, 4)
    # Act
    first = cancel(book, 1)
    depth_after_first = book.depth(5)
    second = cancel(book, 2)
    # Assert
    assert first == [canceled(1, 100, 5)]
    assert depth_after_first == ([(100, 3), (99, 4)], [])
    assert second == [canceled(2, 100, 3)]
    assert book.depth(5) == ([(99, 4)], [])
    assert book.best_bid() == 99


def test_cancel_middle_of_queue_keeps_fifo_of_the_others(make_book):
    # Arrange
    book = fresh(make_book)
    for order_id in (1, 2, 3):
        place(book, order_id, SELL, 100, 2)
    # Act
    events = cancel(book, 2)
    # Assert
    assert events == [canceled(2, 100, 2)]
    assert ids(book.snapshot()[1]) == [1, 3]
    taker = place(book, 4, BUY, 100, 3)
    assert taker == [accepted(4, 100, 3), fill(4, 100, 2, 1, 0), fill(4, 100, 1, 3, 1)]


# =======================================================================================
# Self-trade prevention
# =======================================================================================


def test_stp_cancel_resting_cancels_own_makers_and_keeps_matching(make_book):
    # Arrange
    book = fresh(make_book)
    place(book, 1, SELL, 100, 5, account=7)
    place(book, 2, SELL, 100, 2, account=7)
    place(book, 3, SELL, 101, 5, account=8)
    # Act
    events = place(book, 4, BUY, 101, 8, account=7, stp=STP.CANCEL_RESTING)
    # Assert: GTC remainder rests
    assert events == [
        accepted(4, 101, 8),
        canceled(1, 100, 5, STP_REASON),
        canceled(2, 100, 2, STP_REASON),
        fill(4, 101, 5, 3, 0),
    ]
    assert book.snapshot() == ([view(4, BUY, 101, 3, 7)], [])


def test_stp_cancel_resting_sell_taker_cancels_own_bid(make_book):
    # Arrange
    book = fresh(make_book)
    place(book, 1, BUY, 100, 2, account=8)
    place(book, 2, BUY, 100, 5, account=7)
    place(book, 3, BUY, 100, 5, account=8)
    # Act
    events = place(book, 4, SELL, 100, 4, tif=IOC, account=7, stp=STP.CANCEL_RESTING)
    # Assert
    assert events == [
        accepted(4, 100, 4),
        fill(4, 100, 2, 1, 0),
        canceled(2, 100, 5, STP_REASON),
        fill(4, 100, 2, 3, 3),
    ]
    assert book.snapshot() == ([view(3, BUY, 100, 3, 8)], [])


def _stp_book(book: Any) -> None:
    place(book, 1, SELL, 100, 2, account=8)
    place(book, 2, SELL, 100, 5, account=7)
    place(book, 3, SELL, 101, 5, account=8)


def test_stp_cancel_incoming_stops_matching_and_expires_incoming(make_book):
    # Arrange
    book = fresh(make_book)
    _stp_book(book)
    # Act: a GTC order, yet it does not rest
    events = place(book, 4, BUY, 101, 8, account=7, stp=STP.CANCEL_INCOMING)
    # Assert
    assert events == [
        accepted(4, 101, 8),
        fill(4, 100, 2, 1, 0),
        expired(4, 101, 6, STP_REASON),
    ]
    assert book.snapshot() == ([], [view(2, SELL, 100, 5, 7), view(3, SELL, 101, 5, 8)])


def test_stp_cancel_both_cancels_resting_then_expires_incoming(make_book):
    # Arrange
    book = fresh(make_book)
    _stp_book(book)
    # Act
    events = place(book, 4, BUY, 101, 8, account=7, stp=STP.CANCEL_BOTH)
    # Assert
    assert events == [
        accepted(4, 101, 8),
        fill(4, 100, 2, 1, 0),
        canceled(2, 100, 5, STP_REASON),
        expired(4, 101, 6, STP_REASON),
    ]
    assert book.snapshot() == ([], [view(3, SELL, 101, 5, 8)])


def test_stp_decrement_taker_bigger_cancels_maker_and_keeps_matching(make_book):
    # Arrange
    book = fresh(make_book)
    place(book, 1, SELL, 100, 3, account=7)
    place(book, 2, SELL, 100, 4, account=8)
    # Act
    events = place(book, 3, BUY, 100, 10, account=7, stp=STP.DECREMENT)
    # Assert: maker removed -> CANCELED(qty=d); taker reduced -> AMENDED(new size)
    assert events == [
        accepted(3, 100, 10),
        canceled(1, 100, 3, STP_REASON),
        amended(3, 100, 7, STP_REASON),
        fill(3, 100, 4, 2, 0),
    ]
    assert book.snapshot() == ([view(3, BUY, 100, 3, 7)], [])


def test_stp_decrement_maker_bigger_reduces_maker_and_expires_taker(make_book):
    # Arrange
    book = fresh(make_book)
    place(book, 1, SELL, 100, 10, account=7)
    place(book, 2, SELL, 100, 1, account=8)
    # Act
    events = place(book, 3, BUY, 100, 4, account=7, stp=STP.DECREMENT)
    # Assert: the reduced maker keeps its place at the head of the queue
    assert events == [
        accepted(3, 100, 4),
        amended(1, 100, 6, STP_REASON),
        expired(3, 100, 4, STP_REASON),
    ]
    assert book.snapshot() == ([], [view(1, SELL, 100, 6, 7), view(2, SELL, 100, 1, 8)])


def test_stp_decrement_equal_sizes_cancels_maker_and_expires_taker(make_book):
    # Arrange
    book = fresh(make_book)
    place(book, 1, SELL, 100, 5, account=7)
    # Act
    events = place(book, 2, BUY, 100, 5, account=7, stp=STP.DECREMENT)
    # Assert
    assert events == [
        accepted(2, 100, 5),
        canceled(1, 100, 5, STP_REASON),
        expired(2, 100, 5, STP_REASON),
    ]
    assert len(book) == 0


def test_stp_decrement_market_taker_remainder_expires_without_reason(make_book):
    # Arrange
    book = fresh(make_book)
    place(book, 1, SELL, 100, 3, account=7)
    place(book, 2, SELL, 101, 2, account=8)
    # Act
    events = place(book, 3, BUY, None, 10, account=7, stp=STP.DECREMENT)
    # Assert: the last EXPIRED is the ordinary market-order expiry
    assert events == [
        accepted(3, 0, 10),
        canceled(1, 100, 3, STP_REASON),
        amended(3, 0, 7, STP_REASON),
        fill(3, 101, 2, 2, 0),
        expired(3, 0, 5),
    ]
    assert len(book) == 0


def test_stp_cancel_incoming_ioc_expires_once_with_stp_reason(make_book):
    # Arrange
    book = fresh(make_book)
    place(book, 1, SELL, 100, 5, account=7)
    # Act
    events = place(book, 2, BUY, 100, 3, tif=IOC, account=7, stp=STP.CANCEL_INCOMING)
    # Assert: one EXPIRED, carrying the self-trade reason
    assert events == [accepted(2, 100, 3), expired(2, 100, 3, STP_REASON)]
    assert book.snapshot() == ([], [view(1, SELL, 100, 5, 7)])


def test_stp_default_account_zero_is_a_shared_account(make_book):
    # Arrange: both orders use the default account 0
    book = fresh(make_book)
    place(book, 1, SELL, 100, 5)
    # Act
    events = place(book, 2, BUY, 100, 3, stp=STP.CANCEL_RESTING)
    # Assert
    assert events == [accepted(2, 100, 3), canceled(1, 100, 5, STP_REASON)]
    assert book.snapshot() == ([view(2, BUY, 100, 3)], [])


def test_stp_none_same_account_trades_with_itself(make_book):
    # Arrange
    book = fresh(make_book)
    place(book, 1, SELL, 100, 5, account=7, stp=STP.CANCEL_BOTH)
    # Act: the incoming order's mode (NONE) decides, not the resting one's
    events = place(book, 2, BUY, 100, 3, account=7, stp=STP.NONE)
    # Assert
    assert events == [accepted(2, 100, 3), fill(2, 100, 3, 1, 2)]


@pytest.mark.parametrize("mode", list(STP), ids=[m.name for m in STP])
def test_stp_different_accounts_trade_normally(make_book, mode):
    # Arrange
    book = fresh(make_book)
    place(book, 1, SELL, 100, 5, account=7)
    # Act
    events = place(book, 2, BUY, 100, 3, account=8, stp=mode)
    # Assert
    assert events == [accepted(2, 100, 3), fill(2, 100, 3, 1, 2)]


@pytest.mark.parametrize("mode", [STP.CANCEL_INCOMING, STP.CANCEL_BOTH, STP.DECREMENT],
                         ids=lambda m: m.name)
def test_stp_fok_own_order_ends_fillable_count_expires_unchanged(make_book, mode):
    # Arrange: 2 lots before the own order, 5 more behind it
    book = fresh(make_book)
    _stp_book(book)
    before = book.state_hash()
    # Act
    events = place(book, 4, BUY, 101, 4, tif=FOK, account=7, stp=mode)
    # Assert
    assert events == [expired(4, 101, 4, R.FOK_NOT_FILLABLE)]
    assert book.state_hash() == before


@pytest.mark.parametrize("mode", [STP.CANCEL_INCOMING, STP.CANCEL_BOTH, STP.DECREMENT],
                         ids=lambda m: m.name)
def test_stp_fok_fillable_before_own_order_fills(make_book, mode):
    # Arrange
    book = fresh(make_book)
    _stp_book(book)
    # Act
    events = place(book, 4, BUY, 101, 2, tif=FOK, account=7, stp=mode)
    # Assert
    assert events == [accepted(4, 101, 2), fill(4, 100, 2, 1, 0)]
    assert ids(book.snapshot()[1]) == [2, 3]


def test_stp_fok_cancel_resting_skips_own_orders_when_counting(make_book):
    # Arrange
    book = fresh(make_book)
    _stp_book(book)
    # Act: 2 + 5 lots from account 8, own 5 lots skipped
    events = place(book, 4, BUY, 101, 7, tif=FOK, account=7, stp=STP.CANCEL_RESTING)
    # Assert
    assert events == [
        accepted(4, 101, 7),
        fill(4, 100, 2, 1, 0),
        canceled(2, 100, 5, STP_REASON),
        fill(4, 101, 5, 3, 0),
    ]
    assert len(book) == 0


def test_stp_fok_cancel_resting_not_fillable_leaves_own_orders(make_book):
    # Arrange
    book = fresh(make_book)
    _stp_book(book)
    before = book.state_hash()
    # Act: only 7 lots of other accounts
    events = place(book, 4, BUY, 101, 8, tif=FOK, account=7, stp=STP.CANCEL_RESTING)
    # Assert
    assert events == [expired(4, 101, 8, R.FOK_NOT_FILLABLE)]
    assert book.state_hash() == before


def test_stp_fok_none_counts_own_orders(make_book):
    # Arrange
    book = fresh(make_book)
    _stp_book(book)
    # Act
    events = place(book, 4, BUY, 101, 12, tif=FOK, account=7, stp=STP.NONE)
    # Assert
    assert events == [
        accepted(4, 101, 12),
        fill(4, 100, 2, 1, 0),
        fill(4, 100, 5, 2, 0),
        fill(4, 101, 5, 3, 0),
    ]


# a narrow price band and three accounts, so orders cross often and meet their own account
_PRICES = st.sampled_from([None, *range(98, 103)])
_PLACE = st.tuples(
    st.just("place"),
    st.sampled_from([BUY, SELL]),
    _PRICES,
    st.integers(1, 10),
    st.sampled_from([GTC, GTC, IOC, FOK]),
    st.integers(1, 3),
)
_OPS = st.one_of(
    _PLACE,
    _PLACE,
    _PLACE,
    st.tuples(st.just("amend"), st.integers(1, 30), _PRICES,
              st.one_of(st.none(), st.integers(1, 10))),
    st.tuples(st.just("cancel"), st.integers(1, 30)),
)


@pytest.mark.parametrize(
    "mode", [STP.CANCEL_RESTING, STP.CANCEL_INCOMING, STP.CANCEL_BOTH, STP.DECREMENT],
    ids=lambda m: m.name,
)
@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(_OPS, min_size=10, max_size=60))
def test_stp_any_mode_but_none_never_fills_an_account_with_itself(make_book, mode, ops):
    # Arrange: a fresh book per example (the fixture is only a factory)
    book = fresh(make_book)
    account_of: dict[int, int] = {}
    next_id = 1
    fills = []
    # Act
    for op in ops:
        if op[0] == "place":
            _, side, price, qty, tif, account = op
            order_id, next_id = next_id, next_id + 1
            account_of[order_id] = account
            events = place(book, order_id, side, price, qty, tif=tif, account=account,
                           stp=mode)
        elif op[0] == "amend":
            _, order_id, price, qty = op
            events = amend(book, order_id, price=price, qty=qty)
        else:
            events = cancel(book, op[1])
        fills += [e for e in events if e.kind == EventKind.FILL]
    # Assert
    for e in fills:
        assert account_of[e.order_id] != account_of[e.maker_id], e


# =======================================================================================
# Validation
# =======================================================================================


def _crossable_book(make_book: Any) -> Any:
    """A book where any valid order would trade or rest (so a change would show)."""
    book = fresh(make_book)
    place(book, 1, SELL, 100, 5, account=3)
    place(book, 2, BUY, 99, 5, account=3)
    return book


@pytest.mark.parametrize(
    "bad_id", [0, -1, MAX_ORDER_ID + 1, 2**63 - 1, 2**63, 2**64, 2**100, -(2**100)],
)
def test_place_invalid_order_id_rejected_with_order_id_zero(make_book, bad_id):
    # Arrange
    book = _crossable_book(make_book)
    before = book.state_hash()
    # Act
    events = place(book, bad_id, BUY, 100, 1)
    # Assert
    assert events == [rejected(0, R.INVALID_ORDER_ID)]
    assert book.state_hash() == before
    assert len(book) == 2


_BAD_FIELDS = [
    ("side", 0, R.INVALID_SIDE),
    ("side", 2, R.INVALID_SIDE),
    ("side", -2, R.INVALID_SIDE),
    ("side", 2**100, R.INVALID_SIDE),
    ("side", -(2**100), R.INVALID_SIDE),
    ("price", 0, R.INVALID_PRICE),
    ("price", -1, R.INVALID_PRICE),
    ("price", MAX_PRICE + 1, R.INVALID_PRICE),
    ("price", 2**63, R.INVALID_PRICE),
    ("price", 2**100, R.INVALID_PRICE),
    ("price", -(2**100), R.INVALID_PRICE),
    ("qty", 0, R.INVALID_QTY),
    ("qty", -1, R.INVALID_QTY),
    ("qty", MAX_QTY + 1, R.INVALID_QTY),
    ("qty", 2**63, R.INVALID_QTY),
    ("qty", 2**100, R.INVALID_QTY),
    ("qty", -(2**100), R.INVALID_QTY),
    ("tif", 0, R.INVALID_TIME_IN_FORCE),
    ("tif", 4, R.INVALID_TIME_IN_FORCE),
    ("tif", -1, R.INVALID_TIME_IN_FORCE),
    ("tif", 2**100, R.INVALID_TIME_IN_FORCE),
    ("tif", -(2**100), R.INVALID_TIME_IN_FORCE),
    ("stp", -1, R.INVALID_STP),
    ("stp", 5, R.INVALID_STP),
    ("stp", 2**100, R.INVALID_STP),
    ("stp", -(2**100), R.INVALID_STP),
    ("account", -1, R.INVALID_ACCOUNT),
    ("account", MAX_ACCOUNT + 1, R.INVALID_ACCOUNT),
    ("account", 2**63, R.INVALID_ACCOUNT),
    ("account", 2**100, R.INVALID_ACCOUNT),
    ("account", -(2**100), R.INVALID_ACCOUNT),
]


def _place_args(**overrides: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """A valid crossing buy (id 10) with some fields replaced."""
    fields = {"order_id": 10, "side": BUY, "price": 100, "qty": 1, "tif": GTC,
              "account": 4, "stp": STP.NONE}
    fields.update(overrides)
    args = (fields.pop("order_id"), fields.pop("side"), fields.pop("price"), fields.pop("qty"))
    return args, fields


@pytest.mark.parametrize(("field", "value", "reason"), _BAD_FIELDS,
                         ids=[f"{f}={v}" for f, v, _ in _BAD_FIELDS])
def test_place_out_of_range_field_rejected_with_reason_and_order_id(make_book, field, value,
                                                                    reason):
    # Arrange
    book = _crossable_book(make_book)
    before = book.state_hash()
    args, kwargs = _place_args(**{field: value})
    # Act
    events = place(book, *args, **kwargs)
    # Assert
    assert events == [rejected(10, reason)]
    assert book.state_hash() == before


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"order_id": 0, "side": 0}, rejected(0, R.INVALID_ORDER_ID)),
        ({"side": 0, "price": 0}, rejected(10, R.INVALID_SIDE)),
        ({"price": 0, "qty": 0}, rejected(10, R.INVALID_PRICE)),
        ({"qty": 0, "tif": 0}, rejected(10, R.INVALID_QTY)),
        ({"tif": 0, "stp": 9}, rejected(10, R.INVALID_TIME_IN_FORCE)),
        ({"stp": 9, "account": -1}, rejected(10, R.INVALID_STP)),
        ({"account": -1, "tif": IOC, "post_only": True}, rejected(10, R.INVALID_ACCOUNT)),
        ({"order_id": 1, "tif": IOC, "post_only": True}, rejected(1, R.INVALID_POST_ONLY)),
        ({"order_id": 1, "post_only": True}, rejected(1, R.DUPLICATE_ORDER_ID)),
        ({"order_id": 1, "tif": FOK, "qty": 50}, rejected(1, R.DUPLICATE_ORDER_ID)),
    ],
    ids=["id-before-side", "side-before-price", "price-before-qty", "qty-before-tif",
         "tif-before-stp", "stp-before-account", "account-before-post-only",
         "post-only-before-duplicate", "duplicate-before-post-only-cross",
         "duplicate-before-fok-check"],
)
def test_place_several_faults_rejected_in_documented_order(make_book, overrides, expected):
    # Arrange
    book = _crossable_book(make_book)
    before = book.state_hash()
    args, kwargs = _place_args(**overrides)
    # Act
    events = place(book, *args, **kwargs)
    # Assert
    assert events == [expected]
    assert book.state_hash() == before


@pytest.mark.parametrize("tif", [GTC, IOC, FOK], ids=lambda t: t.name)
def test_place_id_of_resting_order_rejected_duplicate_original_untouched(make_book, tif):
    # Arrange
    book = fresh(make_book)
    place(book, 1, BUY, 100, 5, account=2)
    place(book, 2, SELL, 101, 5)
    before = book.state_hash()
    # Act: it would trade if it were accepted
    events = place(book, 1, BUY, 101, 5, tif=tif)
    # Assert
    assert events == [rejected(1, R.DUPLICATE_ORDER_ID)]
    assert book.state_hash() == before
    assert book.order(1) == view(1, BUY, 100, 5, 2)


def test_place_id_of_canceled_or_filled_order_accepted_again(make_book):
    # Arrange: the engine forgets ids of orders that are gone
    book = fresh(make_book)
    place(book, 1, BUY, 100, 5)
    cancel(book, 1)
    place(book, 2, SELL, 105, 1)
    place(book, 3, BUY, 105, 1)
    # Act
    again_canceled = place(book, 1, BUY, 100, 5)
    again_filled = place(book, 2, SELL, 106, 1)
    again_taker = place(book, 3, BUY, 99, 1)
    # Assert
    assert again_canceled == [accepted(1, 100, 5)]
    assert again_filled == [accepted(2, 106, 1)]
    assert again_taker == [accepted(3, 99, 1)]
    assert len(book) == 3


_WRONG_TYPES = [
    ("order_id", "10"),
    ("order_id", 10.0),
    ("side", 1.0),
    ("side", "1"),
    ("price", 100.0),
    ("price", "100"),
    ("qty", 1.0),
    ("qty", "1"),
    ("tif", 1.0),
    ("tif", "1"),
    ("account", 4.0),
    ("account", "4"),
    ("stp", 0.0),
    ("stp", "0"),
]


@pytest.mark.parametrize(("field", "value"), _WRONG_TYPES,
                         ids=[f"{f}={v!r}" for f, v in _WRONG_TYPES])
def test_place_wrong_argument_type_raises_type_error_and_changes_nothing(make_book, field,
                                                                         value):
    # Arrange
    book = _crossable_book(make_book)
    before = (book.state_hash(), book.snapshot())
    args, kwargs = _place_args(**{field: value})
    # Act / Assert
    with pytest.raises(TypeError):
        book.place(*args, **kwargs)
    book.check_invariants()
    assert (book.state_hash(), book.snapshot()) == before


@pytest.mark.parametrize(
    ("order_id", "kwargs"),
    [("2", {"qty": 1}), (2.0, {"qty": 1}), (2, {"price": 100.0}), (2, {"qty": 3.0}),
     (2, {"price": "100"}), (2, {"qty": "3"})],
    ids=["id-str", "id-float", "price-float", "qty-float", "price-str", "qty-str"],
)
def test_amend_wrong_argument_type_raises_type_error_and_changes_nothing(make_book, order_id,
                                                                         kwargs):
    # Arrange: order 2 at 99 would cross if moved to 100
    book = _crossable_book(make_book)
    before = (book.state_hash(), book.snapshot())
    # Act / Assert
    with pytest.raises(TypeError):
        book.amend(order_id, **kwargs)
    book.check_invariants()
    assert (book.state_hash(), book.snapshot()) == before


@pytest.mark.parametrize("order_id", ["1", 1.0], ids=["str", "float"])
def test_cancel_wrong_argument_type_raises_type_error_and_changes_nothing(make_book,
                                                                          order_id):
    # Arrange
    book = _crossable_book(make_book)
    before = book.state_hash()
    # Act / Assert
    with pytest.raises(TypeError):
        book.cancel(order_id)
    book.check_invariants()
    assert book.state_hash() == before
    assert len(book) == 2


def test_place_values_at_exact_maxima_accepted(make_book):
    # Arrange
    book = fresh(make_book)
    # Act
    events = place(book, MAX_ORDER_ID, BUY, MAX_PRICE, MAX_QTY, account=MAX_ACCOUNT)
    # Assert
    assert events == [accepted(MAX_ORDER_ID, MAX_PRICE, MAX_QTY)]
    assert book.order(MAX_ORDER_ID) == view(MAX_ORDER_ID, BUY, MAX_PRICE, MAX_QTY, MAX_ACCOUNT)
    assert cancel(book, MAX_ORDER_ID) == [canceled(MAX_ORDER_ID, MAX_PRICE, MAX_QTY)]


def test_place_values_at_exact_minima_accepted(make_book):
    # Arrange
    book = fresh(make_book)
    # Act
    events = place(book, 1, SELL, 1, 1, account=0)
    # Assert
    assert events == [accepted(1, 1, 1)]
    assert book.order(1) == view(1, SELL, 1, 1, 0)


def test_place_two_max_qty_orders_at_one_level_sum_in_depth(make_book):
    # Arrange
    book = fresh(make_book)
    place(book, 1, SELL, MAX_PRICE, MAX_QTY)
    place(book, 2, SELL, MAX_PRICE, MAX_QTY)
    # Act
    depth = book.depth(1)
    events = place(book, 3, BUY, None, MAX_QTY, tif=FOK)
    # Assert
    assert depth == ([], [(MAX_PRICE, 2 * MAX_QTY)])
    assert events == [accepted(3, 0, MAX_QTY), fill(3, MAX_PRICE, MAX_QTY, 1, 0)]
    assert book.depth(1) == ([], [(MAX_PRICE, MAX_QTY)])


def test_place_index_like_arguments_accepted_as_integers(make_book):
    # Arrange
    book = fresh(make_book)
    # Act: IntEnum, bool and an object with __index__ are integers to the book
    first = place(book, Code.ONE, True, Code.HUNDRED, Index(5), tif=Index(1),
                  account=Index(3), stp=Index(0))
    second = place(book, Index(2), Index(-1), Index(100), Code.ONE, account=True)
    third = amend(book, Index(1), price=Index(99), qty=Index(4))
    fourth = cancel(book, Index(1))
    # Assert
    assert first == [accepted(1, 100, 5)]
    assert second == [accepted(2, 100, 1), fill(2, 100, 1, 1, 4)]
    assert third == [amended(1, 99, 4)]
    assert fourth == [canceled(1, 99, 4)]
    assert len(book) == 0


# =======================================================================================
# Queries
# =======================================================================================


def test_queries_empty_book_return_none_and_empty(make_book):
    # Arrange
    book = fresh(make_book)
    # Act
    result = (book.best_bid(), book.best_ask(), book.depth(5), book.snapshot(), len(book),
              book.order(1))
    # Assert
    assert result == (None, None, ([], []), ([], []), 0, None)


def _layered_book(make_book: Any) -> Any:
    book = fresh(make_book)
    place(book, 1, BUY, 100, 1, account=11)
    place(book, 2, BUY, 100, 2, account=12)
    place(book, 3, BUY, 98, 4, account=13)
    place(book, 4, BUY, 99, 8, account=14)
    place(book, 5, SELL, 103, 1, account=15)
    place(book, 6, SELL, 101, 2, account=16)
    place(book, 7, SELL, 101, 3, account=17)
    place(book, 8, SELL, 102, 5, account=18)
    return book


def test_best_bid_and_ask_are_best_prices(make_book):
    # Arrange
    book = _layered_book(make_book)
    # Act
    result = (book.best_bid(), book.best_ask())
    # Assert
    assert result == (100, 101)


def test_depth_aggregates_each_level_best_first(make_book):
    # Arrange
    book = _layered_book(make_book)
    # Act
    levels = book.depth(10)
    # Assert
    assert levels == ([(100, 3), (99, 8), (98, 4)], [(101, 5), (102, 5), (103, 1)])


def test_depth_n_smaller_than_level_count_returns_best_n_levels(make_book):
    # Arrange
    book = _layered_book(make_book)
    # Act
    top1, top2 = book.depth(1), book.depth(2)
    # Assert: the n best levels of each side, best first
    assert top1 == ([(100, 3)], [(101, 5)])
    assert top2 == ([(100, 3), (99, 8)], [(101, 5), (102, 5)])


def test_depth_zero_returns_no_levels(make_book):
    # Arrange
    book = _layered_book(make_book)
    # Act
    levels = book.depth(0)
    # Assert
    assert levels == ([], [])


def test_order_view_has_documented_fields(make_book):
    # Arrange
    book = _layered_book(make_book)
    place(book, 9, SELL, 100, 1)  # takes 1 lot: order 1 is gone, order 2 untouched
    place(book, 10, SELL, 100, 1)  # takes 1 lot of order 2
    # Act
    v = book.order(2)
    # Assert
    assert (v.order_id, v.side, v.price, v.qty, v.account) == (2, BUY, 100, 1, 12)
    assert v == view(2, BUY, 100, 1, 12)
    assert book.order(1) is None
    assert book.order(999) is None


def test_snapshot_lists_orders_in_priority_order(make_book):
    # Arrange
    book = _layered_book(make_book)
    # Act
    bids, asks = book.snapshot()
    # Assert
    assert bids == [view(1, BUY, 100, 1, 11), view(2, BUY, 100, 2, 12),
                    view(4, BUY, 99, 8, 14), view(3, BUY, 98, 4, 13)]
    assert asks == [view(6, SELL, 101, 2, 16), view(7, SELL, 101, 3, 17),
                    view(8, SELL, 102, 5, 18), view(5, SELL, 103, 1, 15)]


def test_orders_at_lists_one_level_in_queue_order(make_book):
    # Arrange
    book = _layered_book(make_book)
    place(book, 9, BUY, 100, 6, account=19)
    amend(book, 1, qty=7)  # a size increase: order 1 goes to the tail
    # Act
    level = book.orders_at(BUY, 100)
    # Assert
    assert level == [view(2, BUY, 100, 2, 12), view(9, BUY, 100, 6, 19),
                     view(1, BUY, 100, 7, 11)]
    assert book.orders_at(SELL, 101) == [view(6, SELL, 101, 2, 16), view(7, SELL, 101, 3, 17)]
    assert book.orders_at(SELL, 100) == []
    assert book.orders_at(BUY, 97) == []


def test_len_counts_resting_orders_only(make_book):
    # Arrange
    book = _layered_book(make_book)
    # Act
    place(book, 9, BUY, 101, 3, tif=IOC)  # removes order 6, 1 lot of order 7
    place(book, 10, SELL, 50, 5, tif=FOK, account=1)  # fillable: removes orders 1, 2, 4 part
    cancel(book, 3)
    # Assert
    assert len(book) == 4
    assert len(book) == sum(map(len, book.snapshot()))


def _documented_hash(bids: list[tuple[int, ...]], asks: list[tuple[int, ...]]) -> int:
    words = array("q", (len(bids), len(asks)))
    for row in bids + asks:
        words.extend(row)
    data = b"".join(w.to_bytes(8, "little", signed=True) for w in words)
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def test_state_hash_empty_book_matches_documented_layout(make_book):
    # Arrange
    book = fresh(make_book)
    # Act
    h = book.state_hash()
    # Assert
    assert h == _documented_hash([], [])


def test_state_hash_matches_documented_layout(make_book):
    # Arrange
    book = fresh(make_book)
    place(book, 1, BUY, 100, 5, account=9)
    place(book, 2, BUY, 101, 3, account=0)
    place(book, 3, SELL, 105, 7, account=MAX_ACCOUNT)
    # Act
    h = book.state_hash()
    # Assert: side, price, order_id, qty, account per order in snapshot order
    assert h == _documented_hash(
        [(1, 101, 2, 3, 0), (1, 100, 1, 5, 9)],
        [(-1, 105, 3, 7, MAX_ACCOUNT)],
    )
    assert 0 <= h < 2**64


def test_state_hash_equal_for_equal_books_built_differently(make_book):
    # Arrange: book A placed directly
    direct = fresh(make_book)
    place(direct, 1, BUY, 100, 5)
    place(direct, 2, BUY, 100, 3)
    place(direct, 3, SELL, 105, 2)
    # book B reaches the same orders through fills and amends
    other = fresh(make_book)
    place(other, 3, SELL, 104, 10)
    place(other, 9, BUY, 104, 8)
    place(other, 1, BUY, 101, 9)
    place(other, 2, BUY, 99, 3)
    amend(other, 1, price=100, qty=5)
    amend(other, 2, price=100)
    amend(other, 3, price=105)
    # Act
    hashes = (direct.state_hash(), other.state_hash())
    # Assert
    assert direct.snapshot() == other.snapshot()
    assert hashes[0] == hashes[1]


def test_state_hash_differs_when_fifo_order_differs(make_book):
    # Arrange
    first = fresh(make_book)
    place(first, 1, BUY, 100, 5)
    place(first, 2, BUY, 100, 5)
    second = fresh(make_book)
    place(second, 2, BUY, 100, 5)
    place(second, 1, BUY, 100, 5)
    # Act
    hashes = (first.state_hash(), second.state_hash())
    # Assert
    assert first.depth(5) == second.depth(5)
    assert hashes[0] != hashes[1]


def test_state_hash_differs_when_account_differs(make_book):
    # Arrange
    first = fresh(make_book)
    place(first, 1, BUY, 100, 5, account=1)
    second = fresh(make_book)
    place(second, 1, BUY, 100, 5, account=2)
    # Act / Assert
    assert first.state_hash() != second.state_hash()


# =======================================================================================
# apply_batch
# =======================================================================================


_ENCODERS = {"place": encode_place, "cancel": encode_cancel, "amend": encode_amend}

_BATCH = [
    ("place", (1, SELL, 101, 5), {"account": 1}),
    ("place", (2, SELL, 102, 3), {"account": 2}),
    ("place", (3, BUY, 99, 4), {"account": 3}),
    ("place", (4, BUY, 101, 2), {"tif": IOC, "account": 3}),
    ("amend", (1,), {"qty": 2}),
    ("amend", (3,), {"price": 101}),
    ("amend", (3,), {}),
    ("cancel", (2,), {}),
    ("cancel", (99,), {}),
    ("place", (5, SELL, None, 10), {"account": 4}),
    ("place", (6, SELL, 100, 0), {}),
    ("place", (7, BUY, 100, 3), {"post_only": True, "account": 5}),
    ("place", (8, SELL, 100, 3), {"account": 5, "stp": STP.CANCEL_BOTH}),
    ("place", (9, BUY, 105, 3), {"tif": FOK}),
    ("place", (10, SELL, 104, 6), {"account": 6}),
    ("place", (11, BUY, 105, 4), {"tif": FOK, "account": 7, "stp": STP.DECREMENT}),
    ("amend", (10,), {"price": 103, "qty": 1}),
    ("place", (12, BUY, 101, 2), {"account": 6, "stp": STP.DECREMENT}),
    ("amend", (12,), {"price": 103}),
    ("place", (13, SELL, 110, 2), {"post_only": True}),
    ("place", (14, BUY, 120, 1), {"post_only": True}),
    ("place", (13, SELL, 111, 2), {}),
    ("cancel", (0,), {}),
    ("place", (15, SELL, 103, 1), {"tif": 7}),
]


def _encode_batch(commands: list[tuple[str, tuple[Any, ...], dict[str, Any]]]) -> array:
    out: array = array("q")
    for name, args, kwargs in commands:
        _ENCODERS[name](out, *args, **kwargs)
    return out


def _run_one_by_one(book: Any, commands: list[tuple[str, tuple[Any, ...], dict[str, Any]]]
                    ) -> list[tuple[int, Any]]:
    calls = {"place": place, "cancel": cancel, "amend": amend}
    return [(i, e) for i, (name, args, kwargs) in enumerate(commands)
            for e in calls[name](book, *args, **kwargs)]


def _as_numpy(cmds: array) -> Any:
    np = pytest.importorskip("numpy")
    return np.frombuffer(cmds, dtype=np.int64)


@pytest.mark.parametrize(
    "to_buffer", [lambda a: a, lambda a: a.tobytes(), _as_numpy],
    ids=["array", "bytes", "numpy"],
)
def test_apply_batch_gives_same_events_and_state_as_one_by_one(make_book, to_buffer):
    # Arrange
    commands = to_buffer(_encode_batch(_BATCH))
    single = fresh(make_book)
    expected = _run_one_by_one(single, _BATCH)
    batched = fresh(make_book)
    # Act
    out = batched.apply_batch(commands)
    batched.check_invariants()
    # Assert
    assert isinstance(out, array) and out.typecode == "q"
    assert len(out) % EVENT_WIDTH == 0
    assert decode_events(out) == expected
    assert batched.state_hash() == single.state_hash()
    assert batched.snapshot() == single.snapshot()
    # the batch exercised every kind of event
    assert {int(e.kind) for _, e in expected} == {int(k) for k in EventKind}


def test_apply_batch_unknown_command_code_rejected_invalid_command(make_book):
    # Arrange
    book = fresh(make_book)
    place(book, 1, SELL, 100, 5)
    before = book.state_hash()
    commands = array("q", [9, 5, 1, 100, 5, 1, 0, 0, 0,
                           0, 6, 1, 100, 5, 1, 0, 0, 0])
    # Act
    out = book.apply_batch(commands)
    book.check_invariants()
    # Assert
    assert decode_events(out) == [(0, rejected(5, R.INVALID_COMMAND)),
                                  (1, rejected(6, R.INVALID_COMMAND))]
    assert book.state_hash() == before


def test_apply_batch_price_zero_place_is_market_order(make_book):
    # Arrange
    book = fresh(make_book)
    place(book, 1, SELL, 100, 2)
    place(book, 2, SELL, 150, 3)
    commands = array("q")
    encode_place(commands, 3, BUY, None, 7)
    # Act
    out = book.apply_batch(commands)
    book.check_invariants()
    # Assert
    assert list(commands[:5]) == [1, 3, 1, 0, 7]  # price column is 0
    assert decode_events(out) == [
        (0, accepted(3, 0, 7)),
        (0, fill(3, 100, 2, 1, 0)),
        (0, fill(3, 150, 3, 2, 0)),
        (0, expired(3, 0, 2)),
    ]
    assert len(book) == 0


def test_apply_batch_amend_zero_columns_mean_unchanged(make_book):
    # Arrange
    book = fresh(make_book)
    place(book, 1, BUY, 100, 5)
    place(book, 2, BUY, 100, 5)
    commands = array("q")
    encode_amend(commands, 1, qty=3)  # price 0: unchanged, keeps priority
    encode_amend(commands, 2, price=99)  # qty 0: unchanged
    encode_amend(commands, 1)  # both 0: empty amend
    # Act
    out = book.apply_batch(commands)
    book.check_invariants()
    # Assert
    assert decode_events(out) == [
        (0, amended(1, 100, 3)),
        (1, amended(2, 99, 5)),
        (2, rejected(1, R.EMPTY_AMEND)),
    ]
    assert book.snapshot() == ([view(1, BUY, 100, 3), view(2, BUY, 99, 5)], [])


def test_apply_batch_empty_batch_returns_no_events(make_book):
    # Arrange
    book = fresh(make_book)
    place(book, 1, BUY, 100, 5)
    before = book.state_hash()
    # Act
    out = book.apply_batch(array("q"))
    # Assert
    assert len(out) == 0
    assert book.state_hash() == before
