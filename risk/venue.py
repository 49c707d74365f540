"""The venue: one sequenced pipeline that owns the order books and the accounts.

Theory of operation
-------------------
``Venue.submit(command)`` is the only way state changes. Each command runs the pipeline of
docs/design.md §5 to completion before the next one starts:

1. validate (market, account, bounds, types)          -> ``Rejected`` value, nothing changed
2. pre-trade risk (trading status, price band and daily limit, max order size, reduce-only,
   open-interest cap, initial margin including open orders)  -> ``Rejected``, nothing changed
3. match in the market's ``engine`` book (price-time priority, self-trade prevention)
4. settle every fill: positions, realized PnL, fees, isolated-margin transfers
5. stabilise: reprice the touched markets (index, mark), release conditional orders whose
   trigger the mark crossed, and run the liquidation sweep until no account is liquidatable
6. journal the command (accepted commands only: a rejection changed nothing), then return
   the events.

The first rejection wins. A rejected command is not journaled and does not consume a sequence
number, so the journal replays to the identical state.

Money (all integers, collateral units = micro-dollars)::

    sum(wallets) + sum(isolated margins) + sum(insurance funds) + fee_pool
        - bad_debt - sum(cost_i * multiplier_i) == net_deposits

where ``cost_i`` is the exact signed cost basis (ticks x lots) of every open position. Because
long lots equal short lots in every market, ``-sum(cost * multiplier)`` is the total unrealized
PnL at any common price, so this is "balances + fees + insurance fund = net deposits" with open
positions marked at any price. ``check_invariants`` verifies it after every command in the
tests. ``net_deposits`` counts the insurance funds' opening balances as deposits.

Rounding policy (every division names its direction; the exchange never pays for rounding
except where stated):

* fees and liquidation fees round up; maker rebates round down;
* initial and maintenance margin round up;
* closing part of a position removes ``ceil(cost * closed / size)`` of its cost basis, so the
  realized PnL rounds down; the remainder stays in the open position's cost, and the last
  close realizes it exactly: no unit is lost or created;
* funding is computed once per lot, ``per_lot = price * rate * multiplier / 1e9`` rounded toward
  zero, and each position pays or receives ``size * per_lot``: since long lots equal short lots
  the payments sum to exactly zero and there is no residue to place;
* the bankruptcy price rounds toward the mark (up for a long), so rounding never leaves an
  account below zero; the insurance fund or the auto-deleveraged side bears that sub-tick;
* the mark, its inputs and the rates round toward zero.

Liquidation (perp-mechanics.md §4, §9.4-9.5). An account is liquidatable when its equity is
below its maintenance margin at the marks (isolated: the position's margin plus its PnL
against its maintenance margin). The venue cancels the account's open and conditional orders,
then closes the position in slices (all of it below ``partial_liquidation_notional``, else
``partial_liquidation_ppb`` of it per slice) until the account is healthy or flat. Each slice
is an IOC limited at the slice's bankruptcy price, which allocates the account's equity to the
slice in proportion to its share of the maintenance margin (the dYdX rule, exact for one
position). Whatever the book does not fill is taken over by the market's insurance fund at
the bankruptcy price, if the fund can carry it (its equity stays above its own maintenance
margin); otherwise it is closed by auto-deleveraging the opposite positions ranked by
PnL% x effective leverage (BitMEX). The liquidation fee is what the fills earned above the
bankruptcy price, capped at ``liquidation_fee_ppb`` of the notional, and goes to the fund.
A flat account left below zero is made whole by the fund; what the fund cannot pay is
counted in ``bad_debt``.

The sweep never scans every account: each market keeps its positions in two sorted lists keyed
by liquidation price (longs trigger at or below their key, shorts at or above), so a mark update
costs O(log n + k) for k accounts near or past their price. A key is the exact liquidation
price given the account's other positions at their current marks, widened by two ticks to
absorb the rounding up of the margin; candidates are confirmed by the exact integer test.
A cross account with positions in several markets is keyed as if its other marks sat at the
adverse edge of a 1% band around their values when it was keyed, and re-keyed only when a
mark leaves its band; each market keeps those bands in sorted lists too, so a mark update
stays O(log n + k) for them as well.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import asdict
from fractions import Fraction
from pathlib import Path
from typing import Any

from sortedcontainers import SortedList

from gaemi.engine import book_class
from gaemi.engine.codes import (
    MAX_ACCOUNT,
    EventKind,
    RejectReason as R,
    SelfTradePrevention,
    Side,
    TimeInForce,
)
from gaemi.engine.errors import InvariantViolation
from gaemi.risk import commands as C
from gaemi.risk.calendar import NS_PER_DAY, NS_PER_SECOND, Session
from gaemi.risk.events import (
    AccountView, Adl, BadDebt, Cause, ConditionalAccepted, Deposited, Fill, FundingPayment,
    FundingSettled, InsuranceTakeover, LeverageSet, Liquidation, MarginModeSet, MarketView,
    MarkUpdated, OrderAccepted, OrderAmended, OrderCanceled, OrderTriggered, PositionView,
    Rejected, TradingStatusChanged, Withdrawn,
)
from gaemi.risk.journal import JournalWriter
from gaemi.risk.markets import EIGHT_HOURS_NS, PPB, PRESETS, MarginTier, MarketSpec


__all__ = ["Venue", "MAX_AMOUNT", "DEFAULT_LEVERAGE", "MAX_FUNDINGS_PER_STEP"]

MAX_AMOUNT = 10**15  # one deposit or withdrawal: a billion dollars
DEFAULT_LEVERAGE = 10
EMA_SCALE = 1_000_000  # EMAs of prices keep six decimal places of a tick
KEY_SLACK = 2  # ticks by which a liquidation key is widened (see the module docstring)
MULTI_BAND_PPB = 10_000_000  # 1%: the mark band a multi-market account is keyed for
# one AdvanceTime settles at most this many funding intervals of any market (bounded work)
MAX_FUNDINGS_PER_STEP = 1_000
_NO_LONG_KEY = -1  # a long that no positive price can liquidate
_CLIENT_ID_MAX = 36
_BUY, _SELL = int(Side.BUY), int(Side.SELL)  # plain ints: cheaper to compare than the enum
_STP = SelfTradePrevention.CANCEL_RESTING
_SIDE_TYPES = (int, Side)
_TIF_TYPES = (int, TimeInForce)  # an account's own resting order leaves, not the taker

_CANCEL_REASON = {
    R.SELF_TRADE_PREVENTED: "self_trade",
    R.FOK_NOT_FILLABLE: "fok",
}


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _toward_zero(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _is_int(value: object) -> bool:
    return isinstance(value, int) and value.__class__ is not bool


class _Order:
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


class _Conditional:
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
        self.fires_below = (command.kind == "stop") == (command.side == _SELL)


class _Slot:
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
        self.orders: dict[int, _Order] = {}


class _Account:
    __slots__ = ("account_id", "wallet", "slots", "client_ids", "conditionals", "version",
                 "keyed", "last_symbol", "centers")

    def __init__(self, account_id: int) -> None:
        self.account_id = account_id
        self.wallet = 0
        self.slots: dict[str, _Slot] = {}
        self.client_ids: dict[str, int] = {}
        self.conditionals: dict[int, _Conditional] = {}
        self.version = 0  # bumped by every change of money or position
        self.keyed = 0  # the version its liquidation keys were computed at
        self.last_symbol: str | None = None
        self.centers: dict[str, int] = {}  # multi-market accounts: the marks keyed at


class _Market:
    """The runtime state of one market."""

    def __init__(self, spec: MarketSpec, book: Any, fund: _Account, start_ts: int) -> None:
        self.spec = spec
        self.symbol = spec.symbol
        self.mult = spec.multiplier
        self.book = book
        self.fund = fund
        self.index: int | None = None
        self.mark: int | None = None
        self.last_price: int | None = None
        self.prev_close: int | None = None
        self.status = "open"
        self.session_open = spec.session.is_open(start_ts) if spec.session else True
        self.long_oi = 0
        self.holders: dict[int, _Slot] = {}
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
        self.next_sample = _next_multiple(start_ts, NS_PER_SECOND)
        self.next_premium = _next_multiple(start_ts, spec.premium_sample_ns)
        self.next_funding = _next_multiple(start_ts, spec.funding_interval_ns)
        self.rate_cache: int | None = None  # the funding estimate, until the samples change
        self.last_funding_rate = 0
        self.leverage_brackets = [(t.max_notional if t.max_notional is not None else 2**126,
                                   t.max_leverage) for t in spec.tiers]
        self.unlimited = spec.daily_limit_ppb is None
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


def _next_multiple(ts: int, step: int) -> int:
    return (ts // step + 1) * step


class Venue:
    """A perpetual-futures venue: books, accounts, prices, funding and liquidations.

    ``markets``: market specs (default: the four presets). ``book``: the engine
    implementation, "auto", "compiled" or "reference". ``journal``: a path to append every
    accepted command to (created with a header naming the markets). ``start_ts``: the venue's
    time before the first ``AdvanceTime``.
    """

    def __init__(self, markets: Iterable[MarketSpec] | None = None, *, book: str = "auto",
                 journal: str | Path | None = None, start_ts: int = 0) -> None:
        specs = list(PRESETS.values()) if markets is None else list(markets)
        if not specs or len({s.symbol for s in specs}) != len(specs):
            raise ValueError("a venue needs at least one market and unique symbols")
        if not _is_int(start_ts) or start_ts < 0:
            raise ValueError("start_ts is a non-negative integer of nanoseconds")
        self._book_name = book
        book_cls = book_class(book)
        self.time = start_ts
        self.seq = 0
        self.fee_pool = 0
        self.bad_debt = 0
        self.net_deposits = 0
        self.funding_net = 0  # every funding payment ever made, summed: always zero
        self._next_order_id = 1
        self._next_trade_id = 1
        self._next_liq_id = 1
        self._accounts: dict[int, _Account] = {}
        self._markets: dict[str, _Market] = {}
        for i, spec in enumerate(sorted(specs, key=lambda s: s.symbol)):
            fund = _Account(-1 - i)
            fund.wallet = spec.insurance_fund
            self.net_deposits += spec.insurance_fund
            self._markets[spec.symbol] = _Market(spec, book_cls(), fund, start_ts)
        self._funds = {m.fund.account_id: m for m in self._markets.values()}
        self._orders: dict[int, _Order] = {}
        self._conditionals: dict[int, _Conditional] = {}
        self._multi: set[int] = set()  # cross accounts with positions in several markets
        self._touched: set[int] = set()
        self._stale_keys: set[int] = set()  # multi-market accounts whose other marks moved
        self._dirty: set[str] = set()
        self._mark_epoch = 0
        self._cur_seq = 0
        self._events: list[Any] = []
        self.failed = False  # a command raised: the state may be half applied (see submit)
        self._handlers = self._handler_table()
        self._journal: JournalWriter | None = None
        if journal is not None:
            path = Path(journal)
            if path.exists() and path.stat().st_size:
                raise FileExistsError(f"{path} exists: use Venue.recover() to continue it")
            self._journal = JournalWriter(path)
            self._journal.append({"version": 1, "start_ts": start_ts,
                                  "markets": [_spec_to_dict(s) for s in specs]})
            self._journal.flush()

    # -- snapshots (risk/recovery.py) -----------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        """The whole state but the books and the journal: each book is stored as its resting
        order ids in priority order (the orders themselves are the venue's ``_orders``)."""
        state = self.__dict__.copy()
        del state["_handlers"]
        state["_journal"] = None
        state["_events"] = []
        state["_resting"] = {symbol: [o.order_id for side in m.book.snapshot() for o in side]
                             for symbol, m in self._markets.items()}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        resting = state.pop("_resting")
        self.__dict__.update(state)
        self._handlers = self._handler_table()
        self._resting_after_load = resting

    def _attach_books(self, book: str) -> None:
        """Rebuild every book of an unpickled venue: its resting orders placed again in
        priority order, so every level's queue is as it was."""
        book_cls = book_class(book)
        self._book_name = book
        for symbol, order_ids in self.__dict__.pop("_resting_after_load").items():
            m = self._markets[symbol]
            m.book = book_cls()
            for oid in order_ids:
                o = self._orders[oid]
                events = m.book.place(oid, o.side, o.price, o.qty, tif=TimeInForce.GTC,
                                      post_only=o.post_only, account=o.account_id, stp=_STP)
                if len(events) != 1 or events[0].kind != EventKind.ACCEPTED:
                    raise InvariantViolation(f"snapshot order {oid} does not rest: {events}")

    def note(self, record: Any) -> None:
        """Journal a note for the venue's owner (the gateway's session facts that must survive
        a crash): not a command, no sequence number, handed back by the recovery."""
        if self._journal is not None:
            self._journal.append({"note": record})

    @property
    def journal(self) -> JournalWriter | None:
        """The journal writer (None: this venue keeps no journal)."""
        return self._journal

    def _handler_table(self) -> dict[type, Any]:
        return {
            C.Deposit: self._deposit, C.Withdraw: self._withdraw, C.PlaceOrder: self._place,
            C.CancelOrder: self._cancel, C.AmendOrder: self._amend,
            C.SetLeverage: self._set_leverage, C.SetMarginMode: self._set_margin_mode,
            C.SetIndexPrice: self._set_index, C.AdvanceTime: self._advance_time,
            C.CancelAll: self._cancel_all, C.PlaceConditional: self._place_conditional,
            C.SetTradingStatus: self._set_status,
        }

    # -- the pipeline ---------------------------------------------------------------------------

    def submit(self, command: C.Command) -> list[Any]:
        """Run one command through the pipeline; return its events (a rejection is a value)."""
        handler = self._handlers.get(type(command))
        if handler is None:
            raise TypeError(f"not a venue command: {command!r}")
        self._cur_seq = self.seq + 1
        events: list[Any] = []
        self._events = events
        try:
            handler(command)
        except BaseException:
            # a defect: the command may be half applied, and nothing was journaled. The owner
            # rebuilds the venue from its journal (gateway/wire/session.py does).
            self.failed = True
            raise
        if len(events) == 1 and type(events[0]) is Rejected:
            return events
        self.seq = self._cur_seq
        if self._journal is not None:
            self._journal.append(C.encode(command))
        return events

    def _reject(self, command: Any, reason: R, **fields: Any) -> None:
        self._events.append(Rejected(type(command).__name__, int(reason), **fields))

    # -- accounts -------------------------------------------------------------------------------

    def _account_id_ok(self, account_id: object) -> bool:
        return _is_int(account_id) and 0 < account_id < MAX_ACCOUNT  # type: ignore[operator]

    def _find_account(self, account_id: object) -> _Account | None:
        """The account of a plain-int id (True must not find account 1), else None."""
        return self._accounts.get(account_id) if account_id.__class__ is int else None

    def _deposit(self, cmd: C.Deposit) -> None:
        if not self._account_id_ok(cmd.account_id):
            return self._reject(cmd, R.INVALID_ACCOUNT)
        if not _is_int(cmd.amount) or not 0 < cmd.amount <= MAX_AMOUNT:
            return self._reject(cmd, R.INVALID_AMOUNT, account_id=cmd.account_id)
        acct = self._accounts.get(cmd.account_id)
        if acct is None:
            acct = self._accounts[cmd.account_id] = _Account(cmd.account_id)
        self._credit(acct, None, cmd.amount)
        self.net_deposits += cmd.amount
        self._events.append(Deposited(acct.account_id, cmd.amount, self._balance(acct)))
        self._stabilise()

    def _withdraw(self, cmd: C.Withdraw) -> None:
        acct = self._find_account(cmd.account_id)
        if acct is None:
            return self._reject(cmd, R.UNKNOWN_ACCOUNT)
        if not _is_int(cmd.amount) or not 0 < cmd.amount <= MAX_AMOUNT:
            return self._reject(cmd, R.INVALID_AMOUNT, account_id=cmd.account_id)
        if cmd.amount > self._withdrawable(acct):
            return self._reject(cmd, R.INSUFFICIENT_BALANCE, account_id=cmd.account_id)
        self._credit(acct, None, -cmd.amount)
        self.net_deposits -= cmd.amount
        self._events.append(Withdrawn(acct.account_id, cmd.amount, self._balance(acct)))
        self._stabilise()

    def _slot(self, acct: _Account, symbol: str) -> _Slot:
        slot = acct.slots.get(symbol)
        if slot is None:
            spec = self._markets[symbol].spec
            slot = acct.slots[symbol] = _Slot(min(DEFAULT_LEVERAGE, spec.max_leverage))
        return slot

    def _credit(self, acct: _Account, slot: _Slot | None, amount: int) -> None:
        """Add money to an account: to the isolated margin of ``slot``, else the wallet."""
        if slot is not None and slot.isolated:
            slot.margin += amount
        else:
            acct.wallet += amount
        acct.version += 1
        self._touched.add(acct.account_id)

    def _set_leverage(self, cmd: C.SetLeverage) -> None:
        acct, m = self._acct_market(cmd)
        if acct is None or m is None:
            return
        if not _is_int(cmd.leverage) or not 1 <= cmd.leverage <= m.spec.max_leverage:
            return self._reject(cmd, R.INVALID_LEVERAGE, account_id=acct.account_id,
                                symbol=m.symbol)
        slot = acct.slots.get(m.symbol) or _Slot(min(DEFAULT_LEVERAGE, m.spec.max_leverage))
        if slot.isolated and slot.size:
            return self._reject(cmd, R.POSITION_OPEN, account_id=acct.account_id,
                                symbol=m.symbol)
        if slot.size and m.mark is not None:
            notional = abs(slot.size) * m.mark * m.mult
            if cmd.leverage > m.spec.tiers[m.spec.tier_index(notional)].max_leverage:
                return self._reject(cmd, R.LEVERAGE_ABOVE_TIER, account_id=acct.account_id,
                                    symbol=m.symbol)
        old = slot.leverage
        if cmd.leverage < old and m.mark is not None and not slot.isolated:
            im_before = self._order_im(m, slot, True)
            slot.leverage = cmd.leverage
            im_after = self._order_im(m, slot, True)
            slot.leverage = old
            if im_after > im_before and self._available(acct) < im_after - im_before:
                return self._reject(cmd, R.INSUFFICIENT_MARGIN, account_id=acct.account_id,
                                    symbol=m.symbol)
        acct.slots[m.symbol] = slot
        slot.leverage = cmd.leverage
        self._events.append(LeverageSet(acct.account_id, m.symbol, cmd.leverage))

    def _set_margin_mode(self, cmd: C.SetMarginMode) -> None:
        acct, m = self._acct_market(cmd)
        if acct is None or m is None:
            return
        if cmd.mode not in ("cross", "isolated"):
            return self._reject(cmd, R.INVALID_MARGIN_MODE, account_id=acct.account_id,
                                symbol=m.symbol)
        slot = acct.slots.get(m.symbol) or _Slot(min(DEFAULT_LEVERAGE, m.spec.max_leverage))
        if slot.size:
            return self._reject(cmd, R.POSITION_OPEN, account_id=acct.account_id,
                                symbol=m.symbol)
        if slot.orders or any(c.symbol == m.symbol for c in acct.conditionals.values()):
            return self._reject(cmd, R.OPEN_ORDERS_EXIST, account_id=acct.account_id,
                                symbol=m.symbol)
        if slot.margin:  # a flat isolated slot keeps no margin (it returns on close)
            raise InvariantViolation("flat isolated slot holds margin")
        acct.slots[m.symbol] = slot  # created only now that the command is accepted
        slot.isolated = cmd.mode == "isolated"
        self._events.append(MarginModeSet(acct.account_id, m.symbol, cmd.mode))

    def _acct_market(self, cmd: Any) -> tuple[_Account | None, _Market | None]:
        acct = self._find_account(cmd.account_id)
        if acct is None:
            self._reject(cmd, R.UNKNOWN_ACCOUNT)
            return None, None
        m = self._markets.get(cmd.symbol) if cmd.symbol.__class__ is str else None
        if m is None:
            self._reject(cmd, R.UNKNOWN_MARKET, account_id=acct.account_id)
            return acct, None
        return acct, m

    # -- margin arithmetic --------------------------------------------------------------------

    def _upnl(self, m: _Market, slot: _Slot) -> int:
        return (slot.size * m.mark - slot.cost) * m.mult if slot.size else 0

    def _mm(self, m: _Market, slot: _Slot) -> int:
        if not slot.size:
            return 0
        return m.spec.maintenance(abs(slot.size) * m.mark * m.mult)

    def _order_im(self, m: _Market, slot: _Slot, include_position: bool, side: int = 0,
                  qty: int = 0, price: int = 0) -> int:
        """Initial margin of the slot's worst case: every open buy or every open sell filled,
        at the mark, plus the loss of buying above (selling below) the mark. ``side``,
        ``qty``, ``price``: one more order, as if it rested."""
        mark, mult = m.mark, m.mult
        s = slot.size
        buy_qty, buy_value, sell_qty, sell_value = \
            slot.buy_qty, slot.buy_value, slot.sell_qty, slot.sell_value
        if side == _BUY:
            buy_qty += qty
            buy_value += qty * price
        elif side == _SELL:
            sell_qty += qty
            sell_value += qty * price
        worst = max(abs(s + buy_qty), abs(s - sell_qty))
        if not include_position:
            worst = max(worst - abs(s), 0)
        im = 0
        if worst:
            notional = worst * mark * mult
            leverage = slot.leverage
            for bound, tier_leverage in m.leverage_brackets:
                if notional <= bound:
                    if tier_leverage < leverage:
                        leverage = tier_leverage
                    break
            im = -(-notional // leverage)  # MarketSpec.initial, inlined: the hot path
        if buy_value > buy_qty * mark:
            im += (buy_value - buy_qty * mark) * mult
        if sell_value < sell_qty * mark:
            im += (sell_qty * mark - sell_value) * mult
        return im

    def _cross(self, acct: _Account) -> tuple[int, int, int]:
        """(equity, initial margin, maintenance margin) of the cross part of an account.

        Isolated slots add only the initial margin of their open orders (paid from the wallet
        when they fill)."""
        equity, im, mm = acct.wallet, 0, 0
        for symbol, slot in acct.slots.items():
            if not slot.size and not slot.orders:
                continue
            m = self._markets[symbol]
            if m.mark is None:
                continue
            if slot.isolated:
                im += self._order_im(m, slot, False)
            else:
                equity += self._upnl(m, slot)
                im += self._order_im(m, slot, True)
                mm += self._mm(m, slot)
        return equity, im, mm

    def _available(self, acct: _Account) -> int:
        equity, im, _ = self._cross(acct)
        return equity - im

    def _withdrawable(self, acct: _Account) -> int:
        """Cash not needed as margin, excluding unrealized profit (the Mango lesson)."""
        equity, im, _ = self._cross(acct)
        return max(0, min(acct.wallet, equity) - im)

    def _balance(self, acct: _Account) -> int:
        return acct.wallet + sum(s.margin for s in acct.slots.values())

    def _liquidatable(self, acct: _Account, m: _Market) -> bool:
        slot = acct.slots.get(m.symbol)
        if slot is None or not slot.size or m.mark is None:
            return False
        if slot.isolated or acct.account_id < 0:
            cash = acct.wallet if acct.account_id < 0 else slot.margin
            return cash + self._upnl(m, slot) < self._mm(m, slot)
        return self._cross_liquidatable(acct)

    def _cross_liquidatable(self, acct: _Account) -> bool:
        equity, _, mm = self._cross(acct)
        return equity < mm

    # -- orders -----------------------------------------------------------------------------------

    def _place(self, cmd: C.PlaceOrder) -> None:
        acct, m = self._acct_market(cmd)
        if acct is None or m is None:
            return
        reason = self._validate_order(acct, m, cmd.side, cmd.price, cmd.qty, cmd.tif,
                                      cmd.post_only, cmd.reduce_only, cmd.client_order_id)
        if reason:
            return self._reject(cmd, reason, account_id=acct.account_id, symbol=m.symbol,
                                client_order_id=_cid(cmd.client_order_id))
        self._place_checked(acct, m, None, cmd.side, cmd.price, cmd.qty, cmd.tif, cmd.post_only,
                            cmd.reduce_only, cmd.client_order_id, None, cmd)
        self._stabilise()

    def _validate_order(self, acct: _Account, m: _Market, side: object, price: object,
                        qty: object, tif: object, post_only: object, reduce_only: object,
                        cid: object) -> R:
        """Structural checks (1xxx, 4xxx) of an order; NONE when it may go on to risk.

        Numbers must be plain ints (or the codes' IntEnums): never bools, floats or text."""
        spec = m.spec
        if side.__class__ not in _SIDE_TYPES or (side != 1 and side != -1):
            return R.INVALID_SIDE
        if price is not None and (price.__class__ is not int
                                  or not 0 < price <= spec.max_price):  # type: ignore[operator]
            return R.INVALID_PRICE
        if qty.__class__ is not int or qty <= 0:  # type: ignore[operator]
            return R.INVALID_QTY
        if tif.__class__ not in _TIF_TYPES or not 1 <= tif <= 3:  # type: ignore[operator]
            return R.INVALID_TIME_IN_FORCE
        if post_only.__class__ is not bool:
            return R.INVALID_POST_ONLY
        if reduce_only.__class__ is not bool:
            return R.INVALID_REDUCE_ONLY
        if post_only and (price is None or tif != TimeInForce.GTC):
            return R.INVALID_POST_ONLY
        if cid is not None:
            if not isinstance(cid, str) or not 0 < len(cid) <= _CLIENT_ID_MAX \
                    or not cid.isascii() or not cid.isprintable():
                return R.INVALID_CLIENT_ORDER_ID
            if cid in acct.client_ids:
                return R.DUPLICATE_CLIENT_ORDER_ID
        if qty > spec.max_order_qty:  # type: ignore[operator]
            return R.ORDER_TOO_LARGE
        slot = acct.slots.get(m.symbol)
        if slot is not None and len(slot.orders) >= spec.max_open_orders:
            return R.TOO_MANY_OPEN_ORDERS
        return R.NONE

    def _risk_check(self, acct: _Account, m: _Market, side: int, price: int | None, qty: int,
                    reduce_only: bool, replaces: _Order | None = None) -> tuple[R, int, int]:
        """Pre-trade risk (2xxx). Returns (reason, the limit the book sees, the qty).

        ``replaces``: a resting order the new terms replace (an amend), left out of the
        account's totals while checking."""
        spec = m.spec
        if m.status != "open":
            return R.MARKET_HALTED, 0, qty
        if m.mark is None:
            return R.NO_MARK_PRICE, 0, qty
        mark = m.mark
        lo, hi = self._limit_band(m)
        if price is None:  # market-order protection: a limit at mark +/- the protection band
            off = mark * spec.market_protection_ppb // PPB
            limit = mark + off if side == _BUY else max(1, mark - off)
            limit = min(max(limit, lo), hi)
        else:
            limit = price
            band = mark * spec.price_band_ppb // PPB
            if (side == _BUY and price > mark + band) or \
                    (side == _SELL and price < mark - band):
                return R.PRICE_OUTSIDE_BAND, 0, qty
            if not lo <= price <= hi:
                return R.PRICE_LIMIT, 0, qty
        # a slot is created only when an order is accepted: a rejection changes nothing
        slot = acct.slots.get(m.symbol) or _Slot(min(DEFAULT_LEVERAGE, spec.max_leverage))
        s = slot.size
        if reduce_only:
            if s == 0 or (s > 0) == (side == _BUY):
                return R.REDUCE_ONLY_WOULD_INCREASE, limit, qty
            resting = sum(o.qty for o in slot.orders.values() if o.reduce_only
                          and o is not replaces)
            qty = min(qty, abs(s) - resting)
            if qty <= 0:
                return R.REDUCE_ONLY_WOULD_INCREASE, limit, qty
            return R.NONE, limit, qty
        if replaces is not None and not replaces.reduce_only:  # an amend: rare
            _add_order_value(slot, replaces.side, replaces.qty, replaces.price, -1)
        try:
            after = max(abs(s + slot.buy_qty + (qty if side == _BUY else 0)),
                        abs(s - slot.sell_qty - (qty if side == _SELL else 0)))
            growth = after - max(abs(s + slot.buy_qty), abs(s - slot.sell_qty), abs(s))
            if growth > 0 and m.long_oi + growth > spec.open_interest_cap:
                return R.OPEN_INTEREST_CAP, limit, qty
            # only this slot's order margin changes: an order that adds none always passes
            with_position = not slot.isolated
            # a market order is valued at the deepest level it would reach, not at its
            # protection limit (which it only reaches if the book is that thin)
            worst = limit if price is not None else self._sweep_price(m, side, qty, limit)
            im_before = self._order_im(m, slot, with_position)
            im_after = self._order_im(m, slot, with_position, side, qty, worst)
            if im_after > im_before:
                free = self._isolated_free(acct) if slot.isolated else self._available(acct)
                if free < im_after - im_before:
                    return R.INSUFFICIENT_MARGIN, limit, qty
            return R.NONE, limit, qty
        finally:
            if replaces is not None and not replaces.reduce_only:
                _add_order_value(slot, replaces.side, replaces.qty, replaces.price, 1)

    def _sweep_price(self, m: _Market, side: int, qty: int, limit: int) -> int:
        """The price of the deepest level a market order of ``qty`` would reach (``limit``
        if the book within the limit is too thin)."""
        best = m.book.best_ask() if side == _BUY else m.book.best_bid()
        if best is None:
            return limit
        levels = m.book.depth(64)[1 if side == _BUY else 0]
        left = qty
        for price, size in levels:
            if (price > limit) if side == _BUY else (price < limit):
                break
            left -= size
            if left <= 0:
                return price
        return limit

    def _isolated_free(self, acct: _Account) -> int:
        """For isolated orders: the wallet cash not needed by anything else."""
        equity, im, _ = self._cross(acct)
        return min(acct.wallet, equity) - im

    def _limit_band(self, m: _Market) -> tuple[int, int]:
        """The daily price limit band (KRX-style), or the whole price range."""
        spec = m.spec
        if m.unlimited or m.prev_close is None:
            return 1, spec.max_price
        pc = m.prev_close
        return (max(1, _ceil_div(pc * (PPB - spec.daily_limit_ppb), PPB)),
                min(spec.max_price, pc * (PPB + spec.daily_limit_ppb) // PPB))

    def _place_checked(self, acct: _Account, m: _Market, order_id: int | None, side: int,
                       price: int | None, qty: int, tif: int, post_only: bool,
                       reduce_only: bool, cid: str | None, parent: Cause | None,
                       cmd: Any) -> bool:
        """Risk-check and execute an order whose fields passed validation. False: rejected.

        ``parent``: the cause a triggered order inherits (None for a trader's own order)."""
        reason, limit, qty = self._risk_check(acct, m, side, price, qty, reduce_only)
        if reason:
            self._reject(cmd, reason, account_id=acct.account_id, symbol=m.symbol,
                         order_id=order_id, client_order_id=cid)
            return False
        touch = (m.book.best_ask() if side == _BUY else m.book.best_bid()) if post_only else None
        if touch is not None and (limit >= touch if side == _BUY else limit <= touch):
            self._reject(cmd, R.POST_ONLY_WOULD_CROSS, account_id=acct.account_id,
                         symbol=m.symbol, order_id=order_id, client_order_id=cid)
            return False
        if order_id is None:
            order_id = self._next_order_id
            self._next_order_id += 1
        side, tif = int(side), int(tif)  # plain ints in the state, as the journal stores them
        if price is None and tif == TimeInForce.GTC:
            tif = TimeInForce.IOC  # a market order never rests
        self._events.append(OrderAccepted(acct.account_id, m.symbol, order_id, cid, int(side),
                                          price, qty, int(tif), post_only, reduce_only, limit))
        self._execute(acct, m, order_id, side, limit, qty, tif, post_only, reduce_only, cid,
                      parent, None, 0)
        return True

    def _execute(self, acct: _Account, m: _Market, order_id: int, side: int, limit: int,
                 qty: int, tif: int, post_only: bool, reduce_only: bool, cid: str | None,
                 parent: Cause | None, liq_id: int | None, bankruptcy: int) -> tuple[int, int]:
        """Send one order to the book and settle what happens. Returns (lots filled, value
        filled in ticks x lots)."""
        book_events = m.book.place(order_id, side, limit, qty, tif=tif, post_only=post_only,
                                   account=acct.account_id, stp=_STP)
        filled, value, rests = self._consume(acct, m, order_id, side, book_events, parent,
                                             liq_id, bankruptcy)
        if rests and filled < qty:
            order = _Order(order_id, acct.account_id, m.symbol, side, limit, qty - filled,
                           reduce_only, cid, post_only)
            self._remember_order(acct, order)
        return filled, value

    def _consume(self, acct: _Account, m: _Market, order_id: int, side: int,
                 book_events: list[Any], parent: Cause | None, liq_id: int | None,
                 bankruptcy: int) -> tuple[int, int, bool]:
        """Settle what the book did with a taker order: fills, expiry, self-trade cancels.
        Returns (lots filled, value filled in ticks x lots, whether the rest rests)."""
        events = self._events
        filled = value = 0
        rests = False
        last_trade = None
        for e in book_events:
            kind = e.kind
            if kind == EventKind.FILL:
                maker = self._orders[e.maker_id]
                maker_acct = self._accounts[maker.account_id]
                taker_fee, maker_fee = self._settle_fill(acct, maker_acct, m, side, e.price,
                                                         e.qty, liq_id, bankruptcy)
                self._order_filled(maker_acct, maker, e.qty)
                filled += e.qty
                value += e.qty * e.price
                last_trade = self._next_trade_id
                self._next_trade_id += 1
                events.append(Fill(m.symbol, last_trade, e.price, e.qty, int(side),
                                   acct.account_id, order_id, maker.account_id, maker.order_id,
                                   e.maker_remaining, taker_fee, maker_fee, liq_id))
                m.last_price = e.price
            elif kind == EventKind.ACCEPTED or kind == EventKind.AMENDED and e.order_id == order_id:
                rests = True  # a GTC limit rests what it does not fill, unless it expires
            elif kind == EventKind.EXPIRED:
                rests = False
                events.append(OrderCanceled(acct.account_id, m.symbol, order_id, e.qty,
                                            _CANCEL_REASON.get(e.reason, "expired")))
            elif kind == EventKind.CANCELED:  # self-trade prevention removed our resting order
                own = self._orders[e.order_id]
                self._forget_order(acct, own)
                events.append(OrderCanceled(acct.account_id, m.symbol, own.order_id, e.qty,
                                            "self_trade"))
            else:  # pragma: no cover - the venue's STP mode never decrements
                raise InvariantViolation(f"unexpected book event {e!r}")
        if last_trade is not None:
            self._dirty.add(m.symbol)
            m.cause = Cause("fill", self._cur_seq, last_trade) if parent is None else \
                Cause("fill", self._cur_seq, last_trade, parent.liquidation_id, parent.generation)
        return filled, value, rests

    def _remember_order(self, acct: _Account, order: _Order) -> None:
        slot = self._slot(acct, order.symbol)
        slot.orders[order.order_id] = order
        self._orders[order.order_id] = order
        if order.client_order_id is not None:
            acct.client_ids[order.client_order_id] = order.order_id
        if not order.reduce_only:
            _add_order_value(slot, order.side, order.qty, order.price, 1)
        if self._markets[order.symbol].book_mark:  # the mark reads the live quotes
            self._dirty.add(order.symbol)

    def _forget_order(self, acct: _Account, order: _Order) -> None:
        slot = acct.slots[order.symbol]
        del slot.orders[order.order_id]
        del self._orders[order.order_id]
        if order.client_order_id is not None:
            acct.client_ids.pop(order.client_order_id, None)
        if not order.reduce_only:
            _add_order_value(slot, order.side, order.qty, order.price, -1)
        if self._markets[order.symbol].book_mark:
            self._dirty.add(order.symbol)

    def _order_filled(self, acct: _Account, order: _Order, qty: int) -> None:
        slot = acct.slots[order.symbol]
        if not order.reduce_only:
            _add_order_value(slot, order.side, qty, order.price, -1)
        order.qty -= qty
        if order.qty == 0:
            del slot.orders[order.order_id]
            del self._orders[order.order_id]
            if order.client_order_id is not None:
                acct.client_ids.pop(order.client_order_id, None)

    def _cancel(self, cmd: C.CancelOrder) -> None:
        acct, m = self._acct_market(cmd)
        if acct is None or m is None:
            return
        order_id = cmd.order_id
        if order_id is None and cmd.client_order_id is not None:
            order_id = acct.client_ids.get(cmd.client_order_id) \
                if isinstance(cmd.client_order_id, str) else None
        order = self._orders.get(order_id) if _is_int(order_id) else None  # type: ignore[arg-type]
        cond = self._conditionals.get(order_id) if _is_int(order_id) else None  # type: ignore[arg-type]
        if order is not None and order.account_id == acct.account_id \
                and order.symbol == m.symbol:
            self._cancel_resting(acct, m, order, "user")
        elif cond is not None and cond.account_id == acct.account_id \
                and cond.symbol == m.symbol:
            self._cancel_conditional(acct, m, cond, "user")
        else:
            return self._reject(cmd, R.UNKNOWN_ORDER, account_id=acct.account_id,
                                symbol=m.symbol, order_id=order_id if _is_int(order_id) else None,
                                client_order_id=_cid(cmd.client_order_id))
        self._stabilise()

    def _cancel_resting(self, acct: _Account, m: _Market, order: _Order, reason: str) -> None:
        result = m.book.cancel(order.order_id)
        if len(result) != 1 or result[0].kind != EventKind.CANCELED:
            raise InvariantViolation(f"book lost order {order.order_id}")
        self._forget_order(acct, order)
        self._events.append(OrderCanceled(acct.account_id, m.symbol, order.order_id,
                                          order.qty, reason))

    def _cancel_conditional(self, acct: _Account, m: _Market, cond: _Conditional,
                            reason: str) -> None:
        (m.cond_below if cond.fires_below else m.cond_above).remove((cond.trigger, cond.order_id))
        del self._conditionals[cond.order_id]
        del acct.conditionals[cond.order_id]
        if cond.client_order_id is not None:
            acct.client_ids.pop(cond.client_order_id, None)
        self._events.append(OrderCanceled(acct.account_id, m.symbol, cond.order_id, cond.qty,
                                          reason))

    def _cancel_all(self, cmd: C.CancelAll) -> None:
        acct = self._find_account(cmd.account_id)
        if acct is None:
            return self._reject(cmd, R.UNKNOWN_ACCOUNT)
        if cmd.symbol is not None and (cmd.symbol.__class__ is not str
                                       or cmd.symbol not in self._markets):
            return self._reject(cmd, R.UNKNOWN_MARKET, account_id=acct.account_id)
        self._cancel_orders_of(acct, cmd.symbol, "cancel_all")
        self._stabilise()

    def _cancel_orders_of(self, acct: _Account, symbol: str | None, reason: str) -> None:
        for sym in sorted(acct.slots) if symbol is None else [symbol]:
            slot = acct.slots.get(sym)
            m = self._markets[sym]
            if slot is not None:
                for order in list(slot.orders.values()):
                    self._cancel_resting(acct, m, order, reason)
        for cond in sorted(acct.conditionals.values(), key=lambda c: c.order_id):
            if symbol is None or cond.symbol == symbol:
                self._cancel_conditional(acct, self._markets[cond.symbol], cond, reason)

    def _amend(self, cmd: C.AmendOrder) -> None:
        acct, m = self._acct_market(cmd)
        if acct is None or m is None:
            return
        order = self._orders.get(cmd.order_id) if _is_int(cmd.order_id) else None
        fields = dict(account_id=acct.account_id, symbol=m.symbol,
                      order_id=cmd.order_id if _is_int(cmd.order_id) else None)
        if order is None or order.account_id != acct.account_id or order.symbol != m.symbol:
            return self._reject(cmd, R.UNKNOWN_ORDER, **fields)
        if cmd.price is None and cmd.qty is None:
            return self._reject(cmd, R.EMPTY_AMEND, **fields)
        if cmd.price is not None and (not _is_int(cmd.price)
                                      or not 0 < cmd.price <= m.spec.max_price):
            return self._reject(cmd, R.INVALID_PRICE, **fields)
        if cmd.qty is not None and (not _is_int(cmd.qty) or cmd.qty <= 0):
            return self._reject(cmd, R.INVALID_QTY, **fields)
        if cmd.qty is not None and cmd.qty > m.spec.max_order_qty:
            return self._reject(cmd, R.ORDER_TOO_LARGE, **fields)
        new_price = order.price if cmd.price is None else cmd.price
        new_qty = order.qty if cmd.qty is None else cmd.qty
        reason = R.NONE
        if new_price != order.price or new_qty > order.qty:
            # more risk: the new terms must pass the checks a new order with them would
            reason, _, checked_qty = self._risk_check(acct, m, order.side, new_price, new_qty,
                                                      order.reduce_only, replaces=order)
            if reason == R.NONE and order.reduce_only and checked_qty < new_qty:
                reason = R.REDUCE_ONLY_WOULD_INCREASE
        if reason:
            return self._reject(cmd, reason, **fields)
        result = m.book.amend(order.order_id, price=cmd.price, qty=cmd.qty)
        if result[0].kind == EventKind.REJECTED:  # post-only re-pricing that would cross
            return self._reject(cmd, R(result[0].reason), **fields)
        self._forget_order(acct, order)
        self._events.append(OrderAmended(acct.account_id, m.symbol, order.order_id, new_price,
                                         new_qty, "user"))
        order.price, order.qty = new_price, new_qty
        # a re-queued order may trade first: settle it like a new taker
        filled, _, _ = self._consume(acct, m, order.order_id, order.side, result[1:], None,
                                     None, 0)
        if filled < new_qty:
            order.qty = new_qty - filled
            self._remember_order(acct, order)
        self._stabilise()

    def _place_conditional(self, cmd: C.PlaceConditional) -> None:
        acct, m = self._acct_market(cmd)
        if acct is None or m is None:
            return
        fields = dict(account_id=acct.account_id, symbol=m.symbol,
                      client_order_id=_cid(cmd.client_order_id))
        reason = self._validate_order(acct, m, cmd.side, cmd.price, cmd.qty, TimeInForce.GTC,
                                      False, cmd.reduce_only, cmd.client_order_id)
        if reason:
            return self._reject(cmd, reason, **fields)
        if cmd.kind not in ("stop", "take_profit") or not _is_int(cmd.trigger_price) \
                or not 0 < cmd.trigger_price <= m.spec.max_price:
            return self._reject(cmd, R.INVALID_TRIGGER, **fields)
        if m.mark is None:
            return self._reject(cmd, R.NO_MARK_PRICE, **fields)
        order_id = self._next_order_id
        self._next_order_id += 1
        cond = _Conditional(order_id, cmd)
        self._conditionals[order_id] = cond
        acct.conditionals[order_id] = cond
        if cond.client_order_id is not None:
            acct.client_ids[cond.client_order_id] = order_id
        (m.cond_below if cond.fires_below else m.cond_above).add((cond.trigger, order_id))
        self._events.append(ConditionalAccepted(acct.account_id, m.symbol, order_id,
                                                cond.client_order_id, int(cmd.side), cmd.qty,
                                                cmd.trigger_price, cmd.kind, cmd.price,
                                                cmd.reduce_only))
        self._stabilise()

    def _fire_triggers(self, m: _Market) -> None:
        """Release the conditional orders the mark has crossed, in trigger order."""
        mark = m.mark
        while True:
            fired = None
            if m.cond_below and m.cond_below[-1][0] >= mark:
                fired = self._conditionals[m.cond_below[-1][1]]
            elif m.cond_above and m.cond_above[0][0] <= mark:
                fired = self._conditionals[m.cond_above[0][1]]
            if fired is None:
                return
            acct = self._accounts[fired.account_id]
            (m.cond_below if fired.fires_below else m.cond_above).remove(
                (fired.trigger, fired.order_id))
            del self._conditionals[fired.order_id]
            del acct.conditionals[fired.order_id]
            if fired.client_order_id is not None:
                acct.client_ids.pop(fired.client_order_id, None)
            self._events.append(OrderTriggered(acct.account_id, m.symbol, fired.order_id,
                                               fired.trigger, mark))
            parent = Cause("fill", self._cur_seq, None, m.cause.liquidation_id,
                           m.cause.generation)
            ok = self._place_checked(acct, m, fired.order_id, fired.side, fired.price,
                                     fired.qty, TimeInForce.GTC if fired.price else
                                     TimeInForce.IOC, False, fired.reduce_only,
                                     fired.client_order_id, parent, C.PlaceOrder(
                                         acct.account_id, m.symbol, fired.side, fired.price,
                                         fired.qty))
            if not ok:
                self._events.append(OrderCanceled(acct.account_id, m.symbol, fired.order_id,
                                                  fired.qty, "rejected"))

    # -- settlement ---------------------------------------------------------------------------

    def _settle_fill(self, taker: _Account, maker: _Account, m: _Market, taker_side: int,
                     price: int, qty: int, liq_id: int | None, bankruptcy: int) -> tuple[int, int]:
        spec = m.spec
        notional = price * qty * m.mult
        maker_fee = _fee(notional, spec.maker_fee_ppb)
        if liq_id is None:
            taker_fee = _fee(notional, spec.taker_fee_ppb)
        else:
            surplus = -taker_side * (price - bankruptcy) * qty * m.mult
            taker_fee = max(0, min(_fee(notional, spec.liquidation_fee_ppb), surplus))
        self._trade(taker, m, taker_side, qty, price)
        self._trade(maker, m, -taker_side, qty, price)
        self._charge(taker, m, taker_fee, to_fund=liq_id is not None)
        self._charge(maker, m, maker_fee, to_fund=False)
        return taker_fee, maker_fee

    def _charge(self, acct: _Account, m: _Market, fee: int, *, to_fund: bool) -> None:
        if not fee:
            return
        slot = acct.slots.get(m.symbol)
        self._credit(acct, slot, -fee)
        if to_fund:
            m.fund.wallet += fee
            m.fund.version += 1
            self._touched.add(m.fund.account_id)
        else:
            self.fee_pool += fee

    def _trade(self, acct: _Account, m: _Market, side: int, qty: int, price: int) -> None:
        """Apply a trade of ``qty`` lots on ``side`` at ``price`` to the account's position."""
        slot = self._slot(acct, m.symbol) if acct.account_id > 0 else \
            acct.slots.setdefault(m.symbol, _Slot(m.spec.max_leverage))
        mult = m.mult
        s = slot.size
        opened = qty
        if s and (s > 0) != (side > 0):
            close = min(qty, abs(s))
            removed = _ceil_div(slot.cost * close, abs(s))
            realized = ((close * price if s > 0 else -close * price) - removed) * mult
            slot.cost -= removed
            slot.size = s + (close if s < 0 else -close)
            opened = qty - close
            if slot.isolated:
                if slot.size == 0:
                    slot.margin += realized
                    if slot.margin < 0:  # an isolated loss never reaches the wallet
                        self._cover(acct, m, -slot.margin)
                    else:
                        acct.wallet += slot.margin
                    slot.margin = 0
                else:
                    # the closed lots take their share of the margin and their PnL; only a
                    # loss beyond that share stays with the lots that remain
                    share = max(0, slot.margin) * close // abs(s)
                    result = share + realized
                    slot.margin -= share
                    if result >= 0:
                        acct.wallet += result
                    else:
                        slot.margin += result
            else:
                acct.wallet += realized
        if opened:
            slot.cost += side * opened * price
            slot.size += side * opened
            if slot.isolated:
                notional = opened * price * mult
                need = m.spec.initial(notional, slot.leverage)
                if m.mark is not None:  # and the loss of opening away from the mark
                    need += max(0, side * (price - m.mark)) * opened * mult
                moved = max(0, min(need, acct.wallet))
                acct.wallet -= moved
                slot.margin += moved
        new = slot.size
        m.long_oi += max(new, 0) - max(s, 0)
        if new:
            m.holders[acct.account_id] = slot
        else:
            m.holders.pop(acct.account_id, None)
        if acct.account_id > 0 and not slot.isolated and (s == 0) != (new == 0):
            self._update_multi(acct)
        acct.version += 1
        acct.last_symbol = m.symbol
        self._touched.add(acct.account_id)

    def _update_multi(self, acct: _Account) -> None:
        n = sum(1 for s in acct.slots.values() if s.size and not s.isolated)
        if n > 1:
            self._multi.add(acct.account_id)
        else:
            self._multi.discard(acct.account_id)

    # -- after every change: keys, reduce-only, deficits, marks, triggers, liquidations ------

    def _stabilise(self) -> None:
        """Bring the venue to rest: reprice, fire triggers, liquidate until nothing is due."""
        markets = self._markets.values()
        if not self._touched and not self._dirty and not self._stale_keys \
                and not any(m.sweep for m in markets):
            return
        pending: OrderedDict[tuple[int, str], Cause] = OrderedDict()
        clean: dict[tuple[int, str], tuple[int, int]] = {}
        while True:
            self._flush_touched()
            while self._dirty:
                symbol = min(self._dirty)
                self._dirty.discard(symbol)
                self._reprice(self._markets[symbol])
                self._flush_touched()
            for symbol, m in self._markets.items():
                if not m.sweep:
                    continue
                m.sweep = False
                if m.status != "open" or m.mark is None:
                    continue
                for aid in self._candidates(m):
                    key = (aid, symbol)
                    if key in pending:
                        continue
                    acct = self._account_or_fund(aid)
                    if clean.get(key) == (self._mark_epoch, acct.version):
                        continue
                    if self._liquidatable(acct, m):
                        pending[key] = m.cause
                    else:
                        clean[key] = (self._mark_epoch, acct.version)
            if not pending:
                return
            (aid, symbol), why = pending.popitem(last=False)
            acct = self._account_or_fund(aid)
            m = self._markets[symbol]
            if self._liquidatable(acct, m):
                if aid < 0:
                    self._deleverage_fund(m, why)
                else:
                    self._liquidate(acct, m, why)

    def _account_or_fund(self, aid: int) -> _Account:
        return self._accounts[aid] if aid > 0 else self._funds[aid].fund

    def _flush_touched(self) -> None:
        """Re-key, trim reduce-only orders and settle deficits of the accounts whose money or
        positions changed; re-key the multi-market accounts whose other marks moved."""
        for aid in sorted(self._stale_keys):
            acct = self._accounts[aid]
            self._rebase(acct)
            for symbol, slot in acct.slots.items():
                self._rekey(acct, self._markets[symbol], slot)
        self._stale_keys.clear()
        while self._touched:
            batch = sorted(self._touched)  # a deterministic order, whatever the set's
            self._touched.clear()
            for aid in batch:
                acct = self._account_or_fund(aid)
                if acct.version == acct.keyed:
                    continue
                acct.keyed = acct.version
                if aid > 0:
                    self._trim_reduce_only(acct)
                    self._settle_deficits(acct)
                else:
                    self._settle_fund_deficit(self._funds[aid])
                self._rebase(acct)
                for symbol, slot in acct.slots.items():
                    self._rekey(acct, self._markets[symbol], slot)

    def _rebase(self, acct: _Account) -> None:
        """Centre a multi-market cross account's mark bands on the current marks.

        Its liquidation key in one market depends on its other positions' marks. Rather than
        re-key it whenever one of them moves, its keys assume each other mark at the adverse
        edge of a band of MULTI_BAND_PPB around the mark it was keyed at (a conservative key:
        it reaches the sweep earlier, never later), and it is re-keyed only when a mark leaves
        its band, which each market finds in its sorted band lists."""
        aid = acct.account_id
        if aid < 0:
            return
        for symbol in list(acct.centers):
            m = self._markets[symbol]
            lo, hi = m.band_of.pop(aid)
            m.band_lo.remove((lo, aid))
            m.band_hi.remove((hi, aid))
        acct.centers.clear()
        if aid not in self._multi:
            return
        for symbol, slot in acct.slots.items():
            m = self._markets[symbol]
            if slot.size and not slot.isolated and m.mark is not None:
                edge = max(1, m.mark * MULTI_BAND_PPB // PPB)
                lo, hi = m.mark - edge, m.mark + edge
                acct.centers[symbol] = m.mark
                m.band_of[aid] = (lo, hi)
                m.band_lo.add((lo, aid))
                m.band_hi.add((hi, aid))

    def _trim_reduce_only(self, acct: _Account) -> None:
        for symbol, slot in acct.slots.items():
            ro = [o for o in slot.orders.values() if o.reduce_only]
            if not ro:
                continue
            m = self._markets[symbol]
            room = abs(slot.size)
            for order in ro:  # oldest first keeps its size
                wrong_way = slot.size == 0 or (slot.size > 0) == (order.side == _BUY)
                if wrong_way or room <= 0:
                    self._cancel_resting(acct, m, order, "reduce_only")
                elif order.qty > room:
                    m.book.amend(order.order_id, qty=room)
                    order.qty = room
                    self._events.append(OrderAmended(acct.account_id, symbol, order.order_id,
                                                     order.price, room, "reduce_only"))
                    room = 0
                else:
                    room -= order.qty

    def _settle_deficits(self, acct: _Account) -> None:
        """A flat isolated slot or a flat cross account below zero: the fund pays."""
        for symbol, slot in acct.slots.items():
            if slot.isolated and not slot.size and slot.margin:
                acct.wallet += slot.margin
                slot.margin = 0
        cross_open = any(s.size and not s.isolated for s in acct.slots.values())
        if acct.wallet < 0 and not cross_open:
            deficit = -acct.wallet
            acct.wallet = 0
            self._cover(acct, self._markets[acct.last_symbol or min(self._markets)], deficit)

    def _cover(self, acct: _Account, m: _Market, deficit: int) -> None:
        """Make good ``deficit`` an account lost beyond its collateral (already written off its
        books): the market's insurance fund pays what it can, the rest is bad debt."""
        covered = min(deficit, max(0, m.fund.wallet))
        m.fund.wallet -= covered
        m.fund.version += 1
        self._touched.add(m.fund.account_id)
        self.bad_debt += deficit - covered
        acct.version += 1
        self._events.append(BadDebt(acct.account_id, m.symbol, deficit, covered,
                                    deficit - covered))

    def _settle_fund_deficit(self, m: _Market) -> None:
        fund = m.fund
        slot = fund.slots.get(m.symbol)
        if fund.wallet < 0 and (slot is None or not slot.size):
            self.bad_debt += -fund.wallet
            self._events.append(BadDebt(fund.account_id, m.symbol, -fund.wallet, 0,
                                        -fund.wallet))
            fund.wallet = 0
            fund.version += 1

    # -- the liquidation index ----------------------------------------------------------------

    def _rekey(self, acct: _Account, m: _Market, slot: _Slot) -> None:
        aid = acct.account_id
        old = m.liq_key.get(aid)
        new = None
        if slot.size and m.mark is not None:
            new = (slot.size > 0, self._liq_key(acct, m, slot))
        if old == new:
            return
        m.sweep = True
        if old is not None:
            (m.liq_long if old[0] else m.liq_short).remove((old[1], aid))
            del m.liq_key[aid]
        if new is not None:
            (m.liq_long if new[0] else m.liq_short).add((new[1], aid))
            m.liq_key[aid] = new

    def _liq_key(self, acct: _Account, m: _Market, slot: _Slot) -> int:
        """The price at or beyond which the account may be liquidatable in this market
        (exact liquidation price widened by KEY_SLACK ticks toward the mark side)."""
        mult = m.mult
        if slot.isolated or acct.account_id < 0:
            k = (acct.wallet if acct.account_id < 0 else slot.margin) - slot.cost * mult
        else:
            k = acct.wallet - slot.cost * mult
            # the other positions at the adverse end of their mark bands (see _rebase)
            for symbol, other in acct.slots.items():
                if other is slot or not other.size or other.isolated:
                    continue
                om = self._markets[symbol]
                center = acct.centers.get(symbol, om.mark)
                if center is None:
                    continue
                edge = max(1, center * MULTI_BAND_PPB // PPB)
                price = center - edge if other.size > 0 else center + edge
                k += (other.size * price - other.cost) * om.mult \
                    - om.spec.maintenance(abs(other.size) * price * om.mult)
        s = slot.size
        a = abs(s)
        spec = m.spec
        # equity(P) - MM(P) = k + s*P*mult - (a*P*mult*mmr/1e9 - cum) is monotone in P; its
        # root is num/den in the tier whose bracket holds the root's notional a*num*mult/den
        lower = 0
        for tier, cum in zip(spec.tiers, spec.cums):
            if s > 0:
                num, den = (-k - cum) * PPB, a * mult * (PPB - tier.mmr_ppb)
            else:
                num, den = (k + cum) * PPB, a * mult * (PPB + tier.mmr_ppb)
            scaled = num * a * mult  # notional of the root, times den
            upper = tier.max_notional
            if upper is None or scaled <= upper * den:
                if lower == 0 or scaled > lower * den:
                    break
            lower = upper or 0
        if s > 0:  # liquidatable below the root; never, if the root is not positive
            return _NO_LONG_KEY if num <= 0 else num // den + KEY_SLACK
        # a short is liquidatable above the root; at every price, if it is not positive
        return 0 if num <= 0 else -(-num // den) - KEY_SLACK

    def _candidates(self, m: _Market) -> list[int]:
        mark = m.mark
        if (not m.liq_long or m.liq_long[-1][0] < mark) and \
                (not m.liq_short or m.liq_short[0][0] > mark):
            return []  # nothing in reach: the common case
        longs = [aid for _, aid in m.liq_long.irange((mark, -2**63), None, reverse=True)]
        shorts = [aid for _, aid in m.liq_short.irange(None, (mark, 2**63))]
        return longs + shorts

    # -- liquidation --------------------------------------------------------------------------

    def _liquidate(self, acct: _Account, m: _Market, cause: Cause) -> None:
        generation = cause.generation + 1
        slot = acct.slots[m.symbol]
        if slot.isolated:
            self._cancel_orders_of(acct, m.symbol, "liquidation")
            symbols = [m.symbol]
        else:
            self._cancel_orders_of(acct, None, "liquidation")
            symbols = [m.symbol] + sorted(s for s, sl in acct.slots.items()
                                          if sl.size and not sl.isolated and s != m.symbol)
        for symbol in symbols:
            market = self._markets[symbol]
            if market.status != "open" or market.mark is None:
                continue
            while acct.slots[symbol].size and self._liquidatable(acct, market):
                self._liquidate_slice(acct, market, cause, generation)
            if slot.isolated or not self._cross_liquidatable(acct):
                break
        self._touched.add(acct.account_id)

    def _bankruptcy_price(self, acct: _Account, m: _Market, slot: _Slot, qty: int) -> int:
        """The price at which closing ``qty`` lots uses up the equity allotted to them: the
        account's equity times the slice's share of its maintenance margin (dYdX)."""
        if slot.isolated or acct.account_id < 0:
            cash = acct.wallet if acct.account_id < 0 else slot.margin
            equity, total_mm = cash + self._upnl(m, slot), self._mm(m, slot)
        else:
            equity, _, total_mm = self._cross(acct)
        slot_mm = self._mm(m, slot)
        share = Fraction(slot_mm * qty, abs(slot.size) * total_mm) if total_mm else Fraction(1)
        allotted = equity * share
        price = m.mark - (1 if slot.size > 0 else -1) * allotted / (qty * m.mult)
        ticks = -(-price.numerator // price.denominator) if slot.size > 0 else \
            price.numerator // price.denominator
        return min(max(ticks, 1), m.spec.max_price)

    def _liquidate_slice(self, acct: _Account, m: _Market, cause: Cause,
                         generation: int) -> None:
        spec = m.spec
        slot = acct.slots[m.symbol]
        size = abs(slot.size)
        close_side = _SELL if slot.size > 0 else _BUY
        mark = m.mark
        if size * mark * m.mult > spec.partial_liquidation_notional:
            qty = min(size, max(1, _ceil_div(size * spec.partial_liquidation_ppb, PPB)))
        else:
            qty = size
        bankruptcy = self._bankruptcy_price(acct, m, slot, qty)
        liq_id = self._next_liq_id
        self._next_liq_id += 1
        lo, hi = self._limit_band(m)
        limit = min(max(bankruptcy, lo), hi)
        order_id = self._next_order_id
        self._next_order_id += 1
        self._events.append(OrderAccepted(acct.account_id, m.symbol, order_id, None,
                                          int(close_side), None, qty, int(TimeInForce.IOC),
                                          False, True, limit, liq_id))
        fee_before = m.fund.wallet
        parent = Cause("fill", self._cur_seq, None, liq_id, generation)
        filled, value = self._execute(acct, m, order_id, close_side, limit, qty,
                                      TimeInForce.IOC, False, True, None, parent, liq_id,
                                      bankruptcy)
        fee = m.fund.wallet - fee_before
        rest = qty - filled
        insurance_qty = adl_qty = 0
        if rest:
            if self._fund_can_take(m, close_side, rest, bankruptcy):
                self._trade(acct, m, close_side, rest, bankruptcy)
                self._trade(m.fund, m, -close_side, rest, bankruptcy)
                insurance_qty = rest
                self._events.append(InsuranceTakeover(liq_id, m.symbol, acct.account_id, rest,
                                                      bankruptcy))
            else:
                self._auto_deleverage(acct, m, close_side, rest, bankruptcy, liq_id)
                adl_qty = rest
        value += (insurance_qty + adl_qty) * bankruptcy
        avg = value // qty if close_side == _SELL else _ceil_div(value, qty)
        self._events.append(Liquidation(liq_id, acct.account_id, m.symbol, int(close_side), qty,
                                        avg, mark, bankruptcy, filled, insurance_qty, adl_qty,
                                        fee, generation, cause))
        m.last_liq = (self.time, liq_id, generation)
        m.cause = Cause("fill" if filled else "liquidation", self._cur_seq,
                        m.cause.trade_id if filled else None, liq_id, generation)
        self._flush_touched()

    def _fund_can_take(self, m: _Market, close_side: int, qty: int, price: int) -> bool:
        """Whether the fund stays above its maintenance margin after taking ``qty`` lots (the
        opposite of ``close_side``) at ``price``."""
        fund = m.fund
        slot = fund.slots.get(m.symbol)
        size = slot.size if slot else 0
        cost = slot.cost if slot else 0
        equity = fund.wallet + (size * m.mark - cost) * m.mult
        equity += -close_side * qty * (m.mark - price) * m.mult
        new_size = size - close_side * qty
        needed = m.spec.maintenance(abs(new_size) * m.mark * m.mult) if new_size else 0
        return equity >= needed

    def _auto_deleverage(self, acct: _Account, m: _Market, close_side: int, qty: int,
                         price: int, liq_id: int) -> None:
        """Close ``qty`` of the bankrupt position against the opposite positions, best ranked
        first, at ``price`` (BitMEX ranking: PnL% x leverage if in profit, else PnL% / lev)."""
        ranked = []
        for aid, slot in m.holders.items():
            if aid == acct.account_id or (slot.size > 0) != (close_side > 0):
                continue
            holder = self._account_or_fund(aid)
            upnl = self._upnl(m, slot)
            pnl = Fraction(upnl, abs(slot.cost) * m.mult)
            if slot.isolated or aid < 0:
                equity = (holder.wallet if aid < 0 else slot.margin) + upnl
            else:
                equity = self._cross(holder)[0]
            lev = Fraction(abs(slot.size) * m.mark * m.mult, equity) if equity > 0 else None
            if lev is None:
                rank = pnl * 10**9 if pnl > 0 else pnl  # no equity: the highest leverage
            else:
                rank = pnl * lev if pnl > 0 else pnl / lev
            ranked.append((-rank, aid))
        ranked.sort()
        left = qty
        for position, (_, aid) in enumerate(ranked, 1):
            if not left:
                break
            holder = self._account_or_fund(aid)
            take = min(left, abs(m.holders[aid].size))
            self._trade(holder, m, -close_side, take, price)
            self._trade(acct, m, close_side, take, price)
            left -= take
            self._events.append(Adl(liq_id, m.symbol, aid, acct.account_id, take, price,
                                    position))
        if left:
            raise InvariantViolation("opposite positions do not cover a bankrupt position")

    def _deleverage_fund(self, m: _Market, cause: Cause) -> None:
        """The insurance fund cannot carry its inventory: deleverage it at the mark."""
        fund = m.fund
        slot = fund.slots[m.symbol]
        close_side = _SELL if slot.size > 0 else _BUY
        qty = abs(slot.size)
        liq_id = self._next_liq_id
        self._next_liq_id += 1
        generation = cause.generation + 1
        self._auto_deleverage(fund, m, close_side, qty, m.mark, liq_id)
        self._events.append(Liquidation(liq_id, fund.account_id, m.symbol, int(close_side), qty,
                                        m.mark, m.mark, m.mark, 0, 0, qty, 0, generation, cause))
        m.last_liq = (self.time, liq_id, generation)
        m.cause = Cause("liquidation", self._cur_seq, None, liq_id, generation)
        self._flush_touched()

    # -- prices: index, mark, samples, funding ------------------------------------------------

    def _set_index(self, cmd: C.SetIndexPrice) -> None:
        m = self._markets.get(cmd.symbol) if isinstance(cmd.symbol, str) else None
        if m is None:
            return self._reject(cmd, R.UNKNOWN_MARKET)
        if not _is_int(cmd.price) or not 0 < cmd.price <= m.spec.max_price:
            return self._reject(cmd, R.INVALID_PRICE, symbol=m.symbol)
        m.index = cmd.price
        if m.prev_close is None:
            m.prev_close = cmd.price
        m.cause = Cause("index", self._cur_seq)
        self._dirty.add(m.symbol)
        self._stabilise()

    def _set_status(self, cmd: C.SetTradingStatus) -> None:
        m = self._markets.get(cmd.symbol) if isinstance(cmd.symbol, str) else None
        if m is None:
            return self._reject(cmd, R.UNKNOWN_MARKET)
        if cmd.status not in ("open", "halted"):
            return self._reject(cmd, R.INVALID_STATUS, symbol=m.symbol)
        m.status = cmd.status
        m.sweep = True
        self._events.append(TradingStatusChanged(m.symbol, m.status, m.session_open))
        self._dirty.add(m.symbol)
        self._stabilise()

    def _reprice(self, m: _Market) -> None:
        """Recompute the mark; on a change, publish it, re-key multi-market accounts and
        release the conditional orders it crossed."""
        mark = self._compute_mark(m)
        if mark is not None and mark != m.mark:
            m.mark = mark
            self._mark_epoch += 1
            self._events.append(MarkUpdated(m.symbol, self.time, m.index, mark,
                                            self._estimate_rate(m), m.next_funding, m.long_oi))
            m.sweep = True
            if len(m.liq_key) != len(m.holders):  # the first mark: key every position
                for aid in m.holders:
                    self._account_or_fund(aid).version += 1
                    self._touched.add(aid)
            # multi-market accounts keyed for a mark band this mark has left: O(log n + k)
            for _, aid in m.band_lo.irange((mark + 1, -2**63), None):
                self._stale_keys.add(aid)
            for _, aid in m.band_hi.irange(None, (mark - 1, 2**63)):
                self._stale_keys.add(aid)
            if m.status == "open":
                self._fire_triggers(m)

    def _compute_mark(self, m: _Market) -> int | None:
        index = m.index
        if index is None:
            return None
        spec = m.spec
        bid, ask = m.book.best_bid(), m.book.best_ask()
        if spec.mark_method == "median3":
            ttf = m.next_funding - self.time
            p1 = index + _toward_zero(index * self._estimate_rate(m) * ttf,
                                      spec.funding_interval_ns * PPB)
            p2 = index + (_toward_zero(m.basis_sum, len(m.basis)) if m.basis else 0)
            p3 = m.last_price if m.last_price is not None else index
            mark = sorted((p1, p2, p3))[1]
        else:
            inputs = []
            if m.ema_basis is not None:
                inputs.append(index + _toward_zero(m.ema_basis, EMA_SCALE))
            else:
                inputs.append(index)
            local = [p for p in (bid, ask, m.last_price) if p is not None]
            if len(local) == 3:
                inputs.append(sorted(local)[1])
            if m.ema_local is not None:
                inputs.append(_toward_zero(m.ema_local, EMA_SCALE))
            inputs.sort()
            mark = inputs[len(inputs) // 2] if len(inputs) % 2 else \
                (inputs[len(inputs) // 2 - 1] + inputs[len(inputs) // 2]) // 2
        lo, hi = self._limit_band(m)
        return min(max(mark, lo, 1), hi)

    def _estimate_rate(self, m: _Market) -> int:
        """The funding rate the coming settlement would pay now, ppb per interval (cached
        until the next premium sample or settlement)."""
        if m.rate_cache is not None:
            return m.rate_cache
        m.rate_cache = self._compute_rate(m)
        return m.rate_cache

    def _compute_rate(self, m: _Market) -> int:
        spec = m.spec
        premium = _toward_zero(m.prem_sum, m.prem_weight) if m.prem_weight else 0
        gap = spec.funding_interest_ppb - premium
        rate_8h = premium + max(-spec.funding_clamp_ppb, min(spec.funding_clamp_ppb, gap))
        rate_8h = max(-spec.funding_cap_ppb, min(spec.funding_cap_ppb, rate_8h))
        return _toward_zero(rate_8h * spec.funding_interval_ns, EIGHT_HOURS_NS)

    def _impact_price(self, m: _Market, levels: list[tuple[int, int]]) -> Fraction | None:
        """Average price of a market order of the impact notional against ``levels``."""
        target = m.spec.impact_notional
        qty = value = 0
        for price, size in levels:
            step = price * m.mult
            take = min(size, _ceil_div(target - value * m.mult, step))
            qty += take
            value += take * price
            if value * m.mult >= target:
                return Fraction(value, qty)
        return None

    def _premium_sample(self, m: _Market) -> int:
        """(max(0, impact bid - index) - max(0, index - impact ask)) / index, in ppb; 0 when
        a side is too thin (dYdX)."""
        if m.index is None:
            return 0
        bids, asks = m.book.depth(64)
        ib, ia = self._impact_price(m, bids), self._impact_price(m, asks)
        if ib is None or ia is None:
            return 0
        index = m.index
        diff = max(Fraction(0), ib - index) - max(Fraction(0), index - ia)
        value = diff * PPB / index
        return int(value)  # toward zero

    def max_time_step(self) -> int:
        """The longest step one ``AdvanceTime`` may take, in ns: ``MAX_FUNDINGS_PER_STEP``
        funding intervals of the market that pays most often (each interval settled costs
        work, so a single command stays bounded; a longer span takes several commands)."""
        return MAX_FUNDINGS_PER_STEP * min(m.spec.funding_interval_ns
                                           for m in self._markets.values())

    def _advance_time(self, cmd: C.AdvanceTime) -> None:
        if not _is_int(cmd.ts_ns) or cmd.ts_ns < self.time or cmd.ts_ns >= 2**63:
            return self._reject(cmd, R.INVALID_TIMESTAMP)
        if cmd.ts_ns - self.time > self.max_time_step():
            return self._reject(cmd, R.TIME_STEP_TOO_LARGE)
        target = cmd.ts_ns
        for m in self._markets.values():
            # a mark moved by the passage of time moved because of the book: attribute it to
            # the latest liquidation whose fills are still inside the basis window, if any
            recent = m.last_liq is not None and \
                target - m.last_liq[0] <= m.spec.basis_window_s * NS_PER_SECOND
            m.cause = Cause("time", self._cur_seq, None, m.last_liq[1], m.last_liq[2]) \
                if recent else Cause("time", self._cur_seq)
            self._advance_market(m, target)
        self.time = target
        for m in self._markets.values():
            self._update_session(m, target)
            self._dirty.add(m.symbol)
        self._stabilise()

    def _advance_market(self, m: _Market, target: int) -> None:
        """Take the samples and settle the fundings that fall in (time, target]. Between two
        commands the book does not change, so repeated samples are applied in closed form."""
        spec = m.spec
        while True:
            end = min(target, m.next_funding)
            self._sample_until(m, end)
            if end < m.next_funding:
                return
            self.time = end
            self._update_session(m, end)
            self._settle_funding(m, end)
            m.next_funding += spec.funding_interval_ns

    def _sample_until(self, m: _Market, end: int) -> None:
        spec = m.spec
        if m.index is None:
            m.next_sample = max(m.next_sample, _next_multiple(end, NS_PER_SECOND))
            m.next_premium = max(m.next_premium, _next_multiple(end, spec.premium_sample_ns))
            return
        # premium samples (and, while the underlying is closed, the book-driven index)
        if m.next_premium <= end:
            count = (end - m.next_premium) // spec.premium_sample_ns + 1
            drifting = spec.index_when_closed == "book" and not m.session_open
            if drifting:
                self._drift_samples(m, count)
            else:
                self._add_premium(m, self._premium_sample(m), count)
            m.next_premium += count * spec.premium_sample_ns
        # one-second samples of (mid - index) for the mark's basis
        if m.next_sample <= end:
            count = (end - m.next_sample) // NS_PER_SECOND + 1
            bid, ask = m.book.best_bid(), m.book.best_ask()
            if bid is not None and ask is not None:
                basis = (bid + ask) // 2 - m.index
                for _ in range(min(count, spec.basis_window_s)):
                    if len(m.basis) == m.basis.maxlen:
                        m.basis_sum -= m.basis[0]
                    m.basis.append(basis)
                    m.basis_sum += basis
                if spec.mark_method == "hl":
                    local = sorted((bid, ask, m.last_price if m.last_price is not None
                                    else (bid + ask) // 2))[1]
                    m.ema_basis = _ema(m.ema_basis, basis, spec.mark_ema_s, count)
                    m.ema_local = _ema(m.ema_local, local, 30, count)
            m.next_sample += count * NS_PER_SECOND

    def _add_premium(self, m: _Market, sample: int, count: int) -> None:
        if m.spec.premium_weighting == "linear":
            first = m.prem_n + 1  # weights first .. first + count - 1
            weight = count * first + count * (count - 1) // 2
        else:
            weight = count
        m.prem_sum += sample * weight
        m.prem_weight += weight
        m.prem_n += count
        m.rate_cache = None

    def _drift_samples(self, m: _Market, count: int) -> None:
        """``count`` premium samples while the book drives the index: before each one the
        index drifts (``_drift_index``). Between two commands the book does not change, so
        while the index stays put every step adds the same increment to the residue and
        takes the same sample: those steps are applied in bulk, and only the steps that move
        the index are taken one by one (their number is bounded by the distance in ticks, not
        by the time elapsed). The result is the same as ``count`` single steps."""
        left = count
        while left:
            d = self._drift_increment(m)
            if not d:  # a fixed point: the rest of the samples are all alike
                self._add_premium(m, self._premium_sample(m), left)
                return
            r = m.drift_residue  # |r| < EMA_SCALE: the index moves when |r + n*d| reaches it
            need = _ceil_div(EMA_SCALE - r, d) if d > 0 else _ceil_div(EMA_SCALE + r, -d)
            quiet = min(max(need, 1) - 1, left)
            if quiet:
                m.drift_residue += quiet * d
                self._add_premium(m, self._premium_sample(m), quiet)
                left -= quiet
            if left:
                self._drift_index(m)
                self._add_premium(m, self._premium_sample(m), 1)
                left -= 1

    def _drift_increment(self, m: _Market) -> int:
        """What one drift step adds to the residue at the current index and book: dt / tau
        of the gap to the impact prices, in 1/EMA_SCALE ticks (0 when a side is too thin)."""
        bids, asks = m.book.depth(64)
        ib, ia = self._impact_price(m, bids), self._impact_price(m, asks)
        if ib is None or ia is None:
            return 0
        index = m.index
        gap = max(Fraction(0), ib - index) - max(Fraction(0), index - ia)
        dt = min(m.spec.premium_sample_ns // NS_PER_SECOND, m.spec.index_drift_tau_s // 10)
        return int(gap * dt * EMA_SCALE / m.spec.index_drift_tau_s)

    def _drift_index(self, m: _Market) -> None:
        """While the underlying is closed, move the index toward the book's impact mid by
        dt / tau of the gap (trade.xyz's internal pricing, step capped at 10% of tau)."""
        # keep the sub-tick part of each step, so small gaps still move the index over time
        m.drift_residue += self._drift_increment(m)
        step = _toward_zero(m.drift_residue, EMA_SCALE)
        if step:
            m.drift_residue -= step * EMA_SCALE
            m.index = max(1, m.index + step)

    def _update_session(self, m: _Market, ts: int) -> None:
        spec = m.spec
        if spec.session is None:  # the underlying never closes: the limit rolls at 00:00 UTC
            if ts // NS_PER_DAY != m.limit_day and m.index is not None:
                m.prev_close = m.index
            m.limit_day = ts // NS_PER_DAY
            return
        open_now = spec.session.is_open(ts)
        if open_now == m.session_open:
            return
        if m.session_open and not open_now and m.index is not None:
            m.prev_close = m.index  # the close the next day's price limit refers to
        m.session_open = open_now
        self._events.append(TradingStatusChanged(m.symbol, m.status, open_now))

    def _settle_funding(self, m: _Market, ts: int) -> None:
        spec = m.spec
        self._reprice(m)
        gated = (not m.session_open and not spec.funding_when_closed) or m.status != "open"
        rate = 0 if gated or m.mark is None else self._estimate_rate(m)
        price = (m.mark if spec.funding_price == "mark" else m.index) or 0
        per_lot = _toward_zero(price * rate * m.mult, PPB)
        paid = 0
        if per_lot:
            for aid, slot in sorted(m.holders.items()):
                acct = self._account_or_fund(aid)
                amount = -slot.size * per_lot
                self._credit(acct, slot if aid > 0 else None, amount)
                self.funding_net += amount
                paid += max(0, -amount)
                self._events.append(FundingPayment(aid, m.symbol, slot.size, amount))
        self._events.append(FundingSettled(m.symbol, ts, rate, price, per_lot, m.long_oi, paid))
        m.last_funding_rate = rate
        m.prem_sum = m.prem_weight = m.prem_n = 0
        m.rate_cache = None
        if per_lot:
            m.cause = Cause("funding", self._cur_seq)
            self._dirty.add(m.symbol)

    # -- views --------------------------------------------------------------------------------

    def account(self, account_id: int) -> AccountView:
        """A read-only view of an account. KeyError if it never deposited."""
        acct = self._accounts[account_id]
        equity, im, mm = self._cross(acct)
        positions = {}
        for symbol, slot in sorted(acct.slots.items()):
            m = self._markets[symbol]
            if slot.isolated:
                im += slot.margin
                if slot.size and m.mark is not None:
                    equity += slot.margin + self._upnl(m, slot)
                    mm += self._mm(m, slot)
                else:
                    equity += slot.margin
            if not slot.size:
                continue
            key = m.liq_key.get(account_id)
            positions[symbol] = PositionView(
                symbol, slot.size, _entry(slot), slot.cost,
                self._upnl(m, slot) if m.mark is not None else 0,
                "isolated" if slot.isolated else "cross", slot.leverage, slot.margin,
                self._mm(m, slot) if m.mark is not None else 0,
                None if key is None or key[1] in (_NO_LONG_KEY, 0)
                else key[1] + (-KEY_SLACK if key[0] else KEY_SLACK))
        open_orders = sum(len(s.orders) for s in acct.slots.values()) + len(acct.conditionals)
        return AccountView(account_id, self._balance(acct), equity, im, mm,
                           self._available(acct), self._withdrawable(acct), positions,
                           open_orders)

    def market(self, symbol: str) -> MarketView:
        m = self._markets[symbol]
        fund_slot = m.fund.slots.get(symbol)
        return MarketView(symbol, m.index, m.mark, m.last_price, self._estimate_rate(m),
                          m.last_funding_rate, m.next_funding, m.long_oi, m.fund.wallet,
                          fund_slot.size if fund_slot else 0, m.spec.tick_size,
                          m.spec.lot_size, m.mult, m.status, m.session_open, m.prev_close,
                          m.book.best_bid(), m.book.best_ask())

    @property
    def symbols(self) -> list[str]:
        return list(self._markets)

    def spec(self, symbol: str) -> MarketSpec:
        return self._markets[symbol].spec

    def book(self, symbol: str) -> Any:
        """The market's order book, for read-only queries (depth, best bid/ask)."""
        return self._markets[symbol].book

    def open_orders(self, account_id: int) -> list[dict[str, Any]]:
        acct = self._accounts[account_id]
        out = []
        for symbol in sorted(acct.slots):
            for o in acct.slots[symbol].orders.values():
                out.append(dict(order_id=o.order_id, symbol=symbol, side=o.side, price=o.price,
                                qty=o.qty, reduce_only=o.reduce_only,
                                client_order_id=o.client_order_id))
        for c in sorted(acct.conditionals.values(), key=lambda c: c.order_id):
            out.append(dict(order_id=c.order_id, symbol=c.symbol, side=c.side, price=c.price,
                            qty=c.qty, reduce_only=c.reduce_only,
                            client_order_id=c.client_order_id, trigger_price=c.trigger,
                            trigger_kind=c.trigger_kind))
        return out

    def accounts(self) -> list[int]:
        return sorted(self._accounts)

    # -- determinism and invariants -------------------------------------------------------------

    def state_hash(self) -> str:
        """A 16-hex-digit digest of the whole state; equal on both book implementations."""
        h = hashlib.blake2b(digest_size=8)
        h.update(repr((self.seq, self.time, self.fee_pool, self.bad_debt, self.net_deposits,
                       self._next_order_id, self._next_trade_id, self._next_liq_id)).encode())
        for aid in sorted(self._accounts):
            h.update(repr(_account_state(self._accounts[aid])).encode())
        for symbol, m in sorted(self._markets.items()):
            h.update(repr((symbol, m.index, m.mark, m.last_price, m.prev_close, m.status,
                           m.session_open, m.long_oi, _account_state(m.fund), tuple(m.basis),
                           m.drift_residue, m.limit_day,
                           m.basis_sum, m.ema_basis, m.ema_local, m.prem_sum, m.prem_weight,
                           m.prem_n, m.next_sample, m.next_premium, m.next_funding,
                           m.last_funding_rate, tuple(m.cond_below), tuple(m.cond_above),
                           m.book.state_hash())).encode())
        return h.hexdigest()

    def check_invariants(self) -> None:
        """Raise InvariantViolation unless every bookkeeping and money invariant holds."""
        money = self.fee_pool - self.bad_debt
        for acct in list(self._accounts.values()) + [m.fund for m in self._markets.values()]:
            money += acct.wallet
            for symbol, slot in acct.slots.items():
                money += slot.margin - slot.cost * self._markets[symbol].mult
                if not slot.size and (slot.cost or slot.margin):
                    raise InvariantViolation(f"flat slot {acct.account_id}/{symbol} keeps "
                                             f"cost {slot.cost} or margin {slot.margin}")
            if acct.account_id > 0 and acct.wallet < 0 and not any(
                    s.size and not s.isolated for s in acct.slots.values()):
                raise InvariantViolation(f"flat account {acct.account_id} below zero")
        if money != self.net_deposits:
            raise InvariantViolation(f"money: {money} held, {self.net_deposits} deposited")
        if self.funding_net != 0:
            raise InvariantViolation(f"funding payments sum to {self.funding_net}")
        for symbol, m in self._markets.items():
            m.book.check_invariants()
            sizes = {aid: s for aid, s in (
                [(a.account_id, a.slots.get(symbol)) for a in self._accounts.values()]
                + [(m.fund.account_id, m.fund.slots.get(symbol))]) if s is not None and s.size}
            if sum(s.size for s in sizes.values()) != 0:
                raise InvariantViolation(f"{symbol}: long lots != short lots")
            if m.long_oi != sum(s.size for s in sizes.values() if s.size > 0):
                raise InvariantViolation(f"{symbol}: open interest is off")
            if sizes.keys() != m.holders.keys():
                raise InvariantViolation(f"{symbol}: holders index is off")
            if m.mark is not None:
                for aid in sizes:
                    acct = self._account_or_fund(aid)
                    expected = (sizes[aid].size > 0, self._liq_key(acct, m, sizes[aid]))
                    if m.liq_key.get(aid) != expected:
                        raise InvariantViolation(f"{symbol}: liquidation key of {aid} is stale")
                    if m.status == "open" and self._liquidatable(acct, m) and all(
                            self._markets[s].status == "open" for s, sl in acct.slots.items()
                            if sl.size):
                        raise InvariantViolation(f"{symbol}: {aid} left liquidatable")
            for aid, (lo, hi) in m.band_of.items():
                if m.mark is not None and not lo <= m.mark <= hi:
                    raise InvariantViolation(f"{symbol}: {aid} keyed for a band the mark left")
            if len(m.liq_long) + len(m.liq_short) != len(m.liq_key):
                raise InvariantViolation(f"{symbol}: liquidation lists and keys disagree")
            resting = {}
            for side in (m.book.snapshot()):
                for view in side:
                    resting[view.order_id] = view
            mine = {oid: o for oid, o in self._orders.items() if o.symbol == symbol}
            if resting.keys() != mine.keys():
                raise InvariantViolation(f"{symbol}: venue and book disagree on resting orders")
            for oid, view in resting.items():
                o = mine[oid]
                if (view.qty, view.price, int(view.side), view.account) != \
                        (o.qty, o.price, int(o.side), o.account_id):
                    raise InvariantViolation(f"{symbol}: order {oid} differs from the book")
        for acct in self._accounts.values():
            for symbol, slot in acct.slots.items():
                buys = [o for o in slot.orders.values() if o.side == _BUY and not o.reduce_only]
                sells = [o for o in slot.orders.values()
                         if o.side == _SELL and not o.reduce_only]
                if (slot.buy_qty, slot.buy_value, slot.sell_qty, slot.sell_value) != (
                        sum(o.qty for o in buys), sum(o.qty * o.price for o in buys),
                        sum(o.qty for o in sells), sum(o.qty * o.price for o in sells)):
                    raise InvariantViolation(f"order totals of {acct.account_id}/{symbol}")

    # -- journal ------------------------------------------------------------------------------

    @classmethod
    def recover(cls, path: str | Path, *, book: str = "auto") -> Venue:
        """Rebuild a venue from its journal (the newest valid snapshot beside it, then the
        records after it; a torn tail is cut off and kept aside) and keep appending to it.
        ``risk.recovery.recover`` also returns the journal's notes and what it did."""
        from gaemi.risk.recovery import recover

        return recover(path, book=book).venue

    @classmethod
    def from_header(cls, header: dict[str, Any], *, book: str = "auto") -> Venue:
        """A fresh venue configured as the journal header says (no journal attached)."""
        if not isinstance(header, dict) or "markets" not in header:
            raise ValueError("the journal has no header")
        specs = [_spec_from_dict(d) for d in header["markets"]]
        return cls(specs, book=book, start_ts=header["start_ts"])

    def replay(self, row: Any) -> None:
        """Apply one journaled command record; a rejection means the journal and the code
        disagree, which is a defect (InvariantViolation)."""
        events = self.submit(C.decode(row))
        if len(events) == 1 and type(events[0]) is Rejected:
            raise InvariantViolation(f"journaled command replays as a rejection: {row!r}")

    def attach_journal(self, writer: JournalWriter | None) -> None:
        """Append every later accepted command to ``writer`` (after a recovery; None: stop
        journaling)."""
        self._journal = writer

    def flush(self) -> None:
        """Hand every journaled command to the operating system: it survives a crash of this
        process (not of the machine: that is ``sync``)."""
        if self._journal is not None:
            self._journal.flush()

    def sync(self) -> None:
        """Make every journaled command durable (flush + fsync)."""
        if self._journal is not None:
            self._journal.sync()

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()


# -- helpers --------------------------------------------------------------------------------------


def _fee(notional: int, rate_ppb: int) -> int:
    """Fees round up; a rebate (negative rate) rounds down in size."""
    return _ceil_div(notional * rate_ppb, PPB) if rate_ppb >= 0 else \
        -(notional * -rate_ppb // PPB)


def _ema(prev: int | None, sample: int, tau_s: int, count: int) -> int:
    """``count`` one-second steps of an EMA with time constant ``tau_s``, scaled by EMA_SCALE.
    After 20 tau the EMA equals the sample (its residue is below 1e-8 of the gap)."""
    target = sample * EMA_SCALE
    if prev is None or count >= 20 * tau_s:
        return target
    value = prev
    for _ in range(count):
        value += _toward_zero(target - value, tau_s)
    return value


def _add_order_value(slot: _Slot, side: int, qty: int, price: int, sign: int) -> None:
    if side == _BUY:
        slot.buy_qty += sign * qty
        slot.buy_value += sign * qty * price
    else:
        slot.sell_qty += sign * qty
        slot.sell_value += sign * qty * price


def _entry(slot: _Slot) -> int:
    if not slot.size:
        return 0
    return (2 * abs(slot.cost) + abs(slot.size)) // (2 * abs(slot.size))


def _cid(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _account_state(acct: _Account) -> tuple[Any, ...]:
    return (acct.account_id, acct.wallet, acct.last_symbol, tuple(
        (symbol, s.size, s.cost, s.isolated, s.margin, s.leverage,
         tuple((o.order_id, o.side, o.price, o.qty, o.reduce_only, o.client_order_id)
               for o in s.orders.values()))
        for symbol, s in sorted(acct.slots.items())),
        tuple(sorted((c.order_id, c.symbol, c.side, c.qty, c.trigger, c.trigger_kind, c.price,
                      c.reduce_only, c.client_order_id) for c in acct.conditionals.values())))


def _spec_to_dict(spec: MarketSpec) -> dict[str, Any]:
    data = asdict(spec)
    data.pop("cums", None)
    return data


def _spec_from_dict(data: dict[str, Any]) -> MarketSpec:
    data = dict(data)
    data["tiers"] = tuple(MarginTier(**t) for t in data["tiers"])
    if data.get("session") is not None:
        session = dict(data["session"])
        session["weekdays"] = tuple(session["weekdays"])
        data["session"] = Session(**session)
    return MarketSpec(**data)
