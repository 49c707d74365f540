"""Faults and hostile peers against a real server: ``kill -9`` with cancel-on-disconnect and
dead-man switches armed, anonymous clients that ask for big snapshots and never read, the
connection limits, a client that names no subprotocol, and the request id of a refused frame.
Servers are real processes (``gaemi serve``) where the test kills them or measures their
memory, and in-process servers (tests/gateway/live.py) otherwise."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from gaemi.gateway.sessions import Limits
from gaemi.gateway.wire.errors import GatewayCode as G
from gaemi.risk.recovery import recover, snapshot_paths
from tests.gateway.live import SYM, WsClient, live_server
from tests.gateway.procs import ServeProcess, rss_bytes

MIB = 1024 * 1024


def _place(side: str, price: int, qty: int, **more: object) -> dict[str, object]:
    return {"symbol": SYM, "side": side, "price": price, "qty": qty, **more}


def _open_orders(server: ServeProcess, key: str) -> list[int]:
    c = server.client(key)
    try:
        return sorted(o["orderId"] for o in c.result("account.openOrders")["orders"])
    finally:
        c.close()


# -- crashes ---------------------------------------------------------------------------------


def test_cancel_on_disconnect_and_dead_man_switches_survive_kill_9(tmp_path: Path) -> None:
    """protocol.md §3 promises the cancel "for any reason" the connection ends: after a crash
    every connection is gone, so the restarted server runs those cancels (journaled) before
    it accepts anyone."""
    with ServeProcess(tmp_path) as server:
        # Arrange: account 1 with a cancel-on-disconnect session, account 2 under an armed
        # dead-man switch, account 3 with neither; three orders each
        admin = server.client("admin")
        admin.result("admin.setIndex", {"symbol": SYM, "price": 10_000})
        careful = server.client("dev-1", cancelOnDisconnect=True)
        armed = server.client("dev-2")
        assert armed.result("session.cancelAllAfter", {"timeoutMs": 600_000})["deadline"] > 0
        casual = server.client("dev-3")
        for i, c in enumerate((careful, armed, casual)):
            for k in range(3):
                c.result("order.place", _place("BUY", 9_900 - 10 * i - k, 1))
        casual_orders = _open_orders(server, "dev-3")

        # Act
        server.kill()

    with ServeProcess(tmp_path) as again:
        # Assert: the promised cancels ran, the others' orders are all there
        assert _open_orders(again, "dev-1") == []
        assert _open_orders(again, "dev-2") == []
        assert _open_orders(again, "dev-3") == casual_orders
        assert "cancels  accounts [1, 2]" in again.output()

        # Arrange: new orders of accounts 1 and 2, from sessions that asked for nothing
        for key in ("dev-1", "dev-2"):
            again.client(key).result("order.place", _place("BUY", 9_800, 2))
        kept = {key: _open_orders(again, key) for key in ("dev-1", "dev-2", "dev-3")}

        # Act: a second crash
        again.kill()

    with ServeProcess(tmp_path) as third:
        # Assert: the guards were cleared by the first recovery: nothing more is cancelled
        assert {key: _open_orders(third, key) for key in kept} == kept
        assert "cancels" not in third.output()
        assert third.stop() == 0


def test_a_restart_loads_the_newest_snapshot_and_replays_only_what_follows(
        tmp_path: Path) -> None:
    with ServeProcess(tmp_path, "--snapshot-every", "20") as server:
        # Arrange: more commands than three snapshot intervals, acknowledged
        admin = server.client("admin")
        admin.result("admin.setIndex", {"symbol": SYM, "price": 10_000})
        trader = server.client("dev-1")
        ids = [trader.result("order.place", _place("BUY", 9_000 + i, 1))["orderId"]
               for i in range(75)]
        deadline = time.monotonic() + 60
        while len(snapshot_paths(server.journal)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)  # the snapshot children write in the background

        # Act
        server.kill()

    with ServeProcess(tmp_path) as again:
        # Assert: every acknowledged order, and the recovery started from a snapshot
        assert _open_orders(again, "dev-1") == sorted(ids)
        line = next(x for x in again.output().splitlines() if "recovery" in x)
        assert "journal.gaemij.snap-" in line, line
        assert again.stop() == 0
    # a clean stop leaves a snapshot of the final state: nothing is replayed after it
    result = recover(tmp_path / "journal.gaemij")
    assert result.snapshot == snapshot_paths(tmp_path / "journal.gaemij")[0]
    assert result.replayed == 0
    result.venue.close()


def test_a_journal_ending_in_zeros_restarts(tmp_path: Path) -> None:
    # Arrange: a journal whose tail a power loss left as zeros
    with ServeProcess(tmp_path, "--snapshot-every", "0") as server:
        server.client("admin").result("admin.setIndex", {"symbol": SYM, "price": 10_000})
        placed = server.client("dev-1").result("order.place", _place("BUY", 9_990, 3))
        server.kill()
    journal = tmp_path / "journal.gaemij"
    size = journal.stat().st_size
    with journal.open("ab") as f:
        f.write(bytes(4096))

    # Act / Assert: it starts, the order is there, and the zeros were kept aside
    with ServeProcess(tmp_path) as again:
        assert _open_orders(again, "dev-1") == [placed["orderId"]]
        assert (tmp_path / f"journal.gaemij.torn-{size}").read_bytes() == bytes(4096)
        assert "dropped a torn tail of 4096 bytes" in again.output()


# -- memory and hostile peers ------------------------------------------------------------------


def _non_reader(url: str, frames: int, closed: list[bool]) -> None:
    """An anonymous client that asks for the deepest snapshots and never reads."""
    sock = socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    ws = connect(url, sock=sock, max_queue=1, compression=None, open_timeout=30,
                 ping_interval=None).__enter__()  # no keepalive thread (tests/gateway/live.py)
    frame = json.dumps({"id": 1, "op": "snapshot.book", "args": {"symbol": SYM,
                                                                 "depth": 1000}})
    ping = json.dumps({"id": 2, "op": "ping"})
    deadline = time.monotonic() + 120  # a bound for a stuck test, not a measurement
    try:
        for _ in range(frames):
            ws.send(frame)
        # everything was sent: still without reading, wait for the server to close on us
        while time.monotonic() < deadline:
            ws.send(ping)
            time.sleep(0.02)
    except (ConnectionClosed, OSError):
        closed.append(True)
        return
    closed.append(False)


def test_clients_that_never_read_cannot_grow_the_server_and_are_closed(tmp_path: Path) -> None:
    """Six anonymous clients sending ``snapshot.book`` (depth 1,000) and never reading took the
    server from 32 MiB to 372 MiB; now their output is capped in bytes and the snapshots are
    charged by their size, so they are closed (1008) and the server stays small."""
    with ServeProcess(tmp_path, "--orders-per-second", "5000") as server:
        # Arrange: 1,000 levels a side, so each snapshot is ~24 kB of JSON
        server.client("admin").result("admin.setIndex", {"symbol": SYM, "price": 10_000})
        for key, side, base, step in (("dev-1", "BUY", 9_999, -1), ("dev-2", "SELL", 10_001, 1)):
            maker = server.client(key)
            for start in range(0, 1000, 20):
                maker.result("order.batch", {"orders": [
                    {"op": "order.place", "args": _place(side, base + step * i, 1)}
                    for i in range(start, start + 20)]})
        trader = server.client("dev-3", encoding="gaemi.msgpack")
        baseline = rss_bytes(server.pid)
        peak = [baseline]
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], rss_bytes(server.pid))
                time.sleep(0.02)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        closed: list[bool] = []
        flood = [threading.Thread(target=_non_reader, args=(server.url, 3000, closed),
                                  daemon=True) for _ in range(6)]

        # Act: the flood, while the trader keeps trading
        for t in flood:
            t.start()
        results = []
        pace = 1 / 400  # a well-behaved trader: a place and a cancel at most every 2.5 ms,
        next_at = time.monotonic()  # under the server's 1,000 requests/s on any machine
        while any(t.is_alive() for t in flood):
            wait = next_at - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            next_at = max(next_at + pace, time.monotonic())
            order = trader.result("order.place", _place("BUY", 9_000, 1))
            results.append(trader.result("order.cancel", {"symbol": SYM,
                                                          "orderId": order["orderId"]}))
        for t in flood:
            t.join(5)
        stop.set()
        watcher.join(5)

        # Assert: all six closed with 1008 by the server, memory bounded, trading went on
        assert closed == [True] * 6
        closes = [x for x in server.output().splitlines() if "closing 1008" in x]
        assert len(closes) >= 6, server.output()[-3000:]
        assert peak[0] - baseline <= 64 * MIB, (baseline / MIB, peak[0] / MIB)
        assert results and all(r["canceledQty"] == 1 for r in results)
        assert trader.result("ping")["time"] > 0


def test_connections_are_limited_per_address_and_in_total() -> None:
    limits = Limits(max_connections=4, max_connections_per_address=2)
    with live_server(limits=limits) as live:
        # Arrange: two from 127.0.0.1 (its quota)
        first = [WsClient(live.url) for _ in range(2)]

        # Act / Assert: a third from the same address is refused with 503 before the upgrade
        with pytest.raises(InvalidStatus) as refused:
            WsClient(live.url)
        assert refused.value.response.status_code == 503

        # two more from another loopback address fill the total; a fifth is refused
        others = [_client_from("127.0.0.2", live.url) for _ in range(2)]
        with pytest.raises(InvalidStatus):
            _client_from("127.0.0.3", live.url)

        # a connection that leaves frees its place
        first[0].close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                again = WsClient(live.url)
                break
            except InvalidStatus:
                time.sleep(0.02)
        assert again.result("ping")["time"] > 0
        for c in [first[1], again, *others]:
            assert c.result("ping")["time"] > 0
            c.close()


def _client_from(source: str, url: str) -> WsClient:
    port = int(url.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), source_address=(source, 0))
    return WsClient(url, sock=sock)


# -- what the docs promised ---------------------------------------------------------------------


def test_a_client_that_names_no_subprotocol_speaks_json() -> None:
    """protocol.md §1: JSON is the default (``new WebSocket(url)``, wscat)."""
    with live_server() as live:
        # Act
        with connect(live.url, compression=None, open_timeout=10, ping_interval=None) as ws:
            ws.send(json.dumps({"id": "no-subprotocol", "op": "ping"}))
            response = json.loads(ws.recv(timeout=10))

            # Assert
            assert ws.subprotocol is None
            assert response["id"] == "no-subprotocol" and response["ok"] is True

        # one we do not speak is refused at the handshake
        with pytest.raises(InvalidStatus) as refused:
            connect(live.url, subprotocols=["graphql-ws"], open_timeout=10, ping_interval=None)
        assert refused.value.response.status_code == 400


def test_a_refused_frame_echoes_the_id_it_carries() -> None:
    with live_server() as live:
        c = WsClient(live.url)
        for frame, code in (
                ('{"id": 7, "op": "order.place", "args": {"price": 99.5}}', G.MALFORMED_MESSAGE),
                ('{"id": "big", "op": "ping", "args": {"x": 123456789012345678901234}}',
                 G.MALFORMED_MESSAGE),
                ('{"id": 9, "op": "ping", "args": {}, "extra": 1}', G.BAD_REQUEST)):
            # Act
            c.ws.send(frame)
            response = c.recv()

            # Assert
            assert response["id"] == json.loads(frame)["id"]
            assert response["error"]["code"] == code
        c.close()
