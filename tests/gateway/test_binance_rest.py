"""The Binance USDⓈ-M REST facade (gateway/binance) on a live server: the stock ccxt package's
``binanceusdm``, pointed at it, loads the markets and reads the book, the funding and the
time exactly as the venue has them; Binance's error codes for bad requests; exact decimals."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import ccxt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gaemi.engine.codes import Side
from gaemi.gateway.binance.units import (
    BinanceSymbols,
    OffGrid,
    decimal_text,
    lots_text,
    parse_decimal,
    price_text,
    to_lots,
    to_ticks,
    usd_text,
)
from gaemi.risk import PlaceOrder
from gaemi.risk.markets import PRESETS
from tests.gateway.live import SYM, LiveServer, live_server
from tests.gateway.procs import ROOT, ServeProcess, free_port

NOW_NS = 1_796_000_000_123_456_789  # the server's injected clock
NVDA = PRESETS[SYM]
BUY, SELL = Side.BUY, Side.SELL


def _binanceusdm(live: LiveServer) -> Any:
    """Stock ccxt, every REST group of its Binance URLs pointed at the facade."""
    exchange = ccxt.binanceusdm({"options": {"fetchCurrencies": False}})
    for group, url in list(exchange.urls["api"].items()):
        if isinstance(url, str):
            exchange.urls["api"][group] = live.server.binance_url + urlparse(url).path
    return exchange


def _get(live: LiveServer, path: str, method: str = "GET") -> tuple[int, Any]:
    request = urllib.request.Request(live.server.binance_url + path, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _rest_a_book(live: LiveServer) -> None:
    """Orders of account 1 resting on both sides (on the server's loop, between batches)."""
    def place() -> None:
        for side, price, qty in ((BUY, 9_990, 300), (BUY, 9_980, 1_250), (BUY, 9_990, 7),
                                 (SELL, 10_010, 40), (SELL, 10_025, 999)):
            events = live.server.exchange.system(PlaceOrder(1, SYM, side, price, qty))
            assert type(events[0]).__name__ == "OrderAccepted", events
        live.server.exchange.end_batch()
    live.on_loop(place)


def test_ccxt_loads_the_markets_with_the_venues_grid() -> None:
    with live_server(binance_port=0) as live:
        exchange = _binanceusdm(live)

        # Act
        markets = exchange.load_markets()

        # Assert: one ccxt market per venue market, on its tick and lot
        venue = live.server.venue
        assert sorted(markets) == sorted(f"{s.removesuffix('-PERP')}/USDT:USDT"
                                         for s in venue.symbols)
        nvda = markets["NVDA/USDT:USDT"]
        assert nvda["id"] == "NVDAUSDT" and nvda["linear"] and nvda["type"] == "swap"
        assert nvda["settle"] == "USDT" and nvda["contractSize"] == 1
        assert Fraction(str(nvda["precision"]["price"])) == Fraction(NVDA.tick_size, 1_000_000)
        assert Fraction(str(nvda["precision"]["amount"])) == Fraction(NVDA.lot_size)
        assert nvda["limits"]["amount"]["max"] == NVDA.max_order_qty * float(NVDA.lot_size)


def test_ccxt_reads_the_venues_book_funding_and_time() -> None:
    with live_server(binance_port=0, clock=lambda: NOW_NS) as live:
        _rest_a_book(live)
        exchange = _binanceusdm(live)
        exchange.load_markets()

        # Act
        book = exchange.fetch_order_book("NVDA/USDT:USDT")
        top = exchange.fetch_order_book("NVDA/USDT:USDT", limit=5)
        funding = exchange.fetch_funding_rate("NVDA/USDT:USDT")
        server_ms = exchange.fetch_time()

        # Assert: the book level for level, in USD a share and shares
        venue = live.server.venue
        bids, asks = venue.book(SYM).depth(1000)
        assert [[Fraction(str(p)), Fraction(str(q))] for p, q in book["bids"]] == [
            [Fraction(p * NVDA.tick_size, 1_000_000), q * Fraction(NVDA.lot_size)]
            for p, q in bids]
        assert [[Fraction(str(p)), Fraction(str(q))] for p, q in book["asks"]] == [
            [Fraction(p * NVDA.tick_size, 1_000_000), q * Fraction(NVDA.lot_size)]
            for p, q in asks]
        assert len(bids) == 2 and bids[0] == (9_990, 307) and len(asks) == 2
        assert book["nonce"] == venue.seq and top["bids"] == book["bids"]
        # the mark and index in USD, the funding estimate per interval, the next settlement
        market = venue.market(SYM)
        assert funding["markPrice"] == pytest.approx(market.mark * NVDA.tick_size / 1e6)
        assert funding["indexPrice"] == pytest.approx(market.index * NVDA.tick_size / 1e6)
        assert funding["fundingRate"] == pytest.approx(market.funding_rate / 1e9)
        assert funding["fundingTimestamp"] == market.next_funding_ts // 1_000_000
        # the server's (injected) clock, in milliseconds
        assert server_ms == NOW_NS // 1_000_000


def test_the_raw_routes_answer_in_binances_shapes() -> None:
    with live_server(binance_port=0, clock=lambda: NOW_NS) as live:
        _rest_a_book(live)
        venue = live.server.venue

        assert _get(live, "/fapi/v1/ping") == (200, {})
        assert _get(live, "/fapi/v1/time") == (200, {"serverTime": NOW_NS // 1_000_000})
        status, ticker = _get(live, "/fapi/v1/ticker/bookTicker?symbol=NVDAUSDT")
        assert status == 200 and ticker["bidPrice"] == price_text(9_990, NVDA)
        assert ticker["bidQty"] == lots_text(307, NVDA) and ticker["askQty"] == \
            lots_text(40, NVDA)
        status, rows = _get(live, "/fapi/v2/ticker/price")
        assert status == 200 and {r["symbol"] for r in rows} == {
            "NVDAUSDT", "TSLAUSDT", "SKHYNIXUSDT", "SAMSUNGUSDT"}
        status, oi = _get(live, "/fapi/v1/openInterest?symbol=NVDAUSDT")
        assert status == 200 and oi["openInterest"] == lots_text(
            venue.market(SYM).open_interest, NVDA)
        status, info = _get(live, "/fapi/v1/exchangeInfo")
        filters = {f["filterType"]: f for f in info["symbols"][0]["filters"]}
        assert filters["PRICE_FILTER"]["tickSize"] == price_text(1, PRESETS[
            BinanceSymbols(venue.symbols).to_venue[info["symbols"][0]["symbol"]]])
        status, intervals = _get(live, "/fapi/v1/fundingInfo")
        assert status == 200 and {r["fundingIntervalHours"] for r in intervals} == {1}


@pytest.mark.parametrize(("path", "status", "code"), [
    ("/fapi/v1/depth?symbol=BTCUSDT", 400, -1121),  # unknown symbol
    ("/fapi/v1/depth", 400, -1102),  # missing symbol
    ("/fapi/v1/depth?symbol=", 400, -1102),  # empty
    ("/fapi/v1/depth?symbol=NVDAUSDT&limit=7", 400, -1130),  # not one of Binance's limits
    ("/fapi/v1/depth?symbol=NVDAUSDT&limit=-5", 400, -1100),
    ("/fapi/v1/depth?symbol=NVDAUSDT&limit=1e3", 400, -1100),
    ("/fapi/v1/depth?symbol=NVDAUSDT&limit=%D9%A1%D9%A0%D9%A0", 400, -1100),  # Arabic 100
    ("/fapi/v1/depth?symbol=NVDAUSDT&limit=99999999999999999999999", 400, -1100),
    ("/fapi/v1/depth?symbol=NVDAUSDT&symbol=TSLAUSDT", 400, -1101),  # twice
    ("/fapi/v1/depth?symbol=NVDAUSDT&foo=1", 400, -1104),  # a parameter nobody reads
    ("/fapi/v1/premiumIndex?symbol=nvdausdt", 400, -1121),  # REST symbols are upper case
    ("/fapi/v9/nothing", 404, -1020),
])
def test_bad_requests_get_binances_error_codes_and_change_nothing(path: str, status: int,
                                                                   code: int) -> None:
    with live_server(binance_port=0) as live:
        before = live.server.venue.state_hash()

        # Act
        got_status, body = _get(live, path)

        # Assert: Binance's code and status; the venue untouched; the server still answers
        assert (got_status, body["code"]) == (status, code)
        assert isinstance(body["msg"], str) and body["msg"]
        assert live.server.venue.state_hash() == before
        assert _get(live, "/fapi/v1/ping") == (200, {})


def test_a_post_to_a_read_only_route_is_refused() -> None:
    with live_server(binance_port=0) as live:
        status, body = _get(live, "/fapi/v1/depth?symbol=NVDAUSDT", method="POST")
        assert (status, body["code"]) == (405, -1020)


def test_the_native_protocol_runs_beside_the_facade() -> None:
    with live_server(binance_port=0) as live:
        _rest_a_book(live)
        watcher = live.client()
        snapshot = watcher.result("snapshot.book", {"symbol": SYM})
        status, depth = _get(live, "/fapi/v1/depth?symbol=NVDAUSDT&limit=5")
        assert status == 200
        assert depth["bids"] == [[price_text(p, NVDA), lots_text(q, NVDA)]
                                 for p, q in snapshot["bids"][:5]]
        watcher.close()


# -- exact decimals -----------------------------------------------------------------------------

def test_prices_and_sizes_convert_exactly_both_ways() -> None:
    # NVDA-PERP: a tick is $0.01 a share, a lot 0.01 share
    assert price_text(12_345, NVDA) == "123.45" and price_text(10_000, NVDA) == "100"
    assert lots_text(307, NVDA) == "3.07" and lots_text(0, NVDA) == "0"
    assert to_ticks("123.45", NVDA) == 12_345 and to_ticks("123.450000", NVDA) == 12_345
    assert to_lots("3.07", NVDA) == 307 and to_lots("100", NVDA) == 10_000
    for p in range(0, 100_000, 997):
        assert to_ticks(price_text(p, NVDA), NVDA) == p
        assert to_lots(lots_text(p, NVDA), NVDA) == p


@settings(max_examples=300, deadline=None)
@given(st.integers(-10**30, 10**30), st.sampled_from(sorted(PRESETS)))
def test_the_integer_decimal_texts_equal_the_exact_fraction_ones(n: int, market: str) -> None:
    # the hot path of every answer (scaled_text) against decimal_text over Fractions
    spec = PRESETS[market]
    assert usd_text(n) == decimal_text(Fraction(n, 1_000_000))
    assert price_text(n, spec) == decimal_text(Fraction(n * spec.tick_size, 1_000_000))
    assert lots_text(n, spec) == decimal_text(n * Fraction(spec.lot_size))


@pytest.mark.parametrize("text", ["123.455", "0.001", "1.0000000001"])
def test_a_price_off_the_tick_is_refused_not_rounded(text: str) -> None:
    with pytest.raises(OffGrid):
        to_ticks(text, NVDA)


@pytest.mark.parametrize("text", ["", "-1", "+1", "1e3", "1.", ".5", " 1", "1,5", "NaN", "inf",
                                  "1" * 21, "0x10", "١٢٣"])
def test_only_plain_decimals_are_read(text: str) -> None:
    with pytest.raises(ValueError):
        parse_decimal(text)


# -- fuzz ---------------------------------------------------------------------------------------

_ROUTES = ["ping", "time", "exchangeInfo", "depth", "ticker/price", "ticker/bookTicker",
           "premiumIndex", "fundingInfo", "openInterest", "trades", "aggTrades", "klines",
           "ticker/24hr", "fundingRate", "order"]
_NAMES = ["symbol", "limit", "interval", "startTime", "endTime", "fromId", "timestamp",
          "signature", "x"]


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(_ROUTES), st.sampled_from(["GET", "POST", "DELETE"]),
                          st.lists(st.tuples(st.sampled_from(_NAMES), st.text(max_size=30)),
                                   max_size=4)), min_size=1, max_size=8))
def test_fuzzed_requests_get_json_answers_and_leave_the_venue_alone(
        fuzz_server: LiveServer, requests: list[tuple[str, str, list[tuple[str, str]]]]) -> None:
    live = fuzz_server
    before = live.server.venue.state_hash()
    for route, method, params in requests:
        query = urllib.parse.urlencode(params)
        status, body = _get(live, f"/fapi/v1/{route}?{query}", method=method)
        assert status in (200, 400, 401, 404, 405), (route, params, status, body)
        if status != 200:
            assert isinstance(body["code"], int) and body["code"] < 0 and body["msg"]
    assert live.server.venue.state_hash() == before
    assert _get(live, "/fapi/v1/ping") == (200, {})


@pytest.fixture(scope="module")
def fuzz_server() -> Iterator[LiveServer]:
    with live_server(binance_port=0, clock=lambda: T0, binance_weight_limit=10**9) as live:
        _trade_history(live)
        yield live


def test_gaemi_serve_opens_the_facade_on_its_port(tmp_path: Path) -> None:
    # Arrange: the command line as a user runs it
    port = free_port()
    with ServeProcess(tmp_path, "--binance-port", str(port)) as server:
        # Act
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/fapi/v1/exchangeInfo",
                                    timeout=10) as response:
            info = json.loads(response.read())

        # Assert: it says where the facade is, and the facade and the native port both answer
        assert f"binance  http://127.0.0.1:{port}/fapi" in server.output()
        assert {s["symbol"] for s in info["symbols"]} == {
            "NVDAUSDT", "TSLAUSDT", "SKHYNIXUSDT", "SAMSUNGUSDT"}
        client = server.client()
        assert client.result("ping")
        client.close()
        assert server.stop() == 0


def test_gaemi_serve_says_in_one_line_when_the_facades_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "gaemi.clients.cli", "serve", "--port", "0", "--journal",
             "none", "--binance-port", str(port), "--index", "none"],
            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        f"gaemi: error: cannot listen on 127.0.0.1:0 and {port}: Address already in use"]


# -- history: trades, candles, the day's ticker, funding ----------------------------------------

T0 = 1_796_734_800_000_000_000  # Tue 2026-12-08 15:00 UTC, 10:00 in New York: NVDA is open
MIN = 60_000_000_000


def _trade_history(live: LiveServer) -> None:
    """At T0 account 1 rests asks; at T0 + 61 s account 2 lifts two levels with one order;
    at T0 + 125 s account 3 sells into a bid; then the clock passes a funding settlement."""
    exchange = live.server.exchange

    def at(ns: int, *commands: PlaceOrder) -> None:
        live.tick(ns)

        def run() -> None:
            for c in commands:
                events = exchange.system(c)
                assert type(events[0]).__name__ == "OrderAccepted", events
            exchange.end_batch()
        live.on_loop(run)

    at(T0, PlaceOrder(1, SYM, SELL, 10_010, 40), PlaceOrder(1, SYM, SELL, 10_020, 60),
       PlaceOrder(1, SYM, BUY, 9_990, 500))
    at(T0 + 61 * 10**9, PlaceOrder(2, SYM, BUY, 10_020, 100))  # 40 @ 100.10, 60 @ 100.20
    at(T0 + 125 * 10**9, PlaceOrder(3, SYM, SELL, 9_990, 25))  # 25 @ 99.90
    next_funding = live.server.venue.market(SYM).next_funding_ts
    live.tick(next_funding)


def test_ccxt_reads_trades_candles_the_days_ticker_and_funding_history() -> None:
    with live_server(binance_port=0, clock=lambda: T0) as live:
        _trade_history(live)
        exchange = _binanceusdm(live)
        exchange.load_markets()
        symbol = "NVDA/USDT:USDT"

        # Act
        trades = exchange.fetch_trades(symbol)
        candles = exchange.fetch_ohlcv(symbol, "1m")
        five = exchange.fetch_ohlcv(symbol, "5m")
        ticker = exchange.fetch_ticker(symbol)
        fundings = exchange.fetch_funding_rate_history(symbol)

        # Assert: the three fills, as aggregate trades (ccxt's default): one per taker order
        # and price; times in venue ms
        t0_ms = T0 // 1_000_000
        assert [(t["price"], t["amount"], t["side"], t["timestamp"]) for t in trades] == [
            (100.10, 0.40, "buy", t0_ms + 61_000), (100.20, 0.60, "buy", t0_ms + 61_000),
            (99.90, 0.25, "sell", t0_ms + 125_000)]
        # a candle for each minute with trades: [open, high, low, close, volume]
        minute = t0_ms - t0_ms % 60_000
        assert candles == [[minute + 60_000, 100.10, 100.20, 100.10, 100.20, 1.0],
                           [minute + 120_000, 99.90, 99.90, 99.90, 99.90, 0.25]]
        assert five == [[minute - minute % 300_000, 100.10, 100.20, 99.90, 99.90, 1.25]]
        # the last 24 hours: open 100.10, last 99.90; 1.25 shares for $125.135
        # (40.04 + 60.12 + 24.975)
        assert (ticker["open"], ticker["high"], ticker["low"], ticker["last"]) == (
            100.10, 100.20, 99.90, 99.90)
        assert ticker["baseVolume"] == 1.25 and ticker["quoteVolume"] == pytest.approx(125.135)
        assert ticker["vwap"] == pytest.approx(125.135 / 1.25)
        # the settlement the clock passed, at its rate
        settled = [e for e in live.server.tape.markets[SYM].fundings]
        assert len(settled) == 1 and len(fundings) == 1
        assert fundings[0]["fundingRate"] == pytest.approx(settled[0].rate / 1e9)
        assert fundings[0]["timestamp"] == settled[0].ms


def test_the_history_routes_answer_exactly() -> None:
    with live_server(binance_port=0, clock=lambda: T0) as live:
        _trade_history(live)
        t0_ms = T0 // 1_000_000

        status, trades = _get(live, "/fapi/v1/trades?symbol=NVDAUSDT&limit=2")
        assert status == 200 and [(t["price"], t["qty"], t["quoteQty"], t["isBuyerMaker"])
                                  for t in trades] == [("100.2", "0.6", "60.12", False),
                                                       ("99.9", "0.25", "24.975", True)]
        status, aggs = _get(live, f"/fapi/v1/aggTrades?symbol=NVDAUSDT&startTime={t0_ms}"
                                  f"&endTime={t0_ms + 100_000}")
        assert status == 200 and [(a["p"], a["q"], a["f"], a["l"]) for a in aggs] == [
            ("100.1", "0.4", trades[0]["id"] - 1, trades[0]["id"] - 1),
            ("100.2", "0.6", trades[0]["id"], trades[0]["id"])]
        status, body = _get(live, "/fapi/v1/aggTrades?symbol=NVDAUSDT&fromId=1&startTime=0")
        assert (status, body["code"]) == (400, -1128)
        status, day = _get(live, "/fapi/v1/ticker/24hr?symbol=NVDAUSDT")
        assert status == 200 and (day["priceChange"], day["priceChangePercent"], day["count"],
                                  day["quoteVolume"], day["weightedAvgPrice"]) == (
            "-0.2", "-0.200", 3, "125.135", "100.10800000")
        status, bars = _get(live, "/fapi/v1/klines?symbol=NVDAUSDT&interval=1h")
        assert status == 200 and len(bars) == 1 and bars[0][8] == 3 and bars[0][5] == "1.25"
        status, body = _get(live, "/fapi/v1/klines?symbol=NVDAUSDT&interval=7m")
        assert (status, body["code"]) == (400, -1120)
        status, body = _get(live, "/fapi/v1/trades?symbol=NVDAUSDT&limit=1001")
        assert (status, body["code"]) == (400, -1130)


def _get_with_headers(live: LiveServer, path: str) -> tuple[int, Any, dict[str, str]]:
    try:
        with urllib.request.urlopen(live.server.binance_url + path, timeout=10) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), dict(exc.headers)


def test_request_weight_is_counted_and_limited_per_minute() -> None:
    now = [T0]
    with live_server(binance_port=0, clock=lambda: now[0], binance_weight_limit=25) as live:
        # a 1,000-level depth weighs 20 (Binance's table); the used weight is in every answer
        status, _, headers = _get_with_headers(live, "/fapi/v1/depth?symbol=NVDAUSDT&limit=1000")
        assert status == 200 and headers["X-MBX-USED-WEIGHT-1M"] == "20"
        # a second one would pass 25: 429 and -1003, nothing spent
        status, body, headers = _get_with_headers(live,
                                                  "/fapi/v1/depth?symbol=NVDAUSDT&limit=1000")
        assert (status, body["code"], headers["X-MBX-USED-WEIGHT-1M"]) == (429, -1003, "20")
        # lighter requests still fit, up to the limit
        for used in range(21, 26):
            status, _, headers = _get_with_headers(live, "/fapi/v1/ping")
            assert (status, headers["X-MBX-USED-WEIGHT-1M"]) == (200, str(used))
        assert _get_with_headers(live, "/fapi/v1/ping")[0] == 429
        # the next minute starts afresh
        now[0] += 60_000_000_000
        status, _, headers = _get_with_headers(live, "/fapi/v1/ping")
        assert (status, headers["X-MBX-USED-WEIGHT-1M"]) == (200, "1")


@pytest.mark.parametrize(("bounds", "held"), [((100, 6), 6), ((5, 100), 5)])
def test_the_facade_port_holds_a_bounded_number_of_connections(bounds: tuple[int, int],
                                                               held: int) -> None:
    # bounds: (in all, per address); the shipped ones (2,048, 128) are too many descriptors
    # for a test process on every machine (macOS allows 256 by default)
    with live_server(binance_port=0, binance_connections=bounds) as live:
        count = live.server.binance_connections
        port = live.server.binance_port

        def open_count() -> int:
            return int(live.on_loop(lambda: count.open))

        def until(n: int) -> None:
            """Wait until the server has seen ``n`` connections open (waited for, not slept;
            bounded, for a server that never sees them)."""
            deadline = time.monotonic() + 30
            while open_count() != n:
                assert time.monotonic() < deadline, f"{open_count()} open, not {n}"

        # Arrange: as many idle keep-alive connections as the bound allows
        sockets = [socket.create_connection(("127.0.0.1", port), timeout=10)
                   for _ in range(held)]
        until(held)

        # Act: one more
        extra = socket.create_connection(("127.0.0.1", port), timeout=10)
        answer = b""
        while chunk := extra.recv(4096):
            answer += chunk
        extra.close()

        # Assert: refused with HTTP 429 and Binance's -1003 before aiohttp saw it
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 429") and json.loads(body)["code"] == -1003
        assert open_count() == held
        # one of the held connections still serves requests (keep-alive: two in a row)
        sockets[0].sendall(b"GET /fapi/v1/ping HTTP/1.1\r\nHost: x\r\n\r\n"
                           b"GET /fapi/v1/time HTTP/1.1\r\nHost: x\r\n\r\n")
        got = b""
        while got.count(b"HTTP/1.1 200") < 2:
            chunk = sockets[0].recv(4096)
            assert chunk, "the connection closed"
            got += chunk
        # one closed, one may open again; all closed, none is counted
        sockets.pop().close()
        until(held - 1)
        assert _get(live, "/fapi/v1/ping") == (200, {})
        for s in sockets:
            s.close()
        until(0)


def test_gaemi_serve_raises_its_open_file_limit_for_its_connection_bounds() -> None:
    resource = pytest.importorskip("resource")  # POSIX only
    from gaemi.gateway.cli import raise_file_limit

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        # a need within the hard limit: met (the soft limit raised to it when lower)
        within = soft if hard == resource.RLIM_INFINITY else min(hard, soft + 16)
        assert raise_file_limit(within) is None
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= within
        # a need beyond the hard limit: a warning that says both numbers
        if hard != resource.RLIM_INFINITY:
            warning = raise_file_limit(hard + 1)
            assert warning is not None and str(hard) in warning and str(hard + 1) in warning
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@settings(max_examples=300, deadline=None)
@given(st.from_regex(r"[0-9]{1,20}(\.[0-9]{1,20})?", fullmatch=True),
       st.sampled_from(sorted(PRESETS)))
def test_the_integer_readings_equal_the_exact_fraction_ones(text: str, market: str) -> None:
    # to_ticks / to_lots in integers against the exact Fraction of the same text
    spec = PRESETS[market]
    for convert, unit in ((to_ticks, Fraction(spec.tick_size, 1_000_000)),
                          (to_lots, Fraction(spec.lot_size))):
        exact = parse_decimal(text) / unit
        if exact.denominator == 1:
            assert convert(text, spec) == exact
        else:
            with pytest.raises(OffGrid):
                convert(text, spec)
