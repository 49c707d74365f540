"""Each command's part in the pipeline (docs/design.md §5): one ``Handler`` per command type,
whose stages the venue calls in order (``Venue.submit`` holds the order; no handler runs
another's stage or the next stage itself).

``validate`` checks the command's fields, account and market and returns its context (None:
rejected, the ``Rejected`` event is out); ``risk`` runs the pre-trade checks (False:
rejected); ``match`` sends an order to the book and returns what the book did (None: the book
refused it: rejected); ``settle`` applies the command to positions, money and orders;
``stabilises`` says whether stage 5 (``stabilise``) runs after it. The default ``risk`` and
``match`` pass: only orders and amends meet the book.

A rejection in any stage comes before any change of state: a rejected command changes
nothing.
"""

from __future__ import annotations

from typing import Any

from gaemi.engine.codes import MAX_ACCOUNT, EventKind, TimeInForce
from gaemi.engine.codes import RejectReason as R
from gaemi.engine.errors import InvariantViolation
from gaemi.risk import commands as C
from gaemi.risk.calendar import NS_PER_SECOND
from gaemi.risk.events import (
    Cause,
    ConditionalAccepted,
    Deposited,
    LeverageSet,
    MarginModeSet,
    OrderAmended,
    TradingStatusChanged,
    Withdrawn,
)
from gaemi.risk.venue import orders
from gaemi.risk.venue.arith import DEFAULT_LEVERAGE, MAX_AMOUNT, MAX_FUNDINGS_PER_STEP, is_int
from gaemi.risk.venue.margin import available, balance, order_im, withdrawable
from gaemi.risk.venue.pricing import advance, update_session
from gaemi.risk.venue.settlement import credit
from gaemi.risk.venue.state import Account, Market, Order, Slot, State, Ticket

__all__ = ["HANDLERS", "Handler", "max_time_step"]


class Handler:
    """The stages of one command type (the defaults: nothing to check, nothing to match)."""

    stabilises = True

    def validate(self, st: State, cmd: Any) -> Any:
        raise NotImplementedError

    def risk(self, st: State, ctx: Any) -> bool:
        return True

    def match(self, st: State, ctx: Any) -> Any:
        return ()

    def settle(self, st: State, ctx: Any, matched: Any) -> None:
        raise NotImplementedError


def _account_and_market(st: State, cmd: Any) -> tuple[Account, Market] | None:
    acct = st.find_account(cmd.account_id)
    if acct is None:
        st.reject(cmd, R.UNKNOWN_ACCOUNT)
        return None
    m = st.markets.get(cmd.symbol) if cmd.symbol.__class__ is str else None
    if m is None:
        st.reject(cmd, R.UNKNOWN_MARKET, account_id=acct.account_id)
        return None
    return acct, m


def _cid(value: object) -> str | None:
    return value if isinstance(value, str) else None


# -- orders -------------------------------------------------------------------------------------

class PlaceOrder(Handler):
    def validate(self, st: State, cmd: C.PlaceOrder) -> Ticket | None:
        found = _account_and_market(st, cmd)
        if found is None:
            return None
        acct, m = found
        t = Ticket(acct, m, cmd.side, cmd.price, cmd.qty, cmd.tif, command=cmd,
                   post_only=cmd.post_only, reduce_only=cmd.reduce_only,
                   client_order_id=cmd.client_order_id)
        reason = orders.validate_order(t)
        if reason:
            st.reject(cmd, reason, account_id=acct.account_id, symbol=m.symbol,
                      client_order_id=_cid(cmd.client_order_id))
            return None
        return t

    def risk(self, st: State, t: Ticket) -> bool:
        reason = orders.risk_check(st, t) or orders.check_post_only(t)
        if reason:
            orders.reject(st, t, reason)
        return not reason

    def match(self, st: State, t: Ticket) -> list[Any]:
        orders.accept(st, t)
        return orders.send(t)

    def settle(self, st: State, t: Ticket, book_events: list[Any]) -> None:
        orders.settle(st, t, book_events)


class CancelOrder(Handler):
    def validate(self, st: State, cmd: C.CancelOrder) -> tuple[Account, Market, Any] | None:
        found = _account_and_market(st, cmd)
        if found is None:
            return None
        acct, m = found
        order_id = cmd.order_id
        if order_id is None and cmd.client_order_id is not None:
            order_id = acct.client_ids.get(cmd.client_order_id) \
                if isinstance(cmd.client_order_id, str) else None
        if is_int(order_id):
            order = st.orders.get(order_id)  # type: ignore[arg-type]
            if order is not None and order.account_id == acct.account_id \
                    and order.symbol == m.symbol:
                return acct, m, order
            cond = st.conditionals.get(order_id)  # type: ignore[arg-type]
            if cond is not None and cond.account_id == acct.account_id \
                    and cond.symbol == m.symbol:
                return acct, m, cond
        st.reject(cmd, R.UNKNOWN_ORDER, account_id=acct.account_id, symbol=m.symbol,
                  order_id=order_id if is_int(order_id) else None,
                  client_order_id=_cid(cmd.client_order_id))
        return None

    def settle(self, st: State, ctx: tuple[Account, Market, Any], matched: Any) -> None:
        acct, m, order = ctx
        if isinstance(order, Order):
            orders.cancel_resting(st, acct, m, order, "user")
        else:
            orders.cancel_conditional(st, acct, m, order, "user")


class AmendOrder(Handler):
    def validate(self, st: State, cmd: C.AmendOrder) -> dict[str, Any] | None:
        found = _account_and_market(st, cmd)
        if found is None:
            return None
        acct, m = found
        order = st.orders.get(cmd.order_id) if is_int(cmd.order_id) else None
        fields = dict(account_id=acct.account_id, symbol=m.symbol,
                      order_id=cmd.order_id if is_int(cmd.order_id) else None)
        reason = R.NONE
        if order is None or order.account_id != acct.account_id or order.symbol != m.symbol:
            reason = R.UNKNOWN_ORDER
        elif cmd.price is None and cmd.qty is None:
            reason = R.EMPTY_AMEND
        elif cmd.price is not None and (not is_int(cmd.price)
                                        or not 0 < cmd.price <= m.spec.max_price):
            reason = R.INVALID_PRICE
        elif cmd.qty is not None and (not is_int(cmd.qty) or cmd.qty <= 0):
            reason = R.INVALID_QTY
        elif cmd.qty is not None and cmd.qty > m.spec.max_order_qty:
            reason = R.ORDER_TOO_LARGE
        if reason:
            st.reject(cmd, reason, **fields)
            return None
        assert order is not None
        return {"cmd": cmd, "account": acct, "market": m, "order": order, "fields": fields,
                "price": order.price if cmd.price is None else cmd.price,
                "qty": order.qty if cmd.qty is None else cmd.qty}

    def risk(self, st: State, ctx: dict[str, Any]) -> bool:
        order = ctx["order"]
        if ctx["price"] == order.price and ctx["qty"] <= order.qty:
            return True  # a smaller size at the same price keeps its place and its risk
        # more risk: the new terms must pass the checks a new order with them would
        t = Ticket(ctx["account"], ctx["market"], order.side, ctx["price"], ctx["qty"],
                   TimeInForce.GTC, command=ctx["cmd"], reduce_only=order.reduce_only)
        reason = orders.risk_check(st, t, replaces=order)
        if reason == R.NONE and order.reduce_only and t.qty < ctx["qty"]:
            reason = R.REDUCE_ONLY_WOULD_INCREASE
        if reason:
            st.reject(ctx["cmd"], reason, **ctx["fields"])
        return not reason

    def match(self, st: State, ctx: dict[str, Any]) -> list[Any] | None:
        cmd = ctx["cmd"]
        result = ctx["market"].book.amend(ctx["order"].order_id, price=cmd.price, qty=cmd.qty)
        if result[0].kind == EventKind.REJECTED:  # post-only re-pricing that would cross
            st.reject(cmd, R(result[0].reason), **ctx["fields"])
            return None
        return result[1:]  # type: ignore[no-any-return]

    def settle(self, st: State, ctx: dict[str, Any], book_events: list[Any]) -> None:
        acct, m, order = ctx["account"], ctx["market"], ctx["order"]
        new_price, new_qty = ctx["price"], ctx["qty"]
        orders.forget_order(st, acct, order)
        st.events.append(OrderAmended(acct.account_id, m.symbol, order.order_id, new_price,
                                      new_qty, "user"))
        order.price, order.qty = new_price, new_qty
        # a re-queued order may trade first: settle it like a new taker
        t = Ticket(acct, m, order.side, new_price, new_qty, TimeInForce.GTC, command=ctx["cmd"],
                   reduce_only=order.reduce_only, client_order_id=order.client_order_id,
                   order_id=order.order_id)
        filled, _, _ = orders.consume(st, t, book_events)
        if filled < new_qty:
            order.qty = new_qty - filled
            orders.remember_order(st, acct, order)


class PlaceConditional(Handler):
    def validate(self, st: State, cmd: C.PlaceConditional) -> Ticket | None:
        found = _account_and_market(st, cmd)
        if found is None:
            return None
        acct, m = found
        t = Ticket(acct, m, cmd.side, cmd.price, cmd.qty, TimeInForce.GTC, command=cmd,
                   reduce_only=cmd.reduce_only, client_order_id=cmd.client_order_id)
        reason = orders.validate_order(t)
        if not reason and (cmd.kind not in ("stop", "take_profit") or not is_int(
                cmd.trigger_price) or not 0 < cmd.trigger_price <= m.spec.max_price):
            reason = R.INVALID_TRIGGER
        if reason:
            st.reject(cmd, reason, account_id=acct.account_id, symbol=m.symbol,
                      client_order_id=_cid(cmd.client_order_id))
            return None
        return t

    def risk(self, st: State, t: Ticket) -> bool:
        if t.market.mark:
            return True
        st.reject(t.command, R.NO_MARK_PRICE, account_id=t.account.account_id,
                  symbol=t.market.symbol, client_order_id=t.client_order_id)
        return False

    def settle(self, st: State, t: Ticket, matched: Any) -> None:
        cmd = t.command
        cond = orders.add_conditional(st, t.account, t.market, cmd)
        st.events.append(ConditionalAccepted(t.account.account_id, t.market.symbol,
                                             cond.order_id, cond.client_order_id,
                                             int(cmd.side), cmd.qty, cmd.trigger_price,
                                             cmd.kind, cmd.price, cmd.reduce_only))


class CancelAll(Handler):
    def validate(self, st: State, cmd: C.CancelAll) -> tuple[Account, str | None] | None:
        acct = st.find_account(cmd.account_id)
        if acct is None:
            st.reject(cmd, R.UNKNOWN_ACCOUNT)
            return None
        if cmd.symbol is not None and (cmd.symbol.__class__ is not str
                                       or cmd.symbol not in st.markets):
            st.reject(cmd, R.UNKNOWN_MARKET, account_id=acct.account_id)
            return None
        return acct, cmd.symbol

    def settle(self, st: State, ctx: tuple[Account, str | None], matched: Any) -> None:
        orders.cancel_orders_of(st, ctx[0], ctx[1], "cancel_all")


# -- accounts -----------------------------------------------------------------------------------

class Deposit(Handler):
    def validate(self, st: State, cmd: C.Deposit) -> C.Deposit | None:
        if not is_int(cmd.account_id) or not 0 < cmd.account_id < MAX_ACCOUNT:
            st.reject(cmd, R.INVALID_ACCOUNT)
            return None
        if not is_int(cmd.amount) or not 0 < cmd.amount <= MAX_AMOUNT:
            st.reject(cmd, R.INVALID_AMOUNT, account_id=cmd.account_id)
            return None
        return cmd

    def settle(self, st: State, cmd: C.Deposit, matched: Any) -> None:
        acct = st.accounts.get(cmd.account_id)
        if acct is None:
            acct = st.accounts[cmd.account_id] = Account(cmd.account_id)
        credit(st, acct, None, cmd.amount)
        st.net_deposits += cmd.amount
        st.events.append(Deposited(acct.account_id, cmd.amount, balance(acct)))


class Withdraw(Handler):
    def validate(self, st: State, cmd: C.Withdraw) -> tuple[Account, C.Withdraw] | None:
        acct = st.find_account(cmd.account_id)
        if acct is None:
            st.reject(cmd, R.UNKNOWN_ACCOUNT)
            return None
        if not is_int(cmd.amount) or not 0 < cmd.amount <= MAX_AMOUNT:
            st.reject(cmd, R.INVALID_AMOUNT, account_id=cmd.account_id)
            return None
        return acct, cmd

    def risk(self, st: State, ctx: tuple[Account, C.Withdraw]) -> bool:
        acct, cmd = ctx
        if cmd.amount > withdrawable(st, acct):
            st.reject(cmd, R.INSUFFICIENT_BALANCE, account_id=cmd.account_id)
            return False
        return True

    def settle(self, st: State, ctx: tuple[Account, C.Withdraw], matched: Any) -> None:
        acct, cmd = ctx
        credit(st, acct, None, -cmd.amount)
        st.net_deposits -= cmd.amount
        st.events.append(Withdrawn(acct.account_id, cmd.amount, balance(acct)))


def _settings(st: State, cmd: Any) -> tuple[Account, Market, Slot] | None:
    """The account, market and slot a settings command names (the slot is a new one,
    unattached, if the account has none there: a rejection must change nothing)."""
    found = _account_and_market(st, cmd)
    if found is None:
        return None
    acct, m = found
    return acct, m, acct.slots.get(m.symbol) or Slot(min(DEFAULT_LEVERAGE, m.spec.max_leverage))


class SetLeverage(Handler):
    stabilises = False

    def validate(self, st: State, cmd: C.SetLeverage) -> tuple[Any, ...] | None:
        found = _settings(st, cmd)
        if found is None:
            return None
        acct, m, slot = found
        if not is_int(cmd.leverage) or not 1 <= cmd.leverage <= m.spec.max_leverage:
            st.reject(cmd, R.INVALID_LEVERAGE, account_id=acct.account_id, symbol=m.symbol)
            return None
        return cmd, acct, m, slot

    def risk(self, st: State, ctx: tuple[Any, ...]) -> bool:
        cmd, acct, m, slot = ctx
        reason = R.NONE
        if slot.isolated and slot.size:
            reason = R.POSITION_OPEN
        elif slot.size and m.mark and cmd.leverage > m.spec.tiers[m.spec.tier_index(
                abs(slot.size) * m.mark * m.mult)].max_leverage:
            reason = R.LEVERAGE_ABOVE_TIER
        elif cmd.leverage < slot.leverage and m.mark and not slot.isolated:
            old = slot.leverage
            im_before = order_im(m, slot, True)
            slot.leverage = cmd.leverage
            im_after = order_im(m, slot, True)
            slot.leverage = old
            if im_after > im_before and available(st, acct) < im_after - im_before:
                reason = R.INSUFFICIENT_MARGIN
        if reason:
            st.reject(cmd, reason, account_id=acct.account_id, symbol=m.symbol)
        return not reason

    def settle(self, st: State, ctx: tuple[Any, ...], matched: Any) -> None:
        cmd, acct, m, slot = ctx
        acct.slots[m.symbol] = slot
        slot.leverage = cmd.leverage
        st.events.append(LeverageSet(acct.account_id, m.symbol, cmd.leverage))


class SetMarginMode(Handler):
    stabilises = False

    def validate(self, st: State, cmd: C.SetMarginMode) -> tuple[Any, ...] | None:
        found = _settings(st, cmd)
        if found is None:
            return None
        acct, m, slot = found
        if cmd.mode not in ("cross", "isolated"):
            st.reject(cmd, R.INVALID_MARGIN_MODE, account_id=acct.account_id, symbol=m.symbol)
            return None
        return cmd, acct, m, slot

    def risk(self, st: State, ctx: tuple[Any, ...]) -> bool:
        cmd, acct, m, slot = ctx
        reason = R.NONE
        if slot.size:
            reason = R.POSITION_OPEN
        elif slot.orders or any(c.symbol == m.symbol for c in acct.conditionals.values()):
            reason = R.OPEN_ORDERS_EXIST
        if reason:
            st.reject(cmd, reason, account_id=acct.account_id, symbol=m.symbol)
        return not reason

    def settle(self, st: State, ctx: tuple[Any, ...], matched: Any) -> None:
        cmd, acct, m, slot = ctx
        if slot.margin:  # a flat isolated slot keeps no margin (it returns on close)
            raise InvariantViolation("flat isolated slot holds margin")
        acct.slots[m.symbol] = slot  # created only now that the command is accepted
        slot.isolated = cmd.mode == "isolated"
        st.events.append(MarginModeSet(acct.account_id, m.symbol, cmd.mode))


# -- markets and time ---------------------------------------------------------------------------

def _market(st: State, cmd: Any) -> Market | None:
    m = st.markets.get(cmd.symbol) if isinstance(cmd.symbol, str) else None
    if m is None:
        st.reject(cmd, R.UNKNOWN_MARKET)
    return m


class SetIndexPrice(Handler):
    def validate(self, st: State, cmd: C.SetIndexPrice) -> tuple[Market, int] | None:
        m = _market(st, cmd)
        if m is None:
            return None
        if not is_int(cmd.price) or not 0 < cmd.price <= m.spec.max_price:
            st.reject(cmd, R.INVALID_PRICE, symbol=m.symbol)
            return None
        return m, cmd.price

    def settle(self, st: State, ctx: tuple[Market, int], matched: Any) -> None:
        m, price = ctx
        m.index = price
        if not m.prev_close:
            m.prev_close = price
        m.cause = Cause("index", st.cur_seq)
        st.dirty.add(m.symbol)


class SetTradingStatus(Handler):
    def validate(self, st: State, cmd: C.SetTradingStatus) -> tuple[Market, str] | None:
        m = _market(st, cmd)
        if m is None:
            return None
        if cmd.status not in ("open", "halted"):
            st.reject(cmd, R.INVALID_STATUS, symbol=m.symbol)
            return None
        return m, cmd.status

    def settle(self, st: State, ctx: tuple[Market, str], matched: Any) -> None:
        m, status = ctx
        m.status = status
        m.sweep = True
        st.events.append(TradingStatusChanged(m.symbol, m.status, m.session_open))
        st.dirty.add(m.symbol)


def max_time_step(st: State) -> int:
    """The longest step one ``AdvanceTime`` may take, in ns: ``MAX_FUNDINGS_PER_STEP``
    funding intervals of the market that pays most often (each interval settled costs work,
    so a single command stays bounded; a longer span takes several commands)."""
    return MAX_FUNDINGS_PER_STEP * min(m.spec.funding_interval_ns for m in st.markets.values())


class AdvanceTime(Handler):
    def validate(self, st: State, cmd: C.AdvanceTime) -> int | None:
        if not is_int(cmd.ts_ns) or cmd.ts_ns < st.time or cmd.ts_ns >= 2**63:
            st.reject(cmd, R.INVALID_TIMESTAMP)
            return None
        if cmd.ts_ns - st.time > max_time_step(st):
            st.reject(cmd, R.TIME_STEP_TOO_LARGE)
            return None
        return cmd.ts_ns

    def settle(self, st: State, target: int, matched: Any) -> None:
        for m in st.markets.values():
            # a mark moved by the passage of time moved because of the book: attribute it to
            # the latest liquidation whose fills are still inside the basis window, if any
            last = m.last_liq
            if last is not None and target - last[0] <= m.spec.basis_window_s * NS_PER_SECOND:
                m.cause = Cause("time", st.cur_seq, None, last[1], last[2])
            else:
                m.cause = Cause("time", st.cur_seq)
            advance(st, m, target)
        st.time = target
        for m in st.markets.values():
            update_session(st, m, target)
            st.dirty.add(m.symbol)


HANDLERS: dict[type, Handler] = {
    C.Deposit: Deposit(), C.Withdraw: Withdraw(), C.PlaceOrder: PlaceOrder(),
    C.CancelOrder: CancelOrder(), C.AmendOrder: AmendOrder(), C.SetLeverage: SetLeverage(),
    C.SetMarginMode: SetMarginMode(), C.SetIndexPrice: SetIndexPrice(),
    C.AdvanceTime: AdvanceTime(), C.CancelAll: CancelAll(),
    C.PlaceConditional: PlaceConditional(), C.SetTradingStatus: SetTradingStatus(),
}
