"""The gateway on a real websocket on loopback: trading in both encodings, bad input, floods,
slow consumers, cancel-on-disconnect, restart recovery, SIGTERM, and a fuzz of the live
server. Nothing is mocked: the server is gateway.server.Server on an ephemeral port."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from enum import IntEnum
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed

from gaemi.gateway.sessions import Limits
from gaemi.gateway.wire.codec import JSON, MSGPACK
from gaemi.gateway.wire.errors import GatewayCode as G
from gaemi.gateway.wire.errors import known_code
from tests.gateway.live import SYM, WsClient, live_server

ROOT = Path(__file__).resolve().parents[2]


def _place(side: str, price: int, qty: int, **more: object) -> dict[str, object]:
    return {"symbol": SYM, "side": side, "price": price, "qty": qty, **more}


def _local_book(pushes: list[dict]) -> tuple[list, list]:
    """Apply a book channel's snapshot and deltas, checking the sequence as a client must."""
    bids: dict[int, int] = {}
    asks: dict[int, int] = {}
    last = None
    for m in pushes:
        if not m["ch"].startswith("book."):
            continue
        data = m["data"]
        if data["type"] == "snapshot":
            bids, asks = dict(map(tuple, data["bids"])), dict(map(tuple, data["asks"]))
        else:
            assert m["prev"] == last, "gap in the book channel"
            for side, levels in ((bids, data["bids"]), (asks, data["asks"])):
                for price, qty in levels:
                    if qty:
                        side[price] = qty
                    else:
                        side.pop(price, None)
        last = m["seq"]
    return sorted(bids.items(), reverse=True), sorted(asks.items())


def test_clients_in_both_encodings_trade_and_agree_on_the_book() -> None:
    with live_server() as live:
        # Arrange: a JSON maker, a msgpack taker, a msgpack watcher of the book
        maker = live.client(JSON, "dev-1")
        taker = live.client(MSGPACK, "dev-2")
        watcher = live.client(MSGPACK)
        for c in (maker, taker):
            c.result("subscribe", {"channels": ["fills", "orders"]})
        watcher.result("subscribe", {"channels": [f"book.{SYM}", f"trades.{SYM}"]})

        # Act: a ladder of asks, lifted partly by the taker, then some cancels
        ids = [maker.result("order.place", _place("SELL", 10_000 + i, 10))["orderId"]
               for i in range(10)]
        maker.result("order.place", _place("BUY", 9_990, 7))
        bought = taker.result("order.place", _place("BUY", 10_003, 35))
        for oid in ids[6:]:
            maker.result("order.cancel", {"symbol": SYM, "orderId": oid})
        maker.result("ping")
        taker.result("ping")

        # Assert: 35 lots filled across four levels; both sides saw their fills
        assert (bought["status"], bought["filledQty"]) == ("FILLED", 35)
        maker_fills = [m["data"] for m in maker.drain() + maker.pushes if m["ch"] == "fills"]
        taker_fills = [m["data"] for m in taker.pushes if m["ch"] == "fills"]
        assert sum(f["qty"] for f in taker_fills) == 35
        assert [(f["price"], f["qty"]) for f in taker_fills] == \
            [(10_000, 10), (10_001, 10), (10_002, 10), (10_003, 5)]
        assert sorted((f["tradeId"], f["qty"]) for f in maker_fills) == \
            sorted((f["tradeId"], f["qty"]) for f in taker_fills)
        assert {f["role"] for f in maker_fills} == {"maker"}
        # the watcher's book, rebuilt from snapshot + deltas, is the server's book
        pushes = watcher.drain()
        trades = [m["data"] for m in pushes if m["ch"] == f"trades.{SYM}"]
        assert sum(t["qty"] for t in trades) == 35 and all(t["side"] == "BUY" for t in trades)
        server_book = live.on_loop(lambda: live.server.venue.book(SYM).depth(1000))
        assert _local_book(pushes) == (list(server_book[0]), list(server_book[1]))
        assert _local_book(pushes) == ([(9_990, 7)], [(10_003, 5), (10_004, 10), (10_005, 10)])
        snap = taker.result("snapshot.book", {"symbol": SYM})
        assert (snap["bids"], snap["asks"]) == ([[9_990, 7]], [[10_003, 5], [10_004, 10],
                                                               [10_005, 10]])
        live.on_loop(live.server.venue.check_invariants)


def test_bad_input_gets_typed_errors_and_leaves_the_connection_and_others_alone() -> None:
    with live_server() as live:
        # Arrange
        bad = live.client(JSON, "dev-1")
        other = live.client(MSGPACK, "dev-2")
        other.result("order.place", _place("BUY", 9_990, 1))
        before = live.on_loop(live.server.venue.state_hash)

        # Act / Assert: each mistake, its code, and the connection goes on
        cases = [("{oops", G.MALFORMED_MESSAGE), ("[]", G.MALFORMED_MESSAGE),
                 ('{"id": 1, "op": 5}', G.BAD_REQUEST),
                 ('{"id": 2, "op": "fly"}', G.UNKNOWN_OP),
                 ('{"id": 3, "op": "order.place", "args": {"symbol": "NVDA-PERP", '
                  '"side": "BUY", "price": "10000", "qty": 1}}', G.BAD_ARGUMENT),
                 ('{"id": 4, "op": "order.place", "args": {"symbol": "NVDA-PERP", '
                  '"side": "BUY", "price": 99.5, "qty": 1}}', G.MALFORMED_MESSAGE),
                 ("x" * (64 * 1024 + 1), G.MESSAGE_TOO_LARGE),
                 (b"\x81\xa2id\x01", G.MALFORMED_MESSAGE)]  # msgpack on a JSON connection
        for frame, code in cases:
            bad.ws.send(frame)
            response = bad.recv()  # no subscriptions: the next message is the response
            assert response["ok"] is False and response["error"]["code"] == code, frame[:40]
        assert bad.result("ping")["time"] > 0
        assert live.on_loop(live.server.venue.state_hash) == before

        # a frame over the websocket limit (1 MiB) closes that connection only
        bad.ws.send("y" * (2 * 1024 * 1024))
        with pytest.raises(ConnectionClosed) as closed:
            bad.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        assert other.result("account.openOrders")["orders"][0]["price"] == 9_990


def test_a_flood_is_limited_then_disconnected_and_others_keep_trading() -> None:
    limits = Limits(requests_per_second=50, orders_per_second=50)
    with live_server(limits=limits) as live:
        # Arrange
        flood = live.client(JSON)
        calm = live.client(MSGPACK, "dev-2")

        # Act: 400 requests without waiting
        for i in range(400):
            try:
                flood.send({"id": i, "op": "ping"})
            except ConnectionClosed:
                break
        codes = []
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                message = flood.recv()
                codes.append(message.get("error", {}).get("code"))

        # Assert: the first 100 (the burst) pass, then 8010, then the door: 1008 rate limit
        assert codes[:100] == [None] * 100
        assert G.RATE_LIMITED in codes[100:]
        assert closed.value.rcvd.code == 1008 and closed.value.rcvd.reason == "rate limit"
        assert calm.result("order.place", _place("BUY", 9_990, 1))["status"] == "NEW"
        assert any(reason == "rate limit" for _, _, reason in live.server.dropped)


@pytest.mark.parametrize("bound", ["messages", "bytes"])
def test_a_slow_consumer_is_dropped_and_does_not_hold_up_the_others(bound: str) -> None:
    # the server's kernel send buffer is fixed (64 KiB) and the client's receive buffer tiny,
    # so what the client leaves unread (2,000 snapshots: about 12 MB) lands in the server's
    # queue whatever the kernel's defaults, and passes either bound by far
    limits = Limits(requests_per_second=100_000, orders_per_second=100_000,
                    outbox_max=200 if bound == "messages" else 100_000,
                    outbox_bytes=1024 * 1024 if bound == "bytes" else 1 << 40)
    with live_server(limits=limits, send_buffer=64 * 1024) as live:
        # Arrange: a book of 400 levels (a snapshot of it is about 6 kB), and a client with a
        # tiny receive buffer that asks for 2,000 snapshots and reads none of them
        for key, side, base in (("dev-1", "BUY", 9_990), ("dev-2", "SELL", 10_010)):
            trader = live.client(MSGPACK, key)
            for start in range(0, 200, 20):
                trader.result("order.batch", {"orders": [
                    {"op": "order.place", "args": _place(side, base + (i if side == "SELL"
                                                                     else -i), 1)}
                    for i in range(start, start + 20)]})
        sock = socket.create_connection((live.server.host, live.server.port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow = WsClient(live.url, JSON, sock=sock, max_queue=1)
        busy = live.client(MSGPACK, "dev-3")

        # Act: the server may drop it before it has sent them all (how soon depends on the
        # machine's speed): then its sends stop, which is the point
        try:
            for i in range(2_000):
                slow.send({"id": i, "op": "snapshot.book",
                           "args": {"symbol": SYM, "depth": 1000}})
        except ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code == 1008, closed
        results = [busy.result("order.place", _place("BUY", 9_000 + i, 1))["status"]
                   for i in range(100)]
        deadline = time.monotonic() + 120  # a bound for a stuck test, not a measurement
        while not live.server.dropped and time.monotonic() < deadline:
            time.sleep(0.02)
        dropped = bool(live.server.dropped)

        # Assert: dropped with its reason, and the busy client was served throughout
        assert dropped and live.server.dropped[0][1:] == (1008, "slow consumer")
        assert results == ["NEW"] * 100
        assert busy.result("account.balance")["openOrders"] == 100
        live.on_loop(live.server.venue.check_invariants)


def test_cancel_on_disconnect_cancels_only_for_connections_that_asked() -> None:
    with live_server() as live:
        # Arrange
        careful = live.client(JSON, "dev-1", cancelOnDisconnect=True)
        casual = live.client(JSON, "dev-2")
        careful.result("order.place", _place("BUY", 9_990, 3))
        casual.result("order.place", _place("SELL", 10_010, 3))
        watcher = live.client(MSGPACK, "dev-3")

        # Act
        careful.close()
        casual.close()
        deadline = time.time() + 10
        while live.on_loop(lambda: live.server.venue.open_orders(1)) and time.time() < deadline:
            time.sleep(0.02)

        # Assert
        assert live.on_loop(lambda: live.server.venue.open_orders(1)) == []
        snap = watcher.result("snapshot.book", {"symbol": SYM})
        assert (snap["bids"], snap["asks"]) == ([], [[10_010, 3]])


def test_a_restarted_server_recovers_every_acknowledged_order(tmp_path: Path) -> None:
    journal = tmp_path / "journal.gaemij"
    acked: dict[int, int] = {}  # order id -> acknowledged open qty
    with live_server(journal=journal) as live:
        first = live.server
        # Arrange: orders acknowledged in both encodings, some cancelled, some filled
        a = live.client(JSON, "dev-1")
        a.result("subscribe", {"channels": ["fills"]})
        b = live.client(MSGPACK, "dev-2")
        for i in range(40):
            r = a.result("order.place", _place("BUY", 9_900 + i, 1 + i % 3))
            acked[r["orderId"]] = r["remainingQty"]
        for oid in list(acked)[::4]:
            a.result("order.cancel", {"symbol": SYM, "orderId": oid})
            del acked[oid]
        assert b.result("order.place", _place("SELL", 9_930, 5, timeInForce="IOC"))[
            "filledQty"] == 5
        a.result("ping")
        for m in a.pushes:
            acked[m["data"]["orderId"]] -= m["data"]["qty"]
        expected = {oid: qty for oid, qty in acked.items() if qty}
        assert len(expected) < len(acked)  # the sell filled some of them completely

    # Act: the journal read back offline, and a new server on it
    final_hash = first.venue.state_hash()
    from gaemi.risk import Venue
    offline = Venue.recover(journal)
    offline.close()
    with live_server(journal=journal, keys=first.keys, dev_accounts=0) as again:
        orders = again.client(JSON, "dev-1").result("account.openOrders")["orders"]
        position = again.client(JSON, "dev-2").result("account.positions")["positions"]

        # Assert: the same state; every acknowledged order is back with its open size
        assert offline.state_hash() == final_hash
        assert {o["orderId"]: o["qty"] for o in orders} == expected
        assert [(p["symbol"], p["size"]) for p in position] == [(SYM, -5)]
        again.on_loop(again.server.venue.check_invariants)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_cli(tmp: Path, port: int) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "gaemi.clients.cli", "serve", "--port", str(port),
         "--journal", str(tmp / "j.gaemij"), "--dev-keys-file", str(tmp / "keys.json"),
         "--dev-accounts", "2"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert process.stdout is not None
    for line in process.stdout:
        if "stop with Ctrl-C" in line:
            return process
    process.kill()
    raise AssertionError("gaemi serve did not start")


def test_gaemi_serve_stops_cleanly_on_sigterm_and_comes_back_with_its_orders(
        tmp_path: Path) -> None:
    # Arrange: the real command line, a logged-on client with an acknowledged order
    port = _free_port()
    server = _start_cli(tmp_path, port)
    try:
        keys = {k["apiKey"]: k for k in json.loads((tmp_path / "keys.json").read_text())["keys"]}
        admin = WsClient(f"ws://127.0.0.1:{port}")
        admin.logon("admin", keys["admin"]["secret"])
        admin.result("admin.setIndex", {"symbol": SYM, "price": 10_000})
        trader = WsClient(f"ws://127.0.0.1:{port}", MSGPACK)
        trader.logon("dev-1", keys["dev-1"]["secret"])
        placed = trader.result("order.place", _place("BUY", 9_950, 4, clientOrderId="keep"))

        # Act
        server.send_signal(signal.SIGTERM)
        with pytest.raises(ConnectionClosed) as closed:
            trader.recv(timeout=15)
        code = server.wait(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()

    # Assert: a clean exit, a 1001 close, and the order is there after a restart
    assert code == 0
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    server = _start_cli(tmp_path, port)
    try:
        trader = WsClient(f"ws://127.0.0.1:{port}")
        trader.logon("dev-1", keys["dev-1"]["secret"])
        orders = trader.result("account.openOrders")["orders"]
        assert [(o["orderId"], o["clientOrderId"], o["price"], o["qty"]) for o in orders] == \
            [(placed["orderId"], "keep", 9_950, 4)]
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=30) == 0
    finally:
        if server.poll() is None:
            server.kill()


@pytest.fixture(scope="module")
def fuzz_server():
    with live_server() as live:
        yield live


_FRAMES = st.one_of(
    st.binary(max_size=300), st.text(max_size=300),
    st.builds(lambda d: json.dumps(d), st.dictionaries(
        st.sampled_from(["id", "op", "args", "x"]),
        st.one_of(st.integers(), st.text(max_size=20), st.none(), st.booleans(),
                  st.sampled_from(["order.place", "subscribe", "ping", "order.batch"]),
                  st.dictionaries(st.text(max_size=8), st.integers(), max_size=4)),
        max_size=4)))


@settings(max_examples=120, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(frames=st.lists(_FRAMES, min_size=1, max_size=8))
def test_fuzz_the_live_server_with_arbitrary_frames(fuzz_server, frames) -> None:
    # Arrange
    live = fuzz_server
    before = live.on_loop(live.server.venue.state_hash)
    c = WsClient(live.url)
    try:
        for frame in frames:
            # Act
            c.ws.send(frame)
            message = c.recv()

            # Assert: one response per frame, typed when it is an error
            assert "ok" in message
            if not message["ok"]:
                assert isinstance(known_code(message["error"]["code"]), IntEnum)
        assert c.result("ping")["time"] > 0
    finally:
        c.close()
    assert live.on_loop(live.server.venue.state_hash) == before
