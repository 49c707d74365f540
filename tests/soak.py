"""``make soak``: Gaemi under crashes and hostile traffic, on loopback, bounded, stopping by
itself and printing a summary (docs/reliability.md has the figures of a full run).

    python -m tests.soak [--cycles 20] [--frames 100000] [--seed 1] [--json FILE]

**Crash loop** (``--cycles``). A real ``gaemi serve`` (its own folder, a free port, snapshots
every 2,000 commands) and four pipelined traders on four accounts (16 requests in flight
each: limit orders, marketable IOCs, cancels and amends of their own orders; one trader's
session asks for cancel-on-disconnect, another arms the dead-man switch). At a random moment
(0.3-2.5 s of trading) the server is killed with SIGKILL, then restarted on the same folder.
Every cycle checks, for every request the server acknowledged before the kill:

* an acknowledged order is in the journal: its ``orderId`` is accepted when the journal is
  replayed offline from its first record (``risk.recovery.recover(snapshots=False)`` on a copy
  taken after the kill, with its events), and an acknowledged cancel is a cancel there;
* the restarted server recovered exactly that state: the sequence number and the state hash
  it logs are the offline full replay's (the server starts from its newest snapshot);
* the accounts of the cancel-on-disconnect and dead-man sessions have no open order once the
  server is back;
* the server never exited by itself.

**Hostile frames** (``--frames``). A fresh server; a well-behaved trader places and cancels
one order at a time (its round trips are timed) before, during and after eight hostile
connections send the frames: random bytes and text, requests of every op with hostile
arguments (non-ASCII, 2**70, negative, empty, wrong types, unknown keys), logons with
non-ASCII signatures, ``snapshot.book`` of 1,000 levels from connections that never read,
oversized frames. A hostile connection the server closes is replaced by a new one. Reported:
the server's RSS (baseline, peak, after), the trader's p50/p99 round trip in each phase, the
closes by reason; the run fails if the server exits, the trader gets an error, or the RSS rises
by more than 64 MiB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing
import random
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from gaemi.clients.live.client import Client, ConnectionLost, RequestError
from gaemi.gateway.wire.messages import OPS
from gaemi.risk import Venue
from gaemi.risk import commands as C
from gaemi.risk.journal import scan
from tests.gateway.procs import ServeProcess, rss_bytes

SYM = "NVDA-PERP"
INDEX = 10_000
MIB = 1024 * 1024
RSS_BOUND = 64 * MIB
TRADERS = 4
WINDOW = 16


# -- the crash loop ---------------------------------------------------------------------------


class Acks:
    """What the server acknowledged: order ids placed, order ids whose cancel it confirmed."""

    def __init__(self) -> None:
        self.placed: set[int] = set()
        self.canceled: set[int] = set()
        self.other = 0
        self.refused = 0

    @property
    def total(self) -> int:
        return len(self.placed) + len(self.canceled) + self.other


async def _trader(url: str, key: str, secret: str, rng: random.Random, acks: Acks,
                  stop: asyncio.Event, *, cod: bool = False, dead_man: bool = False) -> None:
    client = await Client.connect(url, "msgpack")
    client.request_timeout = 60
    try:
        await client.logon(key, secret, cancel_on_disconnect=cod)
        if dead_man:
            await client.cancel_all_after(600_000)
            acks.other += 1
        live: list[int] = []
        pending: set[asyncio.Task[None]] = set()

        await client.cancel_all(SYM)  # what an earlier cycle left (limits: max_open_orders)
        acks.other += 1

        lost = asyncio.Event()

        async def one() -> None:
            try:
                await request()
            except RequestError:
                acks.refused += 1  # a refusal changed nothing: nothing to check
            except (ConnectionLost, ConnectionError, OSError):
                lost.set()  # the kill: this request was never acknowledged

        async def request() -> None:
            r = rng.random()
            if len(live) > 100:
                r = 0.7  # keep well under the market's max_open_orders
            if r < 0.45 or not live:
                side = rng.choice(("BUY", "SELL"))
                price = INDEX - 5 - rng.randint(0, 50) if side == "BUY" else \
                    INDEX + 5 + rng.randint(0, 50)
                result = await client.place(SYM, side, rng.randint(1, 20), price)
                acks.placed.add(result["orderId"])
                if result["status"] in ("NEW", "PARTIALLY_FILLED"):
                    live.append(result["orderId"])
            elif r < 0.6:
                side = rng.choice(("BUY", "SELL"))
                price = INDEX + 60 if side == "BUY" else INDEX - 60
                result = await client.place(SYM, side, rng.randint(1, 10), price, tif="IOC")
                acks.placed.add(result["orderId"])
            elif r < 0.9:
                oid = live.pop(rng.randrange(len(live)))
                try:
                    await client.cancel(SYM, oid)
                    acks.canceled.add(oid)
                except RequestError:
                    pass  # filled, or cancelled by another session of the account
            else:
                oid = rng.choice(live)
                try:
                    await client.amend(SYM, oid, qty=rng.randint(1, 20))
                    acks.other += 1
                except RequestError:
                    pass

        while not stop.is_set() and not lost.is_set():
            while len(pending) < WINDOW:
                task = asyncio.create_task(one())
                pending.add(task)
                task.add_done_callback(pending.discard)
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        await asyncio.gather(*pending)  # the requests still in flight end with the connection
    except (ConnectionLost, ConnectionError, OSError):
        pass  # the kill
    finally:
        await client.close()


def _trade_until_killed(server: ServeProcess, rng: random.Random, acks: Acks) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        tasks = [asyncio.create_task(_trader(
            server.url, f"dev-{k}", server.secret(f"dev-{k}"), random.Random(rng.random()),
            acks, stop, cod=k == 1, dead_man=k == 2)) for k in range(1, TRADERS + 1)]
        await asyncio.sleep(rng.uniform(0.3, 2.5))
        if server.process.poll() is not None:
            raise SystemExit(f"the server exited by itself: {server.output()[-2000:]}")
        server.kill()
        await asyncio.wait(tasks, timeout=60)
        for task in tasks:
            task.result()

    asyncio.run(main())


def _offline(journal: Path) -> tuple[Venue, set[int], set[int]]:
    """The journal replayed from its first record: the venue, the order ids it accepted and
    the ones cancelled by their owner."""
    records = scan(journal).records
    venue = Venue.from_header(records[0], book="auto")
    accepted: set[int] = set()
    canceled: set[int] = set()
    for row in records[1:]:
        if isinstance(row, dict):
            continue  # a note of the gateway
        for e in venue.submit(C.decode(row)):
            if e.kind in ("order_accepted", "conditional_accepted"):
                accepted.add(e.order_id)
            elif e.kind == "order_canceled" and e.reason == "user":
                canceled.add(e.order_id)
    return venue, accepted, canceled


def _recovered_line(output: str) -> tuple[int, str]:
    line = next(x for x in output.splitlines() if "gaemi.gateway recovered" in x)
    seq = int(line.split(": seq ")[1].split(",")[0])
    return seq, line.rsplit("state ", 1)[1].strip()


def crash_loop(cycles: int, seed: int, folder: Path) -> dict[str, Any]:
    rng = random.Random(seed)
    acks = Acks()
    problems: list[str] = []
    snapshots_used = 0
    extra = ("--snapshot-every", "2000", "--orders-per-second", "100000",
             "--requests-per-second", "100000")
    server = ServeProcess(folder, *extra, dev_accounts=TRADERS)
    admin = server.client("admin")
    admin.result("admin.setIndex", {"symbol": SYM, "price": INDEX})
    admin.close()
    started = time.monotonic()
    for cycle in range(1, cycles + 1):
        _trade_until_killed(server, rng, acks)
        copy = folder / "after-kill.gaemij"
        shutil.copyfile(server.journal, copy)
        venue, accepted, canceled = _offline(copy)
        lost = sorted(acks.placed - accepted)
        uncanceled = sorted(acks.canceled - canceled)
        if lost or uncanceled:
            problems.append(f"cycle {cycle}: {len(lost)} acknowledged orders and "
                            f"{len(uncanceled)} acknowledged cancels missing from the journal")
        server = ServeProcess(folder, *extra, port=server.port, dev_accounts=TRADERS)
        seq, state = _recovered_line(server.output())
        if (seq, state) != (venue.seq, venue.state_hash()):
            problems.append(f"cycle {cycle}: the server recovered seq {seq} state {state}, "
                            f"the full replay seq {venue.seq} state {venue.state_hash()}")
        if "from journal.gaemij.snap-" in server.output():
            snapshots_used += 1
        for key in ("dev-1", "dev-2"):
            c = server.client(key)
            left = c.result("account.openOrders")["orders"]
            c.close()
            if left:
                problems.append(f"cycle {cycle}: {key} (cancel-on-disconnect / dead-man) "
                                f"has {len(left)} open orders after the restart")
        print(f"  cycle {cycle:>2}: {acks.total:>8,} acknowledged so far, journal seq "
              f"{venue.seq:,}, recovered from "
              f"{'a snapshot' if 'from journal.gaemij.snap-' in server.output() else 'the start'}"
              f", state {state}", flush=True)
        copy.unlink()
    code = server.stop()
    if code != 0:
        problems.append(f"the last server stopped with status {code}")
    return {"cycles": cycles, "acknowledged": acks.total, "acknowledged_orders":
            len(acks.placed), "acknowledged_cancels": len(acks.canceled),
            "lost": sum(1 for p in problems if "missing" in p), "restarts_from_snapshot":
            snapshots_used, "seconds": round(time.monotonic() - started, 1),
            "problems": problems}


# -- hostile frames ------------------------------------------------------------------------------


def _hostile_value(rng: random.Random) -> Any:
    return rng.choice([
        None, True, False, 0, -1, 2**63 - 1, -2**63, 2**64 - 1, rng.randint(-10**6, 10**6),
        "", "é" * rng.randint(1, 40), "\u0000", "NVDA-PERP", "BUY", "GTC", "x" * 300,
        [1, "a"], {"k": 1}, rng.random() * 100, "book.NVDA-PERP"])


def _hostile_frame(rng: random.Random, n: int) -> str | bytes:
    r = rng.random()
    if r < 0.15:
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 200)))
    if r < 0.25:
        return "".join(chr(rng.randint(1, 0x2FFF)) for _ in range(rng.randint(0, 100)))
    if r < 0.3:
        return json.dumps({"id": n, "op": "ping", "args": {"pad": "p" * 70_000}})
    if r < 0.4:
        return json.dumps({"id": n, "op": "session.logon", "args": {
            "apiKey": rng.choice(["dev-1", "admin", "nobody"]), "timestamp": 1,
            "signature": "é" * rng.randint(1, 64)}})
    if r < 0.55:
        return json.dumps({"id": n, "op": "snapshot.book", "args": {"symbol": SYM,
                                                                    "depth": 1000}})
    op = rng.choice(sorted(OPS) + ["nope", ""])
    args = {rng.choice(["symbol", "side", "qty", "price", "orderId", "channels", "depth",
                        "timeoutMs", "amount", "unknown", "évidemment"]): _hostile_value(rng)
            for _ in range(rng.randint(0, 5))}
    message: dict[str, Any] = {"id": rng.choice([n, str(n), None, 2**70, True]), "op": op,
                               "args": args}
    return json.dumps(message) if rng.random() < 0.9 else json.dumps([message])


def _flood(url: str, frames: int, seed: int, result: Any) -> None:
    """The hostile connections, in a process of their own (so that the trader's round trips
    measure the server, not this process's interpreter lock)."""
    counts = {"connections": 0}
    asyncio.run(_hostile(url, frames, seed, counts))
    result.put(counts)


async def _hostile(url: str, frames: int, seed: int, counts: dict[str, int]) -> None:
    rng = random.Random(seed)
    sent = 0

    async def connection(k: int) -> None:
        nonlocal sent
        reads = k % 2 == 0  # half of them never read
        while sent < frames:
            try:
                async with ws_connect(url, compression=None, max_size=None, close_timeout=1,
                                      max_queue=1 if not reads else 64) as ws:
                    counts["connections"] += 1
                    reader = asyncio.create_task(_drain(ws)) if reads else None
                    while sent < frames:
                        sent += 1
                        await ws.send(_hostile_frame(rng, sent))
                        if sent % 64 == 0:
                            await asyncio.sleep(0)
                    if reader is not None:
                        reader.cancel()
            except (ConnectionClosed, OSError, InvalidHandshake):
                await asyncio.sleep(0.01)  # closed by the server: a new connection

    await asyncio.gather(*(connection(k) for k in range(8)))


async def _drain(ws: Any) -> None:
    try:
        async for _ in ws:
            pass
    except ConnectionClosed:
        pass


class _Trader(threading.Thread):
    """One order at a time, placed then cancelled; every round trip timed, by phase."""

    def __init__(self, server: ServeProcess) -> None:
        super().__init__(daemon=True)
        self.client = server.client("dev-1", encoding="gaemi.msgpack")
        self.phase = "before"
        self.rtt: dict[str, list[float]] = {"before": [], "during": [], "after": []}
        self.errors: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                t0 = time.perf_counter()
                order = self.client.result("order.place", {"symbol": SYM, "side": "BUY",
                                                           "price": INDEX - 100, "qty": 1})
                t1 = time.perf_counter()
                self.client.result("order.cancel", {"symbol": SYM,
                                                    "orderId": order["orderId"]})
                self.rtt[self.phase] += [t1 - t0, time.perf_counter() - t1]
                time.sleep(0.002)
        except Exception as exc:  # the soak's verdict, not a crash of the tool
            self.errors.append(repr(exc))


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def hostile_frames(frames: int, seed: int, folder: Path) -> dict[str, Any]:
    server = ServeProcess(folder, "--snapshot-every", "0", dev_accounts=2)
    admin = server.client("admin")
    admin.result("admin.setIndex", {"symbol": SYM, "price": INDEX})
    maker = server.client("dev-2")
    for start in range(0, 1000, 20):  # 1,000 levels a side: deep snapshots are big
        maker.result("order.batch", {"orders": [
            {"op": "order.place", "args": {"symbol": SYM, "side": side, "qty": 1,
                                           "price": INDEX + sign * (1 + i)}}
            for i in range(start, start + 10) for side, sign in (("BUY", -1), ("SELL", 1))]})
    baseline = rss_bytes(server.pid)
    peak = [baseline]
    trader = _Trader(server)
    trader.start()
    time.sleep(2)
    trader.phase = "during"
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            if server.process.poll() is None:
                peak[0] = max(peak[0], rss_bytes(server.pid))
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    started = time.monotonic()
    context = multiprocessing.get_context("spawn")
    result = context.Queue()
    flood = context.Process(target=_flood, args=(server.url, frames, seed, result))
    flood.start()
    counts = result.get(timeout=1800)
    flood.join(60)
    flood_seconds = time.monotonic() - started
    trader.phase = "after"
    time.sleep(3)
    stop.set()
    watcher.join(5)
    trader.stop.set()
    trader.join(30)
    alive = server.process.poll() is None
    after = rss_bytes(server.pid) if alive else 0
    closes: dict[str, int] = {}
    for line in server.output().splitlines():
        if "closing 1008" in line:
            reason = line.split(": ", 1)[1].split(",")[0]
            closes[reason] = closes.get(reason, 0) + 1
    code = server.stop() if alive else server.process.returncode
    problems = []
    if not alive:
        problems.append("the server exited during the flood")
    if trader.errors:
        problems.append(f"the trader failed: {trader.errors[0]}")
    if peak[0] - baseline > RSS_BOUND:
        problems.append(f"RSS rose by {(peak[0] - baseline) / MIB:.0f} MiB")
    if code != 0:
        problems.append(f"the server stopped with status {code}")
    return {
        "frames": frames, "seconds": round(flood_seconds, 1),
        "hostile_connections": counts["connections"], "closes_1008": closes,
        "rss_mib": {"baseline": round(baseline / MIB, 1), "peak": round(peak[0] / MIB, 1),
                    "after": round(after / MIB, 1)},
        "trader_rtt_ms": {phase: {"n": len(v), "p50": round(_pct(v, 0.5), 3),
                                  "p99": round(_pct(v, 0.99), 3)}
                          for phase, v in trader.rtt.items()},
        "problems": problems}


# -- the command -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.soak", description=__doc__.split(
        "\n\n")[0])
    parser.add_argument("--cycles", type=int, default=20, help="kill -9 / restart cycles")
    parser.add_argument("--frames", type=int, default=100_000, help="hostile frames")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the summary here")
    args = parser.parse_args(argv)
    # the traders write to sockets the kill closed: asyncio says so at WARNING, by design
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    out: dict[str, Any] = {"seed": args.seed}
    with tempfile.TemporaryDirectory(prefix="gaemi-soak-") as tmp:
        if args.cycles:
            print(f"crash loop: {args.cycles} kill -9 cycles, {TRADERS} pipelined traders",
                  flush=True)
            out["crash"] = crash_loop(args.cycles, args.seed, Path(tmp) / "crash")
        if args.frames:
            print(f"hostile frames: {args.frames:,} over 8 connections, a trader timing its "
                  "round trips", flush=True)
            (Path(tmp) / "hostile").mkdir()
            out["hostile"] = hostile_frames(args.frames, args.seed, Path(tmp) / "hostile")
    problems = [p for part in ("crash", "hostile") for p in out.get(part, {}).get("problems", [])]
    _print_summary(out)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    if problems:
        print("SOAK FAILED:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    print("soak passed")
    return 0


def _print_summary(out: dict[str, Any]) -> None:
    crash = out.get("crash")
    if crash:
        print(f"\ncrash loop: {crash['cycles']} cycles in {crash['seconds']} s; "
              f"{crash['acknowledged']:,} acknowledged requests ({crash['acknowledged_orders']:,}"
              f" orders, {crash['acknowledged_cancels']:,} cancels), lost "
              f"{crash['lost']}; {crash['restarts_from_snapshot']} restarts from a snapshot")
    hostile = out.get("hostile")
    if hostile:
        rss = hostile["rss_mib"]
        print(f"hostile frames: {hostile['frames']:,} in {hostile['seconds']} s over "
              f"{hostile['hostile_connections']} connections (closed 1008 by the server: "
              f"{hostile['closes_1008']}); server RSS "
              f"{rss['baseline']} -> peak {rss['peak']} -> {rss['after']} MiB")
        for phase, r in hostile["trader_rtt_ms"].items():
            print(f"  trader {phase:<6} {r['n']:>6,} round trips  p50 {r['p50']:.2f} ms  "
                  f"p99 {r['p99']:.2f} ms")


if __name__ == "__main__":
    sys.exit(main())
