"""Binance's answers: JSON bodies, errors, and the native protocol's codes in Binance's terms."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from gaemi.engine.codes import RejectReason as R
from gaemi.gateway.wire.errors import GatewayCode as G

__all__ = ["BinanceError", "from_native", "json_response", "missing"]


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status,
                        content_type="application/json")


class BinanceError(Exception):
    """An error answered as Binance answers it: ``{"code": code, "msg": msg}``, ``status``."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.status = status


def missing(name: str) -> BinanceError:
    """Binance's error for a mandatory parameter not sent (or empty)."""
    return BinanceError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, "
                        "or malformed.")


# native code -> (Binance code, message); docs/binance-api.md has the table
_NATIVE: dict[int, tuple[int, str]] = {
    R.UNKNOWN_MARKET: (-1121, "Invalid symbol."),
    R.INSUFFICIENT_MARGIN: (-2019, "Margin is insufficient."),
    R.REDUCE_ONLY_WOULD_INCREASE: (-2022, "ReduceOnly Order is rejected."),
    R.PRICE_OUTSIDE_BAND: (-4016, "Limit price is outside the band around the mark price."),
    R.PRICE_LIMIT: (-4016, "Limit price is outside the market's daily price limit."),
    R.ORDER_TOO_LARGE: (-4005, "Quantity greater than max quantity."),
    R.OPEN_INTEREST_CAP: (-2027, "Exceeded the maximum allowable position at current "
                                 "leverage."),
    R.LEVERAGE_ABOVE_TIER: (-2027, "Exceeded the maximum allowable position at current "
                                   "leverage."),
    R.MARKET_HALTED: (-4000, "The market is halted."),
    R.NO_MARK_PRICE: (-4000, "The market has no mark price yet."),
    R.UNKNOWN_ORDER: (-2011, "Unknown order sent."),
    R.DUPLICATE_ORDER_ID: (-4116, "ClientOrderId is duplicated."),
    R.DUPLICATE_CLIENT_ORDER_ID: (-4116, "ClientOrderId is duplicated."),
    R.POST_ONLY_WOULD_CROSS: (-5022, "Due to the order could not be executed as maker, the "
                                     "Post Only order will be rejected."),
    R.FOK_NOT_FILLABLE: (-5021, "Due to the order could not be filled immediately, the FOK "
                                "order has been rejected."),
    R.SELF_TRADE_PREVENTED: (-2010, "Order would trade against the account's own order."),
    R.INVALID_LEVERAGE: (-4028, "Leverage is not valid."),
    R.INVALID_MARGIN_MODE: (-4046, "Margin type cannot be changed."),
    R.INVALID_TRIGGER: (-2021, "Order would immediately trigger."),
    R.INVALID_CLIENT_ORDER_ID: (-4015, "Client order id is not valid."),
    R.INVALID_PRICE: (-4013, "Price less than min price."),
    R.INVALID_QTY: (-4003, "Quantity less than or equal to zero."),
}


def from_native(code: int, msg: str) -> BinanceError:
    """The Binance error for a native error response."""
    if code == G.RATE_LIMITED:
        return BinanceError(-1003, "Too many requests; " + msg, 429)
    if code == G.SHUTTING_DOWN:
        return BinanceError(-1016, "This service is no longer available.", 503)
    if code == G.INTERNAL_ERROR:
        return BinanceError(-1000, "An unknown error occurred while processing the request; "
                            + msg, 500)
    if code in _NATIVE:
        binance, text = _NATIVE[code]
        return BinanceError(binance, text)
    return BinanceError(-1000, f"{msg} (native code {code})")
