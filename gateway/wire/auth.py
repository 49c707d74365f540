"""Logon authentication: API keys, HMAC-SHA256 signatures and the timestamp window.

The signature (Binance WS-API style, gateway-conventions.md §8-9.6) is the lowercase hex
HMAC-SHA256, keyed by the API secret, of the logon arguments other than ``signature``,
sorted by name and joined as ``name=value`` with ``&``; booleans are written ``true`` /
``false`` and integers as decimal text. Example::

    apiKey=k1&cancelOnDisconnect=true&recvWindow=5000&timestamp=1767225600000

``timestamp`` is the client's clock in milliseconds since the epoch; the logon is refused if
it is more than 1 s ahead of the server or older than ``recvWindow`` (default 5,000 ms, at
most 60,000). The current time is an argument: this module reads no clock.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from gaemi.gateway.wire.codec import ProtocolError
from gaemi.gateway.wire.errors import GatewayCode as G

__all__ = ["ApiKey", "DEFAULT_RECV_WINDOW_MS", "MAX_RECV_WINDOW_MS", "canonical", "sign",
           "verify_logon"]

DEFAULT_RECV_WINDOW_MS = 5_000
MAX_RECV_WINDOW_MS = 60_000
MAX_AHEAD_MS = 1_000


@dataclass(frozen=True, slots=True)
class ApiKey:
    key: str
    secret: str
    account_id: int
    admin: bool = False


def canonical(args: dict[str, Any]) -> str:
    """The signed text of a logon's arguments (everything but ``signature``)."""
    parts = []
    for name in sorted(args):
        if name == "signature":
            continue
        value = args[name]
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (int, str)):
            text = str(value)
        else:
            raise ProtocolError(G.BAD_ARGUMENT, f"{name}: logon arguments are scalars")
        parts.append(f"{name}={text}")
    return "&".join(parts)


def sign(args: dict[str, Any], secret: str) -> str:
    return hmac.new(secret.encode(), canonical(args).encode(), hashlib.sha256).hexdigest()


def verify_logon(args: dict[str, Any], keys: dict[str, ApiKey], now_ms: int) -> ApiKey:
    """The key a logon proves, or ProtocolError (unknown key, bad signature, stale time)."""
    api_key = args.get("apiKey")
    timestamp = args.get("timestamp")
    signature = args.get("signature")
    window = args.get("recvWindow", DEFAULT_RECV_WINDOW_MS)
    if not isinstance(api_key, str) or not isinstance(signature, str) or \
            type(timestamp) is not int or type(window) is not int:
        raise ProtocolError(G.BAD_ARGUMENT, "apiKey, signature (text) and timestamp "
                            "(integer ms) are required; recvWindow is an integer")
    if not 0 < window <= MAX_RECV_WINDOW_MS:
        raise ProtocolError(G.BAD_ARGUMENT, f"recvWindow: 1..{MAX_RECV_WINDOW_MS} ms")
    key = keys.get(api_key)
    if key is None:
        raise ProtocolError(G.UNKNOWN_API_KEY, "unknown API key")
    # a hex digest is ASCII: anything else cannot match (and compare_digest takes only ASCII
    # text: a non-ASCII signature used to raise TypeError here)
    if not signature.isascii() or \
            not hmac.compare_digest(sign(args, key.secret), signature.lower()):
        raise ProtocolError(G.BAD_SIGNATURE, "signature does not match")
    if timestamp > now_ms + MAX_AHEAD_MS or now_ms - timestamp > window:
        raise ProtocolError(G.STALE_TIMESTAMP, f"timestamp outside the {window} ms window")
    return key
