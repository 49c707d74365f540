"""Run a scenario in process through the sans-I/O gateway ``Exchange`` and keep what happened
(a ``RunRecord``).

Theory of operation
-------------------
The driver owns the clock, the oracle and the money; the agents (clients/sim/scenario/agents.py)
own every trading decision. For each simulated trading day it steps from the pre-open to the
post-close, ``path.step_s`` at a time; each step, in this order:

1. ``AdvanceTime(t)``: samples, funding, session changes.
2. The underlying's price for ``t`` (the path inside the session, the last close outside),
   the makers' stress measures, the shock windows.
3. The quoting agents that are due cancel, then all of them quote again (two phases).
4. The oracle: ``SetIndexPrice`` when the session is open, on the oracle's cadence, unless
   an ``oracle_freeze`` shock is on and the price changed. Makers see the underlying before
   the venue does (they watch the exchange, not the oracle).
5. In the ``margin-loan`` regime, at the session's first step: the broker's top-ups and
   forced sales (clients/sim/scenario/broker.py).
6. The ETF slice, the scheduled retail and background actions, then the retail price triggers
   on the mark, then the fills of resting retail orders (a dip order's to its cohort, a
   forced sale's to the broker).
7. In the ``margin-loan`` regime, at the session's last step: the broker values its accounts
   and makes its margin calls.
8. A ``Sample`` every ``run.sample_s``; ``check_invariants`` every ``run.check_every_s``.

Agents speak only the wire: each account has a ``Session`` on the sans-I/O exchange of the
gateway (clients/sim/inprocess.py), so every order goes through the gateway's checks and its
mapping to venue commands, as it would over a socket. The driver hands out what the accounts'
private channels say between their own requests: a liquidation notice right after the command
that caused it (``on_liquidated``), a resting dip order's fill at the end of the step
(``on_fill``, in the order the fills happened). Deposits, index updates and time are commands
of the driver's own (``Exchange.apply``); the driver records the run from every command's
events (the exchange's observer).

Randomness: ``random.Random`` streams seeded from the scenario's seed, one for the path and
one for the agents, so changing an agent parameter does not change the index path. The venue
stays integer and deterministic: the same scenario and seed give the same state hash on the
compiled and the reference book.
"""

from __future__ import annotations

import dataclasses
import heapq
import random
from collections import Counter, deque
from collections.abc import Callable, Iterable
from typing import Any

from gaemi.clients.live.session import Reply, Session
from gaemi.clients.sim.cascade.record import Cohort, RunRecord, Sample
from gaemi.clients.sim.inprocess import InProcess, InProcessSession
from gaemi.clients.sim.scenario.agents import (
    Arbitrageur,
    EtfRebalancer,
    MarketMaker,
    NoiseTrader,
    RetailCohort,
    View,
)
from gaemi.clients.sim.scenario.broker import Broker
from gaemi.clients.sim.scenario.market import scenario_spec
from gaemi.clients.sim.scenario.params import EtfProductParams, Scenario
from gaemi.clients.sim.scenario.path import DayPlan, build_days, local_midnight_ns
from gaemi.engine.codes import RejectReason
from gaemi.gateway.exchange import Exchange
from gaemi.gateway.sessions import Limits
from gaemi.risk import commands as C
from gaemi.risk.calendar import NS_PER_SECOND
from gaemi.risk.events import (
    Adl,
    BadDebt,
    Fill,
    FundingSettled,
    InsuranceTakeover,
    Liquidation,
    Rejected,
)
from gaemi.risk.markets import UNIT
from gaemi.risk.venue import Venue

__all__ = ["run"]

_UNLIMITED = Limits(requests_per_second=10**9, orders_per_second=10**9)  # the driver's pace
_RECORDED = (Fill, Liquidation, InsuranceTakeover, Adl, BadDebt, FundingSettled)
_DEPTH_LEVELS = 200
_DEPTH_BAND_PPM = 50_000  # a Sample's depth counts levels within 5% of the mark


def run(scenario: Scenario, *, book: str = "auto", progress: bool = True,
        check_every_command: bool = False) -> RunRecord:
    """Run ``scenario`` and return its RunRecord (clients/sim/cascade/record.py).

    ``book``: "auto", "compiled" or "reference". ``progress``: a rich progress bar on stderr.
    ``check_every_command``: ``Venue.check_invariants()`` after every command (slow: tests).
    """
    return _Driver(scenario, book, check_every_command).run(progress)


class _Driver:
    """The Api the agents use (clients/sim/scenario/agents.py) and the loop that runs them."""

    def __init__(self, scenario: Scenario, book: str, check_every_command: bool) -> None:
        self.scenario = scenario
        self.spec = spec = scenario_spec(scenario)
        self.symbol = spec.symbol
        self.mult = spec.multiplier
        self.days = build_days(spec, scenario.path, scenario.shocks, scenario.market.usdkrw,
                               f"{scenario.seed}:path")
        self.venue = Venue([spec], book=book, start_ts=self.days[0].window_start)
        self.exchange = Exchange(self.venue, {}, limits=_UNLIMITED, observer=self._observe)
        self.wire = InProcess(self.exchange, lambda: self.venue.time)
        self.book_name = book
        self.check_every_command = check_every_command
        self.view = View(self.days[0].window_start, self.days[0].prev_close)
        self.record = RunRecord(scenario.name, scenario.seed, spec.symbol, spec, {})
        self.rejections: Counter[str] = Counter()
        self.conservation_ok = True
        self.problems: list[str] = []
        self._heap: list[tuple[int, int, Callable[[Any], None], Any]] = []
        self._seq = 0
        self._retail: dict[int, RetailCohort] = {}  # retail account -> its cohort
        self._fills: list[tuple[int, dict[str, Any]]] = []  # resting retail orders that traded
        self._liq_window: deque[tuple[int, float]] = deque()
        self._liq_sum = 0.0
        self._hi: deque[tuple[int, int]] = deque()  # monotonic deques of the underlying
        self._lo: deque[tuple[int, int]] = deque()
        self._index = 0  # the last index the oracle published
        self.broker: Broker | None = None  # the margin-loan regime's (broker.py)

    # -- the Api of the agents -----------------------------------------------------------------

    def session(self, account_id: int, channels: tuple[str, ...] = ()) -> Session:
        return _DriverSession(self, self.wire.session(account_id, channels))

    def deposit(self, account_id: int, amount: int) -> None:
        events = self._submit(C.Deposit(account_id, amount))
        if events and type(events[0]) is Rejected:
            raise RuntimeError(f"deposit of {amount} to {account_id} refused: {events[0]}")
        self.record.deposits[account_id] = self.record.deposits.get(account_id, 0) + amount

    def at(self, ts: int, action: Callable[[Any], None], arg: Any) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (ts, self._seq, action, arg))

    def session_after(self, ts: int, seconds: float) -> int | None:
        """The time ``seconds`` of session time after ``ts`` (None: after the last close)."""
        left = int(seconds * NS_PER_SECOND)
        for day in self.days:
            if ts >= day.close_ts:
                continue
            start = max(ts, day.open_ts)
            if start + left < day.close_ts:
                return _to_grid(start + left, day, self.scenario.path.step_s)
            left -= day.close_ts - start
        return None

    def register(self, account_id: int, cohort: Cohort, owner: Any) -> None:
        if account_id in self.record.cohorts:
            raise ValueError(f"account {account_id} registered twice")
        self.record.cohorts[account_id] = cohort
        if isinstance(owner, RetailCohort):
            self._retail[account_id] = owner

    # -- commands and events -------------------------------------------------------------------

    def _submit(self, command: Any) -> list[Any]:
        """A command of the driver's own (time, oracle, money), then the notices it made."""
        events = self.exchange.apply(command)
        self._notices(())
        return events

    def _observe(self, command: Any, events: list[Any]) -> None:
        """Every command the venue runs, the agents' and the driver's: the run's record."""
        self.record.commands += 1
        if self.check_every_command:
            self._check(f"after command {self.record.commands} ({type(command).__name__})")
        ts = self.venue.time
        out = self.record.events
        for e in events:
            cls = type(e)
            if cls is Fill:
                if e.liquidation_id is not None:
                    out.append((ts, e))
            elif cls is Rejected:
                self.rejections[RejectReason(e.reason).name] += 1
            elif cls in _RECORDED:
                out.append((ts, e))
                if cls is Liquidation:
                    usd = e.qty * e.price * self.mult / UNIT
                    self._liq_window.append((ts, usd))
                    self._liq_sum += usd

    def _notices(self, own: Iterable[tuple[InProcessSession, dict[str, Any]]]) -> None:
        """Hand out what the accounts' private channels said during the last request (its
        own session's pushes and everyone else's): liquidation notices now, the fills of
        resting retail orders at the end of the step."""
        liquidated = []
        for session, m in [*own, *self.wire.take()]:
            channel = m.get("ch")
            if channel == "account" and m["data"]["type"] == "liquidation":
                liquidated.append(session.account_id)
            elif channel == "fills" and m["data"]["role"] == "maker" \
                    and session.account_id in self._retail:  # a dip order's, or the broker's
                self._fills.append((session.account_id, m["data"]))
        for aid in liquidated:
            cohort = self._retail.get(aid)
            if cohort is not None:
                cohort.on_liquidated(aid)

    def _check(self, where: str) -> None:
        try:
            self.venue.check_invariants()
        except Exception as exc:  # a broken invariant is a defect: record it, say it
            self.conservation_ok = False
            self.problems.append(f"{where}: {exc}")
            if self.check_every_command:
                raise

    # -- the run -----------------------------------------------------------------------------

    def _setup(self) -> None:
        s = self.scenario
        agents_rng = random.Random(f"{s.seed}:agents")
        venue = self.venue
        self._submit(C.SetIndexPrice(self.symbol, self.days[0].prev_close))
        self._index = self.days[0].prev_close
        next_id = 1
        quoters: list[Any] = []
        for i in range(s.market_makers.count):
            quoters.append(MarketMaker(s.market_makers, next_id, i, self))
            next_id += 1
        for _ in range(s.arbitrageurs.count):
            quoters.append(Arbitrageur(s.arbitrageurs, next_id, self))
            next_id += 1
        products = s.etf.products if s.etf.enabled else ()
        etf_id = next_id
        next_id += len(products)
        noise = []
        for _ in range(s.noise.count):
            noise.append(NoiseTrader(s.noise, next_id, agents_rng, self, venue.time))
            next_id += 1
        self.cohorts = []
        loan = s.margin_loan if s.regime == "margin-loan" else None
        for role, params in (("ant", s.ants), ("inverse", s.inverse)):
            arrivals = self._arrivals(params.count, params.last_day_share, agents_rng)
            self.cohorts.append(RetailCohort(params, role, next_id, arrivals, agents_rng, self,
                                             loan))
            next_id += params.count
        if loan is not None:
            self.broker = Broker(loan, s.seed, venue, self.symbol, self.cohorts, self.deposit)
        ant_deposits = self.cohorts[0].total_deposits / UNIT
        self.etfs = [EtfRebalancer(p, etf_id + i, p.aum_ratio * s.etf.aum_scale * ant_deposits,
                                   self, _hedge_closes(p, i, self.days), s.path.step_s)
                     for i, p in enumerate(products)]
        for agent in quoters + noise + self.etfs:
            agent.start()
        self.quoters = quoters
        self.noise = noise

    def _arrivals(self, count: int, last_day_share: float, rng: random.Random) -> list[int]:
        """Arrival times, uniform over the session seconds; ``last_day_share`` of them on the
        last day (all of them if only one day is simulated)."""
        step = self.scenario.path.step_s
        earlier, last = self.days[:-1], self.days[-1]
        out = []
        for _ in range(count):
            pool = [last] if not earlier or rng.random() < last_day_share else earlier
            seconds = [(d.close_ts - d.open_ts) // NS_PER_SECOND for d in pool]
            k = rng.randrange(sum(seconds))
            for d, n in zip(pool, seconds, strict=True):
                if k < n:
                    out.append(_to_grid(d.open_ts + k * NS_PER_SECOND, d, step))
                    break
                k -= n
        return out

    def run(self, progress: bool) -> RunRecord:
        self._setup()
        s = self.scenario
        step = s.path.step_s * NS_PER_SECOND
        total = sum((d.window_end - d.window_start) // step + 1 for d in self.days)
        bar = _Progress(s.name, total) if progress else None
        next_check = self.days[0].window_start + s.run.check_every_s * NS_PER_SECOND
        try:
            for n, day in enumerate(self.days):  # the first step's AdvanceTime jumps the night
                self.view.ref = day.prev_close  # the underlying is closed until the open
                t = day.window_start
                while t <= day.window_end:
                    self._step(t, day, n)
                    if t >= next_check:
                        self._check(f"at {t}")
                        next_check = t + s.run.check_every_s * NS_PER_SECOND
                    t += step
                    if bar is not None:
                        bar.advance(t, day)
        finally:
            if bar is not None:
                bar.close()
        self._check("at the end")
        return self._finish()

    def _step(self, t: int, day: DayPlan, n: int) -> None:
        """One step of day number ``n``."""
        s = self.scenario
        view = self.view
        self._submit(C.AdvanceTime(t))
        view.t = t
        in_session = day.open_ts <= t < day.close_ts
        first_step = in_session and t - s.path.step_s * NS_PER_SECOND < day.open_ts
        # the session's last step publishes the real close, whatever the step
        last_step = in_session and t + s.path.step_s * NS_PER_SECOND >= day.close_ts
        if last_step or t >= day.close_ts:
            view.ref = day.close
        elif in_session:
            view.ref = day.path[(t - day.open_ts) // NS_PER_SECOND]
        self._stress(t, view.ref)
        view.mm_withdrawal = any(a <= t < b for a, b in day.withdrawals)
        due = [q for q in self.quoters if q.due(view)]
        for q in due:
            if q.quoted:
                q.pull()
        for q in due:
            q.quote(view)
        if in_session and view.ref != self._index:
            k = (t - day.open_ts) // NS_PER_SECOND
            if (k % s.path.oracle_step_s == 0 or last_step) and \
                    not any(a <= t < b for a, b in day.freezes):
                self._submit(C.SetIndexPrice(self.symbol, view.ref))
                self._index = view.ref
        self._refresh(view)
        broker = self.broker
        if broker is not None and first_step:  # top-ups and forced sales at the open
            broker.at_open(n)
            self._refresh(view)
        for etf in self.etfs:
            etf.on_step(view, n, day.prev_close)
        heap = self._heap
        while heap and heap[0][0] <= t:
            _, _, action, arg = heapq.heappop(heap)
            action(arg)
        self._refresh(view)
        for cohort in self.cohorts:
            cohort.on_step(view)
        while self._fills:  # may rest new orders, which may trade again
            fills, self._fills = self._fills, []
            for aid, fill in fills:
                if broker is not None and broker.owns(fill["orderId"]):
                    broker.on_fill(aid, fill)
                else:
                    self._retail[aid].on_fill(aid, fill)
        if broker is not None and last_step:  # the broker values its accounts at the close
            broker.at_close(n)
        if (t - day.window_start) % (s.run.sample_s * NS_PER_SECOND) == 0:
            self._sample(t)

    def _refresh(self, view: View) -> None:
        m = self.venue.market(self.symbol)
        view.mark, view.last, view.best_bid, view.best_ask = \
            m.mark, m.last_price, m.best_bid, m.best_ask

    def _stress(self, t: int, ref: int) -> None:
        view = self.view
        window = self.scenario.market_makers.stress_window_s * NS_PER_SECOND
        hi, lo = self._hi, self._lo
        while hi and hi[-1][1] <= ref:
            hi.pop()
        hi.append((t, ref))
        while lo and lo[-1][1] >= ref:
            lo.pop()
        lo.append((t, ref))
        while hi[0][0] <= t - window:
            hi.popleft()
        while lo[0][0] <= t - window:
            lo.popleft()
        view.stress_bps = (hi[0][1] - lo[0][1]) * 10_000 / ref
        liq = self._liq_window
        while liq and liq[0][0] <= t - window:
            self._liq_sum -= liq.popleft()[1]
        if not liq:
            self._liq_sum = 0.0
        view.liquidated_usd = self._liq_sum

    def _sample(self, t: int) -> None:
        m = self.venue.market(self.symbol)
        bid_depth = ask_depth = 0
        if m.mark is not None:
            bids, asks = self.venue.book(self.symbol).depth(_DEPTH_LEVELS)
            floor = m.mark - m.mark * _DEPTH_BAND_PPM // 1_000_000
            ceiling = m.mark + m.mark * _DEPTH_BAND_PPM // 1_000_000
            for price, size in bids:
                if price < floor:
                    break
                bid_depth += size
            for price, size in asks:
                if price > ceiling:
                    break
                ask_depth += size
        self.record.samples.append(Sample(t, m.index, m.mark, m.last_price, m.best_bid,
                                          m.best_ask, m.open_interest, m.insurance_fund,
                                          bid_depth, ask_depth))

    def _finish(self) -> RunRecord:
        venue, record, s = self.venue, self.record, self.scenario
        for aid in venue.accounts():
            record.final_equity[aid] = venue.account(aid).equity
        market = venue.market(self.symbol)
        record.insurance_fund_start = self.spec.insurance_fund
        record.insurance_fund_end = market.insurance_fund
        record.state_hash = venue.state_hash()
        deposits_match = sum(record.deposits.values()) + self.spec.insurance_fund == \
            venue.net_deposits
        if not deposits_match:
            self.problems.append("deposits recorded by the driver differ from the venue's")
        record.conservation_ok = self.conservation_ok and deposits_match
        config = _plain(dataclasses.asdict(s))
        config["run_facts"] = {
            "book": self.book_name,
            "days": [{"date": d.date, "prev_close_ticks": d.prev_close, "open_ticks": d.open,
                      "close_ticks": d.close, "open_ts": d.open_ts, "close_ts": d.close_ts}
                     for d in self.days],
            "etf_aum_usd": sum(etf.aum for etf in self.etfs),
            "bad_debt": venue.bad_debt,
            "insurance_position_lots": market.insurance_position,
            "agent_stats": self._agent_stats(),
            **({"broker": self.broker.facts()} if self.broker is not None else {}),
            "rejections": dict(sorted(self.rejections.items())),
            "problems": self.problems,
        }
        record.config = config
        return record

    def _agent_stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for cohort in self.cohorts:
            out[cohort.role] = dict(cohort.stats)
        for role, agents in (("market_maker", [q for q in self.quoters
                                               if isinstance(q, MarketMaker)]),
                             ("arbitrageur", [q for q in self.quoters
                                              if isinstance(q, Arbitrageur)])):
            total: Counter[str] = Counter()
            for a in agents:
                total.update(a.stats)
            out[role] = dict(total)
        if self.etfs:
            out["etf"] = {etf.p.name: dict(etf.stats) for etf in self.etfs}
        return out


def _hedge_closes(product: EtfProductParams, index: int, days: list[DayPlan]) -> list[int]:
    """The product's close (ns) on each simulated day; its hedging window must lie inside the
    day's simulated window (ValueError naming the key to change)."""
    closes = []
    for day in days:
        close = local_midnight_ns(day.date, product.zone) + \
            product.close_seconds * NS_PER_SECOND
        start = close - product.window_s * NS_PER_SECOND
        if start < day.window_start or close - NS_PER_SECOND > day.window_end:
            need = (close - day.close_ts) // NS_PER_SECOND
            raise ValueError(
                f"etf.products[{index}] ({product.name}) hedges in the {product.window_s} s "
                f"before {product.close} {product.zone}, outside the simulated window of "
                f"{day.date}" + (f"; set path.post_close_s >= {need}" if need > 0 else "")
                + " or leave the product out")
        closes.append(close)
    return closes


def _to_grid(ts: int, day: DayPlan, step_s: int) -> int:
    """``ts`` moved up to the next step of the day's window."""
    step = step_s * NS_PER_SECOND
    return day.window_start + -(-(ts - day.window_start) // step) * step


def _plain(value: Any) -> Any:
    """Tuples as lists, recursively: JSON-ready."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class _Progress:
    """A rich progress bar over simulated steps, refreshed every few hundred steps."""

    def __init__(self, name: str, total: int) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(), transient=False)
        self.task = self.progress.add_task(name, total=total)
        self.name = name
        self.pending = 0
        self.progress.start()

    def advance(self, t: int, day: DayPlan) -> None:
        self.pending += 1
        if self.pending >= 500:
            self.progress.update(self.task, advance=self.pending,
                                 description=f"{self.name} {day.date}")
            self.pending = 0

    def close(self) -> None:
        self.progress.update(self.task, advance=self.pending)
        self.progress.stop()


class _DriverSession(Session):
    """An agent's session: the in-process one, after which the driver hands out the notices
    the request caused (a defect in the exchange is the simulator's defect: it raises)."""

    __slots__ = ("driver", "inner", "account_id")

    def __init__(self, driver: _Driver, inner: InProcessSession) -> None:
        self.driver = driver
        self.inner = inner
        self.account_id = inner.account_id

    def send(self, message: dict[str, Any]) -> Reply:
        reply = self.inner.send(message)
        if reply.code == 9001:
            raise RuntimeError(f"the exchange failed on {message}: {reply.msg}")
        self.driver._notices((self.inner, p) for p in reply.pushes)
        return reply
