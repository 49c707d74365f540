"""The venue's mechanisms, one by one, against numbers computed by hand.

Every test runs on both book implementations (``impl``), follows Arrange / Act / Assert, and
checks ``Venue.check_invariants()`` after every command it submits (the ``run`` and
``refused`` helpers do it). The arithmetic behind each expected integer is written next to it.

The market is NVDA-PERP without a trading session unless a test says otherwise:

* tick $0.01 = 10_000 micro-dollars, lot 0.01 share, so multiplier = 100 units per tick-lot:
  a notional is ``lots * ticks * 100`` micro-dollars (20_000 ticks = $200 a share);
* tiers: <= $250k 20x 2.5%, <= $1M 10x 5% (cum 6_250_000_000), <= $5M 5x 10%
  (cum 56_250_000_000), above 2x 25% (cum 806_250_000_000);
* fees 0.02% maker / 0.05% taker, liquidation fee 1%, price band 10%, market protection 5%,
  funding paid hourly (rates quoted per 8 h), interest 0.01%/8h, clamp 0.05%, cap 1.875%;
* with no funding samples the estimate is the interest alone, 100_000 / 8 = 12_500 ppb per
  hour, so the mark's first input is index * (1 + 12_500e-9 * ttf / 1h): at an index of about
  20_000 ticks that adds 0.25 tick, rounded toward zero to 0, and the mark equals the index
  until basis samples or trades move it.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest

from gaemi.engine.codes import RejectReason as R
from gaemi.engine.codes import Side, TimeInForce
from gaemi.risk import (
    AdvanceTime,
    CancelAll,
    CancelOrder,
    Deposit,
    PlaceConditional,
    PlaceOrder,
    SetIndexPrice,
    SetLeverage,
    SetMarginMode,
    SetTradingStatus,
    Venue,
    Withdraw,
    preset,
    usd,
)
from gaemi.risk.calendar import NS_PER_DAY, NS_PER_HOUR, NS_PER_SECOND, US_REGULAR, days_from_civil
from gaemi.risk.events import (
    Adl,
    BadDebt,
    ConditionalAccepted,
    Fill,
    FundingPayment,
    FundingSettled,
    InsuranceTakeover,
    Liquidation,
    MarkUpdated,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderTriggered,
    Rejected,
)

SYM = "NVDA-PERP"
BUY, SELL = Side.BUY, Side.SELL
GTC, IOC = TimeInForce.GTC, TimeInForce.IOC
MULT = 100  # micro-dollars per tick x lot in NVDA-PERP
FUND = -1  # the insurance fund of the venue's only market


# -- helpers --------------------------------------------------------------------------------


def make_venue(impl: str, **changes: Any) -> Venue:
    """A one-market venue: NVDA-PERP with ``changes`` (no session unless one is given)."""
    changes.setdefault("session", None)
    return Venue([preset(SYM, **changes)], book=impl)


def run(venue: Venue, command: Any) -> list[Any]:
    """Submit a command that must be accepted; check the invariants after it."""
    events = venue.submit(command)
    venue.check_invariants()
    assert not any(isinstance(e, Rejected) for e in events), events
    return events


def run_all(venue: Venue, commands: list[Any]) -> list[Any]:
    out: list[Any] = []
    for command in commands:
        out += run(venue, command)
    return out


def refused(venue: Venue, command: Any, reason: R) -> Rejected:
    """Submit a command that must be rejected with ``reason`` and change nothing."""
    before = venue.state_hash()
    events = venue.submit(command)
    venue.check_invariants()
    assert len(events) == 1 and isinstance(events[0], Rejected), events
    assert events[0].reason == reason, (R(events[0].reason), reason)
    assert venue.state_hash() == before
    return events[0]


def of(events: list[Any], kind: type) -> list[Any]:
    return [e for e in events if type(e) is kind]


def balance(venue: Venue, account: int) -> int:
    return venue.account(account).balance


def ts(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    """UTC nanoseconds of a civil date and time."""
    return days_from_civil(year, month, day) * NS_PER_DAY + hour * NS_PER_HOUR \
        + minute * 60 * NS_PER_SECOND


# -- fees, realized PnL, entry price ----------------------------------------------------------


@pytest.mark.parametrize(
    ("qty", "price", "maker_ppb", "notional", "taker_fee", "maker_fee"),
    [
        # 400 lots * 20010 ticks * 100 = 800_400_000; 0.05% = 400_200; 0.02% = 160_080 (exact)
        (400, 20_010, 200_000, 800_400_000, 400_200, 160_080),
        # 3 * 20011 * 100 = 6_003_300; 0.05% = 3001.65 -> up 3002; 0.02% = 1200.66 -> up 1201
        (3, 20_011, 200_000, 6_003_300, 3_002, 1_201),
        # a -0.01% maker rebate: 600.33 -> rounds down in size to 600
        (3, 20_011, -100_000, 6_003_300, 3_002, -600),
        # a rebate as large as the taker fee: 3001.65 -> 3001 paid out, 3002 taken
        (3, 20_011, -500_000, 6_003_300, 3_002, -3_001),
    ],
    ids=["exact", "fees-round-up", "rebate-rounds-down", "rebate-equals-taker-rate"],
)
def test_fees_taker_rounds_up_maker_fee_up_rebate_down(
        impl: str, qty: int, price: int, maker_ppb: int, notional: int, taker_fee: int,
        maker_fee: int) -> None:
    # Arrange
    venue = make_venue(impl, maker_fee_ppb=maker_ppb)
    run_all(venue, [SetIndexPrice(SYM, 20_000), Deposit(1, usd(10_000)), Deposit(2, usd(10_000)),
                    PlaceOrder(2, SYM, SELL, price, qty)])

    # Act
    events = run(venue, PlaceOrder(1, SYM, BUY, price, qty, IOC))

    # Assert
    [fill] = of(events, Fill)
    assert qty * price * MULT == notional
    assert (fill.price, fill.qty, fill.taker_fee, fill.maker_fee) == (price, qty, taker_fee,
                                                                      maker_fee)
    assert venue.fee_pool == taker_fee + maker_fee
    # at the mark 20000 the positions are worth what they cost: balances moved by fees only
    assert balance(venue, 1) == usd(10_000) - taker_fee
    assert balance(venue, 2) == usd(10_000) - maker_fee
    venue.check_invariants()


def test_realized_pnl_rounds_down_on_partial_close_and_is_exact_on_the_last(impl: str) -> None:
    # Arrange: no trading fees, so the wallets move by realized PnL alone. Account 1 buys 1 lot
    # at 20000 and 2 lots at 20001: size 3, cost 60_002 tick-lots.
    venue = make_venue(impl, maker_fee_ppb=0, taker_fee_ppb=0)
    run_all(venue, [SetIndexPrice(SYM, 20_000), Deposit(1, usd(10_000)), Deposit(2, usd(10_000)),
                    PlaceOrder(2, SYM, SELL, 20_000, 1), PlaceOrder(2, SYM, SELL, 20_001, 2),
                    PlaceOrder(1, SYM, BUY, 20_001, 3, IOC)])
    long = venue.account(1).positions[SYM]
    short = venue.account(2).positions[SYM]
    assert (long.size, long.cost) == (3, 60_002)
    # entry = 60002 / 3 = 20000.67, rounded half up: (2*60002 + 3) // 6 = 20001
    assert long.entry_price == 20_001
    assert (short.size, short.cost, short.entry_price) == (-3, -60_002, 20_001)
    run(venue, PlaceOrder(2, SYM, BUY, 20_005, 3))  # the bid both closes trade against

    # Act 1: close 1 of 3 lots at 20005
    [fill] = of(run(venue, PlaceOrder(1, SYM, SELL, 20_005, 1, IOC)), Fill)

    # Assert 1: removed cost ceil(60002 / 3) = 20001 (exact 20000.67), so the realized PnL is
    # (20005 - 20001) * 100 = 400, below the exact 433.33
    long = venue.account(1).positions[SYM]
    assert (long.size, long.cost) == (2, 40_001)
    # entry 40001 / 2 = 20000.5 rounds half up to 20001
    assert long.entry_price == 20_001
    assert balance(venue, 1) == usd(10_000) + 400
    # the short's removed cost is ceil(-60002 / 3) = -20000: (-20005 + 20000) * 100 = -500,
    # again at or below the exact -433.33
    short = venue.account(2).positions[SYM]
    assert (short.size, short.cost) == (-2, -40_002)
    assert balance(venue, 2) == usd(10_000) - 500
    # the fill says what it realized for each side (the Binance facade's userTrades)
    assert (fill.taker_realized, fill.maker_realized) == (400, -500)

    # Act 2: close the last 2 lots at 20005
    [fill] = of(run(venue, PlaceOrder(1, SYM, SELL, 20_005, 2, IOC)), Fill)

    # Assert 2: (2 * 20005 - 40001) * 100 = 900; in total 400 + 900 = 1300
    # = (3 * 20005 - 60002) * 100 exactly; the short: (-40010 + 40002) * 100 = -800, -1300 total
    assert venue.account(1).positions == {}
    assert venue.account(2).positions == {}
    assert balance(venue, 1) == usd(10_000) + 1_300
    assert balance(venue, 2) == usd(10_000) - 1_300
    assert (fill.taker_realized, fill.maker_realized) == (900, -800)
    venue.check_invariants()


# -- margin -------------------------------------------------------------------------------------


def test_initial_margin_uses_the_lower_of_user_and_tier_leverage(impl: str) -> None:
    # Arrange
    venue = make_venue(impl)
    run_all(venue, [SetIndexPrice(SYM, 20_000), Deposit(1, usd(1_000_000)),
                    SetLeverage(1, SYM, 20)])

    # Act 1: a resting bid of 100_000 lots at the mark: notional 100_000 * 20000 * 100 =
    # 200_000_000_000 ($200k, tier 1, 20x allowed)
    run(venue, PlaceOrder(1, SYM, BUY, 20_000, 100_000))

    # Assert 1: 200_000_000_000 / 20 = 10_000_000_000
    assert venue.account(1).margin_used == 10_000_000_000

    # Act 2: 50_000 lots more: 150_000 * 20000 * 100 = 300_000_000_000 ($300k: tier 2, 10x)
    run(venue, PlaceOrder(1, SYM, BUY, 20_000, 50_000))

    # Assert 2: the user's 20x is capped by the tier: 300_000_000_000 / 10 = 30_000_000_000
    assert venue.account(1).margin_used == 30_000_000_000

    # Act 3: the user's leverage below the tier's
    run(venue, SetLeverage(1, SYM, 5))

    # Assert 3: 300_000_000_000 / 5 = 60_000_000_000; 21x is above the market's maximum
    assert venue.account(1).margin_used == 60_000_000_000
    refused(venue, SetLeverage(1, SYM, 21), R.INVALID_LEVERAGE)
    venue.check_invariants()


def test_maintenance_margin_is_continuous_across_a_tier_boundary(impl: str) -> None:
    # Arrange: the spec's formula at the $250k boundary, in collateral units
    spec = preset(SYM, session=None)
    boundary = 250_000 * 1_000_000
    # tier 1: ceil(250e9 * 2.5%) - 0 = 6_250_000_000
    assert spec.maintenance(boundary) == 6_250_000_000
    # tier 2 one unit above: ceil((250e9 + 1) * 5%) - 6_250_000_000 = 6_250_000_001
    assert spec.maintenance(boundary + 1) == 6_250_000_001
    venue = make_venue(impl, maker_fee_ppb=0, taker_fee_ppb=0)
    run_all(venue, [SetIndexPrice(SYM, 20_000), Deposit(1, usd(1_000_000)),
                    Deposit(2, usd(1_000_000)), PlaceOrder(2, SYM, SELL, 20_000, 150_001)])

    # Act 1: a position of exactly $250k: 125_000 lots * 20000 * 100 = 250_000_000_000
    run(venue, PlaceOrder(1, SYM, BUY, 20_000, 125_000, IOC))

    # Assert 1: 250e9 * 2.5% = 6_250_000_000
    assert venue.account(1).positions[SYM].maintenance_margin == 6_250_000_000
    assert venue.account(1).maintenance_margin == 6_250_000_000

    # Act 2: one lot more: 125_001 * 20000 * 100 = 250_002_000_000, in tier 2
    run(venue, PlaceOrder(1, SYM, BUY, 20_000, 1, IOC))

    # Assert 2: 250_002_000_000 * 5% - 6_250_000_000 = 12_500_100_000 - 6_250_000_000
    # = 6_250_100_000: the extra 2_000_000 of notional costs 5% of itself (100_000), no jump
    # (without the cum deduction it would be 12_500_100_000)
    assert venue.account(1).positions[SYM].maintenance_margin == 6_250_100_000

    # Act 3: 24_999 lots more: 150_000 lots * 20000 * 100 = 300_000_000_000
    run(venue, PlaceOrder(1, SYM, BUY, 20_000, 24_999, IOC))

    # Assert 3: 300e9 * 5% - 6.25e9 = 15_000_000_000 - 6_250_000_000 = 8_750_000_000; the
    # position's tier allows 10x, so 20x is refused
    position = venue.account(1).positions[SYM]
    assert (position.size, position.maintenance_margin) == (150_000, 8_750_000_000)
    refused(venue, SetLeverage(1, SYM, 20), R.LEVERAGE_ABOVE_TIER)
    venue.check_invariants()


def test_open_orders_count_in_initial_margin_and_an_order_beyond_available_changes_nothing(
        impl: str) -> None:
    # Arrange: $1000 at the default 10x; every lot at the mark 20000 is worth 2_000_000 and
    # needs 200_000 of initial margin
    venue = make_venue(impl)
    run_all(venue, [SetIndexPrice(SYM, 20_000), Deposit(1, usd(1_000))])

    # Act 1: bid 3000 lots at the mark
    run(venue, PlaceOrder(1, SYM, BUY, 20_000, 3_000))

    # Assert 1: 3000 * 200_000 = 600_000_000 used, 400_000_000 available
    account = venue.account(1)
    assert (account.margin_used, account.available) == (600_000_000, 400_000_000)

    # Act 2: an offer of 3000 lots above the mark: the worst case is still 3000 lots either way
    run(venue, PlaceOrder(1, SYM, SELL, 20_200, 3_000))

    # Assert 2: unchanged
    assert venue.account(1).margin_used == 600_000_000

    # Act 3: 1000 lots bid 100 ticks above the mark: worst 4000 lots = 800_000_000, plus the
    # loss of buying above the mark 1000 * 100 * 100 = 10_000_000
    run(venue, PlaceOrder(1, SYM, BUY, 20_100, 1_000))

    # Assert 3: 810_000_000 used, 190_000_000 available
    account = venue.account(1)
    assert (account.margin_used, account.available) == (810_000_000, 190_000_000)

    # Act 4: 951 lots more need 951 * 200_000 = 190_200_000 > 190_000_000
    rejection = refused(venue, PlaceOrder(1, SYM, BUY, 20_000, 951), R.INSUFFICIENT_MARGIN)

    # Assert 4: typed, attributed, and nothing changed (refused() compared the state hashes)
    assert (rejection.command, rejection.account_id, rejection.symbol) == ("PlaceOrder", 1, SYM)
    assert venue.account(1).open_orders == 3

    # Act 5: 950 lots need exactly 190_000_000
    run(venue, PlaceOrder(1, SYM, BUY, 20_000, 950))

    # Assert 5: 4950 * 200_000 + 10_000_000 = 1_000_000_000 used, nothing left
    account = venue.account(1)
    assert (account.margin_used, account.available) == (1_000_000_000, 0)
    refused(venue, PlaceOrder(1, SYM, BUY, 20_000, 1), R.INSUFFICIENT_MARGIN)
    venue.check_invariants()


def test_unrealized_profit_counts_for_orders_but_is_not_withdrawable(impl: str) -> None:
    # Arrange: account 1 long 1000 lots at 20000 with $1000, no fees
    venue = make_venue(impl, maker_fee_ppb=0, taker_fee_ppb=0)
    run_all(venue, [SetIndexPrice(SYM, 20_000), Deposit(1, usd(1_000)), Deposit(2, usd(1_000)),
                    PlaceOrder(2, SYM, SELL, 20_000, 1_000),
                    PlaceOrder(1, SYM, BUY, 20_000, 1_000, IOC)])

    # Act: the index (and mark) rises to 21000
    run(venue, SetIndexPrice(SYM, 21_000))

    # Assert: uPnL 1000 * 1000 * 100 = 100_000_000; IM 1000 * 21000 * 100 / 10 = 210_000_000;
    # available = 1_100_000_000 - 210_000_000 = 890_000_000, withdrawable
    # = min(wallet 1_000_000_000, equity) - 210_000_000 = 790_000_000
    account = venue.account(1)
    assert (account.balance, account.equity) == (1_000_000_000, 1_100_000_000)
    assert (account.margin_used, account.available, account.withdrawable) == (
        210_000_000, 890_000_000, 790_000_000)
    refused(venue, Withdraw(1, 790_000_001), R.INSUFFICIENT_BALANCE)
    run(venue, Withdraw(1, 790_000_000))
    assert balance(venue, 1) == 210_000_000
    assert venue.account(1).withdrawable == 0
    venue.check_invariants()


# -- pre-trade rejections -------------------------------------------------------------------


def _order(**fields: Any) -> PlaceOrder:
    base: dict[str, Any] = {"account_id": 1, "symbol": SYM, "side": BUY, "price": 20_000, "qty": 1}
    base.update(fields)
    return PlaceOrder(**base)  # type: ignore[arg-type]


# (id, spec changes, set the index?, commands before, the refused command, reason)
REJECTIONS = [
    ("unknown-market", {}, True, [], _order(symbol="XYZ-PERP"), R.UNKNOWN_MARKET),
    ("unknown-account", {}, True, [], _order(account_id=99), R.UNKNOWN_ACCOUNT),
    ("side-zero", {}, True, [], _order(side=0), R.INVALID_SIDE),
    ("side-bool", {}, True, [], _order(side=True), R.INVALID_SIDE),
    ("side-two", {}, True, [], _order(side=2), R.INVALID_SIDE),
    ("qty-zero", {}, True, [], _order(qty=0), R.INVALID_QTY),
    ("qty-negative", {}, True, [], _order(qty=-5), R.INVALID_QTY),
    ("qty-float", {}, True, [], _order(qty=1.0), R.INVALID_QTY),
    ("qty-text", {}, True, [], _order(qty="1"), R.INVALID_QTY),
    ("price-zero", {}, True, [], _order(price=0), R.INVALID_PRICE),
    ("price-float", {}, True, [], _order(price=20_000.0), R.INVALID_PRICE),
    ("price-above-max", {}, True, [], _order(price=10**8 + 1), R.INVALID_PRICE),
    # mark 20000, band 10% = 2000: a buy above 22000 or a sell below 18000
    ("band-buy", {}, True, [], _order(price=22_001), R.PRICE_OUTSIDE_BAND),
    ("band-sell", {}, True, [], _order(side=SELL, price=17_999), R.PRICE_OUTSIDE_BAND),
    ("too-large", {"max_order_qty": 1_000}, True, [], _order(qty=1_001), R.ORDER_TOO_LARGE),
    ("reduce-only-flat", {}, True, [], _order(side=SELL, reduce_only=True),
     R.REDUCE_ONLY_WOULD_INCREASE),
    ("reduce-only-same-side", {}, True,
     [PlaceOrder(2, SYM, SELL, 20_000, 5), PlaceOrder(1, SYM, BUY, 20_000, 5, IOC)],
     _order(reduce_only=True), R.REDUCE_ONLY_WOULD_INCREASE),
    ("reduce-only-beyond-position", {}, True,
     [PlaceOrder(2, SYM, SELL, 20_000, 5), PlaceOrder(1, SYM, BUY, 20_000, 5, IOC),
      PlaceOrder(1, SYM, SELL, 20_100, 5, reduce_only=True)],
     _order(side=SELL, price=20_200, reduce_only=True), R.REDUCE_ONLY_WOULD_INCREASE),
    # a cap of 10 lots of open interest: with the 1-lot bid, 12 lots worst case, 11 more:
    # 0 + 11 > 10
    ("oi-cap", {"open_interest_cap": 10}, True, [], _order(qty=11), R.OPEN_INTEREST_CAP),
    # 8 lots open: 3 lots more would make 11 > 10
    ("oi-cap-with-oi", {"open_interest_cap": 10}, True,
     [Deposit(3, usd(10_000)), PlaceOrder(2, SYM, SELL, 20_000, 8),
      PlaceOrder(3, SYM, BUY, 20_000, 8, IOC)],
     _order(qty=3), R.OPEN_INTEREST_CAP),
    ("halted", {}, True, [SetTradingStatus(SYM, "halted")], _order(), R.MARKET_HALTED),
    ("no-index", {}, False, [], _order(), R.NO_MARK_PRICE),
    # previous close 20000, limit 30%: [14000, 26000]; mark 25000, band [22500, 27500]
    ("daily-limit", {"daily_limit_ppb": 300_000_000}, True, [SetIndexPrice(SYM, 25_000)],
     _order(price=26_001), R.PRICE_LIMIT),
    ("post-only-cross", {}, True, [PlaceOrder(2, SYM, SELL, 20_005, 5)],
     _order(price=20_005, post_only=True), R.POST_ONLY_WOULD_CROSS),
    ("duplicate-client-id", {}, True, [_order(price=19_990, client_order_id="abc")],
     _order(price=19_980, client_order_id="abc"), R.DUPLICATE_CLIENT_ORDER_ID),
]


@pytest.mark.parametrize(("changes", "indexed", "before", "command", "reason"),
                         [case[1:] for case in REJECTIONS], ids=[case[0] for case in REJECTIONS])
def test_pre_trade_rejection_is_typed_and_changes_nothing(
        impl: str, changes: dict[str, Any], indexed: bool, before: list[Any], command: Any,
        reason: R) -> None:
    # Arrange: account 1 already has a far 1-lot bid in the market (with an index), so a
    # rejection is checked apart from the first-order case (test_a_rejected_first_order_...)
    venue = make_venue(impl, **changes)
    run_all(venue, ([SetIndexPrice(SYM, 20_000)] if indexed else [])
            + [Deposit(1, usd(10_000)), Deposit(2, usd(10_000))]
            + ([PlaceOrder(1, SYM, BUY, 18_500, 1)] if indexed else []) + before)
    orders_before = venue.open_orders(1)

    # Act
    rejection = refused(venue, command, reason)  # compares state_hash before and after

    # Assert
    assert rejection.command == "PlaceOrder"
    assert rejection.reason == int(reason)
    assert venue.open_orders(1) == orders_before
    venue.check_invariants()


@pytest.mark.parametrize(
    ("changes", "before", "command"),
    [
        ({}, [], _order(price=22_000)),  # mark + 10% exactly
        ({}, [], _order(side=SELL, price=18_000)),  # mark - 10% exactly
        ({"max_order_qty": 1_000}, [], _order(qty=1_000)),
        ({"open_interest_cap": 10}, [], _order(qty=10)),
        # the cap binds new exposure only: the 8-lot short may buy back while OI is 8
        ({"open_interest_cap": 10},
         [Deposit(3, usd(10_000)), PlaceOrder(2, SYM, SELL, 20_000, 8),
          PlaceOrder(3, SYM, BUY, 20_000, 8, IOC)], _order(account_id=2, qty=11)),
        ({"daily_limit_ppb": 300_000_000}, [SetIndexPrice(SYM, 25_000)], _order(price=26_000)),
        ({}, [PlaceOrder(2, SYM, SELL, 20_005, 5)], _order(price=20_004, post_only=True)),
        ({}, [_order(price=19_990, client_order_id="abc")],
         _order(account_id=2, price=19_980, client_order_id="abc")),
    ],
    ids=["band-buy-edge", "band-sell-edge", "max-qty", "oi-cap-edge", "oi-cap-closing",
         "daily-limit-edge", "post-only-passive", "client-id-per-account"],
)
def test_orders_at_the_edge_of_each_limit_are_accepted(
        impl: str, changes: dict[str, Any], before: list[Any], command: Any) -> None:
    # Arrange
    venue = make_venue(impl, **changes)
    run_all(venue, [SetIndexPrice(SYM, 20_000), Deposit(1, usd(10_000)),
                    Deposit(2, usd(10_000))] + before)

    # Act
    events = run(venue, command)

    # Assert
    [accepted] = of(events, OrderAccepted)
    assert (accepted.account_id, accepted.price, accepted.limit) == (
        command.account_id, command.price, command.price)
    venue.check_invariants()


@pytest.mark.parametrize(
    ("changes", "before", "command", "reason"),
    [
        ({}, [], _order(side=SELL, reduce_only=True), R.REDUCE_ONLY_WOULD_INCREASE),
        ({"open_interest_cap": 10}, [], _order(qty=11), R.OPEN_INTEREST_CAP),
        # (the resting offer's side is a plain int: see test_a_recovered_venue_has_the_live_...)
        ({}, [PlaceOrder(2, SYM, -1, 20_005, 5)], _order(price=20_005, post_only=True),
         R.POST_ONLY_WOULD_CROSS),
        # 10**6 lots * 20000 * 100 = 2e12 (tier 3, 5x): 4e11 of margin against 1e10
        ({}, [], _order(qty=10**6), R.INSUFFICIENT_MARGIN),
    ],
    ids=["reduce-only", "oi-cap", "post-only", "margin"],
)
def test_a_rejected_first_order_in_a_market_leaves_no_trace(
        impl: str, tmp_path: Any, changes: dict[str, Any], before: list[Any], command: Any,
        reason: R) -> None:
    # Arrange: account 1 has never traded NVDA-PERP; every accepted command is journaled
    journal = tmp_path / "journal"
    venue = Venue([preset(SYM, session=None, **changes)], book=impl, journal=journal)
    run_all(venue, [SetIndexPrice(SYM, 20_000), Deposit(1, usd(10_000)),
                    Deposit(2, usd(10_000))] + before)
    before_hash = venue.state_hash()

    # Act
    events = venue.submit(command)
    venue.check_invariants()
    venue.sync()
    recovered = Venue.recover(journal, book=impl)

    # Assert: a rejection is not journaled, so it must change nothing: the venue rebuilt from
    # the journal has the live venue's state
    assert [(type(e), e.reason) for e in events] == [(Rejected, int(reason))]
    assert recovered.state_hash() == venue.state_hash()
    assert venue.state_hash() == before_hash
    venue.close()
    recovered.close()


def test_a_recovered_venue_has_the_live_state_hash_when_orders_name_their_side_by_enum(
        impl: str, tmp_path: Any) -> None:
    # Arrange: resting orders and a conditional placed with Side.BUY / Side.SELL (the codes'
    # IntEnum, as a client would write them)
    journal = tmp_path / "journal"
    venue = Venue([preset(SYM, session=None)], book=impl, journal=journal)
    run_all(venue, [SetIndexPrice(SYM, 20_000), Deposit(1, usd(10_000)), Deposit(2, usd(10_000)),
                    PlaceOrder(1, SYM, Side.BUY, 19_990, 3),
                    PlaceOrder(2, SYM, Side.SELL, 20_010, 4),
                    PlaceConditional(1, SYM, Side.SELL, 2, 19_000, "stop")])

    # Act
    venue.sync()
    recovered = Venue.recover(journal, book=impl)

    # Assert: the journal stores the side as -1 / 1; the same state must hash the same
    assert recovered.open_orders(1) == venue.open_orders(1)
    assert recovered.state_hash() == venue.state_hash()
    recovered.check_invariants()
    venue.close()
    recovered.close()


def test_short_above_the_oi_cap_is_refused_but_closing_buy_is_not(impl: str) -> None:
    # Arrange: OI cap 10 lots; account 3 bids 1 lot far below (0 + 1 <= 10), then 10 lots
    # trade (long_oi = 10)
    venue = make_venue(impl, open_interest_cap=10)
    run_all(venue, [SetIndexPrice(SYM, 20_000), Deposit(1, usd(10_000)), Deposit(2, usd(10_000)),
                    Deposit(3, usd(10_000)), PlaceOrder(3, SYM, BUY, 18_500, 1),
                    PlaceOrder(2, SYM, SELL, 20_000, 10),
                    PlaceOrder(1, SYM, BUY, 20_000, 10, IOC)])
    assert venue.market(SYM).open_interest == 10

    # Act + Assert: account 3's worst case is 1 lot either way; offering 2 makes it 2: growth
    # 1 on OI 10 -> 11 > 10
    refused(venue, PlaceOrder(3, SYM, SELL, 20_100, 2), R.OPEN_INTEREST_CAP)
    # the long selling reduces OI: accepted
    events = run(venue, PlaceOrder(1, SYM, SELL, 20_100, 10))
    assert len(of(events, OrderAccepted)) == 1
    venue.check_invariants()


def test_daily_limit_clamps_the_mark(impl: str) -> None:
    # Arrange: previous close 20000, limit 30%: the mark lives in [14000, 26000]
    venue = make_venue(impl, daily_limit_ppb=300_000_000)
    run(venue, SetIndexPrice(SYM, 20_000))

    # Act
    high = run(venue, SetIndexPrice(SYM, 27_000))
    low = run(venue, SetIndexPrice(SYM, 13_000))

    # Assert: ceil(20000 * 0.7) = 14000, floor(20000 * 1.3) = 26000
    assert of(high, MarkUpdated)[0].mark == 26_000
    assert of(low, MarkUpdated)[0].mark == 14_000
    assert venue.market(SYM).previous_close == 20_000
    venue.check_invariants()


def test_halted_market_refuses_orders_but_allows_cancels(impl: str) -> None:
    # Arrange
    venue = make_venue(impl)
    run_all(venue, [SetIndexPrice(SYM, 20_000), Deposit(1, usd(10_000)),
                    PlaceOrder(1, SYM, BUY, 19_900, 5)])
    order_id = venue.open_orders(1)[0]["order_id"]

    # Act
    run(venue, SetTradingStatus(SYM, "halted"))
    refused(venue, PlaceOrder(1, SYM, BUY, 19_900, 1), R.MARKET_HALTED)
    canceled = run(venue, CancelOrder(1, SYM, order_id))
    run(venue, SetTradingStatus(SYM, "open"))
    reopened = run(venue, PlaceOrder(1, SYM, BUY, 19_900, 1))

    # Assert
    assert of(canceled, OrderCanceled) == [OrderCanceled(1, SYM, order_id, 5, "user")]
    assert venue.market(SYM).status == "open"
    assert len(of(reopened, OrderAccepted)) == 1
    venue.check_invariants()


@pytest.mark.parametrize(
    ("side", "index", "limit"),
    [
        (BUY, 20_000, 21_000),  # 20000 + 20000 * 5% = 21000
        (SELL, 20_000, 19_000),  # 20000 - 1000
        (BUY, 20_010, 21_010),  # 20010 * 5% = 1000.5 -> 1000 (toward zero)
        (SELL, 20_010, 19_010),
    ],
)
def test_market_order_trades_as_a_limit_at_mark_plus_minus_5_percent(
        impl: str, side: Side, index: int, limit: int) -> None:
    # Arrange: the other side rests 3 lots inside the limit, 2 at it, 5 just beyond it
    venue = make_venue(impl, maker_fee_ppb=0, taker_fee_ppb=0)
    inner, beyond = index + 500 * side, limit + side
    run_all(venue, [SetIndexPrice(SYM, index), Deposit(1, usd(10_000)), Deposit(2, usd(10_000)),
                    PlaceOrder(2, SYM, -side, inner, 3), PlaceOrder(2, SYM, -side, limit, 2),
                    PlaceOrder(2, SYM, -side, beyond, 5)])

    # Act
    events = run(venue, PlaceOrder(1, SYM, side, None, 10))

    # Assert
    [accepted] = of(events, OrderAccepted)
    assert (accepted.price, accepted.limit, accepted.tif) == (None, limit, int(IOC))
    assert [(f.price, f.qty) for f in of(events, Fill)] == [(inner, 3), (limit, 2)]
    assert of(events, OrderCanceled) == [OrderCanceled(1, SYM, accepted.order_id, 5, "expired")]
    assert venue.account(1).positions[SYM].size == 5 * side
    venue.check_invariants()


# -- reduce-only ----------------------------------------------------------------------------


def test_reduce_only_orders_are_trimmed_then_canceled_as_the_position_shrinks(
        impl: str) -> None:
    # Arrange: account 1 long 10 lots with reduce-only offers of 6 then 4 lots
    venue = make_venue(impl, maker_fee_ppb=0, taker_fee_ppb=0)
    run_all(venue, [SetIndexPrice(SYM, 20_000), Deposit(1, usd(10_000)), Deposit(2, usd(10_000)),
                    PlaceOrder(2, SYM, SELL, 20_000, 10),
                    PlaceOrder(1, SYM, BUY, 20_000, 10, IOC)])
    first = of(run(venue, PlaceOrder(1, SYM, SELL, 20_100, 6, reduce_only=True)),
               OrderAccepted)[0].order_id
    second = of(run(venue, PlaceOrder(1, SYM, SELL, 20_200, 4, reduce_only=True)),
                OrderAccepted)[0].order_id
    # 10 lots are covered: a third reduce-only offer has no room left
    refused(venue, PlaceOrder(1, SYM, SELL, 20_300, 1, reduce_only=True),
            R.REDUCE_ONLY_WOULD_INCREASE)
    run(venue, PlaceOrder(2, SYM, BUY, 19_990, 7))

    # Act 1: sell 7 lots into the bid: the position shrinks to 3
    events = run(venue, PlaceOrder(1, SYM, SELL, 19_990, 7, IOC))

    # Assert 1: the oldest keeps what fits (6 -> 3), the next has no room and leaves
    assert of(events, OrderAmended) == [OrderAmended(1, SYM, first, 20_100, 3, "reduce_only")]
    assert of(events, OrderCanceled) == [OrderCanceled(1, SYM, second, 4, "reduce_only")]
    assert [(o["order_id"], o["qty"]) for o in venue.open_orders(1)] == [(first, 3)]

    # Act 2: close the rest at market against a new bid
    run(venue, PlaceOrder(2, SYM, BUY, 19_990, 3))
    events = run(venue, PlaceOrder(1, SYM, SELL, None, 3))

    # Assert 2: flat: the last reduce-only order is canceled
    assert of(events, OrderCanceled)[-1] == OrderCanceled(1, SYM, first, 3, "reduce_only")
    assert venue.open_orders(1) == []
    venue.check_invariants()


# -- cross vs isolated ------------------------------------------------------------------------


def test_an_isolated_loss_is_limited_to_its_margin_while_cross_draws_on_the_wallet(
        impl: str) -> None:
    # Arrange: accounts 1 (isolated) and 3 (cross), $1000 each, both long 1000 lots at 20000
    # (notional 2_000_000_000) at 10x, against account 2. No trading fees.
    venue = make_venue(impl, maker_fee_ppb=0, taker_fee_ppb=0)
    run_all(venue, [SetIndexPrice(SYM, 20_000), Deposit(1, usd(1_000)), Deposit(2, usd(100_000)),
                    Deposit(3, usd(1_000)), SetMarginMode(1, SYM, "isolated"),
                    PlaceOrder(2, SYM, SELL, 20_000, 2_000),
                    PlaceOrder(1, SYM, BUY, 20_000, 1_000, IOC),
                    PlaceOrder(3, SYM, BUY, 20_000, 1_000, IOC)])
    isolated = venue.account(1).positions[SYM]
    # 2_000_000_000 / 10 = 200_000_000 moved from the wallet to the position
    assert (isolated.margin_mode, isolated.isolated_margin) == ("isolated", 200_000_000)
    assert venue.account(1).balance == 1_000_000_000

    # Act: the index gaps 25% down, far below the isolated bankruptcy price 18000
    events = run(venue, SetIndexPrice(SYM, 15_000))

    # Assert: account 1 loses its 200_000_000 and nothing more (the fund took the position
    # over at the bankruptcy price 20000 * (1 - 1/10) = 18000)
    [liquidation] = of(events, Liquidation)
    assert (liquidation.account_id, liquidation.mark, liquidation.bankruptcy_price) == (
        1, 15_000, 18_000)
    assert (liquidation.insurance_qty, liquidation.book_qty, liquidation.adl_qty) == (1_000, 0, 0)
    assert of(events, InsuranceTakeover) == [InsuranceTakeover(1, SYM, 1, 1_000, 18_000)]
    assert venue.account(1).positions == {}
    assert venue.account(1).balance == 800_000_000  # 1_000_000_000 - 200_000_000
    # account 3 (cross) is not liquidated: equity 1e9 + 1000 * (15000 - 20000) * 100
    # = 500_000_000 >= maintenance 1000 * 15000 * 100 * 2.5% = 37_500_000
    cross = venue.account(3)
    assert (cross.balance, cross.equity, cross.maintenance_margin) == (
        1_000_000_000, 500_000_000, 37_500_000)
    assert venue.market(SYM).insurance_position == 1_000
    assert venue.bad_debt == 0 and of(events, BadDebt) == []
    venue.check_invariants()


def test_an_isolated_close_below_bankruptcy_is_covered_by_the_fund_not_the_wallet(
        impl: str) -> None:
    # Arrange: account 1 isolated long 1000 lots at 20000, 10x: margin 200_000_000, wallet
    # 800_000_000; no trading fees. At 18500 its equity 200e6 - 150e6 = 50_000_000 covers the
    # maintenance 1000 * 18500 * 100 * 2.5% = 46_250_000. Account 3 bids 1000 at 17900.
    venue = make_venue(impl, maker_fee_ppb=0, taker_fee_ppb=0)
    run_all(venue, [SetIndexPrice(SYM, 20_000), Deposit(1, usd(1_000)), Deposit(2, usd(100_000)),
                    Deposit(3, usd(100_000)), SetMarginMode(1, SYM, "isolated"),
                    PlaceOrder(2, SYM, SELL, 20_000, 1_000),
                    PlaceOrder(1, SYM, BUY, 20_000, 1_000, IOC), SetIndexPrice(SYM, 18_500),
                    PlaceOrder(3, SYM, BUY, 17_900, 1_000)])
    fund_before = venue.market(SYM).insurance_fund

    # Act: account 1 sells it all at 17900, below its bankruptcy price 18000
    events = run(venue, PlaceOrder(1, SYM, SELL, 17_900, 1_000, IOC, reduce_only=True))

    # Assert: the loss (17900 - 20000) * 1000 * 100 = -210_000_000 exceeds the margin by
    # 10_000_000: the fund pays it, the wallet keeps its 800_000_000
    assert of(events, BadDebt) == [BadDebt(1, SYM, 10_000_000, 10_000_000, 0)]
    assert venue.market(SYM).insurance_fund == fund_before - 10_000_000
    assert (balance(venue, 1), venue.account(1).positions) == (800_000_000, {})
    assert venue.bad_debt == 0
    venue.check_invariants()


# -- liquidation and bankruptcy prices against the closed form ---------------------------------


@pytest.mark.parametrize(
    ("side", "start", "step", "liq_mark", "bankruptcy"),
    [
        # long, E = 20003, L = 10, m = 2.5%: P_liq = 20003 * 0.9 / 0.975 = 18464.31, so the
        # first mark below it is 18464; P_bk = 20003 * 0.9 = 18002.7, rounded up -> 18003
        (BUY, 18_470, -1, 18_464, 18_003),
        # short: P_liq = 20003 * 1.1 / 1.025 = 21466.63 -> first mark above 21467;
        # P_bk = 20003 * 1.1 = 22003.3, rounded down (toward the mark) -> 22003
        (SELL, 21_460, 1, 21_467, 22_003),
    ],
    ids=["long", "short"],
)
def test_liquidation_and_bankruptcy_price_match_the_isolated_closed_form(
        impl: str, side: Side, start: int, step: int, liq_mark: int, bankruptcy: int) -> None:
    # Arrange: an isolated 10x position of 1000 lots at E = 20003 against account 2; the margin
    # is ceil(1000 * 20003 * 100 / 10) = 200_030_000 = Q * E / L exactly
    entry, leverage, mmr = 20_003, 10, Fraction(25, 1_000)
    venue = make_venue(impl, maker_fee_ppb=0, taker_fee_ppb=0)
    run_all(venue, [SetIndexPrice(SYM, entry), Deposit(1, usd(1_000)), Deposit(2, usd(100_000)),
                    SetMarginMode(1, SYM, "isolated"),
                    PlaceOrder(2, SYM, -side, entry, 1_000),
                    PlaceOrder(1, SYM, side, entry, 1_000, IOC)])
    position = venue.account(1).positions[SYM]
    assert (position.size, position.isolated_margin) == (1_000 * side, 200_030_000)
    if side == BUY:
        p_liq = entry * (1 - Fraction(1, leverage)) / (1 - mmr)
        p_bk = entry * (1 - Fraction(1, leverage))
        formula_bk = -(-p_bk.numerator // p_bk.denominator)  # rounded up, toward the mark
    else:
        p_liq = entry * (1 + Fraction(1, leverage)) / (1 + mmr)
        p_bk = entry * (1 + Fraction(1, leverage))
        formula_bk = p_bk.numerator // p_bk.denominator  # rounded down, toward the mark
    assert formula_bk == bankruptcy
    # the published liquidation price is within one tick of the closed form
    assert abs(position.liquidation_price - p_liq) <= 1
    assert position.liquidation_price == liq_mark

    # Act: move the index one tick at a time until the account is liquidated
    found = None
    for index in range(start, start + 100 * step, step):
        events = run(venue, SetIndexPrice(SYM, index))
        liquidations = of(events, Liquidation)
        if liquidations:
            found = (index, liquidations)
            break

    # Assert
    assert found is not None
    index, [liquidation] = found
    assert index == liq_mark
    assert (liquidation.account_id, liquidation.mark, liquidation.bankruptcy_price) == (
        1, liq_mark, bankruptcy)
    assert (liquidation.qty, liquidation.insurance_qty, liquidation.fee) == (1_000, 1_000, 0)
    # the isolated margin after closing at the bankruptcy price: long 200_030_000 +
    # (18003 - 20003) * 1000 * 100 = 30_000; short 200_030_000 + (20003 - 22003) * 100_000
    # = 30_000: the sub-tick the rounding toward the mark left, back to the wallet
    assert venue.account(1).positions == {}
    assert venue.account(1).balance == 800_000_000  # 799_970_000 + 30_000
    venue.check_invariants()


# -- liquidation through the book, insurance, ADL, bad debt -----------------------------------


def _long_at_10x(impl: str, **changes: Any) -> Venue:
    """Account 1 (cross) long 1000 lots at 20000 with exactly Q * E / L = 200_000_000 of
    collateral, against account 2's short; no trading fees. Liquidatable below
    P_liq = 20000 * 0.9 / 0.975 = 18461.54; bankruptcy price 18000."""
    venue = make_venue(impl, maker_fee_ppb=0, taker_fee_ppb=0, **changes)
    run_all(venue, [SetIndexPrice(SYM, 20_000), Deposit(1, 200_000_000),
                    Deposit(2, usd(100_000)), PlaceOrder(2, SYM, SELL, 20_000, 1_000),
                    PlaceOrder(1, SYM, BUY, 20_000, 1_000, IOC)])
    assert venue.account(1).available == 0  # IM 1000 * 20000 * 100 / 10 = 200_000_000
    return venue


def test_liquidation_sells_through_the_book_and_the_fee_is_capped_by_the_surplus(
        impl: str) -> None:
    # Arrange: account 4 bids 600 lots at 18300 and 400 at 18100
    venue = _long_at_10x(impl)
    run_all(venue, [Deposit(4, usd(100_000)), PlaceOrder(4, SYM, BUY, 18_300, 600),
                    PlaceOrder(4, SYM, BUY, 18_100, 400)])
    fund_before = venue.market(SYM).insurance_fund

    # Act: the mark reaches 18461 < 18461.54
    events = run(venue, SetIndexPrice(SYM, 18_461))

    # Assert: an IOC at the bankruptcy price 18000 for the whole position (notional
    # 1000 * 18461 * 100 = $1846 < $100k: one slice)
    [accepted] = of(events, OrderAccepted)
    assert (accepted.account_id, accepted.side, accepted.qty, accepted.limit, accepted.tif,
            accepted.reduce_only, accepted.liquidation_id) == (1, SELL, 1_000, 18_000, int(IOC),
                                                               True, 1)
    fills = of(events, Fill)
    # fill 1: 600 * 18300 * 100 = 1_098_000_000, 1% = 10_980_000 <= surplus
    #         (18300 - 18000) * 600 * 100 = 18_000_000 -> 10_980_000
    # fill 2: 400 * 18100 * 100 = 724_000_000, 1% = 7_240_000 > surplus
    #         (18100 - 18000) * 400 * 100 = 4_000_000 -> 4_000_000
    assert [(f.price, f.qty, f.taker_fee, f.maker_fee, f.liquidation_id) for f in fills] == [
        (18_300, 600, 10_980_000, 0, 1), (18_100, 400, 4_000_000, 0, 1)]
    [liquidation] = of(events, Liquidation)
    # average (600 * 18300 + 400 * 18100) / 1000 = 18220; fee 10_980_000 + 4_000_000
    assert (liquidation.qty, liquidation.price, liquidation.mark, liquidation.bankruptcy_price,
            liquidation.book_qty, liquidation.insurance_qty, liquidation.adl_qty,
            liquidation.fee, liquidation.generation) == (
        1_000, 18_220, 18_461, 18_000, 1_000, 0, 0, 14_980_000, 1)
    assert venue.market(SYM).insurance_fund == fund_before + 14_980_000
    # 200_000_000 - 600 * 1700 * 100 - 400 * 1900 * 100 - 14_980_000
    # = 200_000_000 - 102_000_000 - 76_000_000 - 14_980_000 = 7_020_000
    assert venue.account(1).positions == {}
    assert balance(venue, 1) == 7_020_000
    assert venue.account(4).positions[SYM].size == 1_000
    venue.check_invariants()


def test_insurance_fund_takes_over_what_the_empty_book_cannot_fill(impl: str) -> None:
    # Arrange
    venue = _long_at_10x(impl)
    fund_before = venue.market(SYM).insurance_fund

    # Act
    events = run(venue, SetIndexPrice(SYM, 18_461))

    # Assert: the IOC expires unfilled; the fund buys the 1000 lots at 18000, no fee
    assert of(events, OrderCanceled) == [
        OrderCanceled(1, SYM, of(events, OrderAccepted)[0].order_id, 1_000, "expired")]
    assert of(events, InsuranceTakeover) == [InsuranceTakeover(1, SYM, 1, 1_000, 18_000)]
    [liquidation] = of(events, Liquidation)
    assert (liquidation.price, liquidation.book_qty, liquidation.insurance_qty,
            liquidation.fee) == (18_000, 0, 1_000, 0)
    market = venue.market(SYM)
    assert (market.insurance_position, market.insurance_fund) == (1_000, fund_before)
    # 200_000_000 + (18000 - 20000) * 1000 * 100 = 0: nothing left, nothing owed
    assert balance(venue, 1) == 0
    assert venue.bad_debt == 0
    venue.check_invariants()


def test_adl_when_the_fund_is_empty_deleverages_the_best_ranked_short_first(impl: str) -> None:
    # Arrange: no insurance fund. Shorts: B (account 2, $100k, sells 900 at 20000) and
    # C (account 3, $500, sells 600 at 20100). Account 1 buys 1000 (900 at 20000 + 100 at
    # 20100: cost 20_010_000) with 210_000_000; account 5 buys C's other 500 at 20100.
    venue = make_venue(impl, maker_fee_ppb=0, taker_fee_ppb=0, insurance_fund=0)
    run_all(venue, [SetIndexPrice(SYM, 20_000), Deposit(1, 210_000_000),
                    Deposit(2, usd(100_000)), Deposit(3, usd(500)), Deposit(5, usd(100_000)),
                    PlaceOrder(2, SYM, SELL, 20_000, 900), PlaceOrder(3, SYM, SELL, 20_100, 600),
                    PlaceOrder(1, SYM, BUY, 20_100, 1_000, IOC),
                    PlaceOrder(5, SYM, BUY, 20_100, 500, IOC)])
    assert venue.account(1).positions[SYM].cost == 20_010_000

    # Act: the index gaps to 17000
    events = run(venue, SetIndexPrice(SYM, 17_000))

    # Assert: equity 210_000_000 + (17_000_000 - 20_010_000) * 100 = -91_000_000, so the
    # bankruptcy price is 17000 + 91_000_000 / (1000 * 100) = 17910 (= E - WB/Q
    # = 20010 - 2100). At 17000, B's PnL% = 270e6 / 1.8e9 = 15% at leverage
    # 1.53e9 / 100.27e9 = 0.015 (rank 0.0023); C's = 186e6 / 1.206e9 = 15.4% at leverage
    # 1.02e9 / 686e6 = 1.49 (rank 0.23): C first, all 600 lots, then 400 of B's 900
    [liquidation] = of(events, Liquidation)
    assert (liquidation.account_id, liquidation.bankruptcy_price, liquidation.price,
            liquidation.book_qty, liquidation.insurance_qty, liquidation.adl_qty) == (
        1, 17_910, 17_910, 0, 0, 1_000)
    assert of(events, Adl) == [Adl(1, SYM, 3, 1, 600, 17_910, 1),
                               Adl(1, SYM, 2, 1, 400, 17_910, 2)]
    assert of(events, InsuranceTakeover) == []
    # account 1: -126_000_000 - 84_000_000 = -210_000_000: exactly its collateral
    assert (balance(venue, 1), venue.account(1).positions) == (0, {})
    # C: (12_060_000 - 600 * 17910) * 100 = 131_400_000 realized, flat
    assert (balance(venue, 3), venue.account(3).positions) == (631_400_000, {})
    # B: closes 400 of 900: removed cost 18_000_000 * 400 / 900 = 8_000_000;
    # (8_000_000 - 400 * 17910) * 100 = 83_600_000
    b = venue.account(2)
    assert b.balance == 100_083_600_000
    assert (b.positions[SYM].size, b.positions[SYM].cost) == (-500, -10_000_000)
    assert venue.bad_debt == 0 and of(events, BadDebt) == []
    assert all(balance(venue, a) >= 0 for a in venue.accounts())
    venue.check_invariants()


def test_a_flat_account_below_zero_is_covered_by_the_fund_then_counted_as_bad_debt(
        impl: str) -> None:
    # Arrange: an insurance fund of 500_000. Account 1 bids 1000 lots at 20000 (maker, no maker
    # fee) with 210_000_000; account 2 sells into it. Taker fee 0.05%.
    venue = make_venue(impl, maker_fee_ppb=0, insurance_fund=500_000)
    run_all(venue, [SetIndexPrice(SYM, 20_000), Deposit(1, 210_000_000),
                    Deposit(2, usd(100_000)), Deposit(3, usd(100_000)),
                    PlaceOrder(1, SYM, BUY, 20_000, 1_000),
                    PlaceOrder(2, SYM, SELL, 20_000, 1_000, IOC),
                    # 18400: equity 210e6 - 160e6 = 50e6 >= maintenance 46e6: not liquidatable
                    SetIndexPrice(SYM, 18_400), PlaceOrder(3, SYM, BUY, 17_900, 1_000)])
    assert venue.account(1).positions[SYM].size == 1_000

    # Act: account 1 dumps its position at 17900 with a reduce-only order (no margin check)
    events = run(venue, PlaceOrder(1, SYM, SELL, 17_900, 1_000, IOC, reduce_only=True))

    # Assert: realized (17900 - 20000) * 1000 * 100 = -210_000_000 leaves 0, the taker fee
    # 1000 * 17900 * 100 * 0.05% = 895_000 leaves -895_000: the fund covers 500_000, the
    # remaining 395_000 is bad debt
    assert [f.taker_fee for f in of(events, Fill)] == [895_000]
    assert of(events, BadDebt) == [BadDebt(1, SYM, 895_000, 500_000, 395_000)]
    assert venue.bad_debt == 395_000
    assert venue.market(SYM).insurance_fund == 0
    assert balance(venue, 1) == 0
    # fee pool: account 2's opening taker fee 1000 * 20000 * 100 * 0.05% = 1_000_000 + 895_000
    assert venue.fee_pool == 1_895_000
    venue.check_invariants()


def test_an_insurance_fund_under_water_is_deleveraged_at_the_mark_and_its_loss_is_bad_debt(
        impl: str) -> None:
    # Arrange: a fund of 1_000_000 takes over the 10x long at 18000 when the mark is 18461
    # (its equity 1_000_000 + (18461 - 18000) * 100_000 = 47_100_000 covers the maintenance
    # ceil(1000 * 18461 * 100 * 2.5%) = 46_152_500)
    venue = _long_at_10x(impl, insurance_fund=1_000_000)
    taken = run(venue, SetIndexPrice(SYM, 18_461))
    assert of(taken, InsuranceTakeover) == [InsuranceTakeover(1, SYM, 1, 1_000, 18_000)]

    # Act: the index gaps to 17000: the fund's equity 1_000_000 - 1000 * 1000 * 100
    # = -99_000_000 is below its maintenance
    events = run(venue, SetIndexPrice(SYM, 17_000))

    # Assert: the fund's 1000 lots close against account 2's short at the mark 17000; the fund
    # loses 100_000_000 with 1_000_000 in hand: 99_000_000 of bad debt
    assert of(events, Adl) == [Adl(2, SYM, 2, FUND, 1_000, 17_000, 1)]
    [liquidation] = of(events, Liquidation)
    assert (liquidation.account_id, liquidation.mark, liquidation.adl_qty) == (FUND, 17_000,
                                                                               1_000)
    assert of(events, BadDebt) == [BadDebt(FUND, SYM, 99_000_000, 0, 99_000_000)]
    assert venue.bad_debt == 99_000_000
    market = venue.market(SYM)
    assert (market.insurance_fund, market.insurance_position) == (0, 0)
    # account 2 realized (20000 - 17000) * 1000 * 100 = 300_000_000
    assert (balance(venue, 2), venue.account(2).positions) == (usd(100_000) + 300_000_000, {})
    assert all(balance(venue, a) >= 0 for a in venue.accounts())
    venue.check_invariants()


# -- funding --------------------------------------------------------------------------------


def _funding_venue(impl: str, index: int, bid: int, ask: int, start_ts: int = 0,
                   **changes: Any) -> Venue:
    """Account 1 long 10 lots, accounts 2 and 5 short 7 and 3, all at the index; market makers
    3 and 4 quote 5000 lots (much more than the impact notional of $4000) at bid / ask."""
    changes.setdefault("session", None)
    venue = Venue([preset(SYM, maker_fee_ppb=0, taker_fee_ppb=0, **changes)], book=impl,
                  start_ts=start_ts)
    run_all(venue, [SetIndexPrice(SYM, index)] + [Deposit(a, usd(10_000)) for a in (1, 2, 5)]
            + [Deposit(a, usd(100_000)) for a in (3, 4)]
            + [PlaceOrder(2, SYM, SELL, index, 7), PlaceOrder(5, SYM, SELL, index, 3),
               PlaceOrder(1, SYM, BUY, index, 10, IOC),
               PlaceOrder(3, SYM, BUY, bid, 5_000), PlaceOrder(4, SYM, SELL, ask, 5_000)])
    return venue


@pytest.mark.parametrize(
    ("index", "bid", "ask", "rate", "per_lot"),
    [
        # premium (20061 - 20001) / 20001 = 2_999_850.007 ppb -> 2_999_850 (toward zero);
        # F_8h = 2_999_850 + clamp(100_000 - 2_999_850, +-500_000) = 2_499_850;
        # hourly 2_499_850 / 8 = 312_481.25 -> 312_481; per lot at the mark 20001:
        # 20001 * 312_481 * 100 / 1e9 = 624.99 -> 624
        (20_001, 20_061, 20_101, 312_481, 624),
        # premium 6 / 20000 = 300_000: the clamp leaves the interest, 100_000 / 8 = 12_500;
        # 20000 * 12_500 * 100 / 1e9 = 25
        (20_000, 20_006, 20_010, 12_500, 25),
        # premium 500 / 20000 = 25_000_000 - 500_000 = 24_500_000, capped at 18_750_000;
        # / 8 = 2_343_750; 20000 * 2_343_750 * 100 / 1e9 = 4687.5 -> 4687
        (20_000, 20_500, 20_600, 2_343_750, 4_687),
        # impact ask 19950 below the index: premium -50 / 20000 = -2_500_000; F_8h =
        # -2_500_000 + 500_000 = -2_000_000; / 8 = -250_000; per lot -500: shorts pay longs
        (20_000, 19_900, 19_950, -250_000, -500),
    ],
    ids=["clamped", "interest-only", "capped", "negative"],
)
def test_funding_rate_per_lot_and_payments_follow_the_formula(
        impl: str, index: int, bid: int, ask: int, rate: int, per_lot: int) -> None:
    # Arrange
    venue = _funding_venue(impl, index, bid, ask)
    wallets = {a: balance(venue, a) for a in (1, 2, 5)}

    # Act: cross the first funding time (1 h): 720 identical 5 s premium samples
    events = run(venue, AdvanceTime(NS_PER_HOUR))

    # Assert: at the settlement the time to funding is 0, so the mark is
    # median(index, index + basis, last trade = index) = the index
    [settled] = of(events, FundingSettled)
    assert (settled.ts_ns, settled.rate, settled.price, settled.per_lot, settled.long_lots) == (
        NS_PER_HOUR, rate, index, per_lot, 10)
    payments = of(events, FundingPayment)
    # the long pays 10 * per_lot; the shorts receive 7 and 3 times it
    assert payments == [FundingPayment(1, SYM, 10, -10 * per_lot),
                        FundingPayment(2, SYM, -7, 7 * per_lot),
                        FundingPayment(5, SYM, -3, 3 * per_lot)]
    assert sum(p.amount for p in payments) == 0
    assert settled.paid == 10 * abs(per_lot)
    assert {a: balance(venue, a) - wallets[a] for a in (1, 2, 5)} == {
        1: -10 * per_lot, 2: 7 * per_lot, 5: 3 * per_lot}
    assert venue.market(SYM).last_funding_rate == rate
    venue.check_invariants()


@pytest.mark.parametrize(
    ("start", "session_open", "rate", "per_lot"),
    [
        # Saturday 2026-03-07 12:00 UTC: NASDAQ is closed, no funding
        (ts(2026, 3, 7, 12), False, 0, 0),
        # Wednesday 2026-03-04 15:00 UTC = 10:00 EST: open, the formula of the "clamped" case
        (ts(2026, 3, 4, 15), True, 312_481, 624),
    ],
    ids=["saturday", "wednesday"],
)
def test_funding_is_zero_while_the_underlying_is_closed(
        impl: str, start: int, session_open: bool, rate: int, per_lot: int) -> None:
    # Arrange: NVDA-PERP with its real session (US regular hours)
    venue = _funding_venue(impl, 20_001, 20_061, 20_101, start_ts=start, session=US_REGULAR)
    assert venue.market(SYM).session_open is session_open
    before = {a: balance(venue, a) for a in (1, 2, 5)}

    # Act: one hour later
    events = run(venue, AdvanceTime(start + NS_PER_HOUR))

    # Assert
    [settled] = of(events, FundingSettled)
    assert (settled.ts_ns, settled.rate, settled.per_lot, settled.paid) == (
        start + NS_PER_HOUR, rate, per_lot, 10 * per_lot)
    assert len(of(events, FundingPayment)) == (3 if per_lot else 0)
    assert balance(venue, 1) - before[1] == -10 * per_lot
    venue.check_invariants()


# -- mark price -----------------------------------------------------------------------------


# index 1_000_000 ticks ($10,000): the first input is 1_000_000 + 1_000_000 * 12_500 / 1e9
# = 1_000_012.5 -> 1_000_012 with an hour to funding; with no basis samples the second is the
# index 1_000_000; the third is the last trade
BIG = 1_000_000


@pytest.mark.parametrize(
    ("trade", "mark"),
    [
        (BIG + 5, BIG + 5),  # sorted (1_000_000, 1_000_005, 1_000_012): the last trade
        (BIG + 20, BIG + 12),  # sorted (1_000_000, 1_000_012, 1_000_020): the funding basis
        (BIG - 20, BIG),  # sorted (999_980, 1_000_000, 1_000_012): the index + basis MA
    ],
    ids=["last-trade", "funding-basis", "index-plus-ma"],
)
def test_mark_is_the_median_of_three(impl: str, trade: int, mark: int) -> None:
    # Arrange
    venue = make_venue(impl)
    run_all(venue, [SetIndexPrice(SYM, BIG), Deposit(1, usd(100_000)), Deposit(2, usd(100_000)),
                    PlaceOrder(2, SYM, SELL, trade, 1)])
    assert venue.market(SYM).mark == BIG  # median(1_000_012, 1_000_000, no trade: index)

    # Act
    run(venue, PlaceOrder(1, SYM, BUY, trade, 1, IOC))

    # Assert
    assert venue.market(SYM).last_price == trade
    assert venue.market(SYM).mark == mark
    venue.check_invariants()


def test_mark_median_picks_the_30s_average_of_mid_minus_index(impl: str) -> None:
    # Arrange: a trade at 1_000_100, then a 1-lot bid 1_000_030 / ask 1_000_050 (mid
    # 1_000_040, basis 40; too thin for the impact notional, so the premium stays 0)
    venue = make_venue(impl)
    run_all(venue, [SetIndexPrice(SYM, BIG), Deposit(1, usd(100_000)), Deposit(2, usd(100_000)),
                    PlaceOrder(2, SYM, SELL, BIG + 100, 1),
                    PlaceOrder(1, SYM, BUY, BIG + 100, 1, IOC),
                    PlaceOrder(1, SYM, BUY, BIG + 30, 1), PlaceOrder(2, SYM, SELL, BIG + 50, 1)])
    # median(1_000_012, 1_000_000, 1_000_100)
    assert venue.market(SYM).mark == BIG + 12

    # Act: 30 one-second samples of the basis
    events = run(venue, AdvanceTime(30 * NS_PER_SECOND))

    # Assert: first input 1_000_000 + 1_000_000 * 12_500 * 3570 s / 3600 s / 1e9 = 12.4 -> 12;
    # second 1_000_000 + 40; third 1_000_100: the median is 1_000_040
    assert of(events, MarkUpdated)[-1].mark == BIG + 40
    assert venue.market(SYM).mark == BIG + 40
    venue.check_invariants()


def _hl_venue(impl: str) -> Venue:
    """mark_method "hl", index 20000, one trade at 20020, then bid 20010 (1) / ask 20030 (2)."""
    venue = make_venue(impl, mark_method="hl", maker_fee_ppb=0, taker_fee_ppb=0)
    run_all(venue, [SetIndexPrice(SYM, 20_000), Deposit(1, usd(10_000)), Deposit(2, usd(10_000)),
                    Deposit(5, usd(10_000)), PlaceOrder(2, SYM, SELL, 20_020, 1),
                    PlaceOrder(1, SYM, BUY, 20_020, 1, IOC)])
    assert venue.market(SYM).mark == 20_000  # no bid/ask yet: the index is the only input
    return venue


def test_hl_mark_follows_the_book_median_as_soon_as_quotes_rest(impl: str) -> None:
    # Arrange
    venue = _hl_venue(impl)

    # Act: quotes rest on both sides (no trade, no index update, no time)
    run_all(venue, [PlaceOrder(1, SYM, BUY, 20_010, 1), PlaceOrder(2, SYM, SELL, 20_030, 2)])

    # Assert: two inputs, the index 20000 (no EMA yet) and median(bid 20010, ask 20030, last
    # 20020) = 20020: their mean (20000 + 20020) // 2 = 20010. The mark is a function of the
    # book, so it must not wait for an unrelated update to reflect it.
    mark = venue.market(SYM).mark
    run(venue, SetIndexPrice(SYM, 20_000))  # the same index again: nothing new
    assert (mark, venue.market(SYM).mark) == (20_010, 20_010)
    venue.check_invariants()


def test_hl_mark_is_the_median_of_the_ema_basis_the_book_median_and_the_local_ema(
        impl: str) -> None:
    # Arrange
    venue = _hl_venue(impl)
    run_all(venue, [PlaceOrder(1, SYM, BUY, 20_010, 1), PlaceOrder(2, SYM, SELL, 20_030, 2)])

    # Act 1: one sample: the EMAs start at their samples: basis (20010 + 20030) // 2 - 20000
    # = 20, local median(20010, 20030, 20020) = 20020
    run(venue, AdvanceTime(NS_PER_SECOND))

    # Assert 1: median(20000 + 20, 20020, 20020)
    assert venue.market(SYM).mark == 20_020

    # Act 2: the index to 20005 (inputs 20025, 20020, 20020: unchanged), then a trade at 20030
    # makes the book median median(20010, 20030, 20030) = 20030
    run(venue, SetIndexPrice(SYM, 20_005))
    assert venue.market(SYM).mark == 20_020
    run(venue, PlaceOrder(5, SYM, BUY, 20_030, 1, IOC))

    # Assert 2: median(20025, 20030, 20020) = 20025, the index + EMA basis
    assert venue.market(SYM).mark == 20_025

    # Act 3: one more sample: basis (20010 + 20030) // 2 - 20005 = 15; EMA 150 s:
    # 20e6 + trunc((15e6 - 20e6) / 150) = 20e6 - 33_333 = 19_966_667 -> 19 ticks; local EMA
    # 30 s: 20_020e6 + trunc((20_030e6 - 20_020e6) / 30) = 20_020_333_333 -> 20020
    run(venue, AdvanceTime(2 * NS_PER_SECOND))

    # Assert 3: median(20005 + 19, 20030, 20020) = 20024
    assert venue.market(SYM).mark == 20_024
    venue.check_invariants()


# -- conditional orders -----------------------------------------------------------------------


def _long_10(impl: str) -> Venue:
    venue = make_venue(impl, maker_fee_ppb=0, taker_fee_ppb=0)
    run_all(venue, [SetIndexPrice(SYM, 20_000), Deposit(1, usd(10_000)), Deposit(2, usd(10_000)),
                    Deposit(3, usd(10_000)), PlaceOrder(2, SYM, SELL, 20_000, 10),
                    PlaceOrder(1, SYM, BUY, 20_000, 10, IOC)])
    return venue


def test_sell_stop_fires_when_the_mark_falls_to_the_trigger(impl: str) -> None:
    # Arrange: a reduce-only sell stop at 19500; account 3 bids 10 at 19400
    venue = _long_10(impl)
    [cond] = of(run(venue, PlaceConditional(1, SYM, SELL, 10, 19_500, "stop", reduce_only=True)),
                ConditionalAccepted)
    run(venue, PlaceOrder(3, SYM, BUY, 19_400, 10))
    above = run(venue, SetIndexPrice(SYM, 19_501))
    assert of(above, OrderTriggered) == []

    # Act
    events = run(venue, SetIndexPrice(SYM, 19_500))

    # Assert: a market sell limited at 19500 - 19500 * 5% = 19500 - 975 = 18525
    assert of(events, OrderTriggered) == [OrderTriggered(1, SYM, cond.order_id, 19_500, 19_500)]
    [accepted] = of(events, OrderAccepted)
    assert (accepted.order_id, accepted.price, accepted.limit, accepted.reduce_only) == (
        cond.order_id, None, 18_525, True)
    assert [(f.price, f.qty, f.taker_account) for f in of(events, Fill)] == [(19_400, 10, 1)]
    # realized 10 * (19400 - 20000) * 100 = -600_000
    assert venue.account(1).positions == {}
    assert balance(venue, 1) == usd(10_000) - 600_000
    venue.check_invariants()


def test_take_profit_fires_when_the_mark_rises_to_the_trigger(impl: str) -> None:
    # Arrange: a take-profit sell limit 20400 triggered at 20500; account 3 bids 10 at 20450
    venue = _long_10(impl)
    [cond] = of(run(venue, PlaceConditional(1, SYM, SELL, 10, 20_500, "take_profit",
                                            price=20_400)), ConditionalAccepted)
    run(venue, PlaceOrder(3, SYM, BUY, 20_450, 10))
    below = run(venue, SetIndexPrice(SYM, 20_499))
    assert of(below, OrderTriggered) == []

    # Act
    events = run(venue, SetIndexPrice(SYM, 20_500))

    # Assert: a GTC limit at 20400 that trades at the bid's 20450
    assert of(events, OrderTriggered) == [OrderTriggered(1, SYM, cond.order_id, 20_500, 20_500)]
    [accepted] = of(events, OrderAccepted)
    assert (accepted.price, accepted.limit, accepted.tif) == (20_400, 20_400, int(GTC))
    assert [(f.price, f.qty) for f in of(events, Fill)] == [(20_450, 10)]
    # realized 10 * 450 * 100 = 450_000
    assert balance(venue, 1) == usd(10_000) + 450_000
    venue.check_invariants()


def test_a_canceled_conditional_never_fires(impl: str) -> None:
    # Arrange
    venue = _long_10(impl)
    [by_id] = of(run(venue, PlaceConditional(1, SYM, SELL, 10, 19_500, "stop")),
                 ConditionalAccepted)
    [by_cid] = of(run(venue, PlaceConditional(1, SYM, SELL, 4, 19_600, "stop",
                                              client_order_id="tp-1")), ConditionalAccepted)
    assert venue.account(1).open_orders == 2

    # Act
    first = run(venue, CancelOrder(1, SYM, order_id=by_id.order_id))
    second = run(venue, CancelOrder(1, SYM, client_order_id="tp-1"))
    moved = run(venue, SetIndexPrice(SYM, 19_000))

    # Assert
    assert of(first, OrderCanceled) == [OrderCanceled(1, SYM, by_id.order_id, 10, "user")]
    assert of(second, OrderCanceled) == [OrderCanceled(1, SYM, by_cid.order_id, 4, "user")]
    assert of(moved, OrderTriggered) == [] and of(moved, Fill) == []
    assert venue.account(1).open_orders == 0
    assert venue.account(1).positions[SYM].size == 10
    refused(venue, CancelOrder(1, SYM, order_id=by_id.order_id), R.UNKNOWN_ORDER)
    venue.check_invariants()


def test_cancel_all_removes_resting_and_conditional_orders(impl: str) -> None:
    # Arrange
    venue = _long_10(impl)
    run_all(venue, [PlaceOrder(1, SYM, BUY, 19_900, 2),
                    PlaceConditional(1, SYM, SELL, 10, 19_500, "stop")])

    # Act
    events = run(venue, CancelAll(1))

    # Assert
    assert sorted((e.remaining, e.reason) for e in of(events, OrderCanceled)) == [
        (2, "cancel_all"), (10, "cancel_all")]
    assert venue.open_orders(1) == []
    venue.check_invariants()
