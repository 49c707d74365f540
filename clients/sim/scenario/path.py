"""The scenario's clock and index path: real daily bars, intraday paths generated around them.

Theory of operation
-------------------
The underlying trades only in its session (KRX 09:00-15:30 KST, US 09:30-16:00 ET:
risk/calendar.py); the perp trades around the clock. For each simulated trading day the
driver runs a *window*: ``pre_open_s`` before the open to ``post_close_s`` after the close,
one ``AdvanceTime`` per ``step_s``; between windows it jumps (the underlying is closed, the
index frozen, no funding: the preset's ``funding_when_closed`` is False).

Inside the session the index follows a path that starts at the day's real open and lands on
its real close, both converted exactly to USD ticks (prices.to_ticks). In between it is a
Brownian bridge in log price, one step a second, with the day's own volatility estimated from
its high and low (Parkinson: sigma_day^2 = ln(H/L)^2 / (4 ln 2)) times ``vol_scale``::

    x(k) = ln(open) + (k / (n-1)) (ln(close) - ln(open)) + W(k) - (k / (n-1)) W(n-1) + s(k)

where W is a random walk with N(0, sigma_day^2 / n) steps from ``random.Random(seed)``, n the
session's seconds, and s(k) the injected shocks (0 at both ends). Ticks are ``round(exp(x))``;
the first and last points are set to the exact open and close. Outside the session nothing is
published, so the venue's index stays at the last close and the next open is a gap (the real
one, plus any ``gap`` shock).

The path uses floating point (random.gauss, exp, log) in the client only; the venue sees
integer ticks. Within one platform the same seed gives the same ticks.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass
from datetime import date
from fractions import Fraction

from gaemi.clients.marketdata.prices import SERIES_OF, DailyBar, currency_of, load_series, to_ticks
from gaemi.clients.sim.scenario.params import PathParams, ShockParams
from gaemi.risk.calendar import NS_PER_DAY, NS_PER_SECOND, days_from_civil, utc_offset_ns
from gaemi.risk.markets import MarketSpec

__all__ = ["DayPlan", "build_days", "local_midnight_ns", "series_for"]


@dataclass(frozen=True, slots=True)
class DayPlan:
    """One simulated trading day: its session in venue time and its index path."""

    date: str
    open_ts: int  # ns, UTC: the session opens (inclusive)
    close_ts: int  # ns: the session closes (exclusive)
    window_start: int  # ns: the driver starts stepping here ...
    window_end: int  # ... and stops here (inclusive)
    prev_close: int  # ticks: the real previous close
    open: int  # ticks: the path's first point (the real open, with any gap shock)
    close: int  # ticks: the real close, the path's last point
    path: tuple[int, ...]  # ticks, one per second of the session: path[k] at open_ts + k s
    freezes: tuple[tuple[int, int], ...]  # [start, end) ns: the oracle publishes nothing
    withdrawals: tuple[tuple[int, int], ...]  # [start, end) ns: market makers pull quotes

    def index_at(self, ts: int) -> int | None:
        """The underlying's price at ``ts`` (None outside the session)."""
        if not self.open_ts <= ts < self.close_ts:
            return None
        return self.path[(ts - self.open_ts) // NS_PER_SECOND]


def series_for(spec: MarketSpec, params: PathParams) -> str:
    if params.series:
        return params.series
    if spec.symbol not in SERIES_OF:
        raise ValueError(f"{spec.symbol}: no default daily series; set path.series")
    return SERIES_OF[spec.symbol]


def local_midnight_ns(day: str, zone: str) -> int:
    d = date.fromisoformat(day)
    utc_midnight = days_from_civil(d.year, d.month, d.day) * NS_PER_DAY
    # the zone's offset at local noon of that day (no DST change happens at noon)
    return utc_midnight - utc_offset_ns(zone, utc_midnight + 12 * 3600 * NS_PER_SECOND)


def build_days(spec: MarketSpec, params: PathParams, shocks: tuple[ShockParams, ...],
               usdkrw: float, seed: int | str) -> list[DayPlan]:
    """The simulated days in order, with their index paths (deterministic in ``seed``)."""
    if spec.session is None:
        raise ValueError(f"{spec.symbol}: scenarios need a market with a session")
    ticker = series_for(spec, params)
    currency = currency_of(ticker)
    rate = Fraction(repr(usdkrw))
    bars = load_series(ticker)
    dates = [b.date for b in bars]
    chosen = [i for i, b in enumerate(bars) if params.first_day <= b.date <= params.last_day]
    for day in (params.first_day, params.last_day):
        if day not in dates:
            raise ValueError(f"{day} is not a trading day of {ticker} "
                             f"(data: {dates[0]} to {dates[-1]})")
    if chosen[0] == 0:
        raise ValueError(f"{params.first_day}: the series has no previous close")
    for shock in shocks:
        if shock.day not in dates[chosen[0]:chosen[-1] + 1]:
            raise ValueError(f"shock on {shock.day}: not a simulated trading day")
    session = spec.session
    rng = random.Random(seed)
    plans = []
    for i in chosen:
        bar, prev = bars[i], bars[i - 1]
        midnight = local_midnight_ns(bar.date, session.zone)
        open_ts = midnight + session.open_min * 60 * NS_PER_SECOND
        close_ts = midnight + session.close_min * 60 * NS_PER_SECOND
        n = (close_ts - open_ts) // NS_PER_SECOND
        day_shocks = [s for s in shocks if s.day == bar.date]
        ticks = [to_ticks(p, currency, rate, spec.tick_size) for p in (prev.close, bar.open,
                                                                       bar.close)]
        prev_close, real_open, close = ticks
        opening = real_open
        for s in day_shocks:
            if s.kind == "gap":
                opening = max(1, round(opening * (1 + s.pct / 100)))
        path = _bridge(opening, close, n, _sigma_day(bar) * params.vol_scale, rng,
                       [s for s in day_shocks if s.kind == "crash"], midnight, open_ts)
        plans.append(DayPlan(bar.date, open_ts, close_ts,
                             open_ts - params.pre_open_s * NS_PER_SECOND,
                             close_ts + params.post_close_s * NS_PER_SECOND,
                             prev_close, opening, close, tuple(path),
                             _spans(day_shocks, "oracle_freeze", midnight),
                             _spans(day_shocks, "mm_withdrawal", midnight)))
    for a, b in itertools.pairwise(plans):
        if a.window_end >= b.window_start:
            raise ValueError(f"{a.date} and {b.date}: the pre-open and post-close windows "
                             "overlap; shorten them")
    return plans


def _spans(shocks: list[ShockParams], kind: str, midnight: int) -> tuple[tuple[int, int], ...]:
    """[start, end) in venue time of the day's shocks of ``kind``."""
    return tuple((midnight + s.at_seconds * NS_PER_SECOND,
                  midnight + (s.at_seconds + s.duration_s) * NS_PER_SECOND)
                 for s in shocks if s.kind == kind)


def _sigma_day(bar: DailyBar) -> float:
    """Parkinson's estimate of the day's log-price volatility from its high and low."""
    if bar.high <= bar.low:
        return 0.0
    return math.log(bar.high / bar.low) / math.sqrt(4 * math.log(2))


def _bridge(first: int, last: int, n: int, sigma_day: float, rng: random.Random,
            crashes: list[ShockParams], midnight: int, open_ts: int) -> list[int]:
    if n == 1:
        return [last]
    step = sigma_day / math.sqrt(n)
    walk = [0.0] * n
    w = 0.0
    gauss = rng.gauss
    for k in range(1, n):
        w += gauss(0.0, step)
        walk[k] = w
    x0, x1 = math.log(first), math.log(last)
    end = walk[-1]
    shock = [0.0] * n
    for c in crashes:
        start = (midnight + c.at_seconds * NS_PER_SECOND - open_ts) // NS_PER_SECOND
        if not 0 < start < n - 1:
            raise ValueError(f"crash at {c.at} on {c.day}: outside the session")
        depth = math.log(1 + c.pct / 100)
        fall_end = start + c.duration_s
        recovery = c.recovery_s or (n - 1 - fall_end)
        if recovery <= 0 or fall_end + recovery > n - 1:
            raise ValueError(f"crash at {c.at} on {c.day}: the fall and its recovery must end "
                             "by the close (the path lands on the real close)")
        for k in range(start, n):
            if k < fall_end:
                shock[k] += depth * (k - start) / (fall_end - start)
            elif k < fall_end + recovery:
                shock[k] += depth * (1 - (k - fall_end) / recovery)
    out = []
    span = n - 1
    for k in range(n):
        f = k / span
        x = x0 + f * (x1 - x0) + walk[k] - f * end + shock[k]
        out.append(max(1, round(math.exp(x))))
    out[0], out[-1] = first, last
    return out
