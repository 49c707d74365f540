"""What a message means to the venue: the command each order, account and admin op becomes.

One mapping for every way in: the websocket server's exchange, the in-process simulator's
sessions and the order-flow readers all turn ``{op, args}`` into venue commands here, with the
same strict checks of the arguments (``Args``: a missing, unknown or wrongly typed argument is
``BAD_ARGUMENT`` naming it). Values the venue itself judges (a price off the band, an unknown
order) are left to its rejections.
"""

from __future__ import annotations

from typing import Any

from gaemi.engine.codes import Side, TimeInForce
from gaemi.gateway.wire.codec import ProtocolError
from gaemi.gateway.wire.errors import GatewayCode as G
from gaemi.gateway.wire.messages import Args
from gaemi.risk import commands as C

__all__ = ["account_command", "admin_command", "order_command"]

_SIDES = {"BUY": Side.BUY, "SELL": Side.SELL}
_TIFS = {"GTC": (TimeInForce.GTC, False), "IOC": (TimeInForce.IOC, False),
         "FOK": (TimeInForce.FOK, False), "POST_ONLY": (TimeInForce.GTC, True),
         "GTX": (TimeInForce.GTC, True)}  # GTX: Binance's name for post-only
_CONDITIONAL = {"STOP_MARKET": ("stop", False), "STOP_LIMIT": ("stop", True),
                "TAKE_PROFIT_MARKET": ("take_profit", False),
                "TAKE_PROFIT_LIMIT": ("take_profit", True)}


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
                raise ProtocolError(G.BAD_ARGUMENT, f"price: {kind} "
                                    f"{'needs' if limit else 'takes no'} price")
            a.done()
            return C.PlaceConditional(account_id, symbol, side, qty, trigger, trigger_kind,
                                      price, reduce_only, cid)
        tif, post_only = a.choice("timeInForce", _TIFS, required=False, default="GTC")
        if kind == "MARKET":
            if price is not None:
                raise ProtocolError(G.BAD_ARGUMENT, "price: a MARKET order takes no price")
            if args.get("timeInForce") in (None, "GTC"):
                tif = TimeInForce.IOC
        elif kind == "LIMIT":
            if price is None:
                raise ProtocolError(G.BAD_ARGUMENT, "price: required for a LIMIT order")
        else:
            raise ProtocolError(G.BAD_ARGUMENT, "type: LIMIT, MARKET, STOP_MARKET, "
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
            raise ProtocolError(G.BAD_ARGUMENT, "orderId or clientOrderId: exactly one")
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
            raise ProtocolError(G.BAD_ARGUMENT, "accountId: a positive integer")
        return C.Deposit(account, amount)
    if op == "admin.setStatus":
        symbol, status = a.get("symbol", str), a.get("status", str)
        a.done()
        return C.SetTradingStatus(symbol, status)
    raise ValueError(f"not an admin op: {op}")
