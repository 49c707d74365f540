"""The signed Binance routes on a live server: stock ccxt clients of two accounts trade with
each other through the facade (limit, market, post-only, reduce-only; open orders, fetch and
cancel, positions, balance, leverage and margin mode), every answer checked against the venue;
Binance's signing enforced, with its error codes, and bad orders refused before the venue."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlparse

import ccxt
import pytest
from aiohttp.test_utils import make_mocked_request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gaemi.engine.codes import Side
from gaemi.risk import PlaceOrder, SetIndexPrice, SetLeverage, Withdraw
from gaemi.risk.markets import PRESETS
from tests.gateway.live import SYM, LiveServer, live_server
from tests.gateway.procs import ServeProcess, free_port

S = "NVDA/USDT:USDT"
NVDA = PRESETS[SYM]
BUY = Side.BUY


@pytest.fixture
def live() -> Iterator[LiveServer]:
    # the server's clock is the machine's: ccxt signs with it (its window is set to 60 s so
    # that a slow machine never makes a request stale)
    with live_server(binance_port=0) as server:
        yield server


def _client(live: LiveServer, key: str) -> Any:
    api = live.server.keys[key]
    exchange = ccxt.binanceusdm({"apiKey": api.key, "secret": api.secret,
                                 "options": {"fetchCurrencies": False, "recvWindow": 60_000}})
    for group, url in list(exchange.urls["api"].items()):
        if isinstance(url, str):
            exchange.urls["api"][group] = live.server.binance_url + urlparse(url).path
    exchange.load_markets()
    return exchange


def _code(exc: BaseException) -> int:
    """Binance's code in a ccxt error (its message ends with the JSON body)."""
    return int(json.loads(str(exc)[str(exc).index("{"):])["code"])


def test_two_ccxt_bots_trade_through_the_facade(live: LiveServer) -> None:
    # Arrange: a maker and a taker, each with its own key and account
    maker, taker = _client(live, "dev-1"), _client(live, "dev-2")
    venue = live.server.venue
    assert maker.fetch_balance()["USDT"]["total"] == 1_000_000

    # Act: leverage and margin mode; the maker rests two asks, the taker lifts 1.5 shares
    assert maker.set_leverage(5, S)["leverage"] == 5
    taker.set_margin_mode("isolated", S)
    ask = maker.create_order(S, "limit", "sell", 1.0, 100.10, {"clientOrderId": "ask-1"})
    ask2 = maker.create_order(S, "limit", "sell", 2.0, 100.20)
    resting = maker.fetch_open_orders(S)
    on_venue = {o["order_id"] for o in venue.open_orders(1)}
    bought = taker.create_order(S, "market", "buy", 1.5)

    # Assert: the resting orders as the venue has them, exact prices and sizes
    assert ask["status"] == "open" and ask["clientOrderId"] == "ask-1"
    assert sorted((o["price"], o["amount"]) for o in resting) == [(100.10, 1.0), (100.20, 2.0)]
    assert on_venue == {int(ask["id"]), int(ask2["id"])}
    # the market order filled 1.0 @ 100.10 and 0.5 @ 100.20: average 100.1333..., $150.20
    assert bought["status"] == "closed" and bought["filled"] == 1.5
    assert bought["cost"] == pytest.approx(150.20)
    assert bought["average"] == pytest.approx(150.20 / 1.5)
    assert bought["info"]["avgPrice"] == "100.13333333"
    # the maker's first ask is filled, its second is half filled; both can be fetched
    assert maker.fetch_order(ask["id"], S)["status"] == "closed"
    half = maker.fetch_order(ask2["id"], S)
    assert (half["status"], half["filled"], half["remaining"]) == ("open", 0.5, 1.5)
    # positions: the taker long 1.5 isolated, the maker short 1.5 at 5x
    long = taker.fetch_positions([S])[0]
    short = maker.fetch_positions([S])[0]
    assert (long["side"], long["contracts"], long["marginMode"]) == ("long", 1.5, "isolated")
    assert (short["side"], short["contracts"], short["leverage"]) == ("short", 1.5, 5)
    assert venue.account(2).positions[SYM].size == 150 and \
        venue.account(1).positions[SYM].size == -150

    # Act: the taker closes half reduce-only into the maker's bid; a post-only bid that would
    # cross is refused; the maker cancels what is left
    maker.create_order(S, "limit", "buy", 0.75, 100.00)
    closed = taker.create_order(S, "market", "sell", 0.75, None, {"reduceOnly": True})
    with pytest.raises(ccxt.ExchangeError) as crossed:
        taker.create_order(S, "limit", "buy", 1, 100.20, {"postOnly": True})
    canceled = maker.cancel_order(ask2["id"], S)
    maker.create_order(S, "limit", "buy", 1, 90.00)
    maker.cancel_all_orders(S)

    # Assert
    assert (closed["status"], closed["filled"], closed["average"]) == ("closed", 0.75, 100.00)
    assert venue.account(2).positions[SYM].size == 75
    assert _code(crossed.value) == -5022
    assert canceled["status"] == "canceled" and canceled["filled"] == 0.5
    assert maker.fetch_open_orders(S) == [] and venue.open_orders(1) == []
    venue.check_invariants()  # money conserved through all of it


def test_ccxt_reads_an_account_that_never_deposited(live: LiveServer) -> None:
    live.server.keys["lonely"] = type(live.server.keys["dev-1"])("lonely", "s3cret", 99)
    exchange = _client(live, "lonely")
    assert exchange.fetch_balance()["USDT"]["total"] == 0
    assert exchange.fetch_open_orders(S) == [] and exchange.fetch_positions([S]) == []


# -- signing ------------------------------------------------------------------------------------

def _signed(live: LiveServer, method: str, path: str, params: dict[str, Any], *,
            key: str = "dev-1", secret: str | None = None, header: str | None = "key",
            timestamp: int | None = None, tamper: str = "") -> tuple[int, Any]:
    api = live.server.keys[key]
    # a 60 s window: a slow machine never makes a request stale (the stale cases are hours off)
    query = urlencode({**params, "recvWindow": 60_000, "timestamp": timestamp
                       if timestamp is not None else time.time_ns() // 1_000_000})
    signature = hmac.new((secret or api.secret).encode(), query.encode(),
                         hashlib.sha256).hexdigest()
    signed = query + tamper + "&signature=" + signature
    if method == "GET":  # GET: in the query string; otherwise the form body
        request = urllib.request.Request(live.server.binance_url + path + "?" + signed)
    else:
        request = urllib.request.Request(live.server.binance_url + path,
                                         data=signed.encode(), method=method)
    if header is not None:
        request.add_header("X-MBX-APIKEY", api.key if header == "key" else header)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


ORDER = {"symbol": "NVDAUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
         "quantity": "1", "price": "99"}


def test_a_correctly_signed_order_is_placed_once(live: LiveServer) -> None:
    status, order = _signed(live, "POST", "/fapi/v1/order", ORDER)
    assert status == 200 and order["status"] == "NEW" and order["price"] == "99"
    assert [o["order_id"] for o in live.server.venue.open_orders(1)] == [order["orderId"]]


@pytest.mark.parametrize(("case", "status", "code"), [
    ({"header": None}, 401, -2014),  # no API key
    ({"header": "nobody"}, 401, -2015),  # an unknown key
    ({"secret": "wrong"}, 400, -1022),  # signed with another secret
    ({"tamper": "&quantity=100"}, 400, -1022),  # a parameter added after signing
    ({"timestamp": 1}, 400, -1021),  # stale
    ({"timestamp": time.time_ns() // 1_000_000 + 3_600_000}, 400, -1021),  # from the future
])
def test_signing_failures_get_binances_codes_and_change_nothing(
        live: LiveServer, case: dict[str, Any], status: int, code: int) -> None:
    before = live.server.venue.state_hash()
    got_status, body = _signed(live, "POST", "/fapi/v1/order", ORDER, **case)
    assert (got_status, body["code"]) == (status, code)
    assert live.server.venue.state_hash() == before and live.server.venue.open_orders(1) == []


def test_a_replayed_request_is_refused(live: LiveServer) -> None:
    api = live.server.keys["dev-1"]
    query = urlencode({**ORDER, "recvWindow": 60_000, "timestamp": time.time_ns() // 1_000_000})
    body = query + "&signature=" + hmac.new(api.secret.encode(), query.encode(),
                                            hashlib.sha256).hexdigest()
    answers = []
    for _ in range(2):
        request = urllib.request.Request(live.server.binance_url + "/fapi/v1/order",
                                         data=body.encode(), method="POST",
                                         headers={"X-MBX-APIKEY": api.key})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                answers.append((response.status, json.loads(response.read())))
        except urllib.error.HTTPError as exc:
            answers.append((exc.code, json.loads(exc.read())))
    assert answers[0][0] == 200 and (answers[1][0], answers[1][1]["code"]) == (400, -1022)
    assert len(live.server.venue.open_orders(1)) == 1


@pytest.mark.parametrize(("change", "code"), [
    ({"price": "99.005"}, -4014),  # off the $0.01 tick: refused, not rounded
    ({"quantity": "1.005"}, -4023),  # off the 0.01 share step
    ({"quantity": "0"}, -4003),
    ({"quantity": "99999999999999999999"}, -4005),
    ({"quantity": "1e3"}, -1100),
    ({"price": "-1"}, -1100),
    ({"price": "9999999999"}, -4016),  # above the market's max price
    ({"side": "HOLD"}, -1117),
    ({"type": "TRAILING_STOP_MARKET"}, -1116),
    ({"timeInForce": "GTD"}, -1115),
    ({"positionSide": "LONG"}, -4061),  # one-way mode only
    ({"symbol": "BTCUSDT"}, -1121),
    ({"newClientOrderId": "x" * 37}, -4015),  # the venue's client ids are 1-36 ASCII
    ({"extra": "1"}, -1104),
])
def test_bad_orders_are_refused_before_the_venue(live: LiveServer, change: dict[str, str],
                                                 code: int) -> None:
    before = live.server.venue.state_hash()
    status, body = _signed(live, "POST", "/fapi/v1/order", {**ORDER, **change})
    assert (status, body["code"]) == (400, code), body
    assert live.server.venue.state_hash() == before


def test_hedge_mode_is_refused_with_binances_code(live: LiveServer) -> None:
    status, body = _signed(live, "GET", "/fapi/v1/positionSide/dual", {})
    assert (status, body) == (200, {"dualSidePosition": False})
    status, body = _signed(live, "POST", "/fapi/v1/positionSide/dual",
                           {"dualSidePosition": "true"})
    assert (status, body["code"]) == (400, -4068)


# -- fuzz: correctly signed requests with random parameters ---------------------------------------

_VALUES = st.one_of(st.sampled_from(["1", "0.5", "99", "100.1", "-1", "0", "1e9", "", "true",
                                     "BUY", "SELL", "LIMIT", "MARKET", "GTC", "IOC", "FOK",
                                     "GTX", "NVDAUSDT", "TSLAUSDT", "BOTH",
                                     "99999999999999999999"]),
                    st.text(max_size=12), st.text("0123456789", min_size=10, max_size=5000),
                    st.sampled_from(['[{"symbol":"NVDAUSDT","side":"BUY","type":"LIMIT",'
                                     '"quantity":"1","price":"99","timeInForce":"GTC"}]',
                                     '[{"quantity":1.5}]', '[]', '{}', '[' * 50, '[1,2]',
                                     '["a","gaemi-1"]', '[1,' * 11 + '1]']))
_ORDER_KEYS = ["symbol", "side", "type", "timeInForce", "quantity", "price", "stopPrice",
               "reduceOnly", "newClientOrderId", "orderId", "origClientOrderId", "leverage",
               "marginType", "positionSide", "batchOrders", "algoType", "triggerPrice",
               "algoId", "clientAlgoId", "orderIdList", "origClientOrderIdList"]
_SIGNED = [("POST", "/fapi/v1/order"), ("GET", "/fapi/v1/order"), ("DELETE", "/fapi/v1/order"),
           ("GET", "/fapi/v1/openOrders"), ("DELETE", "/fapi/v1/allOpenOrders"),
           ("POST", "/fapi/v1/leverage"), ("POST", "/fapi/v1/marginType"),
           ("POST", "/fapi/v1/batchOrders"), ("DELETE", "/fapi/v1/batchOrders"),
           ("PUT", "/fapi/v1/order"), ("GET", "/fapi/v1/allOrders"),
           ("GET", "/fapi/v1/commissionRate"),
           ("POST", "/fapi/v1/algoOrder"),
           ("GET", "/fapi/v1/algoOrder"), ("DELETE", "/fapi/v1/algoOrder"),
           ("GET", "/fapi/v2/positionRisk"), ("GET", "/fapi/v3/account")]


@pytest.fixture(scope="module")
def fuzz_live() -> Iterator[LiveServer]:
    # the request weight is not what this test is about (test_binance_rest checks it)
    with live_server(binance_port=0, binance_weight_limit=10**9) as server:
        yield server


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(_SIGNED),
                          st.dictionaries(st.sampled_from(_ORDER_KEYS), _VALUES, max_size=7)),
                min_size=1, max_size=6))
def test_fuzzed_signed_requests_get_answers_and_keep_the_money_whole(
        fuzz_live: LiveServer, requests: list[tuple[tuple[str, str], dict[str, str]]]) -> None:
    live = fuzz_live
    for (method, path), params in requests:
        status, body = _signed(live, method, path, params)
        assert status in (200, 400, 429), (method, path, params, status, body)
        if status != 200:
            assert isinstance(body["code"], int) and body["code"] < 0 and body["msg"]
    live.server.venue.check_invariants()
    status, _ = _signed(live, "GET", "/fapi/v3/account", {})
    assert status == 200


def _system(live: LiveServer, *commands: Any) -> None:
    """Commands of the venue's owner, in one batch on the server's loop."""
    def run() -> None:
        for c in commands:
            live.server.exchange.system(c)
        live.server.exchange.end_batch()
    live.on_loop(run)


def test_a_ccxt_stop_market_order_waits_for_the_mark_then_trades(live: LiveServer) -> None:
    # Arrange: account 1 bids $94 for 2 shares; account 2 (ccxt) sells 1 share on a stop at
    # $95, sent as ccxt 4.5 sends conditional orders (Binance's algo-order route)
    _system(live, PlaceOrder(1, SYM, BUY, 9_400, 200))
    trader = _client(live, "dev-2")
    stop = trader.create_order(S, "STOP_MARKET", "sell", 1, None, {"stopPrice": 95})
    waiting = trader.fetch_open_orders(S, params={"trigger": True})
    assert (stop["status"], stop["triggerPrice"]) == ("open", 95.0)
    assert [o["id"] for o in waiting] == [stop["id"]]

    # Act: the index, and with it the mark, falls to $94.50
    _system(live, SetIndexPrice(SYM, 9_450))

    # Assert: the stop fired and sold into the $94 bid
    done = trader.fetch_order(stop["id"], S, {"trigger": True})
    assert done["info"]["algoStatus"] == "FINISHED" and done["status"] == "closed"
    assert live.server.venue.account(2).positions[SYM].size == -100
    assert trader.fetch_open_orders(S, params={"trigger": True}) == []


def test_a_waiting_stop_can_be_cancelled(live: LiveServer) -> None:
    trader = _client(live, "dev-2")
    stop = trader.create_order(S, "STOP_MARKET", "sell", 1, None, {"stopPrice": 95,
                                                                   "clientOrderId": "stop-1"})
    canceled = trader.cancel_order(stop["id"], S, {"trigger": True})
    assert canceled["info"]["clientAlgoId"] == "stop-1"
    assert trader.fetch_order(stop["id"], S, {"trigger": True})["status"] == "canceled"
    assert live.server.venue.open_orders(2) == []


def test_ccxt_places_a_batch_and_each_order_stands_or_falls_alone(live: LiveServer) -> None:
    trader = _client(live, "dev-1")
    orders = trader.create_orders([
        {"symbol": S, "type": "limit", "side": "buy", "amount": 1, "price": 99.00},
        # reduce-only with no position: the venue refuses this one alone
        {"symbol": S, "type": "limit", "side": "sell", "amount": 1, "price": 101.00,
         "params": {"reduceOnly": True}},
        {"symbol": S, "type": "limit", "side": "sell", "amount": 2, "price": 101.00},
    ])
    # (ccxt sorts what it returns by time: the refused order, which has none, comes first)
    assert sorted((o["info"].get("code") or 0, o["status"]) for o in orders) == [
        (-2022, "rejected"), (0, "open"), (0, "open")]
    assert sorted((o["price"], o["qty"]) for o in live.server.venue.open_orders(1)) == [
        (9_900, 100), (10_100, 200)]


def test_ccxt_cancels_a_batch_by_ids_and_by_client_ids(live: LiveServer) -> None:
    # Arrange: four bids resting, one of them filled by account 2
    trader, other = _client(live, "dev-1"), _client(live, "dev-2")
    a = trader.create_order(S, "limit", "buy", 1, 99.00, {"clientOrderId": "a"})
    b = trader.create_order(S, "limit", "buy", 1, 98.00, {"clientOrderId": "b"})
    c = trader.create_order(S, "limit", "buy", 1, 97.00, {"clientOrderId": "c"})
    d = trader.create_order(S, "limit", "buy", 1, 96.00)
    other.create_order(S, "market", "sell", 1)  # fills a
    trader.enableLastJsonResponse = True  # to read the answer as sent, refusals too

    # Act: by ids (one of them filled, one unknown), then by client ids (d: the one ccxt made)
    by_ids = trader.cancel_orders([b["id"], a["id"], "777777"], S)
    answer = trader.last_json_response
    by_client = trader.cancel_orders([], S, {"clientOrderIds": ["c", d["clientOrderId"]]})

    # Assert: each cancelled or refused on its own, in the order sent (ccxt keeps the orders
    # and drops the refusals); the book is empty
    assert [x.get("code") or x["status"] for x in answer] == ["CANCELED", -2011, -2011]
    assert [(o["status"], o["clientOrderId"]) for o in by_ids] == [("canceled", "b")]
    assert [(o["status"], o["clientOrderId"]) for o in by_client] == [
        ("canceled", "c"), ("canceled", d["clientOrderId"])]
    assert live.server.venue.open_orders(1) == []
    assert trader.fetch_order(c["id"], S)["status"] == "canceled"


def test_ccxt_modifies_a_resting_order_in_place(live: LiveServer) -> None:
    # Arrange: a bid of 3 shares at $99, one of them filled
    trader, other = _client(live, "dev-1"), _client(live, "dev-2")
    bid = trader.create_order(S, "limit", "buy", 3, 99.00)
    other.create_order(S, "limit", "sell", 1, 99.00)

    # Act: to 4 shares (its whole size) at $98.50; then to 1 share, what it filled
    moved = trader.edit_order(bid["id"], S, "limit", "buy", 4, 98.50)
    resting = live.server.venue.open_orders(1)
    gone = trader.edit_order(bid["id"], S, "limit", "buy", 1, 98.50)

    # Assert: the same order, at the new price with 3 shares open; then cancelled
    assert (moved["id"], moved["price"], moved["amount"], moved["filled"]) == (
        bid["id"], 98.50, 4, 1)
    assert [(o["order_id"], o["price"], o["qty"]) for o in resting] == [
        (int(bid["id"]), 9_850, 300)]
    assert gone["status"] == "canceled" and live.server.venue.open_orders(1) == []
    with pytest.raises(ccxt.OrderNotFound):  # a finished order cannot be modified
        trader.edit_order(bid["id"], S, "limit", "buy", 4, 98.00)
    live.server.venue.check_invariants()


@pytest.mark.parametrize(("params", "code"), [
    ({}, -1102),  # neither list
    ({"orderIdList": "[1]", "origClientOrderIdList": '["a"]'}, -1128),  # both
    ({"orderIdList": "[1,2,3,4,5,6,7,8,9,10,11]"}, -1130),  # more than ten
    ({"orderIdList": "[1.5]"}, -1130),
    ({"orderIdList": "1,2"}, -1130),  # not JSON
    ({"origClientOrderIdList": "[1]"}, -1130),  # client ids are text
    ({"orderIdList": "[1]", "orderidlist": "[1]"}, -1101),  # one list under two spellings
])
def test_a_bad_batch_cancel_gets_binances_code(live: LiveServer, params: dict[str, str],
                                               code: int) -> None:
    assert _signed(live, "POST", "/fapi/v1/order", ORDER)[0] == 200
    status, body = _signed(live, "DELETE", "/fapi/v1/batchOrders",
                           {"symbol": "NVDAUSDT", **params})
    assert (status, body["code"]) == (400, code)
    assert len(live.server.venue.open_orders(1)) == 1


def test_the_signed_text_of_a_read_cannot_be_replayed_as_a_cancel(live: LiveServer) -> None:
    # Arrange: an order resting, and the signed text of a harmless read of open orders
    assert _signed(live, "POST", "/fapi/v1/order", ORDER)[0] == 200
    api = live.server.keys["dev-1"]
    query = urlencode({"symbol": "NVDAUSDT", "recvWindow": 60_000,
                       "timestamp": time.time_ns() // 1_000_000})
    signed = query + "&signature=" + hmac.new(api.secret.encode(), query.encode(),
                                              hashlib.sha256).hexdigest()

    def send(method: str, path: str) -> tuple[int, Any]:
        request = urllib.request.Request(live.server.binance_url + path + "?" + signed,
                                         method=method, headers={"X-MBX-APIKEY": api.key})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    # Act: the read, then the same text replayed as "cancel every open order"
    assert send("GET", "/fapi/v1/openOrders")[0] == 200
    assert send("GET", "/fapi/v1/openOrders")[0] == 200  # a read may repeat
    status, body = send("DELETE", "/fapi/v1/allOpenOrders")

    # Assert
    assert (status, body["code"]) == (400, -1022)
    assert len(live.server.venue.open_orders(1)) == 1


def test_an_order_sent_without_a_client_id_is_found_by_its_synthetic_one(
        live: LiveServer) -> None:
    order = {k: v for k, v in ORDER.items()}
    status, placed = _signed(live, "POST", "/fapi/v1/order", order)
    assert status == 200 and placed["clientOrderId"] == f"gaemi-{placed['orderId']}"
    status, found = _signed(live, "GET", "/fapi/v1/order",
                            {"symbol": "NVDAUSDT", "origClientOrderId": placed["clientOrderId"]})
    assert status == 200 and found["orderId"] == placed["orderId"]
    status, body = _signed(live, "POST", "/fapi/v1/order",
                           {**ORDER, "newClientOrderId": "gaemi-999"})
    assert (status, body["code"]) == (400, -4015)  # the prefix is the facade's


def test_a_huge_leverage_is_refused_with_binances_code(live: LiveServer) -> None:
    status, body = _signed(live, "POST", "/fapi/v1/leverage",
                           {"symbol": "NVDAUSDT", "leverage": "9" * 5000})
    assert (status, body["code"]) == (400, -4028)


def test_open_orders_survive_a_restart_of_the_server(tmp_path: Path) -> None:
    # Arrange: a real `gaemi serve` with a journal; an order placed through the facade
    port = free_port()
    with ServeProcess(tmp_path, "--binance-port", str(port)) as server:
        live_url = f"http://127.0.0.1:{port}"
        admin = server.client("admin")
        admin.result("admin.setIndex", {"symbol": SYM, "price": 10_000})
        admin.close()
        status, placed = _signed_at(live_url, server.secret("dev-1"), "POST", "/fapi/v1/order",
                                    ORDER)
        assert status == 200
        assert server.stop() == 0

    # Act: the server restarts from its journal
    with ServeProcess(tmp_path, "--binance-port", str(port)) as again:
        status, rows = _signed_at(live_url, again.secret("dev-1"), "GET",
                                  "/fapi/v1/openOrders", {"symbol": "NVDAUSDT"})
        # Assert: the facade knows the resting order, and can cancel it
        assert status == 200 and [r["orderId"] for r in rows] == [placed["orderId"]]
        status, canceled = _signed_at(live_url, again.secret("dev-1"), "DELETE",
                                      "/fapi/v1/order", {"symbol": "NVDAUSDT",
                                                         "orderId": placed["orderId"]})
        assert status == 200 and canceled["status"] == "CANCELED"
        assert again.stop() == 0


def _signed_at(base: str, secret: str, method: str, path: str,
               params: dict[str, Any]) -> tuple[int, Any]:
    query = urlencode({**params, "recvWindow": 60_000, "timestamp": time.time_ns() // 1_000_000})
    signed = query + "&signature=" + hmac.new(secret.encode(), query.encode(),
                                              hashlib.sha256).hexdigest()
    if method == "GET":
        request = urllib.request.Request(base + path + "?" + signed)
    else:
        request = urllib.request.Request(base + path, data=signed.encode(), method=method)
    request.add_header("X-MBX-APIKEY", "dev-1")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_ccxt_reads_its_own_trades_with_fees_and_realized_pnl(live: LiveServer) -> None:
    # Arrange: the taker buys 1 share at $100.10 from the maker, then sells it back at
    # $100.50 into the maker's bid: it realizes (100.50 - 100.10) x 1 = $0.40
    maker, taker = _client(live, "dev-1"), _client(live, "dev-2")
    maker.create_order(S, "limit", "sell", 1, 100.10)
    taker.create_order(S, "market", "buy", 1)
    maker.create_order(S, "limit", "buy", 1, 100.50)
    before = live.server.venue.account(2).balance
    taker.create_order(S, "market", "sell", 1)
    after = live.server.venue.account(2).balance

    # Act
    trades = taker.fetch_my_trades(S)
    status, income = _signed(live, "GET", "/fapi/v1/income", {"symbol": "NVDAUSDT"},
                             key="dev-2")

    # Assert: both fills, with the fee each paid (taker 0.05%) and what the close realized
    assert [(t["side"], t["price"], t["amount"], t["takerOrMaker"]) for t in trades] == [
        ("buy", 100.10, 1.0, "taker"), ("sell", 100.50, 1.0, "taker")]
    assert [t["fee"]["cost"] for t in trades] == [pytest.approx(0.05005),
                                                  pytest.approx(0.05025)]
    assert [float(t["info"]["realizedPnl"]) for t in trades] == [0.0, pytest.approx(0.40)]
    # the wallet moved by exactly the realized PnL less the fee (micro-dollars)
    assert after - before == 400_000 - 50_250
    assert status == 200 and [(i["incomeType"], i["income"]) for i in income] == [
        ("COMMISSION", "-0.05005"), ("REALIZED_PNL", "0.4"), ("COMMISSION", "-0.05025")]


def test_the_docs_five_lines_place_an_order(live: LiveServer,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    # Arrange: docs/binance-api.md's recipe, with this server's address and dev-1's secret
    page = (Path(__file__).resolve().parents[2] / "docs" / "binance-api.md").read_text()
    recipe = page.split("```python\n", 1)[1].split("```", 1)[0]
    recipe = recipe.replace("http://127.0.0.1:8766", live.server.binance_url).replace(
        "<from the dev key file>", live.server.keys["dev-1"].secret)
    _system(live, SetIndexPrice("SKHYNIX-PERP", 100_000))  # $1,000.00: a mark to trade at

    # Act
    exec(compile(recipe, "docs/binance-api.md", "exec"), {})

    # Assert: it printed the order, and the order rests on the venue
    assert "'status': 'open'" in capsys.readouterr().out
    assert [(o["price"], o["qty"]) for o in live.server.venue.open_orders(1)] == [
        (100_000, 1_000)]


def test_a_modify_counts_what_filled_up_to_its_own_turn(live: LiveServer) -> None:
    # Arrange: account 1 bids 3 shares at $99; the facade's PUT /fapi/v1/order handler
    assert _signed(live, "POST", "/fapi/v1/order", {**ORDER, "quantity": "3"})[0] == 200
    runner = live.server._binance
    assert runner is not None
    handler = next(r.handler for r in runner.app.router.routes()
                   if r.method == "PUT" and r.resource is not None
                   and r.resource.canonical == "/fapi/v1/order")
    api = live.server.keys["dev-1"]
    query = urlencode({"symbol": "NVDAUSDT", "side": "BUY", "quantity": "4", "price": "99",
                       "orderId": live.server.venue.open_orders(1)[0]["order_id"],
                       "recvWindow": 60_000, "timestamp": time.time_ns() // 1_000_000})
    query += "&signature=" + hmac.new(api.secret.encode(), query.encode(),
                                      hashlib.sha256).hexdigest()

    async def race() -> Any:
        # Act: account 2 sells a share into the bid and account 1 modifies it to 4 shares in
        # the same sequencer batch, the sell first (it was queued first): the modify was
        # read before the fill and runs after it
        sell = asyncio.ensure_future(live.server.call(2, "order.place", {
            "symbol": SYM, "side": "SELL", "price": 9_900, "qty": 100,
            "timeInForce": "IOC"}))
        await asyncio.sleep(0)  # the sell is queued; the sequencer has not run yet
        request = make_mocked_request("PUT", "/fapi/v1/order?" + query,
                                      headers={"X-MBX-APIKEY": api.key})
        modified = await handler(request)
        return (await sell)["result"], json.loads(modified.body)

    sold, modified = asyncio.run_coroutine_threadsafe(race(), live.loop).result(30)

    # Assert: one share filled before the modify ran; the order is 4 shares in all, 3 open
    assert sold["filledQty"] == 100
    assert (modified["origQty"], modified["executedQty"]) == ("4", "1")
    assert [o["qty"] for o in live.server.venue.open_orders(1)] == [300]
    live.server.venue.check_invariants()


def test_a_liquidation_order_is_named_autoclose_and_found_by_that_name(
        live: LiveServer) -> None:
    # Arrange: account 4 keeps $1,000, long 200 shares at $100 at 20x; bids below
    _system(live, Withdraw(4, 999_000_000_000), SetLeverage(4, SYM, 20),
            PlaceOrder(1, SYM, Side.SELL, 10_000, 20_000), PlaceOrder(4, SYM, BUY, 10_000, 20_000),
            PlaceOrder(2, SYM, BUY, 9_000, 50_000))

    # Act: the index falls 8%: the long is liquidated into account 2's bid
    events: list[Any] = []
    live.on_loop(lambda: events.extend(live.server.exchange.system(SetIndexPrice(SYM, 9_200))))
    live.on_loop(live.server.exchange.end_batch)
    accepted = [e for e in events if type(e).__name__ == "OrderAccepted"
                and e.liquidation_id is not None]
    name = f"autoclose-{accepted[0].liquidation_id}"
    status, order = _signed(live, "GET", "/fapi/v1/order",
                            {"symbol": "NVDAUSDT", "origClientOrderId": name}, key="dev-4")
    by_id = _signed(live, "GET", "/fapi/v1/order",
                    {"symbol": "NVDAUSDT", "orderId": accepted[0].order_id}, key="dev-4")[1]

    # Assert: Binance's name for a liquidation order, by either handle
    assert status == 200 and order["orderId"] == accepted[0].order_id
    assert order["clientOrderId"] == by_id["clientOrderId"] == name
    assert order["side"] == "SELL" and order["status"] in ("FILLED", "EXPIRED")
    synthetic = _signed(live, "GET", "/fapi/v1/order", {
        "symbol": "NVDAUSDT", "origClientOrderId": f"gaemi-{accepted[0].order_id}"},
        key="dev-4")
    assert synthetic[1]["code"] == -2013  # not its name


def test_ccxt_reads_its_order_history_and_its_fees(live: LiveServer) -> None:
    # Arrange: one order filled, one cancelled, one open
    trader, other = _client(live, "dev-1"), _client(live, "dev-2")
    filled = trader.create_order(S, "limit", "buy", 1, 100.00)
    other.create_order(S, "market", "sell", 1)
    cancelled = trader.create_order(S, "limit", "buy", 2, 98.00)
    trader.cancel_order(cancelled["id"], S)
    resting = trader.create_order(S, "limit", "sell", 3, 102.00)

    # Act
    history = trader.fetch_orders(S)
    closed = trader.fetch_closed_orders(S)
    since = trader.fetch_orders(S, params={"orderId": cancelled["id"]})
    fee = trader.fetch_trading_fee(S)

    # Assert: every order of the account in that market, oldest first, as it stands
    assert [(o["id"], o["status"], o["filled"]) for o in history] == [
        (filled["id"], "closed", 1), (cancelled["id"], "canceled", 0),
        (resting["id"], "open", 0)]
    assert [o["id"] for o in closed] == [filled["id"]]
    assert [o["id"] for o in since] == [cancelled["id"], resting["id"]]
    assert other.fetch_orders(S)[0]["side"] == "sell"  # the other account's own only
    assert (fee["info"]["makerCommissionRate"], fee["info"]["takerCommissionRate"]) == (
        "0.0002", "0.0005")
