"""Message shapes of the wire protocol (docs/protocol.md) and their mapping to venue commands.

Requests are ``{"id": int | text, "op": text, "args": map}``; responses are
``{"id", "ok": true, "result": ...}`` or ``{"id", "ok": false, "error": {"code", "msg"}}``;
pushes are ``{"ch", "seq", "prev", "data"}``. Arguments are checked strictly: a missing,
unknown or wrongly typed argument is a ``BAD_ARGUMENT`` error naming it, so a client learns
its mistake instead of having a field silently ignored.

Names follow the vocabulary traders know from Binance and Bybit (``side: "BUY"``,
``timeInForce: "GTC" | "IOC" | "FOK" | "POST_ONLY"``, ``reduceOnly``, ``clientOrderId``);
prices are integer ticks and sizes integer lots of the instrument (``instruments`` gives
each market's tick and lot), money integer micro-dollars.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gaemi.engine.codes import RejectReason as R
from gaemi.engine.codes import Side, TimeInForce
from gaemi.gateway.wire.codec import ProtocolError, request_id
from gaemi.risk import commands as C


__all__ = ["OPS", "Request", "account_command", "admin_command", "error", "ok",
           "order_command", "parse_request", "push"]

PUBLIC_OPS = frozenset({"session.logon", "ping", "instruments", "subscribe", "unsubscribe",
                        "snapshot.book"})
PRIVATE_OPS = frozenset({"order.place", "order.cancel", "order.amend", "order.cancelAll",
                         "order.batch", "session.cancelAllAfter", "account.balance",
                         "account.positions", "account.openOrders", "account.setLeverage",
                         "account.setMarginMode", "session.logout"})
ADMIN_OPS = frozenset({"admin.setIndex", "admin.deposit", "admin.setStatus"})
OPS = PUBLIC_OPS | PRIVATE_OPS | ADMIN_OPS
MAX_BATCH = 20

_SIDES = {"BUY": Side.BUY, "SELL": Side.SELL}
_TIFS = {"GTC": (TimeInForce.GTC, False), "IOC": (TimeInForce.IOC, False),
         "FOK": (TimeInForce.FOK, False), "POST_ONLY": (TimeInForce.GTC, True),
         "GTX": (TimeInForce.GTC, True)}  # GTX: Binance's name for post-only
_CONDITIONAL = {"STOP_MARKET": ("stop", False), "STOP_LIMIT": ("stop", True),
                "TAKE_PROFIT_MARKET": ("take_profit", False),
                "TAKE_PROFIT_LIMIT": ("take_profit", True)}


@dataclass(frozen=True, slots=True)
class Request:
    id: int | str
    op: str
    args: dict[str, Any]


def parse_request(obj: dict[str, Any]) -> Request:
    """The request a decoded message carries; ProtocolError (8002/8003) otherwise."""
    rid = request_id(obj)
    if rid is None:
        raise ProtocolError(R.BAD_REQUEST, "id: an integer or 1-64 characters of text")
    op = obj.get("op")
    if not isinstance(op, str):
        raise ProtocolError(R.BAD_REQUEST, "op: text")
    if op not in OPS:
        raise ProtocolError(R.UNKNOWN_OP, f"unknown op {op[:40]!r}")
    args = obj.get("args", {})
    if not isinstance(args, dict):
        raise ProtocolError(R.BAD_REQUEST, "args: a map")
    extra = set(obj) - {"id", "op", "args"}
    if extra:
        raise ProtocolError(R.BAD_REQUEST, f"unknown field {sorted(extra)[0][:40]!r}")
    return Request(rid, op, args)


def ok(rid: int | str | None, result: Any) -> dict[str, Any]:
    return {"id": rid, "ok": True, "result": result}


def error(rid: int | str | None, code: int, msg: str) -> dict[str, Any]:
    return {"id": rid, "ok": False, "error": {"code": int(code), "msg": msg}}


def push(channel: str, seq: int, data: Any) -> dict[str, Any]:
    """A push on ``channel``: ``prev`` is the channel's previous ``seq`` (gap detection)."""
    return {"ch": channel, "seq": seq, "prev": seq - 1, "data": data}


class Args:
    """Strict argument reader: every argument must be read once; leftovers are an error."""

    def __init__(self, args: dict[str, Any]) -> None:
        self._args = args
        self._seen: set[str] = set()

    def get(self, name: str, kind: type | tuple[type, ...], *, required: bool = True,
            default: Any = None) -> Any:
        self._seen.add(name)
        if name not in self._args or self._args[name] is None:
            if required:
                raise ProtocolError(R.BAD_ARGUMENT, f"{name}: required")
            return default
        value = self._args[name]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds:
            raise ProtocolError(R.BAD_ARGUMENT, f"{name}: expected {_names(kinds)}")
        if not isinstance(value, kinds):
            raise ProtocolError(R.BAD_ARGUMENT, f"{name}: expected {_names(kinds)}")
        return value

    def choice(self, name: str, table: dict[str, Any], *, required: bool = True,
               default: str | None = None) -> Any:
        value = self.get(name, str, required=required, default=default)
        if value is None:
            return None
        if value not in table:
            raise ProtocolError(R.BAD_ARGUMENT, f"{name}: one of {', '.join(table)}")
        return table[value]

    def done(self) -> None:
        extra = set(self._args) - self._seen
        if extra:
            raise ProtocolError(R.BAD_ARGUMENT, f"unknown argument {sorted(extra)[0][:40]!r}")


def _names(kinds: tuple[type, ...]) -> str:
    return " or ".join({int: "integer", str: "text", bool: "boolean", list: "list",
                        dict: "map"}.get(k, k.__name__) for k in kinds)


def order_command(op: str, args: dict[str, Any], account_id: int) -> Any:
    """The venue command of an order op (``order.place``, ``order.cancel``,
    ``order.amend``, ``order.cancelAll``); ProtocolError for bad arguments. Values the venue
    itself judges (a price off the band, an unknown order) are left to its rejections."""
    a = Args(args)
    if op == "order.place":
        symbol = a.get("symbol", str)
        side = a.choice("side", _SIDES)
        kind = a.get("type", str, required=False, default="LIMIT")
        qty = a.get("qty", int)
        price = a.get("price", int, required=False)
        reduce_only = a.get("reduceOnly", bool, required=False, default=False)
        cid = a.get("clientOrderId", str, required=False)
        if kind in _CONDITIONAL:
            trigger_kind, limit = _CONDITIONAL[kind]
            trigger = a.get("triggerPrice", int)
            if limit != (price is not None):
                raise ProtocolError(R.BAD_ARGUMENT, f"price: {kind} "
                                    f"{'needs' if limit else 'takes no'} price")
            a.done()
            return C.PlaceConditional(account_id, symbol, side, qty, trigger, trigger_kind,
                                      price, reduce_only, cid)
        tif, post_only = a.choice("timeInForce", _TIFS, required=False, default="GTC")
        if kind == "MARKET":
            if price is not None:
                raise ProtocolError(R.BAD_ARGUMENT, "price: a MARKET order takes no price")
            if args.get("timeInForce") in (None, "GTC"):
                tif = TimeInForce.IOC
        elif kind == "LIMIT":
            if price is None:
                raise ProtocolError(R.BAD_ARGUMENT, "price: required for a LIMIT order")
        else:
            raise ProtocolError(R.BAD_ARGUMENT, "type: LIMIT, MARKET, STOP_MARKET, "
                                "STOP_LIMIT, TAKE_PROFIT_MARKET or TAKE_PROFIT_LIMIT")
        a.done()
        return C.PlaceOrder(account_id, symbol, side, price, qty, tif, post_only, reduce_only,
                            cid)
    if op == "order.cancel":
        symbol = a.get("symbol", str)
        order_id = a.get("orderId", int, required=False)
        cid = a.get("clientOrderId", str, required=False)
        a.done()
        if (order_id is None) == (cid is None):
            raise ProtocolError(R.BAD_ARGUMENT, "orderId or clientOrderId: exactly one")
        return C.CancelOrder(account_id, symbol, order_id, cid)
    if op == "order.amend":
        symbol = a.get("symbol", str)
        order_id = a.get("orderId", int)
        price = a.get("price", int, required=False)
        qty = a.get("qty", int, required=False)
        a.done()
        return C.AmendOrder(account_id, symbol, order_id, price, qty)
    if op == "order.cancelAll":
        symbol = a.get("symbol", str, required=False)
        a.done()
        return C.CancelAll(account_id, symbol)
    raise ValueError(f"not an order op: {op}")


def account_command(op: str, args: dict[str, Any], account_id: int) -> Any:
    """The venue command of ``account.setLeverage`` or ``account.setMarginMode``;
    ProtocolError for bad arguments (the venue judges the values)."""
    a = Args(args)
    symbol = a.get("symbol", str)
    if op == "account.setLeverage":
        leverage = a.get("leverage", int)
        a.done()
        return C.SetLeverage(account_id, symbol, leverage)
    if op == "account.setMarginMode":
        mode = a.get("mode", str)
        a.done()
        return C.SetMarginMode(account_id, symbol, mode)
    raise ValueError(f"not an account command op: {op}")


def admin_command(op: str, args: dict[str, Any]) -> Any:
    """The venue command of an admin op (``admin.setIndex``, ``admin.deposit``,
    ``admin.setStatus``); ProtocolError for bad arguments."""
    a = Args(args)
    if op == "admin.setIndex":
        symbol, price = a.get("symbol", str), a.get("price", int)
        a.done()
        return C.SetIndexPrice(symbol, price)
    if op == "admin.deposit":
        account, amount = a.get("accountId", int), a.get("amount", int)
        a.done()
        if account <= 0:
            raise ProtocolError(R.BAD_ARGUMENT, "accountId: a positive integer")
        return C.Deposit(account, amount)
    if op == "admin.setStatus":
        symbol, status = a.get("symbol", str), a.get("status", str)
        a.done()
        return C.SetTradingStatus(symbol, status)
    raise ValueError(f"not an admin op: {op}")
