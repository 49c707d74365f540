"""The websocket gateway (``gateway.server.Server``): acknowledged orders per second and
round-trip latency over loopback, JSON and msgpack, 1 and 8 clients, against a bare
``websockets`` echo server measured in the same run.

Processes
---------
The server runs in a child process (``multiprocessing``, spawn) and the load generator in the
pytest process, so on a 2-core machine each has a core. The child runs ``asyncio.run`` of one
of:

* **gateway**: ``Server(port=0, dev_accounts=10, markets=[NVDA-PERP without a session],
  book="auto", journal=<pytest tmp dir>/gateway-<durability>.journal, durability=...)``, as
  shipped except for the limits, which are raised so that the benchmark measures the gateway,
  not its rate limiter: ``Limits(requests_per_second=1_000_000, orders_per_second=1_000_000,
  outbox_max=1_000_000)``. Two servers: ``durability="fsync"`` (the default: each sequencer
  batch is fsynced before it is acknowledged) and ``"flush"``.
* **echo** (the baseline): ``websockets.asyncio.server.serve`` with a handler that sends every
  message back, with the gateway's websocket settings (subprotocols ``gaemi.json`` /
  ``gaemi.msgpack``, ``compression=None``, the same ``max_size``, ``max_queue=64``, pings).

The child reports its port and the dev keys' secrets through a pipe. When the module ends it
is told to stop; the gateway child then runs ``venue.check_invariants()``, recovers its journal
with ``Venue.recover`` (when it holds at most ``RECOVER_MAX`` commands) and compares the state
hash, and reports each account's open orders and positions, which the module asserts.

Load
----
N clients (1 or 8) on one asyncio loop in the pytest process, raw ``websockets`` connections
(``compression=None``) with orjson / msgpack, not ``clients/``: the frames of a round are
encoded before it (untimed), so the timed loop only sends, receives and decodes. Each client
keeps a window of W requests in flight (W = 64, or W = 1 for the unloaded round-trip time)
and is logged on as its own dev account (``dev-1`` .. ``dev-8``). No client subscribes to any
channel: the gateway sends responses only.

Order mix per client, in blocks of five requests (``BLOCKS`` = requests / 5 per client):

================== ===== ====================================================================
request            share how it is drawn (seeded, ``SEED``)
================== ===== ====================================================================
post-only limit    40 %  two per block, side alternating, 1-100 lots, 11-200 ticks away from
                         the index (bids 12,800-12,989, asks 13,011-13,200): never crosses,
                         so each answer is ``NEW``; ``clientOrderId`` set
cancel             40 %  two per block, by ``clientOrderId``, of the two orders placed
                         ``LAG`` = 10 blocks earlier (the first 10 blocks cancel nothing, the
                         round ends with the last 20 cancels): each client keeps about 20
                         orders resting, and every order of a round is cancelled in it
IOC, 1 lot         20 %  one per block, alternately a buy at 13,010 and a sell at 12,990: it
                         trades with the maker account ``dev-9``, which rests 100,000 lots
                         at each of those prices (re-placed in every round's setup), so
                         every IOC is ``FILLED`` and a client is flat after each round
================== ===== ====================================================================

The market is NVDA-PERP, index 13,000 ticks ($130.00), set by ``admin.setIndex`` over the
wire. The echo rounds send exactly the same frames (same window, same clients) and get them
back.

What is timed, what is checked
------------------------------
``benchmark.pedantic(rounds=5, warmup_rounds=1, iterations=1)``; a round sends ``ORDERS``
requests in all (20,000 with W = 64, 1,000 with W = 1) and ends when the last response is
in. Setup (not timed): encode the frames, and for the gateway re-place the maker's orders.
The latency of a request is ``perf_counter_ns`` at its response minus at its send (responses
come in request order on a connection); p50 and p99 are over every request of the timed
rounds. With W = 64 that includes the wait behind the requests ahead in the window.

After each round every response is checked: its ``id`` is its request's, ``ok`` is true,
places are ``NEW`` with their size remaining, cancels cancel the whole order, IOCs are
``FILLED`` with 1 lot (echo: the ``id`` comes back). After each gateway test every client has
no open order and no position (``account.openOrders``, ``account.positions`` over the wire).

Recorded in ``extra_info`` (and printed in a summary at the end of the run): acknowledged
orders/s from the median and the best round, p50/p99 in microseconds, for the gateway the
ratio to the echo server's messages/s and p50 in the same run, and the CPU time per request
of the server (the child's ``time.process_time()``, read through the pipe before and after
each round) and of the load generator. CPU per request does not depend on how much of a core
each process got, so it still means something on a machine shared with other jobs: one
saturated core acknowledges at most 10^6 / (server CPU us per order) orders/s. The ≥ 20k
orders/s goal is printed, never asserted: the benchmarks only assert results.

Smoke mode (``--benchmark-disable``, ``make bench-smoke``): one untimed round per test with
``SMOKE_ORDERS`` requests, checked the same way, and the journal is always recovered.

Profiling: with ``GAEMI_BENCH_PROFILE=<directory>`` each gateway child runs under cProfile
while it serves and writes ``gateway-<durability>.prof`` there (figures taken that way are
slowed down by the profiler).
"""

from __future__ import annotations

import asyncio
import itertools
import math
import multiprocessing
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect

from gaemi.gateway.server import READ_LIMIT
from gaemi.gateway.wire.auth import sign
from gaemi.gateway.wire.codec import JSON, MSGPACK, SUBPROTOCOLS

SEED = 20261123
SYMBOL = "NVDA-PERP"
INDEX = 13_000  # ticks of $0.01
MAKER_BID, MAKER_ASK = 12_990, 13_010  # the maker's resting orders, hit by the IOCs
MAKER_QTY = 100_000
PASSIVE = (11, 200)  # post-only orders rest this many ticks from the index
LAG = 10  # blocks between a post-only order and its cancel
BLOCK = 5  # requests per block: 2 places, 2 cancels, 1 IOC
MAKER = "dev-9"  # the takers are dev-1 .. dev-8
DEV_ACCOUNTS = 10
LIMITS = dict(requests_per_second=1_000_000, orders_per_second=1_000_000,
              outbox_max=1_000_000)
ENCODINGS = {"json": JSON, "msgpack": MSGPACK}
SHAPES = {"1x1": (1, 1), "1x64": (1, 64), "8x64": (8, 64)}  # clients x window
ORDERS = {"1x1": 1_000, "1x64": 20_000, "8x64": 20_000}  # requests per timed round
SMOKE_ORDERS = {"1x1": 50, "1x64": 200, "8x64": 400}
assert max(clients for clients, _ in SHAPES.values()) < int(MAKER[4:])
ROUNDS, WARMUP_ROUNDS = 5, 1
RECOVER_MAX = 100_000  # journal commands up to which the module end recovers the journal
TARGET = 20_000  # acknowledged orders/s (printed, not asserted)
# the gateway's websocket settings (gateway/server.py Server.start), for the echo server too
WS_SETTINGS = dict(compression=None, max_size=READ_LIMIT, ping_interval=20, ping_timeout=20,
                   max_queue=64, close_timeout=2)


def _smoke(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("benchmark_disable"))


# -- the server process -------------------------------------------------------------------------


def _serve(pipe: Any, kind: str, options: dict[str, Any]) -> None:
    """The child process: serve until told to stop, then report."""
    try:
        asyncio.run(_serve_echo(pipe) if kind == "echo" else _serve_gateway(pipe, options))
    except BaseException as exc:
        pipe.send(("error", f"{type(exc).__name__}: {exc}"))
        raise


def _control(pipe: Any) -> None:
    """The child's control thread: answer "cpu" (the process's CPU seconds so far) until
    "stop"."""
    while True:
        message = pipe.recv()
        if message == "stop":
            return
        assert message == "cpu", message
        pipe.send(("cpu", time.process_time()))


async def _wait_stop(pipe: Any) -> None:
    await asyncio.get_running_loop().run_in_executor(None, _control, pipe)


async def _serve_echo(pipe: Any) -> None:
    from websockets.asyncio.server import ServerConnection, serve

    echoed = 0

    async def echo(ws: ServerConnection) -> None:
        nonlocal echoed
        async for message in ws:
            await ws.send(message)
            echoed += 1

    async with serve(echo, "127.0.0.1", 0, subprotocols=list(SUBPROTOCOLS),
                     **WS_SETTINGS) as server:  # type: ignore[arg-type]
        pipe.send(("ready", server.sockets[0].getsockname()[1], {}, {}))
        await _wait_stop(pipe)
    pipe.send(("done", {"echoed": echoed}))


async def _serve_gateway(pipe: Any, options: dict[str, Any]) -> None:
    from gaemi.gateway.server import Server
    from gaemi.gateway.sessions import Limits
    from gaemi.risk import Venue, preset

    profiler = None
    if options.get("profile"):
        import cProfile

        profiler = cProfile.Profile()
    journal = Path(options["journal"])
    # options["binance"]: also serve the Binance facade (bench_binance), its request weight
    # raised like the native limits
    server = Server(host="127.0.0.1", port=0, journal=journal, dev_accounts=DEV_ACCOUNTS,
                    markets=[preset(SYMBOL, session=None)], book="auto",
                    limits=Limits(**LIMITS), durability=options["durability"],
                    binance_port=0 if options.get("binance") else None,
                    binance_weight_limit=10**12)
    async with server:
        secrets = {name: key.secret for name, key in server.keys.items()}
        assert server.venue is not None
        info = {"book": type(server.venue.book(SYMBOL)).__module__,
                "binance_port": server.binance_port}
        pipe.send(("ready", server.port, secrets, info))
        if profiler is not None:
            profiler.enable()
        await _wait_stop(pipe)
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(options["profile"])
    venue = server.venue
    assert venue is not None
    venue.check_invariants()
    report: dict[str, Any] = {
        "failure": None if server.failure is None else repr(server.failure),
        "commands": venue.seq,
        "open_orders": {a: len(venue.open_orders(a)) for a in venue.accounts() if a > 0},
        "positions": {a: {s: p.size for s, p in venue.account(a).positions.items()}
                      for a in venue.accounts() if a > 0},
        "recovered": None,
    }
    if venue.seq <= options["recover_max"]:
        again = Venue.recover(journal, book="auto")
        again.close()
        report["recovered"] = again.state_hash() == venue.state_hash()
    pipe.send(("done", report))


class ServerProcess:
    """A server child: ``port``, ``secrets`` (dev key -> secret); ``stop()`` -> its report."""

    def __init__(self, kind: str, options: dict[str, Any]) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.kind = kind
        self.pipe, child_end = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child_end, kind, options),
                                   name=f"bench-gateway-{kind}", daemon=True)
        self.process.start()
        child_end.close()
        message = self._receive(60)
        assert message[0] == "ready", message
        self.port: int = message[1]
        self.secrets: dict[str, str] = message[2]
        self.info: dict[str, Any] = message[3]
        self.url = f"ws://127.0.0.1:{self.port}"
        self.report: dict[str, Any] | None = None

    def _receive(self, timeout: float) -> Any:
        if not self.pipe.poll(timeout):
            self.process.terminate()
            raise AssertionError(f"{self.kind} server: no answer within {timeout} s")
        return self.pipe.recv()

    def cpu(self) -> float:
        """CPU seconds the child has used (all its threads)."""
        self.pipe.send("cpu")
        message = self._receive(30)
        assert message[0] == "cpu", message
        return float(message[1])

    def stop(self) -> dict[str, Any]:
        if self.report is None:
            self.pipe.send("stop")
            message = self._receive(300)
            self.process.join(30)
            assert message[0] == "done", message
            self.report = message[1]
        return self.report


# -- the load ----------------------------------------------------------------------------------

_ENCODE: dict[str, Callable[[Any], str | bytes]] = {
    "json": lambda obj: orjson.dumps(obj).decode(),  # text frames, as the protocol says
    "msgpack": lambda obj: msgpack.packb(obj, use_bin_type=True),
}
_DECODE: dict[str, Callable[[Any], Any]] = {"json": orjson.loads, "msgpack": msgpack.unpackb}
_TEST_RUNS = itertools.count(1)  # makes clientOrderIds unique across the tests of a server


@dataclass
class Client:
    ws: ClientConnection
    encoding: str
    account: str
    next_id: int = 1

    async def call(self, op: str, args: dict[str, Any] | None = None) -> Any:
        rid = self.next_id
        self.next_id += 1
        message: dict[str, Any] = {"id": rid, "op": op}
        if args is not None:
            message["args"] = args
        await self.ws.send(_ENCODE[self.encoding](message))
        response = _DECODE[self.encoding](await self.ws.recv())
        assert response.get("id") == rid, response
        assert response["ok"], (op, args, response)
        return response["result"]


async def _open(url: str, encoding: str, account: str | None,
                secrets: dict[str, str]) -> Client:
    ws = await connect(url, subprotocols=[ENCODINGS[encoding]],  # type: ignore[list-item]
                       compression=None, max_size=READ_LIMIT, max_queue=None,
                       ping_interval=None, open_timeout=30)
    assert ws.subprotocol == ENCODINGS[encoding]
    client = Client(ws, encoding, account or "")
    if account is not None:
        args: dict[str, Any] = {"apiKey": account, "timestamp": time.time_ns() // 1_000_000,
                                "recvWindow": 5_000, "cancelOnDisconnect": False}
        args["signature"] = sign(args, secrets[account])
        await client.call("session.logon", args)
    return client


@dataclass
class Plan:
    """One client's requests for one round: encoded frames and what each must answer."""

    frames: list[str | bytes]
    ids: list[int]
    expect: list[tuple[str, int]] = field(default_factory=list)  # (kind, qty)


def plan_round(client: Client, n: int, rng: random.Random, tag: str) -> Plan:
    """``n`` requests of the declared mix (module docstring) for one client."""
    blocks, rest = divmod(n, BLOCK)
    assert rest == 0 and blocks % 2 == 0 and blocks >= LAG, n
    encode = _ENCODE[client.encoding]
    plan = Plan([], [])
    qtys: list[int] = []

    def add(op: str, args: dict[str, Any], kind: str, qty: int) -> None:
        rid = client.next_id
        client.next_id += 1
        plan.frames.append(encode({"id": rid, "op": op, "args": args}))
        plan.ids.append(rid)
        plan.expect.append((kind, qty))

    def cancel(k: int) -> None:
        add("order.cancel", {"symbol": SYMBOL, "clientOrderId": f"{tag}.{k}"}, "cancel",
            qtys[k])

    for b in range(blocks):
        for j in range(2):
            k = 2 * b + j
            side = "BUY" if k % 2 == 0 else "SELL"
            away = rng.randint(*PASSIVE)
            qty = rng.randint(1, 100)
            qtys.append(qty)
            add("order.place", {"symbol": SYMBOL, "side": side,
                                "price": INDEX - away if side == "BUY" else INDEX + away,
                                "qty": qty, "timeInForce": "POST_ONLY",
                                "clientOrderId": f"{tag}.{k}"}, "place", qty)
        if b >= LAG:
            cancel(2 * (b - LAG))
            cancel(2 * (b - LAG) + 1)
        buy = b % 2 == 0
        add("order.place", {"symbol": SYMBOL, "side": "BUY" if buy else "SELL",
                            "price": MAKER_ASK if buy else MAKER_BID, "qty": 1,
                            "timeInForce": "IOC"}, "ioc", 1)
    for k in range(2 * (blocks - LAG), 2 * blocks):
        cancel(k)
    assert len(plan.frames) == n
    return plan


@dataclass
class RoundResult:
    sent: list[list[int]]
    received: list[list[int]]
    responses: list[list[Any]]
    elapsed_ns: int


async def _client_round(client: Client, plan: Plan, window: int
                        ) -> tuple[list[int], list[int], list[Any]]:
    """Send the plan keeping ``window`` requests in flight; return send and receive times
    and the decoded responses."""
    frames = plan.frames
    n = len(frames)
    sent = [0] * n
    received = [0] * n
    responses: list[Any] = [None] * n
    credit = asyncio.Semaphore(window)
    clock = time.perf_counter_ns
    ws = client.ws
    decode = _DECODE[client.encoding]

    async def sender() -> None:
        send = ws.send
        acquire = credit.acquire
        for i, frame in enumerate(frames):
            await acquire()
            sent[i] = clock()
            await send(frame)

    task = asyncio.create_task(sender())
    recv = ws.recv
    release = credit.release
    for i in range(n):
        message = await recv()
        received[i] = clock()
        responses[i] = decode(message)
        release()
    await task
    return sent, received, responses


async def run_round(clients: list[Client], plans: list[Plan], window: int) -> RoundResult:
    start = time.perf_counter_ns()
    results = await asyncio.gather(*(_client_round(c, p, window)
                                     for c, p in zip(clients, plans, strict=True)))
    elapsed = time.perf_counter_ns() - start
    return RoundResult([r[0] for r in results], [r[1] for r in results],
                       [r[2] for r in results], elapsed)


def check_round(kind: str, plans: list[Plan], result: RoundResult) -> list[int]:
    """Every response is its request's and as expected; the latencies in ns."""
    latencies = []
    for plan, sent, received, responses in zip(plans, result.sent, result.received,
                                               result.responses, strict=True):
        assert len(responses) == len(plan.ids)
        for rid, (what, qty), response in zip(plan.ids, plan.expect, responses, strict=True):
            assert response["id"] == rid, (rid, response)
            if kind == "echo":
                continue
            assert response["ok"] is True, (what, response)
            r = response["result"]
            if what == "place":
                assert (r["status"], r["filledQty"], r["remainingQty"]) == ("NEW", 0, qty), r
            elif what == "cancel":
                assert r["canceledQty"] == qty, r
            else:
                assert (r["status"], r["filledQty"]) == ("FILLED", 1), r
        latencies.extend(b - a for a, b in zip(sent, received, strict=True))
    return latencies


def percentile(sorted_values: list[int], q: float) -> int:
    """Nearest rank."""
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


# -- fixtures -----------------------------------------------------------------------------------


class Servers:
    """The module's server children, started on first use and stopped at the module's end."""

    def __init__(self, tmp: Path, smoke: bool) -> None:
        self.tmp = tmp
        self.smoke = smoke
        self.running: dict[str, ServerProcess] = {}
        self.echo_sent = 0  # messages sent to the echo server

    def get(self, name: str) -> ServerProcess:
        if name not in self.running:
            if name == "echo":
                self.running[name] = ServerProcess("echo", {})
            else:
                durability = name.split("-")[1]
                profile = os.environ.get("GAEMI_BENCH_PROFILE")  # a directory, for cProfile
                options = {"durability": durability,
                           "journal": str(self.tmp / f"{name}.journal"),
                           "recover_max": 10**12 if self.smoke else RECOVER_MAX,
                           "profile": str(Path(profile) / f"{name}.prof") if profile else None}
                server = self.running[name] = ServerProcess("gateway", options)
                loop = asyncio.new_event_loop()
                try:
                    loop.run_until_complete(_set_index(server))
                finally:
                    loop.close()
        return self.running[name]

    def stop(self) -> dict[str, dict[str, Any]]:
        return {name: server.stop() for name, server in self.running.items()}


async def _set_index(server: ServerProcess) -> None:
    admin = await _open(server.url, "json", "admin", server.secrets)
    result = await admin.call("admin.setIndex", {"symbol": SYMBOL, "price": INDEX})
    assert result["mark"] == INDEX, result
    await admin.ws.close()


@pytest.fixture(scope="module")
def servers(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    manager = Servers(tmp_path_factory.mktemp("gateway"), _smoke(request))
    try:
        yield manager
    finally:
        reports = manager.stop()
    for name, report in reports.items():
        if name == "echo":
            assert report["echoed"] == manager.echo_sent, (report, manager.echo_sent)
        else:
            check_report(report, manager.smoke)


def check_report(report: dict[str, Any], smoke: bool) -> None:
    """A gateway child's end: no failure, no open order but the maker's two, every account
    flat, the journal recovered to the same state (always in smoke mode)."""
    assert report["failure"] is None, report["failure"]
    maker = int(MAKER[4:])
    for account, count in report["open_orders"].items():
        assert count <= (2 if account == maker else 0), report["open_orders"]
    assert not any(report["positions"].values()), report["positions"]
    assert report["recovered"] in (True, None), report
    if smoke:
        assert report["recovered"] is True


# -- the end-of-run summary ---------------------------------------------------------------------


@dataclass
class Row:
    orders: int
    median: float
    best: float
    p50_us: float
    p99_us: float
    server_us: float  # server CPU per request
    client_us: float  # load generator CPU per request


class _Summary:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str, str], Row] = {}  # (server, encoding, shape) -> row
        self.book = ""

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.rows:
            return
        write = terminalreporter.write_line
        terminalreporter.section("gateway: acknowledged orders/s and round trip (same run)")
        write(f"{'server':<14} {'enc':<8} {'clients x W':<11} {'orders':>7} {'median s':>9} "
              f"{'orders/s':>9} {'best/s':>9} {'p50 us':>8} {'p99 us':>9} "
              f"{'vs echo/s':>9} {'p50/echo':>9} {'srv cpu us':>10} {'gen cpu us':>10}")
        for (server, encoding, shape), row in sorted(self.rows.items(),
                                                     key=lambda kv: (kv[0][2], kv[0][1],
                                                                     kv[0][0])):
            echo = self.rows.get(("echo", encoding, shape))
            ratio = p50 = ""
            if echo is not None and server != "echo":
                ratio = f"{(row.orders / row.median) / (echo.orders / echo.median):8.2f}x"
                p50 = f"{row.p50_us / echo.p50_us:8.1f}x"
            write(f"{server:<14} {encoding:<8} {shape:<11} {row.orders:>7,} "
                  f"{row.median:>9.4f} {row.orders / row.median:>9,.0f} "
                  f"{row.orders / row.best:>9,.0f} {row.p50_us:>8.0f} {row.p99_us:>9.0f} "
                  f"{ratio:>9} {p50:>9} {row.server_us:>10.1f} {row.client_us:>10.1f}")
        gateway = sorted(r.orders / r.median for k, r in self.rows.items()
                         if k[0] != "echo" and k[2] != "1x1")
        if gateway:
            met = sum(1 for x in gateway if x >= TARGET)
            write(f"goal >= {TARGET:,} acknowledged orders/s (W = 64 rows, median round): met "
                  f"by {met} of {len(gateway)} rows, {gateway[0]:,.0f} to {gateway[-1]:,.0f} "
                  f"orders/s (book: {self.book})")
            cheapest_key, cheapest = min(((k, r.server_us) for k, r in self.rows.items()
                                          if k[0] != "echo" and k[2] != "1x1"),
                                         key=lambda kv: kv[1])
            write(f"server CPU per order: {cheapest:.1f} us at best ({' '.join(cheapest_key)}):"
                  f" one saturated core would acknowledge {1e6 / cheapest:,.0f} orders/s")


_SUMMARY = _Summary()


@pytest.fixture(scope="module", autouse=True)
def _gateway_summary(request: pytest.FixtureRequest) -> None:
    manager = request.config.pluginmanager
    if not manager.is_registered(_SUMMARY):
        manager.register(_SUMMARY, "bench_gateway_summary")


# -- the benchmarks -----------------------------------------------------------------------------


def _bench(benchmark: Any, request: pytest.FixtureRequest, servers: Servers, name: str,
           encoding: str, shape: str) -> None:
    smoke = _smoke(request)
    kind = "echo" if name == "echo" else "gateway"
    benchmark.group = f"gateway {encoding} {shape}"
    server = servers.get(name)
    if kind == "gateway":
        _SUMMARY.book = server.info["book"]
    n_clients, window = SHAPES[shape]
    per_client = (SMOKE_ORDERS if smoke else ORDERS)[shape] // n_clients
    run = next(_TEST_RUNS)
    rng = random.Random(SEED)
    loop = asyncio.new_event_loop()
    ran: list[tuple[list[Plan], RoundResult, float, float]] = []
    latencies: list[list[int]] = []
    cpu: list[tuple[float, float]] = []  # per round: server, load generator CPU seconds

    async def open_all() -> tuple[list[Client], Client | None]:
        accounts = [f"dev-{i}" for i in range(1, n_clients + 1)]
        clients = [await _open(server.url, encoding, None if kind == "echo" else a,
                               server.secrets) for a in accounts]
        maker = None if kind == "echo" else await _open(server.url, "json", MAKER,
                                                        server.secrets)
        return clients, maker

    clients, maker = loop.run_until_complete(open_all())

    async def refill() -> None:
        assert maker is not None
        await maker.call("order.cancelAll", {"symbol": SYMBOL})
        for side, price in (("BUY", MAKER_BID), ("SELL", MAKER_ASK)):
            r = await maker.call("order.place", {"symbol": SYMBOL, "side": side,
                                                 "price": price, "qty": MAKER_QTY,
                                                 "timeInForce": "POST_ONLY"})
            assert r["status"] == "NEW", r

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        if maker is not None:
            loop.run_until_complete(refill())
        plans = [plan_round(c, per_client, rng, f"{run}.{len(ran) + len(latencies)}")
                 for c in clients]
        return (plans,), {}

    def target(plans: list[Plan]) -> None:
        server_cpu = server.cpu()
        client_cpu = time.process_time()
        if kind == "echo":
            servers.echo_sent += sum(len(p.frames) for p in plans)
        result = loop.run_until_complete(run_round(clients, plans, window))
        ran.append((plans, result, server_cpu, time.process_time() - client_cpu))

    def check(*_: Any) -> None:
        plans, result, server_cpu, client_cpu = ran.pop()
        cpu.append((server.cpu() - server_cpu, client_cpu))
        latencies.append(check_round(kind, plans, result))

    async def final_state() -> None:
        for c in clients:
            assert (await c.call("account.openOrders"))["orders"] == []
            assert (await c.call("account.positions"))["positions"] == []

    try:
        benchmark.pedantic(target, setup=setup, teardown=check, rounds=ROUNDS,
                           warmup_rounds=WARMUP_ROUNDS, iterations=1)
        while ran:  # --benchmark-disable runs setup and target once, without teardown
            check()
        if kind == "gateway":
            loop.run_until_complete(final_state())
    finally:
        async def close() -> None:
            for c in clients + ([maker] if maker else []):
                await c.ws.close()

        loop.run_until_complete(close())
        loop.close()

    stats = getattr(benchmark, "stats", None)
    skip = 0 if stats is None else WARMUP_ROUNDS
    timed, timed_cpu = latencies[skip:], cpu[skip:]
    assert timed
    samples = sorted(itertools.chain.from_iterable(timed))
    orders = per_client * n_clients
    assert len(samples) == orders * len(timed)
    p50, p99 = percentile(samples, 0.50) / 1e3, percentile(samples, 0.99) / 1e3
    server_us = sum(c[0] for c in timed_cpu) / len(timed_cpu) / orders * 1e6
    client_us = sum(c[1] for c in timed_cpu) / len(timed_cpu) / orders * 1e6
    info = benchmark.extra_info
    info.update(server=name, encoding=encoding, clients=n_clients, window=window,
                orders=orders, p50_us=round(p50, 1), p99_us=round(p99, 1),
                server_cpu_us_per_order=round(server_us, 2),
                client_cpu_us_per_order=round(client_us, 2),
                mix="40% post-only place, 40% cancel, 20% IOC 1 lot (fills)")
    if stats is None:
        return
    median, best = stats.stats.median, stats.stats.min
    info["orders_per_s_median"] = round(orders / median)
    info["orders_per_s_best"] = round(orders / best)
    _SUMMARY.rows[(name, encoding, shape)] = Row(orders, median, best, p50, p99, server_us,
                                                 client_us)
    echo = _SUMMARY.rows.get(("echo", encoding, shape))
    if echo is not None and name != "echo":
        info["throughput_vs_echo"] = round((orders / median) / (echo.orders / echo.median), 3)
        info["p50_vs_echo"] = round(p50 / echo.p50_us, 2)


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_echo(benchmark: Any, request: pytest.FixtureRequest, servers: Servers, encoding: str,
              shape: str) -> None:
    _bench(benchmark, request, servers, "echo", encoding, shape)


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("encoding", list(ENCODINGS))
@pytest.mark.parametrize("durability", ["fsync", "flush"])
def test_gateway(benchmark: Any, request: pytest.FixtureRequest, servers: Servers,
                 durability: str, encoding: str, shape: str) -> None:
    _bench(benchmark, request, servers, f"gateway-{durability}", encoding, shape)
