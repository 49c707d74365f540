"""The cascade report: summary.json, liquidations.csv, an interactive report.html, PNG charts
and a terminal summary (docs/cascade.md).

``report.html`` is one self-contained file: plotly.js is inlined, so it opens offline from
``file://``. When every chart has been drawn the page sets ``data-charts-rendered`` on
``<body>`` to the number drawn (``data-charts-expected`` holds the number it will draw), and
every script error (``window.onerror``, an unhandled promise rejection, a failed plot) adds one
to ``data-script-errors`` and its message to ``#script-errors``: tests open the page in a
headless browser and read those attributes.

Long runs are thinned for the charts only (never for the numbers): a time series keeps at most
``SERIES_POINTS`` points (each bucket of consecutive samples keeps its minimum and maximum, so
spikes survive), the price chart marks at most ``MARKERS`` liquidations and the cascade graph
draws at most ``GRAPH_NODES`` nodes (a node: the liquidations of one second and one
generation; the largest by notional; the chart's title says how many liquidations are
shown). Liquidations per second become liquidations per bin of ``bin`` seconds when the run is
longer than ``MAX_BARS`` seconds (the axis says which).
"""

from __future__ import annotations

import csv
import html
import json
import math
from collections import defaultdict
from datetime import datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

from gaemi.clients.sim.cascade.metrics import (
    CSV_COLUMNS,
    NS_PER_SECOND,
    Tape,
    cascade_window,
    decimate,
    end_ts,
    liquidation_rows,
    ratio_text,
    start_ts,
    summarize,
    tape,
    usd_text,
)
from gaemi.clients.sim.cascade.record import RunRecord
from gaemi.risk.calendar import utc_offset_ns
from gaemi.risk.markets import UNIT

__all__ = [
    "CHARTS", "KEY_METRICS", "PNG_CHARTS", "comparison", "print_summary", "write_outputs",
]

SERIES_POINTS = 4_000
MARKERS = 5_000
GRAPH_NODES = 4_000
LABEL_COUNT = 10  # the cascade graph writes the count on a node of at least this many
MAX_BARS = 1_200
GENERATION_GROUPS = 6  # generations 1..5 apart, 6 and later together ("6+")
CHARTS = ("cascade_price", "cascade_liquidations", "graph", "price", "liquidations",
          "open_interest", "insurance_fund")
WINDOW_PAD_S = 120  # the cascade-window charts show this much before and after the window
ZONE_LABELS = {"Asia/Seoul": "KST", "America/New_York": "ET"}
# cascade_price only when there is a cascade window (trader liquidations)
PNG_CHARTS = ("cascade_price", "liquidations_per_second", "cascade_graph", "price",
              "insurance_fund", "open_interest")
_EPOCH = datetime(1970, 1, 1)
_GEN_COLORS = ("#1f77b4", "#ff7f0e", "#d62728", "#9467bd", "#8c564b", "#7f7f7f")

# (label, summary key or a function of the summary) for the terminal and the HTML tables
KEY_METRICS: tuple[tuple[str, Any], ...] = (
    ("liquidations", "liquidations"),  # traders only, as every headline number
    ("liquidated accounts", "liquidated_accounts"),
    ("liquidated notional (USD)", "liquidated_notional_usd"),
    ("first-generation notional (USD)", "first_generation_notional_usd"),
    ("max generation", "max_generation"),
    ("endogenous multiplier", "endogenous_multiplier"),
    ("amplification: notional ÷ no-impact baseline",
     lambda s: (s["amplification"] or {}).get("notional_ratio")),
    ("amplification: accounts ÷ no-impact baseline",
     lambda s: (s["amplification"] or {}).get("accounts_ratio")),
    ("baseline liquidated notional (USD)",
     lambda s: (s["amplification"] or {}).get("baseline_liquidated_notional_usd")),
    ("roots set off by time near a liquidation", lambda s: s["time_proximity"]["liquidations"]),
    ("insurance fund's own liquidations", "fund_liquidations"),
    ("insurance fund's own liquidated notional (USD)", "fund_liquidated_notional_usd"),
    ("cascade window duration (s)", "duration_s"),
    ("mean fan-out (children per liquidation)", lambda s: s["fan_out"]["mean"]),
    ("max fan-out", lambda s: s["fan_out"]["max"]),
    ("peak liquidation notional per second (USD)", "max_liquidation_notional_per_second_usd"),
    ("peak liquidation notional per minute (USD)", "max_liquidation_notional_per_minute_usd"),
    ("bid depth consumed (book lots / depth before)",
     lambda s: (s["depth_consumed"] or {}).get("bid", {}).get("ratio")),
    ("ask depth consumed (book lots / depth before)",
     lambda s: (s["depth_consumed"] or {}).get("ask", {}).get("ratio")),
    ("min mark (USD)", "min_mark_usd"),
    ("max mark (USD)", "max_mark_usd"),
    ("mark drawdown (%)", "mark_drawdown_pct"),
    ("max mark overshoot vs index (ticks)", "max_mark_overshoot_ticks"),
    ("max mark overshoot vs index (bps)", "max_mark_overshoot_bps"),
    ("cascade's worst mark move (%)", lambda s: (s["mark_move"] or {}).get("mark_move_pct")),
    ("· share from the index's move", lambda s: (s["mark_move"] or {}).get("index_share")),
    ("· share from the basis move", lambda s: (s["mark_move"] or {}).get("basis_share")),
    ("· forced flow on the book meanwhile (lots, + bought)",
     lambda s: (s["mark_move"] or {}).get("forced_flow_lots")),
    ("basis ticks per 1,000 lots of forced flow (per-second fit)",
     lambda s: ((s["mark_move"] or {}).get("per_second") or {}).get(
         "slope_ticks_per_1000_lots")),
    ("· R² of that fit",
     lambda s: ((s["mark_move"] or {}).get("per_second") or {}).get("r_squared")),
    ("Hawkes branching ratio (index returns as driver)",
     lambda s: s["hawkes"]["branching_ratio"]),
    ("Hawkes branching ratio without the driver",
     lambda s: s["hawkes"]["branching_ratio_without_driver"]),
    ("· the same on the no-impact baseline",
     lambda s: (s["amplification"] or {}).get("baseline_hawkes_branching_ratio")),
    ("open interest change (%)", lambda s: (s["open_interest"] or {}).get("change_pct")),
    # the same keys under either regime (perp or margin loan; docs/scenarios.md)
    ("regime", lambda s: _regime(s, "name")),
    ("forced accounts (liquidated, or sold by the broker)",
     lambda s: _regime(s, "forced_accounts")),
    ("forced notional (USD)", lambda s: _regime(s, "forced_notional_usd")),
    ("broker's forced sales (orders)", lambda s: _regime(s, "broker_forced_orders")),
    ("broker's forced-sale notional (USD)", lambda s: _regime(s, "broker_forced_notional_usd")),
    ("margin calls", lambda s: _regime(s, "margin_calls")),
    ("· met by a top-up", lambda s: _regime(s, "top_ups")),
    ("· top-ups (USD)", lambda s: _regime(s, "top_up_usd")),
    ("selling span, first to last forced execution (s)", lambda s: _regime(s, "selling_span_s")),
    ("seconds with forced executions", lambda s: _regime(s, "forced_active_seconds")),
    ("retail accounts wiped out", lambda s: _regime(s, "accounts_wiped_out")),
    ("retail PnL (USD)", lambda s: _regime(s, "retail_pnl_usd")),
    ("insurance fund start (USD)", "insurance_fund_start_usd"),
    ("insurance fund end (USD)", "insurance_fund_end_usd"),
    ("insurance fund min (USD)", "insurance_fund_min_usd"),
    ("insurance takeovers (lots)", "insurance_takeover_lots"),
    ("ADL count", "adl_count"),
    ("ADL notional (USD)", "adl_notional_usd"),
    ("bad debt, uncovered (USD)", "bad_debt_usd"),
    ("bad debt, covered by the fund (USD)", "bad_debt_covered_usd"),
    ("conservation ok", "conservation_ok"),
    ("state hash", "state_hash"),
)


def _regime(summary: dict[str, Any], key: str) -> Any:
    return (summary.get("regime") or {}).get(key)


def _metric(summary: dict[str, Any], key: Any) -> Any:
    return key(summary) if callable(key) else summary.get(key)


def _dollars(text: str | None) -> str:
    """Exact decimal dollars for reading: rounded to cents (half to even), thousands
    separated. Only the terminal and the HTML tables do this; JSON and CSV stay exact."""
    if text is None:
        return "–"
    cents = round(Fraction(text) * 100)
    whole, frac = divmod(abs(cents), 100)
    return f"{'-' if cents < 0 else ''}{whole:,}.{frac:02d}"


def _shown(label: str, value: Any) -> str:
    if value is None:
        return "–"
    if "(USD)" in label and isinstance(value, str):
        return _dollars(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


# -- comparison -----------------------------------------------------------------------------------


def _delta(a: Any, b: Any) -> Any:
    """b - a for two integers or two decimal strings (exact), else None (hashes, flags)."""
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return None
    if isinstance(a, int) and isinstance(b, int):
        return b - a
    if isinstance(a, str) and isinstance(b, str) and "." in a and "." in b:
        try:
            fa, fb = Fraction(a), Fraction(b)
        except ValueError:
            return None
        places = max(len(x.partition(".")[2]) for x in (a, b))
        return ratio_text(fb - fa, 1, places)
    return None


def _run_label(summary: dict[str, Any]) -> str:
    label = summary["config"].get("label") if isinstance(summary.get("config"), dict) else None
    return str(label or summary["scenario"])


def _flat(config: Any, prefix: str = "") -> dict[str, Any]:
    """Nested configuration as dotted keys: {"market": {"symbol": x}} -> {"market.symbol": x}."""
    if not isinstance(config, dict):
        return {prefix: config} if prefix else {}
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            out.update(_flat(value, name))
        else:
            out[name] = value
    return out


def comparison(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Two summaries side by side: every key metric with ``delta`` = b - a (exact), and the
    configuration values that differ (nested keys dotted: ``market.symbol``)."""
    ca, cb = _flat(a.get("config") or {}), _flat(b.get("config") or {})
    differences = {k: [ca.get(k), cb.get(k)] for k in sorted(set(ca) | set(cb))
                   if ca.get(k) != cb.get(k)}
    rows = []
    for label, key in KEY_METRICS:
        va, vb = _metric(a, key), _metric(b, key)
        rows.append({"metric": label, "a": va, "b": vb, "delta": _delta(va, vb)})
    return {
        "a": {"label": _run_label(a), "scenario": a["scenario"], "seed": a["seed"]},
        "b": {"label": _run_label(b), "scenario": b["scenario"], "seed": b["seed"]},
        "same_seed": a["seed"] == b["seed"],
        "same_market": a["market"] == b["market"],
        "config_differences": differences,
        "metrics": rows,
        "generations": {"a": a["generations"], "b": b["generations"]},
        "cohorts": {"a": a["cohorts"], "b": b["cohorts"]},
    }


# -- outputs --------------------------------------------------------------------------------------


def _json_text(value: Any, depth: int = 0) -> str:
    """Indented JSON whose lists of plain values (and each row of a list of rows) stay on one
    line: a long per-second series is one line per second, not five."""
    pad = "  " * depth
    if isinstance(value, dict) and value:
        items = [f"{pad}  {json.dumps(str(k))}: {_json_text(v, depth + 1)}"
                 for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        items = [f"{pad}  {_json_text(v, depth + 1)}" for v in value]
        return "[\n" + ",\n".join(items) + f"\n{pad}]"
    return json.dumps(value, default=str, ensure_ascii=False)


def _json_bytes(data: Any) -> bytes:
    return (_json_text(data) + "\n").encode()


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _write_run(record: RunRecord, out_dir: Path, t: Tape, summary: dict[str, Any],
               series: dict[str, Any], prefix: str) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {f"{prefix}summary": out_dir / "summary.json",
             f"{prefix}liquidations": out_dir / "liquidations.csv"}
    paths[f"{prefix}summary"].write_bytes(_json_bytes(summary))
    _write_csv(paths[f"{prefix}liquidations"], liquidation_rows(record, t))
    for name, path in _pngs(series, summary, out_dir).items():
        paths[f"{prefix}png_{name}"] = path
    return paths


def write_outputs(record: RunRecord, out_dir: str | Path, *,
                  compare: RunRecord | None = None) -> dict[str, Path]:
    """Write the report of ``record`` (and, with ``compare``, of a second run of the same flow
    under another configuration) into ``out_dir``; return what was written, by name.

    Names: ``summary``, ``liquidations``, ``report``, ``png_<chart>``; with ``compare`` also
    ``comparison`` (comparison.json) and ``compare_summary``, ``compare_liquidations``,
    ``compare_png_<chart>`` (the second run's files, in ``out_dir/compare/``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs = [(record, out, "")]
    if compare is not None:
        runs.append((compare, out / "compare", "compare_"))
    paths: dict[str, Path] = {}
    views = []
    for rec, directory, prefix in runs:
        t = tape(rec)
        summary = summarize(rec, t)
        series = _series(rec, t)
        paths.update(_write_run(rec, directory, t, summary, series, prefix))
        views.append((summary, series))
    if compare is not None:
        paths["comparison"] = out / "comparison.json"
        paths["comparison"].write_bytes(_json_bytes(comparison(views[0][0], views[1][0])))
    paths["report"] = out / "report.html"
    paths["report"].write_text(_html(views), encoding="utf-8")
    return paths


# -- chart data -----------------------------------------------------------------------------------


def _gen_group(generation: int) -> int:
    return min(generation, GENERATION_GROUPS)


def _gen_name(group: int) -> str:
    return f"gen {group}+" if group == GENERATION_GROUPS else f"gen {group}"


def _series(record: RunRecord, t: Tape) -> dict[str, Any]:
    """Everything the charts draw: times in ns (converted per chart), values in floats for
    people (USD, lots)."""
    spec = record.spec
    t0 = start_ts(record)
    px = spec.tick_size / UNIT
    samples = record.samples
    xs = [s.ts_ns for s in samples]
    zone = spec.session.zone if spec.session is not None else None
    out: dict[str, Any] = {"t0": t0, "t_end": end_ts(record),
                           "title": f"{record.scenario} · seed {record.seed} · {record.market}",
                           "zone": zone,
                           "zone_label": ZONE_LABELS.get(zone or "", "UTC")}
    for name in ("index", "mark", "last"):
        values = [None if getattr(s, name) is None else getattr(s, name) * px for s in samples]
        out[name] = decimate(xs, values, SERIES_POINTS)
    out["open_interest"] = decimate(xs, [s.open_interest for s in samples], SERIES_POINTS)
    out["insurance_fund"] = decimate(xs, [s.insurance_fund / UNIT for s in samples],
                                     SERIES_POINTS)
    rows = t.rows
    # liquidation markers on the price chart: the largest MARKERS by notional
    shown = rows if len(rows) <= MARKERS else sorted(
        sorted(rows, key=lambda r: -r.notional)[:MARKERS], key=lambda r: r.ts_ns)
    out["markers"] = {"x": [r.ts_ns for r in shown],
                      "y": [r.event.price * px for r in shown],
                      "generation": [r.generation for r in shown],
                      "shown": len(shown), "total": len(rows)}
    # liquidation notional per bin, stacked by generation group
    span = max(1, math.ceil((record.samples[-1].ts_ns - t0) / NS_PER_SECOND)
               if record.samples else 1)
    if rows:
        span = max(span, math.ceil((rows[-1].ts_ns - t0) / NS_PER_SECOND) + 1)
    width = 1 if span <= MAX_BARS else math.ceil(span / (MAX_BARS // 2))
    bins: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for r in rows:
        b = (r.ts_ns - t0) // (width * NS_PER_SECOND)
        bins[_gen_group(r.generation)][b] += r.notional
    # bins by index: bin b starts at t0 + b * width seconds
    out["per_bin"] = {"width": width, "t0": t0, "groups": {
        g: (sorted(cells), [cells[b] / UNIT for b in sorted(cells)])
        for g, cells in sorted(bins.items())}}
    # cumulative liquidated notional (for the comparison overlay)
    cum, cx, cy = 0, [t0], [0.0]
    for r in rows:
        cum += r.notional
        cx.append(r.ts_ns)
        cy.append(cum / UNIT)
    cx.append(max(cx[-1], xs[-1] if xs else t0))
    cy.append(cum / UNIT)
    out["cumulative"] = decimate(cx, cy, SERIES_POINTS)
    out["graph"] = _graph(t)
    out["window"] = _window_series(record, t, px)
    return out


def _window_series(record: RunRecord, t: Tape, px: float) -> dict[str, Any] | None:
    """The cascade window at full resolution, WINDOW_PAD_S either side: prices at every
    sample, every liquidation, notional per second by generation."""
    window = cascade_window(t)
    if window is None:
        return None
    lo = window[0] - WINDOW_PAD_S * NS_PER_SECOND
    hi = window[1] + WINDOW_PAD_S * NS_PER_SECOND
    samples = [s for s in record.samples if lo <= s.ts_ns <= hi]
    rows = [r for r in t.rows if lo <= r.ts_ns <= hi]
    out: dict[str, Any] = {"lo": lo, "hi": hi, "start": window[0], "end": window[1],
                           "x": [s.ts_ns for s in samples]}
    for name in ("index", "mark", "last"):
        out[name] = [None if getattr(s, name) is None else getattr(s, name) * px
                     for s in samples]
    out["markers"] = {"x": [r.ts_ns for r in rows], "y": [r.event.price * px for r in rows],
                      "generation": [r.generation for r in rows],
                      "text": [f"#{r.event.liquidation_id} {html.escape(r.cohort)} · generation "
                               f"{r.generation} · cause {r.event.cause.kind}" for r in rows]}
    seconds: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for r in rows:
        seconds[_gen_group(r.generation)][r.ts_ns - r.ts_ns % NS_PER_SECOND] += r.notional
    out["per_second"] = {g: (sorted(cells), [cells[s] / UNIT for s in sorted(cells)])
                         for g, cells in sorted(seconds.items())}
    return out


def _clock(ts_ns: int, series: dict[str, Any]) -> str:
    """A time on the exchange's wall clock, e.g. "2026-07-28 09:00:00 KST"."""
    zone = series["zone"]
    local = _when(ts_ns + (utc_offset_ns(zone, ts_ns) if zone else 0))
    return f"{local:%Y-%m-%d %H:%M:%S} {series['zone_label']}"


def _cascade_text(summary: dict[str, Any], series: dict[str, Any]) -> str:
    window = summary.get("cascade_window")
    if not window:
        return "no cascade window (no trader liquidations)"
    return (f"cascade window from {_esc(_clock(window['start_ts_ns'], series))} for "
            f"{_esc(window['duration_s'])} s")


# what set a liquidation off, for the graph's legend: (key, legend text, plotly symbol,
# matplotlib marker, colour)
CAUSES = (
    ("index", "an index move", "circle", "o", "#2ca02c"),
    ("trade", "an ordinary trade", "square", "s", "#7f7f7f"),
    ("funding", "funding", "triangle-up", "^", "#bcbd22"),
    ("time", "the passage of time (no parent)", "diamond", "D", "#17becf"),
    ("fill", "a liquidation's fill", "circle", "o", "#d62728"),
    ("liquidation", "a liquidation's takeover or ADL", "pentagon", "p", "#9467bd"),
)


def _cause_key(row: Any) -> str:
    kind = row.event.cause.kind
    if kind == "fill" and row.parent is None:
        return "trade"  # a fill with no liquidation behind it: an ordinary trade
    return kind if kind in {c[0] for c in CAUSES} else "index"


def _graph(t: Tape) -> dict[str, Any]:
    """The causal graph on a time axis: one node per (second, generation) with the trader
    liquidations in it, an edge per (parent node, child node, link kind) with the number of
    links, and the time-proximity pairs apart (they are not causes)."""
    clusters: dict[tuple[int, int], list[Any]] = defaultdict(list)
    for r in t.rows:
        clusters[(r.ts_ns - r.ts_ns % NS_PER_SECOND, r.generation)].append(r)
    keys = sorted(clusters)
    if len(keys) > GRAPH_NODES:  # the largest by notional
        keys = sorted(sorted(keys, key=lambda k: -sum(r.notional for r in clusters[k]))
                      [:GRAPH_NODES])
    kept = set(keys)
    home = {r.event.liquidation_id: k for k in keys for r in clusters[k]}
    biggest = max((sum(r.notional for r in clusters[k]) for k in keys), default=1) or 1
    nodes = []
    for k in keys:
        members = clusters[k]
        notional = sum(r.notional for r in members)
        causes: dict[str, int] = defaultdict(int)
        for r in members:
            causes[_cause_key(r)] += 1
        cause = max(causes.items(), key=lambda kv: (kv[1], kv[0]))[0]
        cohorts: dict[str, int] = defaultdict(int)
        for r in members:
            cohorts[r.cohort] += 1
        listed = ", ".join(f"#{r.event.liquidation_id}" for r in members[:12])
        more = f" and {len(members) - 12} more" if len(members) > 12 else ""
        nodes.append({
            "ts": k[0], "generation": k[1], "count": len(members), "cause": cause,
            "size": 7 + 26 * math.sqrt(notional / biggest),
            "text": (f"{len(members)} liquidation{'s' if len(members) > 1 else ''}, "
                     f"generation {k[1]}<br>notional {usd_text(notional)} USD<br>set off by: "
                     + ", ".join(f"{n} {c}" for c, n in sorted(causes.items()))
                     + "<br>" + ", ".join(f"{n} {html.escape(c)}"
                                          for c, n in sorted(cohorts.items()))
                     + f"<br>{listed}{more}")})
    links: dict[tuple[tuple[int, int], tuple[int, int], str], int] = defaultdict(int)
    near: dict[tuple[tuple[int, int], tuple[int, int]], int] = defaultdict(int)
    for r in t.rows:
        child = home.get(r.event.liquidation_id)
        if child is None:
            continue
        if r.parent is not None and home.get(r.parent) in kept:
            links[(home[r.parent], child, _cause_key(r))] += 1
        if r.proximate is not None and home.get(r.proximate) in kept:
            near[(home[r.proximate], child)] += 1
    return {"nodes": nodes, "edges": [(p, c, kind, n) for (p, c, kind), n in links.items()],
            "near": [(p, c, n) for (p, c), n in near.items()],
            "shown": sum(len(clusters[k]) for k in keys), "total": len(t.rows)}


# -- plotly figures (plain dicts: no validation, fast) --------------------------------------------


def _layout(title: str, x_title: str, y_title: str, **extra: Any) -> dict[str, Any]:
    layout = {"title": {"text": title, "font": {"size": 14}, "x": 0.01, "xanchor": "left"},
              "margin": {"l": 60, "r": 20, "t": 50, "b": 45}, "height": 360,
              # automargin: plotly grows the margins to fit tick labels and axis titles
              # (never cut off, never over each other)
              "xaxis": {"title": {"text": x_title, "standoff": 8}, "type": "date",
                        "automargin": True},
              "yaxis": {"title": {"text": y_title, "standoff": 8}, "automargin": True},
              "legend": {"orientation": "h", "y": -0.2}, "template": None,
              "hovermode": "closest"}
    layout.update(extra)
    return layout


def _isos(xs: list[int], zone: str | None = None) -> list[float]:
    """Times for plotly's date axis: milliseconds since the epoch (plotly reads numbers on a
    date axis that way; a float keeps microseconds at today's dates), shifted to the
    exchange's wall clock when ``zone`` is given (plotly draws a date axis without zones)."""
    if zone is None:
        return [x / 1_000_000 for x in xs]
    return [(x + utc_offset_ns(zone, x)) / 1_000_000 for x in xs]


def _when(ts_ns: int) -> datetime:
    """A time for matplotlib (naive UTC, microseconds)."""
    return _EPOCH + timedelta(microseconds=ts_ns // 1000)


def _bin_starts(bins: dict[str, Any], indices: list[int]) -> list[int]:
    return [bins["t0"] + b * bins["width"] * NS_PER_SECOND for b in indices]


def _window_figures(series: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The two charts the report opens on: prices and liquidations per second over the
    cascade window, on one time range (the axes line up)."""
    zone, label = series["zone"], series["zone_label"]
    w = series["window"]
    x_title = f"time ({label}, the exchange's clock)"
    if w is None:
        empty = _layout("No trader liquidations: no cascade window", x_title, "")
        return {"cascade_price": {"data": [], "layout": empty},
                "cascade_liquidations": {"data": [], "layout": dict(empty)}}

    span = ratio_text(w["end"] - w["start"], NS_PER_SECOND, 0)
    about = f"from {_clock(w['start'], series)} for {span} s (±{WINDOW_PAD_S} s shown)"
    x_range = _isos([w["lo"], w["hi"]], zone)
    shade = [{"type": "rect", "xref": "x", "yref": "paper", "x0": a, "x1": b, "y0": 0, "y1": 1,
              "fillcolor": "#d62728", "opacity": 0.06, "line": {"width": 0}}
             for a, b in [_isos([w["start"], w["end"] + NS_PER_SECOND], zone)]]
    data = [{"type": "scatter", "mode": "lines", "name": name, "x": _isos(w["x"], zone),
             "y": w[name], "line": {"color": color, "width": 1.5 if name != "last" else 1}}
            for name, color in (("index", "#2ca02c"), ("mark", "#1f77b4"), ("last", "#aaaaaa"))]
    m = w["markers"]
    data.append({"type": "scatter", "mode": "markers", "name": "liquidations",
                 "x": _isos(m["x"], zone), "y": m["y"], "text": m["text"],
                 "marker": {"size": 7, "symbol": "x", "color": [
                     _GEN_COLORS[_gen_group(g) - 1] for g in m["generation"]]}})
    # the time on a second, smaller line: one line overflows a half-width chart
    price = _layout("The cascade window: index, mark and last price<br>"
                    f"<span style='font-size:11px'>{about}</span>", x_title,
                    "USD per share", shapes=shade)
    price["margin"]["t"] = 60
    price["xaxis"]["range"] = x_range
    bars = [{"type": "bar", "name": _gen_name(g), "x": _isos(xs, zone), "y": ys,
             "width": 1000, "offset": 0, "marker": {"color": _GEN_COLORS[g - 1]}}
            for g, (xs, ys) in w["per_second"].items()]
    per_second = _layout("Liquidation notional per second in the cascade window, by "
                         "generation (traders)", x_title, "USD", barmode="stack", shapes=shade)
    per_second["xaxis"]["range"] = x_range
    per_second["yaxis"]["tickformat"] = "~s"
    return {"cascade_price": {"data": data, "layout": price},
            "cascade_liquidations": {"data": bars, "layout": per_second}}


def _figures(series: dict[str, Any], summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    zone = series["zone"]
    x_title = f"time ({series['zone_label']}, the exchange's clock)"
    figs: dict[str, dict[str, Any]] = _window_figures(series)
    data = []
    for name, color in (("index", "#2ca02c"), ("mark", "#1f77b4"), ("last", "#aaaaaa")):
        xs, ys = series[name]
        data.append({"type": "scatter", "mode": "lines", "name": name, "x": _isos(xs, zone),
                     "y": ys,
                     "line": {"color": color, "width": 1.5 if name != "last" else 1}})
    m = series["markers"]
    data.append({"type": "scatter", "mode": "markers", "name": "liquidations",
                 "x": _isos(m["x"], zone),
                 "y": m["y"], "marker": {"size": 6, "symbol": "x", "color": [
                     _GEN_COLORS[_gen_group(g) - 1] for g in m["generation"]]},
                 "text": [f"generation {g}" for g in m["generation"]]})
    note = "" if m["shown"] == m["total"] else f" ({m['shown']} of {m['total']} marked)"
    figs["price"] = {"data": data, "layout": _layout(f"Index, mark and last price{note}",
                                                     x_title, "USD per share")}
    bins = series["per_bin"]
    data = []
    for g, (xs, ys) in bins["groups"].items():
        data.append({"type": "bar", "name": _gen_name(g),
                     "x": _isos(_bin_starts(bins, xs), zone),
                     "y": ys, "width": bins["width"] * 1000, "offset": 0,
                     "marker": {"color": _GEN_COLORS[g - 1]}})
    unit = "second" if bins["width"] == 1 else f"{bins['width']} s"
    figs["liquidations"] = {"data": data, "layout": _layout(
        f"Liquidation notional per {unit}, by generation (the whole run"
        + ("; per second in the cascade window above)" if bins["width"] > 1 else ")"),
        x_title, "USD", barmode="stack")}
    xs, ys = series["open_interest"]
    figs["open_interest"] = {"data": [{"type": "scatter", "mode": "lines", "name": "OI",
                                       "x": _isos(xs, zone), "y": ys,
                                       "line": {"color": "#9467bd"}}],
                             "layout": _layout("Open interest (one side)", x_title, "lots")}
    xs, ys = series["insurance_fund"]
    layout = _layout("Insurance fund (cash)", x_title, "USD")
    layout["yaxis"]["tickformat"] = ",.0f"  # whole dollars on the axis; exact in the hover
    figs["insurance_fund"] = {"data": [{"type": "scatter", "mode": "lines", "name": "fund",
                                        "x": _isos(xs, zone), "y": ys,
                                        "line": {"color": "#17becf"}}],
                              "layout": layout}
    figs["graph"] = _graph_figure(series, summary)
    # the whole-run charts share one time range (their axes line up)
    whole = _isos([series["t0"], series["t_end"]], zone)
    for name in ("price", "liquidations", "open_interest", "insurance_fund"):
        figs[name]["layout"]["xaxis"]["range"] = whole
    return figs


def _graph_figure(series: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    """Generations (y) over time (x, the cascade window's range, like the charts above it):
    a node per second and generation, sized by notional, shaped by what set it off; an edge
    per causal link (its colour says how); time proximity dotted, as no cause."""
    graph, zone = series["graph"], series["zone"]

    def xy(pairs: list[tuple[tuple[int, int], tuple[int, int]]]) -> tuple[list[Any], list[Any]]:
        xs: list[Any] = []
        ys: list[Any] = []
        for (t0, g0), (t1, g1) in pairs:
            xs += [*_isos([t0, t1], zone), None]
            ys += [g0, g1, None]
        return xs, ys

    data: list[dict[str, Any]] = []
    for key, label, *_, color in CAUSES:
        pairs = [(p, c) for p, c, kind, _ in graph["edges"] if kind == key]
        if pairs:
            ex, ey = xy(pairs)
            data.append({"type": "scatter", "mode": "lines", "x": ex, "y": ey,
                         "name": f"caused by {label}", "hoverinfo": "skip",
                         "line": {"color": color, "width": 1}, "opacity": 0.6})
    if graph["near"]:
        ex, ey = xy([(p, c) for p, c, _ in graph["near"]])
        data.append({"type": "scatter", "mode": "lines", "x": ex, "y": ey, "hoverinfo": "skip",
                     "name": "time proximity (not a cause)", "opacity": 0.5,
                     "line": {"color": "#17becf", "width": 1, "dash": "dot"}})
    for key, label, symbol, _, color in CAUSES:
        nodes = [n for n in graph["nodes"] if n["cause"] == key]
        if not nodes:
            continue
        data.append({"type": "scatter", "mode": "markers+text", "name": f"set off by {label}",
                     "x": _isos([n["ts"] for n in nodes], zone),
                     "y": [n["generation"] for n in nodes],
                     "text": [str(n["count"]) if n["count"] >= LABEL_COUNT else ""
                              for n in nodes],
                     "textposition": "top center", "textfont": {"size": 10},
                     "hovertext": [n["text"] for n in nodes], "hoverinfo": "text",
                     "marker": {"size": [n["size"] for n in nodes], "symbol": symbol,
                                "color": color, "opacity": 0.8,
                                "line": {"width": 0.5, "color": "#333"}}})
    shown = "" if graph["shown"] == graph["total"] else \
        f" ({graph['shown']} of {graph['total']} liquidations shown, the largest nodes)"
    w = series["window"]
    outside = 0 if w is None else sum(n["count"] for n in graph["nodes"]
                                      if not w["lo"] <= n["ts"] <= w["hi"])
    away = (f" · {outside} more outside the cascade window: double-click to see them"
            if outside else "")
    title = (f"Cascade graph: trader liquidations per second and generation{shown}<br>"
             f"<span style='font-size:11px'>multiplier "
             f"{summary['endogenous_multiplier'] or 'n/a'} · a number: the count in a node "
             f"of {LABEL_COUNT} or more{away}</span>")
    max_gen = max(summary["max_generation"], 1)
    layout = _layout(title, f"time ({series['zone_label']}, the exchange's clock)",
                     "generation", height=460)
    layout["yaxis"].update({"dtick": 1, "range": [0.5, max_gen + 0.6]})
    layout["legend"] = {"orientation": "h", "y": -0.28}
    layout["margin"]["t"] = 70
    if w is not None:
        layout["xaxis"]["range"] = _isos([w["lo"], w["hi"]], zone)
    return {"data": data, "layout": layout}


def _overlay_figure(views: list[tuple[dict[str, Any], dict[str, Any]]]) -> dict[str, Any]:
    zone, label = views[0][1]["zone"], views[0][1]["zone_label"]
    data = []
    for (summary, series), dash, name in zip(views, ("solid", "dash"), ("A", "B"),
                                             strict=False):  # one or two runs
        xs, ys = series["mark"]
        data.append({"type": "scatter", "mode": "lines", "x": _isos(xs, zone), "y": ys,
                     "name": f"{name} mark ({_run_label(summary)})",
                     "line": {"dash": dash, "color": "#1f77b4"}})
        xs, ys = series["cumulative"]
        data.append({"type": "scatter", "mode": "lines", "x": _isos(xs, zone), "y": ys,
                     "yaxis": "y2",
                     "line": {"dash": dash, "color": "#d62728", "shape": "hv"},
                     "name": f"{name} cumulative liquidated ({_run_label(summary)})"})
    x_title = f"time ({label}, the exchange's clock)"
    return {"data": data, "layout": _layout(
        "A vs B: mark and cumulative liquidated notional", x_title, "mark, USD per share",
        height=420, yaxis2={"title": {"text": "liquidated, USD"}, "overlaying": "y",
                            "automargin": True, "tickformat": "~s",
                            "side": "right"})}


# -- the page -------------------------------------------------------------------------------------

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:1800px}
h1{font-size:1.4em;margin:0 0 .2em} h2{font-size:1.1em;margin:1.4em 0 .4em}
table{border-collapse:collapse;font-size:.9em;margin:.3em 0}
td,th{border-bottom:1px solid #ddd;padding:.25em .6em;text-align:right}
td:first-child,th:first-child{text-align:left;white-space:nowrap}
.runs{display:grid;grid-template-columns:repeat(var(--runs),minmax(0,1fr));gap:1.2em}
.runs>div{overflow-x:auto}
.chart{min-height:360px;border:1px solid #eee;margin:.4em 0}
.note{color:#666;font-size:.85em} #script-errors{color:#b00}
"""

_BOOT = """
(function(){
  var b=document.body, errs=[];
  function record(msg){errs.push(String(msg));b.setAttribute('data-script-errors',errs.length);
    var p=document.getElementById('script-errors'); if(p){p.textContent=errs.join('\\n');}}
  window.gaemiRecordError=record;
  window.onerror=function(msg,src,line){record(msg+' ('+src+':'+line+')');};
  window.addEventListener('unhandledrejection',function(e){record('rejection: '+e.reason);});
})();
"""

_RENDER = """
(function(){
  var b=document.body, figs=JSON.parse(document.getElementById('gaemi-figures').textContent);
  var ids=Object.keys(figs), done=0;
  if(typeof Plotly==='undefined'){gaemiRecordError('plotly.js did not load');return;}
  ids.forEach(function(id){
    var f=figs[id];
    Plotly.newPlot(id,f.data,f.layout,{responsive:true,displaylogo:false}).then(function(){
      done+=1; b.setAttribute('data-charts-rendered',done);
      if(done===ids.length){b.setAttribute('data-charts-done','true');}
    }).catch(function(e){gaemiRecordError('chart '+id+': '+e);});
  });
})();
"""


def _esc(value: Any) -> str:
    if value is None:
        return "–"
    return html.escape(str(value))


def _table(head: list[str], rows: list[list[Any]]) -> str:
    out = ["<table><thead><tr>", *(f"<th>{_esc(h)}</th>" for h in head), "</tr></thead><tbody>"]
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{_esc(v)}</td>" for v in row) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _generation_table(summary: dict[str, Any]) -> str:
    return _table(["generation", "liquidations", "accounts", "lots", "notional (USD)", "share",
                   "children", "branching"],
                  [[g["generation"], g["liquidations"], g["accounts"], g["lots"],
                    _dollars(g["notional_usd"]), g["share"], g["children"], g["branching"]]
                   for g in summary["generations"]])


def _cohort_table(summary: dict[str, Any]) -> str:
    # role and leverage are in summary.json; the label says both
    return _table(["cohort", "accounts", "liquidated", "liquidations",
                   "liquidated notional (USD)", "deposits (USD)", "final equity (USD)",
                   "PnL (USD)", "loss (USD)", "loss %", "wiped out", "bankrupt"],
                  [[c["label"], c["accounts"],
                    c["liquidated_accounts"], c["liquidations"],
                    *(_dollars(c[k]) for k in ("liquidated_notional_usd", "deposits_usd",
                                               "final_equity_usd", "pnl_usd", "loss_usd")),
                    c["loss_pct"], c["wiped_out"], c["bankrupt"]] for c in summary["cohorts"]])


def _html(views: list[tuple[dict[str, Any], dict[str, Any]]]) -> str:
    from plotly.offline import get_plotlyjs

    figures: dict[str, dict[str, Any]] = {}
    columns, tables = [], []
    names = ("A", "B") if len(views) > 1 else ("",)
    for (summary, series), name in zip(views, names, strict=True):
        figs = _figures(series, summary)
        prefix = f"run{name.lower() or 'a'}"
        label = (f"{name}: " if name else "") + _run_label(summary)
        parts = [f"<h2>{_esc(label)} · seed {_esc(summary['seed'])}</h2>"]
        for chart in CHARTS:
            div = f"{prefix}-{chart}"
            figures[div] = figs[chart]
            parts.append(f'<div class="chart" id="{div}"></div>')
        columns.append("<div>" + "".join(parts) + "</div>")
        # the tables run the page's full width, one run after the other
        tables.append(f"<h2>{_esc(label)}: generations</h2>" + _generation_table(summary)
                      + f"<h2>{_esc(label)}: cohorts</h2>" + _cohort_table(summary)
                      + f"<h2>{_esc(label)}: configuration</h2><pre>"
                      + _esc(_json_text(summary["config"])) + "</pre>")
    first = views[0][0]
    if len(views) > 1:
        cmp = comparison(views[0][0], views[1][0])
        head = ["metric", f"A: {cmp['a']['label']}", f"B: {cmp['b']['label']}", "B − A"]
        key_table = _table(head, [[r["metric"], _shown(r["metric"], r["a"]),
                                   _shown(r["metric"], r["b"]),
                                   "" if r["delta"] is None else _shown(r["metric"], r["delta"])]
                                  for r in cmp["metrics"]])
        diff = "".join(f"<li><code>{_esc(k)}</code>: {_esc(a)} → {_esc(b)}</li>"
                       for k, (a, b) in cmp["config_differences"].items())
        diff = diff or "<li>none</li>"
        key_table += f"<p class='note'>Configuration differences:</p><ul>{diff}</ul>"
        figures["overlay"] = _overlay_figure(views)
        key_table += '<div class="chart" id="overlay"></div>'
    else:
        key_table = _table(["metric", "value"],
                           [[label, _shown(label, _metric(first, key))]
                            for label, key in KEY_METRICS])
    payload = json.dumps(figures, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    title = f"Gaemi cascade · {first['scenario']} · {first['market']}"
    return "".join([
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{_esc(title)}</title><style>{_STYLE}</style></head>",
        (f"<body data-charts-expected='{len(figures)}' data-charts-rendered='0' "
         "data-script-errors='0'>"),
        f"<script>{_BOOT}</script>",
        f"<h1>{_esc(title)}</h1>",
        (f"<p class='note'>One seed ({_esc(first['seed'])}): one sample of the scenario's "
         "random flow, not its distribution (<code>gaemi ensemble</code> runs many) · "
         f"{_esc(first['liquidations'])} trader "
         f"liquidations (the insurance fund's own {_esc(first['fund_liquidations'])} apart) · "
         f"run from {_esc(_clock(first['start_ts_ns'], views[0][1]))} for "
         f"{_esc(first['run_duration_s'])} s · {_cascade_text(first, views[0][1])} · "
         "state hash "
         f"{_esc(first['state_hash'])}. Money in USD (exact decimals); the charts thin long "
         "series (docs/cascade.md).</p>"),
        "<pre id='script-errors'></pre>",
        "<h2>Key metrics</h2>", key_table,
        f"<div class='runs' style='--runs:{len(views)}'>", *columns, "</div>", *tables,
        f"<script>{get_plotlyjs()}</script>",
        f"<script type='application/json' id='gaemi-figures'>{payload}</script>",
        f"<script>{_RENDER}</script>",
        "</body></html>\n",
    ])


# -- PNG charts (matplotlib, Agg, no pyplot state) ------------------------------------------------


def _pngs(series: dict[str, Any], summary: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import LineCollection
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
    from matplotlib.figure import Figure
    from matplotlib.ticker import EngFormatter

    zone = series["zone"]
    x_label = f"time ({series['zone_label']}, the exchange's clock)"
    w = series["window"]
    paths: dict[str, Path] = {}

    def when(xs: list[int]) -> Any:
        # the exchange's wall clock as naive datetimes, which matplotlib plots through its
        # date converter (its type stubs list only numbers and arrays)
        return [_when(x + (utc_offset_ns(zone, x) if zone else 0)) for x in xs]

    def axes(fig: Figure, title: str, y_label: str, *, money: bool = False) -> Any:
        ax = fig.add_subplot()
        locator = AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
        if money:
            ax.yaxis.set_major_formatter(EngFormatter(sep=""))
        ax.set(title=title, xlabel=x_label, ylabel=y_label)
        return ax

    def in_window(ax: Any) -> None:
        if w is not None:
            ax.set_xlim(*date2num(when([w["lo"], w["hi"]])))
            ax.axvspan(*date2num(when([w["start"], w["end"] + NS_PER_SECOND])),
                       color="#d62728", alpha=0.06, linewidth=0)

    def save(name: str, fig: Figure) -> None:
        FigureCanvasAgg(fig)
        fig.tight_layout()
        path = out_dir / f"{name}.png"
        fig.savefig(path, dpi=100)
        paths[name] = path

    def prices(ax: Any, src: dict[str, Any], xs_key: str | None) -> None:
        for name, color in (("index", "#2ca02c"), ("mark", "#1f77b4"), ("last", "#aaaaaa")):
            xs, ys = (src[xs_key], src[name]) if xs_key else src[name]
            ax.plot(when(xs), ys, label=name, color=color, linewidth=1, zorder=3)

    if w is not None:
        fig = Figure(figsize=(11, 4))
        span = ratio_text(w["end"] - w["start"], NS_PER_SECOND, 0)
        ax = axes(fig, f"{series['title']}: the cascade window, from {_clock(w['start'], series)}"
                       f" for {span} s", "USD per share")
        prices(ax, w, "x")
        m = w["markers"]
        ax.scatter(when(m["x"]), m["y"], marker="x", s=14, linewidths=0.7, color="#d62728",
                   label="trader liquidations (execution price)", zorder=4)
        in_window(ax)
        ax.legend(loc="upper right", fontsize=8)
        save("cascade_price", fig)

    fig = Figure(figsize=(10, 4))
    ax = axes(fig, f"{series['title']}: index, mark, last (the whole run)", "USD per share")
    prices(ax, series, None)
    m = series["markers"]
    if m["x"]:
        ax.scatter(when(m["x"]), m["y"], marker="x", s=8, linewidths=0.6, alpha=0.4,
                   color="#d62728", label="liquidations (execution price)", zorder=2)
    ax.legend(loc="upper right", fontsize=8)
    save("price", fig)

    fig = Figure(figsize=(10, 4))
    if w is not None:  # one bar per second of the cascade window, stacked by generation
        ax = axes(fig, f"Liquidation notional per second in the cascade window "
                       f"(±{WINDOW_PAD_S} s), by generation (traders)", "USD", money=True)
        bottom: dict[int, float] = defaultdict(float)
        for g, (xs, ys) in w["per_second"].items():
            lefts = date2num(when(xs))
            ax.bar(lefts, ys, width=1 / 86_400, align="edge", color=_GEN_COLORS[g - 1],
                   bottom=[bottom[x] for x in xs], label=_gen_name(g))
            for x, y in zip(xs, ys, strict=True):
                bottom[x] += y
        in_window(ax)
    else:  # no trader liquidations: the (empty) whole run
        ax = axes(fig, "Liquidation notional per second (none by traders)", "USD", money=True)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper right", fontsize=8)
    save("liquidations_per_second", fig)

    for name, color, title, unit in (
            ("insurance_fund", "#17becf", "Insurance fund (cash)", "USD"),
            ("open_interest", "#9467bd", "Open interest (one side)", "lots")):
        fig = Figure(figsize=(10, 3.5))
        ax = axes(fig, title, unit, money=name == "insurance_fund")
        xs, ys = series[name]
        ax.plot(when(xs), ys, color=color, linewidth=1.2)
        save(name, fig)

    fig = Figure(figsize=(10, 4.5))
    graph = series["graph"]
    ax = axes(fig, f"Cascade graph: trader liquidations per second and generation · "
                   f"multiplier {summary['endogenous_multiplier'] or 'n/a'}", "generation")

    def segment(src: tuple[int, int], dst: tuple[int, int]) -> Any:
        (x0, x1) = date2num(when([src[0], dst[0]]))
        return ((x0, src[1]), (x1, dst[1]))

    for key, label, _, _, color in CAUSES:
        lines = [segment(p, c) for p, c, kind, _ in graph["edges"] if kind == key]
        if lines:
            ax.add_collection(LineCollection(lines, colors=color, linewidths=0.8, alpha=0.6,
                                             label=f"caused by {label}"))
    if graph["near"]:
        ax.add_collection(LineCollection([segment(p, c) for p, c, _ in graph["near"]],
                                         colors="#17becf", linewidths=0.8, alpha=0.5,
                                         linestyles="dotted", label="time proximity"))
    for key, label, _, marker, color in CAUSES:
        nodes = [n for n in graph["nodes"] if n["cause"] == key]
        if nodes:
            ax.scatter(when([n["ts"] for n in nodes]), [n["generation"] for n in nodes],
                       s=[n["size"] ** 2 / 2 for n in nodes], marker=marker, color=color,
                       edgecolors="#333", linewidths=0.4, alpha=0.8, zorder=3,
                       label=f"set off by {label}")
            for n in nodes:
                if n["count"] >= LABEL_COUNT:
                    ax.annotate(str(n["count"]), (date2num(when([n["ts"]]))[0],
                                                  n["generation"]),
                                xytext=(0, 9), textcoords="offset points", fontsize=7,
                                ha="center", va="bottom")
    top = max(summary["max_generation"], 1)
    ax.set_ylim(0.5, top + 0.5)
    ax.set_yticks(range(1, top + 1))
    in_window(ax)
    if graph["nodes"]:
        legend = ax.legend(loc="upper right", fontsize=7)
        for handle in legend.legend_handles:  # one marker size in the legend, not the first's
            if hasattr(handle, "set_sizes"):
                handle.set_sizes([30])
    save("cascade_graph", fig)
    return paths


# -- the terminal ---------------------------------------------------------------------------------


def print_summary(summary: dict[str, Any], *, compare: dict[str, Any] | None = None,
                  console: Any = None) -> None:
    """The key metrics (side by side with ``compare``), the generations and the cohorts."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    runs = [summary] + ([compare] if compare is not None else [])
    title = f"Cascade · {summary['scenario']} · seed {summary['seed']} · {summary['market']}"
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    if compare is None:
        table.add_column("value", justify="right")
    else:
        table.add_column(f"A: {_run_label(summary)}", justify="right")
        table.add_column(f"B: {_run_label(compare)}", justify="right")
        table.add_column("B − A", justify="right")
    for label, key in KEY_METRICS:
        values = [_metric(s, key) for s in runs]
        cells = [_shown(label, v) for v in values]
        if compare is not None:
            d = _delta(values[0], values[1])
            cells.append("" if d is None else _shown(label, d))
        table.add_row(label, *cells)
    console.print(table)
    for name, s in zip(("A: ", "B: ") if compare is not None else ("",), runs, strict=True):
        gens = Table(title=f"{name}generations", title_justify="left")
        for col in ("gen", "liquidations", "accounts", "notional (USD)", "share", "branching"):
            gens.add_column(col, justify="right")
        for g in s["generations"]:
            gens.add_row(str(g["generation"]), str(g["liquidations"]), str(g["accounts"]),
                         _dollars(g["notional_usd"]), str(g["share"]), str(g["branching"]))
        console.print(gens)
        cohorts = Table(title=f"{name}cohorts", title_justify="left")
        for col in ("cohort", "accounts", "liquidated", "wiped out", "loss (USD)", "loss %"):
            cohorts.add_column(col, justify="left" if col == "cohort" else "right")
        for c in s["cohorts"]:
            cohorts.add_row(c["label"], str(c["accounts"]), str(c["liquidated_accounts"]),
                            str(c["wiped_out"]), _dollars(c["loss_usd"]),
                            str(c["loss_pct"] or "–"))
        console.print(cohorts)
    seeds = "the same seed" if compare is not None else "one seed"
    console.print(f"[bold]{seeds.capitalize()} ({summary['seed']})[/bold]: one draw of the "
                  "scenario's random flow, not its distribution. For means and 95% intervals "
                  f"over seeds: gaemi ensemble --scenario {summary['scenario']}"
                  + (f" --compare {compare['scenario']}" if compare is not None else "")
                  + " --seeds 20. Headline numbers count traders only (the insurance fund's "
                  "own liquidations are listed apart).", highlight=False)
