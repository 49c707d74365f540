"""The websocket server: the only module of Gaemi that does network I/O and reads the clock.

One sequencer task owns the venue (through ``gateway.exchange.Exchange``). Reader tasks,
one per connection, queue frames in arrival order, each connection in a queue of its own; the
sequencer makes a batch of what is queued, taking up to ``FRAMES_PER_TURN`` frames from each
waiting connection in turn (so one connection with a thousand frames queued delays another's
single request by at most one turn, not by the thousand), runs it, publishes the conflated
book deltas, makes the journal durable, and only then hands the batch's responses and pushes
to the writers: an acknowledged order is on disk. A timer queues a clock tick every second,
which the sequencer turns into a journaled ``AdvanceTime`` (the venue never reads the clock).

Each connection's outgoing queue is bounded, in messages and in bytes (``Limits``), and so is
its kernel send buffer (``send_buffer``, which turns off the kernel's autotuning): a client
that does not read is closed with 1008 "slow consumer" instead of holding everyone back or
growing the server's memory. Input is bounded too: a connection with ``MAX_INFLIGHT`` frames
waiting is not read further until the sequencer catches up. Connections are limited in total
and per client address (HTTP 503 before the upgrade).

Faults (docs/reliability.md): no request can stop the sequencer (``Exchange`` turns a defect
into error 9001 and rolls the venue back to its journal: ``_restore``). Only a failure to write
the journal stops the server, since an order can no longer be made durable before it is
acknowledged.

Recovery: at start the venue is rebuilt from the newest valid snapshot and the journal after
it (risk/recovery.py); then every account that held a cancel-on-disconnect session or an
armed dead-man switch has its orders cancelled (journaled) before any connection is accepted.
Every ``snapshot_every`` commands a snapshot is written by a forked child (the sequencer does
not pause for it) and at a clean stop one more, so a restart replays little.
"""

from __future__ import annotations

import asyncio
import http
import json
import logging
import os
import secrets
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed, NegotiationError
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.typing import Subprotocol

from gaemi.gateway.binance.connections import KEEPALIVE_S, Capped, ConnectionCount
from gaemi.gateway.binance.connections import MAX_CONNECTIONS as BINANCE_CONNECTIONS
from gaemi.gateway.binance.connections import MAX_PER_ADDRESS as BINANCE_PER_ADDRESS
from gaemi.gateway.binance.rest import STREAMS, make_app
from gaemi.gateway.binance.streams import Streams
from gaemi.gateway.binance.tape import Tape
from gaemi.gateway.binance.weights import DEFAULT_LIMIT as BINANCE_WEIGHT_LIMIT
from gaemi.gateway.exchange import Exchange
from gaemi.gateway.sessions import SLOW_CONSUMER, Conn, Guards, Limits
from gaemi.gateway.wire.auth import ApiKey
from gaemi.gateway.wire.codec import JSON, MAX_FRAME, SUBPROTOCOLS
from gaemi.risk import Deposit, Venue, usd
from gaemi.risk.markets import MarketSpec
from gaemi.risk.recovery import code_fingerprint, recover, write_snapshot

__all__ = ["DEV_DEPOSIT", "Server", "dev_keys", "load_keys", "save_keys"]

log = logging.getLogger("gaemi.gateway")

DEFAULT_PORT = 8765
DEV_DEPOSIT = usd(1_000_000)
MAX_INFLIGHT = 1_000  # frames of one connection waiting for the sequencer
FRAMES_PER_TURN = 32  # frames of one connection in one batch, while others wait
READ_LIMIT = 16 * MAX_FRAME  # larger frames close the connection (1009); smaller ones get 8011
SEND_BUFFER = 256 * 1024  # bytes of kernel send buffer per connection
CLOSE_TIMEOUT = 2  # seconds a closing handshake may take
SNAPSHOT_EVERY = 25_000  # commands between two snapshots of the venue
_TICK = "tick"
Prepare = Callable[[], tuple[str, dict[str, Any]]]  # a facade request, made in its turn
_SHUTDOWN = "shutdown"
_STOP = "stop"


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

    __slots__ = ("ws", "conn", "queue", "ready", "frames", "waiting", "resume", "writer",
                 "closing", "address")

    def __init__(self, ws: ServerConnection, conn: Conn) -> None:
        self.ws = ws
        self.conn = conn
        self.queue: deque[str | bytes] = deque()
        self.ready = asyncio.Event()
        self.frames: deque[str | bytes | None] = deque()  # None: the connection ended
        self.waiting = False  # in the sequencer's turn queue
        self.resume = asyncio.Event()
        self.writer: asyncio.Task[None] | None = None
        self.closing: tuple[int, str] | None = None
        self.address = _address(ws)

    async def write(self) -> None:
        """Send what the queue holds, every frame waiting at once with one socket write (not
        one a frame: a batch's responses to one connection leave together), under the
        connection's flow control; then close if asked."""
        ws, queue, conn = self.ws, self.queue, self.conn
        try:
            while True:
                await self.ready.wait()
                self.ready.clear()
                while queue:
                    async with ws.send_context():  # checks the state; drains on exit
                        protocol = ws.protocol
                        while queue:
                            frame = queue.popleft()
                            conn.backlog -= len(frame)
                            if isinstance(frame, str):
                                protocol.send_text(frame.encode())
                            else:
                                protocol.send_binary(frame)
                        _write_joined(ws)
                if self.closing is not None:
                    await ws.close(*self.closing)
                    return
        except ConnectionClosed:
            pass


def _write_joined(ws: ServerConnection) -> None:
    """Hand the protocol's outgoing frames to the transport as one write (``send_context``
    then finds nothing left to send). Text and binary frames never end the stream; should an
    end-of-stream marker (an empty chunk) be there, it is honoured as websockets does."""
    chunks = ws.protocol.data_to_send()
    data = b"".join(chunks)
    if data:
        ws.transport.write(data)
    if any(not chunk for chunk in chunks):
        if ws.transport.can_write_eof():
            ws.transport.write_eof()
        else:
            ws.transport.close()


class Server:
    """A Gaemi exchange on a websocket. ``async with Server(...) as server`` starts it;
    ``server.url`` is where it listens (``port=0``: an ephemeral port).

    ``journal``: the command journal (recovered when it exists, created otherwise; None: no
    journal). ``keys``: API key -> ApiKey; ``dev_accounts``: also create keys ``dev-1``..
    ``dev-N`` (and ``admin``) and fund accounts 1..N with $1,000,000 each, once.
    ``durability``: "fsync" (each batch is on disk before it is acknowledged) or "flush"
    (handed to the OS: survives a crash of the server, not of the machine).
    ``tick_interval``: seconds between clock ticks (None: no ticker; time then moves only
    when ``exchange.tick`` is called, as tests that compare states do).
    ``snapshot_every``: commands between snapshots (None: none; needs a journal).
    ``send_buffer``: the kernel send buffer of each connection, in bytes.
    ``binance_port``: also serve the Binance USDⓈ-M REST facade (gateway/binance) on this
    port of ``host`` (0: any free port; None: not at all), on the same event loop;
    ``binance_weight_limit``: the request weight an address may spend there a minute;
    ``binance_connections``: the TCP connections its port may hold (in all, per address).
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 journal: str | Path | None = None, keys: dict[str, ApiKey] | None = None,
                 dev_accounts: int = 0, markets: Iterable[MarketSpec] | None = None,
                 book: str = "auto", limits: Limits | None = None,
                 tick_interval: float | None = 1.0, durability: str = "fsync",
                 clock: Callable[[], int] = time.time_ns,
                 snapshot_every: int | None = SNAPSHOT_EVERY,
                 send_buffer: int = SEND_BUFFER, binance_port: int | None = None,
                 binance_weight_limit: int = BINANCE_WEIGHT_LIMIT,
                 binance_connections: tuple[int, int] = (BINANCE_CONNECTIONS,
                                                         BINANCE_PER_ADDRESS)) -> None:
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
        self.snapshot_every = snapshot_every
        self.send_buffer = send_buffer
        self.binance_port = binance_port
        self.binance_weight_limit = binance_weight_limit
        self._binance: web.AppRunner | None = None
        self._binance_sock: socket.socket | None = None
        self._binance_listener: asyncio.AbstractServer | None = None
        # the facade port's TCP connections: open, against (in all, per address)
        self.binance_connections = ConnectionCount(*binance_connections)
        self.tape: Tape | None = None  # the Binance facade's trades, candles and fundings
        self.streams: Streams | None = None  # the Binance facade's websocket streams
        self.exchange: Exchange | None = None
        self.failure: BaseException | None = None
        self.dropped: list[tuple[int, int, str]] = []  # (connection, close code, reason)
        self.recovery: dict[str, Any] = {}  # what the start found (docs/reliability.md)
        self.stopped = asyncio.Event()
        self._links: dict[int, _Link] = {}
        self._per_address: dict[str, int] = {}
        self._sock: socket.socket | None = None
        self._snapshot_pid: int | None = None
        self._snapshot_seq = 0
        # called once the venue is up, before the first connection (gaemi serve writes its
        # key file there, so that a server that fails to start leaves nothing behind)
        self.on_started: list[Callable[[], None]] = []
        self._turns: deque[_Link] = deque()  # connections with frames waiting, in turn order
        # requests of the Binance facade, per account: (message, future of the response),
        # and the accounts with requests waiting, in turn order
        self._calls: dict[int, deque[tuple[int, Prepare, asyncio.Future[Any]]]] = {}
        self._call_turns: deque[int] = deque()
        self._call_conns: dict[int, Conn] = {}  # account -> its in-process connection
        self._call_ids = 0
        self._control: deque[str] = deque()  # ticks, shutdown, stop
        self._wake = asyncio.Event()
        self._ws_server: Any = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._drained = asyncio.Event()
        self._stopping = False

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def binance_url(self) -> str:
        """The Binance facade's base URL (``http://host:port``; routes under ``/fapi``)."""
        return f"http://{self.host}:{self.binance_port}"

    @property
    def venue(self) -> Venue | None:
        """The venue (the exchange's: it is replaced when a defect rolls it back)."""
        return self.exchange.venue if self.exchange is not None else None

    # -- lifecycle --------------------------------------------------------------------------

    def bind(self) -> None:
        """Bind the listening addresses (before anything else is created, so that a port in
        use fails without side effects). ``start`` calls it when needed."""
        if self._sock is not None:
            return
        sock = _listen(self.host, self.port)
        if self.binance_port is not None:
            try:
                self._binance_sock = _listen(self.host, self.binance_port)
            except BaseException:
                sock.close()
                raise
            self.binance_port = self._binance_sock.getsockname()[1]
        self._sock = sock
        self.port = sock.getsockname()[1]

    async def start(self) -> None:
        self.bind()
        try:
            await self._start()
        except BaseException:
            if self._sock is not None:
                self._sock.close()
            if self._binance_sock is not None:
                self._binance_sock.close()
            if self.exchange is not None:
                self.exchange.venue.close()
            raise

    async def _start(self) -> None:
        now = self.clock()
        guards = Guards()
        if self.journal is not None:  # a snapshot writer killed before its rename
            for partial in self.journal.parent.glob(self.journal.name + ".snap-*.tmp"):
                partial.unlink(missing_ok=True)
        if self.journal is not None and self.journal.exists() and self.journal.stat().st_size:
            started = time.perf_counter()
            rec = recover(self.journal, book=self._book)
            venue = rec.venue
            guards = Guards.from_state(rec.owner)
            for note in rec.notes:
                guards.apply(note)
            self.recovery = {
                "seq": venue.seq, "snapshot": rec.snapshot.name if rec.snapshot else None,
                "replayed": rec.replayed, "skipped": [p.name for p, _ in rec.skipped],
                "torn_bytes": rec.torn.size if rec.torn else 0,
                "seconds": round(time.perf_counter() - started, 3)}
            log.info("recovered %s in %.2f s: seq %d, from %s + %d journaled commands, "
                     "state %s", self.journal, self.recovery["seconds"], venue.seq,
                     rec.snapshot.name if rec.snapshot else "the start", rec.replayed,
                     venue.state_hash())
            self._snapshot_seq = venue.seq - rec.replayed
        else:
            if self.journal is not None:
                self.journal.parent.mkdir(parents=True, exist_ok=True)
            venue = Venue(self._markets, book=self._book, journal=self.journal, start_ts=now)
        if self.dev_accounts:
            for key in dev_keys(self.dev_accounts).values():
                self.keys.setdefault(key.key, key)
        restore = self._restore if self.journal is not None else None
        if self.binance_port is not None:  # the facade's history, from the venue's events
            self.tape = Tape({s: venue.spec(s).multiplier for s in venue.symbols},
                             lambda: self.venue.time if self.venue is not None else 0)
            self.tape.orders.seed(venue, venue.time // 1_000_000)  # after a restart
        self.exchange = Exchange(venue, self.keys, limits=self.limits, restore=restore,
                                 guards=guards,
                                 observer=self.tape.observe if self.tape is not None else None)
        cancelled = self.exchange.recover_guards()
        if cancelled:
            log.info("cancelled the orders of %d accounts whose cancel-on-disconnect or "
                     "dead-man switch the stop interrupted: %s", len(cancelled), cancelled)
        self.recovery["guard_cancels"] = cancelled
        funded = set(venue.accounts())
        for key in self.keys.values():
            if key.key.startswith("dev-") and key.account_id not in funded and \
                    key.account_id > 0:
                self.exchange.system(Deposit(key.account_id, DEV_DEPOSIT))
                funded.add(key.account_id)
        self.exchange.tick(now)
        self.exchange.end_batch()
        self._flush_journal()
        if self.snapshot_every is not None and self.journal is not None:
            code_fingerprint()  # read the sources now, not in a forked child
        for hook in self.on_started:
            hook()
        assert self._sock is not None
        self._ws_server = await serve(
            self._handle, sock=self._sock, subprotocols=[Subprotocol(s) for s in SUBPROTOCOLS],
            select_subprotocol=_select_subprotocol, process_request=self._admit,
            compression=None, max_size=READ_LIMIT, ping_interval=20, ping_timeout=20,
            max_queue=64, close_timeout=CLOSE_TIMEOUT)
        self._tasks = [asyncio.create_task(self._sequencer(), name="gaemi-sequencer")]
        if self.tick_interval is not None:
            self._tasks.append(asyncio.create_task(self._ticker(), name="gaemi-ticker"))
        log.info("listening on %s", self.url)
        if self.binance_port is not None:
            assert self.tape is not None
            app = make_app(self, self.tape, weight_limit=self.binance_weight_limit)
            self.streams = app[STREAMS]
            runner = web.AppRunner(app, access_log=None, handle_signals=False,
                                   keepalive_timeout=KEEPALIVE_S)
            await runner.setup()
            self._binance = runner
            assert self._binance_sock is not None and runner.server is not None
            # each connection counted against the bounds (connections.py) before aiohttp
            # sees it, instead of aiohttp's own site, which has none
            handler = runner.server
            self._binance_listener = await asyncio.get_running_loop().create_server(
                lambda: Capped(handler, self.binance_connections), sock=self._binance_sock)
            log.info("Binance USDⓈ-M facade on %s", self.binance_url)

    def _restore(self, position: Any) -> Venue:
        """The venue as its journal had it at ``position`` (after a defect: Exchange)."""
        assert self.exchange is not None and self.journal is not None
        venue = self.exchange.venue
        assert venue.journal is not None
        venue.journal.rollback(position)
        venue.close()
        return recover(self.journal, book=self._book).venue

    async def stop(self) -> None:
        """Answer what has arrived, refuse the rest, close every connection (1001), apply
        cancel-on-disconnect, make the journal durable and close it."""
        if self._stopping:
            await self.stopped.wait()
            return
        self._stopping = True
        if self.streams is not None:
            await self.streams.close()
        if self._binance_listener is not None:
            self._binance_listener.close()
        if self._binance is not None:
            await self._binance.cleanup()
        for task in self._tasks[1:]:
            task.cancel()
        if not self._tasks[0].done():
            self._signal(_SHUTDOWN)
            await self._drained.wait()
        self._ws_server.close(close_connections=False)
        for link in list(self._links.values()):
            if link.closing is None:
                link.closing = (1001, "server shutting down")
            link.ready.set()
        writers = [link.writer for link in self._links.values() if link.writer]
        if writers:
            await asyncio.wait(writers, timeout=5)
        await asyncio.gather(*(_close_now(link.ws, 1001, "server shutting down")
                               for link in list(self._links.values())))
        await self._ws_server.wait_closed()
        if not self._tasks[0].done():
            self._signal(_STOP)
            await self._tasks[0]
        venue = self.venue
        if venue is not None:
            if self.failure is None:
                venue.sync()
                self._wait_snapshot(block=True)
                if self.snapshot_every is not None and venue.journal is not None \
                        and venue.seq > self._snapshot_seq:
                    try:  # a clean stop leaves a snapshot: the next start replays nothing
                        write_snapshot(venue, self.exchange.guards.state())  # type: ignore[union-attr]
                    except OSError:
                        log.warning("no snapshot at stop", exc_info=True)
            venue.close()
        self.stopped.set()

    async def __aenter__(self) -> Server:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- connections --------------------------------------------------------------------------

    def _admit(self, ws: ServerConnection, request: Request) -> Response | None:
        """Before the upgrade: refuse a connection over the limits with HTTP 503."""
        limits = self.limits
        if len(self._links) >= limits.max_connections:
            return ws.respond(http.HTTPStatus.SERVICE_UNAVAILABLE, "too many connections\n")
        if self._per_address.get(_address(ws), 0) >= limits.max_connections_per_address:
            return ws.respond(http.HTTPStatus.SERVICE_UNAVAILABLE,
                              "too many connections from this address\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        exchange = self.exchange
        assert exchange is not None
        address = _address(ws)
        limits = self.limits
        if len(self._links) >= limits.max_connections or \
                self._per_address.get(address, 0) >= limits.max_connections_per_address:
            await ws.close(1013, "too many connections")  # admitted together with others
            return
        sock = ws.transport.get_extra_info("socket")
        if sock is not None and self.send_buffer:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer)
        conn = exchange.connect(ws.subprotocol or JSON, self.clock())
        link = _Link(ws, conn)
        self._links[conn.cid] = link
        self._per_address[address] = self._per_address.get(address, 0) + 1
        link.writer = asyncio.create_task(link.write())
        try:
            async for frame in ws:
                if len(link.frames) >= MAX_INFLIGHT:
                    link.resume.clear()
                    await link.resume.wait()
                self._enqueue(link, frame)
        except ConnectionClosed:
            pass
        finally:
            if not self._tasks[0].done():
                self._enqueue(link, None)
            else:
                self._links.pop(conn.cid, None)
            left = self._per_address[address] - 1
            if left:
                self._per_address[address] = left
            else:
                del self._per_address[address]
            if link.closing is None:
                link.writer.cancel()

    def _enqueue(self, link: _Link, frame: str | bytes | None) -> None:
        link.frames.append(frame)
        if not link.waiting:
            link.waiting = True
            self._turns.append(link)
            self._wake.set()

    def _signal(self, what: str) -> None:
        self._control.append(what)
        self._wake.set()

    async def _ticker(self) -> None:
        assert self.tick_interval is not None
        while True:
            await asyncio.sleep(self.tick_interval)
            self._signal(_TICK)

    # -- the sequencer ------------------------------------------------------------------------

    async def _sequencer(self) -> None:
        exchange, turns, control = self.exchange, self._turns, self._control
        assert exchange is not None
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                now = self.clock()
                stop = False
                while control:
                    what = control.popleft()
                    if what == _TICK:
                        exchange.tick(now)
                    elif what == _SHUTDOWN:
                        exchange.shutting_down = True
                    else:
                        stop = True
                for _ in range(len(turns)):  # one turn of every connection with frames
                    link = turns.popleft()
                    conn, frames = link.conn, link.frames
                    for _ in range(min(FRAMES_PER_TURN, len(frames))):
                        frame = frames.popleft()
                        if frame is None:
                            exchange.disconnect(conn, now)
                            self._links.pop(conn.cid, None)
                            frames.clear()
                            break
                        if conn.cid in exchange.conns:
                            exchange.receive(conn, frame, now)
                    if len(frames) < MAX_INFLIGHT // 2:
                        link.resume.set()
                    if frames:
                        turns.append(link)  # the rest in the next batch, after the others
                    else:
                        link.waiting = False
                if turns:
                    self._wake.set()
                answered = self._run_calls(now)
                exchange.end_batch()
                self._flush_journal()
                for future, response in answered:  # acknowledged once on disk
                    if not future.done():
                        future.set_result(response)
                self._deliver()
                self._publish_streams()
                try:
                    self._maybe_snapshot()
                except OSError:  # fork or disk: the journal still has everything
                    log.warning("snapshot not written", exc_info=True)
                if exchange.shutting_down:
                    self._drained.set()
                if stop:
                    return
        except Exception as exc:  # the journal cannot be written: nothing can be acknowledged
            log.critical("sequencer failed; stopping the server", exc_info=True)
            self.failure = exc
            self._drained.set()
            asyncio.get_running_loop().create_task(self.stop())

    async def call(self, account_id: int, op: str, args: dict[str, Any] | None = None, *,
                   prepare: Prepare | None = None) -> dict[str, Any]:
        """Run a native request ``{op, args}`` as ``account_id`` in the sequencer's next batch
        (ordered with every connection's requests, under the same checks and limits) and
        return its response once the batch is on disk: the Binance facade's way in.
        ``prepare``: instead of ``op`` and ``args``, a function that makes them in the
        sequencer's turn, from the state as it is then (a Binance modify's open size is the
        whole size less what has filled by then)."""
        if self._stopping or self._tasks[0].done():
            return {"id": None, "ok": False,
                    "error": {"code": 9002, "msg": "SHUTTING_DOWN: the server is stopping"}}
        queue = self._calls.get(account_id)
        if queue is None:
            queue = self._calls[account_id] = deque()
        if len(queue) >= MAX_INFLIGHT:  # as a native connection's: the account waits its turn
            return {"id": None, "ok": False,
                    "error": {"code": 8010, "msg": "RATE_LIMITED: too many requests waiting"}}
        self._call_ids += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if not queue:
            self._call_turns.append(account_id)
        queue.append((self._call_ids, prepare or (lambda: (op, args or {})), future))
        self._wake.set()
        response: dict[str, Any] = await future
        return response

    def _run_calls(self, now: int) -> list[tuple[asyncio.Future[Any], Any]]:
        exchange = self.exchange
        assert exchange is not None
        out = []
        turns = self._call_turns
        for _ in range(len(turns)):  # one turn of every account with requests waiting
            account = turns.popleft()
            queue = self._calls[account]
            conn = self._call_conns.get(account)
            if conn is None or conn.cid not in exchange.conns:
                conn = self._call_conns[account] = exchange.open_session(account, now)
            for _ in range(min(FRAMES_PER_TURN, len(queue))):
                rid, prepare, future = queue.popleft()
                try:
                    op, args = prepare()
                except Exception:  # a defect in the facade's own code: that request fails
                    log.exception("a Binance request could not be prepared")
                    out.append((future, {"id": rid, "ok": False, "error": {
                        "code": 9001, "msg": "INTERNAL_ERROR: the request failed"}}))
                    continue
                message = {"id": rid, "op": op, "args": args}
                exchange.handle(conn, message, now)
                outbox: list[Any] = conn.take_outbox()  # in-process: the messages themselves
                responses = [m for m in outbox if m.get("id") == message["id"]]
                out.append((future, responses[0] if responses else
                            {"id": message["id"], "ok": False,
                             "error": {"code": 9001, "msg": "INTERNAL_ERROR: no response"}}))
            if queue:
                turns.append(account)  # the rest in the next batch, after the others
            else:
                del self._calls[account]
        if turns:
            self._wake.set()
        return out

    def _publish_streams(self) -> None:
        """The Binance facade's stream events of the batch (after it is on disk)."""
        if self.streams is None or self.tape is None:
            return
        try:
            self.streams.publish()
        except Exception:  # a defect in the facade's streams never stops the sequencer
            log.exception("the Binance streams failed to publish a batch")
        self.tape.touched.clear()

    def _flush_journal(self) -> None:
        venue = self.venue
        assert venue is not None
        if self.durability == "fsync":
            venue.sync()
        else:
            venue.flush()

    def _maybe_snapshot(self) -> None:
        """Every ``snapshot_every`` commands, write a snapshot in a forked child: it pickles
        a copy-on-write image of the venue while the sequencer goes on."""
        venue = self.venue
        if self.snapshot_every is None or venue is None or venue.journal is None:
            return
        if not self._wait_snapshot(block=False):
            return  # the previous one is still being written
        if venue.seq - self._snapshot_seq < self.snapshot_every:
            return
        self._snapshot_seq = venue.seq
        owner = self.exchange.guards.state()  # type: ignore[union-attr]
        if not hasattr(os, "fork"):
            write_snapshot(venue, owner)
            return
        pid = os.fork()
        if pid == 0:  # the child: write, and leave without running any of the parent's code
            status = 1
            try:
                write_snapshot(venue, owner)
                status = 0
            finally:
                os._exit(status)
        self._snapshot_pid = pid

    def _wait_snapshot(self, *, block: bool) -> bool:
        """Reap the snapshot child; False while it is still running (``block=False``)."""
        if self._snapshot_pid is None:
            return True
        pid, status = os.waitpid(self._snapshot_pid, 0 if block else os.WNOHANG)
        if pid == 0:
            return False
        self._snapshot_pid = None
        if status:
            log.warning("the snapshot writer failed (status %d); the journal has everything",
                        status)
        return True

    def _deliver(self) -> None:
        """Move every outbox to its writer; drop slow consumers; close whoever must close."""
        cap = self.limits.outbox_max
        for conn in self.exchange.conns.values():  # type: ignore[union-attr]
            if not conn.outbox and conn.close is None:
                continue
            link = self._links.get(conn.cid)
            if link is None or link.closing is not None:
                conn.outbox.clear()
                conn.outbox_bytes = 0
                continue
            link.queue.extend(conn.take_outbox())
            if len(link.queue) > cap and conn.close is None:
                conn.close = SLOW_CONSUMER
            if conn.close == SLOW_CONSUMER:
                # what is queued is dropped and the writer, stuck in a send, stopped; the
                # close frame gets CLOSE_TIMEOUT to go out, then the connection is cut
                log.warning("connection %d: %s, %d messages and %d bytes queued; closing "
                            "1008", conn.cid, conn.close[1], len(link.queue), conn.backlog)
                link.queue.clear()
                conn.backlog = 0
                link.closing = conn.close
                self.dropped.append((conn.cid, *conn.close))
                if link.writer is not None:
                    link.writer.cancel()
                asyncio.get_running_loop().create_task(_close_now(link.ws, *conn.close))
                continue
            if conn.close is not None:
                # what is queued goes out first (the refusals explain the close), but a peer
                # that does not read gets CLOSE_TIMEOUT for it, then it is cut off
                log.info("connection %d: closing %d %s", conn.cid, *conn.close)
                link.closing = conn.close
                self.dropped.append((conn.cid, *conn.close))
                asyncio.get_running_loop().call_later(CLOSE_TIMEOUT, _cut_if_open, link.ws,
                                                      *conn.close)
            link.ready.set()


async def _close_now(ws: ServerConnection, code: int, reason: str) -> None:
    """Close a connection whose peer may not be reading: the close frame gets CLOSE_TIMEOUT
    seconds to go out (a full send buffer holds it back), then the TCP connection is cut."""
    try:
        await asyncio.wait_for(ws.close(code, reason), CLOSE_TIMEOUT)
    except (TimeoutError, ConnectionClosed):
        pass
    finally:
        ws.transport.abort()


def _cut_if_open(ws: ServerConnection, code: int, reason: str) -> None:
    if ws.state is not State.CLOSED:
        asyncio.ensure_future(_close_now(ws, code, reason))


def _address(ws: ServerConnection) -> str:
    peer = ws.remote_address
    return str(peer[0]) if peer else "?"


def _select_subprotocol(ws: ServerConnection,
                        offered: Sequence[Subprotocol]) -> Subprotocol | None:
    """The first of ours the client offers; none offered: JSON without a subprotocol
    (docs/protocol.md §1, what ``new WebSocket(url)`` and wscat do); only others: refused."""
    if not offered:
        return None
    for name in SUBPROTOCOLS:
        if name in offered:
            return Subprotocol(name)
    raise NegotiationError(f"unsupported subprotocol; this server speaks {', '.join(SUBPROTOCOLS)}")


def _listen(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host``:``port`` (0: any free port), not yet listening."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock
