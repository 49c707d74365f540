"""Gaemi's order-flow format: JSONL and msgpack writers and readers, the venue applier, and
typed errors naming the bad line. The flow under test is built from real LOBSTER rows."""

from __future__ import annotations

import gzip
import io
from collections import Counter
from fractions import Fraction
from itertools import islice
from pathlib import Path

import msgpack
import orjson
import pytest

from gaemi.clients.replay.lobster import read_messages, sample_files
from gaemi.clients.replay.orderflow import (
    FlowRecord,
    OrderFlowError,
    apply,
    read,
    read_jsonl,
    read_msgpack,
    write_jsonl,
    write_msgpack,
)
from gaemi.clients.replay.rescale import Rescale
from gaemi.risk import Venue, preset, usd
from gaemi.risk.calendar import NS_PER_DAY, NS_PER_HOUR, days_from_civil

SYMBOL = "NVDA-PERP"
# 2012-06-21 (LOBSTER's sample day), New York on summer time: local midnight is 04:00 UTC
MIDNIGHT_NY = days_from_civil(2012, 6, 21) * NS_PER_DAY + 4 * NS_PER_HOUR
FILE_ACCOUNT, TAKER_ACCOUNT = 1, 3


def lobster_flow(n: int = 999, named: dict[int, int] | None = None) -> list[FlowRecord]:
    """The AAPL sample's first ``n`` messages as wire requests on NVDA-PERP (prices $0.01,
    sizes 0.01 share: LOBSTER's $0.0001 prices round half-even to the cent). ``named``
    receives, per execution record, the LOBSTER id of the order it executed."""
    rescale = Rescale.for_market(preset(SYMBOL), price_unit=Fraction(1, 10_000))
    messages = list(islice(read_messages(sample_files("AAPL")[0]), n))
    start = MIDNIGHT_NY + messages[0].time_ns - 1
    first_trade = next(m for m in messages if m.type == 4)
    out = [
        FlowRecord(start, 0, "admin.deposit", {"accountId": FILE_ACCOUNT,
                                                "amount": usd(50_000_000)}),
        FlowRecord(start, 0, "admin.deposit", {"accountId": TAKER_ACCOUNT,
                                                "amount": usd(50_000_000)}),
        FlowRecord(start, 0, "admin.setIndex", {"symbol": SYMBOL,
                                                 "price": rescale.ticks(first_trade.price)}),
    ]
    for m in messages:
        ts, side = MIDNIGHT_NY + m.time_ns, "BUY" if m.direction == 1 else "SELL"
        if m.type == 1:
            out.append(FlowRecord(ts, FILE_ACCOUNT, "order.place", {
                "symbol": SYMBOL, "side": side, "type": "LIMIT", "price": rescale.ticks(m.price),
                "qty": rescale.lots(m.size), "clientOrderId": f"L{m.order_id}"}))
        elif m.type == 3:
            out.append(FlowRecord(ts, FILE_ACCOUNT, "order.cancel", {
                "symbol": SYMBOL, "clientOrderId": f"L{m.order_id}"}))
        elif m.type == 4:  # an aggressor from the other side, for the executed size
            if named is not None:
                named[len(out)] = m.order_id
            out.append(FlowRecord(ts, TAKER_ACCOUNT, "order.place", {
                "symbol": SYMBOL, "side": "SELL" if side == "BUY" else "BUY", "type": "LIMIT",
                "price": rescale.ticks(m.price), "qty": rescale.lots(m.size),
                "timeInForce": "IOC"}))
    return out


NAMED: dict[int, int] = {}


@pytest.fixture(scope="module")
def flow() -> list[FlowRecord]:
    NAMED.clear()
    return lobster_flow(named=NAMED)


def _venue(impl: str = "auto") -> Venue:
    return Venue([preset(SYMBOL)], book=impl, start_ts=MIDNIGHT_NY)


# -- writers and readers ---------------------------------------------------------------------------


def test_jsonl_to_msgpack_to_jsonl_is_byte_identical(flow, tmp_path: Path) -> None:
    # Arrange
    first, packed, second = tmp_path / "a.jsonl", tmp_path / "b.msgpack", tmp_path / "c.jsonl"

    # Act
    write_jsonl(flow, first)
    write_msgpack(read_jsonl(first), packed)
    write_jsonl(read_msgpack(packed), second)

    # Assert
    assert first.read_bytes() == second.read_bytes()
    assert list(read(first)) == list(read(packed)) == flow
    assert len(flow) == 3 + 471 + 369 + 98  # deposits, index, adds, deletes, executions
    line = orjson.loads(first.read_bytes().splitlines()[3])
    assert list(line) == ["ts", "account", "op", "args"]
    # the first message, "34200.004241176,1,16113575,18,5853300,1": 18 shares at $585.33
    assert line["ts"] == MIDNIGHT_NY + 34_200_004_241_176
    assert line["args"] == {"symbol": SYMBOL, "side": "BUY", "type": "LIMIT", "price": 58_533,
                            "qty": 1_800, "clientOrderId": "L16113575"}
    assert len(packed.read_bytes()) < len(first.read_bytes())


def test_gzip_flows_read_back(flow, tmp_path: Path) -> None:
    write_jsonl(flow[:50], tmp_path / "f.jsonl.gz")
    write_msgpack(flow[:50], tmp_path / "f.msgpack.gz")
    with gzip.open(tmp_path / "f.jsonl.gz", "rb") as f:
        assert f.read().count(b"\n") == 50
    assert list(read(tmp_path / "f.jsonl.gz")) == list(read(tmp_path / "f.msgpack.gz")) \
        == flow[:50]
    with pytest.raises(ValueError, match="ends in"):
        read(tmp_path / "f.csv")


# -- applying a flow -------------------------------------------------------------------------------


def test_both_encodings_drive_a_venue_to_the_same_state(flow, tmp_path: Path, impl) -> None:
    # Arrange
    write_jsonl(flow, tmp_path / "f.jsonl")
    write_msgpack(flow, tmp_path / "f.msgpack")
    a, b = _venue(impl), _venue(impl)

    # Act
    applied_a = apply(read(tmp_path / "f.jsonl"), a)
    applied_b = apply(read(tmp_path / "f.msgpack"), b)

    # Assert: identical events and state; and the day did trade on the venue
    assert [x.events for x in applied_a] == [x.events for x in applied_b]
    assert a.state_hash() == b.state_hash() == FLOW_STATE_HASH
    a.check_invariants()
    kinds = Counter(e.kind for x in applied_a for e in x.events)
    assert kinds["order_accepted"] == FLOW_ACCEPTED
    assert kinds["fill"] == FLOW_FILLS and kinds["fill"] > 0
    # cancels of orders placed before the file started are refused, as values
    assert kinds["rejected"] == FLOW_REJECTED
    assert a.time == flow[-1].ts
    # price-time priority on the venue: each execution's first fill hits the order LOBSTER
    # names, whenever that order was placed inside the file
    venue_id = {e.client_order_id: e.order_id for x in applied_a for e in x.events
                if e.kind == "order_accepted" and e.client_order_id}
    hits = known = 0
    for i, lobster_id in NAMED.items():
        fills = [e for e in applied_a[i].events if e.kind == "fill"]
        if f"L{lobster_id}" in venue_id:
            known += 1
            hits += bool(fills) and fills[0].maker_order_id == venue_id[f"L{lobster_id}"]
    assert len(NAMED) == 98 and (known, hits) == (FLOW_KNOWN, FLOW_KNOWN)


# measured: 471 adds + 98 aggressors accepted; 94 of the 98 executions name an order placed in
# the file, and each fills it first, in one fill (the LOBSTER replay's 94/94, docs/replay.md);
# 5 deletes name orders placed before the file began
FLOW_STATE_HASH = "81d8b883e0562617"
FLOW_ACCEPTED = 569
FLOW_FILLS = 94
FLOW_REJECTED = 5
FLOW_KNOWN = 94


def test_time_is_advanced_from_ts_before_each_record(flow) -> None:
    # Arrange: the venue starts at local midnight; the flow at 09:30 New York
    venue = _venue()

    # Act
    applied = apply(flow[:10], venue)

    # Assert: the first record's advance settled the nine hourly fundings 05:00-13:00 UTC
    # (nobody held a position) before its deposit ran; records at the same ts advance nothing
    kinds = [e.kind for e in applied[0].events]
    assert kinds.count("funding") == 9 and kinds[-1] == "deposit"
    assert [e.kind for e in applied[1].events] == ["deposit"]
    assert venue.time == flow[9].ts
    with pytest.raises(OrderFlowError, match="before the venue's time"):
        apply([FlowRecord(flow[0].ts, 1, "order.cancelAll", {})], venue)


# -- bad input names its line ----------------------------------------------------------------------


GOOD = b'{"ts":1,"account":1,"op":"order.cancelAll","args":{}}\n'


@pytest.mark.parametrize(("bad", "why"), [
    (b"{not json\n", "not JSON"),
    (b"[1,2]\n", "a record is a map"),
    (b'{"ts":5,"account":1,"op":"order.cancelAll"}\n', "missing 'args'"),
    (b'{"ts":5,"account":1,"op":"order.cancelAll","args":{},"x":1}\n', "unknown key 'x'"),
    (b'{"ts":5,"account":1,"op":"order.fly","args":{}}\n', "op: one of"),
    (b'{"ts":0,"account":1,"op":"order.cancelAll","args":{}}\n', "before the previous"),
    (b'{"ts":5.0,"account":1,"op":"order.cancelAll","args":{}}\n', "integers"),
    (b'{"ts":5,"account":true,"op":"order.cancelAll","args":{}}\n', "account"),
    (b'{"ts":5,"account":1,"op":"order.place","args":{"symbol":"NVDA-PERP","side":"BUY",'
     b'"price":100,"qty":1.5}}\n', "integers"),
    (b'{"ts":5,"account":1,"op":"order.place","args":{"side":"BUY","price":100,"qty":1}}\n',
     "order.place: symbol: required"),
    (b'{"ts":5,"account":1,"op":"order.cancel","args":{"symbol":"NVDA-PERP"}}\n',
     "exactly one"),
    (b'{"ts":5,"account":0,"op":"admin.deposit","args":{"accountId":1}}\n',
     "admin.deposit: amount: required"),
    (b'{"ts":5,"account":0,"op":"admin.setIndex","args":{"symbol":"X","price":1,"y":2}}\n',
     "unknown argument 'y'"),
])
def test_a_bad_jsonl_line_is_a_typed_error_naming_it(bad: bytes, why: str) -> None:
    # Arrange: two good lines, a blank one, then the bad one (line 4)
    data = GOOD + GOOD + b"\n" + bad + GOOD

    # Act
    got = []
    with pytest.raises(OrderFlowError, match=why) as caught:
        for record in read_jsonl(io.BytesIO(data)):
            got.append(record)

    # Assert: the records before it were delivered
    assert caught.value.line == 4 and str(caught.value).startswith("line 4: ")
    assert len(got) == 2


def test_a_bad_msgpack_record_is_named_by_number_and_offset() -> None:
    good = msgpack.packb({"ts": 1, "account": 1, "op": "order.cancelAll", "args": {}})
    bad = msgpack.packb({"ts": 2, "account": 1, "op": "order.cancelAll", "args": {"p": 0.5}})
    with pytest.raises(OrderFlowError, match="integers") as caught:
        list(read_msgpack(io.BytesIO(good + good + bad)))
    assert caught.value.line == 3 and caught.value.offset == 2 * len(good)
    assert "record 3 (byte" in str(caught.value)


def test_truncated_or_garbage_msgpack_is_a_typed_error() -> None:
    good = msgpack.packb({"ts": 1, "account": 1, "op": "order.cancelAll", "args": {}})
    with pytest.raises(OrderFlowError, match="truncated") as caught:
        list(read_msgpack(io.BytesIO(good + good[:-3])))
    assert caught.value.line == 2
    with pytest.raises(OrderFlowError, match="record 2") as caught:
        list(read_msgpack(io.BytesIO(good + b"\xc1")))
    with pytest.raises(OrderFlowError, match="a record is a map"):
        list(read_msgpack(io.BytesIO(msgpack.packb([1, 2]))))
    assert list(read_msgpack(io.BytesIO(b""))) == []
