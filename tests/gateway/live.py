"""A real Gaemi server on an ephemeral loopback port, run in a thread with its own event loop,
and a small synchronous websocket client for tests (the `websockets` library's sync client)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import msgpack
import orjson
from websockets.sync.client import ClientConnection, connect

from gaemi.gateway.server import Server
from gaemi.gateway.wire.auth import sign
from gaemi.gateway.wire.codec import JSON, MSGPACK
from gaemi.risk import SetIndexPrice

T = TypeVar("T")
SYM = "NVDA-PERP"


class LiveServer:
    def __init__(self, server: Server, loop: asyncio.AbstractEventLoop) -> None:
        self.server = server
        self.loop = loop

    @property
    def url(self) -> str:
        return self.server.url

    def on_loop(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the server's loop (between sequencer batches) and return its value."""
        async def call() -> T:
            return fn()
        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(timeout=30)

    def tick(self, now_ns: int) -> None:
        """A clock tick at ``now_ns``, between two sequencer batches."""
        def run() -> None:
            self.server.exchange.tick(now_ns)
            self.server.exchange.end_batch()
            self.server._flush_journal()
            self.server._deliver()
        self.on_loop(run)

    def client(self, encoding: str = JSON, key: str | None = None, **logon: Any) -> WsClient:
        c = WsClient(self.url, encoding)
        if key is not None:
            c.logon(key, self.server.keys[key].secret, **logon)
        return c


@contextmanager
def live_server(**kwargs: Any) -> Iterator[LiveServer]:
    """Start a server (``kwargs`` go to ``Server``) with the NVDA index at 10000 ticks.

    The server has no clock ticker unless asked (``tick_interval``): venue time stands
    still, so a test can compare states (``live.tick(ns)`` moves it by hand)."""
    kwargs.setdefault("port", 0)
    kwargs.setdefault("dev_accounts", 4)
    kwargs.setdefault("tick_interval", None)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, Any] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)

        async def main() -> None:
            server = Server(**kwargs)
            holder["server"] = server
            try:
                await server.start()
                if server.venue.market(SYM).index is None:
                    server.exchange.system(SetIndexPrice(SYM, 10_000))
            except BaseException as exc:
                holder["error"] = exc
                started.set()
                raise
            started.set()
            await server.stopped.wait()

        loop.run_until_complete(main())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    started.wait(30)
    if "error" in holder:
        raise holder["error"]
    live = LiveServer(holder["server"], loop)
    try:
        yield live
    finally:
        if not live.server.stopped.is_set():
            asyncio.run_coroutine_threadsafe(live.server.stop(), loop).result(timeout=30)
        thread.join(30)
        loop.close()


class WsClient:
    """Requests and pushes over a real websocket; ``call`` returns the response and keeps the
    pushes that came before it in ``pushes``."""

    def __init__(self, url: str, encoding: str = JSON, **kwargs: Any) -> None:
        self.encoding = encoding
        # entered as a context manager (websockets >= 17 warns otherwise); closed by close().
        # No keepalive: its thread would outlive a killed server and log the failed ping with
        # a traceback, whose formatting (Python 3.11: ast.parse for the carets) can collide
        # with another thread's ast.parse (CPython gh-106905: "AST constructor recursion
        # depth mismatch"); a test controls its own time and needs no pings
        kwargs.setdefault("ping_interval", None)
        self.ws: ClientConnection = connect(url, subprotocols=[encoding], compression=None,
                                            open_timeout=10, **kwargs).__enter__()
        self.ids = 0
        self.pushes: list[dict[str, Any]] = []

    def send(self, message: dict[str, Any]) -> None:
        self.ws.send(self.encode(message))

    def encode(self, message: dict[str, Any]) -> str | bytes:
        return msgpack.packb(message) if self.encoding == MSGPACK else \
            orjson.dumps(message).decode()

    def recv(self, timeout: float = 10) -> dict[str, Any]:
        frame = self.ws.recv(timeout=timeout)
        return msgpack.unpackb(frame) if isinstance(frame, bytes) else orjson.loads(frame)

    def call(self, op: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        self.ids += 1
        self.send({"id": self.ids, "op": op, "args": args or {}})
        return self.response(self.ids)

    def response(self, rid: Any) -> dict[str, Any]:
        while True:
            message = self.recv()
            if "ch" in message:
                self.pushes.append(message)
            elif message["id"] == rid or message["id"] is None:
                return message

    def result(self, op: str, args: dict[str, Any] | None = None) -> Any:
        response = self.call(op, args)
        assert response["ok"], response
        return response["result"]

    def logon(self, key: str, secret: str, **extra: Any) -> Any:
        args = {"apiKey": key, "timestamp": time.time_ns() // 1_000_000, **extra}
        args["signature"] = sign(args, secret)
        return self.result("session.logon", args)

    def drain(self, quiet: float = 0.2) -> list[dict[str, Any]]:
        """Every push that arrives until the connection has been quiet for ``quiet`` s."""
        while True:
            try:
                self.pushes.append(self.recv(timeout=quiet))
            except TimeoutError:
                out, self.pushes = self.pushes, []
                return out

    def close(self) -> None:
        self.ws.close()
