"""Settlement: money and positions move here, and only here. A fill changes both positions and
cost bases, realizes PnL and charges fees; isolated positions move margin to and from the
wallet; a loss beyond an account's collateral is covered by the market's insurance fund, or
counted as bad debt.

Rounding (docs/architecture.md, "Rounding policy"): fees and liquidation fees round up and
maker rebates down; closing part of a position removes ``ceil(cost x closed / size)`` of its
cost basis, so realized PnL rounds down and the last close realizes the rest exactly.
"""

from __future__ import annotations

from gaemi.risk.events import BadDebt
from gaemi.risk.venue.arith import ceil_div, fee
from gaemi.risk.venue.state import Account, Market, Slot, State

__all__ = ["charge", "cover", "credit", "settle_fill", "trade"]


def credit(st: State, acct: Account, slot: Slot | None, amount: int) -> None:
    """Add money to an account: to the isolated margin of ``slot``, else the wallet."""
    if slot is not None and slot.isolated:
        slot.margin += amount
    else:
        acct.wallet += amount
    acct.version += 1
    st.touched.add(acct.account_id)


def settle_fill(st: State, taker: Account, maker: Account, m: Market, taker_side: int,
                price: int, qty: int, liq_id: int | None,
                bankruptcy: int) -> tuple[int, int, int, int]:
    """Both sides of one fill; returns (taker fee, maker fee, taker's realized PnL, maker's
    realized PnL). A liquidation's taker fee is what the fill earned above the bankruptcy
    price, capped at the liquidation fee, and goes to the fund."""
    spec = m.spec
    notional = price * qty * m.mult
    maker_fee = fee(notional, spec.maker_fee_ppb)
    if liq_id is None:
        taker_fee = fee(notional, spec.taker_fee_ppb)
    else:
        surplus = -taker_side * (price - bankruptcy) * qty * m.mult
        taker_fee = max(0, min(fee(notional, spec.liquidation_fee_ppb), surplus))
    # a fill that reduces an isolated position pays its fee from the margin as it stands
    # before the fill, so the closed lots take their share of the fee with their share of
    # the margin (charged after, it would all fall on the lots that remain, and a close could
    # liquidate what it leaves open)
    taker_first = _reduces_isolated(taker, m, taker_side)
    maker_first = _reduces_isolated(maker, m, -taker_side)
    if taker_first:
        charge(st, taker, m, taker_fee, to_fund=liq_id is not None)
    if maker_first:
        charge(st, maker, m, maker_fee, to_fund=False)
    taker_realized = trade(st, taker, m, taker_side, qty, price)
    maker_realized = trade(st, maker, m, -taker_side, qty, price)
    if not taker_first:
        charge(st, taker, m, taker_fee, to_fund=liq_id is not None)
    if not maker_first:
        charge(st, maker, m, maker_fee, to_fund=False)
    return taker_fee, maker_fee, taker_realized, maker_realized


def _reduces_isolated(acct: Account, m: Market, side: int) -> bool:
    slot = acct.slots.get(m.symbol)
    return slot is not None and slot.isolated and slot.size != 0 and (slot.size > 0) != (side > 0)


def charge(st: State, acct: Account, m: Market, amount: int, *, to_fund: bool) -> None:
    if not amount:
        return
    slot = acct.slots.get(m.symbol)
    credit(st, acct, slot, -amount)
    if to_fund:
        m.fund.wallet += amount
        m.fund.version += 1
        st.touched.add(m.fund.account_id)
    else:
        st.fee_pool += amount


def trade(st: State, acct: Account, m: Market, side: int, qty: int, price: int) -> int:
    """Apply a trade of ``qty`` lots on ``side`` at ``price`` to the account's position;
    returns the PnL it realized (collateral units; 0 when it only opens)."""
    slot = st.slot(acct, m.symbol) if acct.account_id > 0 else \
        acct.slots.setdefault(m.symbol, Slot(m.spec.max_leverage))
    mult = m.mult
    s = slot.size
    opened = qty
    realized = 0
    if s and (s > 0) != (side > 0):
        close = min(qty, abs(s))
        removed = ceil_div(slot.cost * close, abs(s))
        realized = ((close * price if s > 0 else -close * price) - removed) * mult
        slot.cost -= removed
        slot.size = s + (close if s < 0 else -close)
        opened = qty - close
        if slot.isolated:
            if slot.size == 0:
                slot.margin += realized
                if slot.margin < 0:  # an isolated loss never reaches the wallet
                    cover(st, acct, m, -slot.margin)
                else:
                    acct.wallet += slot.margin
                slot.margin = 0
            else:
                # the closed lots take their share of the margin and their PnL; only a loss
                # beyond that share stays with the lots that remain
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
            if m.mark:  # and the loss of opening away from the mark
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
        _update_multi(st, acct)
    acct.version += 1
    acct.last_symbol = m.symbol
    st.touched.add(acct.account_id)
    return realized


def _update_multi(st: State, acct: Account) -> None:
    n = sum(1 for s in acct.slots.values() if s.size and not s.isolated)
    if n > 1:
        st.multi.add(acct.account_id)
    else:
        st.multi.discard(acct.account_id)


def cover(st: State, acct: Account, m: Market, deficit: int) -> None:
    """Make good ``deficit`` an account lost beyond its collateral (already written off its
    books): the market's insurance fund pays what it can, the rest is bad debt."""
    covered = min(deficit, max(0, m.fund.wallet))
    m.fund.wallet -= covered
    m.fund.version += 1
    st.touched.add(m.fund.account_id)
    st.bad_debt += deficit - covered
    acct.version += 1
    st.events.append(BadDebt(acct.account_id, m.symbol, deficit, covered, deficit - covered))
