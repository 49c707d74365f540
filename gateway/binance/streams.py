"""Binance's market streams on the facade's port: raw (``/ws/<stream>``), combined
(``/stream?streams=a/b``, each event wrapped ``{"stream", "data"}``), and live ``SUBSCRIBE`` /
``UNSUBSCRIBE`` / ``LIST_SUBSCRIPTIONS`` on any of ``/ws``, ``/public/ws``, ``/market/ws``
(ccxt 4.5's layout).

Events are made once per sequencer batch, after the batch is on disk (``Streams.publish``, the
server's hook), from the venue as the batch left it and from what the tape recorded:

* ``<s>@depth`` (also ``@100ms``, ``@500ms``: every batch that changed the book, faster than
  Binance's conflation): ``depthUpdate`` with the levels that changed (absolute sizes, "0":
  gone), ``u`` = the venue's sequence number at the batch's end, ``pu`` = the previous
  event's ``u``, and ``U`` = ``pu`` (the levels are absolute: see ``_book_events``). A REST
  depth snapshot's ``lastUpdateId`` is the sequence number it was read at, so Binance's
  local-book procedure applies as written.
* ``<s>@depth5`` / ``10`` / ``20``: the top levels, each batch that changed the book.
* ``<s>@bookTicker``: the best bid and ask, when they changed.
* ``<s>@trade``, ``<s>@aggTrade``: every trade, every aggregate trade.
* ``<s>@markPrice`` (``@1s``): mark, index, funding estimate, next funding time, once a
  second of venue time.
* ``<s>@kline_<interval>``: the interval's current bar after each batch with trades in it
  (``x`` false), and once more when the interval has ended (``x`` true); as the REST
  ``klines``, only intervals with trades.
* ``<s>@forceOrder``, ``!forceOrder@arr``: **every** liquidation slice (Binance sends at most
  one a second per symbol; this tape is complete).

The user data stream (by listen key) gets ``ORDER_TRADE_UPDATE``, ``ACCOUNT_UPDATE`` and
``MARGIN_CALL``: the account's cross margin, or one of its isolated positions, entered the
zone where the maintenance margin is ``MARGIN_CALL_PERCENT`` of its margin balance or more
(liquidation comes at 100%). It is sent once on entering, and again only after the ratio fell
back below the line and crossed it anew.

Each connection's queue is bounded: a client that does not read is closed (1008). A
connection may send 10 messages a second and hold 1,024 streams, as on Binance.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections import deque
from fractions import Fraction
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from gaemi.gateway.binance.auth import Signer
from gaemi.gateway.binance.errors import BinanceError, json_response
from gaemi.gateway.binance.tape import KLINE_MINUTES, MINUTE_MS, NS_PER_MS, Candle, Tape, bar_of
from gaemi.gateway.binance.units import (
    BinanceSymbols,
    average_text,
    lots_text,
    price_text,
    rate_text,
    usd_text,
)
from gaemi.risk.venue import Venue

__all__ = ["MAX_QUEUED", "Streams"]

MAX_QUEUED = 10_000  # events waiting for one connection before it is closed as too slow
MAX_BYTES = 4 * 1024 * 1024  # ... or bytes (the native protocol's outbox limit)
MAX_STREAMS = 1_024
MESSAGES_PER_SECOND = 10
LISTEN_KEY_MS = 60 * 60_000  # a listen key lives an hour after its last keep-alive
MAX_CONNECTIONS = 1_024  # stream connections in all (the native server's default limits)
MAX_PER_ADDRESS = 64  # ... and from one address
BOOK_LEVELS = 1_000
MARGIN_CALL_PERCENT = 80  # maintenance margin / margin balance that triggers MARGIN_CALL
_KINDS = ("depth", "depth@100ms", "depth@500ms", "depth5", "depth10", "depth20",
          "depth5@100ms", "depth10@100ms", "depth20@100ms", "depth5@500ms", "depth10@500ms",
          "depth20@500ms", "bookTicker", "trade", "aggTrade", "markPrice", "markPrice@1s",
          "forceOrder")


class _Client:
    __slots__ = ("ws", "streams", "combined", "queue", "queued_bytes", "ready", "closing",
                 "stamps", "account", "listen_key")

    def __init__(self, ws: web.WebSocketResponse, combined: bool) -> None:
        self.ws = ws
        self.account: int | None = None  # a user data stream's account
        self.listen_key: str | None = None
        self.streams: set[str] = set()
        self.combined = combined
        self.queue: deque[str] = deque()
        self.queued_bytes = 0
        self.ready = asyncio.Event()
        self.closing: tuple[int, str] | None = None
        self.stamps: deque[int] = deque()  # ms of the messages of the last second


class _Book:
    """A symbol's depth stream: the levels last published and the last event's ``u``."""

    __slots__ = ("bids", "asks", "u", "best")

    def __init__(self, venue: Venue, symbol: str) -> None:
        bids, asks = venue.book(symbol).depth(BOOK_LEVELS)
        self.bids = dict(bids)
        self.asks = dict(asks)
        self.u = venue.seq
        self.best = _best(self.bids, self.asks)


class Streams:
    def __init__(self, facade: Any, tape: Tape, signer: Signer) -> None:
        self.f = facade
        self.tape = tape
        self.signer = signer
        self.listen_keys: dict[str, tuple[int, int]] = {}  # key -> (account, expiry ms)
        self.per_address: dict[str, int] = {}  # open stream connections per client address
        self.clients: set[_Client] = set()
        self.books: dict[str, _Book] = {}
        self.trade_ids: dict[str, int] = {}  # symbol -> the last trade id published
        self.agg_ids: dict[str, int] = {}
        self.liquidations = 0  # liquidation slices published (the tape's running count)
        self.mark_second: dict[str, int] = {}
        self.margin_called: dict[int, frozenset[str]] = {}  # account -> parts in the zone
        self.klines: dict[str, tuple[int, int]] = {}  # stream -> (bar sent, its trades)

    # -- connections --------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        address = request.remote or ""
        if len(self.clients) >= MAX_CONNECTIONS or \
                self.per_address.get(address, 0) >= MAX_PER_ADDRESS:
            raise BinanceError(-1003, "Too many websocket connections.", 429)
        ws = web.WebSocketResponse(heartbeat=180, max_msg_size=64 * 1024)
        await ws.prepare(request)
        combined = request.path.startswith("/stream")
        client = _Client(ws, combined)
        names = []
        key = request.query.get("listenKey") if request.path.startswith("/private/ws") else \
            request.match_info.get("tail") if request.match_info.get("tail") in \
            self.listen_keys else None
        if request.path.startswith("/private/ws") or key is not None:
            account = self._account_of(key)
            if account is None:
                await ws.close(code=1008, message=b"invalid or expired listenKey")
                return ws
            client.account, client.listen_key = account, key
            self.tape.listening.add(account)
        elif combined:
            names = [n for n in request.query.get("streams", "").split("/") if n]
        elif request.match_info.get("tail") and request.path.startswith("/ws/"):
            names = request.match_info["tail"].split("/")
        for name in names:
            if not self._valid(name):
                await ws.close(code=1008, message=f"unknown stream {name[:40]}".encode())
                return ws
        client.streams.update(names)
        self.clients.add(client)
        self.per_address[address] = self.per_address.get(address, 0) + 1
        self._start_books(names)
        writer = asyncio.create_task(self._write(client))
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    client.closing = (1003, "text frames only")
                    break
                if not self._allowed(client):
                    client.closing = (1008, "more than 10 messages a second")
                    break
                reply = self._request(client, msg.data)
                self._send(client, orjson.dumps(reply).decode())
        finally:
            self.clients.discard(client)
            left = self.per_address.get(address, 1) - 1
            if left:
                self.per_address[address] = left
            else:
                self.per_address.pop(address, None)
            if client.account is not None and not any(
                    c.account == client.account for c in self.clients):
                self.tape.listening.discard(client.account)
            client.ready.set()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            if not ws.closed:
                code, why = client.closing or (1000, "")
                await ws.close(code=code, message=why.encode())
        return ws

    # -- the user data stream's keys --------------------------------------------------------------

    def _expire_keys(self) -> None:
        """Drop the keys whose hour ran out; their connections get ``listenKeyExpired`` and
        are closed, as on Binance."""
        now = self.f.now_ms()
        for key in [k for k, (_, expiry) in self.listen_keys.items() if expiry < now]:
            del self.listen_keys[key]
            self._end_key(key, now, "listenKey expired")

    def _end_key(self, key: str, now: int, why: str) -> None:
        for client in self.clients:
            if client.listen_key == key:
                self._send(client, orjson.dumps({"e": "listenKeyExpired", "E": now,
                                                 "listenKey": key}).decode())
                client.closing = (1000, why)
                client.ready.set()

    def _account_of(self, key: str | None) -> int | None:
        entry = self.listen_keys.get(key or "")
        if entry is None or entry[1] < self.f.now_ms():
            return None
        return entry[0]

    async def listen_key(self, request: web.Request) -> web.Response:
        """POST: the account's key (a new one, or the live one, its hour renewed); PUT: keep
        it alive another hour; DELETE: close it. Binance: the API key header only."""
        account = self.signer.key(request.headers.get("X-MBX-APIKEY")).account_id
        now = self.f.now_ms()
        self._expire_keys()
        live = next((k for k, (a, expiry) in self.listen_keys.items()
                     if a == account and expiry >= now), None)
        if request.method == "POST":
            key = live or secrets.token_urlsafe(48)[:64]
            self.listen_keys[key] = (account, now + LISTEN_KEY_MS)
            return json_response({"listenKey": key})
        if live is None:
            raise BinanceError(-1125, "This listenKey does not exist.")
        if request.method == "PUT":
            self.listen_keys[live] = (account, now + LISTEN_KEY_MS)
            return json_response({"listenKey": live})
        del self.listen_keys[live]
        self._end_key(live, now, "listenKey closed")
        return json_response({})

    def _allowed(self, client: _Client) -> bool:
        """At most 10 messages in any second of the server's clock."""
        now = self.f.now_ms()
        stamps = client.stamps
        stamps.append(now)
        while stamps and stamps[0] <= now - 1_000:
            stamps.popleft()
        return len(stamps) <= MESSAGES_PER_SECOND

    async def _write(self, client: _Client) -> None:
        ws, queue = client.ws, client.queue
        try:
            while client in self.clients or queue:
                await client.ready.wait()
                client.ready.clear()
                while queue:
                    frame = queue.popleft()
                    client.queued_bytes -= len(frame)
                    await ws.send_str(frame)
                if client.closing is not None:
                    await ws.close(code=client.closing[0], message=client.closing[1].encode())
                    return
        except (ConnectionResetError, RuntimeError):
            pass

    def _send(self, client: _Client, frame: str) -> None:
        if client.closing is not None:
            return
        if len(client.queue) >= MAX_QUEUED or client.queued_bytes + len(frame) > MAX_BYTES:
            client.queue.clear()
            client.queued_bytes = 0
            client.closing = (1008, "slow consumer")
        else:
            client.queue.append(frame)
            client.queued_bytes += len(frame)
        client.ready.set()

    def _request(self, client: _Client, text: str) -> dict[str, Any]:
        try:
            message = orjson.loads(text)
        except orjson.JSONDecodeError:
            return {"error": {"code": 3, "msg": "Invalid JSON"}, "id": None}
        if not isinstance(message, dict):
            return {"error": {"code": 2, "msg": "Invalid request"}, "id": None}
        rid = message.get("id")
        if not (rid is None or type(rid) is int or (type(rid) is str and len(rid) <= 64)):
            return {"error": {"code": 1, "msg": "Invalid value type: id"}, "id": None}
        method = message.get("method")
        params = message.get("params", [])
        if method == "LIST_SUBSCRIPTIONS":
            return {"result": sorted(client.streams), "id": rid}
        if method not in ("SUBSCRIBE", "UNSUBSCRIBE"):
            return {"error": {"code": 2, "msg": "Invalid request: method"}, "id": rid}
        if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
            return {"error": {"code": 1, "msg": "Invalid value type: params"}, "id": rid}
        bad = next((p for p in params if not self._valid(p)), None)
        if bad is not None:
            return {"error": {"code": 2, "msg": f"Invalid request: unknown stream "
                                                f"{bad[:40]}"}, "id": rid}
        if method == "SUBSCRIBE":
            if len(client.streams | set(params)) > MAX_STREAMS:
                return {"error": {"code": 2, "msg": "Invalid request: more than 1024 streams"},
                        "id": rid}
            client.streams.update(params)
            self._start_books(params)
        else:
            client.streams.difference_update(params)
        return {"result": None, "id": rid}

    def _valid(self, name: str) -> bool:
        if name == "!forceOrder@arr":
            return True
        symbol, _, kind = name.partition("@")
        known = kind in _KINDS or kind.removeprefix("kline_") in KLINE_MINUTES
        return known and symbol.upper() in self.f.symbols().to_venue and \
            symbol == symbol.lower()

    def _start_books(self, names: list[str]) -> None:
        venue = self.f.venue()
        for name in names:
            symbol, _, kind = name.partition("@")
            if kind.startswith("depth") or kind == "bookTicker":
                s = self.f.symbols().to_venue[symbol.upper()]
                if s not in self.books:
                    self.books[s] = _Book(venue, s)

    # -- publishing -----------------------------------------------------------------------------

    def publish(self) -> None:
        """Make and queue the events of the batch that just ended (the server calls it)."""
        if self.listen_keys:
            self._expire_keys()
        if not self.clients:  # nothing to send: only move past what was recorded
            self.books.clear()
            self.tape.private, self.tape.moved = [], {}
            for s, market in self.tape.markets.items():
                if market.trades:
                    self.trade_ids[s] = market.trades[-1].trade_id
                if market.aggs:
                    self.agg_ids[s] = market.aggs[-1].agg_id
            self.liquidations = self.tape.liquidations_seen
            self.margin_called.clear()
            self.klines.clear()
            return
        venue = self.f.venue()
        symbols: BinanceSymbols = self.f.symbols()
        wanted: dict[str, list[_Client]] = {}
        for client in self.clients:
            for name in client.streams:
                wanted.setdefault(name, []).append(client)
        events: dict[str, list[dict[str, Any]]] = {}
        ms = venue.time // NS_PER_MS
        for s in venue.symbols:
            lower = symbols.to_binance[s].lower()
            spec = venue.spec(s)
            book = self.books.get(s)
            if book is not None:
                self._book_events(venue, s, lower, spec, book, ms, events)
            self._trade_events(s, lower, spec, ms, events, wanted)
            self._kline_events(s, lower, spec, ms, events, wanted)
            if lower + "@markPrice" in wanted or lower + "@markPrice@1s" in wanted:
                second = venue.time // 1_000_000_000
                if self.mark_second.get(s) != second:
                    self.mark_second[s] = second
                    m = venue.market(s)
                    mark = {"e": "markPriceUpdate", "E": ms, "s": symbols.to_binance[s],
                            "p": price_text(m.mark or 0, spec), "i": price_text(m.index or 0, spec),
                            "P": price_text(m.index or 0, spec),
                            "r": rate_text(m.funding_rate), "T": m.next_funding_ts // NS_PER_MS}
                    events[lower + "@markPrice"] = [mark]
                    events[lower + "@markPrice@1s"] = [mark]
        self._liquidation_events(venue, ms, events)
        users: dict[int, list[_Client]] = {}
        for client in self.clients:
            if client.account is not None:
                users.setdefault(client.account, []).append(client)
        self._user_events(venue, ms, users)
        self._margin_calls(venue, ms, users)
        for name, clients in wanted.items():
            for event in events.get(name, ()):
                data = orjson.dumps(event).decode()
                wrapped = None
                for client in clients:
                    if client.combined and wrapped is None:
                        wrapped = orjson.dumps({"stream": name, "data": event}).decode()
                    self._send(client, wrapped if client.combined and wrapped else data)
        for name in [n for n in self.klines if n not in wanted]:
            del self.klines[name]  # nobody follows it: a new follower starts afresh
        for s in [s for s in self.books if not any(
                n.startswith(symbols.to_binance[s].lower() + "@") for n in wanted)]:
            del self.books[s]

    def _book_events(self, venue: Venue, s: str, lower: str, spec: Any, book: _Book, ms: int,
                     events: dict[str, list[dict[str, Any]]]) -> None:
        if s not in self.tape.touched:
            return
        bids, asks = venue.book(s).depth(BOOK_LEVELS)
        new_bids, new_asks = dict(bids), dict(asks)
        b = _diff(book.bids, new_bids, reverse=True)
        a = _diff(book.asks, new_asks, reverse=False)
        name = self.f.symbols().to_binance[s]
        if b or a:
            u = venue.seq
            # U = pu, not pu + 1: the levels are absolute, so the event may be applied on a
            # snapshot read at pu itself (a new stream's first event, or a snapshot read
            # right after the previous event), and Binance's check U <= lastUpdateId <= u
            # then holds for any snapshot between two events
            diff = {"e": "depthUpdate", "E": ms, "T": ms, "s": name, "U": book.u, "u": u,
                    "pu": book.u, "b": [[price_text(p, spec), lots_text(q, spec)] for p, q in b],
                    "a": [[price_text(p, spec), lots_text(q, spec)] for p, q in a]}
            for kind in ("depth", "depth@100ms", "depth@500ms"):
                events[f"{lower}@{kind}"] = [diff]
            for n in (5, 10, 20):
                top = {**diff, "b": [[price_text(p, spec), lots_text(q, spec)]
                                     for p, q in bids[:n]],
                       "a": [[price_text(p, spec), lots_text(q, spec)] for p, q in asks[:n]]}
                for suffix in ("", "@100ms", "@500ms"):
                    events[f"{lower}@depth{n}{suffix}"] = [top]
            book.bids, book.asks, book.u = new_bids, new_asks, u
        best = _best(new_bids, new_asks)
        if best != book.best:
            book.best = best
            bid, bid_qty, ask, ask_qty = best
            events[f"{lower}@bookTicker"] = [{
                "e": "bookTicker", "u": venue.seq, "E": ms, "T": ms, "s": name,
                "b": price_text(bid, spec), "B": lots_text(bid_qty, spec),
                "a": price_text(ask, spec), "A": lots_text(ask_qty, spec)}]

    def _trade_events(self, s: str, lower: str, spec: Any, ms: int,
                      events: dict[str, list[dict[str, Any]]],
                      wanted: dict[str, list[_Client]]) -> None:
        market = self.tape.markets[s]
        name = self.f.symbols().to_binance[s]
        last = self.trade_ids.get(s, 0)
        if market.trades and market.trades[-1].trade_id != last:
            fresh = []
            for t in reversed(market.trades):
                if t.trade_id <= last:
                    break
                fresh.append(t)
            fresh.reverse()
            self.trade_ids[s] = market.trades[-1].trade_id
            if lower + "@trade" in wanted and fresh:
                events[lower + "@trade"] = [{
                    "e": "trade", "E": ms, "T": t.ms, "s": name, "t": t.trade_id,
                    "p": price_text(t.price, spec), "q": lots_text(t.qty, spec), "X": "MARKET",
                    "m": t.buyer_is_maker} for t in fresh]
        last_agg = self.agg_ids.get(s, 0)
        if market.aggs and market.aggs[-1].agg_id != last_agg:
            fresh_aggs = []
            for a in reversed(market.aggs):
                if a.agg_id <= last_agg:
                    break
                fresh_aggs.append(a)
            fresh_aggs.reverse()
            self.agg_ids[s] = market.aggs[-1].agg_id
            if lower + "@aggTrade" in wanted and fresh_aggs:
                events[lower + "@aggTrade"] = [{
                    "e": "aggTrade", "E": ms, "a": a.agg_id, "s": name,
                    "p": price_text(a.price, spec), "q": lots_text(a.qty, spec),
                    "f": a.first_id, "l": a.last_id, "T": a.ms, "m": a.buyer_is_maker}
                    for a in fresh_aggs]

    def _kline_events(self, s: str, lower: str, spec: Any, ms: int,
                      events: dict[str, list[dict[str, Any]]],
                      wanted: dict[str, list[_Client]]) -> None:
        candles = self.tape.markets[s].candles
        for name in wanted:
            if not name.startswith(lower + "@kline_"):
                continue
            interval = name[len(lower) + 7:]
            width = KLINE_MINUTES[interval] * MINUTE_MS
            now_bar = self.f.venue_ms() - self.f.venue_ms() % width
            sent_bar, sent_trades = self.klines.get(name, (now_bar, 0))
            out = []
            if sent_bar != now_bar and sent_trades:  # the bar last sent has ended: final
                final = bar_of(candles, sent_bar, width)
                if final is not None:
                    out.append(self._kline(s, interval, width, final, True, ms, spec))
            bar = bar_of(candles, now_bar, width)
            trades = bar.trades if bar is not None else 0
            if bar is not None and (sent_bar != now_bar or trades != sent_trades):
                out.append(self._kline(s, interval, width, bar, False, ms, spec))
            self.klines[name] = (now_bar, trades)
            if out:
                events[name] = out

    def _kline(self, s: str, interval: str, width: int, b: Candle, closed: bool, ms: int,
               spec: Any) -> dict[str, Any]:
        name = self.f.symbols().to_binance[s]
        return {"e": "kline", "E": ms, "s": name, "k": {
            "t": b.open_ms, "T": b.open_ms + width - 1, "s": name, "i": interval,
            "f": b.first_id, "L": b.last_id, "o": price_text(b.open, spec),
            "c": price_text(b.close, spec), "h": price_text(b.high, spec),
            "l": price_text(b.low, spec), "v": lots_text(b.volume, spec), "n": b.trades,
            "x": closed, "q": usd_text(b.quote), "V": lots_text(b.taker_buy_volume, spec),
            "Q": usd_text(b.taker_buy_quote), "B": "0"}}

    def _liquidation_events(self, venue: Venue, ms: int,
                            events: dict[str, list[dict[str, Any]]]) -> None:
        tape = self.tape
        fresh = tape.liquidations_seen - self.liquidations
        self.liquidations = tape.liquidations_seen
        if fresh <= 0:
            return
        recent = list(tape.liquidations)[-min(fresh, len(tape.liquidations)):]
        for e in recent:
            spec = venue.spec(e.symbol)
            name = self.f.symbols().to_binance[e.symbol]
            event = {"e": "forceOrder", "E": ms, "o": {
                "s": name, "S": "SELL" if e.side < 0 else "BUY", "o": "LIMIT", "f": "IOC",
                "q": lots_text(e.qty, spec), "p": price_text(e.bankruptcy_price, spec),
                "ap": price_text(e.price, spec), "X": "FILLED", "l": lots_text(e.qty, spec),
                "z": lots_text(e.qty, spec), "T": ms}}
            events.setdefault(name.lower() + "@forceOrder", []).append(event)
            events.setdefault("!forceOrder@arr", []).append(event)

    def _user_events(self, venue: Venue, ms: int, users: dict[int, list[_Client]]) -> None:
        tape = self.tape
        private, moved = tape.private, tape.moved
        tape.private, tape.moved = [], {}
        if not private and not moved:
            return
        for account, r, kind, fill, event_ms in private:
            if account not in users:
                continue
            spec = venue.spec(r.symbol)
            o = {"s": self.f.symbols().to_binance[r.symbol],
                 "c": r.name,
                 "S": "BUY" if r.side > 0 else "SELL", "o": r.type, "f": r.time_in_force,
                 "q": lots_text(r.orig_qty, spec), "p": price_text(r.price or 0, spec),
                 "ap": average_text(Fraction(r.quote, r.executed * spec.multiplier), spec)
                 if r.executed else "0",
                 "sp": price_text(r.stop_price or 0, spec), "x": kind, "X": r.status,
                 "i": r.order_id, "l": lots_text(fill.qty if fill else 0, spec),
                 "z": lots_text(r.executed, spec),
                 "L": price_text(fill.price if fill else 0, spec),
                 "n": usd_text(_fee(fill, account)) if fill else "0", "N": "USDT",
                 "T": event_ms, "t": fill.trade_id if fill else 0, "b": "0", "a": "0",
                 "m": bool(fill and fill.maker_account == account and
                           fill.maker_order_id == r.order_id),
                 "R": r.reduce_only, "wt": "MARK_PRICE", "ot": r.type, "ps": "BOTH",
                 "cp": False, "rp": "0", "V": "NONE", "pm": "NONE", "gtd": 0}
            message = orjson.dumps({"e": "ORDER_TRADE_UPDATE", "E": ms, "T": event_ms,
                                    "o": o}).decode()
            for client in users[account]:
                self._send(client, message)
        for account, (reason, symbols) in moved.items():
            if account not in users:
                continue
            try:
                view = venue.account(account)
            except KeyError:
                continue
            positions = []
            for symbol in sorted(symbols):
                spec = venue.spec(symbol)
                p = view.positions.get(symbol)
                positions.append({
                    "s": self.f.symbols().to_binance[symbol],
                    "pa": ("-" if p is not None and p.size < 0 else "") +
                    lots_text(abs(p.size) if p is not None else 0, spec),
                    "ep": price_text(p.entry_price if p is not None else 0, spec),
                    "bep": price_text(p.entry_price if p is not None else 0, spec),
                    "cr": "0", "up": usd_text(p.unrealized_pnl if p is not None else 0),
                    "mt": "isolated" if p is not None and p.margin_mode == "isolated"
                    else "cross",
                    "iw": usd_text(p.isolated_margin if p is not None else 0), "ps": "BOTH"})
            message = orjson.dumps({"e": "ACCOUNT_UPDATE", "E": ms, "T": ms, "a": {
                "m": reason, "B": [{"a": "USDT", "wb": usd_text(view.balance),
                                     "cw": usd_text(_cross_wallet(view)), "bc": "0"}],
                "P": positions}}).decode()
            for client in users[account]:
                self._send(client, message)

    def _margin_calls(self, venue: Venue, ms: int, users: dict[int, list[_Client]]) -> None:
        """``MARGIN_CALL`` to each listening account whose cross margin, or an isolated
        position, entered the zone since the last batch (``MARGIN_CALL_PERCENT``)."""
        for account in [a for a in self.margin_called if a not in users]:
            del self.margin_called[account]
        for account, clients in users.items():
            try:
                view = venue.account(account)
            except KeyError:
                continue
            zone = _in_zone(view)
            entered = zone - self.margin_called.get(account, frozenset())
            if zone:
                self.margin_called[account] = zone
            else:
                self.margin_called.pop(account, None)
            if not entered:
                continue
            positions = []
            for symbol, p in sorted(view.positions.items()):
                part = symbol if p.margin_mode == "isolated" else CROSS
                if part not in entered:
                    continue
                spec = venue.spec(symbol)
                positions.append({
                    "s": self.f.symbols().to_binance[symbol], "ps": "BOTH",
                    "pa": ("-" if p.size < 0 else "") + lots_text(abs(p.size), spec),
                    "mt": "ISOLATED" if p.margin_mode == "isolated" else "CROSSED",
                    "iw": usd_text(p.isolated_margin),
                    "mp": price_text(venue.market(symbol).mark or 0, spec),
                    "up": usd_text(p.unrealized_pnl), "mm": usd_text(p.maintenance_margin)})
            message = orjson.dumps({"e": "MARGIN_CALL", "E": ms,
                                    "cw": usd_text(_cross_wallet(view)),
                                    "p": positions}).decode()
            for client in clients:
                self._send(client, message)

    async def close(self) -> None:
        for client in list(self.clients):
            client.closing = (1001, "server shutting down")
            client.ready.set()
            await client.ws.close(code=1001, message=b"server shutting down")


CROSS = ""  # the account's cross margin, as a part of ``_in_zone``


def _cross_wallet(view: Any) -> int:
    """The wallet of the cross margin: the balance less the isolated positions' margins."""
    return int(view.balance - sum(p.isolated_margin for p in view.positions.values()
                                  if p.margin_mode == "isolated"))


def _in_zone(view: Any) -> frozenset[str]:
    """The parts of an account (``CROSS``, or an isolated position's symbol) whose
    maintenance margin is ``MARGIN_CALL_PERCENT`` of their margin balance or more."""
    parts = set()
    equity, maint = view.equity, view.maintenance_margin
    for symbol, p in view.positions.items():
        if p.margin_mode != "isolated":
            continue
        balance = p.isolated_margin + p.unrealized_pnl
        equity -= balance
        maint -= p.maintenance_margin
        if p.maintenance_margin > 0 and 100 * p.maintenance_margin >= \
                MARGIN_CALL_PERCENT * balance:
            parts.add(symbol)
    if maint > 0 and 100 * maint >= MARGIN_CALL_PERCENT * equity:
        parts.add(CROSS)
    return frozenset(parts)


def _fee(fill: Any, account: int) -> int:
    """What ``account`` paid on ``fill`` (a maker rebate is negative)."""
    return int(fill.taker_fee if fill.taker_account == account else fill.maker_fee)


def _diff(old: dict[int, int], new: dict[int, int], *, reverse: bool) -> list[tuple[int, int]]:
    out = [(p, q) for p, q in new.items() if old.get(p) != q]
    out += [(p, 0) for p in old if p not in new]
    out.sort(reverse=reverse)
    return out


def _best(bids: dict[int, int], asks: dict[int, int]) -> tuple[int, int, int, int]:
    bid = max(bids) if bids else 0
    ask = min(asks) if asks else 0
    return bid, bids.get(bid, 0), ask, asks.get(ask, 0)

