"""From venue events to pushes: one function per event kind (``PUSHES``), each posting the
messages its event makes on the public and private channels (docs/protocol.md §5).

``Publisher.publish(venue, events)`` runs them in the venue's order, then sends a
``positions`` push per position that may have moved and a ``balance`` push per account whose
money moved, to the accounts that listen. Pushes are posted, not sent: the exchange hands them
to the outboxes only when the request that caused them succeeds. A push nobody listens to is
not built.

To add a push: write ``_push_<event>(p, e, ts, changed)`` and register it in ``PUSHES``;
``changed`` collects the accounts (and their markets) whose balance (and positions) to push.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from gaemi.engine.codes import Side, TimeInForce
from gaemi.gateway.sessions import Channel
from gaemi.risk.events import (
    Adl,
    ConditionalAccepted,
    Deposited,
    Fill,
    FundingPayment,
    FundingSettled,
    InsuranceTakeover,
    LeverageSet,
    Liquidation,
    MarginModeSet,
    MarkUpdated,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderTriggered,
    PositionView,
    Withdrawn,
)

__all__ = ["PUSHES", "SIDE_NAME", "Publisher", "position_push"]

SIDE_NAME = {int(Side.BUY): "BUY", int(Side.SELL): "SELL"}
Changed = dict[int, set[str]]  # account -> the markets whose position may have moved


class Publisher:
    """The exchange's channels: public ones by name, private ones by (account, name), and the
    markets whose book moved since the last batch end (their deltas: books.py)."""

    def __init__(self, public: dict[str, Channel]) -> None:
        self.public = public
        self.private: dict[tuple[int, str], Channel] = {}
        self.touched_books: set[str] = set()

    def wants(self, account: int, name: str) -> bool:
        channel = self.private.get((account, name))
        return channel is not None and bool(channel.conns)

    def private_post(self, account: int, name: str, data: dict[str, Any]) -> None:
        channel = self.private.get((account, name))
        if channel is not None:
            channel.post(data)

    def publish(self, venue: Any, events: Iterable[Any]) -> None:
        ts = venue.time
        changed: Changed = {}
        for e in events:
            push = PUSHES.get(type(e))
            if push is not None:
                push(self, e, ts, changed)
        for account, symbols in changed.items():
            if account <= 0:
                continue  # an insurance fund
            want_positions = self.wants(account, "positions") and symbols
            if not (want_positions or self.wants(account, "account")):
                continue
            view = venue.account(account)
            if want_positions:
                for symbol in sorted(symbols):
                    p = view.positions.get(symbol)
                    self.private_post(account, "positions", position_push(p, symbol, ts))
            self.private_post(account, "account", {
                "type": "balance", "balance": view.balance, "equity": view.equity,
                "available": view.available, "marginUsed": view.margin_used,
                "maintenanceMargin": view.maintenance_margin, "ts": ts})


def position_push(p: PositionView | None, symbol: str, ts: int) -> dict[str, Any]:
    """A ``positions`` push (and an ``account.positions`` row); None: flat."""
    if p is None:
        return {"symbol": symbol, "size": 0, "entryPrice": 0, "unrealizedPnl": 0,
                "marginMode": None, "leverage": None, "isolatedMargin": 0,
                "maintenanceMargin": 0, "liquidationPrice": None, "ts": ts}
    return {"symbol": p.symbol, "size": p.size, "entryPrice": p.entry_price,
            "unrealizedPnl": p.unrealized_pnl, "marginMode": p.margin_mode,
            "leverage": p.leverage, "isolatedMargin": p.isolated_margin,
            "maintenanceMargin": p.maintenance_margin, "liquidationPrice": p.liquidation_price,
            "ts": ts}


def _push_fill(p: Publisher, e: Fill, ts: int, changed: Changed) -> None:
    p.touched_books.add(e.symbol)
    liq = e.liquidation_id is not None
    trades = p.public["trades." + e.symbol]
    if trades.conns:
        trades.post({"tradeId": e.trade_id, "price": e.price, "qty": e.qty,
                     "side": SIDE_NAME[e.taker_side], "ts": ts, "liquidation": liq,
                     "liquidationId": e.liquidation_id})
    for account, oid, side, fee, role in (
            (e.taker_account, e.taker_order_id, e.taker_side, e.taker_fee, "taker"),
            (e.maker_account, e.maker_order_id, -e.taker_side, e.maker_fee, "maker")):
        changed.setdefault(account, set()).add(e.symbol)
        if p.wants(account, "fills"):
            p.private_post(account, "fills", {
                "tradeId": e.trade_id, "orderId": oid, "symbol": e.symbol,
                "side": SIDE_NAME[side], "price": e.price, "qty": e.qty, "fee": fee,
                "role": role, "liquidation": liq, "ts": ts})


def _push_accepted(p: Publisher, e: OrderAccepted, ts: int, changed: Changed) -> None:
    p.touched_books.add(e.symbol)
    if p.wants(e.account_id, "orders"):
        p.private_post(e.account_id, "orders", {
            "type": "accepted", "orderId": e.order_id, "clientOrderId": e.client_order_id,
            "symbol": e.symbol, "side": SIDE_NAME[int(e.side)], "price": e.price,
            "qty": e.qty, "limit": e.limit, "timeInForce": TimeInForce(e.tif).name,
            "postOnly": e.post_only, "reduceOnly": e.reduce_only,
            "liquidationId": e.liquidation_id, "ts": ts})


def _push_canceled(p: Publisher, e: OrderCanceled, ts: int, changed: Changed) -> None:
    p.touched_books.add(e.symbol)
    if p.wants(e.account_id, "orders"):
        p.private_post(e.account_id, "orders", {
            "type": "canceled", "orderId": e.order_id, "symbol": e.symbol,
            "remaining": e.remaining, "reason": e.reason, "ts": ts})


def _push_amended(p: Publisher, e: OrderAmended, ts: int, changed: Changed) -> None:
    p.touched_books.add(e.symbol)
    p.private_post(e.account_id, "orders", {
        "type": "amended", "orderId": e.order_id, "symbol": e.symbol, "price": e.price,
        "qty": e.qty, "reason": e.reason, "ts": ts})


def _push_conditional(p: Publisher, e: ConditionalAccepted, ts: int, changed: Changed) -> None:
    p.private_post(e.account_id, "orders", {
        "type": "conditional", "orderId": e.order_id, "clientOrderId": e.client_order_id,
        "symbol": e.symbol, "side": SIDE_NAME[int(e.side)], "qty": e.qty,
        "triggerPrice": e.trigger_price, "triggerKind": e.trigger_kind, "price": e.price,
        "reduceOnly": e.reduce_only, "ts": ts})


def _push_triggered(p: Publisher, e: OrderTriggered, ts: int, changed: Changed) -> None:
    p.private_post(e.account_id, "orders", {
        "type": "triggered", "orderId": e.order_id, "symbol": e.symbol,
        "triggerPrice": e.trigger_price, "mark": e.mark, "ts": ts})


def _push_mark(p: Publisher, e: MarkUpdated, ts: int, changed: Changed) -> None:
    p.public["mark." + e.symbol].post({
        "mark": e.mark, "index": e.index, "fundingRate": e.funding_rate,
        "nextFundingTime": e.next_funding_ts, "openInterest": e.open_interest, "ts": e.ts_ns})


def _push_liquidation(p: Publisher, e: Liquidation, ts: int, changed: Changed) -> None:
    changed.setdefault(e.account_id, set()).add(e.symbol)
    p.private_post(e.account_id, "account", {
        "type": "liquidation", "liquidationId": e.liquidation_id, "symbol": e.symbol,
        "side": SIDE_NAME[e.side], "qty": e.qty, "price": e.price, "mark": e.mark,
        "bankruptcyPrice": e.bankruptcy_price, "fee": e.fee, "generation": e.generation,
        "ts": ts})
    c = e.cause
    p.public["liquidations." + e.symbol].post({
        "liquidationId": e.liquidation_id, "side": SIDE_NAME[e.side], "qty": e.qty,
        "price": e.price, "mark": e.mark, "bankruptcyPrice": e.bankruptcy_price,
        "bookQty": e.book_qty, "insuranceQty": e.insurance_qty, "adlQty": e.adl_qty,
        "fee": e.fee, "generation": e.generation,
        "cause": {"kind": c.kind, "seq": c.seq, "tradeId": c.trade_id,
                  "liquidationId": c.liquidation_id, "generation": c.generation},
        "ts": ts})


def _push_funding(p: Publisher, e: FundingSettled, ts: int, changed: Changed) -> None:
    p.public["funding." + e.symbol].post({
        "rate": e.rate, "price": e.price, "perLot": e.per_lot, "longLots": e.long_lots,
        "paid": e.paid, "ts": e.ts_ns})


def _push_funding_payment(p: Publisher, e: FundingPayment, ts: int, changed: Changed) -> None:
    changed.setdefault(e.account_id, set())
    p.private_post(e.account_id, "account", {
        "type": "funding", "symbol": e.symbol, "size": e.size, "amount": e.amount, "ts": ts})


def _push_takeover(p: Publisher, e: InsuranceTakeover, ts: int, changed: Changed) -> None:
    changed.setdefault(e.account_id, set()).add(e.symbol)  # a position moved without a fill


def _push_adl(p: Publisher, e: Adl, ts: int, changed: Changed) -> None:
    changed.setdefault(e.account_id, set()).add(e.symbol)
    changed.setdefault(e.counterparty, set()).add(e.symbol)


def _push_balance_only(p: Publisher, e: Any, ts: int, changed: Changed) -> None:
    # a balance push; leverage and mode are confirmed by the op's own result
    changed.setdefault(e.account_id, set())


PUSHES: dict[type, Callable[[Publisher, Any, int, Changed], None]] = {
    Fill: _push_fill, OrderAccepted: _push_accepted, OrderCanceled: _push_canceled,
    OrderAmended: _push_amended, ConditionalAccepted: _push_conditional,
    OrderTriggered: _push_triggered, MarkUpdated: _push_mark, Liquidation: _push_liquidation,
    FundingSettled: _push_funding, FundingPayment: _push_funding_payment,
    InsuranceTakeover: _push_takeover, Adl: _push_adl, Deposited: _push_balance_only,
    Withdrawn: _push_balance_only, LeverageSet: _push_balance_only,
    MarginModeSet: _push_balance_only,
}
