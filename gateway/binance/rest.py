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

from aiohttp import web

from gaemi.gateway.binance.errors import BinanceError, json_response, missing
from gaemi.gateway.binance.signed import SignedRoutes
from gaemi.gateway.binance.streams import Streams
from gaemi.gateway.binance.tape import KLINE_MINUTES, MINUTE_MS, Candle, Tape, merge
from gaemi.gateway.binance.units import (
    QUOTE,
    BinanceSymbols,
    decimal_text,
    lots_text,
    price_text,
    rate_text,
    usd_text,
)
from gaemi.gateway.binance.weights import DEFAULT_LIMIT, Weights, weight_of
from gaemi.risk.markets import PPB, UNIT, MarketSpec
from gaemi.risk.venue import Venue

__all__ = ["STREAMS", "BinanceError", "Source", "make_app"]

NS_PER_MS = 1_000_000
STREAMS = web.AppKey("streams", Streams)  # the app's Streams: the server publishes through it
_INTEGER = re.compile(r"[0-9]{1,18}")  # ASCII digits (str.isdigit admits any script's)
DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000)
DAY_MS = 24 * 3600 * 1000
ORDERS_PER_MINUTE = 1200  # published in rateLimits; the native order limit is what applies


class Source(Protocol):
    """What the facade reads and calls: the venue as the sequencer left it, the server's
    clock and API keys, and the sequencer (``call``: a native request as an account)."""

    @property
    def venue(self) -> Venue | None: ...

    keys: dict[str, Any]

    def clock(self) -> int: ...

    async def call(self, account_id: int, op: str, args: dict[str, Any] | None = None, *,
                   prepare: Callable[[], tuple[str, dict[str, Any]]] | None = None
                   ) -> dict[str, Any]: ...


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


_json = json_response


class _Params:
    """A request's parameters, read once each: what is left unread is an error."""

    def __init__(self, request: web.Request | None, items: Any = None) -> None:
        self.items = request.query if request is not None else items
        self.read: set[str] = set()

    def get(self, name: str) -> str | None:
        values = self.items.getall(name, [])
        self.read.add(name)
        if len(values) > 1:
            raise BinanceError(-1101, f"Duplicate values for parameter '{name}'.")
        if not values:
            return None
        if values[0] == "":
            raise missing(name)
        return values[0]

    def need(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise missing(name)
        return value

    def limit(self, default: int, most: int) -> int:
        value = self.integer("limit", default)
        if not 1 <= value <= most:
            raise BinanceError(-1130, f"Data sent for parameter 'limit' is not valid; "
                               f"1 to {most}.")
        return value

    def optional(self, name: str) -> int | None:
        return None if self.items.get(name) is None else self.integer(name, 0)

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
    def __init__(self, source: Source, tape: Tape, weight_limit: int = DEFAULT_LIMIT) -> None:
        self.source = source
        self.tape = tape
        self.weight_limit = weight_limit
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

    def params_of(self, items: Any) -> _Params:
        return _Params(None, items)

    def chosen_symbols(self, symbol: str | None) -> list[str]:
        """The market a ``symbol`` parameter names, or all of them."""
        return self.venue().symbols if symbol is None else [self.market(symbol)]

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
                 "limit": self.weight_limit},
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

    def _per_market(self, request: web.Request,
                    row: Callable[[Venue, str, MarketSpec], dict[str, Any]]) -> web.Response:
        """A route answering for the market ``symbol`` names (an object), or for every
        market (a list)."""
        params = _Params(request)
        chosen = self.chosen(params)
        params.done()
        venue = self.venue()
        rows = [{"symbol": self.symbols().to_binance[s], **row(venue, s, venue.spec(s))}
                for s in chosen or venue.symbols]
        return _json(rows[0] if chosen else rows)

    async def ticker_price(self, request: web.Request) -> web.Response:
        def row(venue: Venue, s: str, spec: MarketSpec) -> dict[str, Any]:
            m = venue.market(s)
            price = m.last_price if m.last_price is not None else m.mark
            return {"price": price_text(price or 0, spec), "time": self.venue_ms()}
        return self._per_market(request, row)

    async def book_ticker(self, request: web.Request) -> web.Response:
        def row(venue: Venue, s: str, spec: MarketSpec) -> dict[str, Any]:
            bids, asks = venue.book(s).depth(1)
            bid = bids[0] if bids else (0, 0)
            ask = asks[0] if asks else (0, 0)
            return {"bidPrice": price_text(bid[0], spec), "bidQty": lots_text(bid[1], spec),
                    "askPrice": price_text(ask[0], spec), "askQty": lots_text(ask[1], spec),
                    "time": self.venue_ms(), "lastUpdateId": venue.seq}
        return self._per_market(request, row)

    async def premium_index(self, request: web.Request) -> web.Response:
        def row(venue: Venue, s: str, spec: MarketSpec) -> dict[str, Any]:
            m = venue.market(s)
            return {
                "markPrice": price_text(m.mark or 0, spec),
                "indexPrice": price_text(m.index or 0, spec),
                "estimatedSettlePrice": price_text(m.index or 0, spec),
                # the estimate for the coming settlement, per funding interval (fundingInfo)
                "lastFundingRate": rate_text(m.funding_rate),
                "interestRate": rate_text(spec.funding_interest_ppb * spec.funding_interval_ns
                                          // _EIGHT_HOURS_NS),
                "nextFundingTime": m.next_funding_ts // NS_PER_MS,
                "time": self.venue_ms(),
            }
        return self._per_market(request, row)

    async def funding_info(self, request: web.Request) -> web.Response:
        _Params(request).done()
        venue = self.venue()
        rows = []
        for s in venue.symbols:
            spec = venue.spec(s)
            cap = spec.funding_cap_ppb * spec.funding_interval_ns // _EIGHT_HOURS_NS
            rows.append({"symbol": self.symbols().to_binance[s],
                         "adjustedFundingRateCap": rate_text(cap),
                         "adjustedFundingRateFloor": rate_text(-cap),
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


    async def trades(self, request: web.Request) -> web.Response:
        params = _Params(request)
        symbol = self.market(params.need("symbol"))
        limit = params.limit(500, 1000)
        params.done()
        spec = self.venue().spec(symbol)
        recent = list(self.tape.markets[symbol].trades)[-limit:]
        return _json([{"id": t.trade_id, "price": price_text(t.price, spec),
                       "qty": lots_text(t.qty, spec),
                       "quoteQty": usd_text(t.price * t.qty * spec.multiplier), "time": t.ms,
                       "isBuyerMaker": t.buyer_is_maker} for t in recent])

    async def agg_trades(self, request: web.Request) -> web.Response:
        params = _Params(request)
        symbol = self.market(params.need("symbol"))
        from_id = params.optional("fromId")
        start, end = params.optional("startTime"), params.optional("endTime")
        limit = params.limit(500, 1000)
        params.done()
        if from_id is not None and (start is not None or end is not None):
            raise BinanceError(-1128, "Combination of optional parameters invalid.")
        spec = self.venue().spec(symbol)
        rows = list(self.tape.markets[symbol].aggs)
        if from_id is not None:
            rows = [a for a in rows if a.agg_id >= from_id][:limit]
        elif start is not None or end is not None:
            rows = [a for a in rows if (start is None or a.ms >= start)
                    and (end is None or a.ms <= end)][:limit]
        else:
            rows = rows[-limit:]
        return _json([{"a": a.agg_id, "p": price_text(a.price, spec), "q": lots_text(a.qty, spec),
                       "f": a.first_id, "l": a.last_id, "T": a.ms, "m": a.buyer_is_maker}
                      for a in rows])

    async def klines(self, request: web.Request) -> web.Response:
        params = _Params(request)
        symbol = self.market(params.need("symbol"))
        interval = params.need("interval")
        start, end = params.optional("startTime"), params.optional("endTime")
        limit = params.limit(500, 1500)
        params.done()
        if interval not in KLINE_MINUTES:
            raise BinanceError(-1120, "Invalid interval.")
        spec = self.venue().spec(symbol)
        width = KLINE_MINUTES[interval] * MINUTE_MS
        bars: list[Candle] = []
        for c in self.tape.markets[symbol].candles:
            open_ms = c.open_ms - c.open_ms % width
            if (start is not None and open_ms + width <= start) or \
                    (end is not None and open_ms > end):
                continue
            if bars and bars[-1].open_ms == open_ms:
                merge(bars[-1], c)
            else:
                bars.append(Candle(open_ms, c.open, c.high, c.low, c.close, c.volume, c.quote,
                                   c.taker_buy_volume, c.taker_buy_quote, c.trades,
                                   c.first_id, c.last_id))
        bars = bars[:limit] if start is not None else bars[-limit:]
        return _json([[b.open_ms, price_text(b.open, spec), price_text(b.high, spec),
                       price_text(b.low, spec), price_text(b.close, spec),
                       lots_text(b.volume, spec), b.open_ms + width - 1, usd_text(b.quote),
                       b.trades,
                       lots_text(b.taker_buy_volume, spec), usd_text(b.taker_buy_quote), "0"]
                      for b in bars])

    async def ticker_24hr(self, request: web.Request) -> web.Response:
        params = _Params(request)
        chosen = self.chosen(params)
        params.done()
        venue = self.venue()
        now = self.venue_ms()
        rows = []
        for s in chosen or venue.symbols:
            spec = venue.spec(s)
            tape = self.tape.markets[s]
            day = [c for c in tape.candles if c.open_ms > now - DAY_MS]
            last = tape.trades[-1] if tape.trades else None
            row: dict[str, Any] = {"symbol": self.symbols().to_binance[s]}
            if day:
                volume = sum(c.volume for c in day)
                quote = sum(c.quote for c in day)
                first, close = day[0].open, day[-1].close
                row.update({
                    "priceChange": price_text(close - first, spec),
                    "priceChangePercent": _fixed(Fraction(100 * (close - first), first), 3),
                    "weightedAvgPrice": _fixed(Fraction(quote, UNIT)
                                               / (volume * Fraction(spec.lot_size)), 8),
                    "openPrice": price_text(first, spec),
                    "highPrice": price_text(max(c.high for c in day), spec),
                    "lowPrice": price_text(min(c.low for c in day), spec),
                    "volume": lots_text(volume, spec), "quoteVolume": usd_text(quote),
                    "openTime": day[0].open_ms, "firstId": day[0].first_id,
                    "lastId": day[-1].last_id, "count": sum(c.trades for c in day)})
            else:
                zero = price_text(0, spec)
                row.update({"priceChange": zero, "priceChangePercent": "0.000",
                            "weightedAvgPrice": zero, "openPrice": zero, "highPrice": zero,
                            "lowPrice": zero, "volume": lots_text(0, spec), "quoteVolume": "0",
                            "openTime": now - DAY_MS, "firstId": -1, "lastId": -1, "count": 0})
            row.update({"lastPrice": price_text(last.price if last else 0, spec),
                        "lastQty": lots_text(last.qty if last else 0, spec), "closeTime": now})
            rows.append(row)
        return _json(rows[0] if chosen else rows)

    async def funding_rate(self, request: web.Request) -> web.Response:
        params = _Params(request)
        symbol_text = params.get("symbol")
        start, end = params.optional("startTime"), params.optional("endTime")
        limit = params.limit(100, 1000)
        params.done()
        venue = self.venue()
        chosen = [self.market(symbol_text)] if symbol_text is not None else venue.symbols
        rows = []
        for s in chosen:
            spec = venue.spec(s)
            for f in self.tape.markets[s].fundings:
                if (start is None or f.ms >= start) and (end is None or f.ms <= end):
                    rows.append({"symbol": self.symbols().to_binance[s],
                                 "fundingRate": rate_text(f.rate), "fundingTime": f.ms,
                                 "markPrice": price_text(f.price, spec)})
        rows.sort(key=lambda r: (r["fundingTime"], r["symbol"]))
        return _json(rows[:limit] if start is not None else rows[-limit:])


def _fixed(value: Fraction, places: int) -> str:
    """``value`` rounded half to even at ``places`` decimals, written with all of them."""
    scaled = round(value * 10**places)
    sign = "-" if scaled < 0 else ""
    whole, part = divmod(abs(scaled), 10**places)
    return f"{sign}{whole}.{str(part).rjust(places, '0')}"


_HOUR_NS = 3600 * 1_000_000_000
_EIGHT_HOURS_NS = 8 * _HOUR_NS


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
        "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT",
                       "TAKE_PROFIT_MARKET"],
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


def _weigh(weights: Weights, facade: _Facade) -> Any:
    @web.middleware
    async def weigh(request: web.Request, handler: Handler) -> web.StreamResponse:
        weight = weight_of(request.method, request.path, request.query)
        allowed, used = weights.take(request.remote or "", weight, facade.now_ms())
        if not allowed:
            response: web.StreamResponse = _json(
                {"code": -1003, "msg": f"Too many requests; current limit of IP is "
                                       f"{weights.limit} request weight per minute."}, 429)
        else:
            response = await handler(request)
        response.headers["X-MBX-USED-WEIGHT-1M"] = str(used)
        return response
    return weigh


def make_app(source: Source, tape: Tape, *, weight_limit: int = DEFAULT_LIMIT
             ) -> web.Application:
    """The aiohttp application of the facade, reading ``source`` and the history ``tape``
    records (the exchange's observer); each address may spend ``weight_limit`` a minute."""
    facade = _Facade(source, tape, weight_limit)
    app = web.Application(middlewares=[_weigh(Weights(weight_limit), facade), _errors],
                          client_max_size=64 * 1024)
    routes: list[tuple[str, Handler]] = [
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
        ("/fapi/v1/trades", facade.trades),
        ("/fapi/v1/aggTrades", facade.agg_trades),
        ("/fapi/v1/klines", facade.klines),
        ("/fapi/v1/ticker/24hr", facade.ticker_24hr),
        ("/fapi/v1/fundingRate", facade.funding_rate),
    ]
    for path, handler in routes:
        app.router.add_get(path, handler)
    signed = SignedRoutes(facade)
    for method, path, handler in signed.routes():
        app.router.add_route(method, path, handler)
    streams = Streams(facade, tape, signed.signer)
    for method in ("POST", "PUT", "DELETE"):
        app.router.add_route(method, "/fapi/v1/listenKey", streams.listen_key)
    app.router.add_get("/private/ws", streams.handle)
    app[STREAMS] = streams
    for base in ("/ws", "/public/ws", "/market/ws"):
        app.router.add_get(base, streams.handle)
        app.router.add_get(base + "/{tail:.+}", streams.handle)
    app.router.add_get("/stream", streams.handle)
    return app
