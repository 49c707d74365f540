"""The embedded daily series and the intraday index path built around them.

Numbers checked by hand: SK Hynix closed at 1,816,000 KRW on 2026-07-27, opened at 1,662,000
and closed at 1,550,000 on 2026-07-28 (clients/marketdata/data/prices/000660.KS.csv.gz). At
1,440 KRW per USD and $0.01 ticks: 1,816,000 / 1,440 = 1,261.1111 -> 126,111 ticks;
1,662,000 / 1,440 = 1,154.1666 -> 115,417; 1,550,000 / 1,440 = 1,076.3888 -> 107,639 (half up).
"""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction
from itertools import pairwise

import pytest

from gaemi.clients.marketdata.prices import SERIES_OF, load_series, to_ticks
from gaemi.clients.sim.scenario.params import PathParams, ShockParams
from gaemi.clients.sim.scenario.path import build_days
from gaemi.risk.calendar import NS_PER_SECOND, utc_offset_ns
from gaemi.risk.markets import PRESETS

SPEC = PRESETS["SKHYNIX-PERP"]
PATH = PathParams()  # 2026-07-27 and 2026-07-28
RATE = 1440.0
SESSION_S = 6 * 3600 + 30 * 60  # KRX 09:00-15:30


@pytest.mark.parametrize("ticker", sorted(SERIES_OF.values()))
def test_the_embedded_series_are_clean(ticker: str) -> None:
    # Act
    bars = load_series(ticker)

    # Assert: a year and more of days, increasing dates, prices that make sense
    assert len(bars) > 300
    assert all(a.date < b.date for a, b in pairwise(bars))
    assert all(b.low <= min(b.open, b.close) and max(b.open, b.close) <= b.high for b in bars)


def test_the_default_crash_day_is_the_real_one() -> None:
    # Arrange
    bars = {b.date: b for b in load_series("000660.KS")}

    # Act
    before, day = bars["2026-07-27"], bars["2026-07-28"]

    # Assert: an 8.5% gap at the open, -14.6% close to close, closing at the day's low
    assert (before.close, day.open, day.close, day.low) == (1_816_000, 1_662_000, 1_550_000,
                                                            1_550_000)
    assert round(float(day.open / before.close - 1) * 100, 2) == -8.48
    assert round(float(day.close / before.close - 1) * 100, 2) == -14.65


def test_prices_convert_to_ticks_rounding_half_up() -> None:
    # Act / Assert
    assert to_ticks(Fraction(1_550_000), "KRW", Fraction(1440), SPEC.tick_size) == 107_639
    assert to_ticks(Fraction(1_662_000), "KRW", Fraction(1440), SPEC.tick_size) == 115_417
    assert to_ticks(Fraction("214.725"), "USD", Fraction(1440), 10_000) == 21_473  # half: up
    assert to_ticks(Fraction("214.7249"), "USD", Fraction(1440), 10_000) == 21_472


def test_the_path_starts_at_the_real_open_and_lands_on_the_real_close() -> None:
    # Act
    days = build_days(SPEC, PATH, (), RATE, "seed")

    # Assert
    assert [d.date for d in days] == ["2026-07-27", "2026-07-28"]
    crash = days[1]
    assert (crash.prev_close, crash.open, crash.close) == (126_111, 115_417, 107_639)
    assert days[0].close == crash.prev_close  # consecutive days chain
    for d in days:
        assert len(d.path) == SESSION_S
        assert (d.path[0], d.path[-1]) == (d.open, d.close)
        assert min(d.path) > 0
        # KRX opens at 09:00 KST = 00:00 UTC; the window runs 30 min before to 15 min after
        assert (d.open_ts + utc_offset_ns("Asia/Seoul", d.open_ts)) % (86_400 * NS_PER_SECOND) \
            == 9 * 3600 * NS_PER_SECOND
        assert d.close_ts - d.open_ts == SESSION_S * NS_PER_SECOND
        assert d.open_ts - d.window_start == PATH.pre_open_s * NS_PER_SECOND


def test_the_path_moves_like_the_days_own_range() -> None:
    # Arrange: Parkinson's sigma of 2026-07-28 from its high 1,674,000 and low 1,550,000
    sigma = math.log(1_674_000 / 1_550_000) / math.sqrt(4 * math.log(2))

    # Act
    path = build_days(SPEC, PATH, (), RATE, "seed")[1].path
    steps = [math.log(b / a) for a, b in pairwise(path)]
    realized = math.sqrt(sum(s * s for s in steps))  # the drift adds only drift^2 / n

    # Assert: the realized volatility of a bridge with that sigma is close to it
    assert 0.8 * sigma < realized < 1.25 * sigma


def test_the_same_seed_gives_the_same_path_and_another_seed_another() -> None:
    # Act
    a = build_days(SPEC, PATH, (), RATE, "one")[1].path
    b = build_days(SPEC, PATH, (), RATE, "one")[1].path
    c = build_days(SPEC, PATH, (), RATE, "two")[1].path

    # Assert
    assert a == b
    assert a != c
    assert (a[0], a[-1]) == (c[0], c[-1])


def test_a_gap_shock_moves_the_open_and_keeps_the_close() -> None:
    # Arrange
    gap = ShockParams(kind="gap", day="2026-07-28", pct=-5.0)

    # Act
    day = build_days(SPEC, PATH, (gap,), RATE, "seed")[1]

    # Assert: 115,417 x 0.95 = 109,646.15 -> 109,646
    assert (day.path[0], day.path[-1]) == (109_646, 107_639)


def test_a_crash_shock_falls_by_its_size_and_recovers_by_the_close() -> None:
    # Arrange: -20% over 300 s from 13:30 KST (16,200 s after the open)
    crash = ShockParams(kind="crash", day="2026-07-28", at="13:30", pct=-20.0, duration_s=300)
    start = (13 * 3600 + 30 * 60) - 9 * 3600

    # Act
    plain = build_days(SPEC, PATH, (), RATE, "seed")[1].path
    shocked = build_days(SPEC, PATH, (crash,), RATE, "seed")[1].path

    # Assert: the same random path, times 0.8 at the bottom, unchanged before and at the end
    assert shocked[:start + 1] == plain[:start + 1]
    assert shocked[start + 300] / plain[start + 300] == pytest.approx(0.8, abs=1e-4)
    assert shocked[-1] == plain[-1] == 107_639


def test_a_crash_that_cannot_recover_by_the_close_is_refused() -> None:
    # Arrange
    crash = ShockParams(kind="crash", day="2026-07-28", at="15:25", pct=-20.0, duration_s=600)

    # Act / Assert
    with pytest.raises(ValueError, match="must end by the close"):
        build_days(SPEC, PATH, (crash,), RATE, "seed")


def test_freeze_and_withdrawal_windows_are_in_venue_time() -> None:
    # Arrange
    shocks = (ShockParams(kind="oracle_freeze", day="2026-07-28", at="09:00", duration_s=600),
              ShockParams(kind="mm_withdrawal", day="2026-07-28", at="10:00:30",
                          duration_s=60))

    # Act
    day = build_days(SPEC, PATH, shocks, RATE, "seed")[1]

    # Assert
    assert day.freezes == ((day.open_ts, day.open_ts + 600 * NS_PER_SECOND),)
    assert day.withdrawals == ((day.open_ts + 3630 * NS_PER_SECOND,
                                day.open_ts + 3690 * NS_PER_SECOND),)


@pytest.mark.parametrize(("first", "message"), [
    ("2026-07-25", "not a trading day"),  # a Saturday
    ("2025-03-19", "no previous close"),  # the file's first day
])
def test_days_the_data_cannot_support_are_refused(first: str, message: str) -> None:
    # Arrange
    params = dataclasses.replace(PATH, first_day=first)

    # Act / Assert
    with pytest.raises(ValueError, match=message):
        build_days(SPEC, params, (), RATE, "seed")
