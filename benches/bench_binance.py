"""The Binance USDⓈ-M facade against the native websocket protocol: acknowledged orders per
second and round trip, the same orders on the same server in the same run.

Server
------
One child process (bench_gateway's ``ServerProcess``): ``Server(port=0, binance_port=0,
dev_accounts=10, markets=[NVDA-PERP without a session], durability="flush", journal in the
pytest tmp dir)``, with bench_gateway's raised native limits and the facade's request weight
raised (``binance_weight_limit=10**12``): the benchmark measures the two front doors, not their
rate limiters. ``flush``, not the shipped ``fsync``: the fsync of a batch costs both doors the
same and would hide the difference between them (bench_gateway measures both durabilities).
The module's end checks, as bench_gateway's does: the venue's invariants, no open order but the
maker's, every account flat, the journal recovered to the same state hash (when it is short).

Load
----
The load generator runs in the pytest process, the frames and requests of a round made
before it (untimed: encoding, and for REST the HMAC signature and the HTTP request text).

* **native**: bench_gateway's clients (raw ``websockets``, JSON), each keeping W requests in
  flight on its connection: ``1x1`` one client, W = 1; ``8x8`` eight clients (dev-1..dev-8),
  W = 8.
* **binance**: HTTP/1.1 keep-alive connections ("lanes") written and read by hand on asyncio
  streams (no HTTP client library in the timed loop), one request in flight per lane, as an
  HTTP client has: ``1x1`` one lane of dev-1; ``8x8`` eight lanes for each of dev-1..dev-8.
  Both shapes keep the same number of requests in flight as the native ones (1 and 64).
  Signed as Binance signs (``X-MBX-APIKEY``, HMAC-SHA256 of the parameters with
  ``timestamp`` and ``recvWindow`` = 60,000); orders are POST ``/fapi/v1/order`` with a form
  body, cancels DELETE ``/fapi/v1/order`` with the query string.

The order mix is bench_gateway's (per client or lane, in blocks of five): 40 % post-only
limits that rest (``timeInForce`` GTX), 40 % cancels by client order id of the orders placed
ten blocks earlier, 20 % IOCs of one lot (0.01 share) that trade with the maker ``dev-9``'s
100,000 lots resting at 129.90 and 130.10 (re-placed before every round). Every answer is
checked: a native response as bench_gateway checks it; a REST answer is HTTP 200 with the
order's Binance status (``NEW`` with its quantity, ``CANCELED``, ``FILLED`` with 0.01).

What is timed: ``benchmark.pedantic(rounds=5, warmup_rounds=1)``, a round ends when the last
answer is in. Recorded: orders/s (median and best round), p50/p99 round trip (send to the
whole answer read), the server's CPU per request (the child's ``process_time``; it does not
depend on how much of a core the server got), and for the facade its ratios to the native
protocol measured in the same run (printed at the end of the run). Nothing is asserted on a
speed; smoke mode (``--benchmark-disable``) runs one small round of each and checks it.
``GAEMI_BENCH_PROFILE=<directory>``: the server child runs under cProfile and writes
``facade.prof`` there (as bench_gateway's children do).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest
from bench_gateway import (
    BLOCK,
    LAG,
    MAKER,
    MAKER_ASK,
    MAKER_BID,
    MAKER_QTY,
    PASSIVE,
    SEED,
    SYMBOL,
    Client,
    ServerProcess,
    _open,
    _set_index,
    check_report,
    check_round,
    percentile,
    plan_round,
    run_round,
)

from gaemi.gateway.binance.units import lots_text, price_text
from gaemi.risk import preset

NVDA = preset(SYMBOL, session=None)
BINANCE_SYMBOL = "NVDAUSDT"
INDEX = 13_000
SHAPES = {"1x1": (1, 1), "8x8": (8, 8)}  # native: clients x window; binance: accounts x lanes
ORDERS = {"1x1": 500, "8x8": 6_400}  # requests per timed round
SMOKE_ORDERS = {"1x1": 100, "8x8": 3_200}
ROUNDS, WARMUP_ROUNDS = 5, 1
RECOVER_MAX = 200_000
RECV_WINDOW = 60_000  # ms: a round's requests are signed before it starts
_RUNS = itertools.count(1)  # makes client order ids unique across the tests


def _smoke(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("benchmark_disable"))


# -- the Binance load --------------------------------------------------------------------------


@dataclass
class Lane:
    """One keep-alive HTTP connection of one account."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    key: str
    secret: str


@dataclass
class RestPlan:
    requests: list[bytes]
    expect: list[tuple[str, int]] = field(default_factory=list)  # (kind, lots)


def _request(lane: Lane, method: str, params: dict[str, Any]) -> bytes:
    """A signed HTTP/1.1 request: POST with a form body, DELETE with the query string."""
    query = urlencode({**params, "recvWindow": RECV_WINDOW,
                       "timestamp": time.time_ns() // 1_000_000})
    signed = query + "&signature=" + hmac.new(lane.secret.encode(), query.encode(),
                                              hashlib.sha256).hexdigest()
    head = f"X-MBX-APIKEY: {lane.key}\r\nHost: 127.0.0.1\r\n"
    if method == "POST":
        return (f"POST /fapi/v1/order HTTP/1.1\r\n{head}Content-Type: application/"
                f"x-www-form-urlencoded\r\nContent-Length: {len(signed)}\r\n\r\n"
                f"{signed}").encode()
    return f"{method} /fapi/v1/order?{signed} HTTP/1.1\r\n{head}\r\n".encode()


def plan_lane(lane: Lane, n: int, rng: random.Random, tag: str) -> RestPlan:
    """``n`` requests of bench_gateway's mix for one lane, as Binance requests."""
    blocks, rest = divmod(n, BLOCK)
    assert rest == 0 and blocks % 2 == 0 and blocks >= LAG, n
    plan = RestPlan([])
    qtys: list[int] = []

    def add(method: str, params: dict[str, Any], kind: str, qty: int) -> None:
        plan.requests.append(_request(lane, method, params))
        plan.expect.append((kind, qty))

    def cancel(k: int) -> None:
        add("DELETE", {"symbol": BINANCE_SYMBOL, "origClientOrderId": f"{tag}.{k}"},
            "cancel", qtys[k])

    for b in range(blocks):
        for j in range(2):
            k = 2 * b + j
            side = "BUY" if k % 2 == 0 else "SELL"
            away = rng.randint(*PASSIVE)
            qty = rng.randint(1, 100)
            qtys.append(qty)
            price = INDEX - away if side == "BUY" else INDEX + away
            add("POST", {"symbol": BINANCE_SYMBOL, "side": side, "type": "LIMIT",
                         "timeInForce": "GTX", "quantity": lots_text(qty, NVDA),
                         "price": price_text(price, NVDA), "newClientOrderId": f"{tag}.{k}"},
                "place", qty)
        if b >= LAG:
            cancel(2 * (b - LAG))
            cancel(2 * (b - LAG) + 1)
        buy = b % 2 == 0
        add("POST", {"symbol": BINANCE_SYMBOL, "side": "BUY" if buy else "SELL",
                     "type": "LIMIT", "timeInForce": "IOC", "quantity": lots_text(1, NVDA),
                     "price": price_text(MAKER_ASK if buy else MAKER_BID, NVDA),
                     "newClientOrderId": f"{tag}.ioc.{b}"}, "ioc", 1)
    for k in range(2 * (blocks - LAG), 2 * blocks):
        cancel(k)
    assert len(plan.requests) == n
    return plan


async def _answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One HTTP response: its status and body (aiohttp sends Content-Length)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    at = lower.index(b"content-length:") + len(b"content-length:")
    length = int(lower[at:lower.index(b"\r\n", at)])
    return status, await reader.readexactly(length)


async def _lane_round(lane: Lane, plan: RestPlan) -> tuple[list[int], list[tuple[int, Any]]]:
    """The lane's requests one after the other; the round trips (ns) and the answers."""
    clock = time.perf_counter_ns
    write, reader = lane.writer.write, lane.reader
    times: list[int] = []
    answers: list[tuple[int, Any]] = []
    for request in plan.requests:
        start = clock()
        write(request)
        status, body = await _answer(reader)
        times.append(clock() - start)
        answers.append((status, orjson.loads(body)))
    return times, answers


async def _rest_round(lanes: list[Lane], plans: list[RestPlan]
                      ) -> list[tuple[list[int], list[tuple[int, Any]]]]:
    return list(await asyncio.gather(*(_lane_round(lane, plan)
                                       for lane, plan in zip(lanes, plans, strict=True))))


def check_rest(plans: list[RestPlan], answers: list[list[tuple[int, Any]]]) -> None:
    for plan, got in zip(plans, answers, strict=True):
        assert len(got) == len(plan.expect)
        for (kind, qty), (status, body) in zip(plan.expect, got, strict=True):
            assert status == 200, (kind, status, body)
            if kind == "place":
                assert (body["status"], body["origQty"], body["executedQty"]) == (
                    "NEW", lots_text(qty, NVDA), "0"), body
            elif kind == "cancel":
                assert (body["status"], body["origQty"]) == ("CANCELED",
                                                             lots_text(qty, NVDA)), body
            else:
                assert (body["status"], body["executedQty"]) == ("FILLED",
                                                                 lots_text(1, NVDA)), body


async def _lane(port: int, key: str, secret: str) -> Lane:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    return Lane(reader, writer, key, secret)


# -- the server ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Any:
    smoke = _smoke(request)
    journal = tmp_path_factory.mktemp("binance") / "facade.journal"
    profile = os.environ.get("GAEMI_BENCH_PROFILE")  # a directory, as in bench_gateway
    child = ServerProcess("gateway", {"durability": "flush", "journal": str(journal),
                                      "recover_max": 10**12 if smoke else RECOVER_MAX,
                                      "binance": True, "profile": str(
                                          Path(profile) / "facade.prof") if profile else None})
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(_set_index(child))
    finally:
        loop.close()
    try:
        yield child
    finally:
        report = child.stop()
    check_report(report, smoke)


# -- the summary ---------------------------------------------------------------------------------


@dataclass
class Row:
    orders: int
    median: float
    best: float
    p50_us: float
    p99_us: float
    server_us: float


class _Summary:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], Row] = {}  # (api, shape) -> row

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.rows:
            return
        write = terminalreporter.write_line
        terminalreporter.section("Binance facade vs native protocol (same server, same run)")
        write(f"{'api':<8} {'shape':<6} {'orders':>7} {'orders/s':>9} {'best/s':>9} "
              f"{'p50 us':>8} {'p99 us':>9} {'srv cpu us':>10} {'vs native/s':>11} "
              f"{'p50/native':>10} {'cpu/native':>10}")
        for (api, shape), row in sorted(self.rows.items(), key=lambda kv: (kv[0][1],
                                                                          kv[0][0] != "native")):
            native = self.rows.get(("native", shape))
            ratios = ["", "", ""]
            if native is not None and api != "native":
                ratios = [f"{(row.orders / row.median) / (native.orders / native.median):.2f}x",
                          f"{row.p50_us / native.p50_us:.1f}x",
                          f"{row.server_us / native.server_us:.1f}x"]
            write(f"{api:<8} {shape:<6} {row.orders:>7,} {row.orders / row.median:>9,.0f} "
                  f"{row.orders / row.best:>9,.0f} {row.p50_us:>8.0f} {row.p99_us:>9.0f} "
                  f"{row.server_us:>10.1f} {ratios[0]:>11} {ratios[1]:>10} {ratios[2]:>10}")


_SUMMARY = _Summary()


@pytest.fixture(scope="module", autouse=True)
def _binance_summary(request: pytest.FixtureRequest) -> None:
    manager = request.config.pluginmanager
    if not manager.is_registered(_SUMMARY):
        manager.register(_SUMMARY, "bench_binance_summary")


# -- the benchmarks ------------------------------------------------------------------------------


def _maker_refill(server: ServerProcess) -> Any:
    async def refill() -> None:
        maker = await _open(server.url, "json", MAKER, server.secrets)
        await maker.call("order.cancelAll", {"symbol": SYMBOL})
        for side, price in (("BUY", MAKER_BID), ("SELL", MAKER_ASK)):
            r = await maker.call("order.place", {"symbol": SYMBOL, "side": side,
                                                 "price": price, "qty": MAKER_QTY,
                                                 "timeInForce": "POST_ONLY"})
            assert r["status"] == "NEW", r
        await maker.ws.close()
    return refill()


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("api", ["native", "binance"])
def test_front_door(benchmark: Any, request: pytest.FixtureRequest, server: ServerProcess,
                    api: str, shape: str) -> None:
    benchmark.group = f"front door {shape}"
    accounts, per = SHAPES[shape]
    total = (SMOKE_ORDERS if _smoke(request) else ORDERS)[shape]
    run = next(_RUNS)
    rng = random.Random(SEED)
    loop = asyncio.new_event_loop()
    keys = [f"dev-{i}" for i in range(1, accounts + 1)]
    clients: list[Client] = []
    lanes: list[Lane] = []

    async def connect() -> None:
        if api == "native":
            clients.extend([await _open(server.url, "json", k, server.secrets) for k in keys])
        else:
            lanes.extend([await _lane(server.info["binance_port"], k, server.secrets[k])
                          for k in keys for _ in range(per)])

    loop.run_until_complete(connect())
    ran: list[Any] = []
    samples: list[list[int]] = []
    cpu: list[float] = []

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        loop.run_until_complete(_maker_refill(server))
        tag = f"{run}.{len(ran) + len(samples)}"
        if api == "native":
            return ([plan_round(c, total // accounts, rng, tag) for c in clients],), {}
        return ([plan_lane(lane, total // len(lanes), rng, f"{tag}.{i}")
                 for i, lane in enumerate(lanes)],), {}

    def target(plans: list[Any]) -> None:
        before = server.cpu()
        if api == "native":
            result: Any = loop.run_until_complete(run_round(clients, plans, per))
        else:
            result = loop.run_until_complete(_rest_round(lanes, plans))
        ran.append((plans, result, before))

    def check(*_: Any) -> None:
        plans, result, before = ran.pop()
        cpu.append(server.cpu() - before)
        if api == "native":
            samples.append(check_round("gateway", plans, result))
        else:
            check_rest(plans, [answers for _, answers in result])
            samples.append([t for times, _ in result for t in times])

    try:
        benchmark.pedantic(target, setup=setup, teardown=check, rounds=ROUNDS,
                           warmup_rounds=WARMUP_ROUNDS, iterations=1)
        while ran:  # --benchmark-disable runs setup and target once, without teardown
            check()
    finally:
        async def close() -> None:
            for c in clients:
                await c.ws.close()
            for lane in lanes:
                lane.writer.close()
        loop.run_until_complete(close())
        loop.close()

    stats = getattr(benchmark, "stats", None)
    skip = 0 if stats is None else WARMUP_ROUNDS
    timed, timed_cpu = samples[skip:], cpu[skip:]
    assert timed and all(len(s) == total for s in timed)
    ordered = sorted(itertools.chain.from_iterable(timed))
    p50, p99 = percentile(ordered, 0.50) / 1e3, percentile(ordered, 0.99) / 1e3
    server_us = sum(timed_cpu) / len(timed_cpu) / total * 1e6
    benchmark.extra_info.update(api=api, shape=shape, orders=total, p50_us=round(p50, 1),
                                p99_us=round(p99, 1),
                                server_cpu_us_per_order=round(server_us, 2),
                                mix="40% post-only place, 40% cancel, 20% IOC 1 lot (fills)")
    if stats is None:
        return
    median, best = stats.stats.median, stats.stats.min
    benchmark.extra_info["orders_per_s_median"] = round(total / median)
    _SUMMARY.rows[(api, shape)] = Row(total, median, best, p50, p99, server_us)
    native = _SUMMARY.rows.get(("native", shape))
    if native is not None and api != "native":
        benchmark.extra_info["throughput_vs_native"] = round(
            (total / median) / (native.orders / native.median), 3)
        benchmark.extra_info["p50_vs_native"] = round(p50 / native.p50_us, 2)
