"""The venue's state: plain records, and ``State``, the one object every part reads and writes.

Records: ``Order`` (resting in a book), ``Conditional`` (held by the venue until its trigger),
``Slot`` (one account in one market: its position, margin settings and open orders),
``Account``, ``Market`` (one market's runtime state: book, prices, samples, funding, the
liquidation index), and ``Ticket``, one order on its way through validation, risk and the
book (a trader's, a triggered conditional, or a liquidation IOC).

``State`` holds the markets and accounts, the id counters, venue time and the money the venue
itself holds, plus the work lists of the command being run (``events``, the accounts and
markets it touched). The parts (margin, index, settlement, orders, upkeep, pricing,
liquidation, stabilise, handlers, views) are functions of a ``State``; the ``Venue`` owns one.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from sortedcontainers import SortedList

from gaemi.engine.codes import RejectReason as R
from gaemi.risk import commands as C
from gaemi.risk.calendar import NS_PER_DAY, NS_PER_SECOND
from gaemi.risk.events import Cause, Rejected
from gaemi.risk.markets import MarketSpec
from gaemi.risk.venue.arith import BUY, DEFAULT_LEVERAGE, next_multiple

__all__ = ["Account", "Conditional", "Market", "Order", "Slot", "State", "Ticket",
           "add_order_value"]


class Order:
    """A resting order, as the venue knows it (the book holds the same, for matching)."""

    __slots__ = ("order_id", "account_id", "symbol", "side", "price", "qty", "reduce_only",
                 "client_order_id", "post_only")

    def __init__(self, order_id: int, account_id: int, symbol: str, side: int, price: int,
                 qty: int, reduce_only: bool, client_order_id: str | None,
                 post_only: bool = False) -> None:
        self.order_id = order_id
        self.account_id = account_id
        self.symbol = symbol
        self.side = side
        self.price = price
        self.qty = qty
        self.reduce_only = reduce_only
        self.client_order_id = client_order_id
        self.post_only = post_only  # the book keeps it too (an amend re-checks it)


class Conditional:
    """A stop or take-profit held by the venue until the mark crosses its trigger."""

    __slots__ = ("order_id", "account_id", "symbol", "side", "qty", "trigger", "trigger_kind",
                 "price", "reduce_only", "client_order_id", "fires_below")

    def __init__(self, order_id: int, command: C.PlaceConditional) -> None:
        self.order_id = order_id
        self.account_id = command.account_id
        self.symbol = command.symbol
        self.side = int(command.side)
        self.qty = command.qty
        self.trigger = command.trigger_price
        self.trigger_kind = command.kind
        self.price = command.price
        self.reduce_only = command.reduce_only
        self.client_order_id = command.client_order_id
        # a sell stop and a buy take-profit fire when the mark falls to the trigger
        self.fires_below = (command.kind == "stop") == (command.side == -1)


class Slot:
    """One account in one market: its position, margin settings and open orders."""

    __slots__ = ("size", "cost", "isolated", "margin", "leverage", "buy_qty", "buy_value",
                 "sell_qty", "sell_value", "orders")

    def __init__(self, leverage: int) -> None:
        self.size = 0  # signed lots
        self.cost = 0  # signed cost basis, ticks x lots
        self.isolated = False
        self.margin = 0  # isolated margin, collateral units
        self.leverage = leverage
        self.buy_qty = 0  # open (non reduce-only) buy lots and their value at limit prices
        self.buy_value = 0
        self.sell_qty = 0
        self.sell_value = 0
        self.orders: dict[int, Order] = {}


def add_order_value(slot: Slot, side: int, qty: int, price: int, sign: int) -> None:
    """Add (``sign`` 1) or remove (-1) an order's lots and value from its slot's totals."""
    if side == BUY:
        slot.buy_qty += sign * qty
        slot.buy_value += sign * qty * price
    else:
        slot.sell_qty += sign * qty
        slot.sell_value += sign * qty * price


class Account:
    __slots__ = ("account_id", "wallet", "slots", "client_ids", "conditionals", "version",
                 "keyed", "last_symbol", "centers")

    def __init__(self, account_id: int) -> None:
        self.account_id = account_id
        self.wallet = 0
        self.slots: dict[str, Slot] = {}
        self.client_ids: dict[str, int] = {}
        self.conditionals: dict[int, Conditional] = {}
        self.version = 0  # bumped by every change of money or position
        self.keyed = 0  # the version its liquidation keys were computed at
        self.last_symbol: str | None = None
        self.centers: dict[str, int] = {}  # multi-market accounts: the marks keyed at


class Market:
    """The runtime state of one market."""

    def __init__(self, spec: MarketSpec, book: Any, fund: Account, start_ts: int) -> None:
        self.spec = spec
        self.symbol = spec.symbol
        self.mult = spec.multiplier
        self.book = book
        self.fund = fund
        # prices are positive ticks; 0 means "none yet": no index update has come, so no mark
        # (the views and the state hash show it as None)
        self.index = 0
        self.mark = 0
        self.last_price: int | None = None
        self.prev_close = 0
        self.status = "open"
        self.session_open = spec.session.is_open(start_ts) if spec.session else True
        self.long_oi = 0
        self.holders: dict[int, Slot] = {}
        self.liq_long: SortedList = SortedList()
        self.liq_short: SortedList = SortedList()
        self.liq_key: dict[int, tuple[bool, int]] = {}
        self.band_lo: SortedList = SortedList()  # (low edge, account) of multi-market keys
        self.band_hi: SortedList = SortedList()
        self.band_of: dict[int, tuple[int, int]] = {}
        self.cond_below: SortedList = SortedList()  # (trigger, order_id): fire when mark <= trigger
        self.cond_above: SortedList = SortedList()  # fire when mark >= trigger
        self.basis: deque[int] = deque(maxlen=spec.basis_window_s)
        self.basis_sum = 0
        self.ema_basis: int | None = None
        self.ema_local: int | None = None
        self.prem_sum = 0
        self.prem_weight = 0
        self.prem_n = 0
        self.next_sample = next_multiple(start_ts, NS_PER_SECOND)
        self.next_premium = next_multiple(start_ts, spec.premium_sample_ns)
        self.next_funding = next_multiple(start_ts, spec.funding_interval_ns)
        self.rate_cache: int | None = None  # the funding estimate, until the samples change
        self.last_funding_rate = 0
        self.leverage_brackets = [(t.max_notional if t.max_notional is not None else 2**126,
                                   t.max_leverage) for t in spec.tiers]
        self.book_mark = spec.mark_method == "hl"  # the mark reads best bid/ask directly
        self.cause = Cause("index", 0)
        self.sweep = False  # a key or the mark changed since the last sweep
        self.drift_residue = 0  # book-driven index: sub-tick steps, in 1/EMA_SCALE ticks
        self.limit_day = start_ts // NS_PER_DAY  # no session: the limit's day is the UTC day
        self.last_liq: tuple[int, int, int] | None = None  # (ts, liquidation id, generation)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["book"] = None  # a snapshot stores the resting orders instead (Venue)
        return state


class Ticket:
    """One order on its way through validation, pre-trade risk and the book.

    ``price`` None is a market order; ``limit`` is the price the book sees (set by the risk
    check); ``order_id`` None until one is assigned (a triggered conditional keeps its own);
    ``parent`` the cause a triggered or liquidation order inherits; ``liquidation_id`` and
    ``bankruptcy`` for a liquidation slice; ``command`` what a rejection names."""

    __slots__ = ("account", "market", "order_id", "side", "price", "qty", "tif", "post_only",
                 "reduce_only", "client_order_id", "limit", "parent", "liquidation_id",
                 "bankruptcy", "command")

    def __init__(self, account: Account, market: Market, side: Any, price: Any, qty: Any,
                 tif: Any, *, command: Any, post_only: Any = False, reduce_only: Any = False,
                 client_order_id: Any = None, order_id: int | None = None,
                 parent: Cause | None = None, liquidation_id: int | None = None,
                 bankruptcy: int = 0) -> None:
        self.account = account
        self.market = market
        self.order_id = order_id
        self.side = side
        self.price = price
        self.qty = qty
        self.tif = tif
        self.post_only = post_only
        self.reduce_only = reduce_only
        self.client_order_id = client_order_id
        self.limit = 0
        self.parent = parent
        self.liquidation_id = liquidation_id
        self.bankruptcy = bankruptcy
        self.command = command


class State:
    """Everything the venue knows, and the work lists of the command being run."""

    def __init__(self, start_ts: int, book_name: str) -> None:
        self.time = start_ts
        self.seq = 0
        self.fee_pool = 0
        self.bad_debt = 0
        self.net_deposits = 0
        self.funding_net = 0  # every funding payment ever made, summed: always zero
        self.next_order_id = 1
        self.next_trade_id = 1
        self.next_liq_id = 1
        self.book_name = book_name
        self.accounts: dict[int, Account] = {}
        self.markets: dict[str, Market] = {}
        self.funds: dict[int, Market] = {}  # a fund's account id (negative) -> its market
        self.orders: dict[int, Order] = {}
        self.conditionals: dict[int, Conditional] = {}
        self.multi: set[int] = set()  # cross accounts with positions in several markets
        self.touched: set[int] = set()  # accounts whose money or position changed
        self.stale_keys: set[int] = set()  # multi-market accounts whose other marks moved
        self.dirty: set[str] = set()  # markets to reprice
        self.mark_epoch = 0
        self.cur_seq = 0  # the sequence number the running command will take
        self.events: list[Any] = []  # the running command's events
        self.failed = False  # a command raised: the state may be half applied

    def reject(self, command: Any, reason: R, **fields: Any) -> None:
        self.events.append(Rejected(type(command).__name__, int(reason), **fields))

    def find_account(self, account_id: object) -> Account | None:
        """The account of a plain-int id (True must not find account 1), else None."""
        if account_id.__class__ is not int:
            return None
        return self.accounts.get(account_id)

    def account_or_fund(self, aid: int) -> Account:
        return self.accounts[aid] if aid > 0 else self.funds[aid].fund

    def slot(self, acct: Account, symbol: str) -> Slot:
        """The account's slot in a market, created with the default leverage if new."""
        slot = acct.slots.get(symbol)
        if slot is None:
            spec = self.markets[symbol].spec
            slot = acct.slots[symbol] = Slot(min(DEFAULT_LEVERAGE, spec.max_leverage))
        return slot

    def new_order_id(self) -> int:
        oid = self.next_order_id
        self.next_order_id += 1
        return oid

    def new_trade_id(self) -> int:
        tid = self.next_trade_id
        self.next_trade_id += 1
        return tid

    def new_liquidation_id(self) -> int:
        lid = self.next_liq_id
        self.next_liq_id += 1
        return lid
