"""Binance's request signing (USDⓈ-M "SIGNED" endpoints), checked as Binance checks it.

A signed request carries the API key in the ``X-MBX-APIKEY`` header, ``timestamp`` (ms) and
optionally ``recvWindow`` (ms, at most 60,000; default 5,000) among its parameters, and last a
``signature``: the hex HMAC-SHA256, under the key's secret, of ``totalParams`` = the query
string followed by the form body, exactly as sent, without the ``&signature=...`` part. The
request is valid while ``timestamp < server time + 1,000`` and ``server time - timestamp <=
recvWindow``. The API keys are the native protocol's (docs/protocol.md §3).

Beyond Binance (which signs neither the method nor the route, and accepts replays inside the
window), a request that changes something (POST, PUT, DELETE) is refused if its signature was
seen before on any request: a captured order cannot be placed twice, nor the signed text of a
read replayed as "cancel every order" on another route. Reads are never refused for it (two
reads in one millisecond may sign the same text). When the memory of signatures is full, new
requests are refused (``-1008``), never accepted unremembered.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import deque

from gaemi.gateway.binance.errors import BinanceError
from gaemi.gateway.wire.auth import ApiKey

__all__ = ["MAX_RECV_WINDOW", "Signer"]

DEFAULT_RECV_WINDOW = 5_000
MAX_RECV_WINDOW = 60_000
MAX_SEEN = 100_000  # signatures remembered (they expire with their window anyway)


class Signer:
    """Checks signed requests against ``keys``; remembers the signatures it accepted, with
    the route each was first seen on."""

    def __init__(self, keys: dict[str, ApiKey]) -> None:
        self.keys = keys
        self._seen: set[str] = set()
        self._expiry: deque[tuple[int, str]] = deque()  # (ms after which it is stale, sig)

    def key(self, header: str | None) -> ApiKey:
        """The API key of the ``X-MBX-APIKEY`` header (for the routes that need only that)."""
        if not header:
            raise BinanceError(-2014, "API-key format invalid.", 401)
        key = self.keys.get(header)
        if key is None:
            raise BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        return key

    def verify(self, header: str | None, query: str, body: str, params: dict[str, str],
               now_ms: int, *, once: bool) -> ApiKey:
        """The key of a correctly signed, fresh request (``once``: a state-changing one,
        whose signature must not have been seen before); BinanceError otherwise. ``params``
        are the request's parameters (query and body), signature included."""
        key = self.key(header)
        signature = params.get("signature")
        if not signature:
            raise BinanceError(-1102, "Mandatory parameter 'signature' was not sent, was "
                               "empty/null, or malformed.")
        timestamp = _millis(params.get("timestamp"), "timestamp", required=True)
        assert timestamp is not None
        window = _millis(params.get("recvWindow"), "recvWindow", required=False)
        if window is None:
            window = DEFAULT_RECV_WINDOW
        if window > MAX_RECV_WINDOW:
            raise BinanceError(-1131, "recvWindow must be less than 60000")
        if not (timestamp < now_ms + 1_000 and now_ms - timestamp <= window):
            raise BinanceError(-1021, "Timestamp for this request is outside of the "
                               "recvWindow.")
        signed = _unsigned(query, body, signature)
        if signed is None:
            raise BinanceError(-1022, "Signature for this request is not valid.")
        expected = hmac.new(key.secret.encode(), signed.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            raise BinanceError(-1022, "Signature for this request is not valid.")
        self._forget(now_ms)
        sig = signature.lower()
        if sig in self._seen:
            if once:
                raise BinanceError(-1022, "Signature for this request was already used.")
            return key
        if len(self._seen) >= MAX_SEEN:
            raise BinanceError(-1008, "Server is currently overloaded with other requests. "
                               "Please try again in a few minutes.", 503)
        self._seen.add(sig)
        self._expiry.append((timestamp + window, sig))
        return key

    def _forget(self, now_ms: int) -> None:
        expiry = self._expiry
        while expiry and expiry[0][0] < now_ms - 1_000:
            self._seen.discard(expiry.popleft()[1])


def _millis(text: str | None, name: str, *, required: bool) -> int | None:
    if text is None or text == "":
        if required:
            raise BinanceError(-1102, f"Mandatory parameter '{name}' was not sent, was "
                               "empty/null, or malformed.")
        return None
    if not (text.isascii() and text.isdigit()) or len(text) > 15:
        raise BinanceError(-1100, f"Illegal characters found in parameter '{name}'; legal "
                           "range is '^[0-9]{1,15}$'.")
    return int(text)


def _unsigned(query: str, body: str, signature: str) -> str | None:
    """``totalParams`` without its trailing ``signature=...`` (None: not at the end of the
    query or of the body, or not exactly once)."""
    tail = "signature=" + signature
    total = query + body
    if total.count("signature=") != 1:
        return None
    for part in (query, body):
        if part == tail:
            return total.replace(tail, "", 1)
        if part.endswith("&" + tail):
            return total.replace("&" + tail, "", 1)
    return None
