"""Cascade metrics: what one scenario run did, computed from its ``RunRecord``.

Everything is computed in the venue's integers (ticks, lots, micro-dollars, nanoseconds) and
exact fractions; a ratio is rounded once, at the end, to a decimal string (half to even). Money
is reported twice: as an integer count of micro-dollars (``x``) and, for people, as the exact
decimal dollar amount (``x_usd``: no rounding, a micro-dollar has six decimals). Every
definition is written down in docs/cascade.md.

The one number the report leads with is the **endogenous multiplier**:

    M = (notional of every liquidation) / (notional of the first-generation liquidations)

A first-generation liquidation was set off by something outside the cascade (an index update,
an ordinary trade, funding, the clock); every later generation was set off by an earlier
liquidation, through a fill of it or a mark move it caused. M = 1 means no liquidation caused
another.

Only traders count. The insurance fund's own liquidations (of the inventory it took over;
negative account ids) are forced flow too, but they are not a trader losing a position: they
are reported apart (``fund_liquidations``, ``fund_liquidated_notional``) and are transparent in
the graph (a trader liquidation set off by the fund's forced flow is the child of the trader
liquidation behind the fund's). The identities, tested: the cohort table sums to the
headline; the generation table sums to the headline; traders + fund = every liquidation.

A mark moved by the passage of time is not caused by any liquidation, even one whose fills are
still inside the mark's basis window: such a liquidation is a root (``cause_kind`` "time") and
the nearest liquidation is reported as ``time_proximity`` apart, never as its parent.

When there is no first-generation notional in the watched market (no liquidations at all, or
a cross-margin cascade that began in another market) M is undefined and reported as ``None``
(JSON null), never 0 or infinity.

This module reads events by their ``kind`` text (risk/events.py), so it depends only on the
record, not on the venue.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

from gaemi.clients.sim.cascade import hawkes
from gaemi.clients.sim.cascade.record import RunRecord, Sample

__all__ = [
    "BUY", "CSV_COLUMNS", "NS_PER_SECOND", "SCHEMA", "SELL", "WIPED_OUT_KEEP", "Tape", "TapeRow",
    "decimate", "end_ts", "hawkes_summary", "liquidation_rows", "ratio_text", "start_ts",
    "summarize", "tape", "time_text", "usd_text",
]

SCHEMA = "gaemi-cascade-summary/2"  # 2: traders-only headline, causal links, the window
NS_PER_SECOND = 1_000_000_000
NS_PER_MINUTE = 60 * NS_PER_SECOND
BUY, SELL = 1, -1
# an account is "wiped out" when it ends with at most this share of what it deposited
WIPED_OUT_KEEP = Fraction(1, 10)
MULTIPLIER_PLACES = 4  # endogenous multiplier, branching ratios: 4 decimals
RATIO_PLACES = 4  # shares and depth ratios
BPS_PLACES = 2  # basis points
PATH_POINTS = 500  # the insurance-fund path in summary.json keeps at most this many points
UNASSIGNED = "(no cohort)"
FUND = "insurance fund"  # the label of a fund's own liquidations (negative account ids)
CSV_COLUMNS = (
    "ts_ns", "time_utc", "t_s", "liquidation_id", "account", "cohort", "side", "position", "qty",
    "price", "price_usd", "mark", "bankruptcy_price", "notional", "notional_usd", "book_qty",
    "insurance_qty", "adl_qty", "fee", "generation", "cause_kind", "cause_seq", "cause_trade_id",
    "cause_liquidation_id", "parent", "trader", "in_cascade_window",
)
# the cascade window: the liquidations of the traders, cut where two in a row are more than
# this far apart; the window is the cluster with the most notional (docs/cascade.md)
CASCADE_GAP_NS = 60 * NS_PER_SECOND
# the Hawkes fit's kernel reaches this far back (seconds)
HAWKES_MAX_LAG_S = 300
# the basis-on-forced-flow regression runs over the cascade window and this much either side
REGRESSION_PAD_S = 120


# -- number formatting ---------------------------------------------------------------------------


def usd_text(units: int | None) -> str | None:
    """Micro-dollars as exact decimal dollars: ``9_650_000`` -> ``"9.65"``, ``1`` ->
    ``"0.000001"``, at least two decimals, never rounded."""
    if units is None:
        return None
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), 1_000_000)
    digits = f"{frac:06d}".rstrip("0")
    return f"{sign}{whole}.{digits.ljust(2, '0')}"


def ratio_text(num: int | Fraction, den: int | Fraction = 1, places: int = RATIO_PLACES,
               ) -> str | None:
    """``num / den`` rounded once, half to even, to ``places`` decimals; None if den is 0."""
    if den == 0:
        return None
    value = Fraction(num) / Fraction(den)
    scaled = round(value * 10**places)  # Fraction.__round__: half to even
    sign = "-" if scaled < 0 else ""
    whole, frac = divmod(abs(scaled), 10**places)
    return f"{sign}{whole}.{frac:0{places}d}" if places else f"{sign}{whole}"


def time_text(ts_ns: int) -> str:
    """Nanoseconds since the epoch as ISO-8601 UTC with all nine decimals (exact)."""
    seconds, ns = divmod(ts_ns, NS_PER_SECOND)
    moment = datetime.fromtimestamp(seconds, tz=UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{ns:09d}Z"


# -- the tape: one row per liquidation -----------------------------------------------------------


@dataclass(slots=True)
class TapeRow:
    """One liquidation as the metrics see it: the venue's event and what is derived from it."""

    ts_ns: int
    event: Any  # risk.events.Liquidation
    notional: int  # micro-dollars, exact: see ``tape``
    cohort: str
    fund: bool  # the insurance fund's own liquidation (account id < 0), not a trader's
    parent: int | None  # the causing trader liquidation (see ``tape``), None for a root
    generation: int  # 1 + the parent's generation; 1 for a root
    proximate: int | None  # for a root set off by time: the liquidation still in the window


@dataclass(slots=True)
class Tape:
    rows: list[TapeRow]  # the traders' liquidations: every headline number counts these
    fund_rows: list[TapeRow]  # the insurance fund's own liquidations, reported apart
    every: list[TapeRow]  # both, in the order the venue emitted them
    by_id: dict[int, TapeRow]  # both kinds
    children: dict[int, list[int]]  # trader parent id -> trader child ids (in tape order)
    approximate: int  # rows whose notional came from the rounded average price
    adl: list[tuple[int, Any]]
    takeovers: list[tuple[int, Any]]
    bad_debt: list[tuple[int, Any]]
    funding: list[tuple[int, Any]]


def tape(record: RunRecord) -> Tape:
    """The record's liquidations in the watched market, in the order the venue emitted them.

    Notional of one liquidation, exact, in micro-dollars: the sum of price x qty over its book
    fills, its insurance takeover and its ADL fills (each event carries its own price: the
    bankruptcy price, or the mark for a backstop venue or the fund's own deleveraging), x the
    multiplier. If the record lacks some of them (they do not add up to ``qty``), the rounded
    average is used instead: ``qty x price x multiplier``; such rows are counted in
    ``approximate``.

    The causal link of a liquidation is its ``cause.liquidation_id`` when the cause is a fill
    or a liquidation (a takeover, ADL): that liquidation's forced flow moved the mark. A cause
    of kind "time" is no link (``proximate`` keeps the id). A fund liquidation in the chain is
    skipped: a trader's parent is the nearest trader liquidation up the chain. A link to a
    liquidation outside the watched market (not on the tape) is kept as an orphan, with the
    venue's generation.
    """
    market = record.market
    mult = record.spec.multiplier
    fill_value: dict[int, int] = defaultdict(int)
    fill_qty: dict[int, int] = defaultdict(int)
    rows: list[TapeRow] = []
    adl, takeovers, bad_debt, funding = [], [], [], []
    approximate = 0
    for ts, event in record.events:
        kind = event.kind
        if getattr(event, "symbol", market) != market:
            continue
        if kind in ("fill", "insurance_takeover", "adl"):
            lid = event.liquidation_id
            if lid is not None:
                fill_value[lid] += event.price * event.qty
                fill_qty[lid] += event.qty
            if kind == "adl":
                adl.append((ts, event))
            elif kind == "insurance_takeover":
                takeovers.append((ts, event))
        elif kind == "liquidation":
            lid = event.liquidation_id
            if fill_qty.get(lid, 0) == event.qty:
                value = fill_value[lid]
            else:
                value = event.qty * event.price
                approximate += 1
            fund = event.account_id < 0
            cohort = record.cohorts.get(event.account_id)
            label = cohort.label if cohort else FUND if fund else UNASSIGNED
            cause = event.cause
            link = cause.liquidation_id if cause.kind != "time" else None
            proximate = cause.liquidation_id if cause.kind == "time" else None
            rows.append(TapeRow(ts, event, value * mult, label, fund, link, 1, proximate))
        elif kind == "bad_debt":
            bad_debt.append((ts, event))
        elif kind == "funding":
            funding.append((ts, event))
    by_id = {row.event.liquidation_id: row for row in rows}
    # a parent is always emitted before its children, so one pass in tape order settles the
    # generations; a fund row passes its trader ancestor (and generation) on to its children
    through: dict[int, tuple[int | None, int]] = {}  # fund row id -> (trader ancestor, its gen)
    for row in rows:
        link = row.parent
        if link is None:
            parent, gen = None, 0
        elif link in through:
            parent, gen = through[link]
        elif link in by_id:
            parent, gen = link, by_id[link].generation
        else:  # caused by a liquidation in another market: an orphan, the venue's generation
            parent, gen = link, row.event.generation - 1
        if row.fund:
            through[row.event.liquidation_id] = (parent, gen)
            row.parent, row.generation = parent, gen
        else:
            row.parent, row.generation = parent, gen + 1
    children: dict[int, list[int]] = defaultdict(list)
    traders = [row for row in rows if not row.fund]
    for row in traders:
        if row.parent is not None:
            children[row.parent].append(row.event.liquidation_id)
    return Tape(traders, [row for row in rows if row.fund], rows, by_id, dict(children),
                approximate, adl, takeovers, bad_debt, funding)


def liquidation_rows(record: RunRecord, the_tape: Tape | None = None) -> list[dict[str, Any]]:
    """The rows of liquidations.csv, one per liquidation, the fund's included (``trader`` 0),
    in the order the venue emitted them (columns: docs/cascade.md)."""
    t = the_tape or tape(record)
    start = start_ts(record)
    spec = record.spec
    window = cascade_window(t)
    out = []
    for row in t.every:
        e = row.event
        out.append({
            "ts_ns": row.ts_ns,
            "time_utc": time_text(row.ts_ns),
            "t_s": ratio_text(row.ts_ns - start, NS_PER_SECOND, 3),
            "liquidation_id": e.liquidation_id,
            "account": e.account_id,
            "cohort": row.cohort,
            "side": "sell" if e.side == SELL else "buy",
            "position": "long" if e.side == SELL else "short",
            "qty": e.qty,
            "price": e.price,
            "price_usd": usd_text(e.price * spec.tick_size),
            "mark": e.mark,
            "bankruptcy_price": e.bankruptcy_price,
            "notional": row.notional,
            "notional_usd": usd_text(row.notional),
            "book_qty": e.book_qty,
            "insurance_qty": e.insurance_qty,
            "adl_qty": e.adl_qty,
            "fee": e.fee,
            "generation": row.generation,
            "cause_kind": e.cause.kind,
            "cause_seq": e.cause.seq,
            "cause_trade_id": "" if e.cause.trade_id is None else e.cause.trade_id,
            "cause_liquidation_id": "" if e.cause.liquidation_id is None
            else e.cause.liquidation_id,
            "parent": "" if row.parent is None else row.parent,
            "trader": 0 if row.fund else 1,
            "in_cascade_window": int(window is not None and
                                     window[0] <= row.ts_ns <= window[1]),
        })
    return out


# -- helpers -------------------------------------------------------------------------------------


def cascade_window(t: Tape) -> tuple[int, int] | None:
    """(first, last) liquidation time of the cascade, None without trader liquidations.

    The rule: the traders' liquidations are cut into clusters wherever two consecutive ones
    are more than ``CASCADE_GAP_NS`` (60 s) apart; the cascade is the cluster with the most
    liquidated notional (the earliest of equals). It runs from its first liquidation to its
    last, both included.
    """
    best: tuple[int, int, int] | None = None  # (notional, first ts, last ts)
    current: list[int] | None = None  # [notional, first ts, last ts]
    for row in sorted(t.rows, key=lambda r: r.ts_ns):
        if current is not None and row.ts_ns - current[2] <= CASCADE_GAP_NS:
            current[0] += row.notional
            current[2] = row.ts_ns
            continue
        if current is not None and (best is None or current[0] > best[0]):
            best = (current[0], current[1], current[2])
        current = [row.notional, row.ts_ns, row.ts_ns]
    if current is not None and (best is None or current[0] > best[0]):
        best = (current[0], current[1], current[2])
    return None if best is None else (best[1], best[2])


def start_ts(record: RunRecord) -> int:
    """The record's time origin: the earlier of its first sample and its first event."""
    candidates = []
    if record.samples:
        candidates.append(record.samples[0].ts_ns)
    if record.events:
        candidates.append(record.events[0][0])
    return min(candidates) if candidates else 0


def end_ts(record: RunRecord) -> int:
    candidates = []
    if record.samples:
        candidates.append(record.samples[-1].ts_ns)
    if record.events:
        candidates.append(record.events[-1][0])
    return max(candidates) if candidates else 0


def decimate(xs: list[Any], ys: list[Any], limit: int) -> tuple[list[Any], list[Any]]:
    """At most about ``limit`` points that keep every bucket's extremes: the series is cut
    into ``limit // 2`` buckets of consecutive points and each keeps its minimum and maximum
    (in time order), plus the very last point. ``None`` values are dropped first."""
    points = [(x, y) for x, y in zip(xs, ys, strict=True) if y is not None]
    if len(points) <= limit:
        return [p[0] for p in points], [p[1] for p in points]
    buckets = max(1, limit // 2)
    size = -(-len(points) // buckets)
    keep: list[tuple[Any, Any]] = []
    for lo in range(0, len(points), size):
        chunk = points[lo:lo + size]
        i_min = min(range(len(chunk)), key=lambda i: chunk[i][1])
        i_max = max(range(len(chunk)), key=lambda i: chunk[i][1])
        for i in sorted({i_min, i_max}):
            keep.append(chunk[i])
    if keep[-1] is not points[-1]:
        keep.append(points[-1])
    return [p[0] for p in keep], [p[1] for p in keep]


def _money(out: dict[str, Any], name: str, units: int | None) -> None:
    out[name] = units
    out[name + "_usd"] = usd_text(units)


def _buckets(rows: list[TapeRow], width_ns: int) -> dict[int, list[int]]:
    """Bucket start (ns, a multiple of the width since the epoch) -> [notional, count]."""
    out: dict[int, list[int]] = {}
    for row in rows:
        key = row.ts_ns - row.ts_ns % width_ns
        cell = out.setdefault(key, [0, 0])
        cell[0] += row.notional
        cell[1] += 1
    return out


# -- the summary ---------------------------------------------------------------------------------


def summarize(record: RunRecord, the_tape: Tape | None = None) -> dict[str, Any]:
    """The JSON-ready summary of one run (keys and definitions: docs/cascade.md)."""
    t = the_tape or tape(record)
    spec = record.spec
    rows = t.rows
    out: dict[str, Any] = {
        "schema": SCHEMA,
        "scenario": record.scenario,
        "seed": record.seed,
        "market": record.market,
        "config": record.config,
        "commands": record.commands,
        "units": {
            "money": "integer micro-dollars (1 USD = 1,000,000); *_usd: the same amount as "
                     "exact decimal dollars",
            "price": f"integer ticks of {usd_text(spec.tick_size)} USD; *_usd: USD per share",
            "size": f"integer lots of {spec.lot_size} shares",
            "time": "integer nanoseconds since the Unix epoch (UTC)",
            "ratios": "decimal strings, computed exactly and rounded once, half to even",
        },
        "multiplier": spec.multiplier,
        "start_ts_ns": start_ts(record),
        "end_ts_ns": end_ts(record),
    }
    out["run_duration_s"] = ratio_text(out["end_ts_ns"] - out["start_ts_ns"], NS_PER_SECOND, 3)
    window = cascade_window(t)
    if window is None:
        out["cascade_window"] = None
        out["duration_s"] = None
    else:
        duration = ratio_text(window[1] - window[0], NS_PER_SECOND, 3)
        inside = [r for r in rows if window[0] <= r.ts_ns <= window[1]]
        out["cascade_window"] = {
            "start_ts_ns": window[0], "end_ts_ns": window[1], "duration_s": duration,
            "rule": f"the cluster of trader liquidations with the most notional, cut where two "
                    f"in a row are more than {CASCADE_GAP_NS // NS_PER_SECOND} s apart",
            "liquidations": len(inside),
        }
        _money(out["cascade_window"], "liquidated_notional", sum(r.notional for r in inside))
        out["duration_s"] = duration

    # -- the tape and the provenance graph
    total = sum(r.notional for r in rows)
    out["liquidations"] = len(rows)
    out["liquidated_accounts"] = len({r.event.account_id for r in rows})
    out["liquidated_lots"] = sum(r.event.qty for r in rows)
    _money(out, "liquidated_notional", total)
    out["notional_from_average_price"] = t.approximate
    fund = t.fund_rows
    out["fund_liquidations"] = len(fund)
    out["fund_liquidated_lots"] = sum(r.event.qty for r in fund)
    _money(out, "fund_liquidated_notional", sum(r.notional for r in fund))
    near = [r for r in rows if r.proximate is not None]
    out["time_proximity"] = {"liquidations": len(near),
                             "rule": "a root set off by the passage of time while an earlier "
                                     "liquidation's fills were inside the mark's basis window"}
    _money(out["time_proximity"], "notional", sum(r.notional for r in near))
    generations: dict[int, list[TapeRow]] = defaultdict(list)
    for r in rows:
        generations[r.generation].append(r)
    first = sum(r.notional for r in generations.get(1, []))
    _money(out, "first_generation_notional", first)
    out["max_generation"] = max(generations, default=0)
    if first:
        m = Fraction(total, first)
        out["endogenous_multiplier"] = ratio_text(m, 1, MULTIPLIER_PLACES)
        out["endogenous_multiplier_fraction"] = f"{m.numerator}/{m.denominator}"
    else:
        out["endogenous_multiplier"] = None
        out["endogenous_multiplier_fraction"] = None
    table = []
    for g in sorted(generations):
        members = generations[g]
        notional = sum(r.notional for r in members)
        kids = sum(len(t.children.get(r.event.liquidation_id, ())) for r in members)
        entry: dict[str, Any] = {
            "generation": g,
            "liquidations": len(members),
            "accounts": len({r.event.account_id for r in members}),
            "lots": sum(r.event.qty for r in members),
        }
        _money(entry, "notional", notional)
        entry["share"] = ratio_text(notional, total)
        entry["children"] = kids
        entry["branching"] = ratio_text(kids, len(members), MULTIPLIER_PLACES)
        table.append(entry)
    out["generations"] = table
    fan = [len(t.children.get(r.event.liquidation_id, ())) for r in rows]
    distribution = Counter(fan)
    widest = max(rows, key=lambda r: len(t.children.get(r.event.liquidation_id, ())),
                 default=None)
    edges = sum(1 for r in rows if r.parent is not None)
    out["fan_out"] = {
        "edges": edges,
        "roots": sum(1 for r in rows if r.parent is None),
        "orphans": sum(1 for r in rows if r.parent is not None and r.parent not in t.by_id),
        "parents": sum(1 for n in fan if n),
        "max": max(fan, default=0),
        "max_parent_id": (widest.event.liquidation_id
                          if widest is not None and max(fan, default=0) else None),
        "mean": ratio_text(edges, len(rows), MULTIPLIER_PLACES),
        "mean_of_parents": ratio_text(edges, sum(1 for n in fan if n), MULTIPLIER_PLACES),
        "distribution": {str(k): distribution[k] for k in sorted(distribution)},
    }
    causes = Counter(r.event.cause.kind for r in rows if r.generation == 1)
    out["first_generation_causes"] = dict(sorted(causes.items()))

    sides = {}
    for name, side in (("long", SELL), ("short", BUY)):
        members = [r for r in rows if r.event.side == side]
        entry = {"liquidations": len(members),
                 "accounts": len({r.event.account_id for r in members}),
                 "lots": sum(r.event.qty for r in members)}
        _money(entry, "notional", sum(r.notional for r in members))
        sides[name] = entry
    out["by_side"] = sides
    execution = {
        "book_lots": sum(r.event.book_qty for r in rows),
        "insurance_lots": sum(r.event.insurance_qty for r in rows),
        "adl_lots": sum(r.event.adl_qty for r in rows),
    }
    _money(execution, "fees", sum(r.event.fee for r in rows))
    out["execution"] = execution

    # -- intensity
    per_second = _buckets(rows, NS_PER_SECOND)
    out["liquidation_notional_per_second"] = [
        [ts, notional, count] for ts, (notional, count) in sorted(per_second.items())]
    peak = max(per_second.items(), key=lambda kv: (kv[1][0], -kv[0]), default=None)
    _money(out, "max_liquidation_notional_per_second", peak[1][0] if peak else 0)
    out["peak_second_ts_ns"] = peak[0] if peak else None
    per_minute = _buckets(rows, NS_PER_MINUTE)
    peak_m = max(per_minute.items(), key=lambda kv: (kv[1][0], -kv[0]), default=None)
    _money(out, "max_liquidation_notional_per_minute", peak_m[1][0] if peak_m else 0)
    out["peak_minute_ts_ns"] = peak_m[0] if peak_m else None
    out["active_seconds"] = len(per_second)

    # -- the market around it
    samples = record.samples
    out["depth_consumed"] = _depth_consumed(samples, t.every, window)
    _prices(out, record, rows)
    _overshoot(out, samples)
    _open_interest(out, samples, window)
    out["mark_move"] = _mark_move(record, window)
    out["hawkes"] = hawkes_summary(record, rows)
    _insurance(out, record, t)
    _bad_debt_and_adl(out, record, t)
    out["cohorts"] = _cohorts(record, rows)
    out["regime"] = _regime(record, rows, out["cohorts"])
    out["amplification"] = _amplification(rows, record.baseline)
    out["conservation_ok"] = record.conservation_ok
    out["state_hash"] = record.state_hash
    return out


def _depth_consumed(samples: list[Sample], rows: list[TapeRow],
                    window: tuple[int, int] | None) -> dict[str, Any] | None:
    """The cascade window's forced flow executed on the book (the traders' and the fund's own
    liquidations) against the depth resting just before the window opened.

    The reference is the last sample taken strictly before the window's start (or the first
    sample, if none is earlier). Closing longs sells into the bid, closing shorts buys the ask.
    Without a window (no trader liquidations) nothing was consumed: the reference is the last
    sample.
    """
    if not samples:
        return None
    start = window[0] if window else samples[-1].ts_ns + 1
    before = [s for s in samples if s.ts_ns < start]
    ref = before[-1] if before else samples[0]
    out: dict[str, Any] = {"reference_ts_ns": ref.ts_ns,
                           "reference": "the last sample before the cascade window" if before
                           else "first sample (none before the cascade window)"}
    inside = [r for r in rows if window and window[0] <= r.ts_ns <= window[1]]
    for name, side, depth in (("bid", SELL, ref.bid_depth), ("ask", BUY, ref.ask_depth)):
        lots = sum(r.event.book_qty for r in inside if r.event.side == side)
        out[name] = {"book_lots": lots, "pre_cascade_depth_lots": depth,
                     "ratio": ratio_text(lots, depth)}
    return out


def _prices(out: dict[str, Any], record: RunRecord, rows: list[TapeRow]) -> None:
    spec = record.spec
    marks = [s.mark for s in record.samples if s.mark is not None]
    marks += [r.event.mark for r in rows]
    indexes = [s.index for s in record.samples if s.index is not None]
    for name, values, fn in (("min_mark", marks, min), ("max_mark", marks, max),
                             ("min_index", indexes, min), ("max_index", indexes, max)):
        value = fn(values) if values else None
        out[name] = value
        out[name + "_usd"] = None if value is None else usd_text(value * spec.tick_size)
    first = next((s for s in record.samples if s.mark is not None), None)
    last = next((s for s in reversed(record.samples) if s.mark is not None), None)
    start = first.mark if first else None
    out["mark_start"] = start
    out["mark_end"] = last.mark if last else None
    if start is not None and marks:
        out["mark_drawdown_ticks"] = start - min(marks)
        out["mark_drawdown_pct"] = ratio_text(100 * (start - min(marks)), start, 2)
    else:
        out["mark_drawdown_ticks"] = out["mark_drawdown_pct"] = None


def _forced_flow(record: RunRecord) -> list[tuple[int, int]]:
    """(ts_ns, signed lots) of every liquidation fill on the book in the watched market, the
    fund's own included: + bought (a short closed), - sold (a long closed)."""
    return [(ts, e.taker_side * e.qty) for ts, e in record.events
            if e.kind == "fill" and e.liquidation_id is not None
            and getattr(e, "symbol", record.market) == record.market]


def _mark_move(record: RunRecord, window: tuple[int, int] | None) -> dict[str, Any] | None:
    """The cascade's worst mark move, split exactly into the index's move and the basis's
    (mark - index), beside the signed forced flow that traded on the book meanwhile, and a
    per-second regression of the basis change on the forced flow around the window.

    The move runs from the reference sample (the last one before the window opens) to the
    sample in [window start, window end + 1 s] where the mark is furthest from the
    reference in the direction of the net forced flow (down when liquidations sold on net).
    None without a window or without marks and indexes at both ends.
    """
    if window is None:
        return None
    # (ts_ns, mark, index) of the samples that have both
    both = [(s.ts_ns, s.mark, s.index) for s in record.samples
            if s.mark is not None and s.index is not None]
    before = [p for p in both if p[0] < window[0]]
    inside = [p for p in both if window[0] <= p[0] <= window[1] + NS_PER_SECOND]
    if not before or not inside:
        return None
    ref_ts, ref_mark, ref_index = before[-1]
    flow = _forced_flow(record)
    net = sum(q for ts, q in flow if window[0] <= ts <= window[1])
    down = net <= 0
    to_ts, to_mark, to_index = (min(inside, key=lambda p: (p[1], p[0])) if down
                                else max(inside, key=lambda p: (p[1], -p[0])))
    move = to_mark - ref_mark
    index_move = to_index - ref_index
    basis_move = move - index_move
    lots = sum(q for ts, q in flow if ref_ts < ts <= to_ts)
    out: dict[str, Any] = {
        "rule": "from the last sample before the cascade window to the sample in the window "
                "(to 1 s after it) with the mark furthest in the direction of the net forced "
                "flow; mark move = index move + basis move, exactly",
        "direction": "down" if down else "up",
        "from_ts_ns": ref_ts, "to_ts_ns": to_ts,
        "seconds": ratio_text(to_ts - ref_ts, NS_PER_SECOND, 3),
        "mark_from": ref_mark, "mark_to": to_mark, "mark_move_ticks": move,
        "mark_move_pct": ratio_text(100 * move, ref_mark, 2),
        "index_from": ref_index, "index_to": to_index, "index_move_ticks": index_move,
        "basis_from": ref_mark - ref_index, "basis_to": to_mark - to_index,
        "basis_move_ticks": basis_move,
        "index_share": ratio_text(index_move, move) if move else None,
        "basis_share": ratio_text(basis_move, move) if move else None,
        "forced_flow_lots": lots,
        "basis_ticks_per_1000_lots": (ratio_text(1000 * basis_move, lots, 4) if lots
                                      else None),
    }
    # the basis at its furthest from the reference in the same direction, inside the window
    b_ts, b_mark, b_index = (min(inside, key=lambda p: (p[1] - p[2], p[0])) if down
                             else max(inside, key=lambda p: (p[1] - p[2], -p[0])))
    out["basis_extreme"] = {"ts_ns": b_ts, "mark": b_mark, "index": b_index,
                            "basis_ticks": b_mark - b_index,
                            "move_ticks": (b_mark - b_index) - (ref_mark - ref_index),
                            "bps_of_index": ratio_text(10_000 * (b_mark - b_index), b_index,
                                                       BPS_PLACES)}
    out["per_second"] = _basis_regression(record.samples, flow, window)
    return out


def _basis_regression(samples: list[Sample], flow: list[tuple[int, int]],
                      window: tuple[int, int]) -> dict[str, Any]:
    """Least squares of the basis change between consecutive samples on the signed forced
    flow between them, over the cascade window and REGRESSION_PAD_S either side; exact
    fractions, rounded once."""
    lo = window[0] - REGRESSION_PAD_S * NS_PER_SECOND
    hi = window[1] + REGRESSION_PAD_S * NS_PER_SECOND
    span = [(s.ts_ns, s.mark - s.index) for s in samples  # (ts_ns, basis)
            if lo <= s.ts_ns <= hi and s.mark is not None and s.index is not None]
    xs: list[int] = []
    ys: list[int] = []
    k = 0
    flow = sorted(flow)
    for prev, cur in zip(span, span[1:], strict=False):
        while k < len(flow) and flow[k][0] <= prev[0]:
            k += 1
        lots = 0
        while k < len(flow) and flow[k][0] <= cur[0]:
            lots += flow[k][1]
            k += 1
        xs.append(lots)
        ys.append(cur[1] - prev[1])
    out: dict[str, Any] = {
        "rule": f"least squares of the basis change (ticks) between consecutive samples on "
                f"the signed forced flow (lots) between them, from {REGRESSION_PAD_S} s before "
                f"the cascade window to {REGRESSION_PAD_S} s after it",
        "intervals": len(xs), "intervals_with_flow": sum(1 for x in xs if x)}
    n = len(xs)
    if n < 3:
        return out | {"slope_ticks_per_1000_lots": None, "r_squared": None}
    mx, my = Fraction(sum(xs), n), Fraction(sum(ys), n)
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    if not sxx:
        return out | {"slope_ticks_per_1000_lots": None, "r_squared": None}
    out["slope_ticks_per_1000_lots"] = ratio_text(1000 * sxy / sxx, 1, 4)
    out["r_squared"] = ratio_text(sxy * sxy, sxx * syy, 4) if syy else None
    return out


def hawkes_summary(record: RunRecord, rows: list[TapeRow]) -> dict[str, Any]:
    """The branching ratio of a discrete-time Hawkes process fitted to the traders'
    liquidations per second over the whole run, with the index's absolute return of each
    second (bps) as the exogenous driver, and without it (hawkes.py; docs/cascade.md)."""
    start = start_ts(record)
    bins = (end_ts(record) - start) // NS_PER_SECOND + 1
    counts: dict[int, int] = defaultdict(int)
    for r in rows:
        counts[(r.ts_ns - start) // NS_PER_SECOND] += 1
    driver = [0.0] * bins
    previous: int | None = None
    for s in record.samples:
        if s.index is None:
            continue
        if previous is not None and previous > 0:
            second = (s.ts_ns - start) // NS_PER_SECOND
            driver[second] += abs(s.index - previous) * 10_000 / previous
        previous = s.index
    driven = hawkes.fit(counts, bins, driver, max_lag=HAWKES_MAX_LAG_S)
    alone = hawkes.fit(counts, bins, None, max_lag=HAWKES_MAX_LAG_S)
    return {"model": "N_t ~ Poisson(mu + gamma x_t + n sum_k w_k N_(t-k)): one-second bins "
                     "of trader liquidations over the whole run, x_t = |index return| of "
                     "second t in bps, w a geometric kernel over "
                     f"{HAWKES_MAX_LAG_S} s; maximum likelihood (EM)",
            # an estimate, not an exact ratio: a float's decimal string, like the ratios
            "branching_ratio": _estimate(driven.branching_ratio),
            "branching_ratio_without_driver": _estimate(alone.branching_ratio),
            "with_index_driver": hawkes.as_dict(driven, MULTIPLIER_PLACES),
            "without_driver": hawkes.as_dict(alone, MULTIPLIER_PLACES)}


def _estimate(x: float | None) -> str | None:
    return None if x is None else f"{x:.{MULTIPLIER_PLACES}f}"


def _overshoot(out: dict[str, Any], samples: list[Sample]) -> None:
    """mark - index at the samples (ticks; bps of the index). Largest below and above."""
    below: tuple[int, int, Sample] | None = None  # (ticks, index, sample)
    above: tuple[int, int, Sample] | None = None
    for s in samples:
        if s.mark is None or s.index is None or s.index <= 0:
            continue
        gap = s.mark - s.index
        if gap < 0 and (below is None or gap < below[0]):
            below = (gap, s.index, s)
        if gap > 0 and (above is None or gap > above[0]):
            above = (gap, s.index, s)
    detail: dict[str, Any] = {}
    for name, found in (("below", below), ("above", above)):
        detail[name] = None if found is None else {
            "ticks": found[0], "bps": ratio_text(10_000 * found[0], found[1], BPS_PLACES),
            "ts_ns": found[2].ts_ns, "mark": found[2].mark, "index": found[1]}
    out["mark_overshoot"] = detail
    candidates = [c for c in (below, above) if c is not None]
    worst = max(candidates, key=lambda c: abs(c[0]), default=None)
    out["max_mark_overshoot_ticks"] = worst[0] if worst else 0
    out["max_mark_overshoot_bps"] = (
        ratio_text(10_000 * worst[0], worst[1], BPS_PLACES) if worst
        else ratio_text(0, 1, BPS_PLACES))


def _open_interest(out: dict[str, Any], samples: list[Sample],
                   window: tuple[int, int] | None) -> None:
    """Open interest across the cascade window: from the last sample before its start to the
    first sample at or after its end (min and max between them). Without a window, across the
    whole run."""
    if not samples:
        out["open_interest"] = None
        return
    if window is None:
        span, over = samples, "the whole run (no cascade window)"
    else:
        lo = max((i for i, s in enumerate(samples) if s.ts_ns < window[0]), default=0)
        hi = next((i for i, s in enumerate(samples) if s.ts_ns >= window[1]), len(samples) - 1)
        span, over = samples[lo:hi + 1], "the cascade window"
    values = [s.open_interest for s in span]
    start, end = values[0], values[-1]
    out["open_interest"] = {"over": over, "start_ts_ns": span[0].ts_ns,
                            "end_ts_ns": span[-1].ts_ns, "start": start, "end": end,
                            "min": min(values), "max": max(values), "change": end - start,
                            "change_pct": ratio_text(100 * (end - start), start, 2)}


def _insurance(out: dict[str, Any], record: RunRecord, t: Tape) -> None:
    start, end = record.insurance_fund_start, record.insurance_fund_end
    _money(out, "insurance_fund_start", start)
    _money(out, "insurance_fund_end", end)
    values = [start, end] + [s.insurance_fund for s in record.samples]
    low = min(values)
    _money(out, "insurance_fund_min", low)
    _money(out, "insurance_fund_drawdown", start - low)
    out["insurance_fund_drawdown_pct"] = ratio_text(100 * (start - low), start, 2)
    _money(out, "insurance_fund_change", end - start)
    # the path: the points where the fund's cash changed, at most PATH_POINTS of them
    xs, ys, previous = [], [], None
    for s in record.samples:
        if s.insurance_fund != previous:
            xs.append(s.ts_ns)
            ys.append(s.insurance_fund)
            previous = s.insurance_fund
    xs, ys = decimate(xs, ys, PATH_POINTS)
    out["insurance_fund_path"] = [[x, y] for x, y in zip(xs, ys, strict=True)]
    out["insurance_takeovers"] = len(t.takeovers)
    out["insurance_takeover_lots"] = sum(e.qty for _, e in t.takeovers)


def _bad_debt_and_adl(out: dict[str, Any], record: RunRecord, t: Tape) -> None:
    mult = record.spec.multiplier
    out["adl_count"] = len(t.adl)
    out["adl_lots"] = sum(e.qty for _, e in t.adl)
    _money(out, "adl_notional", sum(e.qty * e.price * mult for _, e in t.adl))
    out["adl_accounts"] = len({e.account_id for _, e in t.adl})
    out["adl_liquidations"] = len({e.liquidation_id for _, e in t.adl})
    # the Hyperliquid target's ratio: positions auto-deleveraged per position liquidated (one
    # market: an account is a position); traders only on both sides
    liquidated = len({r.event.account_id for r in t.rows})
    out["adl_accounts_per_liquidated_account"] = ratio_text(
        len({e.account_id for _, e in t.adl if e.account_id >= 0}), liquidated) \
        if liquidated else None
    out["bad_debt_events"] = len(t.bad_debt)
    _money(out, "bad_debt", sum(e.uncovered for _, e in t.bad_debt))
    _money(out, "bad_debt_covered", sum(e.covered for _, e in t.bad_debt))
    _money(out, "bad_debt_total", sum(e.amount for _, e in t.bad_debt))
    out["funding_settlements"] = len(t.funding)
    _money(out, "funding_paid", sum(e.paid for _, e in t.funding))


RETAIL_ROLES = ("ant", "inverse")


def _regime(record: RunRecord, rows: list[TapeRow],
            cohorts: list[dict[str, Any]]) -> dict[str, Any]:
    """The same keys under either regime (docs/scenarios.md, "The margin-loan regime"):
    forced selling is the venue's liquidations of traders plus, on the margin loan, the
    broker's forced sales (반대매매) as they fill; what the retail cohorts lost; the broker's
    calls and top-ups (zero on the perp). Who absorbs the losses is in the top-level
    insurance-fund, ADL and bad-debt keys: on the margin loan the venue's liquidation engine
    is the broker's last resort, so they are the broker's losses there."""
    config = record.config
    broker = config.get("run_facts", {}).get("broker") or {}
    mult = record.spec.multiplier
    sales = broker.get("sales", [])
    # (ts_ns, account, notional µ$) of every forced execution
    forced = [(r.ts_ns, r.event.account_id, r.notional) for r in rows]
    forced += [(ts, aid, abs(q) * price * mult) for ts, aid, q, price in sales]
    first = min((f[0] for f in forced), default=None)
    last = max((f[0] for f in forced), default=None)
    retail = [a for a, c in record.cohorts.items() if c.role in RETAIL_ROLES]
    out: dict[str, Any] = {
        "name": config.get("regime", "perp"),
        "rule": "forced selling = the venue's liquidations of traders' accounts + the "
                "broker's forced-sale fills (margin-loan regime only)",
        "forced_accounts": len({f[1] for f in forced}),
        "venue_liquidations": len(rows),
        "broker_forced_orders": broker.get("forced_sales", 0),
        "broker_forced_fills": len(sales),
        "broker_forced_lots": sum(abs(q) for _, _, q, _ in sales),
    }
    _money(out, "broker_forced_notional", sum(abs(q) * price * mult for _, _, q, price in sales))
    _money(out, "forced_notional", sum(f[2] for f in forced))
    out["first_forced_ts_ns"] = first
    out["last_forced_ts_ns"] = last
    out["selling_span_s"] = None if first is None or last is None else \
        ratio_text(last - first, NS_PER_SECOND, 3)
    out["forced_active_seconds"] = len({f[0] // NS_PER_SECOND for f in forced})
    out["accounts_wiped_out"] = sum(c["wiped_out"] for c in cohorts if c["role"] in RETAIL_ROLES)
    _money(out, "retail_pnl", sum(record.final_equity.get(a, 0) - record.deposits.get(a, 0)
                                  for a in retail))
    out["margin_calls"] = broker.get("margin_calls", 0)
    out["calls_cured"] = broker.get("calls_cured", 0)
    out["top_ups"] = broker.get("top_ups", 0)
    _money(out, "top_up", broker.get("top_up", 0))
    out["open_calls_at_end"] = broker.get("open_calls_at_end", 0)
    _money(out, "loans_at_end", broker.get("loans_at_end", 0))
    out["credit_response"] = _credit_response(config.get("run_facts", {}).get("days") or [],
                                              broker.get("loans_by_close") or [])
    return out


CREDIT_DROP = Fraction(-3, 100)  # the KOSPI target's drop day: close / previous close - 1 < -3%
CREDIT_HORIZON = 5


def _credit_response(days: list[dict[str, Any]],
                     loans: list[list[int]]) -> dict[str, Any] | None:
    """The margin-loan regime's counterpart of the KOSPI credit-response target
    (clients/calibration/targets.py): the broker's loans to longs at each session's close,
    relative to the close before the first simulated session that closed more than 3% below
    the previous close, in percent, on days 0..5. None on the perp, without such a day, or
    without five sessions after it."""
    by_day = {d: lent for d, lent in loans}
    for n, day in enumerate(days):
        if n == 0 or Fraction(day["close_ticks"], day["prev_close_ticks"]) - 1 >= CREDIT_DROP:
            continue
        if n + CREDIT_HORIZON >= len(days) or not by_day.get(n - 1):
            return None
        before = by_day[n - 1]
        return {"drop_day": day["date"], "before_usd": usd_text(before),
                "change_pct": [ratio_text(100 * (by_day[n + k] - before), before, 6)
                               for k in range(CREDIT_HORIZON + 1)]}
    return None


def _amplification(rows: list[TapeRow], base: dict[str, Any] | None) -> dict[str, Any] | None:
    """This run's traders' liquidations against the paired baseline's (no price impact):
    ratios of notional and of accounts; None without a baseline, a ratio None if the
    baseline liquidated nothing."""
    if base is None:
        return None
    notional = sum(r.notional for r in rows)
    accounts = len({r.event.account_id for r in rows})
    out: dict[str, Any] = {"method": base["method"],
                           "baseline_state_hash": base["state_hash"],
                           "baseline_conservation_ok": base["conservation_ok"],
                           "baseline_liquidations": base["liquidations"],
                           "baseline_liquidated_accounts": base["liquidated_accounts"]}
    _money(out, "baseline_liquidated_notional", base["liquidated_notional"])
    out["notional_ratio"] = ratio_text(notional, base["liquidated_notional"],
                                      MULTIPLIER_PLACES)
    out["baseline_hawkes_branching_ratio"] = base.get("hawkes_branching_ratio")
    out["accounts_ratio"] = ratio_text(accounts, base["liquidated_accounts"], MULTIPLIER_PLACES)
    return out


def _natural(text: str) -> list[Any]:
    """Sort key that puts "ant long 2x" before "ant long 10x"."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part)
            for part in re.split(r"(\d+)", text)]


def _cohorts(record: RunRecord, rows: list[TapeRow]) -> list[dict[str, Any]]:
    """Outcomes per cohort label, in natural order of label (accounts without a cohort
    last). Traders only (the fund's accounts have negative ids): the table sums to the
    headline."""
    accounts = set(record.cohorts) | set(record.deposits) | set(record.final_equity)
    accounts = {a for a in accounts if a >= 0} | {r.event.account_id for r in rows}
    groups: dict[str, list[int]] = defaultdict(list)
    for account in sorted(accounts):
        cohort = record.cohorts.get(account)
        groups[cohort.label if cohort else UNASSIGNED].append(account)
    liquidated: dict[int, list[TapeRow]] = defaultdict(list)
    for r in rows:
        liquidated[r.event.account_id].append(r)
    out = []
    for label in sorted(groups, key=lambda s: (s == UNASSIGNED, _natural(s))):
        members = groups[label]
        cohort = next((record.cohorts[a] for a in members if a in record.cohorts), None)
        deposits = sum(record.deposits.get(a, 0) for a in members)
        known = [a for a in members if a in record.final_equity]
        equity = sum(record.final_equity[a] for a in known)
        pnl = sum(record.final_equity[a] - record.deposits.get(a, 0) for a in known)
        loss = sum(max(0, record.deposits.get(a, 0) - record.final_equity[a]) for a in known)
        wiped = sum(1 for a in known if record.deposits.get(a, 0) > 0 and
                    record.final_equity[a] <= WIPED_OUT_KEEP * record.deposits[a])
        entry: dict[str, Any] = {
            "label": label,
            "role": cohort.role if cohort else None,
            "leverage": cohort.leverage if cohort else None,
            "accounts": len(members),
            "liquidated_accounts": sum(1 for a in members if a in liquidated),
            "liquidations": sum(len(liquidated.get(a, ())) for a in members),
        }
        _money(entry, "liquidated_notional",
               sum(r.notional for a in members for r in liquidated.get(a, ())))
        _money(entry, "deposits", deposits)
        _money(entry, "final_equity", equity)
        _money(entry, "pnl", pnl)
        _money(entry, "loss", loss)
        entry["loss_pct"] = ratio_text(100 * loss, deposits, 2)
        entry["wiped_out"] = wiped
        entry["bankrupt"] = sum(1 for a in known if record.final_equity[a] <= 0)
        out.append(entry)
    return out
