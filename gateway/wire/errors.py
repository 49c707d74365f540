"""The gateway's error codes and the one space of codes a response carries.

``error.code`` in a response (docs/protocol.md §6) is either a venue's reason for refusing a
command (``gaemi.engine.codes.RejectReason``: 1xxx validation, 2xxx pre-trade risk, 3xxx
matching, 4xxx account) or one of the gateway's own (``GatewayCode``: 8xxx protocol, 9xxx
system). The two enums never share a value.
"""

from __future__ import annotations

from enum import IntEnum

from gaemi.engine.codes import RejectReason

__all__ = ["ErrorCode", "GatewayCode", "code_name", "known_code"]


class GatewayCode(IntEnum):
    """The gateway's refusals: the message, the session, the limits, the server itself."""

    # 8xxx: gateway and protocol
    MALFORMED_MESSAGE = 8001  # not JSON / msgpack, or not an object
    BAD_REQUEST = 8002  # missing or wrong ``id``, ``op`` or ``args``
    UNKNOWN_OP = 8003
    BAD_ARGUMENT = 8004  # a missing, unknown or wrongly typed argument
    NOT_LOGGED_IN = 8005
    ALREADY_LOGGED_IN = 8006
    UNKNOWN_API_KEY = 8007
    BAD_SIGNATURE = 8008
    STALE_TIMESTAMP = 8009  # outside the logon's receive window
    RATE_LIMITED = 8010
    MESSAGE_TOO_LARGE = 8011
    UNKNOWN_TOPIC = 8012
    FORBIDDEN = 8013  # an admin operation without an admin key
    BATCH_TOO_LARGE = 8014
    DUPLICATE_REQUEST_ID = 8015  # reserved: never sent (ids are echoed, not checked)

    # 9xxx: system
    INTERNAL_ERROR = 9001  # a defect while handling the request (docs/reliability.md)
    SHUTTING_DOWN = 9002


ErrorCode = RejectReason | GatewayCode


def known_code(code: int) -> ErrorCode | int:
    """The enum member a response's code names, or the integer if this version knows none."""
    for enum in (RejectReason, GatewayCode):
        try:
            return enum(code)
        except ValueError:
            continue
    return code


def code_name(code: int) -> str:
    named = known_code(code)
    return named.name if isinstance(named, IntEnum) else str(code)
