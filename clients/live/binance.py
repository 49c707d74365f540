"""The bots' client over a Binance USDⓈ-M compatible API, through the stock ccxt package.

``gaemi bot NAME --api binance --url http://HOST:PORT`` runs the shipped bots against Gaemi's
Binance facade (docs/binance-api.md) exactly as a ccxt bot trades on Binance: ccxt's
``binanceusdm`` (and ccxt.pro's streams) with its URLs pointed at the facade, Binance's
signing, REST orders and the user data stream. ``BinanceClient`` offers the part of the native
``Client`` that the bots use (docs/bots.md), in the native units (ticks, lots, micro-dollars),
so that the bots' code is the same for both front doors.

Units are exact: prices and sizes go out as decimal strings on the market's grid (read from
``exchangeInfo``), and every figure that comes back is read from the raw Binance message that
ccxt keeps in ``info`` (decimal strings), never from ccxt's floats.

What differs from the native protocol, and why (each is what a ccxt bot on Binance gets):

* a batch of order operations is sent as concurrent REST requests (the facade runs each
  account's requests in arrival order; Binance has no mixed batch);
* an amend is Binance's modify (``PUT /fapi/v1/order``): the order keeps its id;
* ``cancel_all`` counts the open orders it found just before cancelling (Binance does not
  return a count);
* pushes come from ccxt.pro's caches: fills from ``watch_my_trades`` (each fill), orders from
  ``watch_orders`` (an order's latest state: two updates of one order between two reads are
  seen as the last), positions from ``watch_positions``, the balance from ``watch_balance``,
  the mark from ``watch_mark_price`` (once a second); a liquidation order is recognised by
  Binance's ``autoclose-`` client id. ``subscribe`` returns once the user data stream is
  open, so that no fill of the bot's first orders is missed;
* Binance has no cancel-on-disconnect: when a stream fails (the client is then ``closed``
  and the bot stops with ``ConnectionLost``), ``close()`` cancels the orders of every market
  the client placed orders in, as far as the REST side still answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any
from urllib.parse import urlparse

from gaemi.clients.live.client import ConnectionLost, Push, RequestError
from gaemi.engine.codes import RejectReason as R
from gaemi.gateway.wire.errors import GatewayCode as G

__all__ = ["BinanceClient", "NeedsCcxt", "native_code"]

log = logging.getLogger(__name__)

UNIT = 1_000_000  # micro-dollars per dollar
LIQUIDATION_ID = "autoclose-"  # Binance's client id prefix of a liquidation order
_TIF = {"GTC": "GTC", "IOC": "IOC", "FOK": "FOK", "POST_ONLY": "GTX"}
_DONE = ("FILLED", "CANCELED", "EXPIRED")
SEEN = 10_000  # order ids and liquidations remembered (so that each is pushed once)
OPEN_TIMEOUT = 30.0  # seconds the user data stream may take to open (a hang guard)

# Binance's code -> the native reason the bots act on (others keep Binance's code)
_NATIVE = {
    -2019: R.INSUFFICIENT_MARGIN, -2022: R.REDUCE_ONLY_WOULD_INCREASE,
    -2027: R.LEVERAGE_ABOVE_TIER, -5022: R.POST_ONLY_WOULD_CROSS, -5021: R.FOK_NOT_FILLABLE,
    -2011: R.UNKNOWN_ORDER, -2013: R.UNKNOWN_ORDER, -4016: R.PRICE_OUTSIDE_BAND,
    -4005: R.ORDER_TOO_LARGE, -2010: R.SELF_TRADE_PREVENTED, -4028: R.INVALID_LEVERAGE,
    -4046: R.INVALID_MARGIN_MODE, -1003: G.RATE_LIMITED,
}


class NeedsCcxt(RuntimeError):
    """``--api binance`` without the ccxt package installed."""


def native_code(binance_code: int) -> int:
    """The native reason for a Binance error code (the code itself when there is none)."""
    return int(_NATIVE.get(binance_code, binance_code))


def _error(exc: Exception, op: str) -> RequestError:
    """A ccxt error as the native ``RequestError`` (its message ends with Binance's body)."""
    text = str(exc)
    start = text.find("{")
    try:
        body = json.loads(text[start:]) if start >= 0 else {}
        code = int(body["code"])
        msg = str(body.get("msg", ""))
    except (ValueError, KeyError, TypeError):
        code, msg = 0, text
    return RequestError(native_code(code), msg, op)


class _Market:
    """A market's grid, from ``exchangeInfo``: exact conversions both ways."""

    def __init__(self, native: str, ccxt_symbol: str, info: dict[str, Any]) -> None:
        filters = {f["filterType"]: f for f in info.get("filters", ())}
        self.id = str(info["symbol"])  # Binance's name
        self.native = native
        self.symbol = ccxt_symbol
        self.tick = Decimal(filters["PRICE_FILTER"]["tickSize"])
        self.step = Decimal(filters["LOT_SIZE"]["stepSize"])
        multiplier = self.tick * self.step * UNIT
        if multiplier != multiplier.to_integral_value() or multiplier <= 0:
            raise ValueError(f"{native}: tick x step is not a whole number of micro-dollars")
        self.multiplier = int(multiplier)

    def ticks(self, text: str) -> int:
        return _whole(Decimal(text) / self.tick, text)

    def lots(self, text: str) -> int:
        return _whole(Decimal(text) / self.step, text)

    def price(self, ticks: int) -> str:
        return _plain(ticks * self.tick)

    def qty(self, lots: int) -> str:
        return _plain(lots * self.step)


def _whole(value: Decimal, text: str) -> int:
    if value != value.to_integral_value():
        raise ValueError(f"{text} is off the market's grid")
    return int(value)


def _plain(value: Decimal) -> str:
    """A decimal string without exponent or trailing zeros."""
    return format(value.normalize(), "f")


def _usd(text: str | None) -> int:
    """Micro-dollars of a dollar amount's decimal string (exact)."""
    return _whole(Decimal(text or "0") * UNIT, text or "0")


class BinanceClient:
    """The native client's interface (the part the bots use) over ccxt and a Binance USDⓈ-M
    compatible API. Make one with ``await BinanceClient.connect(url, key, secret)``."""

    def __init__(self, exchange: Any, url: str) -> None:
        self.exchange = exchange
        self.url = url
        self.encoding = "binance (ccxt)"
        self.account_id: int | None = None
        self.markets: dict[str, _Market] = {}  # native symbol -> grid
        self.by_id: dict[str, _Market] = {}  # Binance symbol -> grid
        self._handlers: dict[str, list[Callable[[Push], Any]]] = {}
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._orders: dict[int, tuple[str, str, int]] = {}  # id -> (symbol, side, lots)
        self._seen: dict[str, dict[Any, None]] = {"canceled": {}, "liquidations": {}}
        self._traded: set[str] = set()  # markets the client placed orders in
        self._failure: str | None = None
        self._closed = False

    # -- connecting ------------------------------------------------------------------------------

    @classmethod
    async def connect(cls, url: str, api_key: str, secret: str) -> BinanceClient:
        """Load the markets and find the key's account; ``NeedsCcxt`` without ccxt, a ccxt
        error (NetworkError, AuthenticationError, ...) as it comes."""
        try:
            import ccxt.pro as ccxtpro  # type: ignore[import-untyped]
        except ImportError:
            raise NeedsCcxt("--api binance needs the ccxt package: pip install "
                            "'gaemi[binance]'") from None
        exchange = ccxtpro.binanceusdm({"apiKey": api_key, "secret": secret,
                                        "options": {"fetchCurrencies": False}})
        point(exchange, url)
        client = cls(exchange, url)
        try:
            await client._load()
        except BaseException:
            await exchange.close()
            raise
        return client

    async def _load(self) -> None:
        await self.exchange.load_markets()
        for market in self.exchange.markets.values():
            market_id = str(market["id"])
            if not (market.get("linear") and market_id.endswith("USDT")):
                continue
            grid = _Market(market_id.removesuffix("USDT") + "-PERP", market["symbol"],
                           market["info"])
            self.markets[grid.native] = grid
            self.by_id[market_id] = grid
        rows = await self.exchange.fapiPrivateV2GetBalance()
        alias = str(rows[0].get("accountAlias", "")) if rows else ""
        number = alias.removeprefix("gaemi-")
        self.account_id = int(number) if number.isdigit() else 0

    # -- the connection's state ------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed or self._failure is not None

    def raise_if_closed(self) -> None:
        if self._failure is not None:
            raise ConnectionLost(self._failure)
        if self._closed:
            raise ConnectionLost("closed")

    async def close(self) -> None:
        """Stop the streams; after a stream failure, cancel the orders left resting (Binance
        has no cancel-on-disconnect), as far as the REST side answers."""
        if self._failure is not None and not self._closed:
            for symbol in sorted(self._traded):
                with contextlib.suppress(Exception):
                    await self.exchange.cancel_all_orders(self.markets[symbol].symbol)
        self._closed = True
        for task in self._watchers.values():
            task.cancel()
        for task in self._watchers.values():
            with contextlib.suppress(BaseException):
                await task
        self._watchers.clear()
        await self.exchange.close()

    async def _call(self, op: str, coro: Any) -> Any:
        """A ccxt call; its Binance error as ``RequestError``, a lost server as
        ``ConnectionLost``."""
        import ccxt

        try:
            return await coro
        except ccxt.NetworkError as exc:
            if isinstance(exc, ccxt.DDoSProtection | ccxt.InvalidNonce):  # -1003, -1021
                raise _error(exc, op) from None
            raise ConnectionLost(f"{self.url}: {exc}") from None
        except ccxt.BaseError as exc:
            raise _error(exc, op) from None

    # -- market data -----------------------------------------------------------------------------

    async def instruments(self) -> list[dict[str, Any]]:
        return [{"symbol": m.native, "multiplier": m.multiplier} for m in self.markets.values()]

    async def instrument(self, symbol: str) -> dict[str, Any]:
        """The market's grid, mark and index (``premiumIndex``) and the first tier's
        leverage (``leverageBracket``)."""
        m = self._market(symbol)
        ex = self.exchange
        index = await self._call("instrument", ex.fapiPublicGetPremiumIndex({"symbol": m.id}))
        brackets = await self._call("instrument", ex.fapiPrivateGetLeverageBracket(
            {"symbol": m.id}))
        row = brackets[0] if isinstance(brackets, list) else brackets
        mark = m.ticks(index["markPrice"]) or None
        return {"symbol": symbol, "multiplier": m.multiplier, "mark": mark,
                "index": m.ticks(index["indexPrice"]) or None,
                "maxLeverage": int(row["brackets"][0]["initialLeverage"])}

    def _market(self, symbol: str) -> _Market:
        try:
            return self.markets[symbol]
        except KeyError:
            raise KeyError(f"no market {symbol!r} on {self.url}") from None

    # -- orders ----------------------------------------------------------------------------------

    async def place(self, symbol: str, side: str, qty: int, price: int | None = None, *,
                    type: str = "LIMIT", tif: str = "GTC", reduce_only: bool = False,
                    client_order_id: str | None = None) -> dict[str, Any]:
        m = self._market(symbol)
        params: dict[str, Any] = {}
        if type == "LIMIT":
            params["timeInForce"] = _TIF[tif]
        if reduce_only:
            params["reduceOnly"] = True
        if client_order_id is not None:
            params["clientOrderId"] = client_order_id
        order = await self._call("order.place", self.exchange.create_order(
            m.symbol, type.lower(), side.lower(), m.qty(qty),
            m.price(price) if price is not None else None, params))
        info = order["info"]
        self._traded.add(symbol)
        if info["status"] not in _DONE:  # remembered for amends until it is done
            self._orders[int(info["orderId"])] = (symbol, side.upper(), qty)
        return self._result(m, info)

    async def market(self, symbol: str, side: str, qty: int, *,
                     reduce_only: bool = False) -> dict[str, Any]:
        return await self.place(symbol, side, qty, type="MARKET", reduce_only=reduce_only)

    async def cancel(self, symbol: str, order_id: int) -> dict[str, Any]:
        m = self._market(symbol)
        order = await self._call("order.cancel", self.exchange.cancel_order(
            str(order_id), m.symbol))
        return self._result(m, order["info"])

    async def amend(self, symbol: str, order_id: int, *, price: int) -> dict[str, Any]:
        """Binance's modify: the order's side and whole size stay, the price moves."""
        m = self._market(symbol)
        known = self._orders.get(order_id)
        if known is None:
            found = await self._call("order.amend", self.exchange.fetch_order(
                str(order_id), m.symbol))
            known = (symbol, str(found["info"]["side"]), m.lots(found["info"]["origQty"]))
            self._orders[order_id] = known
        _, side, lots = known
        order = await self._call("order.amend", self.exchange.edit_order(
            str(order_id), m.symbol, "limit", side.lower(), m.qty(lots), m.price(price)))
        return self._result(m, order["info"])

    async def cancel_all(self, symbol: str) -> int:
        m = self._market(symbol)
        found = await self._call("order.cancelAll", self.exchange.fetch_open_orders(m.symbol))
        await self._call("order.cancelAll", self.exchange.cancel_all_orders(m.symbol))
        return len(found)

    async def batch(self, orders: Iterable[tuple[str, dict[str, Any]]]
                    ) -> list[dict[str, Any] | RequestError]:
        """Each op as its own request, all at once; each item its result or its error."""
        calls = []
        for op, a in orders:
            if op == "order.place" and "triggerPrice" not in a:
                calls.append(self.place(a["symbol"], a["side"], a["qty"], a.get("price"),
                                        type=a.get("type", "LIMIT"),
                                        tif=a.get("timeInForce", "GTC"),
                                        reduce_only=a.get("reduceOnly", False),
                                        client_order_id=a.get("clientOrderId")))
            elif op == "order.cancel":
                calls.append(self.cancel(a["symbol"], a["orderId"]))
            elif op == "order.amend" and set(a) == {"symbol", "orderId", "price"}:
                calls.append(self.amend(a["symbol"], a["orderId"], price=a["price"]))
            else:
                raise ValueError(f"{op} {sorted(a)}: not supported over the Binance API")
        results = await asyncio.gather(*calls, return_exceptions=True)
        out: list[dict[str, Any] | RequestError] = []
        for r in results:
            if isinstance(r, RequestError | dict):
                out.append(r)
            else:
                raise r
        return out

    def _result(self, m: _Market, info: dict[str, Any]) -> dict[str, Any]:
        """An order answer in the native shape."""
        return {"orderId": int(info["orderId"]), "symbol": m.native,
                "clientOrderId": info.get("clientOrderId"), "status": info["status"],
                "price": m.ticks(info.get("price") or "0"),
                "filledQty": m.lots(info.get("executedQty") or "0"),
                "remainingQty": m.lots(info["origQty"]) - m.lots(info["executedQty"])}

    # -- account ---------------------------------------------------------------------------------

    async def balance(self) -> dict[str, Any]:
        b = await self._call("account.balance", self.exchange.fetch_balance())
        assets = {a["asset"]: a for a in b["info"].get("assets", ())}
        usdt = assets.get("USDT", {})
        return {"balance": _usd(usdt.get("walletBalance")),
                "equity": _usd(usdt.get("marginBalance")),
                "available": _usd(usdt.get("availableBalance"))}

    async def position(self, symbol: str) -> dict[str, Any] | None:
        m = self._market(symbol)
        rows = await self._call("account.positions", self.exchange.fetch_positions([m.symbol]))
        for p in rows:
            position = self._position(p["info"])
            if position is not None and position["symbol"] == symbol:
                return position
        return None

    def _position(self, info: dict[str, Any]) -> dict[str, Any] | None:
        """A position (a REST row or an ACCOUNT_UPDATE entry) in the native shape."""
        m = self.by_id.get(str(info.get("symbol") or info.get("s")))
        if m is None:
            return None
        size = info.get("positionAmt", info.get("pa", "0"))
        mode = str(info.get("marginType", info.get("mt", "cross"))).lower()
        out: dict[str, Any] = {
            "symbol": m.native, "size": m.lots(size),
            "entryPrice": m.ticks(info.get("entryPrice", info.get("ep", "0"))),
            "unrealizedPnl": _usd(info.get("unRealizedProfit", info.get("up"))),
            "marginMode": "isolated" if mode.startswith("isolated") else "cross"}
        if info.get("leverage") is not None:
            out["leverage"] = int(info["leverage"])
        return out

    async def set_leverage(self, symbol: str, leverage: int) -> dict[str, Any]:
        m = self._market(symbol)
        result = await self._call("account.setLeverage",
                                  self.exchange.set_leverage(leverage, m.symbol))
        return {"symbol": symbol, "leverage": int(result.get("leverage", leverage))}

    async def set_margin_mode(self, symbol: str, mode: str) -> dict[str, Any]:
        m = self._market(symbol)
        await self._call("account.setMarginMode",
                         self.exchange.set_margin_mode(mode.lower(), m.symbol))
        return {"symbol": symbol, "mode": mode}

    # -- pushes ----------------------------------------------------------------------------------

    def add_handler(self, channel: str, handler: Callable[[Push], Any]) -> None:
        self._handlers.setdefault(channel, []).append(handler)

    def remove_handler(self, channel: str, handler: Callable[[Push], Any]) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._handlers[channel].remove(handler)

    async def subscribe(self, channels: Iterable[str]) -> list[str]:
        """Start a ccxt.pro watcher per channel (``mark.<s>``, ``trades.<s>``, ``fills``,
        ``orders``, ``positions``, ``account``)."""
        names = list(channels)
        for ch in names:
            kind, _, symbol = ch.partition(".")
            if kind in ("mark", "trades"):
                self._market(symbol)
            elif kind not in ("fills", "orders", "positions", "account") or symbol:
                raise RequestError(int(G.UNKNOWN_TOPIC), f"no channel {ch!r} over the "
                                   "Binance API", "subscribe")
        for ch in names:
            if ch not in self._watchers:
                self._watchers[ch] = asyncio.create_task(self._watch(ch), name=f"watch {ch}")
        if any("." not in ch for ch in names):
            await self._user_stream_open()
        return names

    async def _user_stream_open(self) -> None:
        """Wait until ccxt.pro's user data stream (its URL holds the listen key) is
        connected: from then on, the account's events reach the watchers."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + OPEN_TIMEOUT
        while not any("listenKey" in url and client.connected.done()
                      for url, client in list(self.exchange.clients.items())):
            self.raise_if_closed()
            if loop.time() > deadline:
                raise ConnectionLost(f"{self.url}: the user data stream did not open in "
                                     f"{OPEN_TIMEOUT:g} s")
            await asyncio.sleep(0.01)

    def _push(self, ch: str, data: dict[str, Any]) -> None:
        push = {"ch": ch, "data": data}
        for handler in list(self._handlers.get(ch, ())):
            try:
                handler(push)
            except Exception:
                log.exception("a push handler failed")

    async def _watch(self, ch: str) -> None:
        import ccxt

        kind, _, symbol = ch.partition(".")
        ex = self.exchange
        try:
            while not self._closed:
                if kind == "mark":
                    m = self.markets[symbol]
                    t = await ex.watch_mark_price(m.symbol)
                    info = t["info"]
                    self._push(ch, {"symbol": symbol, "mark": m.ticks(info["p"]),
                                    "index": m.ticks(info["i"])})
                elif kind == "trades":
                    m = self.markets[symbol]
                    for t in await ex.watch_trades(m.symbol):
                        self._push(ch, {"symbol": symbol, "price": m.ticks(t["info"]["p"]),
                                        "qty": m.lots(t["info"]["q"])})
                elif kind == "fills":
                    for t in await ex.watch_my_trades():
                        self._on_fill(t["info"])
                elif kind == "orders":
                    for o in await ex.watch_orders():
                        self._on_order(o["info"])
                elif kind == "positions":
                    for p in await ex.watch_positions():
                        position = self._position(p["info"])
                        if position is not None:
                            self._push(ch, position)
                else:
                    wallet = _wallet(await ex.watch_balance())
                    if wallet is not None:
                        self._push(ch, {"type": "balance", "balance": wallet})
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # ccxt's errors, or a message this client cannot read
            if not self._closed:
                kind = "" if isinstance(exc, ccxt.BaseError) else f"{type(exc).__name__}: "
                self._failure = f"{self.url}: {ch}: {kind}{exc}"

    def _on_fill(self, o: dict[str, Any]) -> None:
        m = self.by_id.get(str(o.get("s")))
        if m is None or o.get("x") != "TRADE":
            return
        self._push("fills", {
            "symbol": m.native, "orderId": int(o["i"]), "side": o["S"],
            "qty": m.lots(o["l"]), "price": m.ticks(o["L"]), "fee": _usd(o.get("n")),
            "role": "maker" if o.get("m") else "taker", "tradeId": int(o.get("t") or 0)})

    def _on_order(self, o: dict[str, Any]) -> None:
        m = self.by_id.get(str(o.get("s")))
        if m is None:
            return
        oid, name = int(o["i"]), str(o.get("c", ""))
        base = {"symbol": m.native, "orderId": oid, "side": o.get("S"),
                "qty": m.lots(o.get("q") or "0")}
        if name.startswith(LIQUIDATION_ID) and _first(self._seen["liquidations"], name):
            number = name.removeprefix(LIQUIDATION_ID)
            self._push("orders", {**base, "type": "accepted",
                                  "liquidationId": int(number) if number.isdigit() else 0})
        if o.get("X") in ("CANCELED", "EXPIRED") and _first(self._seen["canceled"], oid):
            self._orders.pop(oid, None)
            self._push("orders", {**base, "type": "canceled"})
        elif o.get("X") == "FILLED":
            self._orders.pop(oid, None)


def _first(seen: dict[Any, None], key: Any) -> bool:
    """True the first time ``key`` is seen (the last ``SEEN`` keys are remembered)."""
    if key in seen:
        return False
    seen[key] = None
    if len(seen) > SEEN:
        del seen[next(iter(seen))]
    return True


def _wallet(b: dict[str, Any]) -> int | None:
    """The USDT wallet of a balance update, from its raw ACCOUNT_UPDATE (``a.B[].wb``)."""
    info = b.get("info") or {}
    for row in (info.get("a") or {}).get("B", ()):
        if row.get("a") == "USDT":
            return _usd(row.get("wb"))
    return None


def point(exchange: Any, url: str) -> None:
    """Point every REST group and every stream URL of a ccxt Binance exchange at ``url``
    (``http://host:port``): ccxt merges the groups, and one left out would go to Binance."""
    base = url.rstrip("/")
    for group, address in list(exchange.urls["api"].items()):
        if isinstance(address, str):
            exchange.urls["api"][group] = base + urlparse(address).path
    ws = "ws" + base.removeprefix("http")
    for group, address in list(exchange.urls["api"]["ws"].items()):
        if isinstance(address, str):
            exchange.urls["api"]["ws"][group] = ws + urlparse(address).path
