"""One client interface, two transports: a ``Session`` is one logged-on account that sends
wire messages (docs/protocol.md) and gets back a ``Reply``: the result or the error, and the
pushes the request caused on that connection (the ordering rule puts them before the
response).

Agents written against ``Session`` run unchanged in process (clients/sim/inprocess.py: the
sans-I/O exchange called with message objects, time passed in, nothing encoded) and over a
websocket (``WsSession`` below, blocking, on the ``websockets`` library's sync client).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import msgpack
import orjson
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol

from gaemi.gateway.wire.auth import sign
from gaemi.gateway.wire.codec import JSON, MSGPACK

__all__ = ["Reply", "Session", "WsSession"]


@dataclass(slots=True)
class Reply:
    """A request's outcome: ``result`` when ``ok``, else the error's ``code`` and ``msg``;
    ``pushes``: what the connection received while the request ran, in order: the pushes the
    request caused (the ordering rule sends them before the response) and, over a socket,
    any that another client's request caused meanwhile."""

    ok: bool
    result: Any = None
    code: int = 0
    msg: str = ""
    pushes: list[dict[str, Any]] = field(default_factory=list)

    def fills(self, role: str | None = None) -> list[dict[str, Any]]:
        """The ``fills`` pushes (of one ``role``), liquidation fills left out."""
        return [p["data"] for p in self.pushes if p.get("ch") == "fills"
                and not p["data"]["liquidation"] and (role is None or p["data"]["role"] == role)]


class Session(ABC):
    """One account's logged-on connection, whatever carries it."""

    account_id: int

    @abstractmethod
    def send(self, message: dict[str, Any]) -> Reply:
        """Send ``{"op", "args"}`` (the session adds the id) and wait for its response."""

    def request(self, op: str, args: dict[str, Any] | None = None) -> Any:
        reply = self.send({"op": op, "args": args or {}})
        if not reply.ok:
            raise RuntimeError(f"{op}: {reply.code} {reply.msg}")
        return reply.result

    def position(self, symbol: str) -> int:
        """The account's signed position in ``symbol``, in lots (``account.positions``)."""
        for p in self.request("account.positions")["positions"]:
            if p["symbol"] == symbol:
                return int(p["size"])
        return 0

    def available(self) -> int:
        """What the account can still commit to new orders, µ$ (``account.balance``)."""
        return int(self.request("account.balance")["available"])


def reply_of(messages: Iterable[dict[str, Any]], rid: int) -> Reply:
    """The Reply in a connection's messages for request ``rid`` (pushes before it)."""
    pushes = []
    for m in messages:
        if "ch" in m:
            pushes.append(m)
        elif m.get("id") == rid:
            if m["ok"]:
                return Reply(True, m["result"], pushes=pushes)
            return Reply(False, None, m["error"]["code"], m["error"]["msg"], pushes)
    raise RuntimeError(f"no response to request {rid}")


class WsSession(Session):
    """A session over a websocket, blocking: ``send`` returns when the response is in.
    Pushes that arrived before a request are kept for ``drain``, not put in its reply."""

    def __init__(self, url: str, api_key: str, secret: str, account_id: int, *,
                 encoding: str = JSON, channels: Iterable[str] = ("fills", "account"),
                 timeout: float = 30.0) -> None:
        self.account_id = account_id
        self.encoding = encoding
        self.timeout = timeout
        # entered as a context manager (websockets >= 17 warns otherwise); closed by close()
        self._ws: ClientConnection = connect(
            url, subprotocols=[Subprotocol(encoding)], compression=None,
            open_timeout=timeout).__enter__()
        self._ids = 0
        self._waiting: list[dict[str, Any]] = []
        args = {"apiKey": api_key, "timestamp": time.time_ns() // 1_000_000}
        args["signature"] = sign(args, secret)
        self.request("session.logon", args)
        if channels:
            self.request("subscribe", {"channels": list(channels)})

    def send(self, message: dict[str, Any]) -> Reply:
        self._waiting.extend(self._available())
        self._ids += 1
        rid = self._ids
        frame = {"id": rid, **message}
        self._ws.send(msgpack.packb(frame) if self.encoding == MSGPACK
                      else orjson.dumps(frame).decode())
        pushes = []
        while True:
            m = self._recv(self.timeout)
            if "ch" in m:
                pushes.append(m)
            elif m.get("id") == rid:
                return reply_of(pushes + [m], rid)

    def drain(self) -> list[dict[str, Any]]:
        """The pushes that arrived outside this session's own requests, in order."""
        out, self._waiting = self._waiting, []
        return out + self._available()

    def _available(self) -> list[dict[str, Any]]:
        out = []
        while True:
            try:
                out.append(self._recv(0))
            except TimeoutError:
                return out

    def _recv(self, timeout: float) -> dict[str, Any]:
        frame = self._ws.recv(timeout=timeout)
        message: dict[str, Any] = (msgpack.unpackb(frame) if isinstance(frame, bytes)
                                   else orjson.loads(frame))
        return message

    def close(self) -> None:
        self._ws.close()
