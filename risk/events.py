"""What the venue says happened: the events ``Venue.submit`` returns, and the read-only views.

Every event has a ``kind`` (text, stable: the gateway forwards it) and only plain values, in
the venue's units: prices in ticks, sizes in lots, money in collateral units (micro-dollars),
rates in parts per billion per funding interval, time in nanoseconds.

Liquidation provenance: a ``Cause`` names what moved the mark (or the balance) that made an
account liquidatable: an index update, a fill, the passage of time (mark samples, session
change), a funding payment, or a liquidation that moved positions without a fill (a
takeover or ADL). ``liquidation_id`` and
``generation`` of a cause name the liquidation behind it, if any: a liquidation's generation
is its cause's generation + 1, so a direct shock gives generation 1 and a liquidation whose
fills moved the mark into the next account gives that account generation 2, and so on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, NamedTuple

__all__ = [
    "AccountView", "Adl", "BadDebt", "Cause", "ConditionalAccepted", "Deposited", "Fill",
    "FundingPayment", "FundingSettled", "InsuranceTakeover", "LeverageSet", "Liquidation",
    "MarginModeSet", "MarketView", "MarkUpdated", "OrderAccepted", "OrderAmended",
    "OrderCanceled", "OrderTriggered", "PositionView", "Rejected", "TradingStatusChanged",
    "Withdrawn",
]


class Cause(NamedTuple):
    """What moved the mark (or the balance) behind a liquidation."""

    kind: str  # "index" | "fill" | "time" | "funding" | "liquidation" (a takeover or ADL)
    seq: int  # the command (journal sequence number) that carried it
    trade_id: int | None = None  # the fill that moved the mark, for kind "fill"
    liquidation_id: int | None = None  # the liquidation behind that move, if any
    generation: int = 0  # that liquidation's generation (0: none)


@dataclass(slots=True)
class Rejected:
    kind: ClassVar[str] = "rejected"
    command: str
    reason: int  # engine.codes.RejectReason
    account_id: int | None = None
    symbol: str | None = None
    order_id: int | None = None
    client_order_id: str | None = None


@dataclass(slots=True)
class Deposited:
    kind: ClassVar[str] = "deposit"
    account_id: int
    amount: int
    balance: int


@dataclass(slots=True)
class Withdrawn:
    kind: ClassVar[str] = "withdrawal"
    account_id: int
    amount: int
    balance: int


@dataclass(slots=True)
class OrderAccepted:
    kind: ClassVar[str] = "order_accepted"
    account_id: int
    symbol: str
    order_id: int
    client_order_id: str | None
    side: int
    price: int | None  # None: a market order (it trades as a limit at ``limit``)
    qty: int
    tif: int
    post_only: bool
    reduce_only: bool
    limit: int  # the price the book saw (market protection or bankruptcy price applied)
    liquidation_id: int | None = None


@dataclass(slots=True)
class OrderCanceled:
    """An order left the book (or the trigger list) without filling ``remaining`` lots.

    ``reason``: "user", "cancel_all", "expired" (IOC/market remainder), "fok", "self_trade"
    (the account's own resting order met its new order), "liquidation" (the account is being
    liquidated), "reduce_only" (the position shrank below it), "rejected" (a triggered order
    failed its checks)."""

    kind: ClassVar[str] = "order_canceled"
    account_id: int
    symbol: str
    order_id: int
    remaining: int
    reason: str


@dataclass(slots=True)
class OrderAmended:
    kind: ClassVar[str] = "order_amended"
    account_id: int
    symbol: str
    order_id: int
    price: int
    qty: int  # the new open size
    reason: str  # "user", or "reduce_only" (trimmed to the shrunk position)


@dataclass(slots=True)
class ConditionalAccepted:
    kind: ClassVar[str] = "conditional_accepted"
    account_id: int
    symbol: str
    order_id: int
    client_order_id: str | None
    side: int
    qty: int
    trigger_price: int
    trigger_kind: str
    price: int | None
    reduce_only: bool


@dataclass(slots=True)
class OrderTriggered:
    kind: ClassVar[str] = "order_triggered"
    account_id: int
    symbol: str
    order_id: int
    trigger_price: int
    mark: int


@dataclass(slots=True)
class Fill:
    kind: ClassVar[str] = "fill"
    symbol: str
    trade_id: int
    price: int
    qty: int
    taker_side: int
    taker_account: int
    taker_order_id: int
    maker_account: int
    maker_order_id: int
    maker_remaining: int
    taker_fee: int  # for a liquidation fill: the liquidation fee, paid to the fund
    maker_fee: int  # negative: a rebate
    liquidation_id: int | None = None
    taker_realized: int = 0  # the PnL the fill realized for the taker (collateral units)
    maker_realized: int = 0  # ... and for the maker (0 for what only opens)


@dataclass(slots=True)
class LeverageSet:
    kind: ClassVar[str] = "leverage"
    account_id: int
    symbol: str
    leverage: int


@dataclass(slots=True)
class MarginModeSet:
    kind: ClassVar[str] = "margin_mode"
    account_id: int
    symbol: str
    mode: str


@dataclass(slots=True)
class MarkUpdated:
    kind: ClassVar[str] = "mark"
    symbol: str
    ts_ns: int
    index: int
    mark: int
    funding_rate: int  # the estimate for the coming settlement, ppb per interval
    next_funding_ts: int
    open_interest: int  # lots, one side


@dataclass(slots=True)
class FundingSettled:
    kind: ClassVar[str] = "funding"
    symbol: str
    ts_ns: int
    rate: int  # ppb for this interval; > 0: longs pay shorts
    price: int  # ticks, the notional basis (mark or index)
    per_lot: int  # collateral units each long lot paid (each short lot received)
    long_lots: int
    paid: int  # total paid by the paying side = total received by the other


@dataclass(slots=True)
class FundingPayment:
    kind: ClassVar[str] = "funding_payment"
    account_id: int
    symbol: str
    size: int
    amount: int  # > 0 received, < 0 paid


@dataclass(slots=True)
class Liquidation:
    """One liquidation slice of one position: ``qty`` lots closed at average ``price``.

    ``book_qty`` went through the book as an IOC limited at ``bankruptcy_price``;
    ``insurance_qty`` was taken over by the insurance fund at the bankruptcy price; ``adl_qty``
    was closed against auto-deleveraged opposite positions at the bankruptcy price."""

    kind: ClassVar[str] = "liquidation"
    liquidation_id: int
    account_id: int
    symbol: str
    side: int  # the side of the closing trade (SELL closes a long)
    qty: int
    price: int  # average execution price, ticks, rounded toward the bankruptcy price
    mark: int  # the mark that triggered it
    bankruptcy_price: int
    book_qty: int
    insurance_qty: int
    adl_qty: int
    fee: int  # liquidation fee paid to the insurance fund
    generation: int
    cause: Cause


@dataclass(slots=True)
class InsuranceTakeover:
    kind: ClassVar[str] = "insurance_takeover"
    liquidation_id: int
    symbol: str
    account_id: int
    qty: int
    price: int


@dataclass(slots=True)
class Adl:
    """An opposite position reduced by ``qty`` at the bankrupt account's bankruptcy price."""

    kind: ClassVar[str] = "adl"
    liquidation_id: int
    symbol: str
    account_id: int  # the deleveraged account (-n: an insurance fund)
    counterparty: int  # the bankrupt account (or fund)
    qty: int
    price: int
    rank: int  # 1 = the first in the queue


@dataclass(slots=True)
class BadDebt:
    """A loss no one could pay: what the fund covered and what remains uncovered."""

    kind: ClassVar[str] = "bad_debt"
    account_id: int
    symbol: str
    amount: int
    covered: int
    uncovered: int


@dataclass(slots=True)
class TradingStatusChanged:
    kind: ClassVar[str] = "trading_status"
    symbol: str
    status: str  # "open" or "halted"
    session_open: bool  # whether the underlying's market is open


# -- views -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PositionView:
    symbol: str
    size: int  # signed lots
    entry_price: int  # ticks, |cost| / |size| rounded half up; 0 when flat
    cost: int  # exact signed cost basis, tick x lots
    unrealized_pnl: int  # at the mark, collateral units
    margin_mode: str
    leverage: int
    isolated_margin: int
    maintenance_margin: int
    liquidation_price: int | None  # ticks, None when it cannot be liquidated by price


@dataclass(frozen=True, slots=True)
class AccountView:
    account_id: int
    balance: int  # collateral: cross wallet + isolated margins (realized PnL, fees, funding in)
    equity: int  # balance + unrealized PnL at the marks
    margin_used: int  # initial margin of positions and open orders (isolated: their margin)
    maintenance_margin: int
    available: int  # what new orders can use
    withdrawable: int
    positions: dict[str, PositionView]
    open_orders: int


@dataclass(frozen=True, slots=True)
class MarketView:
    symbol: str
    index: int | None
    mark: int | None
    last_price: int | None
    funding_rate: int  # estimate for the coming settlement, ppb per interval
    last_funding_rate: int
    next_funding_ts: int
    open_interest: int
    insurance_fund: int  # the fund's cash
    insurance_position: int  # lots the fund holds from takeovers
    tick_size: int
    lot_size: str
    multiplier: int
    status: str
    session_open: bool
    previous_close: int | None
    best_bid: int | None
    best_ask: int | None
