"""Margin, as pure reads of the state: unrealized PnL, initial and maintenance margin, what an
account has available and may withdraw, whether it is liquidatable, the price bands an order
must respect, and a slice's bankruptcy price (docs/architecture.md, "Margin")::

    uPnL            = (size x mark - cost) x multiplier
    cross equity    = wallet + sum of the cross positions' uPnL, at their marks
    position IM     = ceil(notional / min(leverage, tier max))
    order IM        = IM of the worst case (all the slot's buys fill, or all its sells), at the
                      mark, + what buying above / selling below the mark would lose
    available       = cross equity - sum of IM (cross: positions and orders; isolated: orders)
    withdrawable    = max(0, min(wallet, cross equity) - sum of IM)
    liquidatable    = cross equity < sum of the cross positions' MM
                    | isolated margin + uPnL < MM of that position

Nothing here changes the state.
"""

from __future__ import annotations

from fractions import Fraction

from gaemi.risk.markets import PPB
from gaemi.risk.venue.arith import BUY, SELL, ceil_div
from gaemi.risk.venue.state import Account, Market, Slot, State

__all__ = ["available", "balance", "bankruptcy_price", "cross", "cross_liquidatable",
           "isolated_free", "limit_band", "liquidatable", "mm", "order_im", "sweep_price",
           "upnl", "withdrawable"]


def upnl(m: Market, slot: Slot) -> int:
    return (slot.size * m.mark - slot.cost) * m.mult if slot.size else 0


def mm(m: Market, slot: Slot) -> int:
    if not slot.size:
        return 0
    return m.spec.maintenance(abs(slot.size) * m.mark * m.mult)


def order_im(m: Market, slot: Slot, include_position: bool, side: int = 0, qty: int = 0,
             price: int = 0) -> int:
    """Initial margin of the slot's worst case: every open buy or every open sell filled, at
    the mark, plus the loss of buying above (selling below) the mark. ``side``, ``qty``,
    ``price``: one more order, as if it rested."""
    mark, mult = m.mark, m.mult
    s = slot.size
    buy_qty, buy_value, sell_qty, sell_value = \
        slot.buy_qty, slot.buy_value, slot.sell_qty, slot.sell_value
    if side == BUY:
        buy_qty += qty
        buy_value += qty * price
    elif side == SELL:
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


def cross(st: State, acct: Account) -> tuple[int, int, int]:
    """(equity, initial margin, maintenance margin) of the cross part of an account.

    Isolated slots add only the initial margin of their open orders (paid from the wallet
    when they fill)."""
    equity, im, maint = acct.wallet, 0, 0
    markets = st.markets
    for symbol, slot in acct.slots.items():
        if not slot.size and not slot.orders:
            continue
        m = markets[symbol]
        if not m.mark:
            continue
        if slot.isolated:
            im += order_im(m, slot, False)
        else:
            equity += upnl(m, slot)
            im += order_im(m, slot, True)
            maint += mm(m, slot)
    return equity, im, maint


def available(st: State, acct: Account) -> int:
    equity, im, _ = cross(st, acct)
    return equity - im


def withdrawable(st: State, acct: Account) -> int:
    """Cash not needed as margin, excluding unrealized profit (the Mango lesson)."""
    equity, im, _ = cross(st, acct)
    return max(0, min(acct.wallet, equity) - im)


def isolated_free(st: State, acct: Account) -> int:
    """For isolated orders: the wallet cash not needed by anything else."""
    equity, im, _ = cross(st, acct)
    return min(acct.wallet, equity) - im


def balance(acct: Account) -> int:
    return acct.wallet + sum(s.margin for s in acct.slots.values())


def liquidatable(st: State, acct: Account, m: Market) -> bool:
    slot = acct.slots.get(m.symbol)
    if slot is None or not slot.size or not m.mark:
        return False
    if slot.isolated or acct.account_id < 0:
        cash = acct.wallet if acct.account_id < 0 else slot.margin
        return cash + upnl(m, slot) < mm(m, slot)
    return cross_liquidatable(st, acct)


def cross_liquidatable(st: State, acct: Account) -> bool:
    equity, _, maint = cross(st, acct)
    return equity < maint


def limit_band(m: Market) -> tuple[int, int]:
    """The daily price limit band (KRX-style), or the whole price range."""
    spec = m.spec
    limit, pc = spec.daily_limit_ppb, m.prev_close
    if limit is None or not pc:
        return 1, spec.max_price
    return (max(1, ceil_div(pc * (PPB - limit), PPB)),
            min(spec.max_price, pc * (PPB + limit) // PPB))


def sweep_price(m: Market, side: int, qty: int, limit: int) -> int:
    """The price of the deepest level a market order of ``qty`` would reach (``limit`` if the
    book within the limit is too thin)."""
    best = m.book.best_ask() if side == BUY else m.book.best_bid()
    if best is None:
        return limit
    levels = m.book.depth(64)[1 if side == BUY else 0]
    left = qty
    for price, size in levels:
        if (price > limit) if side == BUY else (price < limit):
            break
        left -= size
        if left <= 0:
            return int(price)
    return limit


def bankruptcy_price(st: State, acct: Account, m: Market, slot: Slot, qty: int) -> int:
    """The price at which closing ``qty`` lots uses up the equity allotted to them: the
    account's equity times the slice's share of its maintenance margin (dYdX)."""
    if slot.isolated or acct.account_id < 0:
        cash = acct.wallet if acct.account_id < 0 else slot.margin
        equity, total_mm = cash + upnl(m, slot), mm(m, slot)
    else:
        equity, _, total_mm = cross(st, acct)
    slot_mm = mm(m, slot)
    share = Fraction(slot_mm * qty, abs(slot.size) * total_mm) if total_mm else Fraction(1)
    allotted = equity * share
    price = m.mark - (1 if slot.size > 0 else -1) * allotted / (qty * m.mult)
    ticks = -(-price.numerator // price.denominator) if slot.size > 0 else \
        price.numerator // price.denominator
    return min(max(ticks, 1), m.spec.max_price)
