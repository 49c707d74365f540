"""The real daily series behind a scenario's index path (clients/marketdata/data/prices/README.md).

A row keeps the CSV's decimal text converted exactly (``Fraction``), so the conversion to the
perp's USD ticks is exact arithmetic with one named rounding: KRW names are divided by the
scenario's USD-KRW reference rate (docs/markets.md, "The KRW names"), and every price is
rounded half up to whole ticks.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from importlib import resources

__all__ = ["DailyBar", "SERIES_OF", "currency_of", "load_series", "to_ticks"]

# the daily series each preset market's index follows, by default
SERIES_OF = {
    "SKHYNIX-PERP": "000660.KS",
    "SAMSUNG-PERP": "005930.KS",
    "NVDA-PERP": "NVDA",
    "TSLA-PERP": "TSLA",
}


@dataclass(frozen=True, slots=True)
class DailyBar:
    """One trading day, prices in the listing currency (exact decimals)."""

    date: str  # YYYY-MM-DD, exchange-local
    open: Fraction
    high: Fraction
    low: Fraction
    close: Fraction
    volume: int


def currency_of(ticker: str) -> str:
    """KRW for KRX tickers (``.KS``), else USD."""
    return "KRW" if ticker.endswith(".KS") else "USD"


@lru_cache(maxsize=8)
def load_series(ticker: str) -> tuple[DailyBar, ...]:
    """The embedded daily bars of ``ticker``, oldest first. FileNotFoundError names the
    tickers that exist."""
    folder = resources.files("gaemi.clients.marketdata") / "data" / "prices"
    source = folder / f"{ticker}.csv.gz"
    if not source.is_file():
        known = sorted(p.name.removesuffix(".csv.gz") for p in folder.iterdir()
                       if p.name.endswith(".csv.gz"))
        raise FileNotFoundError(f"no daily series {ticker!r} (embedded: {', '.join(known)})")
    text = gzip.decompress(source.read_bytes()).decode("ascii")
    bars = []
    for row in csv.DictReader(io.StringIO(text)):
        bars.append(DailyBar(row["Date"], Fraction(row["Open"]), Fraction(row["High"]),
                             Fraction(row["Low"]), Fraction(row["Close"]),
                             int(Fraction(row["Volume"]))))
    if any(a.date >= b.date for a, b in itertools.pairwise(bars)):
        raise ValueError(f"{ticker}: dates are not strictly increasing")
    if any(min(b.open, b.high, b.low, b.close) <= 0 for b in bars):
        raise ValueError(f"{ticker}: a non-positive price")
    return tuple(bars)


def to_ticks(price: Fraction, currency: str, usdkrw: Fraction, tick_size: int) -> int:
    """A listing-currency price as USD ticks of ``tick_size`` micro-dollars, rounded half up.

    KRW prices are divided by ``usdkrw`` (KRW per USD) first."""
    usd = price / usdkrw if currency == "KRW" else price
    ticks = usd * 1_000_000 / tick_size
    return int((ticks * 2 + 1) // 2)
