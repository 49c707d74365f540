"""Hostile requests through the sans-I/O ``Exchange``: every op, with arguments no client should
send (non-ASCII text, 2**70, negative numbers, empty values, wrong types, unknown keys), is
answered with a typed error on its own request id; nothing raises, nothing changes, and the
connection and every other connection go on. A defect inside a request (an exception nobody
expected) becomes error 9001 for that request alone, logged once with its traceback, and the
venue is rolled back to the journal as it was before the request."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gaemi.engine.codes import RejectReason as R
from gaemi.gateway.exchange import Exchange
from gaemi.gateway.wire.auth import ApiKey, sign
from gaemi.gateway.wire.errors import GatewayCode as G
from gaemi.gateway.wire.messages import OPS
from gaemi.risk import Deposit, SetIndexPrice, Venue, preset, usd
from gaemi.risk import commands as C
from gaemi.risk.recovery import recover
from tests.gateway.test_session import KEYS, MS, SECRETS, SYM, T0, Client, _place

HOSTILE = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70),
    st.sampled_from([0, -1, 2**63 - 1, 2**63, 2**64 - 1, 2**70, -2**63]),
    st.text(max_size=30), st.sampled_from(["", "é", "\u0000", "ＮＶＤＡ-PERP", "NVDA-PERP",
                                            "BUY", "SELL", "GTC", "MARKET", "cross", "x" * 200,
                                            "book.NVDA-PERP", "orders", "dev-1", "a"]),
    st.lists(st.one_of(st.integers(), st.text(max_size=5)), max_size=4),
    st.dictionaries(st.text(max_size=6), st.integers(), max_size=3),
)
# the argument names the protocol uses anywhere, and a few it does not
NAMES = ["symbol", "side", "type", "qty", "price", "timeInForce", "reduceOnly", "clientOrderId",
         "triggerPrice", "orderId", "orders", "op", "args", "channels", "depth", "timeoutMs",
         "leverage", "mode", "accountId", "amount", "status", "apiKey", "timestamp",
         "recvWindow", "cancelOnDisconnect", "signature", "unknown", "évidemment"]
KNOWN = set(R.__members__.values()) | set(G.__members__.values())


def _exchange(journal: Path | None = None, **kwargs: Any) -> Exchange:
    venue = Venue([preset(SYM, session=None)], book="reference", start_ts=T0, journal=journal)
    for account in (1, 2, 3):
        venue.submit(Deposit(account, usd(100_000)))
    venue.submit(SetIndexPrice(SYM, 10_000))
    return Exchange(venue, KEYS, **kwargs)


class _Broken:
    """A command's handler with a defect planted in one stage: the stage runs (it may change
    the state: money credited, events made), then raises."""

    def __init__(self, handler: Any, stage: str) -> None:
        self.handler, self.stage = handler, stage
        self.stabilises = handler.stabilises

    def __getattr__(self, name: str) -> Any:
        real = getattr(self.handler, name)
        if name != self.stage:
            return real

        def broken(*args: Any) -> Any:
            real(*args)
            raise RuntimeError("planted defect")
        return broken


def _is_typed_error(message: dict[str, Any]) -> bool:
    return message["ok"] is False and message["error"]["code"] in KNOWN \
        and message["error"]["code"] != G.INTERNAL_ERROR


@pytest.mark.parametrize("op", sorted(OPS))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_op_answers_hostile_arguments_with_a_typed_error(op: str,
                                                               data: st.DataObject) -> None:
    # Arrange: a logged-on admin connection (so every op is reachable) and a trader
    ex = _exchange()
    attacker, trader = Client(ex), Client(ex)
    if op != "session.logon":
        attacker.logon("ops")
    trader.logon("a")
    trader.result("order.place", _place("BUY", 9_990, 1))
    args = data.draw(st.dictionaries(st.sampled_from(NAMES), HOSTILE, max_size=5))
    if data.draw(st.booleans(), label="whole args hostile"):
        args = data.draw(HOSTILE, label="args")
    before = ex.venue.state_hash()
    rid = data.draw(st.one_of(st.integers(0, 2**62), st.text(min_size=1, max_size=10)))

    # Act
    attacker.ex.receive(attacker.conn, _frame({"id": rid, "op": op, "args": args}), T0)
    received = attacker.take()

    # Assert: exactly one response, on the request's id: a result or a typed error
    responses = [m for m in received if "ch" not in m]
    assert len(responses) == 1 and responses[0]["id"] == rid
    response = responses[0]
    assert response["ok"] or _is_typed_error(response), response
    if not response["ok"]:
        assert ex.venue.state_hash() == before
    ex.venue.check_invariants()
    # the other connection still trades
    assert trader.result("order.place", _place("BUY", 9_980, 1))["status"] == "NEW"


def _frame(message: dict[str, Any]) -> str:
    # the standard library writes integers of any size (orjson and msgpack stop at 64 bits)
    return json.dumps(message)


@pytest.mark.parametrize("key", ["a", "ops"])
@pytest.mark.parametrize("signature", ["é" * 64, "\u00ff", "ＡＢ", "a" * 10_000, ""])
def test_a_logon_with_a_non_ascii_signature_is_refused_not_raised(key: str,
                                                                  signature: str) -> None:
    """One unauthenticated frame used to stop the server: ``hmac.compare_digest`` raised
    TypeError on non-ASCII text and nothing caught it."""
    # Arrange
    ex = _exchange()
    c = Client(ex)
    args = {"apiKey": key, "timestamp": T0 // MS, "signature": signature}

    # Act
    code = c.error("session.logon", args)

    # Assert
    assert code == G.BAD_SIGNATURE
    assert c.logon(key)["accountId"] == KEYS[key].account_id


def test_an_unexpected_exception_is_error_9001_and_the_venue_is_rolled_back(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # Arrange: a defect planted in the venue's deposit handler: it credits, then raises
    journal = tmp_path / "j.gaemij"

    def restore(position: Any) -> Venue:
        ex.venue.journal.rollback(position)
        ex.venue.close()
        return recover(journal).venue

    ex = _exchange(journal, restore=restore)
    ops, trader, watcher = Client(ex), Client(ex), Client(ex)
    ops.logon("ops")
    trader.logon("a")
    watcher.logon("b")
    watcher.result("subscribe", {"channels": ["account"]})
    before = ex.venue.state_hash()
    venue = ex.venue
    venue._handlers[C.Deposit] = _Broken(venue._handlers[C.Deposit], "settle")

    # Act
    with caplog.at_level(logging.ERROR, logger="gaemi.gateway"):
        response = ops.call("admin.deposit", {"accountId": 2, "amount": usd(5)})

    # Assert: 9001 on the request's id, one log record with the traceback, nothing happened
    assert response == [{"id": ops.ids, "ok": False, "error": {
        "code": G.INTERNAL_ERROR, "msg": "INTERNAL_ERROR: the request failed; nothing of it "
                                         "was applied"}}]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None
    assert "planted defect" in str(errors[0].exc_info[1])
    assert ex.venue is not venue and ex.venue.state_hash() == before
    assert watcher.take() == []  # no push about a deposit that did not happen
    ex.venue.check_invariants()
    # everyone goes on trading, the journal included
    assert trader.result("order.place", _place("BUY", 9_990, 1))["status"] == "NEW"
    assert ops.result("admin.deposit", {"accountId": 2, "amount": usd(5)})["balance"] == \
        usd(100_005)
    expected = ex.venue.state_hash()
    ex.venue.close()
    assert recover(journal).venue.state_hash() == expected


def test_a_failure_after_the_venue_applied_a_command_is_rolled_back_too(
        tmp_path: Path) -> None:
    # Arrange: the command is applied and journaled, then building the response fails
    journal = tmp_path / "j.gaemij"

    def restore(position: Any) -> Venue:
        ex.venue.journal.rollback(position)
        ex.venue.close()
        return recover(journal).venue

    ex = _exchange(journal, restore=restore)
    trader, watcher = Client(ex), Client(ex)
    trader.logon("a")
    watcher.result("subscribe", {"channels": [f"book.{SYM}"]})
    ex.end_batch()
    watcher.take()
    before, seq = ex.venue.state_hash(), ex.venue.seq
    import gaemi.gateway.exchange as session
    real = session._place_result
    session._place_result = lambda *a: 1 / 0
    try:
        # Act
        code = trader.error("order.place", _place("BUY", 9_990, 1))
    finally:
        session._place_result = real
    ex.end_batch()

    # Assert: the order is not in the venue, nor the journal, nor anyone's book
    assert code == G.INTERNAL_ERROR
    assert (ex.venue.state_hash(), ex.venue.seq) == (before, seq)
    assert watcher.take() == []
    ex.venue.close()
    assert recover(journal).venue.state_hash() == before


def test_a_defect_in_a_clock_tick_does_not_stop_the_exchange(tmp_path: Path) -> None:
    # Arrange
    journal = tmp_path / "j.gaemij"

    def restore(position: Any) -> Venue:
        ex.venue.journal.rollback(position)
        ex.venue.close()
        return recover(journal).venue

    ex = _exchange(journal, restore=restore)
    trader = Client(ex)
    trader.logon("a")
    before = ex.venue.state_hash()
    ex.venue._handlers[C.AdvanceTime] = _Broken(ex.venue._handlers[C.AdvanceTime], "validate")

    # Act: the tick fails (logged), the exchange goes on
    ex.tick(T0 + 5 * 10**9)

    # Assert
    assert ex.venue.state_hash() == before
    assert trader.result("order.place", _place("BUY", 9_990, 1))["status"] == "NEW"


def test_signatures_are_still_checked_exactly() -> None:
    # Arrange: the fix must not loosen the check
    ex = _exchange()
    c = Client(ex)
    args = {"apiKey": "a", "timestamp": T0 // MS}
    good = sign(args, SECRETS["a"])

    # Act / Assert: upper case is accepted (hex), any other change is refused
    assert c.error("session.logon", {**args, "signature": good[:-1] + "g"}) == G.BAD_SIGNATURE
    assert c.error("session.logon", {**args, "signature": good + "0"}) == G.BAD_SIGNATURE
    assert c.result("session.logon", {**args, "signature": good.upper()})["accountId"] == 1
    assert isinstance(KEYS["a"], ApiKey)
