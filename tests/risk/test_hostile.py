"""Hostile commands through ``Venue.submit``: every field of every command, given any value of
any type, is answered with events (a typed ``Rejected`` when the value is wrong), never with an
exception; a rejection changes nothing; and no single command does unbounded work.

The venue is the last line of defence: the gateway checks types first, but in-process users
(replays, scenarios, a journal written by another version) reach ``submit`` directly."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gaemi.engine.codes import RejectReason as R
from gaemi.engine.codes import Side, TimeInForce
from gaemi.risk import (
    AdvanceTime,
    CancelAll,
    Deposit,
    PlaceConditional,
    PlaceOrder,
    SetIndexPrice,
    Venue,
    preset,
    usd,
)
from gaemi.risk.commands import BY_CODE
from gaemi.risk.events import Rejected
from gaemi.risk.venue import MAX_FUNDINGS_PER_STEP

SYM = "NVDA-PERP"
T0 = 1_767_225_600_000_000_000


def _venue(impl: str) -> Venue:
    """Two traders with positions, resting orders and a conditional: most paths are live."""
    venue = Venue([preset(SYM, session=None), preset("TSLA-PERP", session=None)], book=impl,
                  start_ts=T0)
    for command in (
            Deposit(1, usd(100_000)), Deposit(2, usd(100_000)), SetIndexPrice(SYM, 10_000),
            SetIndexPrice("TSLA-PERP", 40_000),
            PlaceOrder(1, SYM, Side.SELL, 10_010, 500, client_order_id="ask"),
            PlaceOrder(1, SYM, Side.BUY, 9_990, 500),
            PlaceOrder(2, SYM, Side.BUY, 10_010, 200),
            PlaceConditional(2, SYM, Side.SELL, 100, 9_000, "stop", None, True, "stop")):
        events = venue.submit(command)
        assert type(events[-1]) is not Rejected, events
    return venue


# every kind of value a careless or hostile caller might put in a field
HOSTILE = st.one_of(
    st.none(), st.booleans(),
    st.integers(-2**70, 2**70), st.sampled_from([0, -1, 1, 2**63 - 1, 2**63, 2**64, 2**70]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40), st.sampled_from(["", "NVDA-PERP", "TSLA-PERP", "ask", "stop", "cross",
                                           "isolated", "open", "halted", "take_profit",
                                           "ＮＶＤＡ", "\x00", "é" * 40]),
    st.binary(max_size=8), st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.tuples(st.integers()), st.just(frozenset({1})), st.just(object()),
    st.sampled_from([Side.BUY, Side.SELL, TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK]),
)
COMMANDS = sorted(BY_CODE.values(), key=lambda cls: cls.CODE)


@pytest.mark.parametrize("cls", COMMANDS, ids=lambda cls: cls.__name__)
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_value_in_any_field_is_answered_never_raised(cls: type, data: st.DataObject) -> None:
    # Arrange: one field or several replaced by hostile values, the rest plausible
    venue = _venue("reference")
    fields = [f.name for f in dataclasses.fields(cls)]
    plausible = {"account_id": 1, "amount": usd(10), "symbol": SYM, "side": Side.BUY,
                 "price": 10_000, "qty": 10, "tif": TimeInForce.GTC, "post_only": False,
                 "reduce_only": False, "client_order_id": None, "order_id": 1,
                 "leverage": 5, "mode": "cross", "ts_ns": T0 + 10**9, "trigger_price": 9_500,
                 "kind": "stop", "status": "open"}
    values = {name: plausible[name] for name in fields}
    hostile = data.draw(st.lists(st.sampled_from(fields), min_size=1, unique=True))
    for name in hostile:
        values[name] = data.draw(HOSTILE, label=name)
    command = cls(**values)
    before, seq = venue.state_hash(), venue.seq

    # Act
    events = venue.submit(command)

    # Assert: an answer (an accepted command may have no event: a cancel-all of nothing); a
    # lone rejection is typed and changed nothing; every invariant still holds
    assert isinstance(events, list)
    if len(events) == 1 and type(events[0]) is Rejected:
        assert R(events[0].reason) != R.NONE
        assert (venue.state_hash(), venue.seq) == (before, seq)
    else:
        assert venue.seq == seq + 1
    venue.check_invariants()


def test_cancel_all_with_an_unhashable_symbol_is_rejected(impl: str) -> None:
    # Arrange
    venue = _venue(impl)
    before = venue.state_hash()

    # Act
    events = venue.submit(CancelAll(1, ["NVDA-PERP"]))  # type: ignore[arg-type]

    # Assert
    assert [(type(e), e.reason) for e in events] == [(Rejected, R.UNKNOWN_MARKET)]
    assert venue.state_hash() == before


def test_a_time_step_beyond_the_maximum_is_refused_at_once(impl: str) -> None:
    # Arrange: AdvanceTime(2**62) used to step through every funding interval for minutes
    venue = _venue(impl)
    before = venue.state_hash()
    limit = venue.max_time_step()

    # Act
    far = venue.submit(AdvanceTime(2**62))
    over = venue.submit(AdvanceTime(venue.time + limit + 1))

    # Assert: typed refusals, nothing changed; the documented maximum itself is accepted
    assert [e.reason for e in far] == [R.TIME_STEP_TOO_LARGE]
    assert [e.reason for e in over] == [R.TIME_STEP_TOO_LARGE]
    assert venue.state_hash() == before
    assert limit == MAX_FUNDINGS_PER_STEP * 3600 * 10**9  # hourly funding in both presets
    events = venue.submit(AdvanceTime(venue.time + limit))
    settled = [e for e in events if e.kind == "funding"]
    assert len(settled) == 2 * MAX_FUNDINGS_PER_STEP
    venue.check_invariants()


def test_max_time_step_follows_the_fastest_funding_of_the_venue() -> None:
    # Arrange: a market paying every 15 minutes bounds the step by its own interval
    fast = dataclasses.replace(preset(SYM, session=None), funding_interval_ns=15 * 60 * 10**9)
    venue = Venue([fast, preset("TSLA-PERP", session=None)], start_ts=T0)

    # Act / Assert
    assert venue.max_time_step() == MAX_FUNDINGS_PER_STEP * 15 * 60 * 10**9


def test_a_long_closed_session_drifts_the_index_in_bounded_work(impl: str) -> None:
    # Arrange: a book-driven index while the underlying is closed, and a book away from it,
    # advanced by the largest step: the drift converges, then the rest is applied in bulk
    spec = dataclasses.replace(preset("SKHYNIX-PERP"), index_when_closed="book")
    venue = Venue([spec], book=impl, start_ts=T0)
    venue.submit(SetIndexPrice(spec.symbol, 100_000))
    for account, side, price in ((1, Side.BUY, 104_000), (2, Side.SELL, 104_200)):
        venue.submit(Deposit(account, usd(10_000_000)))
        venue.submit(PlaceOrder(account, spec.symbol, side, price, 100_000))

    # Act
    events = venue.submit(AdvanceTime(venue.time + venue.max_time_step()))

    # Assert: accepted; the index moved into the book's impact prices and stayed there
    assert not (len(events) == 1 and type(events[0]) is Rejected)
    index = venue.market(spec.symbol).index
    assert 104_000 <= index <= 104_200
    venue.check_invariants()
