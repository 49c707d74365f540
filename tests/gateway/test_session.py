"""The sans-I/O exchange (gateway/exchange.py): every rule of docs/protocol.md that does not
need a socket, on both books. Time is an argument, so rate limits and the dead-man switch are
tested to the nanosecond."""

from __future__ import annotations

import random
from enum import IntEnum
from typing import Any

import msgpack
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gaemi.engine.codes import RejectReason as R
from gaemi.gateway.exchange import Exchange
from gaemi.gateway.sessions import Conn, Limits
from gaemi.gateway.wire.auth import ApiKey, sign
from gaemi.gateway.wire.codec import JSON, MSGPACK
from gaemi.gateway.wire.errors import GatewayCode as G
from gaemi.gateway.wire.errors import known_code
from gaemi.risk import Deposit, SetIndexPrice, Venue, preset, usd

SYM = "NVDA-PERP"
T0 = 1_767_225_600_000_000_000  # ns
MS = 1_000_000
KEYS = {"a": ApiKey("a", "sa", 1), "b": ApiKey("b", "sb", 2), "c": ApiKey("c", "sc", 3),
        "ops": ApiKey("ops", "so", 0, admin=True)}
SECRETS = {"a": "sa", "b": "sb", "c": "sc", "ops": "so"}


def _exchange(impl: str, limits: Limits | None = None) -> Exchange:
    venue = Venue([preset(SYM, session=None)], book=impl, start_ts=T0)
    for account in (1, 2, 3):
        venue.submit(Deposit(account, usd(100_000)))
    venue.submit(SetIndexPrice(SYM, 10_000))
    return Exchange(venue, KEYS, limits=limits)


class Client:
    """A connection driven by hand: ``call`` sends one request and returns everything the
    connection received for it (pushes first, then the response)."""

    def __init__(self, ex: Exchange, encoding: str = JSON, now: int = T0) -> None:
        self.ex = ex
        self.conn: Conn = ex.connect(encoding, now)
        self.now = now
        self.ids = 0

    def raw(self, frame: str | bytes) -> list[dict[str, Any]]:
        self.ex.receive(self.conn, frame, self.now)
        return self.take()

    def take(self) -> list[dict[str, Any]]:
        out = [msgpack.unpackb(f) if isinstance(f, bytes) else orjson.loads(f)
               for f in self.conn.outbox]
        self.conn.outbox.clear()
        return out

    def call(self, op: str, args: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        self.ids += 1
        message = {"id": self.ids, "op": op, "args": args or {}}
        frame = msgpack.packb(message) if self.conn.encoding == MSGPACK else \
            orjson.dumps(message).decode()
        return self.raw(frame)

    def result(self, op: str, args: dict[str, Any] | None = None) -> Any:
        response = self.call(op, args)[-1]
        assert response["ok"], response
        return response["result"]

    def error(self, op: str, args: dict[str, Any] | None = None) -> int:
        response = self.call(op, args)[-1]
        assert not response["ok"], response
        return response["error"]["code"]

    def logon(self, key: str, **extra: Any) -> Any:
        args = {"apiKey": key, "timestamp": self.now // MS, **extra}
        args["signature"] = sign(args, SECRETS[key])
        return self.result("session.logon", args)


def _place(side: str, price: int, qty: int, **more: Any) -> dict[str, Any]:
    return {"symbol": SYM, "side": side, "price": price, "qty": qty, **more}


# -- logon ---------------------------------------------------------------------------------------


def test_logon_names_the_account_and_refuses_every_bad_logon(impl: str) -> None:
    # Arrange
    ex = _exchange(impl)
    c = Client(ex)
    before = ex.venue.state_hash()
    good = {"apiKey": "a", "timestamp": T0 // MS}

    # Act / Assert: each refusal has its code
    assert c.error("order.place", _place("BUY", 9_990, 1)) == G.NOT_LOGGED_IN
    assert c.error("session.logon", {**good, "signature": sign(good, "wrong")}) == \
        G.BAD_SIGNATURE
    unknown = {"apiKey": "zz", "timestamp": T0 // MS}
    assert c.error("session.logon", {**unknown, "signature": sign(unknown, "x")}) == \
        G.UNKNOWN_API_KEY
    stale = {"apiKey": "a", "timestamp": T0 // MS - 5_001}
    assert c.error("session.logon", {**stale, "signature": sign(stale, "sa")}) == \
        G.STALE_TIMESTAMP
    ahead = {"apiKey": "a", "timestamp": T0 // MS + 1_001}
    assert c.error("session.logon", {**ahead, "signature": sign(ahead, "sa")}) == \
        G.STALE_TIMESTAMP
    assert c.error("admin.setIndex", {"symbol": SYM, "price": 1}) == G.NOT_LOGGED_IN
    assert ex.venue.state_hash() == before
    result = c.logon("a", cancelOnDisconnect=True)
    assert result["accountId"] == 1 and result["cancelOnDisconnect"] is True
    assert c.error("session.logon", {**good, "signature": sign(good, "sa")}) == \
        G.ALREADY_LOGGED_IN
    assert c.error("admin.setIndex", {"symbol": SYM, "price": 1}) == G.FORBIDDEN
    assert ex.venue.state_hash() == before


def test_bad_requests_get_typed_errors_and_change_nothing(impl: str) -> None:
    # Arrange
    ex = _exchange(impl)
    c = Client(ex)
    c.logon("a")
    before = ex.venue.state_hash()

    # Act / Assert
    assert c.raw("{not json")[-1]["error"]["code"] == G.MALFORMED_MESSAGE
    assert c.raw("[1, 2]")[-1]["error"]["code"] == G.MALFORMED_MESSAGE
    assert c.raw('{"id": 5, "op": "nope"}')[-1] == {
        "id": 5, "ok": False,
        "error": {"code": G.UNKNOWN_OP, "msg": "UNKNOWN_OP: unknown op 'nope'"}}
    assert c.raw('{"id": 6, "op": "order.place", "args": {"symbol": "NVDA-PERP", '
                 '"side": "BUY", "price": 10000.5, "qty": 1}}')[-1]["error"]["code"] == \
        G.MALFORMED_MESSAGE
    assert c.error("order.place", {**_place("BUY", 9_990, 1), "qty": "1"}) == G.BAD_ARGUMENT
    assert c.error("order.place", {**_place("BUY", 9_990, 1), "colour": "red"}) == \
        G.BAD_ARGUMENT
    assert c.error("order.place", {**_place("BUY", 9_990, 1), "symbol": "XXX"}) == \
        R.UNKNOWN_MARKET
    assert c.error("order.place", _place("BUY", 9_990, 10**9)) == R.ORDER_TOO_LARGE
    assert c.error("subscribe", {"channels": ["book.XXX"]}) == G.UNKNOWN_TOPIC
    assert c.raw("x" * 70_000)[-1]["error"]["code"] == G.MESSAGE_TOO_LARGE
    assert c.error("order.batch", {"orders": [
        {"op": "order.cancelAll", "args": {}}] * 21}) == G.BATCH_TOO_LARGE
    assert c.error("session.cancelAllAfter", {"timeoutMs": 5}) == G.BAD_ARGUMENT

    # nothing happened, and the connection still works
    assert ex.venue.state_hash() == before
    assert c.result("order.place", _place("BUY", 9_990, 1))["status"] == "NEW"


# -- the ordering rule ---------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", [JSON, MSGPACK])
def test_private_pushes_come_before_the_response_that_caused_them(impl: str, encoding: str) -> None:
    # Arrange: a resting sell of b; a subscribes to its private channels
    ex = _exchange(impl)
    a, b = Client(ex, encoding), Client(ex)
    a.logon("a")
    b.logon("b")
    a.result("subscribe", {"channels": ["orders", "fills", "positions", "account"]})
    b.result("subscribe", {"channels": ["fills", "positions"]})
    b.result("order.place", _place("SELL", 10_000, 5))
    b.take()

    # Act: a buys 3 of them
    received = a.call("order.place", _place("BUY", 10_000, 3, clientOrderId="x1"))

    # Assert: accepted, fill, position, balance, then the response, each channel in sequence
    kinds = [m.get("ch") for m in received]
    assert kinds == ["orders", "fills", "positions", "account", None]
    response = received[-1]
    assert response["result"] == {"orderId": received[0]["data"]["orderId"],
                                  "clientOrderId": "x1", "symbol": SYM, "status": "FILLED",
                                  "filledQty": 3, "remainingQty": 0}
    fill = received[1]["data"]
    assert (fill["side"], fill["price"], fill["qty"], fill["role"]) == ("BUY", 10_000, 3, "taker")
    assert fill["fee"] == 10_000 * 3 * 100 * 500_000 // 10**9  # taker 0.05%, exact here
    assert received[2]["data"]["size"] == 3
    assert received[3]["data"]["balance"] == ex.venue.account(1).balance
    assert [m["seq"] for m in received[:4]] == [1, 1, 1, 1]
    assert all(m["prev"] == m["seq"] - 1 for m in received[:4])
    # the maker's connection heard of its fill and its position, not of a's
    maker = b.take()
    assert [m["ch"] for m in maker] == ["fills", "positions"]
    assert maker[0]["data"]["role"] == "maker" and maker[1]["data"]["size"] == -3


def test_order_results_name_the_outcome(impl: str) -> None:
    # Arrange
    ex = _exchange(impl)
    a, b = Client(ex), Client(ex)
    a.logon("a")
    b.logon("b")
    b.result("order.place", _place("SELL", 10_000, 5))

    # Act / Assert
    partial = a.result("order.place", _place("BUY", 10_000, 8))
    assert (partial["status"], partial["filledQty"], partial["remainingQty"]) == \
        ("PARTIALLY_FILLED", 5, 3)
    ioc = a.result("order.place", _place("SELL", 10_100, 2, timeInForce="IOC"))
    assert (ioc["status"], ioc["filledQty"], ioc["remainingQty"]) == ("EXPIRED", 0, 0)
    assert a.error("order.place", _place("SELL", 10_000, 1, timeInForce="POST_ONLY")) == \
        R.POST_ONLY_WOULD_CROSS
    stop = a.result("order.place", {"symbol": SYM, "side": "SELL", "type": "STOP_MARKET",
                                    "qty": 1, "triggerPrice": 9_000, "reduceOnly": True})
    assert stop["status"] == "UNTRIGGERED"
    amended = a.result("order.amend", {"symbol": SYM, "orderId": partial["orderId"],
                                       "qty": 2})
    assert amended == {"orderId": partial["orderId"], "symbol": SYM, "price": 10_000, "qty": 2}
    canceled = a.result("order.cancel", {"symbol": SYM, "orderId": partial["orderId"]})
    assert canceled == {"orderId": partial["orderId"], "symbol": SYM, "canceledQty": 2}
    assert a.error("order.cancel", {"symbol": SYM, "orderId": partial["orderId"]}) == \
        R.UNKNOWN_ORDER
    assert a.result("order.cancelAll") == {"canceled": 1}  # the stop
    assert a.result("account.openOrders") == {"orders": []}
    positions = a.result("account.positions")["positions"]
    assert [(p["symbol"], p["size"]) for p in positions] == [(SYM, 5)]


def test_a_batch_runs_each_order_and_reports_each_outcome(impl: str) -> None:
    # Arrange
    ex = _exchange(impl)
    a = Client(ex)
    a.logon("a")

    # Act
    result = a.result("order.batch", {"orders": [
        {"op": "order.place", "args": _place("BUY", 9_990, 1, clientOrderId="k")},
        {"op": "order.place", "args": _place("BUY", 9_980, 1, clientOrderId="k")},
        {"op": "order.cancel", "args": {"symbol": SYM, "clientOrderId": "k"}},
    ]})["results"]

    # Assert: the duplicate client id is refused in place; the others ran in order
    assert [r["ok"] for r in result] == [True, False, True]
    assert result[1]["error"]["code"] == R.DUPLICATE_CLIENT_ORDER_ID
    assert result[2]["result"]["orderId"] == result[0]["result"]["orderId"]
    assert ex.venue.open_orders(1) == []


# -- book channel --------------------------------------------------------------------------------


def _apply(book: dict[str, dict[int, int]], data: dict[str, Any]) -> None:
    if data["type"] == "snapshot":
        book["bids"] = dict(map(tuple, data["bids"]))
        book["asks"] = dict(map(tuple, data["asks"]))
        return
    for side in ("bids", "asks"):
        for price, qty in data[side]:
            if qty:
                book[side][price] = qty
            else:
                book[side].pop(price, None)


def test_book_deltas_rebuild_the_book_exactly_across_random_batches(impl: str) -> None:
    # Arrange: three traders, one watcher keeping a local book from the channel
    ex = _exchange(impl)
    traders = [Client(ex) for _ in range(3)]
    for t, key in zip(traders, "abc", strict=True):
        t.logon(key)
    watcher = Client(ex, MSGPACK)
    watcher.result("subscribe", {"channels": [f"book.{SYM}", f"bbo.{SYM}"]})
    rng = random.Random(7)
    book: dict[str, dict[int, int]] = {"bids": {}, "asks": {}}
    last = {"book": None, "bbo": 0}
    open_ids: list[tuple[Client, int]] = []

    for batch in range(60):
        # Act: a batch of random requests, then the conflated deltas
        for _ in range(rng.randint(1, 12)):
            t = rng.choice(traders)
            roll = rng.random()
            if roll < 0.55 or not open_ids:
                side = rng.choice(("BUY", "SELL"))
                price = 10_000 + rng.randint(-30, 30)
                response = t.call("order.place", _place(side, price, rng.randint(1, 9)))[-1]
                if response["ok"] and response["result"]["remainingQty"]:
                    open_ids.append((t, response["result"]["orderId"]))
            elif roll < 0.8:
                owner, oid = open_ids.pop(rng.randrange(len(open_ids)))
                owner.call("order.cancel", {"symbol": SYM, "orderId": oid})
            else:
                owner, oid = rng.choice(open_ids)
                owner.call("order.amend", {"symbol": SYM, "orderId": oid,
                                           "qty": rng.randint(1, 9)})
        if batch == 30:  # a snapshot request mid-stream agrees with the channel
            snap = traders[0].result("snapshot.book", {"symbol": SYM, "depth": 1000})
        ex.end_batch()
        for message in watcher.take():
            kind = message["ch"].split(".")[0]
            if kind == "book":
                if message["data"]["type"] == "snapshot":
                    assert message["prev"] is None
                else:
                    assert message["prev"] == last["book"]
                last["book"] = message["seq"]
                _apply(book, message["data"])
            else:
                assert message["prev"] == last["bbo"]
                last["bbo"] = message["seq"]
                bbo = message["data"]
        if batch == 30:
            # the snapshot taken inside the batch is the state the next delta starts from
            assert snap["seq"] == last["book"] - (1 if last["book"] > snap["seq"] else 0)

        # Assert: the local book is the venue's book, level for level
        bids, asks = ex.venue.book(SYM).depth(1000)
        assert sorted(book["bids"].items(), reverse=True) == list(bids)
        assert sorted(book["asks"].items()) == list(asks)
        if bids or asks:
            assert (bbo["bid"], bbo["ask"]) == (ex.venue.book(SYM).best_bid(),
                                               ex.venue.book(SYM).best_ask())
        ex.venue.check_invariants()
    assert last["book"] > 30  # the stream really moved


def test_a_snapshot_inside_a_batch_plus_the_next_delta_is_the_book(impl: str) -> None:
    # Arrange: a level that changes and changes back within one batch, around a snapshot
    ex = _exchange(impl)
    a = Client(ex)
    a.logon("a")
    watcher = Client(ex)
    watcher.result("subscribe", {"channels": [f"book.{SYM}"]})
    first = a.result("order.place", _place("BUY", 9_990, 5))
    ex.end_batch()
    watcher.take()

    # Act: amend down, snapshot, amend back up, place another level; then the batch ends
    a.result("order.amend", {"symbol": SYM, "orderId": first["orderId"], "qty": 2})
    snap = a.result("snapshot.book", {"symbol": SYM})
    a.result("order.cancel", {"symbol": SYM, "orderId": first["orderId"]})
    a.result("order.place", _place("BUY", 9_990, 5))
    a.result("order.place", _place("BUY", 9_980, 1))
    ex.end_batch()
    delta = watcher.take()[-1]

    # Assert: the snapshot is the published state (not the half-done batch), and the delta
    # that follows it (prev == its seq) brings it to the venue's book
    assert snap["bids"] == [[9_990, 5]]
    assert delta["prev"] == snap["seq"]
    book = {"bids": dict(map(tuple, snap["bids"])), "asks": {}}
    _apply(book, delta["data"])
    assert sorted(book["bids"].items(), reverse=True) == ex.venue.book(SYM).depth(10)[0]


# -- limits, dead-man switch, disconnects --------------------------------------------------------


def test_a_flood_is_rate_limited_then_disconnected_without_touching_others(impl: str) -> None:
    # Arrange: 10 requests a second (burst 20)
    ex = _exchange(impl, Limits(requests_per_second=10, orders_per_second=10))
    flood, calm = Client(ex), Client(ex)

    # Act: 20 pings pass, the 21st is limited; 10 more limited ones close the connection
    codes = [flood.call("ping")[-1].get("error", {}).get("code") for _ in range(31)]

    # Assert
    assert codes[:20] == [None] * 20
    assert codes[20:] == [G.RATE_LIMITED] * 11
    assert flood.conn.close == (1008, "rate limit")
    assert calm.result("ping")["time"] == ex.venue.time
    assert calm.conn.close is None
    # tokens come back with time: 100 ms is one request
    flood.now += 100 * MS
    assert flood.call("ping")[-1]["ok"] is True
    assert flood.call("ping")[-1]["error"]["code"] == G.RATE_LIMITED


def test_the_order_rate_limit_is_per_account_across_connections(impl: str) -> None:
    # Arrange: 5 orders a second, burst 10; two connections of account 1
    ex = _exchange(impl, Limits(requests_per_second=1_000, orders_per_second=5))
    one, two, other = Client(ex), Client(ex), Client(ex)
    one.logon("a")
    two.logon("a")
    other.logon("b")

    # Act
    for i in range(5):
        one.result("order.place", _place("BUY", 9_900 + i, 1))
        two.result("order.place", _place("BUY", 9_800 + i, 1))

    # Assert: the eleventh order of the account is refused on either connection; b is free
    assert one.error("order.place", _place("BUY", 9_700, 1)) == G.RATE_LIMITED
    assert two.error("order.batch", {"orders": [
        {"op": "order.cancelAll", "args": {}}]}) == G.RATE_LIMITED
    assert other.result("order.place", _place("SELL", 10_100, 1))["status"] == "NEW"
    assert len(ex.venue.open_orders(1)) == 10


def test_the_dead_man_switch_cancels_at_its_deadline_and_not_before(impl: str) -> None:
    # Arrange
    ex = _exchange(impl)
    a = Client(ex)
    a.logon("a")
    a.result("order.place", _place("BUY", 9_990, 1))
    armed = a.result("session.cancelAllAfter", {"timeoutMs": 1_000})
    assert armed["deadline"] == T0 // MS + 1_000

    # Act / Assert: renewed at +600 ms, so +1000 ms is not the deadline any more
    ex.tick(T0 + 600 * MS)
    a.now = T0 + 600 * MS
    a.result("session.cancelAllAfter", {"timeoutMs": 1_000})
    ex.tick(T0 + 1_599 * MS)
    assert len(ex.venue.open_orders(1)) == 1
    ex.tick(T0 + 1_600 * MS)
    assert ex.venue.open_orders(1) == []
    # disarmed: nothing happens later
    a.result("order.place", _place("BUY", 9_990, 1))
    a.result("session.cancelAllAfter", {"timeoutMs": 1_000})
    a.result("session.cancelAllAfter", {"timeoutMs": 0})
    ex.tick(T0 + 10_000 * MS)
    assert len(ex.venue.open_orders(1)) == 1
    assert ex.venue.time == T0 + 10_000 * MS  # the tick advanced venue time
    ex.venue.check_invariants()


def test_cancel_on_disconnect_only_when_asked(impl: str) -> None:
    # Arrange
    ex = _exchange(impl)
    careful, casual = Client(ex), Client(ex)
    careful.logon("a", cancelOnDisconnect=True)
    casual.logon("b")
    careful.result("order.place", _place("BUY", 9_990, 1))
    casual.result("order.place", _place("SELL", 10_010, 1))
    watcher = Client(ex)
    watcher.result("subscribe", {"channels": [f"book.{SYM}"]})
    ex.end_batch()
    watcher.take()

    # Act
    ex.disconnect(careful.conn, T0)
    ex.disconnect(casual.conn, T0)
    ex.end_batch()

    # Assert: a's order went (and the book channel says so); b's stayed
    assert ex.venue.open_orders(1) == []
    assert len(ex.venue.open_orders(2)) == 1
    assert watcher.take()[-1]["data"]["bids"] == [[9_990, 0]]
    assert careful.conn.cid not in ex.conns


def test_admin_ops_set_the_index_deposit_and_halt(impl: str) -> None:
    # Arrange
    ex = _exchange(impl)
    ops, a = Client(ex), Client(ex)
    ops.logon("ops")
    a.logon("a")
    a.result("subscribe", {"channels": [f"mark.{SYM}", "account"]})

    # Act / Assert
    assert ops.result("admin.setIndex", {"symbol": SYM, "price": 10_500})["index"] == 10_500
    assert a.take()[-1]["data"]["index"] == 10_500
    deposit = ops.result("admin.deposit", {"accountId": 1, "amount": usd(5)})
    assert deposit["balance"] == usd(100_005)
    assert a.take()[-1]["data"]["balance"] == usd(100_005)
    assert ops.error("admin.deposit", {"accountId": 1, "amount": -5}) == R.INVALID_AMOUNT
    ops.result("admin.setStatus", {"symbol": SYM, "status": "halted"})
    assert a.error("order.place", _place("BUY", 9_990, 1)) == R.MARKET_HALTED
    ex.venue.check_invariants()


# -- fuzz: anything a client sends leaves the venue consistent -----------------------------------

_OPS = ["order.place", "order.cancel", "order.amend", "order.cancelAll", "order.batch",
        "subscribe", "snapshot.book", "account.balance", "account.setLeverage", "ping", "bogus"]
_VALUES = st.one_of(st.integers(-3, 20_000), st.sampled_from(["BUY", "SELL", SYM, "IOC", "x"]),
                    st.booleans(), st.none())
_ARGS = st.dictionaries(st.sampled_from(["symbol", "side", "price", "qty", "orderId",
                                         "timeInForce", "leverage", "channels", "orders",
                                         "clientOrderId", "type"]), _VALUES, max_size=6)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(_OPS), _ARGS), min_size=1, max_size=25))
def test_any_request_sequence_keeps_the_money_identity(requests: list[Any]) -> None:
    # Arrange
    ex = _exchange("auto")
    a = Client(ex)
    a.logon("a")

    for op, args in requests:
        # Act
        before = ex.venue.state_hash()
        response = a.call(op, args)[-1]

        # Assert: a refused request changed nothing; every command keeps the invariants
        if not response["ok"]:
            assert isinstance(known_code(response["error"]["code"]), IntEnum)
            assert ex.venue.state_hash() == before
        ex.venue.check_invariants()
