"""The history the Binance routes read: trades, aggregate trades, one-minute candles, funding
settlements and every order's life (orders.py), recorded from the venue's events as the
sequencer runs them.

The venue keeps state, not history, so the facade keeps what Binance serves: every fill (a
trade), fills of one taker order at one price merged into an aggregate trade (Binance's
definition), a candle per minute of venue time with trades in it, and every funding
settlement. Each is bounded (the oldest are dropped) and starts empty when the server starts:
history from before a restart is not rebuilt from the journal. Times are venue time.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace
from typing import Any

from gaemi.engine.codes import Side
from gaemi.gateway.binance.orders import OrderRecord, Orders
from gaemi.risk.events import (
    Adl,
    ConditionalAccepted,
    Deposited,
    Fill,
    FundingPayment,
    FundingSettled,
    InsuranceTakeover,
    Liquidation,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderTriggered,
    Withdrawn,
)

__all__ = ["AggTrade", "Candle", "Funding", "Tape", "Trade"]

ORDER_EVENTS = {Fill, OrderAccepted, ConditionalAccepted, OrderCanceled, OrderAmended,
                OrderTriggered}
# events that move an account's balance or position by themselves -> Binance's
# ACCOUNT_UPDATE reason
ACCOUNT_REASONS: dict[type, str] = {
    FundingPayment: "FUNDING_FEE", Deposited: "DEPOSIT", Withdrawn: "WITHDRAW",
    Adl: "ADJUSTMENT", InsuranceTakeover: "INSURANCE_CLEAR", Liquidation: "ORDER"}

NS_PER_MS = 1_000_000
MINUTE_MS = 60_000
MAX_TRADES = 50_000  # per market
MAX_CANDLES = 7 * 24 * 60  # a week of one-minute candles per market
MAX_FUNDINGS = 1_000  # per market
MAX_PER_ACCOUNT = 1_000  # an account's own trades and income records (Binance's page size)
KLINE_MINUTES = {"1m": 1, "3m": 3, "5m": 5, "15m": 15, "30m": 30, "1h": 60, "2h": 120,
                 "4h": 240, "6h": 360, "8h": 480, "12h": 720, "1d": 1440}


@dataclass(slots=True)
class Trade:
    trade_id: int
    price: int  # ticks
    qty: int  # lots
    ms: int
    buyer_is_maker: bool


@dataclass(slots=True)
class AggTrade:
    agg_id: int
    price: int
    qty: int
    first_id: int
    last_id: int
    ms: int
    buyer_is_maker: bool
    taker_order_id: int


@dataclass(slots=True)
class UserTrade:
    """One side of a fill, as the account's own trade history shows it."""

    trade_id: int
    order_id: int
    symbol: str
    side: int
    price: int
    qty: int
    realized: int  # collateral units
    fee: int  # collateral units paid (negative: a rebate)
    maker: bool
    ms: int


@dataclass(slots=True)
class Income:
    """A change of the account's wallet: REALIZED_PNL, COMMISSION or FUNDING_FEE."""

    kind: str
    symbol: str
    amount: int  # collateral units, signed
    ms: int
    tran_id: int
    trade_id: int | None


@dataclass(slots=True)
class Candle:
    open_ms: int  # the minute's start
    open: int
    high: int
    low: int
    close: int
    volume: int  # lots
    quote: int  # micro-dollars (price x lots x multiplier)
    taker_buy_volume: int
    taker_buy_quote: int
    trades: int
    first_id: int
    last_id: int


@dataclass(slots=True)
class Funding:
    ms: int
    rate: int  # ppb for the interval
    price: int  # ticks: the settlement's notional basis (the mark, or the index)


def merge(bar: Candle, c: Candle) -> None:
    """Add the later one-minute candle ``c`` to ``bar``."""
    bar.high = max(bar.high, c.high)
    bar.low = min(bar.low, c.low)
    bar.close = c.close
    bar.volume += c.volume
    bar.quote += c.quote
    bar.taker_buy_volume += c.taker_buy_volume
    bar.taker_buy_quote += c.taker_buy_quote
    bar.trades += c.trades
    bar.last_id = c.last_id


def bar_of(candles: deque[Candle], open_ms: int, width: int) -> Candle | None:
    """The bar of ``width`` ms that opens at ``open_ms``, from the one-minute candles (the
    newest last); None when it has no trade."""
    inside = []
    for c in reversed(candles):
        if c.open_ms < open_ms:
            break
        if c.open_ms < open_ms + width:
            inside.append(c)
    if not inside:
        return None
    first = inside[-1]
    bar = Candle(open_ms, first.open, first.high, first.low, first.close, first.volume,
                 first.quote, first.taker_buy_volume, first.taker_buy_quote, first.trades,
                 first.first_id, first.last_id)
    for c in reversed(inside[:-1]):
        merge(bar, c)
    return bar


class _Market:
    __slots__ = ("trades", "aggs", "candles", "fundings", "next_agg")

    def __init__(self) -> None:
        self.trades: deque[Trade] = deque(maxlen=MAX_TRADES)
        self.aggs: deque[AggTrade] = deque(maxlen=MAX_TRADES)
        self.candles: deque[Candle] = deque(maxlen=MAX_CANDLES)
        self.fundings: deque[Funding] = deque(maxlen=MAX_FUNDINGS)
        self.next_agg = 1


class Tape:
    """``observe`` is the Exchange's observer: it sees every command the venue runs."""

    def __init__(self, multipliers: dict[str, int], clock: Any) -> None:
        self.multipliers = multipliers  # symbol -> micro-dollars per tick per lot
        self.clock = clock  # () -> venue time, ns
        self.markets = {s: _Market() for s in multipliers}
        self.orders = Orders(multipliers)
        self.touched: set[str] = set()  # markets whose book may have moved (streams.py)
        # the user data stream's accounts, and their order updates of the current batch:
        # (account, the order as it stood after the event, execution type, fill or None, ms)
        self.listening: set[int] = set()
        self.private: list[tuple[int, OrderRecord, str, Fill | None, int]] = []
        # listening account -> (the reason of its first change in the batch, its markets)
        self.moved: dict[int, tuple[str, set[str]]] = {}
        self.liquidations: deque[Liquidation] = deque(maxlen=MAX_TRADES)
        self.liquidations_seen = 0
        self.user_trades: dict[int, deque[UserTrade]] = {}
        self.income: dict[int, deque[Income]] = {}
        self._tran_id = 0

    def observe(self, command: Any, events: list[Any]) -> None:
        ms = self.clock() // NS_PER_MS
        orders = self.orders
        for e in events:
            t = type(e)
            if t in ORDER_EVENTS:
                orders.observe(e, ms)
                self.touched.add(e.symbol)
                if self.listening:
                    self._private(e, ms)
            elif self.listening and t in ACCOUNT_REASONS:
                self._moved(e, t)
            if t is Liquidation:
                self.liquidations.append(e)
                self.liquidations_seen += 1
            elif t is Fill:
                self._fill(e, ms)
                self._own_trades(e, ms)
            elif t is FundingPayment and e.amount:
                self._income(e.account_id, "FUNDING_FEE", e.symbol, e.amount, ms, None)
            elif t is FundingSettled:
                self.markets[e.symbol].fundings.append(Funding(e.ts_ns // NS_PER_MS, e.rate,
                                                               e.price))

    def _private(self, e: Any, ms: int) -> None:
        """Order updates of the accounts with a user data stream, as they stood."""
        t = type(e)
        if t is Fill:
            pairs = [(e.taker_account, e.taker_order_id), (e.maker_account, e.maker_order_id)]
        else:
            pairs = [(e.account_id, e.order_id)]
        for account, oid in pairs:
            if account not in self.listening:
                continue
            record = self.orders.by_id.get(oid)
            if record is None:
                continue
            kind = {Fill: "TRADE", OrderAccepted: "NEW", ConditionalAccepted: "NEW",
                    OrderAmended: "AMENDMENT", OrderTriggered: "NEW"}.get(t)
            if t is OrderCanceled:
                kind = "EXPIRED" if record.status == "EXPIRED" else "CANCELED"
            self.private.append((account, replace(record), kind or "NEW",
                                 e if t is Fill else None, ms))
            self.moved.setdefault(account, ("ORDER", set()))[1].add(record.symbol)

    def _moved(self, e: Any, t: type) -> None:
        """A change of balance or position without an order event of the account's own."""
        reason = ACCOUNT_REASONS[t]
        for account in (e.account_id, getattr(e, "counterparty", None)):
            if account is not None and account in self.listening:
                symbols = self.moved.setdefault(account, (reason, set()))[1]
                symbol = getattr(e, "symbol", None)
                if symbol is not None:
                    symbols.add(symbol)

    def _own_trades(self, e: Fill, ms: int) -> None:
        for account, oid, side, realized, fee, maker in (
                (e.taker_account, e.taker_order_id, e.taker_side, e.taker_realized,
                 e.taker_fee, False),
                (e.maker_account, e.maker_order_id, -e.taker_side, e.maker_realized,
                 e.maker_fee, True)):
            if account <= 0:  # the insurance fund, not a user
                continue
            trades = self.user_trades.get(account)
            if trades is None:
                trades = self.user_trades[account] = deque(maxlen=MAX_PER_ACCOUNT)
            trades.append(UserTrade(e.trade_id, oid, e.symbol, side, e.price, e.qty, realized,
                                    fee, maker, ms))
            if realized:
                self._income(account, "REALIZED_PNL", e.symbol, realized, ms, e.trade_id)
            if fee:
                self._income(account, "COMMISSION", e.symbol, -fee, ms, e.trade_id)

    def _income(self, account: int, kind: str, symbol: str, amount: int, ms: int,
                trade_id: int | None) -> None:
        if account <= 0:
            return
        records = self.income.get(account)
        if records is None:
            records = self.income[account] = deque(maxlen=MAX_PER_ACCOUNT)
        self._tran_id += 1
        records.append(Income(kind, symbol, amount, ms, self._tran_id, trade_id))

    def _fill(self, e: Fill, ms: int) -> None:
        m = self.markets[e.symbol]
        buyer_is_maker = e.taker_side == Side.SELL
        m.trades.append(Trade(e.trade_id, e.price, e.qty, ms, buyer_is_maker))
        last = m.aggs[-1] if m.aggs else None
        if last is not None and last.taker_order_id == e.taker_order_id and \
                last.price == e.price and last.ms == ms and e.taker_order_id:
            last.qty += e.qty
            last.last_id = e.trade_id
        else:
            m.aggs.append(AggTrade(m.next_agg, e.price, e.qty, e.trade_id, e.trade_id, ms,
                                   buyer_is_maker, e.taker_order_id))
            m.next_agg += 1
        minute = ms - ms % MINUTE_MS
        quote = e.price * e.qty * self.multipliers[e.symbol]
        bought = not buyer_is_maker
        c = m.candles[-1] if m.candles else None
        if c is None or c.open_ms != minute:
            m.candles.append(Candle(minute, e.price, e.price, e.price, e.price, e.qty, quote,
                                    e.qty if bought else 0, quote if bought else 0, 1,
                                    e.trade_id, e.trade_id))
            return
        c.high = max(c.high, e.price)
        c.low = min(c.low, e.price)
        c.close = e.price
        c.volume += e.qty
        c.quote += quote
        if bought:
            c.taker_buy_volume += e.qty
            c.taker_buy_quote += quote
        c.trades += 1
        c.last_id = e.trade_id
