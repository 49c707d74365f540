"""The wire codecs: any bytes or text decode to a message or a typed ProtocolError, never
anything else; valid messages survive both encodings unchanged."""

from __future__ import annotations

import msgpack
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gaemi.gateway.wire.codec import JSON, MAX_FRAME, MSGPACK, ProtocolError, decode, encode
from gaemi.gateway.wire.errors import GatewayCode as G

scalars = st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.text(max_size=20)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)
messages = st.dictionaries(st.text(max_size=8), values, max_size=6)


@settings(max_examples=600)
@given(frame=st.binary(max_size=256) | st.text(max_size=200))
def test_any_bytes_or_text_decode_to_a_message_or_a_typed_error(frame: bytes | str) -> None:
    for encoding in (JSON, MSGPACK):
        # Act
        try:
            message = decode(frame, encoding)
        except ProtocolError as exc:
            # Assert: a gateway code, never another exception
            assert 8000 <= exc.code < 9000
        else:
            assert isinstance(message, dict)


@settings(max_examples=300)
@given(message=messages)
def test_valid_messages_survive_both_encodings(message: dict) -> None:
    for encoding in (JSON, MSGPACK):
        # Act
        frame = encode(message, encoding)

        # Assert: JSON travels as text, msgpack as bytes, and both give the message back
        assert isinstance(frame, str if encoding == JSON else bytes)
        assert decode(frame, encoding) == message


@pytest.mark.parametrize("frame, encoding", [
    ('{"id": 1, "op": "order.place", "args": {"price": 100.5}}', JSON),
    (msgpack.packb({"id": 1, "args": {"qty": 1.0}}), MSGPACK),
    ("[1, 2]", JSON),
    (msgpack.packb({1: "a"}), MSGPACK),
    (msgpack.packb({"a": b"raw"}), MSGPACK),
    ('{"id": 1', JSON),
    (orjson.dumps({"a": 1}).decode(), MSGPACK),  # text on a binary encoding
])
def test_floats_binaries_and_non_maps_are_malformed(frame: str | bytes, encoding: str) -> None:
    # Act / Assert
    with pytest.raises(ProtocolError) as caught:
        decode(frame, encoding)
    assert caught.value.code == G.MALFORMED_MESSAGE


def test_oversized_frames_are_refused_before_decoding() -> None:
    # Arrange: a valid message just over the 64 KiB cap
    frame = orjson.dumps({"pad": "x" * MAX_FRAME}).decode()

    # Act / Assert
    with pytest.raises(ProtocolError) as caught:
        decode(frame, JSON)
    assert caught.value.code == G.MESSAGE_TOO_LARGE


def test_nesting_is_bounded() -> None:
    deep: dict = {}
    node = deep
    for _ in range(20):
        node["x"] = {}
        node = node["x"]
    with pytest.raises(ProtocolError) as caught:
        decode(orjson.dumps(deep).decode(), JSON)
    assert caught.value.code == G.MALFORMED_MESSAGE
