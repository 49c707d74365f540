"""JSON and msgpack codecs for the wire: one logical message, two encodings.

A connection chooses its encoding with the websocket subprotocol: ``gaemi.json`` (text
frames, the default when the client names none) or ``gaemi.msgpack`` (binary frames). Both
carry the same objects: maps with text keys, integers, text, booleans, null, lists. Numbers
are integers (ticks, lots, micro-dollars, nanoseconds); floats are refused, so a price can
never be rounded on the way in.

``decode`` never raises anything but ``ProtocolError``, whatever the bytes: that is the
contract the fuzz tests check. When the frame is a map whose ``id`` can be read (a valid
request id: an integer of 64 bits or 1-64 characters of text), the error carries it as
``rid``, so a refusal for any other reason still answers the request by its id.
"""

from __future__ import annotations

import json
from typing import Any

import msgpack
import orjson

from gaemi.gateway.wire.errors import GatewayCode as G

__all__ = ["INPROCESS", "JSON", "MAX_FRAME", "MAX_ID_LEN", "MSGPACK", "SUBPROTOCOLS",
           "ProtocolError", "check_message", "decode", "encode", "request_id"]

JSON = "gaemi.json"
MSGPACK = "gaemi.msgpack"
SUBPROTOCOLS = (JSON, MSGPACK)
INPROCESS = "inprocess"  # no frames at all: the message objects themselves (an in-process peer)
MAX_FRAME = 64 * 1024  # bytes: larger frames are refused before they are decoded
_MAX_DEPTH = 8


MAX_ID_LEN = 64


class ProtocolError(Exception):
    """A message that cannot be accepted: ``code`` is an error code (a ``GatewayCode``, or the
    venue's ``RejectReason`` for a command it refused); ``rid`` the
    request id when it could be read."""

    def __init__(self, code: int, msg: str, rid: int | str | None = None) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.rid = rid


def request_id(obj: Any) -> int | str | None:
    """The request id of a decoded message, if it has a valid one (else None)."""
    if not isinstance(obj, dict):
        return None
    rid = obj.get("id")
    if rid.__class__ is int and -2**63 <= rid < 2**64:
        return rid
    if rid.__class__ is str and 0 < len(rid) <= MAX_ID_LEN:
        return rid
    return None


def encode(obj: Any, encoding: str) -> Any:
    """A message as a frame: text for JSON, bytes for msgpack (the object itself in process)."""
    if encoding == INPROCESS:
        return obj
    if encoding == MSGPACK:
        return msgpack.packb(obj, use_bin_type=True)
    return orjson.dumps(obj).decode()


def check_message(obj: Any) -> dict[str, Any]:
    """A message given as an object (in process): a map of the JSON data model, no floats,
    bounded nesting, the same rules a decoded frame follows; ProtocolError otherwise."""
    if not isinstance(obj, dict):
        raise ProtocolError(G.MALFORMED_MESSAGE, "a message is a map")
    try:
        _check_plain(obj, 0)
    except ProtocolError as exc:
        exc.rid = request_id(obj)
        raise
    return obj


def decode(frame: str | bytes, encoding: str) -> dict[str, Any]:
    """The object a frame carries; ProtocolError for anything else."""
    if len(frame) > MAX_FRAME:
        raise ProtocolError(G.MESSAGE_TOO_LARGE, f"frames are limited to {MAX_FRAME} bytes")
    try:
        if encoding == MSGPACK:
            if isinstance(frame, str):
                raise ProtocolError(G.MALFORMED_MESSAGE, "msgpack needs binary frames")
            obj = msgpack.unpackb(frame, raw=False, strict_map_key=True, max_bin_len=0,
                                  max_ext_len=0, use_list=True)
        else:
            obj = orjson.loads(frame)
    except ProtocolError:
        raise
    except Exception as exc:  # every decoder failure is the client's malformed message
        raise ProtocolError(G.MALFORMED_MESSAGE, f"not valid {encoding}: "
                            f"{type(exc).__name__}", _id_of_json(frame, encoding)) from None
    if not isinstance(obj, dict):
        raise ProtocolError(G.MALFORMED_MESSAGE, "a message is a map")
    try:
        _check_plain(obj, 0)
    except ProtocolError as exc:
        exc.rid = request_id(obj)
        raise
    return obj


def _id_of_json(frame: str | bytes, encoding: str) -> int | str | None:
    """The id of a JSON text orjson refused (an integer beyond 64 bits, say), read by the
    standard library's parser, which accepts those; None when it cannot be read either."""
    if encoding == MSGPACK or frame.lstrip()[:1] not in ("{", b"{"):
        return None  # not a JSON object: no id to read
    try:
        return request_id(json.loads(frame))
    except Exception:  # not JSON at all: there is no id to answer
        return None


_SCALARS = (str, bool, type(None))


def _check_plain(value: Any, depth: int) -> None:
    """Only the JSON data model, no floats, bounded nesting. Exact types are checked first
    (what the decoders produce: a flat loop over a request's arguments); anything else takes
    the general path."""
    if depth > _MAX_DEPTH:
        raise ProtocolError(G.MALFORMED_MESSAGE, "nested too deeply")
    cls = value.__class__
    if cls is dict:
        if value and depth >= _MAX_DEPTH:  # its items would be one level too deep
            raise ProtocolError(G.MALFORMED_MESSAGE, "nested too deeply")
        for key, item in value.items():
            if key.__class__ is not str and not isinstance(key, str):
                raise ProtocolError(G.MALFORMED_MESSAGE, "map keys are text")
            kind = item.__class__
            if kind is str or kind is bool or item is None:
                continue
            if kind is int:
                if not -2**63 <= item < 2**64:
                    raise ProtocolError(G.MALFORMED_MESSAGE, "integer out of range")
                continue
            _check_plain(item, depth + 1)
    elif cls is list:
        for item in value:
            _check_plain(item, depth + 1)
    elif cls is int:
        if not -2**63 <= value < 2**64:
            raise ProtocolError(G.MALFORMED_MESSAGE, "integer out of range")
    elif cls is str or cls is bool or value is None:
        return
    else:
        _check_other(value, depth)


def _check_other(value: Any, depth: int) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ProtocolError(G.MALFORMED_MESSAGE, "map keys are text")
            _check_plain(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_plain(item, depth + 1)
    elif isinstance(value, float):
        raise ProtocolError(G.MALFORMED_MESSAGE, "numbers are integers (ticks, lots, units)")
    elif isinstance(value, int) and not isinstance(value, bool):
        if not -2**63 <= value < 2**64:
            raise ProtocolError(G.MALFORMED_MESSAGE, "integer out of range")
    elif not isinstance(value, _SCALARS):
        raise ProtocolError(G.MALFORMED_MESSAGE, f"unsupported value {type(value).__name__}")
