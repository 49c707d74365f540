"""Trading sessions of the underlyings and the civil-date arithmetic under them (risk/calendar.py).

Instants are written in UTC with the local time next to them. Seoul is UTC+9 all year. New
York is UTC-5 (EST), or UTC-4 (EDT) from 2026-03-08 07:00 UTC (02:00 EST, the second Sunday
of March) to 2026-11-01 06:00 UTC (02:00 EDT, the first Sunday of November). Sessions open
inclusive and close exclusive: KRX 09:00-15:30 KST = 00:00-06:30 UTC; US regular hours
09:30-16:00 ET = 14:30-21:00 UTC in winter, 13:30-20:00 UTC in summer.

The civil-date functions are checked against hand-computed day numbers and against Python's
proleptic Gregorian ``datetime.date`` as an independent oracle. The venue tests run on both
book implementations and check the session the market reports as time advances.
"""

from __future__ import annotations

from datetime import date

import pytest

from gaemi.risk import AdvanceTime, Venue, preset
from gaemi.risk.calendar import (
    KRX_REGULAR,
    NS_PER_DAY,
    NS_PER_HOUR,
    NS_PER_MINUTE,
    US_REGULAR,
    Session,
    civil_from_days,
    days_from_civil,
    utc_offset_ns,
)
from gaemi.risk.events import TradingStatusChanged


def ts(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return (days_from_civil(year, month, day) * NS_PER_DAY + hour * NS_PER_HOUR
            + minute * NS_PER_MINUTE + second * 10**9)


# -- civil dates ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("civil", "days"),
    [
        ((1970, 1, 1), 0),
        ((1969, 12, 31), -1),
        ((2000, 2, 29), 11_016),  # 2000 is a leap year (divisible by 400)
        ((2000, 3, 1), 11_017),
        ((1900, 2, 28), -25_509),  # 1900 is not (divisible by 100)
        ((1900, 3, 1), -25_508),
        ((2026, 1, 1), 20_454),  # 56 years * 365 + 14 leap days (1972 .. 2024)
        ((2026, 3, 8), 20_520),  # + 31 + 28 + 7
        ((2026, 11, 1), 20_758),  # + 304
        ((2100, 3, 1), 47_541),
        ((1, 1, 1), -719_162),
        ((9999, 12, 31), 2_932_896),
    ],
)
def test_days_from_civil_and_back(civil: tuple[int, int, int], days: int) -> None:
    # Arrange
    year, month, day = civil

    # Act
    counted = days_from_civil(year, month, day)
    back = civil_from_days(days)

    # Assert
    assert counted == days
    assert back == civil


def test_civil_round_trip_agrees_with_the_proleptic_gregorian_calendar() -> None:
    # Arrange: every 997th day from year 1 to 9999, and every day of 1899-2101 (the 1900 and
    # 2100 non-leap centuries, the 2000 leap century)
    epoch = date(1970, 1, 1).toordinal()
    sampled = list(range(-719_162, 2_932_897, 997))
    dense = list(range(days_from_civil(1899, 1, 1), days_from_civil(2101, 12, 31) + 1))

    # Act
    mismatches = []
    for days in sampled + dense:
        civil = civil_from_days(days)
        oracle = date.fromordinal(days + epoch)
        if civil != (oracle.year, oracle.month, oracle.day) or days_from_civil(*civil) != days:
            mismatches.append(days)

    # Assert
    assert mismatches == []
    # 203 years * 365 = 74_095 days + 49 leap days (1904 .. 2096 every 4th; 1900, 2100 are not)
    assert len(dense) == 74_144


@pytest.mark.parametrize(
    ("instant", "hours"),
    [
        (ts(2026, 3, 8, 6, 59, 59), -5),  # 01:59:59 EST
        (ts(2026, 3, 8, 7), -4),  # 02:00 EST becomes 03:00 EDT
        (ts(2026, 7, 1, 12), -4),
        (ts(2026, 11, 1, 5, 59, 59), -4),  # 01:59:59 EDT
        (ts(2026, 11, 1, 6), -5),  # 02:00 EDT becomes 01:00 EST
        (ts(2026, 12, 31, 23), -5),
    ],
)
def test_new_york_offset_changes_at_the_us_dst_instants(instant: int, hours: int) -> None:
    # Act
    offset = utc_offset_ns("America/New_York", instant)

    # Assert
    assert offset == hours * NS_PER_HOUR
    assert utc_offset_ns("Asia/Seoul", instant) == 9 * NS_PER_HOUR


# -- sessions -----------------------------------------------------------------------------------


US_INSTANTS = [
    # Friday 2026-03-06, EST
    (ts(2026, 3, 6, 14, 29), False),  # 09:29
    (ts(2026, 3, 6, 14, 30), True),  # 09:30
    (ts(2026, 3, 6, 20, 59), True),  # 15:59
    (ts(2026, 3, 6, 21, 0), False),  # 16:00
    # the weekend, either side of the DST switch
    (ts(2026, 3, 7, 15), False),  # Saturday 10:00 EST
    (ts(2026, 3, 8, 15), False),  # Sunday 11:00 EDT
    # Monday 2026-03-09, EDT: an hour earlier in UTC
    (ts(2026, 3, 9, 13, 29), False),  # 09:29 EDT
    (ts(2026, 3, 9, 13, 30), True),  # 09:30 EDT (08:30 under EST)
    (ts(2026, 3, 9, 19, 59), True),  # 15:59 EDT
    (ts(2026, 3, 9, 20, 0), False),  # 16:00 EDT (15:00 under EST)
    # Friday 2026-10-30 (EDT) and Monday 2026-11-02 (EST again)
    (ts(2026, 10, 30, 13, 30), True),  # 09:30 EDT
    (ts(2026, 10, 30, 20, 0), False),  # 16:00 EDT
    (ts(2026, 11, 1, 15), False),  # Sunday
    (ts(2026, 11, 2, 13, 30), False),  # 08:30 EST
    (ts(2026, 11, 2, 14, 29), False),  # 09:29 EST
    (ts(2026, 11, 2, 14, 30), True),  # 09:30 EST
    (ts(2026, 11, 2, 20, 30), True),  # 15:30 EST
    (ts(2026, 11, 2, 21, 0), False),  # 16:00 EST
]

KRX_INSTANTS = [
    (ts(2026, 3, 8, 0), False),  # Sunday 09:00 KST
    (ts(2026, 3, 8, 23, 59), False),  # Monday 08:59 KST
    (ts(2026, 3, 9, 0), True),  # Monday 09:00 KST
    (ts(2026, 3, 9, 6, 29), True),  # 15:29 KST
    (ts(2026, 3, 9, 6, 30), False),  # 15:30 KST
    (ts(2026, 3, 13, 6, 0), True),  # Friday 15:00 KST
    (ts(2026, 3, 13, 15, 30), False),  # Saturday 00:30 KST
    (ts(2026, 3, 14, 2), False),  # Saturday 11:00 KST
    (ts(2026, 3, 15, 2), False),  # Sunday 11:00 KST
]


@pytest.mark.parametrize(("instant", "expected"), US_INSTANTS)
def test_us_regular_hours_follow_new_york_daylight_saving(
        impl: str, instant: int, expected: bool) -> None:
    # Act
    venue = Venue([preset("NVDA-PERP")], book=impl, start_ts=instant)

    # Assert
    assert US_REGULAR.is_open(instant) is expected
    assert venue.market("NVDA-PERP").session_open is expected
    venue.check_invariants()


@pytest.mark.parametrize(("instant", "expected"), KRX_INSTANTS)
def test_krx_regular_hours_in_seoul_time(impl: str, instant: int, expected: bool) -> None:
    # Act
    venue = Venue([preset("SKHYNIX-PERP")], book=impl, start_ts=instant)

    # Assert
    assert KRX_REGULAR.is_open(instant) is expected
    assert venue.market("SKHYNIX-PERP").session_open is expected
    venue.check_invariants()


def test_the_venue_reports_each_session_change_as_time_advances(impl: str) -> None:
    # Arrange: NVDA (US) and SKHYNIX (KRX) from Sunday 2026-03-08 23:00 UTC
    venue = Venue([preset("NVDA-PERP"), preset("SKHYNIX-PERP")], book=impl,
                  start_ts=ts(2026, 3, 8, 23))
    changes = []

    # Act: step through Monday 2026-03-09 (EDT: the US opens 13:30 UTC, closes 20:00)
    for instant in (ts(2026, 3, 9, 0), ts(2026, 3, 9, 6, 29), ts(2026, 3, 9, 6, 30),
                    ts(2026, 3, 9, 13, 29), ts(2026, 3, 9, 13, 30), ts(2026, 3, 9, 19, 59),
                    ts(2026, 3, 9, 20, 0)):
        events = venue.submit(AdvanceTime(instant))
        venue.check_invariants()
        changes += [(instant, e.symbol, e.session_open) for e in events
                    if isinstance(e, TradingStatusChanged)]

    # Assert: KRX opens at 00:00 and closes at 06:30 UTC; the US opens at 13:30 and closes at
    # 20:00 UTC (an hour earlier than in winter)
    assert changes == [
        (ts(2026, 3, 9, 0), "SKHYNIX-PERP", True),
        (ts(2026, 3, 9, 6, 30), "SKHYNIX-PERP", False),
        (ts(2026, 3, 9, 13, 30), "NVDA-PERP", True),
        (ts(2026, 3, 9, 20, 0), "NVDA-PERP", False),
    ]
    assert venue.market("NVDA-PERP").session_open is False
    assert venue.market("SKHYNIX-PERP").session_open is False


def test_a_session_validates_its_fields() -> None:
    # Act + Assert
    with pytest.raises(ValueError, match="unknown time zone"):
        Session("Europe/London", 8 * 60, 16 * 60 + 30)
    with pytest.raises(ValueError, match="opens before it closes"):
        Session("Asia/Seoul", 15 * 60, 9 * 60)
    with pytest.raises(ValueError, match="weekdays"):
        Session("Asia/Seoul", 9 * 60, 15 * 60, weekdays=(7,))
    # a Saturday-only session (weekday 5) is open on Saturday 2026-03-14 11:00 KST only
    saturday = Session("Asia/Seoul", 9 * 60, 15 * 60, weekdays=(5,))
    assert saturday.is_open(ts(2026, 3, 14, 2)) is True
    assert saturday.is_open(ts(2026, 3, 13, 2)) is False
