"""The broker of the ``margin-loan`` regime: Korean brokerage margin accounts (신용융자) on the
retail cohorts, in place of the perp's liquidation engine (docs/scenarios.md, "The
margin-loan regime").

Theory of operation
-------------------
In this regime the venue stands for the stock market (KRX's daily limit, no funding:
clients/sim/scenario/market.py ``scenario_spec``) and a retail account's position is its
holding of the stock, bought partly with the broker's money. Nothing is lent explicitly: the
loan is what the holding cost beyond the account's own money, read off the venue's account
at the mark (the broker keeps the books; it acts only through the account's own session, as
a broker's order desk would):

* a long of value ``H`` (|lots| x mark x multiplier) with equity ``E`` owes ``B = H - E``
  (constant while the price moves) against collateral ``C = H``;
* a short (대주: stock lent to the account) owes the lent stock, ``B = H``, against its cash,
  ``C = E + H`` (the sale's proceeds and its own money).

The maintenance ratio is ``C / B`` (담보유지비율). At each session's close, after the last
step's actions, an account below ``maintenance_pct`` (``short_maintenance_pct`` for a short)
gets a margin call for the deposit that restores the ratio, and cannot buy more (its resting
orders are cancelled). A share ``top_up_share`` of calls, drawn per call from the broker's own
random stream, is met: the ant deposits the amount at the next session's open. A call not met
and not cured by the price at a later close ends in a forced sale (반대매매) at the open of the
``forced_sale_sessions``-th session after the call: the broker cancels the account's orders
and sells (buys, for a short) at the day's limit price, reduce-only, the lots that restore
the ratio were they to trade at that price (all of them when the account is under water
there). What does not trade at once rests at the limit; the broker follows its fills. The
venue's own liquidation engine stays on as the last resort under the broker: with the venue
leverage at the market's maximum it acts only if an account's equity nears zero before the
broker does, and what it costs the insurance fund is then the broker's loss.

The broker's numbers (calls, top-ups, forced orders and fills) go to the run's facts
(``run_facts.broker``); the summary's ``regime`` block reads them beside the venue's
liquidations, so both regimes are described by the same keys.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from gaemi.clients.sim.scenario.agents import cancel_all, place
from gaemi.clients.sim.scenario.params import MarginLoanParams
from gaemi.risk.markets import PPB

if TYPE_CHECKING:
    from gaemi.clients.sim.scenario.agents import RetailCohort
    from gaemi.risk.events import AccountView
    from gaemi.risk.venue import Venue

__all__ = ["Broker", "Valuation", "forced_sale_lots", "limit_prices", "top_up_amount",
           "valuation"]

BUY, SELL = 1, -1


@dataclass(frozen=True, slots=True)
class Valuation:
    """An account's margin position at one price: signed lots, collateral and loan (µ$)."""

    size: int
    collateral: int
    loan: int

    def below(self, ratio: Fraction) -> bool:
        """The maintenance ratio collateral / loan is under ``ratio`` (a loan is owed)."""
        return self.loan > 0 and self.collateral < ratio * self.loan


def valuation(size: int, equity: int, price: int, mult: int) -> Valuation:
    """The account of ``size`` lots and ``equity`` µ$ valued at ``price`` ticks (the equity
    already at that price): a long owes ``H - E`` against ``H``, a short owes ``H`` against
    ``E + H``, ``H`` the holding's value."""
    held = abs(size) * price * mult
    if size > 0:
        return Valuation(size, held, max(0, held - equity))
    if size < 0:
        return Valuation(size, equity + held, held)
    return Valuation(0, max(0, equity), 0)


def top_up_amount(v: Valuation, ratio: Fraction) -> int:
    """The deposit, µ$ rounded up, that brings ``v`` back to ``ratio``: for a long the cash
    repays loan (``C / (B - X) = m``), for a short it adds to the collateral
    (``(C + X) / B = m``)."""
    if v.size > 0:
        need = v.loan - Fraction(v.collateral) / ratio
    else:
        need = ratio * v.loan - v.collateral
    return max(0, math.ceil(need))


def forced_sale_lots(v: Valuation, price: int, mult: int, ratio: Fraction) -> int:
    """Lots to sell (buy back, for a short) at ``price`` so that the ratio is ``ratio``
    afterwards, ``v`` being the account valued at that price: each lot sold at ``P`` lowers
    the loan and the collateral by ``P x mult`` alike, so ``k = (m B - C) / ((m - 1) P mult)``
    rounded up; every lot if the account is under water at that price."""
    lots = abs(v.size)
    if v.collateral <= v.loan:
        return lots
    k = math.ceil((ratio * v.loan - v.collateral) / ((ratio - 1) * price * mult))
    return min(lots, max(1, k))


def limit_prices(prev_close: int, limit_ppb: int, max_price: int) -> tuple[int, int]:
    """The day's lower and upper limit prices, ticks (the venue's own rounding: inside)."""
    return (max(1, -(-prev_close * (PPB - limit_ppb) // PPB)),
            min(max_price, prev_close * (PPB + limit_ppb) // PPB))


@dataclass(slots=True)
class _Call:
    account_id: int
    day: int  # index of the session at whose close it was made
    amount: int  # µ$ the account must deposit (valued at that close)
    top_up: bool  # drawn once: will the ant meet it


class Broker:
    """The margin-loan regime's broker over the retail cohorts (one per run)."""

    def __init__(self, params: MarginLoanParams, seed: int, venue: Venue, symbol: str,
                 cohorts: list[RetailCohort], deposit: Any) -> None:
        self.p = params
        self.venue = venue
        self.symbol = symbol
        self.spec = venue.spec(symbol)
        self.mult = self.spec.multiplier
        self.cohorts = cohorts
        self.deposit = deposit  # (account, µ$): the driver's, so the run records it
        self.rng = random.Random(f"{seed}:broker")
        self.long_ratio = Fraction(repr(params.maintenance_pct)) / 100
        self.short_ratio = Fraction(repr(params.short_maintenance_pct)) / 100
        self.calls: dict[int, _Call] = {}  # the open ones
        self.call_log: list[tuple[int, int, int, bool]] = []  # (day, account, µ$, top-up)
        self.loans_by_close: list[tuple[int, int]] = []  # (day, µ$ lent to longs at its close)
        self.orders: dict[int, tuple[int, int]] = {}  # resting forced order -> (account, lots)
        self.placed: list[tuple[int, int, int, int]] = []  # forced orders: (ts, account,
        # signed lots, limit price)
        self.sales: list[tuple[int, int, int, int]] = []  # their fills: (ts, account, signed
        # lots, price)
        # money in µ$ ("top_up": the deposits the calls brought in)
        self.stats = {"margin_calls": 0, "calls_cured": 0, "top_ups": 0, "top_up": 0,
                      "forced_sales": 0, "forced_orders_resting": 0, "forced_out": 0}

    # -- what the broker sees -------------------------------------------------------------------

    def _ratio(self, size: int) -> Fraction:
        return self.long_ratio if size > 0 else self.short_ratio

    def _account(self, account_id: int) -> tuple[AccountView, int]:
        view = self.venue.account(account_id)
        pos = view.positions.get(self.symbol)
        return view, pos.size if pos is not None else 0

    def _holders(self) -> list[tuple[RetailCohort, int]]:
        return [(c, a.account_id) for c in self.cohorts for a in c.ants if a.session is not None]

    # -- the close and the open -----------------------------------------------------------------

    def at_close(self, day: int) -> None:
        """Value every account at the mark after the session's last actions: make calls,
        cure the calls the price has met, forget the accounts that are flat."""
        mark = self.venue.market(self.symbol).mark
        if mark is None:
            return
        for aid in {a for a, _ in self.orders.values()}:  # the account may have cancelled them
            live = {o["order_id"] for o in self.venue.open_orders(aid)}
            for oid in [o for o, (a, _) in self.orders.items() if a == aid and o not in live]:
                del self.orders[oid]
        lent = 0
        for cohort, aid in self._holders():
            view, size = self._account(aid)
            call = self.calls.get(aid)
            if size > 0:  # the credit balance (신용융자 잔고) counts the money lent to longs
                lent += valuation(size, view.equity, mark, self.mult).loan
            if size == 0:
                if call is not None:
                    del self.calls[aid]
                cohort.set_blocked(aid, False)
                continue
            v = valuation(size, view.equity, mark, self.mult)
            ratio = self._ratio(size)
            if not v.below(ratio):
                if call is not None:
                    del self.calls[aid]
                    self.stats["calls_cured"] += 1
                    cohort.set_blocked(aid, any(a == aid for a, _ in self.orders.values()))
                continue
            if call is None:
                call = self.calls[aid] = _Call(aid, day, top_up_amount(v, ratio),
                                               self.rng.random() < self.p.top_up_share)
                self.call_log.append((day, aid, call.amount, call.top_up))
                self.stats["margin_calls"] += 1
                cohort.set_blocked(aid, True)
        self.loans_by_close.append((day, lent))

    def at_open(self, day: int) -> None:
        """The session's first step, after the oracle: top-ups due now, then forced sales."""
        for aid in sorted(self.calls):
            call = self.calls[aid]
            if call.top_up and day == call.day + 1:
                del self.calls[aid]
                if call.amount > 0:
                    self.deposit(aid, call.amount)
                    self.stats["top_ups"] += 1
                    self.stats["top_up"] += call.amount
                self._cohort(aid).set_blocked(aid, False)
            elif not call.top_up and day >= call.day + self.p.forced_sale_sessions:
                del self.calls[aid]
                self._force(aid)

    def _cohort(self, account_id: int) -> RetailCohort:
        for c in self.cohorts:
            if c.first_id <= account_id < c.first_id + len(c.ants):
                return c
        raise KeyError(account_id)

    def _force(self, aid: int) -> None:
        cohort = self._cohort(aid)
        session = cohort.session_of(aid)
        session.send(cancel_all(self.symbol))
        cohort.on_orders_cancelled(aid)
        view, size = self._account(aid)
        m = self.venue.market(self.symbol)
        if size == 0 or m.mark is None or m.previous_close is None:
            cohort.set_blocked(aid, False)
            return
        lo, hi = limit_prices(m.previous_close, self.p_limit_ppb(), self.spec.max_price)
        price = lo if size > 0 else hi
        # the account as it would stand at the limit price
        v = valuation(size, view.equity + size * (price - m.mark) * self.mult, price, self.mult)
        lots = min(forced_sale_lots(v, price, self.mult, self._ratio(size)),
                   self.spec.max_order_qty)
        side = SELL if size > 0 else BUY
        reply = session.send(place(self.symbol, side, lots, price, reduce_only=True))
        if not reply.ok:
            raise RuntimeError(f"forced sale of account {aid} refused: {reply.code} {reply.msg}")
        self.stats["forced_sales"] += 1
        ts = self.venue.time
        self.placed.append((ts, aid, side * lots, price))
        for f in reply.fills("taker"):
            self.sales.append((ts, aid, side * f["qty"], f["price"]))
        result = reply.result
        if result["status"] in ("NEW", "PARTIALLY_FILLED") and result["remainingQty"] > 0:
            self.orders[result["orderId"]] = (aid, result["remainingQty"])
            self.stats["forced_orders_resting"] += 1
        self._after_fill(cohort, aid)

    def p_limit_ppb(self) -> int:
        limit = self.spec.daily_limit_ppb
        assert limit is not None, "the margin-loan market has a daily limit"
        return limit

    # -- fills of the resting forced orders -----------------------------------------------------

    def owns(self, order_id: int) -> bool:
        return order_id in self.orders

    def on_fill(self, account_id: int, fill: dict[str, Any]) -> None:
        """A ``fills`` push (maker) of a resting forced order."""
        aid, left = self.orders[fill["orderId"]]
        side = BUY if fill["side"] == "BUY" else SELL
        self.sales.append((self.venue.time, aid, side * fill["qty"], fill["price"]))
        left -= fill["qty"]
        if left > 0:
            self.orders[fill["orderId"]] = (aid, left)
        else:
            del self.orders[fill["orderId"]]
        self._after_fill(self._cohort(aid), aid)

    def _after_fill(self, cohort: RetailCohort, aid: int) -> None:
        _, size = self._account(aid)
        if size == 0:
            self.stats["forced_out"] += 1
            cohort.on_forced_out(aid)
            for oid in [o for o, (a, _) in self.orders.items() if a == aid]:
                del self.orders[oid]  # a reduce-only order of a flat account is gone
        if not any(a == aid for a, _ in self.orders.values()):
            cohort.set_blocked(aid, False)

    # -- the run's facts -------------------------------------------------------------------------

    def facts(self) -> dict[str, Any]:
        """run_facts.broker: the counts, the forced orders and their fills (ts, account,
        signed lots, price), and the loans still open at the end (µ$, at the last mark)."""
        mark = self.venue.market(self.symbol).mark or 0
        loans = 0
        for _, aid in self._holders():
            view, size = self._account(aid)
            if size:
                loans += valuation(size, view.equity, mark, self.mult).loan
        return {**self.stats, "open_calls_at_end": len(self.calls), "loans_at_end": loans,
                "calls": [list(c) for c in self.call_log],
                "loans_by_close": [list(x) for x in self.loans_by_close],
                "orders": [list(o) for o in self.placed], "sales": [list(s) for s in self.sales]}
