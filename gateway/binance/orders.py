"""Every order's life as Binance reports it, recorded from the venue's events.

The venue keeps open orders only; Binance's ``GET /fapi/v1/order`` also answers for orders
that filled or were cancelled, with their average price and filled quote. ``Orders`` follows
each order from its acceptance through its fills, amendments and cancellation, keyed by the
venue's order id and by (account, client order id). Finished orders are kept up to
``MAX_FINISHED`` (the oldest are forgotten: Binance forgets too, after 3 days).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from gaemi.engine.codes import Side, TimeInForce
from gaemi.risk.events import (
    ConditionalAccepted,
    Fill,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderTriggered,
)

__all__ = ["LIQUIDATION_ID", "MAX_FINISHED", "SYNTHETIC_ID", "OrderRecord", "Orders"]

MAX_FINISHED = 100_000
SYNTHETIC_ID = "gaemi-"  # the client id of an order sent without one: gaemi-<orderId>
LIQUIDATION_ID = "autoclose-"  # ... of a liquidation order (Binance's): autoclose-<n>
_TIF = {TimeInForce.GTC: "GTC", TimeInForce.IOC: "IOC", TimeInForce.FOK: "FOK"}
_EXPIRED = {"expired", "fok", "self_trade"}  # Binance: EXPIRED (the rest: CANCELED)
_CONDITIONAL = {("stop", False): "STOP_MARKET", ("stop", True): "STOP",
                ("take_profit", False): "TAKE_PROFIT_MARKET", ("take_profit", True): "TAKE_PROFIT"}


@dataclass(slots=True)
class OrderRecord:
    order_id: int
    account_id: int
    symbol: str
    client_order_id: str | None
    side: int
    type: str  # LIMIT, MARKET, STOP_MARKET, STOP, TAKE_PROFIT_MARKET, TAKE_PROFIT
    time_in_force: str  # GTC, IOC, FOK, GTX
    reduce_only: bool
    price: int | None  # ticks (None: a market order)
    stop_price: int | None
    orig_qty: int  # lots
    executed: int = 0
    quote: int = 0  # micro-dollars traded (price x lots x multiplier, summed)
    status: str = "NEW"
    time_ms: int = 0
    update_ms: int = 0
    liquidation_id: int | None = None  # the venue's liquidation order of that liquidation
    triggered: bool = False  # a conditional order whose trigger fired
    trigger_ms: int = 0

    @property
    def name(self) -> str:
        """The client order id shown: the client's own; Binance's ``autoclose-<n>`` for a
        liquidation order; ``gaemi-<orderId>`` for an order sent without one."""
        if self.client_order_id is not None:
            return self.client_order_id
        if self.liquidation_id is not None:
            return f"{LIQUIDATION_ID}{self.liquidation_id}"
        return f"{SYNTHETIC_ID}{self.order_id}"

    @property
    def done(self) -> bool:
        return self.status in ("FILLED", "CANCELED", "EXPIRED")


class Orders:
    def __init__(self, multipliers: dict[str, int]) -> None:
        self.multipliers = multipliers
        self.by_id: dict[int, OrderRecord] = {}
        self.by_client: dict[tuple[int, str], int] = {}  # (account, client id) -> order id
        self.by_account: dict[int, dict[int, OrderRecord]] = {}  # in order-id order
        self._finished: deque[int] = deque()

    def get(self, account_id: int, order_id: int | None,
            client_order_id: str | None) -> OrderRecord | None:
        if order_id is None and client_order_id is not None:
            order_id = self.by_client.get((account_id, client_order_id))
            number = client_order_id.removeprefix(SYNTHETIC_ID)
            if order_id is None and client_order_id.startswith(SYNTHETIC_ID) and \
                    number.isascii() and number.isdigit() and len(number) <= 18:
                order_id = int(number)
                record = self.by_id.get(order_id)
                if record is None or record.name != client_order_id:
                    return None  # the order has a name of its own
        record = self.by_id.get(order_id) if order_id is not None else None
        return record if record is not None and record.account_id == account_id else None

    def observe(self, e: Any, ms: int) -> None:
        t = type(e)
        if t is Fill:
            for oid in (e.taker_order_id, e.maker_order_id):
                record = self.by_id.get(oid)
                if record is not None:
                    record.executed += e.qty
                    record.quote += e.price * e.qty * self.multipliers[e.symbol]
                    record.update_ms = ms
                    if record.executed >= record.orig_qty:
                        self._finish(record, "FILLED")
                    else:
                        record.status = "PARTIALLY_FILLED"
        elif t is OrderAccepted:
            record = self.by_id.get(e.order_id)
            if record is not None:  # a triggered conditional order, now on the book
                record.update_ms = ms
                return
            tif = "GTX" if e.post_only else _TIF.get(e.tif, "GTC")
            self._add(OrderRecord(e.order_id, e.account_id, e.symbol, e.client_order_id,
                                  e.side, "LIMIT" if e.price is not None else "MARKET", tif,
                                  e.reduce_only, e.price, None, e.qty, time_ms=ms,
                                  update_ms=ms, liquidation_id=e.liquidation_id))
        elif t is ConditionalAccepted:
            kind = _CONDITIONAL.get((e.trigger_kind, e.price is not None), "STOP_MARKET")
            self._add(OrderRecord(e.order_id, e.account_id, e.symbol, e.client_order_id,
                                  e.side, kind, "GTC", e.reduce_only, e.price, e.trigger_price,
                                  e.qty, time_ms=ms, update_ms=ms))
        elif t is OrderCanceled:
            record = self.by_id.get(e.order_id)
            if record is not None and not record.done:
                record.update_ms = ms
                self._finish(record, "EXPIRED" if e.reason in _EXPIRED else "CANCELED")
        elif t is OrderAmended:
            record = self.by_id.get(e.order_id)
            if record is not None:
                record.price = e.price
                record.orig_qty = record.executed + e.qty
                record.update_ms = ms
        elif t is OrderTriggered:
            record = self.by_id.get(e.order_id)
            if record is not None:
                record.triggered = True
                record.trigger_ms = record.update_ms = ms

    def seed(self, venue: Any, ms: int) -> int:
        """Records of the orders resting on ``venue`` (a restarted server's: what they
        filled before is unknown, so each starts as a new order of its remaining size)."""
        n = 0
        for account in venue.accounts():
            for o in venue.open_orders(account):
                if o["order_id"] in self.by_id:
                    continue
                trigger = o.get("trigger_price")
                kind = _CONDITIONAL.get((o.get("trigger_kind"), o["price"] is not None),
                                        "STOP_MARKET") if trigger is not None else "LIMIT"
                self._add(OrderRecord(o["order_id"], account, o["symbol"],
                                      o["client_order_id"], int(o["side"]), kind, "GTC",
                                      bool(o["reduce_only"]), o["price"], trigger, o["qty"],
                                      time_ms=ms, update_ms=ms))
                n += 1
        return n

    def _add(self, record: OrderRecord) -> None:
        self.by_id[record.order_id] = record
        self.by_account.setdefault(record.account_id, {})[record.order_id] = record
        if record.client_order_id is not None or record.liquidation_id is not None:
            self.by_client[(record.account_id, record.name)] = record.order_id  # or autoclose

    def _finish(self, record: OrderRecord, status: str) -> None:
        record.status = status
        self._finished.append(record.order_id)
        while len(self._finished) > MAX_FINISHED:
            old = self.by_id.pop(self._finished.popleft(), None)
            if old is not None:
                mine = self.by_account[old.account_id]
                del mine[old.order_id]
                if not mine:
                    del self.by_account[old.account_id]
                key = (old.account_id, old.name)
                if self.by_client.get(key) == old.order_id:
                    del self.by_client[key]


def side_name(side: int) -> str:
    return "BUY" if side == Side.BUY else "SELL"
