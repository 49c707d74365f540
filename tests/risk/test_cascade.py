"""A small liquidation cascade whose every number is computed by hand.

The setting: NVDA-PERP (tick $0.01, lot 0.01 share, multiplier 100 micro-dollars per tick-lot,
tier-1 maintenance 2.5% up to $250k, max 20x), no trading fees, the 1% liquidation fee, the
index held at 10000 ticks ($100). A thin book was dislocated below the index for 30 seconds
(mid 9000), so the mark's second input, index + 30 s average of (mid - index), is 9000; the
first input, index x (1 + F x time to funding), is 10000 (the estimate is the 0.01%/8h
interest only, 0.125 tick here, rounded toward zero). The mark is therefore the median
of (10000, 9000, last trade) = the last trade whenever it lies in between: each liquidation's
fills move the mark immediately, which is what lets one trade set off three generations.

Four 20x longs of 1000 lots ($1,000 notional at 10000) with different wallets W:
liquidation price P_liq = (q*E*mult - W) / (q*mult*(1 - 0.025)) = (1e9 - W) / 97_500.

====  ==========  ============  ===========================
acct  W (units)   P_liq (tick)  liquidatable when mark <
====  ==========  ============  ===========================
A1    50_000_000  9743.59       9743.59 (the trigger 9700)
A2    56_200_000  9680          9680 (A1's fill at 9650)
A3    62_050_000  9620          9620 (A2's fill at 9580)
A4   100_000_000  9230.77       never in this cascade
====  ==========  ============  ===========================

A market maker bids 1000 @ 9650, 1000 @ 9580, 500 @ 9500. One trade at 9700 sets it off.
"""

from __future__ import annotations

import pytest

from gaemi.risk import (
    AdvanceTime,
    CancelAll,
    Deposit,
    PlaceOrder,
    SetIndexPrice,
    SetLeverage,
    Venue,
    preset,
    usd,
)
from gaemi.risk.events import Cause, InsuranceTakeover, Liquidation, MarkUpdated

SYM = "NVDA-PERP"
BUY, SELL = 1, -1
MAKER, SHORT, BIDDER, TRIGGER = 10, 11, 12, 13
A1, A2, A3, A4 = 1, 2, 3, 4
WALLETS = {A1: 50_000_000, A2: 56_200_000, A3: 62_050_000, A4: 100_000_000}


def _venue(impl: str, **changes: object) -> Venue:
    spec = preset(SYM, session=None, maker_fee_ppb=0, taker_fee_ppb=0, **changes)
    venue = Venue([spec], book=impl)
    run = [SetIndexPrice(SYM, 10_000)]
    run += [Deposit(a, usd(1_000_000)) for a in (MAKER, SHORT)]
    run += [Deposit(a, usd(10_000)) for a in (BIDDER, TRIGGER)]
    run += [Deposit(a, w) for a, w in WALLETS.items()]
    # 30 one-second samples of a book with mid 9000: the mark's basis input becomes 9000
    run += [PlaceOrder(MAKER, SYM, BUY, 8_995, 1), PlaceOrder(MAKER, SYM, SELL, 9_005, 1),
            AdvanceTime(30 * 10**9), CancelAll(MAKER, SYM)]
    # four 20x longs at 10000 against one well-funded short
    run += [SetLeverage(a, SYM, 20) for a in WALLETS]
    run += [PlaceOrder(SHORT, SYM, SELL, 10_000, 4_000)]
    run += [PlaceOrder(a, SYM, BUY, 10_000, 1_000) for a in WALLETS]
    # the depth the liquidations will sell into, and one bid to trade against
    run += [PlaceOrder(MAKER, SYM, BUY, 9_650, 1_000), PlaceOrder(MAKER, SYM, BUY, 9_580, 1_000),
            PlaceOrder(MAKER, SYM, BUY, 9_500, 500), PlaceOrder(BIDDER, SYM, BUY, 9_700, 1)]
    for command in run:
        events = venue.submit(command)
        assert not [e for e in events if e.kind == "rejected"], (command, events)
        venue.check_invariants()
    return venue


def test_cascade_setup_is_as_designed(impl: str) -> None:
    # Arrange / Act
    venue = _venue(impl)

    # Assert: mark = median(10000, 9000, last trade 10000) = 10000; every long is healthy
    assert venue.market(SYM).mark == 10_000
    for account, wallet in WALLETS.items():
        view = venue.account(account)
        assert view.positions[SYM].size == 1_000
        assert view.equity == wallet  # bought at the mark, no fees
    # P_liq = (1e9 - W) / 97500, floored to ticks in the view
    assert venue.account(A1).positions[SYM].liquidation_price == 9_743
    assert venue.account(A2).positions[SYM].liquidation_price == 9_680
    assert venue.account(A3).positions[SYM].liquidation_price == 9_620


def test_one_trade_sets_off_three_generations(impl: str) -> None:
    # Arrange
    venue = _venue(impl)
    fund_before = venue.market(SYM).insurance_fund

    # Act: one lot trades at 9700
    events = venue.submit(PlaceOrder(TRIGGER, SYM, SELL, 9_700, 1))
    venue.check_invariants()

    # Assert: the marks published, in order: the trade, then each liquidation's last fill
    marks = [e.mark for e in events if isinstance(e, MarkUpdated)]
    assert marks == [9_700, 9_650, 9_580, 9_500]
    liquidations = [e for e in events if isinstance(e, Liquidation)]
    assert [(e.account_id, e.generation) for e in liquidations] == [(A1, 1), (A2, 2), (A3, 3)]
    first, second, third = liquidations
    trigger_fill = next(e for e in events if e.kind == "fill" and e.liquidation_id is None)
    assert first.cause == Cause("fill", venue.seq, trigger_fill.trade_id, None, 0)
    assert second.cause.liquidation_id == first.liquidation_id
    assert second.cause.generation == 1
    assert third.cause.liquidation_id == second.liquidation_id
    assert third.cause.generation == 2

    # A1 at mark 9700: equity 50e6 - 300 * 1e5 = 20e6; bankruptcy 9700 - 20e6 / 1e5 = 9500
    assert (first.mark, first.bankruptcy_price, first.price, first.book_qty) == \
        (9_700, 9_500, 9_650, 1_000)
    # fee: min(1% of 9650 * 1e5 = 9.65e6, surplus (9650 - 9500) * 1e5 = 15e6)
    assert first.fee == 9_650_000
    # A2 at 9650: equity 56.2e6 - 35e6 = 21.2e6; bankruptcy 9650 - 212 = 9438
    assert (second.mark, second.bankruptcy_price, second.price, second.fee) == \
        (9_650, 9_438, 9_580, 9_580_000)
    # A3 at 9580: equity 62.05e6 - 42e6 = 20.05e6; bankruptcy 9580 - 200.5 = 9379.5, rounded
    # toward the mark to 9380. 500 lots fill at 9500, the fund takes 500 at 9380
    assert (third.mark, third.bankruptcy_price) == (9_580, 9_380)
    assert (third.book_qty, third.insurance_qty, third.adl_qty) == (500, 500, 0)
    assert third.price == (500 * 9_500 + 500 * 9_380) // 1_000 == 9_440
    # fee: min(1% of 9500 * 5e4 = 4.75e6, surplus (9500 - 9380) * 5e4 = 6e6)
    assert third.fee == 4_750_000
    takeover = [e for e in events if isinstance(e, InsuranceTakeover)]
    assert [(e.account_id, e.qty, e.price) for e in takeover] == [(A3, 500, 9_380)]

    # wallets: W + realized - fee
    assert venue.account(A1).balance == 50_000_000 - 35_000_000 - 9_650_000 == 5_350_000
    assert venue.account(A2).balance == 56_200_000 - 42_000_000 - 9_580_000 == 4_620_000
    assert venue.account(A3).balance == \
        62_050_000 - 25_000_000 - 31_000_000 - 4_750_000 == 1_300_000
    for account in (A1, A2, A3):
        assert venue.account(account).positions == {}
    # A4 (P_liq 9230.77) survives at 9500; the fund holds 500 lots and the three fees
    assert venue.account(A4).positions[SYM].size == 1_000
    market = venue.market(SYM)
    assert market.insurance_position == 500
    assert market.insurance_fund == fund_before + 9_650_000 + 9_580_000 + 4_750_000
    assert venue.bad_debt == 0


def test_cascade_is_deterministic_across_books() -> None:
    # Arrange
    hashes = []
    for impl in ("reference", "compiled"):
        venue = _venue(impl)

        # Act
        venue.submit(PlaceOrder(TRIGGER, SYM, SELL, 9_700, 1))
        hashes.append(venue.state_hash())

    # Assert
    assert hashes[0] == hashes[1]


def test_without_the_depth_a_takeover_absorbs_the_first_liquidation(impl: str) -> None:
    # Arrange: the same accounts, but the maker's bids are gone before the trigger
    venue = _venue(impl)
    venue.submit(CancelAll(MAKER, SYM))

    # Act
    events = venue.submit(PlaceOrder(TRIGGER, SYM, SELL, 9_700, 1))
    venue.check_invariants()

    # Assert: no fill moves the mark, so the cascade stops at generation 1 (the control)
    liquidations = [e for e in events if isinstance(e, Liquidation)]
    assert [(e.account_id, e.generation, e.insurance_qty) for e in liquidations] == \
        [(A1, 1, 1_000)]
    assert venue.market(SYM).mark == 9_700


def test_a_backstop_venue_closes_off_the_book_at_the_mark_and_moves_nothing(impl: str) -> None:
    # Arrange: the same market, liquidations executed by the backstop (the lab's baseline)
    venue = _venue(impl, liquidation_venue="backstop")
    fund_before = venue.market(SYM).insurance_fund
    bids_before = venue.open_orders(MAKER)

    # Act: the same trigger
    events = venue.submit(PlaceOrder(TRIGGER, SYM, SELL, 9_700, 1))
    venue.check_invariants()

    # Assert: A1 is closed at the mark 9700 (bankruptcy 9500), off the book: the maker's bids
    # are untouched, the mark stays at the trigger's 9700, and A2 (liquidatable below 9680)
    # and A3 are not liquidated: no cascade
    liquidations = [e for e in events if isinstance(e, Liquidation)]
    assert [(e.account_id, e.generation, e.price, e.book_qty, e.insurance_qty)
            for e in liquidations] == [(A1, 1, 9_700, 0, 1_000)]
    assert [(e.account_id, e.qty, e.price) for e in events
            if isinstance(e, InsuranceTakeover)] == [(A1, 1_000, 9_700)]
    assert not [e for e in events if e.kind == "fill" and e.liquidation_id is not None]
    assert venue.open_orders(MAKER) == bids_before
    assert venue.market(SYM).mark == 9_700
    # fee: min(1% of 9700 * 1e5 = 9.7e6, surplus (9700 - 9500) * 1e5 = 20e6)
    assert liquidations[0].fee == 9_700_000
    assert venue.account(A1).balance == 50_000_000 - 30_000_000 - 9_700_000 == 10_300_000
    assert venue.account(A2).positions[SYM].size == 1_000
    market = venue.market(SYM)
    assert market.insurance_position == 1_000
    assert market.insurance_fund == fund_before + 9_700_000
    assert venue.bad_debt == 0


def test_the_backstop_is_a_named_venue_choice() -> None:
    # Assert: the default executes on the book; anything but the two names is refused
    assert preset(SYM).liquidation_venue == "book"
    with pytest.raises(ValueError, match="liquidation_venue"):
        preset(SYM, liquidation_venue="otc")
