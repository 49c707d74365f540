"""JSON and msgpack codecs for the wire: one logical message, two encodings.

A connection chooses its encoding with the websocket subprotocol: ``gaemi.json`` (text
frames, the default when the client names none) or ``gaemi.msgpack`` (binary frames). Both
carry the same objects: maps with text keys, integers, text, booleans, null, lists. Numbers
are integers (ticks, lots, micro-dollars, nanoseconds); floats are refused, so a price can
never be rounded on the way in.

``decode`` never raises anything but ``ProtocolError``, whatever the bytes: that is the
contract the fuzz tests check.
"""

from __future__ import annotations

from typing import Any

import msgpack
import orjson

from engine.codes import RejectReason as R


__all__ = ["JSON", "MSGPACK", "SUBPROTOCOLS", "MAX_FRAME", "ProtocolError", "decode", "encode"]

JSON = "gaemi.json"
MSGPACK = "gaemi.msgpack"
SUBPROTOCOLS = (JSON, MSGPACK)
MAX_FRAME = 64 * 1024  # bytes: larger frames are refused before they are decoded
_MAX_DEPTH = 8


class ProtocolError(Exception):
    """A message that cannot be accepted: ``code`` is an 8xxx ``RejectReason``."""

    def __init__(self, code: R, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


def encode(obj: Any, encoding: str) -> str | bytes:
    """A message as a frame: text for JSON, bytes for msgpack."""
    if encoding == MSGPACK:
        return msgpack.packb(obj, use_bin_type=True)  # type: ignore[no-any-return]
    return orjson.dumps(obj).decode()


def decode(frame: str | bytes, encoding: str) -> dict[str, Any]:
    """The object a frame carries; ProtocolError for anything else."""
    if len(frame) > MAX_FRAME:
        raise ProtocolError(R.MESSAGE_TOO_LARGE, f"frames are limited to {MAX_FRAME} bytes")
    try:
        if encoding == MSGPACK:
            if isinstance(frame, str):
                raise ProtocolError(R.MALFORMED_MESSAGE, "msgpack needs binary frames")
            obj = msgpack.unpackb(frame, raw=False, strict_map_key=True, max_bin_len=0,
                                  max_ext_len=0, use_list=True)
        else:
            obj = orjson.loads(frame)
    except ProtocolError:
        raise
    except Exception as exc:  # every decoder failure is the client's malformed message
        raise ProtocolError(R.MALFORMED_MESSAGE, f"not valid {encoding}: "
                            f"{type(exc).__name__}") from None
    if not isinstance(obj, dict):
        raise ProtocolError(R.MALFORMED_MESSAGE, "a message is a map")
    _check_plain(obj, 0)
    return obj


def _check_plain(value: Any, depth: int) -> None:
    """Only the JSON data model, no floats, bounded nesting."""
    if depth > _MAX_DEPTH:
        raise ProtocolError(R.MALFORMED_MESSAGE, "nested too deeply")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ProtocolError(R.MALFORMED_MESSAGE, "map keys are text")
            _check_plain(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_plain(item, depth + 1)
    elif isinstance(value, float):
        raise ProtocolError(R.MALFORMED_MESSAGE, "numbers are integers (ticks, lots, units)")
    elif isinstance(value, int) and not isinstance(value, bool) and \
            not -2**63 <= value < 2**64:
        raise ProtocolError(R.MALFORMED_MESSAGE, "integer out of range")
    elif not (value is None or isinstance(value, (str, bool, int))):
        raise ProtocolError(R.MALFORMED_MESSAGE, f"unsupported value {type(value).__name__}")
