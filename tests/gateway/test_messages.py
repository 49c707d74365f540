"""Request envelopes and order arguments: strict, typed errors; the venue commands they map to."""

from __future__ import annotations

import pytest

from gaemi.engine.codes import RejectReason as R
from gaemi.engine.codes import Side, TimeInForce
from gaemi.gateway.commands import order_command
from gaemi.gateway.wire.codec import ProtocolError
from gaemi.gateway.wire.errors import GatewayCode as G
from gaemi.gateway.wire.messages import parse_request, push
from gaemi.risk import commands as C


def test_a_request_is_id_op_args() -> None:
    # Act
    request = parse_request({"id": 7, "op": "ping"})

    # Assert
    assert (request.id, request.op, request.args) == (7, "ping", {})


@pytest.mark.parametrize("obj, code", [
    ({"op": "ping"}, G.BAD_REQUEST),  # no id
    ({"id": True, "op": "ping"}, G.BAD_REQUEST),  # a bool is not an id
    ({"id": "x" * 65, "op": "ping"}, G.BAD_REQUEST),
    ({"id": 1}, G.BAD_REQUEST),  # no op
    ({"id": 1, "op": "order.teleport"}, G.UNKNOWN_OP),
    ({"id": 1, "op": "ping", "args": []}, G.BAD_REQUEST),
    ({"id": 1, "op": "ping", "extra": 1}, G.BAD_REQUEST),
])
def test_bad_envelopes_get_typed_errors(obj: dict, code: R) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_request(obj)
    assert caught.value.code == code


def test_order_place_maps_to_the_venue_command() -> None:
    # Act
    command = order_command("order.place", {
        "symbol": "NVDA-PERP", "side": "SELL", "price": 21_480, "qty": 500,
        "timeInForce": "POST_ONLY", "clientOrderId": "q-1"}, 3)

    # Assert
    assert command == C.PlaceOrder(3, "NVDA-PERP", Side.SELL, 21_480, 500, TimeInForce.GTC,
                                   True, False, "q-1")


def test_a_market_order_is_ioc_without_a_price() -> None:
    command = order_command("order.place", {"symbol": "NVDA-PERP", "side": "BUY",
                                            "type": "MARKET", "qty": 5}, 3)
    assert (command.price, command.tif) == (None, TimeInForce.IOC)


def test_a_stop_market_becomes_a_conditional() -> None:
    command = order_command("order.place", {"symbol": "NVDA-PERP", "side": "SELL",
                                            "type": "STOP_MARKET", "qty": 5,
                                            "triggerPrice": 20_000, "reduceOnly": True}, 3)
    assert command == C.PlaceConditional(3, "NVDA-PERP", Side.SELL, 5, 20_000, "stop", None,
                                         True, None)


@pytest.mark.parametrize("args, fragment", [
    ({"side": "BUY", "price": 1, "qty": 1}, "symbol"),
    ({"symbol": "X", "side": "LONG", "price": 1, "qty": 1}, "side"),
    ({"symbol": "X", "side": "BUY", "price": "100", "qty": 1}, "price"),
    ({"symbol": "X", "side": "BUY", "price": 1, "qty": True}, "qty"),
    ({"symbol": "X", "side": "BUY", "qty": 1}, "price"),  # a limit needs a price
    ({"symbol": "X", "side": "BUY", "type": "MARKET", "price": 1, "qty": 1}, "price"),
    ({"symbol": "X", "side": "BUY", "price": 1, "qty": 1, "colour": "red"}, "colour"),
    ({"symbol": "X", "side": "BUY", "price": 1, "qty": 1, "timeInForce": "DAY"},
     "timeInForce"),
])
def test_bad_order_arguments_name_the_argument(args: dict, fragment: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        order_command("order.place", args, 1)
    assert caught.value.code == G.BAD_ARGUMENT
    assert fragment in caught.value.msg


def test_cancel_needs_exactly_one_id() -> None:
    assert order_command("order.cancel", {"symbol": "X", "clientOrderId": "a"}, 2) == \
        C.CancelOrder(2, "X", None, "a")
    with pytest.raises(ProtocolError):
        order_command("order.cancel", {"symbol": "X"}, 2)
    with pytest.raises(ProtocolError):
        order_command("order.cancel", {"symbol": "X", "orderId": 1, "clientOrderId": "a"}, 2)


def test_pushes_carry_their_previous_sequence() -> None:
    assert push("trades.NVDA-PERP", 5, {"p": 1}) == \
        {"ch": "trades.NVDA-PERP", "seq": 5, "prev": 4, "data": {"p": 1}}
