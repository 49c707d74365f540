"""A bound on the facade port's TCP connections: REST keep-alive connections and stream
connections alike, in all and per client address.

aiohttp's server has no such bound of its own (an idle keep-alive connection is closed after
``KEEPALIVE_S``, but any number may be open until then). Each accepted connection goes
through ``Capped``, an asyncio protocol in front of aiohttp's: within the bounds it hands
everything to aiohttp's protocol unchanged; past them it answers HTTP 429 with Binance's
``-1003`` and closes at once, before aiohttp sees the connection (holding a refused connection
open would let a flood of them hold descriptors; a client that had already sent a request may
see a reset instead of the 429). The stream connections have their
own, smaller bounds on top (streams.py: 1,024 and 64 per address, as Binance's), so that an
address holding its full set of streams still has room for REST.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson

__all__ = ["KEEPALIVE_S", "MAX_CONNECTIONS", "MAX_PER_ADDRESS", "Capped", "ConnectionCount"]

MAX_CONNECTIONS = 2_048  # open TCP connections on the facade port, in all
MAX_PER_ADDRESS = 128  # ... from one client address
KEEPALIVE_S = 75.0  # an idle connection is closed after this (aiohttp's web.run_app default)

_BODY = orjson.dumps({"code": -1003, "msg": "Too many connections; close some and retry."})
REFUSAL = (b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n"
           b"Connection: close\r\nContent-Length: " + str(len(_BODY)).encode() +
           b"\r\n\r\n" + _BODY)


class ConnectionCount:
    """Open connections, in all and per address, against the bounds."""

    def __init__(self, total: int = MAX_CONNECTIONS, per_address: int = MAX_PER_ADDRESS) -> None:
        self.total = total
        self.per_address = per_address
        self.open = 0
        self.by_address: dict[str, int] = {}

    def admit(self, address: str) -> bool:
        held = self.by_address.get(address, 0)
        if self.open >= self.total or held >= self.per_address:
            return False
        self.open += 1
        self.by_address[address] = held + 1
        return True

    def release(self, address: str) -> None:
        self.open -= 1
        left = self.by_address[address] - 1
        if left:
            self.by_address[address] = left
        else:
            del self.by_address[address]


class Capped(asyncio.Protocol):
    """One accepted connection: aiohttp's protocol (made by ``factory``) if the bounds allow
    it, else a 429 and the close."""

    __slots__ = ("count", "factory", "inner", "address")

    def __init__(self, factory: Callable[[], asyncio.Protocol], count: ConnectionCount) -> None:
        self.factory = factory
        self.count = count
        self.inner: asyncio.Protocol | None = None
        self.address = ""

    def connection_made(self, transport: Any) -> None:
        peer = transport.get_extra_info("peername")
        self.address = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        if not self.count.admit(self.address):
            transport.write(REFUSAL)
            transport.close()
            return
        self.inner = self.factory()
        self.inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.inner is not None:
            self.count.release(self.address)
            self.inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.inner is not None:
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.inner is not None else None

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()
