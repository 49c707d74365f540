"""Calibration targets derived from real data (clients/calibration/data/targets/README.md).

Two tables ship with the package, each a few numbers with its definition and provenance:

* ``kospi_margin_credit_response.json``: how the KOSPI credit (margin) balance moves in the
  days after a daily KOSPI drop of more than 3 %;
* ``hyperliquid_2025_10_10_adl.json``: liquidations against auto-deleveraging (ADL) in the
  Hyperliquid cascade of 10 October 2025, and how the ADL notional spread over the coins.

The raw files are not shipped (their licences do not allow it or are unknown); they live in
the shared data folder beside the repository, and ``scripts/derive_targets.py`` recomputes
the tables from them with the functions below, the single source of truth:
:func:`kospi_response_from_csv` and :func:`hyperliquid_from_files` compute the values, and
:func:`kospi_table` and :func:`hyperliquid_table` wrap them with the definition and the
provenance into the shipped document (:func:`render` gives its exact text).

The arithmetic is exact (``Fraction`` from the files' decimal text) and rounded once, for the
output: percentages, ratios and shares to 6 decimals, dollar amounts to cents, half to even.
:func:`kospi_margin_credit` and :func:`hyperliquid_adl` read the shipped tables into frozen
dataclasses.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import json
import math
import os
import statistics
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from fractions import Fraction
from functools import lru_cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

__all__ = [
    "AdlCounts", "HYPERLIQUID_FILE", "HyperliquidAdl", "KOSPI_FILE", "KospiResponse",
    "hyperliquid_adl", "hyperliquid_from_files", "hyperliquid_table", "kospi_margin_credit",
    "kospi_response_from_csv", "kospi_table", "render",
]

KOSPI_FILE = "kospi_margin_credit_response.json"
HYPERLIQUID_FILE = "hyperliquid_2025_10_10_adl.json"
REGENERATE = ("python scripts/derive_targets.py [--shared PATH] [--check]  (reads "
              "../shared/data beside the repository; --check compares with the shipped file)")

DROP_BELOW = Fraction(-3, 100)  # a drop day: close/previous close - 1 strictly below this
HORIZON = 5  # trading days after the drop day (day 0 = the drop day)
PERCENTILES = (5, 95)
PLACES = 6  # percentages, ratios and shares
CENTS = 2  # dollar amounts

COINS = ("BTC", "SOL")
SIDES = ("LONG", "SHORT")
TOP = 5

PathLike = str | os.PathLike[str]


# -- reading ------------------------------------------------------------------------------------

def _open_text(path: Path) -> io.TextIOBase:
    """The file as text, gunzipped when its name ends in .gz."""
    if path.name.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")  # noqa: SIM115 (closed by the caller)


def _rows(path: PathLike, columns: Sequence[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """The CSV's rows with their line numbers; ValueError when a column is missing."""
    source = Path(path)
    with _open_text(source) as text:
        reader = csv.DictReader(text)
        missing = [c for c in columns if c not in (reader.fieldnames or ())]
        if missing:
            raise ValueError(f"{source}: missing column(s) {', '.join(missing)}")
        for row in reader:
            yield reader.line_num, row


def _decimal(source: PathLike, line: int, column: str, text: str | None) -> Fraction:
    """The cell's decimal text as an exact fraction."""
    try:
        return Fraction((text or "").strip())
    except ValueError:
        raise ValueError(f"{source}:{line}: {column} is not a number: {text!r}") from None


def _boolean(source: PathLike, line: int, column: str, text: str | None) -> bool:
    value = (text or "").strip().lower()
    if value not in ("true", "false"):
        raise ValueError(f"{source}:{line}: {column} is not True or False: {text!r}")
    return value == "true"


# -- exact statistics, one rounding -------------------------------------------------------------

def _rounded(value: Fraction, places: int = PLACES) -> float:
    """Rounded once to ``places`` decimals, half to even; as a float, whose shortest text is
    that decimal (the values stay far below 15 significant digits)."""
    return float(round(value, places))


def _rounded_sqrt(value: Fraction, places: int = PLACES) -> float:
    """The exact square root of ``value`` rounded to ``places`` decimals, half to even."""
    scale = 10**places
    x = value * scale * scale
    k = math.isqrt(math.floor(4 * x))  # floor(2 sqrt(x))
    m = (k + 1) // 2  # floor(sqrt(x) + 1/2)
    if k % 2 == 1 and k * k == 4 * x and m % 2 == 1:
        m -= 1  # sqrt(x) is exactly m - 1/2: to the even neighbour
    return float(Fraction(m, scale))


def _percentile(ordered: Sequence[Fraction], percent: int) -> Fraction:
    """Linear interpolation between order statistics at the 0-based position (n - 1) p:
    numpy's default ("linear"), the same as ``statistics.quantiles(method="inclusive")``."""
    position = (len(ordered) - 1) * Fraction(percent, 100)
    i = math.floor(position)
    if i + 1 >= len(ordered):
        return ordered[-1]
    return ordered[i] + (position - i) * (ordered[i + 1] - ordered[i])


def _sample_variance(values: Sequence[Fraction]) -> Fraction:
    mean = sum(values, Fraction(0)) / len(values)
    return sum(((v - mean) ** 2 for v in values), Fraction(0)) / (len(values) - 1)


def _ratio(numerator: int, denominator: int) -> float | None:
    return _rounded(Fraction(numerator, denominator)) if denominator else None


# -- KOSPI margin credit ------------------------------------------------------------------------

def kospi_response_from_csv(path: PathLike) -> dict[str, Any]:
    """The KOSPI credit-balance response to daily drops of more than 3 %, from the source CSV
    (``Date``, ``KOSPI_index``, ``Credit_Balance_KOSPI``; any row order, plain or gzipped).

    The rows are sorted oldest first. A drop day ``d`` has ``close[d] / close[d-1] - 1 < -3 %``
    (strictly); its episode is ``c(k) = 100 (credit[d+k] / credit[d-1] - 1)`` for trading days
    ``k = 0..5``. Drop days with ``d + 5`` past the last row are left out; drop days within
    5 trading days of each other are all kept. Per day: mean, median, sample standard
    deviation (n - 1; None below two episodes) and the 5th/95th percentiles (linear
    interpolation) over the episodes, in percent. ValueError for a malformed file or no
    episode.
    """
    columns = ("Date", "KOSPI_index", "Credit_Balance_KOSPI")
    table: list[tuple[str, Fraction | None, Fraction]] = []
    for line, row in _rows(path, columns):
        day = (row["Date"] or "").strip()
        try:
            date.fromisoformat(day)
        except ValueError:
            raise ValueError(f"{path}:{line}: Date is not YYYY-MM-DD: {day!r}") from None
        # an empty close leaves the day in (its credit balance is there): no return touches it
        close = (_decimal(path, line, "KOSPI_index", row["KOSPI_index"])
                 if (row["KOSPI_index"] or "").strip() else None)
        credit = _decimal(path, line, "Credit_Balance_KOSPI", row["Credit_Balance_KOSPI"])
        if (close is not None and close <= 0) or credit <= 0:
            raise ValueError(f"{path}:{line}: a close or credit balance that is not positive")
        table.append((day, close, credit))
    table.sort(key=lambda t: t[0])
    if any(a[0] == b[0] for a, b in itertools.pairwise(table)):
        raise ValueError(f"{path}: a date appears twice")
    dates = [t[0] for t in table]
    closes = [t[1] for t in table]
    credits = [t[2] for t in table]
    last = len(table) - 1

    returns: dict[int, Fraction] = {}
    for d in range(1, len(table)):
        now, before = closes[d], closes[d - 1]
        if now is not None and before is not None:
            returns[d] = now / before - 1
    drops = [d for d, change in returns.items() if change < DROP_BELOW]
    kept = [d for d in drops if d + HORIZON <= last]
    left_out = [d for d in drops if d + HORIZON > last]
    if not kept:
        raise ValueError(f"{path}: no drop of more than 3 % with {HORIZON} trading days after it")
    overlapping = [d for d in kept if any(o != d and abs(o - d) <= HORIZON for o in drops)]
    clusters = 1 + sum(1 for a, b in itertools.pairwise(kept) if b - a > HORIZON)

    days = list(range(HORIZON + 1))
    stats: dict[str, list[float | None]] = {
        "mean_percent": [], "median_percent": [], "stdev_percent": [],
        **{f"p{p:02d}_percent": [] for p in PERCENTILES},
    }
    for k in days:
        values = [100 * (credits[d + k] / credits[d - 1] - 1) for d in kept]
        ordered = sorted(values)
        stats["mean_percent"].append(_rounded(sum(values, Fraction(0)) / len(values)))
        stats["median_percent"].append(_rounded(Fraction(statistics.median(ordered))))
        stats["stdev_percent"].append(
            _rounded_sqrt(_sample_variance(values)) if len(values) > 1 else None)
        for p in PERCENTILES:
            stats[f"p{p:02d}_percent"].append(_rounded(_percentile(ordered, p)))

    return {
        "trading_days": len(table),
        "first_date": dates[0],
        "last_date": dates[-1],
        "missing_close_dates": [dates[d] for d, c in enumerate(closes) if c is None],
        "undefined_return_dates": [dates[d] for d in range(1, len(table)) if d not in returns],
        "drop_threshold_percent": float(100 * DROP_BELOW),
        "horizon_trading_days": HORIZON,
        "drop_days": len(drops),
        "left_out_near_end": len(left_out),
        "left_out_dates": [dates[d] for d in left_out],
        "episodes": len(kept),
        "overlapping_episodes": len(overlapping),
        "episode_clusters": clusters,
        "episode_dates": [dates[d] for d in kept],
        "days": days,
        **stats,
    }


# -- Hyperliquid, 10 October 2025 ---------------------------------------------------------------

def _counts(positions: int, liquidated: int, adl: int) -> dict[str, Any]:
    return {"positions": positions, "liquidated": liquidated, "adl": adl,
            "adl_per_liquidated": _ratio(adl, liquidated)}


def hyperliquid_from_files(positions_gz: PathLike, adl_by_coin_csv: PathLike) -> dict[str, Any]:
    """Liquidated against auto-deleveraged positions (BTC and SOL rows of the positions file:
    ``asset``, ``side``, ``was_liquidated``, ``was_adl``), overall, per coin, per side and per
    coin and side; and the spread of the ADL notional over the coins (``coin``,
    ``adl_notional``, ``num_events``): total, top-1 and top-5 shares, Herfindahl index of the
    shares (sum of squared shares, on [0, 1]). ValueError for a malformed file.
    """
    tally: dict[tuple[str, str], list[int]] = {(c, s): [0, 0, 0] for c in COINS for s in SIDES}
    rows = both = 0
    for line, row in _rows(positions_gz, ("asset", "side", "was_liquidated", "was_adl")):
        rows += 1
        coin, side = (row["asset"] or "").strip(), (row["side"] or "").strip()
        if side not in SIDES:
            raise ValueError(f"{positions_gz}:{line}: side is not LONG or SHORT: {side!r}")
        liquidated = _boolean(positions_gz, line, "was_liquidated", row["was_liquidated"])
        adl = _boolean(positions_gz, line, "was_adl", row["was_adl"])
        if coin not in COINS:
            continue
        cell = tally[coin, side]
        cell[0] += 1
        cell[1] += liquidated
        cell[2] += adl
        both += liquidated and adl

    def total(keys: Sequence[tuple[str, str]]) -> dict[str, Any]:
        return _counts(*(sum(tally[key][i] for key in keys) for i in range(3)))

    everything = list(tally)
    positions = total(everything)
    liquidated_long = sum(tally[c, "LONG"][1] for c in COINS)
    adl_short = sum(tally[c, "SHORT"][2] for c in COINS)

    notional: dict[str, Fraction] = {}
    events = 0
    for line, row in _rows(adl_by_coin_csv, ("coin", "adl_notional", "num_events")):
        coin = (row["coin"] or "").strip()
        if not coin or coin in notional:
            raise ValueError(f"{adl_by_coin_csv}:{line}: an empty or repeated coin {coin!r}")
        value = _decimal(adl_by_coin_csv, line, "adl_notional", row["adl_notional"])
        count = _decimal(adl_by_coin_csv, line, "num_events", row["num_events"])
        if value < 0 or count < 0 or count.denominator != 1:
            raise ValueError(f"{adl_by_coin_csv}:{line}: a negative notional or a bad count")
        notional[coin] = value
        events += int(count)
    grand = sum(notional.values(), Fraction(0))
    if grand <= 0:
        raise ValueError(f"{adl_by_coin_csv}: no ADL notional")
    ranked = sorted(notional, key=lambda c: (-notional[c], c))
    shares = {c: notional[c] / grand for c in ranked}

    return {
        "positions": {
            "rows": rows,
            **positions,
            "liquidated_and_adl": both,
            "by_coin": {c: total([(c, s) for s in SIDES]) for c in COINS},
            "by_side": {s: total([(c, s) for c in COINS]) for s in SIDES},
            "by_coin_and_side": {c: {s: total([(c, s)]) for s in SIDES} for c in COINS},
            "adl_short_per_liquidated_long": _ratio(adl_short, liquidated_long),
        },
        "adl_by_coin": {
            "coins": len(notional),
            "adl_events": events,
            "total_adl_notional_usd": _rounded(grand, CENTS),
            "top1": {"coin": ranked[0], "adl_notional_usd": _rounded(notional[ranked[0]], CENTS),
                     "share": _rounded(shares[ranked[0]])},
            "top5": {"coins": ranked[:TOP],
                     "share": _rounded(sum((shares[c] for c in ranked[:TOP]), Fraction(0)))},
            "herfindahl": _rounded(sum((s * s for s in shares.values()), Fraction(0))),
        },
    }


# -- the shipped documents ----------------------------------------------------------------------

KOSPI_SOURCE = {
    "repository": "Walnutbrown/margin_call",
    "commit": "1357edc1a27c803c73e913132811bd6cc5551576",
    "commit_date": "2025-05-25",
    "path": "data/KOSPI.csv",
    "read_from": "shared/data/kospi-margin-credit/KOSPI.csv.gz (the same content, gzipped)",
    "licence": ("none stated by the source repository, so its terms are unknown; the raw file "
                "is not shipped, only this table of derived numbers"),
    "attribution": ("derived from data/KOSPI.csv of github.com/Walnutbrown/margin_call; that "
                    "repository does not cite its original source (the figures look like "
                    "KRX / KOFIA statistics, unconfirmed)"),
}
KOSPI_DEFINITION = (
    "The trading days (rows) of the whole file, sorted oldest first; k counts "
    "trading days by row order. A drop day d is a day whose KOSPI close fell more than 3 % "
    "from the previous trading day's close: KOSPI_index[d] / KOSPI_index[d-1] - 1 < -0.03, "
    "strictly (exactly -3 % is not a drop). A row with an empty close stays a trading day "
    "(its credit balance is there and counts in k), but the two returns that need its close "
    "(its own and the next day's) are undefined and are not drops (missing_close_dates, "
    "undefined_return_dates). The episode of drop day d is the cumulative change of the "
    "credit balance relative to the day before the drop, in percent: c_e(k) = 100 * "
    "(Credit_Balance_KOSPI[d+k] / Credit_Balance_KOSPI[d-1] - 1), k = 0..5, day 0 = the drop "
    "day. Drop days with d+5 past the last row are left out (left_out_near_end); drop days "
    "within 5 trading days of each other are all kept as separate episodes "
    "(overlapping_episodes counts the kept episodes with another drop day within 5 trading "
    "days before or after; episode_clusters counts the groups of kept episodes chained by "
    "gaps of at most 5 trading days). Per day k, over the episodes: the mean, the median, "
    "the sample standard deviation (n - 1) and the 5th and 95th percentiles.")
KOSPI_METHOD = {
    "arithmetic": ("exact fractions (Python fractions.Fraction) from the CSV's decimal text; "
                   "each output rounded once to 6 decimals, half to even (the standard "
                   "deviation is the exact square root of the exact variance, rounded once)"),
    "percentiles": ("linear interpolation between the sorted episode values at the 0-based "
                    "position (n - 1) * p: numpy's default method 'linear', the same as "
                    "statistics.quantiles(method='inclusive'); implemented in pure Python"),
    "units": ("percent change of the credit balance; the credit column is the source's "
              "Credit_Balance_KOSPI (apparently million KRW, inferred, not documented)"),
}

HYPERLIQUID_SOURCES = {
    "positions": {
        "repository": "ConejoCapital/HyperAnalyzeADL",
        "commit": "18a7319909e0fa8d389cc1ed70ca04750849548a",
        "commit_date": "2025-11-05",
        "path": "results/positions_FINAL.csv",
        "read_from": ("shared/data/hyperliquid-2025-10-10-adl/positions_FINAL.csv.gz (the same "
                      "content, gzipped)"),
        "licence": ("GPL-3.0 (the repository README's badge and licence section; the LICENSE "
                    "file is missing from the tree): the file and its rows are not shipped, "
                    "only the counts and ratios below"),
    },
    "adl_by_coin": {
        "repository": "ConejoCapital/HyperMultiAssetedADL",
        "commit": "79bad0fae259fc1fcd9fce960953ae3b398f2db7",
        "commit_date": "2025-12-07",
        "path": ("data/canonical/cash-only balances ADL event orderbook 2025-10-10/"
                 "adl_by_coin_REALTIME.csv"),
        "read_from": "shared/data/hyperliquid-2025-10-10-adl/adl_by_coin_REALTIME.csv",
        "licence": ("none stated, so its terms are unknown (the companion repository "
                    "ConejoCapital/HyperReplay publishes the same outputs under a custom "
                    "non-commercial licence); only the aggregates below are shipped"),
    },
    "attribution": ("aggregates of data reconstructed by ConejoCapital from Hyperliquid's "
                    "public node data (github.com/ConejoCapital); attribute ConejoCapital "
                    "when reusing them"),
}
HYPERLIQUID_DEFINITION = (
    "The 12-minute liquidation cascade on Hyperliquid, 2025-10-10 about 21:15-21:27 UTC. "
    "positions: the BTC and SOL rows of positions_FINAL.csv (one row per account, coin and "
    "side active in the window; rows counts all rows of the file); liquidated = rows with "
    "was_liquidated True, adl = rows with "
    "was_adl True (a row can be both: liquidated_and_adl); adl_per_liquidated = adl / "
    "liquidated over the same rows (overall, per coin, per side, per coin and side; null when "
    "nothing was liquidated); adl_short_per_liquidated_long = ADL'd SHORT rows / liquidated "
    "LONG rows, both coins. These count positions, not events (the source's headline of "
    "3,088 liquidations counts events). adl_by_coin: the rows of adl_by_coin_REALTIME.csv, "
    "one per coin; total_adl_notional_usd = the sum of adl_notional (USD deleveraged); "
    "adl_events = the sum of num_events; share of a coin = its adl_notional / the total; "
    "top1 = the coin with the largest notional, top5.share = the summed shares of the five "
    "largest; herfindahl = the sum over all coins of the squared shares (on [0, 1], not "
    "x 10,000), for context.")
HYPERLIQUID_METHOD = {
    "arithmetic": ("exact fractions from the CSVs' decimal text; ratios and shares rounded "
                   "once to 6 decimals and dollar amounts to cents, half to even"),
    "ranking": "by adl_notional descending, ties by coin name",
}


def kospi_table(values: Mapping[str, Any]) -> dict[str, Any]:
    """The shipped document of :func:`kospi_response_from_csv`'s values."""
    return {
        "target": "kospi_margin_credit_response",
        "definition": KOSPI_DEFINITION,
        "method": KOSPI_METHOD,
        "values": dict(values),
        "source": KOSPI_SOURCE,
        "regenerate": REGENERATE,
    }


def hyperliquid_table(values: Mapping[str, Any]) -> dict[str, Any]:
    """The shipped document of :func:`hyperliquid_from_files`'s values."""
    return {
        "target": "hyperliquid_2025_10_10_adl",
        "definition": HYPERLIQUID_DEFINITION,
        "method": HYPERLIQUID_METHOD,
        "values": dict(values),
        "source": HYPERLIQUID_SOURCES,
        "regenerate": REGENERATE,
    }


def render(document: Mapping[str, Any]) -> str:
    """The exact text of a shipped table."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


# -- the shipped tables, typed ------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class KospiResponse:
    """The KOSPI credit-balance response (percent, per day 0..5 after a drop of more than
    3 %; the definition is ``definition``, verbatim from the shipped table)."""

    days: tuple[int, ...]
    mean: tuple[float, ...]
    median: tuple[float, ...]
    stdev: tuple[float, ...]
    p05: tuple[float, ...]
    p95: tuple[float, ...]
    episodes: int
    episode_dates: tuple[str, ...]
    drop_days: int
    left_out_near_end: int
    overlapping_episodes: int
    episode_clusters: int
    trading_days: int
    first_date: str
    last_date: str
    definition: str


@dataclass(frozen=True, slots=True)
class AdlCounts:
    """Positions, of which liquidated and auto-deleveraged; ``adl_per_liquidated`` is None
    when none was liquidated."""

    positions: int
    liquidated: int
    adl: int
    adl_per_liquidated: float | None


@dataclass(frozen=True, slots=True)
class HyperliquidAdl:
    """Hyperliquid, 10 October 2025: the BTC and SOL positions' liquidation and ADL counts,
    and the spread of the ADL notional over the coins."""

    overall: AdlCounts
    by_coin: Mapping[str, AdlCounts]
    by_side: Mapping[str, AdlCounts]
    by_coin_and_side: Mapping[tuple[str, str], AdlCounts]
    liquidated_and_adl: int
    adl_short_per_liquidated_long: float
    coins: int
    adl_events: int
    total_adl_notional_usd: float
    top1_coin: str
    top1_notional_usd: float
    top1_share: float
    top5_coins: tuple[str, ...]
    top5_share: float
    herfindahl: float
    definition: str


def _shipped(name: str) -> dict[str, Any]:
    source = resources.files("gaemi.clients.calibration") / "data" / "targets" / name
    document = json.loads(source.read_text(encoding="utf-8"))
    if not isinstance(document, dict):
        raise ValueError(f"{name}: not a JSON object")
    return document


def _floats(values: Any) -> tuple[float, ...]:
    if any(v is None for v in values):
        raise ValueError("a missing value in a shipped series")
    return tuple(float(v) for v in values)


@lru_cache(maxsize=1)
def kospi_margin_credit() -> KospiResponse:
    """The shipped KOSPI margin-credit response table."""
    document = _shipped(KOSPI_FILE)
    v = document["values"]
    return KospiResponse(
        days=tuple(int(k) for k in v["days"]),
        mean=_floats(v["mean_percent"]),
        median=_floats(v["median_percent"]),
        stdev=_floats(v["stdev_percent"]),
        p05=_floats(v["p05_percent"]),
        p95=_floats(v["p95_percent"]),
        episodes=int(v["episodes"]),
        episode_dates=tuple(str(d) for d in v["episode_dates"]),
        drop_days=int(v["drop_days"]),
        left_out_near_end=int(v["left_out_near_end"]),
        overlapping_episodes=int(v["overlapping_episodes"]),
        episode_clusters=int(v["episode_clusters"]),
        trading_days=int(v["trading_days"]),
        first_date=str(v["first_date"]),
        last_date=str(v["last_date"]),
        definition=str(document["definition"]),
    )


def _adl_counts(cell: Mapping[str, Any]) -> AdlCounts:
    ratio = cell["adl_per_liquidated"]
    return AdlCounts(int(cell["positions"]), int(cell["liquidated"]), int(cell["adl"]),
                     None if ratio is None else float(ratio))


@lru_cache(maxsize=1)
def hyperliquid_adl() -> HyperliquidAdl:
    """The shipped Hyperliquid 10 October 2025 table."""
    document = _shipped(HYPERLIQUID_FILE)
    p = document["values"]["positions"]
    a = document["values"]["adl_by_coin"]
    return HyperliquidAdl(
        overall=_adl_counts(p),
        by_coin=MappingProxyType({c: _adl_counts(cell) for c, cell in p["by_coin"].items()}),
        by_side=MappingProxyType({s: _adl_counts(cell) for s, cell in p["by_side"].items()}),
        by_coin_and_side=MappingProxyType({(c, s): _adl_counts(cell)
                                           for c, sides in p["by_coin_and_side"].items()
                                           for s, cell in sides.items()}),
        liquidated_and_adl=int(p["liquidated_and_adl"]),
        adl_short_per_liquidated_long=float(p["adl_short_per_liquidated_long"]),
        coins=int(a["coins"]),
        adl_events=int(a["adl_events"]),
        total_adl_notional_usd=float(a["total_adl_notional_usd"]),
        top1_coin=str(a["top1"]["coin"]),
        top1_notional_usd=float(a["top1"]["adl_notional_usd"]),
        top1_share=float(a["top1"]["share"]),
        top5_coins=tuple(str(c) for c in a["top5"]["coins"]),
        top5_share=float(a["top5"]["share"]),
        herfindahl=float(a["herfindahl"]),
        definition=str(document["definition"]),
    )
