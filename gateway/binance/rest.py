"""The Binance USDⓈ-M REST facade (``/fapi/...``), served by aiohttp beside the websocket server.

It runs on the server's event loop, so a request is handled between two sequencer batches and
reads the venue as the last batch left it: a depth snapshot's ``lastUpdateId`` is the venue's
sequence number at that point. Answers have Binance's shapes: decimal strings for prices and
sizes, milliseconds for times, and errors as ``{"code": -NNNN, "msg": ...}`` with Binance's
HTTP status. Market data only, for now; docs/binance-api.md lists every route and whether it
is served.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from fractions import Fraction
from typing import Any, Protocol

import orjson
from aiohttp import web

from gaemi.gateway.binance.units import (
    QUOTE,
    BinanceSymbols,
    decimal_text,
    lots_text,
    price_text,
)
from gaemi.risk.markets import PPB, MarketSpec
from gaemi.risk.venue import Venue

__all__ = ["BinanceError", "Source", "make_app"]

NS_PER_MS = 1_000_000
_INTEGER = re.compile(r"[0-9]{1,18}")  # ASCII digits (str.isdigit admits any script's)
DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000)
# the request weight Binance publishes, reported in rateLimits (enforced: a later change)
WEIGHT_PER_MINUTE = 2400
ORDERS_PER_MINUTE = 1200


class BinanceError(Exception):
    """An error answered as Binance answers it."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.status = status


def _missing(name: str) -> BinanceError:
    return BinanceError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, "
                        "or malformed.")


class Source(Protocol):
    """What the facade reads: the venue as the sequencer left it, and the server's clock."""

    @property
    def venue(self) -> Venue | None: ...

    def clock(self) -> int: ...


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status,
                        content_type="application/json")


class _Params:
    """A request's query parameters, read once each: what is left unread is an error."""

    def __init__(self, request: web.Request) -> None:
        self.items = request.query
        self.read: set[str] = set()

    def get(self, name: str) -> str | None:
        values = self.items.getall(name, [])
        self.read.add(name)
        if len(values) > 1:
            raise BinanceError(-1101, f"Duplicate values for parameter '{name}'.")
        if not values:
            return None
        if values[0] == "":
            raise _missing(name)
        return values[0]

    def need(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise _missing(name)
        return value

    def integer(self, name: str, default: int) -> int:
        text = self.get(name)
        if text is None:
            return default
        if not _INTEGER.fullmatch(text):
            raise BinanceError(-1100, f"Illegal characters found in parameter '{name}'; "
                               "legal range is '^[0-9]{1,18}$'.")
        return int(text)

    def done(self) -> None:
        extra = sorted(set(self.items) - self.read)
        if extra:
            raise BinanceError(-1104, f"Not all sent parameters were read; read "
                               f"{len(self.read)} parameter(s) but was sent "
                               f"{len(set(self.items))}: unknown {', '.join(extra)}.")


class _Facade:
    def __init__(self, source: Source) -> None:
        self.source = source
        self._symbols: BinanceSymbols | None = None

    # -- reading the venue ------------------------------------------------------------------

    def venue(self) -> Venue:
        venue = self.source.venue
        if venue is None:
            raise BinanceError(-1016, "This service is no longer available.", 503)
        return venue

    def symbols(self) -> BinanceSymbols:
        if self._symbols is None:
            self._symbols = BinanceSymbols(self.venue().symbols)
        return self._symbols

    def market(self, symbol: str) -> str:
        venue_symbol = self.symbols().to_venue.get(symbol)
        if venue_symbol is None:
            raise BinanceError(-1121, "Invalid symbol.")
        return venue_symbol

    def chosen(self, params: _Params) -> list[str] | None:
        """The one market a ``symbol`` parameter names, or None: all of them."""
        symbol = params.get("symbol")
        return None if symbol is None else [self.market(symbol)]

    def now_ms(self) -> int:
        return self.source.clock() // NS_PER_MS

    def venue_ms(self) -> int:
        return self.venue().time // NS_PER_MS

    # -- routes -------------------------------------------------------------------------------

    async def ping(self, request: web.Request) -> web.Response:
        _Params(request).done()
        return _json({})

    async def time(self, request: web.Request) -> web.Response:
        _Params(request).done()
        return _json({"serverTime": self.now_ms()})

    async def exchange_info(self, request: web.Request) -> web.Response:
        _Params(request).done()
        venue = self.venue()
        symbols = self.symbols()
        return _json({
            "timezone": "UTC",
            "serverTime": self.now_ms(),
            "futuresType": "U_MARGINED",
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                 "limit": WEIGHT_PER_MINUTE},
                {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1,
                 "limit": ORDERS_PER_MINUTE},
            ],
            "exchangeFilters": [],
            "assets": [{"asset": QUOTE, "marginAvailable": True, "autoAssetExchange": "0"}],
            "symbols": [_symbol_info(symbols.to_binance[s], venue.spec(s))
                        for s in venue.symbols],
        })

    async def depth(self, request: web.Request) -> web.Response:
        params = _Params(request)
        symbol = self.market(params.need("symbol"))
        limit = params.integer("limit", 500)
        params.done()
        if limit not in DEPTH_LIMITS:
            raise BinanceError(-1130, "Data sent for parameter 'limit' is not valid; "
                               f"valid limits are {', '.join(map(str, DEPTH_LIMITS))}.")
        venue = self.venue()
        spec = venue.spec(symbol)
        bids, asks = venue.book(symbol).depth(limit)
        ms = self.venue_ms()
        return _json({
            "lastUpdateId": venue.seq, "E": ms, "T": ms,
            "bids": [[price_text(p, spec), lots_text(q, spec)] for p, q in bids],
            "asks": [[price_text(p, spec), lots_text(q, spec)] for p, q in asks],
        })

    async def ticker_price(self, request: web.Request) -> web.Response:
        params = _Params(request)
        chosen = self.chosen(params)
        params.done()
        venue = self.venue()
        rows = []
        for s in chosen or venue.symbols:
            m = venue.market(s)
            price = m.last_price if m.last_price is not None else m.mark
            rows.append({"symbol": self.symbols().to_binance[s],
                         "price": price_text(price or 0, venue.spec(s)),
                         "time": self.venue_ms()})
        return _json(rows[0] if chosen else rows)

    async def book_ticker(self, request: web.Request) -> web.Response:
        params = _Params(request)
        chosen = self.chosen(params)
        params.done()
        venue = self.venue()
        rows = []
        for s in chosen or venue.symbols:
            spec = venue.spec(s)
            bids, asks = venue.book(s).depth(1)
            bid = bids[0] if bids else (0, 0)
            ask = asks[0] if asks else (0, 0)
            rows.append({"symbol": self.symbols().to_binance[s],
                         "bidPrice": price_text(bid[0], spec), "bidQty": lots_text(bid[1], spec),
                         "askPrice": price_text(ask[0], spec), "askQty": lots_text(ask[1], spec),
                         "time": self.venue_ms(), "lastUpdateId": venue.seq})
        return _json(rows[0] if chosen else rows)

    async def premium_index(self, request: web.Request) -> web.Response:
        params = _Params(request)
        chosen = self.chosen(params)
        params.done()
        venue = self.venue()
        rows = []
        for s in chosen or venue.symbols:
            spec = venue.spec(s)
            m = venue.market(s)
            rows.append({
                "symbol": self.symbols().to_binance[s],
                "markPrice": price_text(m.mark or 0, spec),
                "indexPrice": price_text(m.index or 0, spec),
                "estimatedSettlePrice": price_text(m.index or 0, spec),
                # the estimate for the coming settlement, per funding interval (fundingInfo)
                "lastFundingRate": _rate(m.funding_rate),
                "interestRate": _rate(spec.funding_interest_ppb * spec.funding_interval_ns
                                      // _EIGHT_HOURS_NS),
                "nextFundingTime": m.next_funding_ts // NS_PER_MS,
                "time": self.venue_ms(),
            })
        return _json(rows[0] if chosen else rows)

    async def funding_info(self, request: web.Request) -> web.Response:
        _Params(request).done()
        venue = self.venue()
        rows = []
        for s in venue.symbols:
            spec = venue.spec(s)
            cap = spec.funding_cap_ppb * spec.funding_interval_ns // _EIGHT_HOURS_NS
            rows.append({"symbol": self.symbols().to_binance[s],
                         "adjustedFundingRateCap": _rate(cap),
                         "adjustedFundingRateFloor": _rate(-cap),
                         "fundingIntervalHours": spec.funding_interval_ns // _HOUR_NS,
                         "disclaimer": False})
        return _json(rows)

    async def open_interest(self, request: web.Request) -> web.Response:
        params = _Params(request)
        symbol = self.market(params.need("symbol"))
        params.done()
        venue = self.venue()
        return _json({"symbol": self.symbols().to_binance[symbol],
                      "openInterest": lots_text(venue.market(symbol).open_interest,
                                                venue.spec(symbol)),
                      "time": self.venue_ms()})


_HOUR_NS = 3600 * 1_000_000_000
_EIGHT_HOURS_NS = 8 * _HOUR_NS


def _rate(ppb: int) -> str:
    """A rate in parts per billion as Binance's 8-decimal string (exact: 9 when needed)."""
    value = Fraction(ppb, PPB)
    text = decimal_text(value)
    whole, _, digits = text.partition(".")
    return f"{whole}.{digits.ljust(8, '0')}" if len(digits) <= 8 else text


def _precision(text: str) -> int:
    return len(text.partition(".")[2])


def _symbol_info(name: str, spec: MarketSpec) -> dict[str, Any]:
    tick = price_text(1, spec)
    step = lots_text(1, spec)
    band = decimal_text(_fraction(spec.price_band_ppb))
    return {
        "symbol": name,
        "pair": name,
        "contractType": "PERPETUAL",
        "deliveryDate": 4133404800000,  # Binance's "never" for perpetuals
        "onboardDate": 0,
        "status": "TRADING",
        "maintMarginPercent": "0",
        "requiredMarginPercent": "0",
        "baseAsset": name.removesuffix(QUOTE),
        "quoteAsset": QUOTE,
        "marginAsset": QUOTE,
        "pricePrecision": _precision(tick),
        "quantityPrecision": _precision(step),
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "EQUITY",
        "underlyingSubType": [],
        "settlePlan": 0,
        "triggerProtect": "0",
        "liquidationFee": decimal_text(_fraction(spec.liquidation_fee_ppb)),
        "marketTakeBound": decimal_text(_fraction(spec.market_protection_ppb)),
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": tick,
             "maxPrice": price_text(spec.max_price, spec), "tickSize": tick},
            {"filterType": "LOT_SIZE", "minQty": step,
             "maxQty": lots_text(spec.max_order_qty, spec), "stepSize": step},
            {"filterType": "MARKET_LOT_SIZE", "minQty": step,
             "maxQty": lots_text(spec.max_order_qty, spec), "stepSize": step},
            {"filterType": "MAX_NUM_ORDERS", "limit": spec.max_open_orders},
            {"filterType": "MIN_NOTIONAL", "notional": "0"},  # the venue has no minimum
            {"filterType": "PERCENT_PRICE", "multiplierUp": decimal_text(1 + _fraction(
                spec.price_band_ppb)), "multiplierDown": decimal_text(1 - _fraction(
                    spec.price_band_ppb)), "multiplierDecimal": str(_precision(band))},
        ],
        "orderTypes": ["LIMIT", "MARKET", "STOP_MARKET", "TAKE_PROFIT_MARKET"],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
    }


def _fraction(ppb: int) -> Fraction:
    return Fraction(ppb, PPB)


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except BinanceError as exc:
        return _json({"code": exc.code, "msg": exc.msg}, exc.status)
    except web.HTTPNotFound:
        return _json({"code": -1020, "msg": "This operation is not supported."}, 404)
    except web.HTTPMethodNotAllowed:
        return _json({"code": -1020, "msg": "This operation is not supported."}, 405)


def make_app(source: Source) -> web.Application:
    """The aiohttp application of the facade, reading ``source``."""
    facade = _Facade(source)
    app = web.Application(middlewares=[_errors], client_max_size=64 * 1024)
    routes = [
        ("/fapi/v1/ping", facade.ping),
        ("/fapi/v1/time", facade.time),
        ("/fapi/v1/exchangeInfo", facade.exchange_info),
        ("/fapi/v1/depth", facade.depth),
        ("/fapi/v1/ticker/price", facade.ticker_price),
        ("/fapi/v2/ticker/price", facade.ticker_price),
        ("/fapi/v1/ticker/bookTicker", facade.book_ticker),
        ("/fapi/v1/premiumIndex", facade.premium_index),
        ("/fapi/v1/fundingInfo", facade.funding_info),
        ("/fapi/v1/openInterest", facade.open_interest),
    ]
    for path, handler in routes:
        app.router.add_get(path, handler)
    return app
