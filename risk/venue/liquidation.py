"""Liquidation, the insurance fund and auto-deleveraging (docs/architecture.md,
"Liquidation"; perp-mechanics §4, §9.4-9.5).

A liquidatable account has its open and conditional orders cancelled, then its position closed
in slices (all of it below ``partial_liquidation_notional``, else ``partial_liquidation_ppb`` of
it per slice) until it is healthy or flat. Each slice is an IOC limited at the slice's
bankruptcy price, which allocates the account's equity to the slice in proportion to its share
of the maintenance margin (the dYdX rule, exact for one position). What the book does not fill
the market's insurance fund takes over at the bankruptcy price, if it stays above its own
maintenance margin; otherwise the opposite positions ranked by PnL% x effective leverage are
deleveraged (BitMEX). The liquidation fee is what the fills earned above the bankruptcy price,
capped at ``liquidation_fee_ppb`` of the notional, and goes to the fund.

With ``liquidation_venue = "backstop"`` (a counterfactual, not a venue rule) the fund takes
every slice off the book at the mark, or at the bankruptcy price if the mark is past it, with
the same fee rule, and is never deleveraged itself: the forced flow never trades on the book
(the account's orders are still cancelled first), and it is the cause of nothing.
"""

from __future__ import annotations

from fractions import Fraction

from gaemi.engine.codes import TimeInForce
from gaemi.engine.errors import InvariantViolation
from gaemi.risk.events import Adl, Cause, InsuranceTakeover, Liquidation, OrderAccepted
from gaemi.risk.markets import PPB
from gaemi.risk.venue.arith import BUY, SELL, ceil_div, fee
from gaemi.risk.venue.margin import (
    bankruptcy_price,
    cross,
    cross_liquidatable,
    limit_band,
    liquidatable,
    upnl,
)
from gaemi.risk.venue.orders import cancel_orders_of, execute
from gaemi.risk.venue.settlement import charge, trade
from gaemi.risk.venue.state import Account, Market, State, Ticket
from gaemi.risk.venue.upkeep import flush_touched

__all__ = ["deleverage_fund", "liquidate"]


def liquidate(st: State, acct: Account, m: Market, cause: Cause) -> None:
    """Cancel the account's orders (in this market for an isolated position) and close
    slices, this market first, until the account is healthy."""
    generation = cause.generation + 1
    slot = acct.slots[m.symbol]
    if slot.isolated:
        cancel_orders_of(st, acct, m.symbol, "liquidation")
        symbols = [m.symbol]
    else:
        cancel_orders_of(st, acct, None, "liquidation")
        symbols = [m.symbol] + sorted(s for s, sl in acct.slots.items()
                                      if sl.size and not sl.isolated and s != m.symbol)
    for symbol in symbols:
        market = st.markets[symbol]
        if market.status != "open" or not market.mark:
            continue
        while acct.slots[symbol].size and liquidatable(st, acct, market):
            _liquidate_slice(st, acct, market, cause, generation)
        if slot.isolated or not cross_liquidatable(st, acct):
            break
    st.touched.add(acct.account_id)


def _liquidate_slice(st: State, acct: Account, m: Market, cause: Cause,
                     generation: int) -> None:
    spec = m.spec
    slot = acct.slots[m.symbol]
    size = abs(slot.size)
    close_side = SELL if slot.size > 0 else BUY
    mark = m.mark
    if size * mark * m.mult > spec.partial_liquidation_notional:
        qty = min(size, max(1, ceil_div(size * spec.partial_liquidation_ppb, PPB)))
    else:
        qty = size
    bankruptcy = bankruptcy_price(st, acct, m, slot, qty)
    liq_id = st.new_liquidation_id()
    if spec.liquidation_venue == "backstop":
        _backstop_slice(st, acct, m, close_side, qty, bankruptcy, liq_id, cause, generation)
        return
    lo, hi = limit_band(m)
    order_id = st.new_order_id()
    ticket = Ticket(acct, m, close_side, None, qty, TimeInForce.IOC, command=None,
                    reduce_only=True, order_id=order_id,
                    parent=Cause("fill", st.cur_seq, None, liq_id, generation),
                    liquidation_id=liq_id, bankruptcy=bankruptcy)
    ticket.limit = min(max(bankruptcy, lo), hi)
    st.events.append(OrderAccepted(acct.account_id, m.symbol, order_id, None,
                                   int(close_side), None, qty, int(TimeInForce.IOC), False,
                                   True, ticket.limit, liq_id))
    fee_before = m.fund.wallet
    filled, value = execute(st, ticket)
    fee = m.fund.wallet - fee_before
    rest = qty - filled
    insurance_qty = adl_qty = 0
    if rest:
        if _fund_can_take(m, close_side, rest, bankruptcy):
            trade(st, acct, m, close_side, rest, bankruptcy)
            trade(st, m.fund, m, -close_side, rest, bankruptcy)
            insurance_qty = rest
            st.events.append(InsuranceTakeover(liq_id, m.symbol, acct.account_id, rest,
                                               bankruptcy))
        else:
            _auto_deleverage(st, acct, m, close_side, rest, bankruptcy, liq_id)
            adl_qty = rest
    value += (insurance_qty + adl_qty) * bankruptcy
    avg = value // qty if close_side == SELL else ceil_div(value, qty)
    st.events.append(Liquidation(liq_id, acct.account_id, m.symbol, int(close_side), qty, avg,
                                 mark, bankruptcy, filled, insurance_qty, adl_qty, fee,
                                 generation, cause))
    m.last_liq = (st.time, liq_id, generation)
    m.cause = Cause("fill" if filled else "liquidation", st.cur_seq,
                    m.cause.trade_id if filled else None, liq_id, generation)
    flush_touched(st)


def _backstop_slice(st: State, acct: Account, m: Market, close_side: int, qty: int,
                    bankruptcy: int, liq_id: int, cause: Cause, generation: int) -> None:
    """The counterfactual: the fund takes the slice at the mark (bounded by the bankruptcy
    price), off the book; the fee is what that price earned above bankruptcy, capped."""
    price = max(m.mark, bankruptcy) if close_side == SELL else min(m.mark, bankruptcy)
    surplus = -close_side * (price - bankruptcy) * qty * m.mult
    paid = max(0, min(fee(price * qty * m.mult, m.spec.liquidation_fee_ppb), surplus))
    trade(st, acct, m, close_side, qty, price)
    trade(st, m.fund, m, -close_side, qty, price)
    charge(st, acct, m, paid, to_fund=True)
    st.events.append(InsuranceTakeover(liq_id, m.symbol, acct.account_id, qty, price))
    st.events.append(Liquidation(liq_id, acct.account_id, m.symbol, int(close_side), qty, price,
                                 m.mark, bankruptcy, 0, qty, 0, paid, generation, cause))
    flush_touched(st)


def _fund_can_take(m: Market, close_side: int, qty: int, price: int) -> bool:
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


def _auto_deleverage(st: State, acct: Account, m: Market, close_side: int, qty: int,
                     price: int, liq_id: int) -> None:
    """Close ``qty`` of the bankrupt position against the opposite positions, best ranked
    first, at ``price`` (BitMEX ranking: PnL% x leverage if in profit, else PnL% / lev)."""
    ranked = []
    for aid, slot in m.holders.items():
        if aid == acct.account_id or (slot.size > 0) != (close_side > 0):
            continue
        holder = st.account_or_fund(aid)
        pnl_now = upnl(m, slot)
        pnl = Fraction(pnl_now, abs(slot.cost) * m.mult)
        if slot.isolated or aid < 0:
            equity = (holder.wallet if aid < 0 else slot.margin) + pnl_now
        else:
            equity = cross(st, holder)[0]
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
        holder = st.account_or_fund(aid)
        take = min(left, abs(m.holders[aid].size))
        trade(st, holder, m, -close_side, take, price)
        trade(st, acct, m, close_side, take, price)
        left -= take
        st.events.append(Adl(liq_id, m.symbol, aid, acct.account_id, take, price, position))
    if left:
        raise InvariantViolation("opposite positions do not cover a bankrupt position")


def deleverage_fund(st: State, m: Market, cause: Cause) -> None:
    """The insurance fund cannot carry its inventory: deleverage it at the mark."""
    fund = m.fund
    slot = fund.slots[m.symbol]
    close_side = SELL if slot.size > 0 else BUY
    qty = abs(slot.size)
    liq_id = st.new_liquidation_id()
    generation = cause.generation + 1
    _auto_deleverage(st, fund, m, close_side, qty, m.mark, liq_id)
    st.events.append(Liquidation(liq_id, fund.account_id, m.symbol, int(close_side), qty, m.mark,
                                 m.mark, m.mark, 0, 0, qty, 0, generation, cause))
    m.last_liq = (st.time, liq_id, generation)
    m.cause = Cause("liquidation", st.cur_seq, None, liq_id, generation)
    flush_touched(st)
