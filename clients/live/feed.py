"""The index feed for live use: real daily prices of the underlyings, sent to a running
``gaemi serve`` as ``admin.setIndex`` over the websocket, like any other client.

``hold`` mode sets each market's index once, to the last real close in
clients/marketdata/data/prices/ (what `gaemi serve` does at start so that orders have a mark to
be checked against).
``replay`` mode walks the daily series from a start date at a speed factor: each trading day's
regular session (6 h 30 min for the US names, 6 h 30 min for KRX) passes in session ÷ speed
wall seconds; within it the index moves on a straight line from the day's real open to its
real close, one update per ``interval`` wall seconds, rounded half up to ticks. KRW closes are
converted at a fixed reference rate (``usdkrw``, docs/markets.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

from gaemi.clients.live.client import Client
from gaemi.clients.marketdata.prices import SERIES_OF, DailyBar, currency_of, load_series, to_ticks

__all__ = ["FeedStep", "IndexFeed", "day_steps", "hold_prices"]

DEFAULT_USDKRW = Fraction(1_440)
SESSION_S = 6 * 3600 + 30 * 60  # KRX 09:00-15:30 and NYSE 09:30-16:00 are both 6 h 30 min
TICK_SIZE = 10_000  # micro-dollars: every preset quotes in $0.01


@dataclass(frozen=True, slots=True)
class FeedStep:
    symbol: str
    date: str
    price: int  # ticks


def _series(symbol: str) -> tuple[str, tuple[DailyBar, ...]]:
    ticker = SERIES_OF[symbol]
    return ticker, load_series(ticker)


def hold_prices(symbols: Iterable[str], usdkrw: Fraction = DEFAULT_USDKRW) -> dict[str, int]:
    """Each market's last real close, in ticks."""
    out = {}
    for symbol in symbols:
        ticker, bars = _series(symbol)
        out[symbol] = to_ticks(bars[-1].close, currency_of(ticker), usdkrw, TICK_SIZE)
    return out


def day_steps(symbol: str, bar: DailyBar, steps: int,
              usdkrw: Fraction = DEFAULT_USDKRW) -> list[FeedStep]:
    """``steps + 1`` prices from the day's open to its close on a straight line."""
    ticker, _ = _series(symbol)
    currency = currency_of(ticker)
    out = []
    for k in range(steps + 1):
        price = bar.open + (bar.close - bar.open) * Fraction(k, steps)
        out.append(FeedStep(symbol, bar.date, to_ticks(price, currency, usdkrw, TICK_SIZE)))
    return out


class IndexFeed:
    """Sends index prices to a server through an admin session."""

    def __init__(self, client: Client, symbols: Iterable[str], *,
                 usdkrw: Fraction = DEFAULT_USDKRW) -> None:
        self.client = client
        self.symbols = list(symbols)
        self.usdkrw = usdkrw
        self.sent = 0

    async def set(self, symbol: str, price: int) -> None:
        await self.client.request("admin.setIndex", {"symbol": symbol, "price": price})
        self.sent += 1

    async def hold(self, *, only_unset: bool = True) -> dict[str, int]:
        """Set each market's index to its last real close (by default only where none is
        set yet, so a restarted server keeps its prices)."""
        prices = hold_prices(self.symbols, self.usdkrw)
        current = {i["symbol"]: i["index"] for i in await self.client.instruments()}
        for symbol, price in prices.items():
            if not only_unset or current.get(symbol) is None:
                await self.set(symbol, price)
        return prices

    async def replay(self, *, start: str | None = None, speed: float = 390.0,
                     interval: float = 1.0, days: int | None = None) -> int:
        """Walk the series from ``start`` (a date; default: the last 20 trading days) at
        ``speed`` x real time. Returns the number of index updates sent."""
        if speed <= 0 or interval <= 0:
            raise ValueError("speed and interval are positive")
        steps = max(1, round(SESSION_S / speed / interval))
        per_symbol = {}
        for symbol in self.symbols:
            _, bars = _series(symbol)
            chosen = [b for b in bars if start is None or b.date >= start]
            if start is None:
                chosen = chosen[-20:]
            per_symbol[symbol] = chosen[:days] if days is not None else chosen
        n_days = max(len(v) for v in per_symbol.values())
        for d in range(n_days):
            paths = {s: day_steps(s, bars[d], steps, self.usdkrw)
                     for s, bars in per_symbol.items() if d < len(bars)}
            for k in range(steps + 1):
                for path in paths.values():
                    await self.set(path[k].symbol, path[k].price)
                if k < steps:
                    await asyncio.sleep(interval)
        return self.sent
