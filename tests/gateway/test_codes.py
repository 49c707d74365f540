"""The gateway's own error codes (8xxx protocol, 9xxx system) keep their published values and
share one space of numbers with the venue's reasons (docs/protocol.md §6)."""

from __future__ import annotations

from gaemi.engine.codes import RejectReason
from gaemi.gateway.wire.errors import GatewayCode, code_name, known_code

PUBLISHED = {
    "MALFORMED_MESSAGE": 8001,
    "BAD_REQUEST": 8002,
    "UNKNOWN_OP": 8003,
    "BAD_ARGUMENT": 8004,
    "NOT_LOGGED_IN": 8005,
    "ALREADY_LOGGED_IN": 8006,
    "UNKNOWN_API_KEY": 8007,
    "BAD_SIGNATURE": 8008,
    "STALE_TIMESTAMP": 8009,
    "RATE_LIMITED": 8010,
    "MESSAGE_TOO_LARGE": 8011,
    "UNKNOWN_TOPIC": 8012,
    "FORBIDDEN": 8013,
    "BATCH_TOO_LARGE": 8014,
    "DUPLICATE_REQUEST_ID": 8015,
    "INTERNAL_ERROR": 9001,
    "SHUTTING_DOWN": 9002,
}


def test_gateway_codes_have_their_published_values() -> None:
    assert {m.name: int(m) for m in GatewayCode} == PUBLISHED


def test_gateway_codes_are_in_8xxx_and_9xxx_and_never_a_venue_code() -> None:
    assert all(int(m) // 1000 in (8, 9) for m in GatewayCode)
    assert not {int(m) for m in GatewayCode} & {int(r) for r in RejectReason}


def test_a_code_names_its_enum_whichever_it_is() -> None:
    assert known_code(2001) is RejectReason.INSUFFICIENT_MARGIN
    assert known_code(8010) is GatewayCode.RATE_LIMITED
    assert known_code(7777) == 7777
    assert (code_name(3003), code_name(9001), code_name(7777)) == \
        ("POST_ONLY_WOULD_CROSS", "INTERNAL_ERROR", "7777")
