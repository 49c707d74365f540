"""The websocket server: the only module of Gaemi that does network I/O and reads the clock.

One sequencer task owns the venue (through ``gateway.wire.session.Exchange``). Reader tasks,
one per connection, queue frames in arrival order; the sequencer takes everything queued in
one event-loop turn as a batch, runs it, publishes the conflated book deltas, makes the
journal durable, and only then hands the batch's responses and pushes to the writers: an
acknowledged order is on disk. A timer queues a clock tick every second, which the sequencer
turns into a journaled ``AdvanceTime`` (the venue never reads the clock itself).

Each connection's outgoing queue is bounded: a client that does not read is closed with 1008
"slow consumer" instead of holding everyone back. Input is bounded too: a connection with
``MAX_INFLIGHT`` frames waiting is not read further until the sequencer catches up.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from gateway.wire.auth import ApiKey
from gateway.wire.codec import JSON, MAX_FRAME, SUBPROTOCOLS
from gateway.wire.session import Conn, Exchange, Limits
from risk import Deposit, Venue, usd
from risk.markets import MarketSpec


__all__ = ["DEV_DEPOSIT", "Server", "dev_keys", "load_keys", "save_keys"]

log = logging.getLogger("gaemi.gateway")

DEFAULT_PORT = 8765
DEV_DEPOSIT = usd(1_000_000)
MAX_INFLIGHT = 1_000  # frames of one connection waiting for the sequencer
MAX_BATCH_FRAMES = 4_096
READ_LIMIT = 16 * MAX_FRAME  # larger frames close the connection (1009); smaller ones get 8011
_TICK = object()
_SHUTDOWN = object()
_STOP = object()


def dev_keys(n: int, *, admin: bool = True) -> dict[str, ApiKey]:
    """Keys ``dev-1`` .. ``dev-n`` for accounts 1..n (and ``admin``), with fresh secrets."""
    keys = {f"dev-{i}": ApiKey(f"dev-{i}", secrets.token_hex(16), i) for i in range(1, n + 1)}
    if admin:
        keys["admin"] = ApiKey("admin", secrets.token_hex(16), 0, admin=True)
    return keys


def load_keys(path: str | Path) -> dict[str, ApiKey]:
    """A key file (docs/protocol.md §3): ``{"keys": [{apiKey, secret, accountId, admin}]}``."""
    data = json.loads(Path(path).read_text())
    keys = {}
    for row in data["keys"]:
        key = ApiKey(str(row["apiKey"]), str(row["secret"]), int(row["accountId"]),
                     bool(row.get("admin", False)))
        if key.key in keys:
            raise ValueError(f"{path}: API key {key.key!r} appears twice")
        keys[key.key] = key
    return keys


def save_keys(keys: dict[str, ApiKey], path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{"apiKey": k.key, "secret": k.secret, "accountId": k.account_id, "admin": k.admin}
            for k in keys.values()]
    path.write_text(json.dumps({"keys": rows}, indent=2) + "\n")
    path.chmod(0o600)


class _Link:
    """The I/O half of a connection: its websocket, outgoing queue and writer task."""

    __slots__ = ("ws", "conn", "queue", "ready", "inflight", "resume", "writer", "closing")

    def __init__(self, ws: ServerConnection, conn: Conn) -> None:
        self.ws = ws
        self.conn = conn
        self.queue: deque[str | bytes] = deque()
        self.ready = asyncio.Event()
        self.inflight = 0
        self.resume = asyncio.Event()
        self.writer: asyncio.Task[None] | None = None
        self.closing: tuple[int, str] | None = None

    async def write(self) -> None:
        ws, queue = self.ws, self.queue
        try:
            while True:
                await self.ready.wait()
                self.ready.clear()
                while queue:
                    await ws.send(queue.popleft())
                if self.closing is not None:
                    await ws.close(*self.closing)
                    return
        except ConnectionClosed:
            pass


class Server:
    """A Gaemi exchange on a websocket. ``async with Server(...) as server`` starts it;
    ``server.url`` is where it listens (``port=0``: an ephemeral port).

    ``journal``: the command journal (recovered when it exists, created otherwise; None: no
    journal). ``keys``: API key -> ApiKey; ``dev_accounts``: also create keys ``dev-1``..
    ``dev-N`` (and ``admin``) and fund accounts 1..N with $1,000,000 each, once.
    ``durability``: "fsync" (each batch is on disk before it is acknowledged) or "flush"
    (handed to the OS: survives a crash of the server, not of the machine).
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 journal: str | Path | None = None, keys: dict[str, ApiKey] | None = None,
                 dev_accounts: int = 0, markets: Iterable[MarketSpec] | None = None,
                 book: str = "auto", limits: Limits | None = None,
                 tick_interval: float = 1.0, durability: str = "fsync",
                 clock: Callable[[], int] = time.time_ns) -> None:
        if durability not in ("fsync", "flush"):
            raise ValueError("durability: 'fsync' or 'flush'")
        self.host = host
        self.port = port
        self.journal = Path(journal) if journal is not None else None
        self.keys = dict(keys or {})
        self.dev_accounts = dev_accounts
        self._markets = list(markets) if markets is not None else None
        self._book = book
        self.limits = limits or Limits()
        self.tick_interval = tick_interval
        self.durability = durability
        self.clock = clock
        self.venue: Venue | None = None
        self.exchange: Exchange | None = None
        self.failure: BaseException | None = None
        self.dropped: list[tuple[int, int, str]] = []  # (connection, close code, reason)
        self.stopped = asyncio.Event()
        self._links: dict[int, _Link] = {}
        self._inbox: asyncio.Queue[Any] = asyncio.Queue()
        self._ws_server: Any = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._drained = asyncio.Event()
        self._stopping = False

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        now = self.clock()
        if self.journal is not None and self.journal.exists() and self.journal.stat().st_size:
            self.venue = Venue.recover(self.journal, book=self._book)
            log.info("recovered %s: %d commands, state %s", self.journal, self.venue.seq,
                     self.venue.state_hash())
        else:
            if self.journal is not None:
                self.journal.parent.mkdir(parents=True, exist_ok=True)
            self.venue = Venue(self._markets, book=self._book, journal=self.journal,
                               start_ts=now)
        if self.dev_accounts:
            for key in dev_keys(self.dev_accounts).values():
                self.keys.setdefault(key.key, key)
        self.exchange = Exchange(self.venue, self.keys, limits=self.limits)
        funded = set(self.venue.accounts())
        for key in self.keys.values():
            if key.key.startswith("dev-") and key.account_id not in funded and \
                    key.account_id > 0:
                self.exchange.system(Deposit(key.account_id, DEV_DEPOSIT))
                funded.add(key.account_id)
        self.exchange.tick(now)
        self._flush_journal()
        self._ws_server = await serve(
            self._handle, self.host, self.port, subprotocols=list(SUBPROTOCOLS),
            compression=None, max_size=READ_LIMIT, ping_interval=20, ping_timeout=20,
            max_queue=64, close_timeout=2)
        self.port = self._ws_server.sockets[0].getsockname()[1]
        self._tasks = [asyncio.create_task(self._sequencer(), name="gaemi-sequencer"),
                       asyncio.create_task(self._ticker(), name="gaemi-ticker")]
        log.info("listening on %s", self.url)

    async def stop(self) -> None:
        """Answer what has arrived, refuse the rest, close every connection (1001), apply
        cancel-on-disconnect, make the journal durable and close it."""
        if self._stopping:
            await self.stopped.wait()
            return
        self._stopping = True
        self._tasks[1].cancel()
        if not self._tasks[0].done():
            self._inbox.put_nowait(_SHUTDOWN)
            await self._drained.wait()
        self._ws_server.close(close_connections=False)
        for link in list(self._links.values()):
            if link.closing is None:
                link.closing = (1001, "server shutting down")
            link.ready.set()
        writers = [link.writer for link in self._links.values() if link.writer]
        if writers:
            await asyncio.wait(writers, timeout=5)
        await asyncio.gather(*(link.ws.close(1001, "server shutting down")
                               for link in list(self._links.values())))
        await self._ws_server.wait_closed()
        if not self._tasks[0].done():
            self._inbox.put_nowait(_STOP)
            await self._tasks[0]
        if self.venue is not None:
            self.venue.sync()
            self.venue.close()
        self.stopped.set()

    async def __aenter__(self) -> Server:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- connections --------------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        exchange = self.exchange
        assert exchange is not None
        conn = exchange.connect(ws.subprotocol or JSON, self.clock())
        link = _Link(ws, conn)
        self._links[conn.cid] = link
        link.writer = asyncio.create_task(link.write())
        inbox = self._inbox
        try:
            async for frame in ws:
                if link.inflight >= MAX_INFLIGHT:
                    link.resume.clear()
                    await link.resume.wait()
                link.inflight += 1
                inbox.put_nowait((conn, frame))
        except ConnectionClosed:
            pass
        finally:
            if not self._tasks[0].done():
                inbox.put_nowait((conn, None))
            else:
                self._links.pop(conn.cid, None)
            if link.closing is None:
                link.writer.cancel()

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self.tick_interval)
            self._inbox.put_nowait(_TICK)

    # -- the sequencer ------------------------------------------------------------------------

    async def _sequencer(self) -> None:
        exchange, inbox = self.exchange, self._inbox
        assert exchange is not None
        try:
            while True:
                item = await inbox.get()
                batch = [item]
                while len(batch) < MAX_BATCH_FRAMES and not inbox.empty():
                    batch.append(inbox.get_nowait())
                now = self.clock()
                stop = False
                for item in batch:
                    if item is _TICK:
                        exchange.tick(now)
                    elif item is _SHUTDOWN:
                        exchange.shutting_down = True
                    elif item is _STOP:
                        stop = True
                    else:
                        conn, frame = item
                        if frame is None:
                            exchange.disconnect(conn, now)
                            self._links.pop(conn.cid, None)
                            continue
                        link = self._links.get(conn.cid)
                        if link is not None:
                            link.inflight -= 1
                            if link.inflight < MAX_INFLIGHT // 2:
                                link.resume.set()
                        if conn.cid in exchange.conns:
                            exchange.receive(conn, frame, now)
                exchange.end_batch()
                self._flush_journal()
                self._deliver()
                if exchange.shutting_down:
                    self._drained.set()
                if stop:
                    return
        except Exception as exc:  # a defect: stop serving rather than run on a broken state
            log.critical("sequencer failed; stopping the server", exc_info=True)
            self.failure = exc
            self._drained.set()
            asyncio.get_running_loop().create_task(self.stop())

    def _flush_journal(self) -> None:
        assert self.venue is not None
        if self.durability == "fsync":
            self.venue.sync()
        else:
            self.venue.flush()

    def _deliver(self) -> None:
        """Move every outbox to its writer; drop slow consumers; close whoever must close."""
        cap = self.limits.outbox_max
        for conn in self.exchange.conns.values():  # type: ignore[union-attr]
            if not conn.outbox and conn.close is None:
                continue
            link = self._links.get(conn.cid)
            if link is None or link.closing is not None:
                conn.outbox.clear()
                continue
            link.queue.extend(conn.outbox)
            conn.outbox.clear()
            if len(link.queue) > cap:
                # its writer is stuck in a send: stop it and close (aborted after close_timeout)
                log.warning("connection %d: slow consumer, %d messages queued; closing",
                            conn.cid, len(link.queue))
                link.queue.clear()
                link.closing = (1008, "slow consumer")
                self.dropped.append((conn.cid, 1008, "slow consumer"))
                if link.writer is not None:
                    link.writer.cancel()
                asyncio.get_running_loop().create_task(link.ws.close(1008, "slow consumer"))
                continue
            if conn.close is not None:
                link.closing = conn.close
                self.dropped.append((conn.cid, *conn.close))
            link.ready.set()
