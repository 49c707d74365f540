"""The Binance streams of the facade on a live server: a local book kept by Binance's documented
procedure (REST snapshot, buffered diffs by ``U``/``u``/``pu``) ends equal to the venue's after a
busy flow; the stock ccxt.pro ``watch_order_book`` and ``watch_trades`` agree with the venue;
mark prices, and every liquidation on ``forceOrder``; ``MARGIN_CALL`` on the user stream; bad
subscriptions get Binance's errors."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from typing import Any
from urllib.parse import urlparse

import ccxt.pro as ccxtpro
import pytest
from websockets.sync.client import ClientConnection, connect

from gaemi.engine.codes import Side
from gaemi.gateway.binance.units import lots_text, price_text, usd_text
from gaemi.risk import (
    CancelOrder,
    Deposit,
    PlaceOrder,
    SetIndexPrice,
    SetLeverage,
    SetMarginMode,
    Withdraw,
    usd,
)
from gaemi.risk.markets import PRESETS
from tests.gateway.live import SYM, LiveServer, live_server

NVDA = PRESETS[SYM]
BUY, SELL = Side.BUY, Side.SELL


def _run(live: LiveServer, *commands: Any) -> list[Any]:
    """Commands in one sequencer-like batch on the server's loop, then its stream events."""
    out: list[Any] = []

    def batch() -> None:
        for c in commands:
            out.extend(live.server.exchange.system(c))
        live.server.exchange.end_batch()
        live.server._publish_streams()
    live.on_loop(batch)
    return out


def _ws(live: LiveServer, path: str) -> ClientConnection:
    return connect(live.server.binance_url.replace("http", "ws") + path, open_timeout=10,
                   ping_interval=None).__enter__()


def _venue_book(live: LiveServer) -> tuple[dict[str, str], dict[str, str]]:
    bids, asks = live.on_loop(lambda: live.server.venue.book(SYM).depth(1000))
    return ({price_text(p, NVDA): lots_text(q, NVDA) for p, q in bids},
            {price_text(p, NVDA): lots_text(q, NVDA) for p, q in asks})


def _busy_flow(live: LiveServer, rng: random.Random, batches: int,
               between: Callable[[], None] = lambda: None) -> None:
    """Random resting orders, cancels and crossing orders from accounts 1-4, in batches."""
    resting: list[int] = []
    for _ in range(batches):
        commands: list[Any] = []
        for _ in range(rng.randint(1, 6)):
            roll = rng.random()
            account = rng.randint(1, 4)
            if roll < 0.2 and resting:
                commands.append(CancelOrder(account, SYM, resting.pop(rng.randrange(
                    len(resting))), None))
            else:
                side = rng.choice((BUY, SELL))
                offset = rng.randint(-15, 40) if roll < 0.8 else rng.randint(-40, -1)
                price = 10_000 - offset if side == BUY else 10_000 + offset
                commands.append(PlaceOrder(account, SYM, side, price, rng.randint(1, 500)))
        for e in _run(live, *commands):
            if type(e).__name__ == "OrderAccepted":
                resting.append(e.order_id)
        between()


def test_binances_local_book_procedure_ends_equal_to_the_venue() -> None:
    with live_server(binance_port=0) as live:
        rng = random.Random(7)
        _busy_flow(live, rng, 20)  # a book before anyone listens
        # 1. open the stream and buffer its events
        ws = _ws(live, "/ws/nvdausdt@depth@100ms")
        buffered: list[dict[str, Any]] = []

        def drain() -> None:
            while True:
                try:
                    buffered.append(json.loads(ws.recv(timeout=0.05)))
                except TimeoutError:
                    return
        _busy_flow(live, rng, 10, drain)
        # 2. the REST snapshot
        with urllib.request.urlopen(live.server.binance_url +
                                    "/fapi/v1/depth?symbol=NVDAUSDT&limit=1000") as r:
            snapshot = json.loads(r.read())
        _busy_flow(live, rng, 60, drain)
        # everything the stream sent: up to its last event (not a quiet spell, which a slow
        # machine could make)
        last_u = live.on_loop(lambda: live.server.streams.books[SYM].u)
        while not buffered or buffered[-1]["u"] < last_u:
            buffered.append(json.loads(ws.recv(timeout=10)))
        ws.close()

        # 3. Binance's procedure: drop u < lastUpdateId; the first applied has
        # U <= lastUpdateId <= u; each next one's pu is the previous u
        bids = dict(map(tuple, snapshot["bids"]))
        asks = dict(map(tuple, snapshot["asks"]))
        last = snapshot["lastUpdateId"]
        events = [e for e in buffered if e["u"] >= last]
        assert events and events[0]["U"] <= last <= events[0]["u"]
        previous = None
        for e in events:
            assert previous is None or e["pu"] == previous, "a gap in the stream"
            previous = e["u"]
            for side, levels in ((bids, e["b"]), (asks, e["a"])):
                for price, qty in levels:
                    if Decimal(qty) == 0:
                        side.pop(price, None)
                    else:
                        side[price] = qty

        # Assert: the local book is the venue's, level for level
        assert (bids, asks) == _venue_book(live)
        assert len(events) > 30


def _point(exchange: Any, base: str) -> None:
    for group, url in list(exchange.urls["api"].items()):
        if isinstance(url, str):
            exchange.urls["api"][group] = base + urlparse(url).path
    ws = base.replace("http", "ws")
    for group, url in list(exchange.urls["api"]["ws"].items()):
        if isinstance(url, str):
            exchange.urls["api"]["ws"][group] = ws + urlparse(url).path


def test_ccxt_pro_watches_the_venues_book_and_trades() -> None:
    with live_server(binance_port=0) as live:
        rng = random.Random(11)
        _busy_flow(live, rng, 20)

        async def main() -> tuple[dict[str, Any], list[Any]]:
            exchange = ccxtpro.binanceusdm({"options": {"fetchCurrencies": False}})
            _point(exchange, live.server.binance_url)
            loop = asyncio.get_running_loop()
            try:
                await exchange.load_markets()
                first = asyncio.ensure_future(exchange.watch_order_book("NVDA/USDT:USDT"))
                while not first.done():  # flow until ccxt has synced its book
                    await loop.run_in_executor(None, _busy_flow, live, rng, 1)
                    await asyncio.sleep(0.02)
                for _ in range(30):
                    await loop.run_in_executor(None, _busy_flow, live, rng, 1)
                    await asyncio.sleep(0.01)
                # a last change, and the book ccxt holds once it has seen it
                seq = await loop.run_in_executor(None, lambda: _run(
                    live, PlaceOrder(1, SYM, BUY, 9_000, 1)) and live.server.venue.seq)
                # (ccxt may have applied it already: then its cached book has it)
                book = exchange.orderbooks["NVDA/USDT:USDT"]
                while book["nonce"] < seq:
                    try:
                        book = await asyncio.wait_for(
                            exchange.watch_order_book("NVDA/USDT:USDT"), 1)
                    except TimeoutError:
                        book = exchange.orderbooks["NVDA/USDT:USDT"]
                trades_future = asyncio.ensure_future(exchange.watch_trades("NVDA/USDT:USDT"))
                while not trades_future.done():  # trades until ccxt has subscribed and seen one
                    await loop.run_in_executor(None, lambda: _run(
                        live, PlaceOrder(1, SYM, BUY, 9_000, 1),
                        PlaceOrder(4, SYM, SELL, 9_000, 1)))
                    await asyncio.sleep(0.02)
                return book, trades_future.result()
            finally:
                await exchange.close()

        book, trades = asyncio.run(main())

        # Assert: ccxt's book is the venue's at the same sequence number
        bids, asks = _venue_book(live)
        assert {price_text(round(Decimal(str(p)) * 100), NVDA): lots_text(
            round(Decimal(str(q)) * 100), NVDA) for p, q in book["bids"]} == bids
        assert {price_text(round(Decimal(str(p)) * 100), NVDA): lots_text(
            round(Decimal(str(q)) * 100), NVDA) for p, q in book["asks"]} == asks
        assert trades and trades[-1]["side"] == "sell"


def test_mark_prices_and_every_liquidation_are_streamed() -> None:
    with live_server(binance_port=0) as live:
        ws = _ws(live, "/stream?streams=nvdausdt@forceOrder/nvdausdt@markPrice@1s")
        # Arrange: account 9, $1,000 at 20x, long 200 shares at $100 from account 1's asks
        _run(live, Deposit(9, usd(1_000)), SetLeverage(9, SYM, 20),
             PlaceOrder(1, SYM, SELL, 10_000, 20_000), PlaceOrder(9, SYM, BUY, 10_000, 20_000),
             PlaceOrder(2, SYM, BUY, 9_000, 50_000))

        # Act: the index falls 8%: the long is liquidated; a second later, the mark update
        events = _run(live, SetIndexPrice(SYM, 9_200))
        live.tick(live.server.venue.time + 1_000_000_000)
        _run(live)
        liquidations = [e for e in events if type(e).__name__ == "Liquidation"]
        got: list[dict[str, Any]] = []
        while True:
            try:
                got.append(json.loads(ws.recv(timeout=1)))
            except TimeoutError:
                break
        ws.close()

        # Assert: one forceOrder per liquidation slice, wrapped as combined streams are
        forced = [m["data"]["o"] for m in got if m["stream"] == "nvdausdt@forceOrder"]
        assert liquidations and len(forced) == len(liquidations)
        assert [(o["S"], o["q"], o["ap"]) for o in forced] == [
            ("SELL", lots_text(e.qty, NVDA), price_text(e.price, NVDA)) for e in liquidations]
        marks = [m["data"] for m in got if m["stream"] == "nvdausdt@markPrice@1s"]
        assert marks and marks[-1]["i"] == "92"


@pytest.mark.parametrize(("message", "error"), [
    ('{"method": "SUBSCRIBE", "params": ["btcusdt@depth"], "id": 1}', 2),  # unknown symbol
    ('{"method": "SUBSCRIBE", "params": ["nvdausdt@nonsense"], "id": 2}', 2),
    ('{"method": "SUBSCRIBE", "params": ["NVDAUSDT@depth"], "id": 3}', 2),  # lower case only
    ('{"method": "SUBSCRIBE", "params": "nvdausdt@depth", "id": 4}', 1),
    ('{"method": "DANCE", "id": 5}', 2),
    ('not json', 3),
])
def test_bad_subscriptions_get_binances_errors_and_the_connection_stays(message: str,
                                                                         error: int) -> None:
    with live_server(binance_port=0) as live:
        ws = _ws(live, "/ws")
        ws.send(message)
        reply = json.loads(ws.recv(timeout=5))
        assert reply["error"]["code"] == error
        ws.send('{"method": "SUBSCRIBE", "params": ["nvdausdt@bookTicker"], "id": 9}')
        assert json.loads(ws.recv(timeout=5)) == {"result": None, "id": 9}
        ws.send('{"method": "LIST_SUBSCRIPTIONS", "id": 10}')
        assert json.loads(ws.recv(timeout=5)) == {"result": ["nvdausdt@bookTicker"], "id": 10}
        ws.close()


def test_more_than_ten_messages_a_second_closes_the_connection() -> None:
    # the server's clock stands still: the eleven messages fall in one second
    with live_server(binance_port=0, clock=lambda: 1_796_000_000_000_000_000) as live:
        ws = _ws(live, "/ws")
        for i in range(11):
            ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
        replies = []
        with pytest.raises(Exception):  # noqa: B017 (the close, in whichever form it comes)
            while True:
                replies.append(json.loads(ws.recv(timeout=5)))
        assert len(replies) == 10


def test_ccxt_pro_watches_its_orders_and_positions_on_the_user_stream() -> None:
    with live_server(binance_port=0) as live:
        key = live.server.keys["dev-3"]

        async def main() -> tuple[list[Any], list[Any]]:
            exchange = ccxtpro.binanceusdm({"apiKey": key.key, "secret": key.secret,
                                            "options": {"fetchCurrencies": False,
                                                        "recvWindow": 60_000}})
            _point(exchange, live.server.binance_url)
            loop = asyncio.get_running_loop()
            try:
                await exchange.load_markets()
                orders_future = asyncio.ensure_future(exchange.watch_orders("NVDA/USDT:USDT"))
                while not live.server.tape.listening:  # until the user stream is open
                    await asyncio.sleep(0.02)
                positions_future = asyncio.ensure_future(
                    exchange.watch_positions(["NVDA/USDT:USDT"]))
                await asyncio.sleep(0)
                # account 1 rests an ask; account 3 (ccxt's) buys 1.5 shares of it
                await loop.run_in_executor(None, lambda: _run(
                    live, PlaceOrder(1, SYM, SELL, 10_010, 400),
                    PlaceOrder(3, SYM, BUY, 10_010, 150, client_order_id="mine-1")))
                await asyncio.wait_for(orders_future, 10)
                await asyncio.wait_for(positions_future, 10)
                # the updates may come in more than one message: wait until ccxt's caches
                # hold the filled order and the position (each wait bounded)
                for _ in range(50):
                    orders = list(exchange.orders or [])
                    positions = [p for cache in (exchange.positions or {}).values()
                                 for p in cache]
                    if any(o["clientOrderId"] == "mine-1" and o["status"] == "closed"
                           for o in orders) and any(p["contracts"] for p in positions):
                        break
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(exchange.watch_orders("NVDA/USDT:USDT"), 0.2)
                return orders, positions
            finally:
                await exchange.close()

        orders, positions = asyncio.run(main())

        # Assert: ccxt parsed the venue's order as it filled, and the position it made
        mine = [o for o in orders if o["clientOrderId"] == "mine-1"]
        assert mine and mine[-1]["status"] == "closed" and mine[-1]["filled"] == 1.5
        assert mine[-1]["average"] == pytest.approx(100.10)
        position = [p for p in positions if p["symbol"] == "NVDA/USDT:USDT"][-1]
        assert position["contracts"] == 1.5 and position["side"] == "long"
        assert live.server.venue.account(3).positions[SYM].size == 150


def test_listen_keys_live_an_hour_and_can_be_closed() -> None:
    now = [1_796_000_000_000_000_000]
    with live_server(binance_port=0, clock=lambda: now[0]) as live:
        key = live.server.keys["dev-2"]

        def call(method: str) -> tuple[int, Any]:
            request = urllib.request.Request(live.server.binance_url + "/fapi/v1/listenKey",
                                             method=method, data=b"",
                                             headers={"X-MBX-APIKEY": key.key})
            try:
                with urllib.request.urlopen(request, timeout=10) as r:
                    return r.status, json.loads(r.read())
            except urllib.error.HTTPError as exc:
                return exc.code, json.loads(exc.read())

        status, first = call("POST")
        assert status == 200 and len(first["listenKey"]) == 64
        assert call("POST")[1] == first  # the live key again
        now[0] += 59 * 60 * 10**9
        assert call("PUT")[0] == 200  # kept alive for another hour
        now[0] += 59 * 60 * 10**9
        ws = _ws(live, "/private/ws?listenKey=" + first["listenKey"])
        ws.send('{"method": "LIST_SUBSCRIPTIONS", "id": 1}')
        assert json.loads(ws.recv(timeout=5)) == {"result": [], "id": 1}
        ws.close()
        assert call("DELETE") == (200, {})
        # a key left alone expires after its hour: its connection is told and closed
        status, second = call("POST")
        watcher = _ws(live, "/private/ws?listenKey=" + second["listenKey"])
        watcher.send('{"method": "LIST_SUBSCRIPTIONS", "id": 2}')
        assert json.loads(watcher.recv(timeout=5))["id"] == 2
        now[0] += 61 * 60 * 10**9
        live.tick(now[0])
        _run(live)  # the next batch's publish ends the key
        assert json.loads(watcher.recv(timeout=5)) == {
            "e": "listenKeyExpired", "E": now[0] // 1_000_000, "listenKey": second["listenKey"]}
        with pytest.raises(Exception):  # noqa: B017 (then the close)
            watcher.recv(timeout=5)
        assert live.server.streams.listen_keys == {}
        assert call("PUT")[1]["code"] == -1125
        with pytest.raises(Exception):  # noqa: B017 (closed: the key is gone)
            gone = _ws(live, "/private/ws?listenKey=" + first["listenKey"])
            gone.recv(timeout=5)


def test_one_address_may_hold_64_stream_connections() -> None:
    with live_server(binance_port=0) as live:
        held = [_ws(live, "/ws") for _ in range(64)]
        with pytest.raises(Exception) as refused:  # noqa: B017 (the handshake's HTTP 429)
            _ws(live, "/ws")
        assert "429" in str(refused.value)
        held.pop().close()
        # one closed, one may open (once the server has seen the close: waited for, not slept)
        deadline = time.monotonic() + 30
        while live.on_loop(lambda: sum(live.server.streams.per_address.values())) >= 64:
            assert time.monotonic() < deadline, "the server never saw the close"
        again = _ws(live, "/ws")
        again.close()
        for ws in held:
            ws.close()


@pytest.mark.parametrize("mode", ["cross", "isolated"])
def test_margin_call_is_sent_when_the_account_enters_the_zone_and_again_after_it_left(
        mode: str) -> None:
    now = [1_796_000_000_000_000_000]  # the server's clock: a second a request (10 a second)
    with live_server(binance_port=0, clock=lambda: now[0]) as live:
        key = live.server.keys["dev-4"]
        request = urllib.request.Request(live.server.binance_url + "/fapi/v1/listenKey",
                                         method="POST", data=b"",
                                         headers={"X-MBX-APIKEY": key.key})
        with urllib.request.urlopen(request, timeout=10) as r:
            listen_key = json.loads(r.read())["listenKey"]
        ws = _ws(live, "/ws/" + listen_key)
        asked = iter(range(1, 1_000))

        def published() -> list[dict[str, Any]]:
            """What the stream sent before the answer to a request made now (in order)."""
            rid = next(asked)
            now[0] += 10**9
            ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": rid}))
            out = []
            while (message := json.loads(ws.recv(timeout=10))).get("id") != rid:
                out.append(message)
            return out

        def ratio() -> Fraction:
            """Maintenance margin / margin balance: the account's, or its isolated
            position's."""
            view = live.on_loop(lambda: live.server.venue.account(4))
            if mode == "cross":
                return Fraction(view.maintenance_margin, view.equity)
            p = view.positions[SYM]
            return Fraction(p.maintenance_margin, p.isolated_margin + p.unrealized_pnl)

        # Arrange: account 4 keeps $1,000 and goes long 200 shares at $100 at 20x
        _run(live, Withdraw(4, usd(999_000)), SetMarginMode(4, SYM, mode),
             SetLeverage(4, SYM, 20),
             PlaceOrder(1, SYM, SELL, 10_000, 20_000), PlaceOrder(4, SYM, BUY, 10_000, 20_000),
             PlaceOrder(2, SYM, BUY, 9_000, 50_000))
        assert not [m for m in published() if m["e"] == "MARGIN_CALL"]
        assert ratio() < Fraction(80, 100)

        # Act: the index falls a tick at a time until the ratio reaches 80%, stays there one
        # more batch, recovers, and falls into the zone again
        index, calls, entered = 10_000, [], []
        for step in [-1] * 600:
            index += step
            _run(live, SetIndexPrice(SYM, index))
            calls += [m for m in published() if m["e"] == "MARGIN_CALL"]
            if ratio() >= Fraction(80, 100):
                entered.append(index)
                break
        assert entered, "the ratio never reached 80% (the test's numbers are off)"
        first = list(calls)
        _run(live, SetIndexPrice(SYM, index - 1))  # deeper, still in the zone, not liquidated
        assert Fraction(80, 100) <= ratio() < 1
        calls += [m for m in published() if m["e"] == "MARGIN_CALL"]
        _run(live, SetIndexPrice(SYM, 10_000))  # out of the zone
        assert ratio() < Fraction(80, 100)
        calls += [m for m in published() if m["e"] == "MARGIN_CALL"]
        _run(live, SetIndexPrice(SYM, index - 1))  # in again
        calls += [m for m in published() if m["e"] == "MARGIN_CALL"]
        view = live.on_loop(lambda: live.server.venue.account(4))
        mark = live.on_loop(lambda: live.server.venue.market(SYM).mark)
        ws.close()

        # Assert: one call on entering, none while it stayed, one more on entering again
        assert len(first) == 1 and len(calls) == 2
        position = view.positions[SYM]
        isolated = position.isolated_margin if mode == "isolated" else 0
        assert calls[-1]["cw"] == usd_text(view.balance - isolated)
        assert calls[-1]["p"] == [{
            "s": "NVDAUSDT", "ps": "BOTH", "pa": lots_text(position.size, NVDA),
            "mt": mode.upper().replace("CROSS", "CROSSED"), "iw": usd_text(isolated),
            "mp": price_text(mark, NVDA),
            "up": usd_text(position.unrealized_pnl),
            "mm": usd_text(position.maintenance_margin)}]


def test_a_kline_stream_follows_the_bar_and_closes_it() -> None:
    with live_server(binance_port=0) as live:
        ws = _ws(live, "/ws/nvdausdt@kline_1m")
        asked = iter(range(1, 100))

        def published() -> list[dict[str, Any]]:
            """What the stream sent before the answer to a request made now (in order)."""
            rid = next(asked)
            ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": rid}))
            out = []
            while (message := json.loads(ws.recv(timeout=10))).get("id") != rid:
                out.append(message["k"])
            return out

        # Act: two trades in one minute of venue time, then the next minute with none
        _run(live, PlaceOrder(1, SYM, SELL, 10_010, 300), PlaceOrder(2, SYM, BUY, 10_010, 100))
        first = published()
        _run(live, PlaceOrder(2, SYM, BUY, 10_010, 200), PlaceOrder(1, SYM, SELL, 9_990, 50),
             PlaceOrder(2, SYM, BUY, 9_990, 50))
        second = published()
        minute = live.server.venue.time // 60_000_000_000 * 60_000_000_000
        live.tick(minute + 60_000_000_000)
        _run(live)
        third = published()
        _run(live)
        quiet = published()
        ws.close()

        # Assert: the open bar after each batch with trades, then the same bar closed, once
        assert [(k["n"], k["o"], k["c"], k["h"], k["l"], k["v"], k["x"]) for k in first] == [
            (1, "100.1", "100.1", "100.1", "100.1", "1", False)]
        assert [(k["n"], k["c"], k["l"], k["v"], k["x"]) for k in second] == [
            (3, "99.9", "99.9", "3.5", False)]
        assert [(k["n"], k["t"], k["x"]) for k in third] == [(3, second[0]["t"], True)]
        assert quiet == []
        assert third[0]["T"] - third[0]["t"] == 59_999 and third[0]["i"] == "1m"


def test_ccxt_pro_watches_candles_equal_to_the_rest_ones() -> None:
    with live_server(binance_port=0) as live:
        def subscribed() -> bool:
            return live.on_loop(lambda: any("nvdausdt@kline_1m" in c.streams
                                            for c in live.server.streams.clients))

        async def main() -> tuple[list[Any], list[Any]]:
            exchange = ccxtpro.binanceusdm({"options": {"fetchCurrencies": False}})
            _point(exchange, live.server.binance_url)
            loop = asyncio.get_running_loop()
            try:
                await exchange.load_markets()
                watched = asyncio.ensure_future(exchange.watch_ohlcv("NVDA/USDT:USDT", "1m"))
                while not await loop.run_in_executor(None, subscribed):
                    await asyncio.sleep(0.01)
                # Act: a trade while ccxt.pro watches the candles
                await loop.run_in_executor(None, lambda: _run(
                    live, PlaceOrder(1, SYM, SELL, 10_020, 250),
                    PlaceOrder(2, SYM, BUY, 10_020, 250)))
                candles = await asyncio.wait_for(watched, 10)
                return candles, await exchange.fetch_ohlcv("NVDA/USDT:USDT", "1m")
            finally:
                await exchange.close()

        candles, rest = asyncio.run(main())

        # Assert: the streamed candle is the REST one
        assert candles[-1] == rest[-1]
        assert candles[-1][1:] == [100.2, 100.2, 100.2, 100.2, 2.5]
