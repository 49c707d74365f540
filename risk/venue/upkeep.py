"""Upkeep of the accounts a command touched: their liquidation keys follow their money and
positions, reduce-only orders shrink with the position they reduce, and a flat account left
below zero (or a flat isolated slot's margin) is settled, the fund covering the deficit.
"""

from __future__ import annotations

from gaemi.risk.events import BadDebt, OrderAmended
from gaemi.risk.venue.arith import BUY
from gaemi.risk.venue.index import rebase, rekey
from gaemi.risk.venue.orders import cancel_resting
from gaemi.risk.venue.settlement import cover
from gaemi.risk.venue.state import Account, Market, State

__all__ = ["flush_touched"]


def flush_touched(st: State) -> None:
    """Re-key, trim reduce-only orders and settle deficits of the accounts whose money or
    positions changed; re-key the multi-market accounts whose other marks moved."""
    markets = st.markets
    for aid in sorted(st.stale_keys):
        acct = st.accounts[aid]
        rebase(st, acct)
        for symbol, slot in acct.slots.items():
            rekey(st, acct, markets[symbol], slot)
    st.stale_keys.clear()
    while st.touched:
        batch = sorted(st.touched)  # a deterministic order, whatever the set's
        st.touched.clear()
        for aid in batch:
            acct = st.account_or_fund(aid)
            if acct.version == acct.keyed:
                continue
            acct.keyed = acct.version
            if aid > 0:
                _trim_reduce_only(st, acct)
                _settle_deficits(st, acct)
            else:
                _settle_fund_deficit(st, st.funds[aid])
            rebase(st, acct)
            for symbol, slot in acct.slots.items():
                rekey(st, acct, markets[symbol], slot)


def _trim_reduce_only(st: State, acct: Account) -> None:
    for symbol, slot in acct.slots.items():
        ro = [o for o in slot.orders.values() if o.reduce_only]
        if not ro:
            continue
        m = st.markets[symbol]
        room = abs(slot.size)
        for order in ro:  # oldest first keeps its size
            wrong_way = slot.size == 0 or (slot.size > 0) == (order.side == BUY)
            if wrong_way or room <= 0:
                cancel_resting(st, acct, m, order, "reduce_only")
            elif order.qty > room:
                m.book.amend(order.order_id, qty=room)
                order.qty = room
                st.events.append(OrderAmended(acct.account_id, symbol, order.order_id,
                                              order.price, room, "reduce_only"))
                room = 0
            else:
                room -= order.qty


def _settle_deficits(st: State, acct: Account) -> None:
    """A flat isolated slot or a flat cross account below zero: the fund pays."""
    for slot in acct.slots.values():
        if slot.isolated and not slot.size and slot.margin:
            acct.wallet += slot.margin
            slot.margin = 0
    cross_open = any(s.size and not s.isolated for s in acct.slots.values())
    if acct.wallet < 0 and not cross_open:
        deficit = -acct.wallet
        acct.wallet = 0
        cover(st, acct, st.markets[acct.last_symbol or min(st.markets)], deficit)


def _settle_fund_deficit(st: State, m: Market) -> None:
    fund = m.fund
    slot = fund.slots.get(m.symbol)
    if fund.wallet < 0 and (slot is None or not slot.size):
        st.bad_debt += -fund.wallet
        st.events.append(BadDebt(fund.account_id, m.symbol, -fund.wallet, 0, -fund.wallet))
        fund.wallet = 0
        fund.version += 1
