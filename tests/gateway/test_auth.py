"""Logon signatures: the canonical text, a good logon, and each way a logon is refused."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from gaemi.engine.codes import RejectReason as R
from gaemi.gateway.wire.auth import ApiKey, canonical, sign, verify_logon
from gaemi.gateway.wire.codec import ProtocolError
from gaemi.gateway.wire.errors import GatewayCode as G

KEYS = {"k1": ApiKey("k1", "s3cret", 7)}
NOW = 1_767_225_600_000


def _logon(**changes: object) -> dict:
    args = {"apiKey": "k1", "timestamp": NOW, "cancelOnDisconnect": True}
    args.update(changes)
    args["signature"] = sign(args, "s3cret")
    return args


def test_canonical_text_is_sorted_name_value_pairs() -> None:
    # Arrange
    args = {"timestamp": 5, "apiKey": "k1", "cancelOnDisconnect": False, "signature": "x"}

    # Act / Assert: sorted, signature left out, booleans lowercase
    assert canonical(args) == "apiKey=k1&cancelOnDisconnect=false&timestamp=5"


def test_a_signed_logon_names_its_account() -> None:
    # Arrange: the signature an independent client would compute
    text = f"apiKey=k1&cancelOnDisconnect=true&timestamp={NOW}"
    signature = hmac.new(b"s3cret", text.encode(), hashlib.sha256).hexdigest()
    args = {"apiKey": "k1", "timestamp": NOW, "cancelOnDisconnect": True,
            "signature": signature}

    # Act
    key = verify_logon(args, KEYS, NOW + 200)

    # Assert
    assert key.account_id == 7


@pytest.mark.parametrize("args, now, code", [
    (_logon(apiKey="nope"), NOW, G.UNKNOWN_API_KEY),
    ({**_logon(), "signature": "00" * 32}, NOW, G.BAD_SIGNATURE),
    ({**_logon(), "cancelOnDisconnect": False}, NOW, G.BAD_SIGNATURE),  # tampered after signing
    (_logon(), NOW + 5_001, G.STALE_TIMESTAMP),  # older than the 5 s window
    (_logon(), NOW - 1_001, G.STALE_TIMESTAMP),  # more than 1 s ahead of the server
    (_logon(recvWindow=60_001), NOW, G.BAD_ARGUMENT),
    (_logon(timestamp="now"), NOW, G.BAD_ARGUMENT),
])
def test_refused_logons_get_typed_errors(args: dict, now: int, code: R) -> None:
    with pytest.raises(ProtocolError) as caught:
        verify_logon(args, KEYS, now)
    assert caught.value.code == code
