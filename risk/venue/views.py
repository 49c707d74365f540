"""What the venue shows without changing anything: the account and market views, open orders,
the state hash (equal on both book implementations) and the invariants the tests check after
every command."""

from __future__ import annotations

import hashlib
from typing import Any

from gaemi.engine.errors import InvariantViolation
from gaemi.risk.events import AccountView, MarketView, PositionView
from gaemi.risk.venue.arith import BUY, SELL
from gaemi.risk.venue.index import KEY_SLACK, NO_LONG_KEY, liquidation_key
from gaemi.risk.venue.margin import (
    available,
    balance,
    cross,
    liquidatable,
    mm,
    upnl,
    withdrawable,
)
from gaemi.risk.venue.pricing import estimate_rate
from gaemi.risk.venue.state import Account, Slot, State

__all__ = ["account_view", "check_invariants", "market_view", "open_orders", "state_hash"]


def _entry(slot: Slot) -> int:
    if not slot.size:
        return 0
    return (2 * abs(slot.cost) + abs(slot.size)) // (2 * abs(slot.size))


def account_view(st: State, account_id: int) -> AccountView:
    """A read-only view of an account. KeyError if it never deposited."""
    acct = st.accounts[account_id]
    equity, im, maint = cross(st, acct)
    positions = {}
    for symbol, slot in sorted(acct.slots.items()):
        m = st.markets[symbol]
        if slot.isolated:
            im += slot.margin
            if slot.size and m.mark:
                equity += slot.margin + upnl(m, slot)
                maint += mm(m, slot)
            else:
                equity += slot.margin
        if not slot.size:
            continue
        key = m.liq_key.get(account_id)
        positions[symbol] = PositionView(
            symbol, slot.size, _entry(slot), slot.cost, upnl(m, slot) if m.mark else 0,
            "isolated" if slot.isolated else "cross", slot.leverage, slot.margin,
            mm(m, slot) if m.mark else 0,
            None if key is None or key[1] in (NO_LONG_KEY, 0)
            else key[1] + (-KEY_SLACK if key[0] else KEY_SLACK))
    open_count = sum(len(s.orders) for s in acct.slots.values()) + len(acct.conditionals)
    return AccountView(account_id, balance(acct), equity, im, maint, available(st, acct),
                       withdrawable(st, acct), positions, open_count)


def market_view(st: State, symbol: str) -> MarketView:
    m = st.markets[symbol]
    fund_slot = m.fund.slots.get(symbol)
    return MarketView(symbol, m.index or None, m.mark or None, m.last_price, estimate_rate(m),
                      m.last_funding_rate, m.next_funding, m.long_oi, m.fund.wallet,
                      fund_slot.size if fund_slot else 0, m.spec.tick_size, m.spec.lot_size,
                      m.mult, m.status, m.session_open, m.prev_close or None,
                      m.book.best_bid(), m.book.best_ask())


def open_orders(st: State, account_id: int) -> list[dict[str, Any]]:
    acct = st.accounts[account_id]
    out = []
    for symbol in sorted(acct.slots):
        for o in acct.slots[symbol].orders.values():
            out.append(dict(order_id=o.order_id, symbol=symbol, side=o.side, price=o.price,
                            qty=o.qty, reduce_only=o.reduce_only,
                            client_order_id=o.client_order_id))
    for c in sorted(acct.conditionals.values(), key=lambda c: c.order_id):
        out.append(dict(order_id=c.order_id, symbol=c.symbol, side=c.side, price=c.price,
                        qty=c.qty, reduce_only=c.reduce_only, client_order_id=c.client_order_id,
                        trigger_price=c.trigger, trigger_kind=c.trigger_kind))
    return out


def _account_state(acct: Account) -> tuple[Any, ...]:
    return (acct.account_id, acct.wallet, acct.last_symbol, tuple(
        (symbol, s.size, s.cost, s.isolated, s.margin, s.leverage,
         tuple((o.order_id, o.side, o.price, o.qty, o.reduce_only, o.client_order_id)
               for o in s.orders.values()))
        for symbol, s in sorted(acct.slots.items())),
        tuple(sorted((c.order_id, c.symbol, c.side, c.qty, c.trigger, c.trigger_kind, c.price,
                      c.reduce_only, c.client_order_id) for c in acct.conditionals.values())))


def state_hash(st: State) -> str:
    """A 16-hex-digit digest of the whole state; equal on both book implementations. (A price
    not set yet is 0 in the state and None in the digest, as it always was.)"""
    h = hashlib.blake2b(digest_size=8)
    h.update(repr((st.seq, st.time, st.fee_pool, st.bad_debt, st.net_deposits,
                   st.next_order_id, st.next_trade_id, st.next_liq_id)).encode())
    for aid in sorted(st.accounts):
        h.update(repr(_account_state(st.accounts[aid])).encode())
    for symbol, m in sorted(st.markets.items()):
        h.update(repr((symbol, m.index or None, m.mark or None, m.last_price,
                       m.prev_close or None, m.status, m.session_open, m.long_oi,
                       _account_state(m.fund), tuple(m.basis), m.drift_residue, m.limit_day,
                       m.basis_sum, m.ema_basis, m.ema_local, m.prem_sum, m.prem_weight,
                       m.prem_n, m.next_sample, m.next_premium, m.next_funding,
                       m.last_funding_rate, tuple(m.cond_below), tuple(m.cond_above),
                       m.book.state_hash())).encode())
    return h.hexdigest()


def check_invariants(st: State) -> None:
    """Raise InvariantViolation unless every bookkeeping and money invariant holds."""
    money = st.fee_pool - st.bad_debt
    for acct in list(st.accounts.values()) + [m.fund for m in st.markets.values()]:
        money += acct.wallet
        for symbol, slot in acct.slots.items():
            money += slot.margin - slot.cost * st.markets[symbol].mult
            if not slot.size and (slot.cost or slot.margin):
                raise InvariantViolation(f"flat slot {acct.account_id}/{symbol} keeps "
                                         f"cost {slot.cost} or margin {slot.margin}")
        if acct.account_id > 0 and acct.wallet < 0 and not any(
                s.size and not s.isolated for s in acct.slots.values()):
            raise InvariantViolation(f"flat account {acct.account_id} below zero")
    if money != st.net_deposits:
        raise InvariantViolation(f"money: {money} held, {st.net_deposits} deposited")
    if st.funding_net != 0:
        raise InvariantViolation(f"funding payments sum to {st.funding_net}")
    for symbol, m in st.markets.items():
        m.book.check_invariants()
        sizes = {aid: s for aid, s in (
            [(a.account_id, a.slots.get(symbol)) for a in st.accounts.values()]
            + [(m.fund.account_id, m.fund.slots.get(symbol))]) if s is not None and s.size}
        if sum(s.size for s in sizes.values()) != 0:
            raise InvariantViolation(f"{symbol}: long lots != short lots")
        if m.long_oi != sum(s.size for s in sizes.values() if s.size > 0):
            raise InvariantViolation(f"{symbol}: open interest is off")
        if sizes.keys() != m.holders.keys():
            raise InvariantViolation(f"{symbol}: holders index is off")
        if m.mark:
            for aid in sizes:
                acct = st.account_or_fund(aid)
                expected = (sizes[aid].size > 0, liquidation_key(st, acct, m, sizes[aid]))
                if m.liq_key.get(aid) != expected:
                    raise InvariantViolation(f"{symbol}: liquidation key of {aid} is stale")
                unlimited = aid < 0 and m.spec.liquidation_venue == "backstop"
                if m.status == "open" and not unlimited and liquidatable(st, acct, m) and all(
                        st.markets[s].status == "open" for s, sl in acct.slots.items()
                        if sl.size):
                    raise InvariantViolation(f"{symbol}: {aid} left liquidatable")
        for aid, (lo, hi) in m.band_of.items():
            if m.mark and not lo <= m.mark <= hi:
                raise InvariantViolation(f"{symbol}: {aid} keyed for a band the mark left")
        if len(m.liq_long) + len(m.liq_short) != len(m.liq_key):
            raise InvariantViolation(f"{symbol}: liquidation lists and keys disagree")
        resting = {}
        for side in m.book.snapshot():
            for view in side:
                resting[view.order_id] = view
        mine = {oid: o for oid, o in st.orders.items() if o.symbol == symbol}
        if resting.keys() != mine.keys():
            raise InvariantViolation(f"{symbol}: venue and book disagree on resting orders")
        for oid, view in resting.items():
            o = mine[oid]
            if (view.qty, view.price, int(view.side), view.account) != \
                    (o.qty, o.price, int(o.side), o.account_id):
                raise InvariantViolation(f"{symbol}: order {oid} differs from the book")
    for acct in st.accounts.values():
        for symbol, slot in acct.slots.items():
            buys = [o for o in slot.orders.values() if o.side == BUY and not o.reduce_only]
            sells = [o for o in slot.orders.values() if o.side == SELL and not o.reduce_only]
            if (slot.buy_qty, slot.buy_value, slot.sell_qty, slot.sell_value) != (
                    sum(o.qty for o in buys), sum(o.qty * o.price for o in buys),
                    sum(o.qty for o in sells), sum(o.qty * o.price for o in sells)):
                raise InvariantViolation(f"order totals of {acct.account_id}/{symbol}")
