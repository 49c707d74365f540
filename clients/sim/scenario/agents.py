"""The scenario's agents. They speak the wire protocol and nothing else: every action is a
request ``{"op", "args"}`` of docs/protocol.md sent on the account's ``Session``
(clients/live/session.py), and what they learn of their own account is what a websocket client
learns: the request's ``Reply`` (its result, and the fills it caused), ``account.positions``,
``account.balance``, and the notices the driver hands them from the account's private
channels (a resting order's fill, a liquidation). The in-process driver gives them sessions on
the sans-I/O exchange (clients/sim/inprocess.py); the same agent runs unchanged with websocket
sessions (tests/clients/test_agents_transports.py). What the driver gives besides is the
market as the public data shows it (``View``: the underlying, mark, last trade, best bid and
ask), the clock (``at``), and the money (``deposit``).

Theory of operation
-------------------
* ``RetailCohort``: the ants (long) and the contrarian inverse cohort (short), thousands of
  accounts driven by a schedule (arrival, end of holding time), by take-profit triggers on
  the mark kept in a heap (a step costs O(triggered), not O(accounts)), and by resting dip
  orders (a bid below the last fill for a long, an offer above for a short) whose fills the
  driver reports back. One deposit each, never a top-up; cross margin; market orders to open
  and close. A liquidated account that is left flat is gone. In the ``margin-loan`` regime
  the broker (clients/sim/scenario/broker.py) sets the buying power (its loan: up to
  ``loan_leverage`` x the equity, the venue's own margin never binding), blocks buying while
  a margin call is open, may bring a top-up, and a forced sale that leaves the account flat
  ends it as a liquidation would.
* ``MarketMaker``: post-only ladders around the underlying, leaning against inventory, with
  no quotes on the side that would pass the inventory limit. Under stress (the underlying's
  range over a window, or the notional liquidated in it) it widens, shrinks and quotes
  around the perp's last trade instead; beyond a second threshold, or during an
  ``mm_withdrawal`` shock, it pulls everything for a while.
* ``Arbitrageur``: basis traders resting clips at the underlying +- an edge, within a
  position limit: they become the short side of the crowded long, and buy back when the perp
  trades cheap, until the stress (range or liquidations) is too high.
* ``EtfRebalancer``: one leveraged or inverse product's hedge, dH = AUM (L^2 - L) r, in equal
  slices over the last minutes before the close of the market where the product trades.
* ``NoiseTrader``: small market orders of random side, Poisson in time.

Quoting agents requote in two phases (every due quoter cancels, then every due quoter
places), so that one maker's new ladder never crosses another's stale one.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from gaemi.clients.live.session import Reply, Session
from gaemi.clients.sim.cascade.record import Cohort
from gaemi.clients.sim.scenario.params import (
    ArbParams,
    CohortParams,
    EtfProductParams,
    MarginLoanParams,
    MarketMakerParams,
    NoiseParams,
)
from gaemi.risk.calendar import NS_PER_SECOND
from gaemi.risk.markets import UNIT, MarketSpec

__all__ = [
    "Api", "Arbitrageur", "EtfRebalancer", "MarketMaker", "NoiseTrader", "RetailCohort", "View",
    "cancel_all", "place", "set_leverage",
]

BUY, SELL = 1, -1


# -- wire messages (docs/protocol.md) ---------------------------------------------------------

def place(symbol: str, side: int, qty: int, price: int | None = None, *,
          post_only: bool = False, reduce_only: bool = False) -> dict[str, Any]:
    """``order.place``: a limit order at ``price`` (post-only if asked) or a market order."""
    args: dict[str, Any] = {"symbol": symbol, "side": "BUY" if side == BUY else "SELL",
                            "qty": qty}
    if price is None:
        args["type"] = "MARKET"
    else:
        args["type"] = "LIMIT"
        args["price"] = price
        if post_only:
            args["timeInForce"] = "POST_ONLY"
    if reduce_only:
        args["reduceOnly"] = True
    return {"op": "order.place", "args": args}


def cancel_all(symbol: str) -> dict[str, Any]:
    return {"op": "order.cancelAll", "args": {"symbol": symbol}}


def set_leverage(symbol: str, leverage: int) -> dict[str, Any]:
    return {"op": "account.setLeverage", "args": {"symbol": symbol, "leverage": leverage}}


# -- what agents see and do ---------------------------------------------------------------------

@dataclass(slots=True)
class View:
    """The market at one step, as the public channels and the underlying show it."""

    t: int  # venue time, ns
    ref: int  # the underlying's price in ticks (the last close while its market is closed)
    mark: int | None = None
    last: int | None = None  # the perp's last trade
    best_bid: int | None = None
    best_ask: int | None = None
    stress_bps: float = 0.0  # the underlying's (max - min) / price over the stress window
    liquidated_usd: float = 0.0  # liquidated notional over the stress window
    mm_withdrawal: bool = False  # an injected market-maker withdrawal is on


class Api(Protocol):
    """What the driver gives an agent: a session per account (the wire), the money, the
    clock, the market as public data shows it."""

    symbol: str
    spec: MarketSpec
    mult: int
    view: View  # the current step's

    def session(self, account_id: int, channels: tuple[str, ...] = ()) -> Session: ...
    def deposit(self, account_id: int, amount: int) -> None: ...
    def at(self, ts: int, action: Callable[[Any], None], arg: Any) -> None: ...
    def session_after(self, ts: int, seconds: float) -> int | None: ...
    def register(self, account_id: int, cohort: Cohort, owner: Any) -> None: ...


def _lots(api: Api, usd: float, price: int) -> int:
    """Whole lots worth ``usd`` at ``price`` ticks (rounded down)."""
    return int(usd * UNIT) // (price * api.mult) if price > 0 else 0


def _taker_fills(reply: Reply) -> tuple[int, int]:
    """(lots, ticks x lots) the request filled as a taker (liquidation fills left out)."""
    qty = value = 0
    for f in reply.fills("taker"):
        qty += f["qty"]
        value += f["qty"] * f["price"]
    return qty, value


# -- the ants and the inverse cohort ------------------------------------------------------------

_WAITING, _OPEN, _CLOSED, _GONE = 0, 1, 2, 3


class _Ant:
    __slots__ = ("account_id", "deposit", "wanted", "leverage", "use", "dip_pct", "dips",
                 "state", "version", "epoch", "resting", "last_add", "entry", "session",
                 "open_dips", "loan_leverage", "blocked")

    def __init__(self, account_id: int, deposit: int, wanted: int, leverage: int, use: float,
                 dip_pct: float) -> None:
        self.account_id = account_id
        self.deposit = deposit
        self.wanted = wanted  # the leverage it wants; ``leverage``: what the market allows
        self.leverage = leverage
        # margin-loan regime: the broker's leverage (holding / own money) it uses, and whether
        # an open margin call or forced sale stops it from buying (0.0, False on the perp)
        self.loan_leverage = 0.0
        self.blocked = False
        self.use = use
        self.dip_pct = dip_pct  # 0: not a dip buyer
        self.dips = 0
        self.state = _WAITING
        self.version = 0  # bumped to invalidate its take-profit trigger in the heap
        self.epoch = 0  # one per holding period: a stale exit finds another epoch
        self.resting = False  # a dip order rests in the book
        self.last_add = 0
        self.entry = 0
        self.session: Session | None = None  # from its arrival
        self.open_dips: dict[int, int] = {}  # resting dip order id -> open lots

class RetailCohort:
    """The ants (``params.side == "long"``) or the inverse cohort (short).

    The opening order is a market order. A dip buyer then rests a limit order ``dip_pct``
    beyond its last fill (a bid below, for a long: Korean retail's standing "pick-up" bids;
    an offer above, for a short), sized to ``dip_use`` of what is left, and rests the next
    one when it fills, up to ``max_dips``. The take-profit is watched on the mark."""

    def __init__(self, params: CohortParams, role: str, first_id: int, arrivals: list[int],
                 rng: random.Random, api: Api, loan: MarginLoanParams | None = None) -> None:
        self.p = params
        self.loan = loan  # the margin-loan regime's broker rules (None: the perp)
        self.role = role
        self.api = api
        self.sign = BUY if params.side == "long" else SELL
        self.rng = rng
        spec = api.spec
        self.cap_notional = int((spec.tiers[0].max_notional or 10**18) * 0.95)  # first tier
        levs = [lev for lev, _ in params.leverage]
        weights = [w for _, w in params.leverage]
        self.ants: list[_Ant] = []
        self.first_id = first_id
        self._triggers: list[tuple[int, int, _Ant, int]] = []  # (key, seq, ant, version)
        self._seq = 0
        self.stats = {"entries": 0, "dip_orders": 0, "dip_fills": 0, "take_profits": 0,
                      "exits": 0, "reentries": 0, "liquidated_out": 0, "not_filled": 0}
        median = math.log(params.deposit_median_usd)
        for i, ts in enumerate(arrivals):
            aid = first_id + i
            deposit = int(rng.lognormvariate(median, params.deposit_sigma) * UNIT)
            wanted = rng.choices(levs, weights)[0]
            use = rng.uniform(params.margin_use_min, params.margin_use_max)
            dip = rng.uniform(params.dip_pct_min, params.dip_pct_max)
            ant = _Ant(aid, max(deposit, UNIT), wanted, min(wanted, spec.max_leverage), use,
                       dip if rng.random() < params.dip_share else 0.0)
            if loan is not None:  # the venue's margin never binds: the broker's does
                ant.leverage = spec.max_leverage
                ant.loan_leverage = min(wanted, loan.max_leverage)
            self.ants.append(ant)
            side = "long" if self.sign == BUY else "inverse"
            api.register(aid, Cohort(f"ant {side} {wanted}x", role,
                                     wanted if loan is not None else ant.leverage), self)
            api.at(ts, self._arrive, ant)

    @property
    def total_deposits(self) -> int:
        return sum(a.deposit for a in self.ants)

    # -- scheduled actions ------------------------------------------------------------------

    def _arrive(self, ant: _Ant) -> None:
        api = self.api
        # its private channels: its resting orders' fills, its liquidation
        ant.session = api.session(ant.account_id, ("fills", "account"))
        api.deposit(ant.account_id, ant.deposit)
        ant.session.send(set_leverage(api.symbol, ant.leverage))
        self._open(ant)

    def _come_back(self, ant: _Ant) -> None:
        if ant.state == _CLOSED:
            self.stats["reentries"] += 1
            self._open(ant)

    def _size(self, ant: _Ant, use: float, price: int) -> int:
        """Lots for a new order at ``price`` using ``use`` of the available margin, keeping
        the position and its open orders inside the first margin tier."""
        api = self.api
        assert ant.session is not None
        held = abs(ant.session.position(api.symbol))
        if self.loan is None:
            power = int(ant.session.available() * ant.leverage * use)
        else:  # the broker lends up to loan_leverage x the equity, the holding included
            b = ant.session.request("account.balance")
            room = int(ant.loan_leverage * int(b["equity"])) - int(b["marginUsed"]) * ant.leverage
            power = int(room * use)
        notional = min(power, self.cap_notional - held * price * api.mult)
        qty = notional // (price * api.mult) if notional > 0 and price > 0 else 0
        return min(qty, api.spec.max_order_qty)

    def _open(self, ant: _Ant) -> None:
        if ant.blocked:
            return
        api = self.api
        view = api.view
        touch = view.best_ask if self.sign == BUY else view.best_bid
        qty = self._size(ant, ant.use, touch or view.mark or view.ref)
        if qty <= 0:
            return
        assert ant.session is not None
        filled, value = _taker_fills(ant.session.send(place(api.symbol, self.sign, qty)))
        if not filled:
            self.stats["not_filled"] += 1
            return
        avg = value // filled
        self.stats["entries"] += 1
        ant.state = _OPEN
        ant.entry = ant.last_add = avg
        ant.dips = 0
        ant.epoch += 1
        ant.version += 1
        exit_ts = api.session_after(view.t, self.rng.expovariate(1 / self.p.hold_mean_s))
        if exit_ts is not None:
            api.at(exit_ts, self._exit, (ant, ant.epoch))
        # the take-profit, watched on the mark: above the entry for a long, below for a short
        self._seq += 1
        target = round(avg * (1 + self.sign * self.p.take_profit_pct / 100))
        heapq.heappush(self._triggers, (self.sign * target, self._seq, ant, ant.version))
        self._rest_dip_order(ant)

    def _rest_dip_order(self, ant: _Ant) -> None:
        p = self.p
        if not ant.dip_pct or ant.dips >= p.max_dips or ant.blocked:
            return
        price = round(ant.last_add * (1 - self.sign * ant.dip_pct / 100))
        qty = self._size(ant, p.dip_use, price)
        if qty <= 0:
            return
        api = self.api
        assert ant.session is not None
        reply = ant.session.send(place(api.symbol, self.sign, qty, price))
        if not reply.ok:
            return
        self.stats["dip_orders"] += 1
        filled, _ = _taker_fills(reply)
        if filled >= qty:  # the market was already there: filled at once, as a taker
            self.on_maker_fill(ant.account_id, price, 0)
        else:
            ant.resting = reply.result["status"] in ("NEW", "PARTIALLY_FILLED")
            if ant.resting:
                ant.open_dips[reply.result["orderId"]] = reply.result["remainingQty"]

    def _exit(self, arg: tuple[_Ant, int]) -> None:
        ant, epoch = arg
        if ant.state == _OPEN and ant.epoch == epoch:
            self._close(ant, take_profit=False)

    def _close(self, ant: _Ant, *, take_profit: bool) -> None:
        api = self.api
        session = ant.session
        assert session is not None
        if ant.resting:
            session.send(cancel_all(api.symbol))
            ant.resting = False
        size = session.position(api.symbol)
        if size:
            session.send(place(api.symbol, -self.sign, min(abs(size), api.spec.max_order_qty),
                               reduce_only=True))
            size = session.position(api.symbol)
        if size:  # the book was too thin: try again in a minute
            api.at(api.view.t + 60 * NS_PER_SECOND, self._exit, (ant, ant.epoch))
            return
        self.stats["take_profits" if take_profit else "exits"] += 1
        ant.state = _CLOSED
        ant.version += 1
        if self.rng.random() < self.p.reentry_prob:
            back = api.session_after(api.view.t, self.rng.expovariate(2 / self.p.hold_mean_s))
            if back is not None:
                api.at(back, self._come_back, ant)

    # -- notifications (after the command that caused them) ---------------------------------

    def on_liquidated(self, account_id: int) -> None:
        """The account's ``account`` channel said it was liquidated."""
        ant = self.ants[account_id - self.first_id]
        ant.resting = False  # a liquidation cancels the account's orders first
        assert ant.session is not None
        if ant.session.position(self.api.symbol) == 0 and ant.state == _OPEN:
            ant.state = _GONE
            ant.version += 1
            self.stats["liquidated_out"] += 1

    # -- the broker's (margin-loan regime, clients/sim/scenario/broker.py) ------------------

    def session_of(self, account_id: int) -> Session:
        session = self.ants[account_id - self.first_id].session
        assert session is not None
        return session

    def set_blocked(self, account_id: int, blocked: bool) -> None:
        """A margin call (or a forced sale under way) stops the account from buying more;
        a new call cancels the orders it has resting."""
        ant = self.ants[account_id - self.first_id]
        if blocked and not ant.blocked and ant.resting:
            assert ant.session is not None
            ant.session.send(cancel_all(self.api.symbol))
            self.on_orders_cancelled(account_id)
        ant.blocked = blocked

    def on_orders_cancelled(self, account_id: int) -> None:
        ant = self.ants[account_id - self.first_id]
        ant.resting = False
        ant.open_dips.clear()

    def on_forced_out(self, account_id: int) -> None:
        """The broker's forced sale left the account flat: it is gone, as if liquidated."""
        ant = self.ants[account_id - self.first_id]
        if ant.state == _OPEN:
            ant.state = _GONE
            ant.version += 1
            self.stats["forced_out"] = self.stats.get("forced_out", 0) + 1

    def on_fill(self, account_id: int, fill: dict[str, Any]) -> None:
        """A ``fills`` push of the account's resting dip order (a maker fill)."""
        ant = self.ants[account_id - self.first_id]
        left = ant.open_dips.get(fill["orderId"], 0) - fill["qty"]
        if left > 0:
            ant.open_dips[fill["orderId"]] = left
        else:
            ant.open_dips.pop(fill["orderId"], None)
        self.on_maker_fill(account_id, fill["price"], max(left, 0))

    def on_maker_fill(self, account_id: int, price: int, remaining: int) -> None:
        """A dip order traded at ``price``; when it is done, rest the next one."""
        ant = self.ants[account_id - self.first_id]
        if remaining:
            return
        ant.resting = False
        if ant.state != _OPEN:
            return
        self.stats["dip_fills"] += 1
        ant.dips += 1
        ant.last_add = price
        self._rest_dip_order(ant)

    def on_step(self, view: View) -> None:
        """Fire the take-profits the mark has reached (once per step)."""
        mark = view.mark
        if mark is None:
            return
        heap, key = self._triggers, self.sign * mark
        fired = []
        while heap and heap[0][0] <= key:
            fired.append(heapq.heappop(heap))
        for _, _, ant, version in fired:
            if ant.state == _OPEN and ant.version == version:
                self._close(ant, take_profit=True)


# -- quoting agents -------------------------------------------------------------------------------

class _Quoter:
    """Two-phase requote: ``due`` (may pull quotes), then ``pull``, then ``quote``."""

    account_id: int
    api: Api
    session: Session
    quoted: bool

    def pull(self) -> None:
        self.session.send(cancel_all(self.api.symbol))
        self.quoted = False


class MarketMaker(_Quoter):
    def __init__(self, params: MarketMakerParams, account_id: int, number: int, api: Api) -> None:
        self.p = params
        self.account_id = account_id
        self.api = api
        # makers differ a little, so their levels interleave instead of stacking
        self.offset_bps = number * params.level_step_bps / max(1, params.count)
        self.quoted = False
        self.off_until = 0
        self.last_t = 0
        self.last_ref = 0
        self.last_stressed = False
        self.stats = {"requotes": 0, "withdrawals": 0, "rejected": 0}
        api.register(account_id, Cohort("market maker", "market_maker", 1), self)
        self.session = api.session(account_id)

    def start(self) -> None:
        api = self.api
        api.deposit(self.account_id, int(self.p.capital_usd * UNIT))
        self.session.send(set_leverage(api.symbol, min(10, api.spec.max_leverage)))

    def due(self, view: View) -> bool:
        p = self.p
        if view.mm_withdrawal or view.stress_bps >= p.withdraw_at_bps or \
                view.liquidated_usd >= p.withdraw_at_liquidated_usd:
            if self.quoted:
                self.stats["withdrawals"] += 1
                self.pull()
            self.off_until = view.t + p.withdraw_s * NS_PER_SECOND
            return False
        if view.t < self.off_until:
            return False
        stressed = self._stressed(view)
        return (not self.quoted or view.t - self.last_t >= p.requote_s * NS_PER_SECOND
                or abs(view.ref - self.last_ref) * 10_000 >= p.requote_bps * self.last_ref
                or stressed != self.last_stressed)

    def _stressed(self, view: View) -> bool:
        return view.stress_bps >= self.p.widen_at_bps or \
            view.liquidated_usd >= self.p.widen_at_liquidated_usd

    def quote(self, view: View) -> None:
        p, api = self.p, self.api
        stressed = self._stressed(view)
        self.last_t, self.last_ref, self.last_stressed = view.t, view.ref, stressed
        ref = view.ref
        if stressed and view.last is not None:
            ref = round(ref + p.stress_anchor_last * (view.last - ref))
        self.stats["requotes"] += 1
        inventory = self.session.position(api.symbol) * ref * api.mult / UNIT
        lean = max(-1.0, min(1.0, inventory / p.inventory_limit_usd))
        center = ref * (1 - lean * p.skew_bps / 10_000)
        widen = p.widen_factor if stressed else 1.0
        qty = _lots(api, p.level_usd * (p.stress_size_factor if stressed else 1.0), ref)
        if qty <= 0:
            return
        for k in range(p.levels):
            away = (p.half_spread_bps + self.offset_bps + k * p.level_step_bps) * widen / 10_000
            if lean < 1.0:
                self._post(BUY, math.floor(center * (1 - away)), qty)
            if lean > -1.0:
                self._post(SELL, math.ceil(center * (1 + away)), qty)
        self.quoted = True

    def _post(self, side: int, price: int, qty: int) -> None:
        if price <= 0:
            return
        reply = self.session.send(place(self.api.symbol, side, qty, price, post_only=True))
        if not reply.ok:
            self.stats["rejected"] += 1


class Arbitrageur(_Quoter):
    def __init__(self, params: ArbParams, account_id: int, api: Api) -> None:
        self.p = params
        self.account_id = account_id
        self.api = api
        self.quoted = False
        self.last_t = 0
        self.last_ref = 0
        self.stats = {"requotes": 0, "withdrawals": 0}
        api.register(account_id, Cohort("arbitrageur", "arbitrageur", params.leverage), self)
        self.session = api.session(account_id)

    def start(self) -> None:
        api = self.api
        api.deposit(self.account_id, int(self.p.capital_usd * UNIT))
        self.session.send(set_leverage(api.symbol, min(self.p.leverage, api.spec.max_leverage)))

    def due(self, view: View) -> bool:
        p = self.p
        if view.stress_bps >= p.withdraw_at_bps or \
                view.liquidated_usd >= p.withdraw_at_liquidated_usd:
            if self.quoted:
                self.stats["withdrawals"] += 1
                self.pull()
            return False
        return (not self.quoted or view.t - self.last_t >= p.requote_s * NS_PER_SECOND
                or abs(view.ref - self.last_ref) * 20_000 >= p.edge_bps * self.last_ref)

    def quote(self, view: View) -> None:
        p, api = self.p, self.api
        ref = view.ref
        self.last_t, self.last_ref = view.t, ref
        self.stats["requotes"] += 1
        position = self.session.position(api.symbol)
        limit = _lots(api, p.max_position_usd, ref)
        clip = _lots(api, p.clip_usd, ref)
        edge = p.edge_bps / 10_000
        sell = min(clip, limit + position)
        buy = min(clip, limit - position)
        if sell > 0:
            self.session.send(place(api.symbol, SELL, sell, math.ceil(ref * (1 + edge))))
        if buy > 0:
            self.session.send(place(api.symbol, BUY, buy, math.floor(ref * (1 - edge))))
        self.quoted = True


# -- flows ---------------------------------------------------------------------------------------

class EtfRebalancer:
    """One leveraged or inverse product's daily hedge, dH = AUM (L^2 - L) r (§9.6), traded on
    the perp in equal slices over the last ``window_s`` before the close of the product's own
    market. r is the underlying's return since its previous close, read when the window
    opens (after the underlying's close it is the day's real return). dH has the sign of r
    for every product, inverse ones included: each sells into a fall."""

    def __init__(self, product: EtfProductParams, account_id: int, aum_usd: float, api: Api,
                 closes: Sequence[int], step_s: int) -> None:
        self.p = product
        self.account_id = account_id
        self.aum = aum_usd
        self.api = api
        self.closes = closes  # ns: the product's close on each simulated day
        # a slice every slice_s, rounded up to whole steps of the driver's clock
        self.period = -(-product.slice_s // step_s) * step_s * NS_PER_SECOND
        self.slices = -(-product.window_s * NS_PER_SECOND // self.period)
        self.plan: tuple[int, int] | None = None  # (day number, signed lots per slice)
        self.last_slice = (-1, -1)  # (day number, slice number) of the last slice traded
        self.stats: dict[str, Any] = {"leverage": product.leverage, "aum_usd": aum_usd,
                                      "slices": 0, "rebalanced_usd": 0.0}
        api.register(account_id, Cohort(f"etf {product.name}", "etf", 1), self)
        self.session = api.session(account_id)

    def start(self) -> None:
        api = self.api
        api.deposit(self.account_id, max(UNIT, int(self.aum * UNIT)))
        self.session.send(set_leverage(api.symbol, min(10, api.spec.max_leverage)))

    def on_step(self, view: View, day: int, prev_close: int) -> None:
        """The step at ``view.t`` of simulated day number ``day``."""
        close = self.closes[day]
        start = close - self.p.window_s * NS_PER_SECOND
        if not start <= view.t < close:
            return
        k = (view.t - start) // self.period
        if self.last_slice == (day, k):
            return
        self.last_slice = (day, k)
        if self.plan is None or self.plan[0] != day:
            lev = self.p.leverage
            r = view.ref / prev_close - 1
            dh_usd = self.aum * (lev * lev - lev) * r
            per_slice = int(abs(dh_usd) / self.slices * UNIT) // (view.ref * self.api.mult)
            self.plan = (day, per_slice if dh_usd >= 0 else -per_slice)
            self.stats["rebalanced_usd"] += dh_usd
        lots = self.plan[1]
        if lots:
            self.stats["slices"] += 1
            api = self.api
            self.session.send(place(api.symbol, BUY if lots > 0 else SELL,
                                    min(abs(lots), api.spec.max_order_qty)))


class NoiseTrader:
    def __init__(self, params: NoiseParams, account_id: int, rng: random.Random, api: Api,
                 first_ts: int) -> None:
        self.p = params
        self.account_id = account_id
        self.rng = rng
        self.api = api
        self.rate = params.orders_per_hour / 3600
        api.register(account_id, Cohort("background", "background", params.leverage), self)
        self.session = api.session(account_id)
        if self.rate > 0:
            api.at(first_ts + self._gap(), self._trade, None)

    def start(self) -> None:
        api = self.api
        api.deposit(self.account_id, int(self.p.capital_usd * UNIT))
        self.session.send(set_leverage(api.symbol, min(self.p.leverage, api.spec.max_leverage)))

    def _gap(self) -> int:
        return max(1, round(self.rng.expovariate(self.rate))) * NS_PER_SECOND

    def _trade(self, _: Any) -> None:
        api, p = self.api, self.p
        view = api.view
        position = self.session.position(api.symbol)
        side = BUY if self.rng.random() < 0.5 else SELL
        if abs(position) * view.ref * api.mult >= p.max_position_usd * UNIT:
            side = SELL if position > 0 else BUY
        usd = self.rng.lognormvariate(math.log(p.size_median_usd), p.size_sigma)
        qty = min(_lots(api, usd, view.ref), api.spec.max_order_qty)
        if qty > 0:
            self.session.send(place(api.symbol, side, qty))
        api.at(view.t + self._gap(), self._trade, None)
