"""The venue's risk pipeline (``risk.Venue.submit``): commands per second against the raw
engine in the same run, and the cost of the liquidation sweep as open positions grow.

Pipeline throughput
-------------------
A ``Venue`` of one market (NVDA-PERP) or two (NVDA-PERP, TSLA-PERP), every preset with
``session=None`` (the underlying never closes), 10,000 accounts each funded with a $100,000
``Deposit``, index 13,000 ticks ($130.00) and 25,000 ticks ($250.00). ``SEED = 20261122``;
``PIPELINE_COMMANDS = 50_000`` timed commands, drawn before timing with this declared mix
(accounts uniform over the 10,000, the market uniform over the venue's markets):

===================== ====== ===========================================================
command               share  how it is drawn
===================== ====== ===========================================================
place GTC limit       45 %   side 50/50, 1-100 lots; 5 % marketable (0-2 ticks through
                             the opposite touch), else 1 + Exp(mean 20) ticks behind it;
                             clamped to the mark +/- 9 % (inside the 10 % price band)
place IOC / market    10 %   side 50/50, 1-100 lots; half market orders (``price=None``),
                             half IOC limits 0-3 ticks through the opposite touch
cancel                30 %   a live resting order of the market, uniformly, by its owner
amend                 10 %   a live resting order: half move its price 1-5 ticks up or
                             down, half set its size to 1-100 lots
SetIndexPrice          3 %   the market's index moves -3..+3 ticks (kept within 1 %)
AdvanceTime            2 %   venue time + 1 s (basis samples every second, premium samples
                             every 5 s; ~1,000 s in all, so no hourly funding settles)
===================== ====== ===========================================================

The venue starts (untimed, in setup) with the deposits, the index prices and
``RESTING_TARGET = 1_000`` GTC orders per market (two per level, 250 levels either side of
the index). The generator runs every command through a venue as it draws it, learns the
venue's order ids from the events, and steers towards 1,000 resting orders per market by
moving share between "place GTC" and "cancel" (45 % - 0.5 x the relative excess). The fixture
checks the realised mix stays within 2 points of the declared one (3 for the smoke stream),
and that the stream has fills and mark updates but no rejection and no liquidation.

Timed unit: ``venue.submit(command)`` for each command of the stream, on a fresh venue per
round (``benchmark.pedantic`` with a ``setup`` that builds it: not timed), the events dropped
(only their number is kept). Rounds: 5 after 1 warm-up round for one market; 3 without a
warm-up for two markets (a round takes tens of seconds there). After each round the venue's
``state_hash()`` and event count must equal the generator's (so both book implementations and
every round did the same thing); ``check_invariants()`` runs once, after the first round,
outside timing.

* **journal**: the same, with ``journal=`` a new file per round (in pytest's ``tmp_path``);
  the timed unit ends with one ``venue.sync()`` (flush + fsync). After the first round the
  journal is recovered (``Venue.recover``) and must give the same state hash.
* **raw engine** (the baseline): the engine calls the venue made for the same stream,
  replayed through one ``engine.book_class(impl)()`` per market with the per-call API
  (``place(order_id, side, limit, qty, tif=, account=, stp=CANCEL_RESTING)``, ``cancel``,
  ``amend(price=, qty=)``), with the venue's order ids. They are derived from the events: an
  ``OrderAccepted`` is a place at its ``limit``, an ``OrderCanceled`` of reason user /
  cancel_all / liquidation / reduce_only a cancel, an ``OrderAmended`` (user / reduce_only)
  an amend. After each round every book's ``state_hash()`` must equal the venue's book's.
  Rounds: 40 (compiled) or 10 (reference) after 1 warm-up round.

The summary at the end of the run ("venue pipeline vs raw engine") gives venue commands/s
and the pipeline's time over the raw engine's for the same stream.

Sweep cost
----------
A venue of NVDA-PERP (compiled book) with N = 1,000 or 1,000,000 open long positions of
10 lots, built once per module through public commands only: for each long a ``Deposit``
and a GTC buy of 10 lots at 12,999 ticks; after every 1,000 longs one of 100 short accounts
($1M each) sells into the bids with an IOC, so the book ends empty. Each long's deposit puts
its liquidation price at a drawn price uniformly in 7,000-11,000 ticks. On top, both venues get
the same ladder of "victims": ``LADDER_STEPS = 25`` windows of ``STEP = 10`` ticks from
11,900 down, ``K = 5`` longs per window with the liquidation price in the window's middle.
The positions' liquidation prices are read back (``account().positions``) and checked.

* **quiet**: the index (and so the mark) moves 13,000 -> 12,999 -> 13,000: two
  ``SetIndexPrice`` per round, no liquidation key within reach (k = 0); the state returns
  (open interest and the insurance fund unchanged, only two ``MarkUpdated`` events). 300
  rounds after 10 warm-up rounds.
* **crossing**: one ``SetIndexPrice`` per round moving the index down one window (10 ticks),
  which liquidates exactly the window's K = 5 victims (no bids: the insurance fund takes the
  positions over). The index goes down the ladder round by round (the setup puts it at the
  window's top, untimed). 20 rounds after 1 warm-up round: 21 of the 25 windows.

The summary prints the 1M / 1k ratio of the median round for both; the acceptance is "within
2x". It is a figure of the run and of BENCHMARKS.md, never an assertion: the benchmarks only
assert results (events, liquidations, state).

Smoke mode (``--benchmark-disable``, ``make bench-smoke``): each benchmark runs once, untimed,
with smaller inputs so the whole directory stays fast: 5,000 pipeline commands instead of
50,000 and 10,000 positions instead of 1,000,000 ("1M" then names 10,000). The results are
checked the same way.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from bench_engine import _Live  # the ids of live resting orders (benches/ is on sys.path)

from gaemi.engine.codes import SelfTradePrevention, TimeInForce
from gaemi.risk import (
    AdvanceTime,
    AmendOrder,
    CancelOrder,
    Deposit,
    PlaceOrder,
    SetIndexPrice,
    Venue,
    preset,
    usd,
)
from gaemi.risk.calendar import NS_PER_SECOND

# -- the pipeline workload ------------------------------------------------------------------

SEED = 20261122
FLOWS = {"1-mkt": ("NVDA-PERP",), "2-mkt": ("NVDA-PERP", "TSLA-PERP")}
START_INDEX = {"NVDA-PERP": 13_000, "TSLA-PERP": 25_000}  # ticks of $0.01: $130, $250
ACCOUNTS = 10_000
DEPOSIT = usd(100_000)
PIPELINE_COMMANDS = 50_000
SMOKE_COMMANDS = 5_000
RESTING_TARGET = 1_000  # per market
DECLARED_MIX = {"place GTC": 0.45, "place IOC/market": 0.10, "cancel": 0.30, "amend": 0.10,
                "index": 0.03, "time": 0.02}

# (rounds, warm-up rounds) of a pipeline benchmark: a 2-market round takes tens of seconds
PIPELINE_ROUNDS = {"1-mkt": (5, 1), "2-mkt": (3, 0)}
ENGINE_ROUNDS = {"reference": 10, "compiled": 40}
WARMUP_ROUNDS = 1

_STP = int(SelfTradePrevention.CANCEL_RESTING)  # what the venue passes to the book
_BOOK_CANCELS = ("user", "cancel_all", "liquidation", "reduce_only")  # the venue called cancel


def _smoke(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("benchmark_disable"))


def _markets(symbols: tuple[str, ...]) -> list[Any]:
    return [preset(s, session=None) for s in symbols]


@dataclass
class Flow:
    name: str
    symbols: tuple[str, ...]
    setup: list[Any] = field(default_factory=list)  # deposits, index prices, starting orders
    commands: list[Any] = field(default_factory=list)  # the timed stream
    setup_calls: list[tuple[int, ...]] = field(default_factory=list)  # engine calls of setup
    calls: list[tuple[int, ...]] = field(default_factory=list)  # engine calls of the stream
    mix: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)  # event kinds of the stream
    events: int = 0
    state_hash: str = ""
    book_hashes: tuple[int, ...] = ()
    mean_resting: float = 0.0


def _book_calls(events: list[Any], index: dict[str, int], out: list[tuple[int, ...]]) -> None:
    """The engine calls the venue made for one command, in order, read from its events:
    ``(book, 1, order_id, side, limit, qty, tif, account)`` place, ``(book, 2, order_id, 0..)``
    cancel, ``(book, 3, order_id, price, qty, 0..)`` amend (padded to one width)."""
    for e in events:
        kind = e.kind
        if kind == "order_accepted":
            assert not e.post_only, "the workload places no post-only orders"
            out.append((index[e.symbol], 1, e.order_id, e.side, e.limit, e.qty, e.tif,
                        e.account_id))
        elif kind == "order_canceled" and e.reason in _BOOK_CANCELS:
            out.append((index[e.symbol], 2, e.order_id, 0, 0, 0, 0, 0))
        elif kind == "order_amended" and e.reason in ("user", "reduce_only"):
            out.append((index[e.symbol], 3, e.order_id, e.price, e.qty, 0, 0, 0))
        elif kind in ("order_triggered", "conditional_accepted"):  # pragma: no cover
            raise AssertionError("the workload places no conditional orders")


def generate_flow(name: str, n: int = PIPELINE_COMMANDS, accounts: int = ACCOUNTS,
                  resting: int = RESTING_TARGET, seed: int = SEED) -> Flow:
    """Draw the declared mix (module docstring), running every command through a venue to
    know the live orders, the touch and the mark."""
    symbols = FLOWS[name]
    rng = random.Random(seed)
    venue = Venue(_markets(symbols), book="auto")
    index = {s: i for i, s in enumerate(symbols)}
    books = {s: venue.book(s) for s in symbols}
    live = {s: _Live() for s in symbols}
    owner: dict[int, int] = {}
    index_now = dict(START_INDEX)
    now = 0
    flow = Flow(name, symbols)

    def run(cmd: Any, calls: list[tuple[int, ...]], timed: bool) -> None:
        events = venue.submit(cmd)
        _book_calls(events, index, calls)
        mentioned = []
        for e in events:
            kind = e.kind
            if timed:
                flow.kinds[kind] += 1
            if kind == "order_accepted" or kind == "order_amended":
                mentioned.append((e.symbol, e.order_id, e.account_id))
            elif kind == "fill" and e.maker_remaining == 0:
                live[e.symbol].drop(e.maker_order_id)
            elif kind == "order_canceled":
                live[e.symbol].drop(e.order_id)
        for symbol, oid, account in mentioned:
            if books[symbol].order(oid) is not None:
                live[symbol].add(oid)
                owner[oid] = account
            else:
                live[symbol].drop(oid)
        if timed:
            flow.events += len(events)

    # -- setup: accounts, index prices, the starting book (untimed)
    for account in range(1, accounts + 1):
        flow.setup.append(Deposit(account, DEPOSIT))
    for symbol in symbols:
        flow.setup.append(SetIndexPrice(symbol, START_INDEX[symbol]))
    for cmd in flow.setup:
        run(cmd, flow.setup_calls, False)
    for k in range(resting * len(symbols)):
        symbol = symbols[k % len(symbols)]
        j = k // len(symbols)
        side = 1 if j % 2 == 0 else -1
        price = START_INDEX[symbol] - side * (1 + (j // 2) % (resting // 4))
        cmd = PlaceOrder(rng.randint(1, accounts), symbol, side, price, rng.randint(1, 100))
        flow.setup.append(cmd)
        run(cmd, flow.setup_calls, False)

    # -- the timed stream
    resting_sum = samples = 0
    for i in range(n):
        if i % 1000 == 0:
            resting_sum += sum(len(b) for b in books.values())
            samples += 1
        symbol = symbols[rng.randrange(len(symbols))]
        book, lv = books[symbol], live[symbol]
        p_gtc = DECLARED_MIX["place GTC"] - 0.5 * (len(lv) - resting) / resting
        account = rng.randint(1, accounts)
        r = rng.random()
        cmd: Any
        if r < 0.03:
            kind = "index"
            step = rng.randint(-3, 3)
            start = START_INDEX[symbol]
            if abs(index_now[symbol] + step - start) > start // 100:  # stay within 1 %
                step = -step
            index_now[symbol] += step
            cmd = SetIndexPrice(symbol, index_now[symbol])
        elif r < 0.05:
            kind = "time"
            now += NS_PER_SECOND
            cmd = AdvanceTime(now)
        elif r < 0.15:
            kind = "place IOC/market"
            side = rng.choice((1, -1))
            qty = rng.randint(1, 100)
            if rng.random() < 0.5:
                cmd = PlaceOrder(account, symbol, side, None, qty)  # a market order
            else:
                touch = (book.best_ask() if side == 1 else book.best_bid()) \
                    or venue.market(symbol).mark
                cmd = PlaceOrder(account, symbol, side, touch + side * rng.randint(0, 3), qty,
                                 tif=TimeInForce.IOC)
        elif r < 0.25 and lv:
            kind = "amend"
            oid = lv.pick(rng)
            if rng.random() < 0.5:
                move = rng.randint(1, 5) * rng.choice((1, -1))
                cmd = AmendOrder(owner[oid], symbol, oid, price=book.order(oid).price + move)
            else:
                cmd = AmendOrder(owner[oid], symbol, oid, qty=rng.randint(1, 100))
        elif r < 0.25 + p_gtc or not lv:
            kind = "place GTC"
            side = rng.choice((1, -1))
            mark = venue.market(symbol).mark
            touch = book.best_ask() if side == 1 else book.best_bid()
            if touch is None:
                touch = mark + side
            if rng.random() < 0.05:
                behind = -rng.randint(1, 3)  # marketable: 0-2 ticks through the opposite touch
            else:
                behind = int(rng.expovariate(1 / 20))
            band = mark * 9 // 100
            price = min(max(touch - side * (1 + behind), mark - band), mark + band)
            cmd = PlaceOrder(account, symbol, side, price, rng.randint(1, 100))
        else:
            kind = "cancel"
            oid = lv.pick(rng)
            cmd = CancelOrder(owner[oid], symbol, oid)
        flow.mix[kind] += 1
        flow.commands.append(cmd)
        run(cmd, flow.calls, True)
    flow.mean_resting = resting_sum / samples / len(symbols)
    flow.state_hash = venue.state_hash()
    flow.book_hashes = tuple(books[s].state_hash() for s in symbols)
    venue.check_invariants()
    return flow


# -- timed units ------------------------------------------------------------------------------


def run_pipeline(venue: Venue, commands: list[Any]) -> tuple[Venue, int]:
    """The timed unit: every command through ``submit``; only the number of events is kept."""
    submit = venue.submit
    events = 0
    for cmd in commands:
        events += len(submit(cmd))
    return venue, events


def run_pipeline_journaled(venue: Venue, commands: list[Any]) -> tuple[Venue, int]:
    result = run_pipeline(venue, commands)
    venue.sync()
    return result


def run_engine(books: list[Any], calls: list[tuple[int, ...]]) -> list[Any]:
    """The baseline: the same engine calls through the raw books' per-call API."""
    place = [b.place for b in books]
    cancel = [b.cancel for b in books]
    amend = [b.amend for b in books]
    stp = _STP
    for b, op, oid, x, y, z, tif, account in calls:
        if op == 1:
            place[b](oid, x, y, z, tif=tif, account=account, stp=stp)
        elif op == 2:
            cancel[b](oid)
        else:
            amend[b](oid, price=x, qty=y)
    return books


# -- the end-of-run summary -------------------------------------------------------------------


class _Summary:
    """Registered as a plugin by the first benchmark of this module: prints the pipeline /
    raw-engine and 1M / 1k ratios measured in this run."""

    def __init__(self) -> None:
        # (flow, variant, impl) -> (commands, median s, min s)
        self.pipeline: dict[tuple[str, str, str], tuple[int, float, float]] = {}
        # (variant, label) -> (positions, median s, min s)
        self.sweep: dict[tuple[str, str], tuple[int, float, float]] = {}

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        write = terminalreporter.write_line
        if self.pipeline:
            terminalreporter.section("venue pipeline vs raw engine (same stream, same run)")
            write(f"{'flow':<6} {'variant':<12} {'impl':<10} {'venue cmds':>10} "
                  f"{'median s':>9} {'venue cmds/s':>13} {'best cmds/s':>12} {'/ engine':>9}")
            for name in FLOWS:
                for impl in ("reference", "compiled"):
                    engine = self.pipeline.get((name, "raw engine", impl))
                    for variant in ("pipeline", "journal", "raw engine"):
                        row = self.pipeline.get((name, variant, impl))
                        if row is None:
                            continue
                        n, median, best = row
                        ratio = f"{median / engine[1]:8.1f}x" if engine else ""
                        write(f"{name:<6} {variant:<12} {impl:<10} {n:>10,} {median:>9.4f} "
                              f"{n / median:>13,.0f} {n / best:>12,.0f} {ratio:>9}")
                    plain = self.pipeline.get((name, "pipeline", impl))
                    journal = self.pipeline.get((name, "journal", impl))
                    if plain and journal:
                        write(f"{name:<6} journal / pipeline ({impl}, median): "
                              f"{journal[1] / plain[1]:.2f}x")
            write("raw engine rows: the engine calls of the same stream, counted per venue "
                  "command; '/ engine': median time over the raw engine's (same impl)")
        if self.sweep:
            terminalreporter.section("venue sweep: 1M vs 1k open positions")
            for variant in ("quiet", "crossing"):
                rows = {label: v for (var, label), v in self.sweep.items() if var == variant}
                for label in ("1k", "1M"):
                    if label in rows:
                        n, median, best = rows[label]
                        write(f"{variant:<9} {n:>9,} positions  median {median * 1e6:9.1f} us"
                              f"  min {best * 1e6:9.1f} us")
                if "1k" in rows and "1M" in rows:
                    ratio = rows["1M"][1] / rows["1k"][1]
                    verdict = "within 2x" if ratio <= 2 else "NOT within 2x"
                    write(f"{variant:<9} 1M / 1k (median) = {ratio:.2f}x: {verdict}")


_SUMMARY = _Summary()


@pytest.fixture(scope="module", autouse=True)
def _venue_summary(request: pytest.FixtureRequest) -> None:
    manager = request.config.pluginmanager
    if not manager.is_registered(_SUMMARY):
        manager.register(_SUMMARY, "bench_venue_summary")


def _stats(benchmark: Any) -> tuple[float, float] | None:
    stats = getattr(benchmark, "stats", None)
    if stats is None:  # --benchmark-disable: ran once, untimed
        return None
    return stats.stats.median, stats.stats.min


# -- pipeline fixtures and benchmarks ---------------------------------------------------------

_FLOW_CACHE: dict[tuple[str, int], Flow] = {}


def _flow(request: pytest.FixtureRequest, name: str) -> Flow:
    n = SMOKE_COMMANDS if _smoke(request) else PIPELINE_COMMANDS
    key = (name, n)
    if key not in _FLOW_CACHE:
        flow = generate_flow(name, n)
        tolerance = 0.02 if n >= PIPELINE_COMMANDS else 0.03
        for kind, share in DECLARED_MIX.items():
            assert abs(flow.mix[kind] / n - share) < tolerance, (kind, flow.mix)
        assert abs(flow.mean_resting - RESTING_TARGET) < 0.1 * RESTING_TARGET, flow.mean_resting
        assert flow.kinds["fill"] > 0 and flow.kinds["mark"] > 0, flow.kinds
        assert flow.kinds["rejected"] == 0 and flow.kinds["liquidation"] == 0, flow.kinds
        _FLOW_CACHE[key] = flow
    return _FLOW_CACHE[key]


@pytest.fixture(scope="module", autouse=True)
def _drop_flows() -> Any:
    yield
    _FLOW_CACHE.clear()


def _fresh_venue(flow: Flow, impl: str, journal: Path | None = None) -> Venue:
    venue = Venue(_markets(flow.symbols), book=impl, journal=journal)
    submit = venue.submit
    for cmd in flow.setup:
        submit(cmd)
    return venue


def _record(benchmark: Any, flow: Flow, variant: str, impl: str, commands: int) -> None:
    benchmark.extra_info["venue_commands"] = len(flow.commands)
    benchmark.extra_info["commands"] = commands
    stats = _stats(benchmark)
    if stats is not None:
        median, best = stats
        benchmark.extra_info["venue_commands_per_s_median"] = round(len(flow.commands) / median)
        _SUMMARY.pipeline[(flow.name, variant, impl)] = (len(flow.commands), median, best)


@pytest.mark.parametrize("name", list(FLOWS))
def test_pipeline(benchmark: Any, impl: str, throughput: Any, name: str,
                  request: pytest.FixtureRequest) -> None:
    benchmark.group = f"venue {name} pipeline"
    flow = _flow(request, name)
    ran: list[tuple[Venue, int]] = []
    checked: list[bool] = []

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (_fresh_venue(flow, impl), flow.commands), {}

    def target(venue: Venue, commands: list[Any]) -> None:
        ran.append(run_pipeline(venue, commands))

    def check(*_: Any) -> None:
        venue, events = ran.pop()
        assert events == flow.events
        assert venue.state_hash() == flow.state_hash
        if not checked:
            venue.check_invariants()
            checked.append(True)

    rounds, warmup = PIPELINE_ROUNDS[name]
    benchmark.pedantic(target, setup=setup, teardown=check, rounds=rounds,
                       warmup_rounds=warmup, iterations=1)
    while ran:  # --benchmark-disable runs setup and target once, without teardown
        check()
    assert checked
    throughput(benchmark.group, len(flow.commands))
    _record(benchmark, flow, "pipeline", impl, len(flow.commands))


@pytest.mark.parametrize("name", ["1-mkt"])
def test_pipeline_journal(benchmark: Any, impl: str, throughput: Any, name: str,
                          request: pytest.FixtureRequest, tmp_path: Path) -> None:
    benchmark.group = f"venue {name} journal"
    flow = _flow(request, name)
    ran: list[tuple[Venue, int]] = []
    paths: list[Path] = []
    recovered: list[bool] = []

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        path = tmp_path / f"round{len(paths)}.journal"
        paths.append(path)
        return (_fresh_venue(flow, impl, journal=path), flow.commands), {}

    def target(venue: Venue, commands: list[Any]) -> None:
        ran.append(run_pipeline_journaled(venue, commands))

    def check(*_: Any) -> None:
        venue, events = ran.pop()
        venue.close()
        assert events == flow.events
        assert venue.state_hash() == flow.state_hash
        path = paths[-1]
        if not recovered:
            again = Venue.recover(path, book=impl)
            again.close()
            assert again.state_hash() == flow.state_hash
            recovered.append(True)
        path.unlink()

    rounds, warmup = PIPELINE_ROUNDS[name]
    benchmark.pedantic(target, setup=setup, teardown=check, rounds=rounds,
                       warmup_rounds=warmup, iterations=1)
    while ran:
        check()
    assert recovered
    throughput(benchmark.group, len(flow.commands))
    _record(benchmark, flow, "journal", impl, len(flow.commands))


@pytest.mark.parametrize("name", list(FLOWS))
def test_pipeline_raw_engine(benchmark: Any, impl: str, make_book: type, throughput: Any,
                             name: str, request: pytest.FixtureRequest) -> None:
    benchmark.group = f"venue {name} raw engine"
    flow = _flow(request, name)
    ran: list[list[Any]] = []
    rounds: list[bool] = []

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        books = [make_book() for _ in flow.symbols]
        run_engine(books, flow.setup_calls)
        return (books, flow.calls), {}

    def target(books: list[Any], calls: list[tuple[int, ...]]) -> None:
        ran.append(run_engine(books, calls))

    def check(*_: Any) -> None:
        books = ran.pop()
        assert tuple(b.state_hash() for b in books) == flow.book_hashes
        rounds.append(True)

    benchmark.pedantic(target, setup=setup, teardown=check, rounds=ENGINE_ROUNDS[impl],
                       warmup_rounds=WARMUP_ROUNDS, iterations=1)
    while ran:
        check()
    assert rounds
    throughput(benchmark.group, len(flow.calls))  # engine calls, not venue commands
    _record(benchmark, flow, "raw engine", impl, len(flow.calls))


# -- the sweep --------------------------------------------------------------------------------

SWEEP_SYMBOL = "NVDA-PERP"
SWEEP_INDEX = 13_000
ENTRY = 12_999  # every long buys at this price
LOTS = 10
MULT = 100  # NVDA-PERP: micro-dollars per (tick x lot)
MAKER_FEE = 260  # ceil(10 lots x 12,999 ticks x 100 x 0.02 %): the longs' fee (they rest)
BATCH = 1_000  # longs per short IOC
SHORTS = 100
SHORT_BASE = 10**7  # account ids of the shorts (the longs are 1..N, victims after them)
BACKGROUND_LIQ = (7_000, 11_000)
LADDER_TOP = 11_900
STEP = 10
LADDER_STEPS = 25
K = 5
SWEEP_SIZES = {"1k": 1_000, "1M": 1_000_000}
SMOKE_LARGE = 10_000
QUIET_ROUNDS, QUIET_WARMUP = 300, 10
CROSS_ROUNDS, CROSS_WARMUP = 20, 1
assert CROSS_ROUNDS + CROSS_WARMUP <= LADDER_STEPS


@dataclass
class Positions:
    venue: Venue
    positions: int
    ladder: list[list[int]]  # victims per window, top window first
    next_window: int = 0


def _deposit_for(liq_price: int) -> int:
    """The deposit that puts a 10-lot long bought at ENTRY (as a maker) at ``liq_price``:
    wallet + 10 x (P - ENTRY) x MULT = 2.5 % x 10 x P x MULT at P = liq_price."""
    return LOTS * MULT * ENTRY - LOTS * MULT * 975 * liq_price // 1000 + MAKER_FEE


def build_positions(n: int, seed: int = SEED) -> Positions:
    """N background longs plus the victim ladder, through Deposit / PlaceOrder commands."""
    rng = random.Random(seed)
    venue = Venue([preset(SWEEP_SYMBOL, session=None)], book="auto")
    submit = venue.submit
    for s in range(SHORTS):
        submit(Deposit(SHORT_BASE + s, usd(1_000_000)))
    submit(SetIndexPrice(SWEEP_SYMBOL, SWEEP_INDEX))
    longs: list[tuple[int, int]] = []  # (account, liquidation price)
    for aid in range(1, n + 1):
        longs.append((aid, rng.randint(*BACKGROUND_LIQ)))
    ladder = []
    aid = n + 1
    for w in range(LADDER_STEPS):
        middle = LADDER_TOP - w * STEP - STEP // 2
        ladder.append(list(range(aid, aid + K)))
        longs.extend((a, middle) for a in range(aid, aid + K))
        aid += K
    shorts_used = set()
    for b in range(0, len(longs), BATCH):
        batch = longs[b:b + BATCH]
        for account, liq in batch:
            submit(Deposit(account, _deposit_for(liq)))
            events = submit(PlaceOrder(account, SWEEP_SYMBOL, 1, ENTRY, LOTS))
            assert events[-1].kind == "order_accepted", events
        short = SHORT_BASE + (b // BATCH) % SHORTS
        shorts_used.add(short)
        events = submit(PlaceOrder(short, SWEEP_SYMBOL, -1, ENTRY, LOTS * len(batch),
                                   tif=TimeInForce.IOC))
        assert sum(1 for e in events if e.kind == "fill") == len(batch)
    assert len(venue.book(SWEEP_SYMBOL)) == 0
    market = venue.market(SWEEP_SYMBOL)
    assert market.mark == SWEEP_INDEX and market.open_interest == LOTS * len(longs)
    # the liquidation prices are where they were put (all victims, a sample of the rest)
    for w, victims in enumerate(ladder):
        top = LADDER_TOP - w * STEP
        for a in victims:
            liq = venue.account(a).positions[SWEEP_SYMBOL].liquidation_price
            assert liq is not None and top - STEP + 2 < liq < top - 2, (a, liq, top)
    for a, _ in rng.sample(longs[:n], min(n, 200)):
        liq = venue.account(a).positions[SWEEP_SYMBOL].liquidation_price
        assert liq is not None and liq <= BACKGROUND_LIQ[1] + 1, (a, liq)
    return Positions(venue, len(longs) + len(shorts_used), ladder)


@pytest.fixture(scope="module", params=list(SWEEP_SIZES))
def positions(request: pytest.FixtureRequest) -> Any:
    label = str(request.param)
    n = SWEEP_SIZES[label]
    if _smoke(request) and n > SMOKE_LARGE:
        n = SMOKE_LARGE
    built = build_positions(n)
    yield label, built
    built.venue.close()


def _record_sweep(benchmark: Any, variant: str, label: str, built: Positions) -> None:
    benchmark.extra_info["positions"] = built.positions
    stats = _stats(benchmark)
    if stats is not None:
        _SUMMARY.sweep[(variant, label)] = (built.positions, *stats)


def test_sweep_quiet(benchmark: Any, positions: tuple[str, Positions]) -> None:
    label, built = positions
    benchmark.group = "venue sweep quiet"
    venue = built.venue
    submit = venue.submit
    submit(SetIndexPrice(SWEEP_SYMBOL, SWEEP_INDEX))  # untimed: away from every key
    before = venue.market(SWEEP_SYMBOL)
    down = SetIndexPrice(SWEEP_SYMBOL, SWEEP_INDEX - 1)
    back = SetIndexPrice(SWEEP_SYMBOL, SWEEP_INDEX)
    kinds: Counter[str] = Counter()
    rounds: list[int] = []

    def target() -> None:
        events = submit(down) + submit(back)
        rounds.append(len(events))
        for e in events:
            kinds[e.kind] += 1

    benchmark.pedantic(target, rounds=QUIET_ROUNDS, warmup_rounds=QUIET_WARMUP, iterations=1)
    after = venue.market(SWEEP_SYMBOL)
    assert rounds and set(rounds) == {2}, Counter(rounds)
    assert set(kinds) == {"mark"}, kinds
    assert (after.mark, after.open_interest, after.insurance_fund, after.insurance_position) \
        == (before.mark, before.open_interest, before.insurance_fund, before.insurance_position)
    _record_sweep(benchmark, "quiet", label, built)


def test_sweep_crossing(benchmark: Any, positions: tuple[str, Positions]) -> None:
    label, built = positions
    benchmark.group = "venue sweep crossing"
    venue = built.venue
    submit = venue.submit
    ran: list[tuple[int, list[Any]]] = []

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        w = built.next_window
        built.next_window += 1
        assert w < LADDER_STEPS, "the ladder is used up"
        top = LADDER_TOP - w * STEP
        if venue.market(SWEEP_SYMBOL).index != top:
            events = submit(SetIndexPrice(SWEEP_SYMBOL, top))
            assert not any(e.kind == "liquidation" for e in events)
        return (w, SetIndexPrice(SWEEP_SYMBOL, top - STEP)), {}

    def target(w: int, cmd: Any) -> None:
        ran.append((w, submit(cmd)))

    def check(*_: Any) -> None:
        w, events = ran.pop()
        liquidated = sorted(e.account_id for e in events if e.kind == "liquidation")
        assert liquidated == built.ladder[w], (w, liquidated)
        assert sum(1 for e in events if e.kind == "insurance_takeover") == K
        checks.append(w)

    checks: list[int] = []
    benchmark.pedantic(target, setup=setup, teardown=check, rounds=CROSS_ROUNDS,
                       warmup_rounds=CROSS_WARMUP, iterations=1)
    while ran:
        check()
    assert checks
    _record_sweep(benchmark, "crossing", label, built)
