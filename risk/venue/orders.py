"""Orders: the structural checks and pre-trade risk of an order (a ``Ticket``), sending it to
the market's book and settling what the book did, the venue's record of resting orders, the
cancels, and the conditional orders the mark releases.

An order's way (docs/design.md §5): ``validate_order`` (1xxx, 4xxx) -> ``risk_check`` and
``check_post_only`` (2xxx, 3003) -> ``accept`` (an order id and ``OrderAccepted``) ->
``send`` (the book matches) -> ``settle`` (fills, expiry, self-trade cancels; what is left
rests). The venue's pipeline calls the stages one by one for a trader's order; a triggered
conditional and a liquidation slice, placed while the venue stabilises, take the same path
through ``place_checked`` and ``execute``.
"""

from __future__ import annotations

from typing import Any

from gaemi.engine.codes import EventKind, TimeInForce
from gaemi.engine.codes import RejectReason as R
from gaemi.engine.errors import InvariantViolation
from gaemi.risk import commands as C
from gaemi.risk.events import (
    Cause,
    Fill,
    OrderAccepted,
    OrderCanceled,
    OrderTriggered,
)
from gaemi.risk.markets import PPB
from gaemi.risk.venue.arith import (
    BUY,
    CLIENT_ID_MAX,
    DEFAULT_LEVERAGE,
    SELL,
    SIDE_TYPES,
    STP,
    TIF_TYPES,
)
from gaemi.risk.venue.margin import (
    available,
    isolated_free,
    limit_band,
    order_im,
    sweep_price,
)
from gaemi.risk.venue.settlement import settle_fill
from gaemi.risk.venue.state import (
    Account,
    Conditional,
    Market,
    Order,
    Slot,
    State,
    Ticket,
    add_order_value,
)

__all__ = ["accept", "add_conditional", "cancel_conditional", "cancel_orders_of",
           "cancel_resting", "check_post_only", "execute", "fire_triggers", "forget_order",
           "place_checked", "reject", "remember_order", "risk_check", "send", "settle",
           "validate_order"]

_CANCEL_REASON = {R.SELF_TRADE_PREVENTED: "self_trade", R.FOK_NOT_FILLABLE: "fok"}


def reject(st: State, t: Ticket, reason: R) -> None:
    """The ticket's rejection, naming its account, market, order and client order id."""
    st.reject(t.command, reason, account_id=t.account.account_id, symbol=t.market.symbol,
              order_id=t.order_id, client_order_id=t.client_order_id)


def validate_order(t: Ticket) -> R:
    """Structural checks (1xxx, 4xxx) of an order; NONE when it may go on to risk.

    Numbers must be plain ints (or the codes' IntEnums): never bools, floats or text."""
    spec = t.market.spec
    side, price, qty, tif, post_only, cid = \
        t.side, t.price, t.qty, t.tif, t.post_only, t.client_order_id
    if side.__class__ not in SIDE_TYPES or (side != 1 and side != -1):
        return R.INVALID_SIDE
    if price is not None and (price.__class__ is not int or not 0 < price <= spec.max_price):
        return R.INVALID_PRICE
    if qty.__class__ is not int or qty <= 0:
        return R.INVALID_QTY
    if tif.__class__ not in TIF_TYPES or not 1 <= tif <= 3:
        return R.INVALID_TIME_IN_FORCE
    if post_only.__class__ is not bool:
        return R.INVALID_POST_ONLY
    if t.reduce_only.__class__ is not bool:
        return R.INVALID_REDUCE_ONLY
    if post_only and (price is None or tif != TimeInForce.GTC):
        return R.INVALID_POST_ONLY
    if cid is not None:
        if not isinstance(cid, str) or not 0 < len(cid) <= CLIENT_ID_MAX \
                or not cid.isascii() or not cid.isprintable():
            return R.INVALID_CLIENT_ORDER_ID
        if cid in t.account.client_ids:
            return R.DUPLICATE_CLIENT_ORDER_ID
    if qty > spec.max_order_qty:
        return R.ORDER_TOO_LARGE
    slot = t.account.slots.get(t.market.symbol)
    if slot is not None and len(slot.orders) >= spec.max_open_orders:
        return R.TOO_MANY_OPEN_ORDERS
    return R.NONE


def risk_check(st: State, t: Ticket, replaces: Order | None = None) -> R:
    """Pre-trade risk (2xxx) of a validated ticket. Sets ``t.limit`` (the price the book will
    see) and cuts a reduce-only ``t.qty`` to what is left to reduce.

    ``replaces``: a resting order the new terms replace (an amend), left out of the account's
    totals while checking."""
    m, acct, side, price = t.market, t.account, t.side, t.price
    spec = m.spec
    if m.status != "open":
        return R.MARKET_HALTED
    if not m.mark:
        return R.NO_MARK_PRICE
    mark = m.mark
    lo, hi = limit_band(m)
    if price is None:  # market-order protection: a limit at mark +/- the protection band
        off = mark * spec.market_protection_ppb // PPB
        limit = mark + off if side == BUY else max(1, mark - off)
        t.limit = min(max(limit, lo), hi)
    else:
        t.limit = price
        band = mark * spec.price_band_ppb // PPB
        if (side == BUY and price > mark + band) or (side == SELL and price < mark - band):
            return R.PRICE_OUTSIDE_BAND
        if not lo <= price <= hi:
            return R.PRICE_LIMIT
    # a slot is created only when an order is accepted: a rejection changes nothing
    slot = acct.slots.get(m.symbol) or Slot(min(DEFAULT_LEVERAGE, spec.max_leverage))
    s = slot.size
    if t.reduce_only:
        if s == 0 or (s > 0) == (side == BUY):
            return R.REDUCE_ONLY_WOULD_INCREASE
        resting = sum(o.qty for o in slot.orders.values() if o.reduce_only
                      and o is not replaces)
        t.qty = min(t.qty, abs(s) - resting)
        return R.REDUCE_ONLY_WOULD_INCREASE if t.qty <= 0 else R.NONE
    qty = t.qty
    if replaces is not None and not replaces.reduce_only:  # an amend: rare
        add_order_value(slot, replaces.side, replaces.qty, replaces.price, -1)
    try:
        after = max(abs(s + slot.buy_qty + (qty if side == BUY else 0)),
                    abs(s - slot.sell_qty - (qty if side == SELL else 0)))
        growth = after - max(abs(s + slot.buy_qty), abs(s - slot.sell_qty), abs(s))
        if growth > 0 and m.long_oi + growth > spec.open_interest_cap:
            return R.OPEN_INTEREST_CAP
        # only this slot's order margin changes: an order that adds none always passes
        with_position = not slot.isolated
        # a market order is valued at the deepest level it would reach, not at its
        # protection limit (which it only reaches if the book is that thin)
        worst = t.limit if price is not None else sweep_price(m, side, qty, t.limit)
        im_before = order_im(m, slot, with_position)
        im_after = order_im(m, slot, with_position, side, qty, worst)
        if im_after > im_before:
            free = isolated_free(st, acct) if slot.isolated else available(st, acct)
            if free < im_after - im_before:
                return R.INSUFFICIENT_MARGIN
        return R.NONE
    finally:
        if replaces is not None and not replaces.reduce_only:
            add_order_value(slot, replaces.side, replaces.qty, replaces.price, 1)


def check_post_only(t: Ticket) -> R:
    """A post-only order that would take is refused before it reaches the book."""
    if not t.post_only:
        return R.NONE
    book = t.market.book
    touch = book.best_ask() if t.side == BUY else book.best_bid()
    if touch is not None and (t.limit >= touch if t.side == BUY else t.limit <= touch):
        return R.POST_ONLY_WOULD_CROSS
    return R.NONE


def accept(st: State, t: Ticket) -> None:
    """Give a checked ticket its order id (a triggered one keeps its own) and announce it."""
    if t.order_id is None:
        t.order_id = st.new_order_id()
    t.side, t.tif = int(t.side), int(t.tif)  # plain ints in the state, as the journal has them
    if t.price is None and t.tif == TimeInForce.GTC:
        t.tif = int(TimeInForce.IOC)  # a market order never rests
    st.events.append(OrderAccepted(t.account.account_id, t.market.symbol, t.order_id,
                                   t.client_order_id, t.side, t.price, t.qty, t.tif,
                                   t.post_only, t.reduce_only, t.limit))


def send(t: Ticket) -> list[Any]:
    """The book's events for the ticket (self-trade prevention: the account's own resting
    order leaves)."""
    return t.market.book.place(t.order_id, t.side, t.limit, t.qty, tif=t.tif,  # type: ignore[no-any-return]
                               post_only=t.post_only, account=t.account.account_id, stp=STP)


def settle(st: State, t: Ticket, book_events: list[Any]) -> tuple[int, int]:
    """Settle what the book did with the ticket; what it left open rests. Returns (lots
    filled, value filled in ticks x lots)."""
    filled, value, rests = consume(st, t, book_events)
    if rests and filled < t.qty:
        assert t.order_id is not None
        remember_order(st, t.account, Order(t.order_id, t.account.account_id, t.market.symbol,
                                            t.side, t.limit, t.qty - filled, t.reduce_only,
                                            t.client_order_id, t.post_only))
    return filled, value


def execute(st: State, t: Ticket) -> tuple[int, int]:
    """``send`` then ``settle``."""
    return settle(st, t, send(t))


def place_checked(st: State, t: Ticket) -> bool:
    """Risk-check and execute a validated ticket (a triggered conditional's). False: it was
    rejected (the ``Rejected`` event is out)."""
    reason = risk_check(st, t) or check_post_only(t)
    if reason:
        reject(st, t, reason)
        return False
    accept(st, t)
    execute(st, t)
    return True


def consume(st: State, t: Ticket, book_events: list[Any]) -> tuple[int, int, bool]:
    """Settle what the book did with a taker order: fills, expiry, self-trade cancels.
    Returns (lots filled, value filled in ticks x lots, whether the rest rests)."""
    acct, m, order_id, side = t.account, t.market, t.order_id, t.side
    assert order_id is not None  # sent orders have theirs
    liq_id, bankruptcy = t.liquidation_id, t.bankruptcy
    events = st.events
    filled = value = 0
    rests = False
    last_trade = None
    for e in book_events:
        kind = e.kind
        if kind == EventKind.FILL:
            maker = st.orders[e.maker_id]
            maker_acct = st.accounts[maker.account_id]
            taker_fee, maker_fee, taker_pnl, maker_pnl = settle_fill(
                st, acct, maker_acct, m, side, e.price, e.qty, liq_id, bankruptcy)
            order_filled(st, maker_acct, maker, e.qty)
            filled += e.qty
            value += e.qty * e.price
            last_trade = st.new_trade_id()
            events.append(Fill(m.symbol, last_trade, e.price, e.qty, int(side),
                               acct.account_id, order_id, maker.account_id, maker.order_id,
                               e.maker_remaining, taker_fee, maker_fee, liq_id, taker_pnl,
                               maker_pnl))
            m.last_price = e.price
        elif kind == EventKind.ACCEPTED or kind == EventKind.AMENDED and e.order_id == order_id:
            rests = True  # a GTC limit rests what it does not fill, unless it expires
        elif kind == EventKind.EXPIRED:
            rests = False
            events.append(OrderCanceled(acct.account_id, m.symbol, order_id, e.qty,
                                        _CANCEL_REASON.get(e.reason, "expired")))
        elif kind == EventKind.CANCELED:  # self-trade prevention removed our resting order
            own = st.orders[e.order_id]
            forget_order(st, acct, own)
            events.append(OrderCanceled(acct.account_id, m.symbol, own.order_id, e.qty,
                                        "self_trade"))
        else:  # pragma: no cover - the venue's STP mode never decrements
            raise InvariantViolation(f"unexpected book event {e!r}")
    if last_trade is not None:
        st.dirty.add(m.symbol)
        parent = t.parent
        m.cause = Cause("fill", st.cur_seq, last_trade) if parent is None else \
            Cause("fill", st.cur_seq, last_trade, parent.liquidation_id, parent.generation)
    return filled, value, rests


# -- the venue's record of resting orders ---------------------------------------------------

def remember_order(st: State, acct: Account, order: Order) -> None:
    slot = st.slot(acct, order.symbol)
    slot.orders[order.order_id] = order
    st.orders[order.order_id] = order
    if order.client_order_id is not None:
        acct.client_ids[order.client_order_id] = order.order_id
    if not order.reduce_only:
        add_order_value(slot, order.side, order.qty, order.price, 1)
    if st.markets[order.symbol].book_mark:  # the mark reads the live quotes
        st.dirty.add(order.symbol)


def forget_order(st: State, acct: Account, order: Order) -> None:
    slot = acct.slots[order.symbol]
    del slot.orders[order.order_id]
    del st.orders[order.order_id]
    if order.client_order_id is not None:
        acct.client_ids.pop(order.client_order_id, None)
    if not order.reduce_only:
        add_order_value(slot, order.side, order.qty, order.price, -1)
    if st.markets[order.symbol].book_mark:
        st.dirty.add(order.symbol)


def order_filled(st: State, acct: Account, order: Order, qty: int) -> None:
    slot = acct.slots[order.symbol]
    if not order.reduce_only:
        add_order_value(slot, order.side, qty, order.price, -1)
    order.qty -= qty
    if order.qty == 0:
        del slot.orders[order.order_id]
        del st.orders[order.order_id]
        if order.client_order_id is not None:
            acct.client_ids.pop(order.client_order_id, None)


# -- cancels ----------------------------------------------------------------------------------

def cancel_resting(st: State, acct: Account, m: Market, order: Order, reason: str) -> None:
    result = m.book.cancel(order.order_id)
    if len(result) != 1 or result[0].kind != EventKind.CANCELED:
        raise InvariantViolation(f"book lost order {order.order_id}")
    forget_order(st, acct, order)
    st.events.append(OrderCanceled(acct.account_id, m.symbol, order.order_id, order.qty,
                                   reason))


def cancel_conditional(st: State, acct: Account, m: Market, cond: Conditional,
                       reason: str) -> None:
    (m.cond_below if cond.fires_below else m.cond_above).remove((cond.trigger, cond.order_id))
    del st.conditionals[cond.order_id]
    del acct.conditionals[cond.order_id]
    if cond.client_order_id is not None:
        acct.client_ids.pop(cond.client_order_id, None)
    st.events.append(OrderCanceled(acct.account_id, m.symbol, cond.order_id, cond.qty, reason))


def cancel_orders_of(st: State, acct: Account, symbol: str | None, reason: str) -> None:
    """Every resting and conditional order of the account, in one market or all."""
    for sym in sorted(acct.slots) if symbol is None else [symbol]:
        slot = acct.slots.get(sym)
        m = st.markets[sym]
        if slot is not None:
            for order in list(slot.orders.values()):
                cancel_resting(st, acct, m, order, reason)
    for cond in sorted(acct.conditionals.values(), key=lambda c: c.order_id):
        if symbol is None or cond.symbol == symbol:
            cancel_conditional(st, acct, st.markets[cond.symbol], cond, reason)


# -- conditional orders -------------------------------------------------------------------------

def add_conditional(st: State, acct: Account, m: Market, cmd: C.PlaceConditional) -> Conditional:
    order_id = st.new_order_id()
    cond = Conditional(order_id, cmd)
    st.conditionals[order_id] = cond
    acct.conditionals[order_id] = cond
    if cond.client_order_id is not None:
        acct.client_ids[cond.client_order_id] = order_id
    (m.cond_below if cond.fires_below else m.cond_above).add((cond.trigger, order_id))
    return cond


def fire_triggers(st: State, m: Market) -> None:
    """Release the conditional orders the mark has crossed, in trigger order; each goes
    through its risk checks as it enters the book."""
    mark = m.mark
    while True:
        fired = None
        if m.cond_below and m.cond_below[-1][0] >= mark:
            fired = st.conditionals[m.cond_below[-1][1]]
        elif m.cond_above and m.cond_above[0][0] <= mark:
            fired = st.conditionals[m.cond_above[0][1]]
        if fired is None:
            return
        acct = st.accounts[fired.account_id]
        (m.cond_below if fired.fires_below else m.cond_above).remove(
            (fired.trigger, fired.order_id))
        del st.conditionals[fired.order_id]
        del acct.conditionals[fired.order_id]
        if fired.client_order_id is not None:
            acct.client_ids.pop(fired.client_order_id, None)
        st.events.append(OrderTriggered(acct.account_id, m.symbol, fired.order_id,
                                        fired.trigger, mark))
        parent = Cause("fill", st.cur_seq, None, m.cause.liquidation_id, m.cause.generation)
        command = C.PlaceOrder(acct.account_id, m.symbol, fired.side, fired.price, fired.qty)
        ticket = Ticket(acct, m, fired.side, fired.price, fired.qty,
                        TimeInForce.GTC if fired.price else TimeInForce.IOC, command=command,
                        reduce_only=fired.reduce_only, client_order_id=fired.client_order_id,
                        order_id=fired.order_id, parent=parent)
        if not place_checked(st, ticket):
            st.events.append(OrderCanceled(acct.account_id, m.symbol, fired.order_id,
                                           fired.qty, "rejected"))
