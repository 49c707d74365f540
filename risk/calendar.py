"""Trading sessions of the underlyings, in integer arithmetic on venue time.

Theory of operation
-------------------
A single-stock perp trades around the clock, but its underlying does not: the index is only
discovered while the stock's home market is open (KRX 09:00-15:30 Asia/Seoul, US regular
hours 09:30-16:00 America/New_York). ``Session`` says whether the underlying is open at a
venue timestamp (nanoseconds since the Unix epoch, UTC), which drives the index policy and
funding gating in ``risk.venue``.

Local time is computed from integer days: the civil-date conversion below is the standard
days-from-civil / civil-from-days arithmetic on the proleptic Gregorian calendar. Seoul has
no daylight saving (UTC+9). New York is UTC-5, or UTC-4 from the second Sunday of March
02:00 local to the first Sunday of November 02:00 local (the US rule since 2007).

Not modelled: exchange holidays and half days (a session opens every weekday), auctions,
pre/post-market and overnight ATS sessions. The venue never reads a clock: time is the
argument.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["NS_PER_SECOND", "NS_PER_MINUTE", "NS_PER_HOUR", "NS_PER_DAY", "Session",
           "ZONES", "civil_from_days", "days_from_civil", "utc_offset_ns", "KRX_REGULAR",
           "US_REGULAR"]

NS_PER_SECOND = 1_000_000_000
NS_PER_MINUTE = 60 * NS_PER_SECOND
NS_PER_HOUR = 60 * NS_PER_MINUTE
NS_PER_DAY = 24 * NS_PER_HOUR

# the time zones utc_offset_ns knows (venue sessions, the hedging hours of ETF products)
ZONES = ("Asia/Seoul", "Asia/Hong_Kong", "America/New_York")


def days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a Gregorian date."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def civil_from_days(days: int) -> tuple[int, int, int]:
    """The Gregorian (year, month, day) of a count of days since 1970-01-01."""
    days += 719468
    era = days // 146097
    doe = days - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + (3 if mp < 10 else -9)
    return yoe + era * 400 + (month <= 2), month, day


def _weekday(days: int) -> int:
    """Monday = 0 ... Sunday = 6 (1970-01-01 was a Thursday)."""
    return (days + 3) % 7


def _nth_sunday(year: int, month: int, n: int) -> int:
    """Days since the epoch of the n-th Sunday of a month."""
    first = days_from_civil(year, month, 1)
    return first + (6 - _weekday(first)) % 7 + 7 * (n - 1)


def utc_offset_ns(zone: str, ts_ns: int) -> int:
    """The zone's offset from UTC at ``ts_ns``, in nanoseconds (east positive)."""
    if zone == "Asia/Seoul":
        return 9 * NS_PER_HOUR
    if zone == "Asia/Hong_Kong":  # no daylight time since 1979
        return 8 * NS_PER_HOUR
    if zone == "America/New_York":
        year = civil_from_days(ts_ns // NS_PER_DAY)[0]
        # 02:00 EST = 07:00 UTC starts daylight time; 02:00 EDT = 06:00 UTC ends it
        start = _nth_sunday(year, 3, 2) * NS_PER_DAY + 7 * NS_PER_HOUR
        end = _nth_sunday(year, 11, 1) * NS_PER_DAY + 6 * NS_PER_HOUR
        return (-4 if start <= ts_ns < end else -5) * NS_PER_HOUR
    raise ValueError(f"unknown time zone {zone!r} (known: {', '.join(ZONES)})")


@dataclass(frozen=True, slots=True)
class Session:
    """A weekly trading session in local time: open on ``weekdays`` from ``open_min`` to
    ``close_min`` minutes after local midnight (open inclusive, close exclusive)."""

    zone: str
    open_min: int
    close_min: int
    weekdays: tuple[int, ...] = (0, 1, 2, 3, 4)
    name: str = ""

    def __post_init__(self) -> None:
        if self.zone not in ZONES:
            raise ValueError(f"unknown time zone {self.zone!r}")
        if not 0 <= self.open_min < self.close_min <= 24 * 60:
            raise ValueError("a session opens before it closes, within one local day")
        if not self.weekdays or any(not 0 <= d <= 6 for d in self.weekdays):
            raise ValueError("weekdays are 0 (Monday) to 6 (Sunday)")

    def is_open(self, ts_ns: int) -> bool:
        """Whether the underlying trades at ``ts_ns`` (UTC nanoseconds)."""
        local = ts_ns + utc_offset_ns(self.zone, ts_ns)
        days, in_day = divmod(local, NS_PER_DAY)
        minute = in_day // NS_PER_MINUTE
        return _weekday(days) in self.weekdays and self.open_min <= minute < self.close_min


KRX_REGULAR = Session("Asia/Seoul", 9 * 60, 15 * 60 + 30, name="KRX regular 09:00-15:30 KST")
US_REGULAR = Session("America/New_York", 9 * 60 + 30, 16 * 60,
                     name="US regular 09:30-16:00 ET")
