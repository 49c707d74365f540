"""The ensemble's report.html: every seed's value of the headline metrics, with the mean and
its 95% bootstrap interval (docs/cascade.md, Ensembles).

One self-contained page, like the single-run report (clients/sim/cascade/report.py, whose page
machinery it reuses): plotly.js inlined (it opens offline from ``file://``), the figures as JSON
in a script tag, and on ``<body>`` the markers a headless browser reads: ``data-charts-expected``
(the number of figures), ``data-charts-rendered`` and ``data-charts-done`` (set as they are
drawn) and ``data-script-errors`` (with the messages in ``#script-errors``).

The page holds a table (per metric: A's mean [95% interval], B's, the paired difference B − A
seed by seed, and how many seeds each holds; a difference whose interval excludes 0 is marked)
and, per charted metric, a strip chart of every seed's value for A and B side by side with the
mean and its interval, and (with B) a chart of the per-seed differences B − A with their mean,
interval and a zero line. The numbers come from ``describe`` (ensemble.json); the dots from the
rows (runs.csv). Nothing here is random: the sideways jitter of the dots is a fixed sequence.
"""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path
from typing import Any

from gaemi.clients.sim.cascade.report import _BOOT, _RENDER, _STYLE, _esc

__all__ = ["CHART_METRICS", "LABELS", "REGIME_CHART_METRICS", "write_ensemble_report"]

# readable names of runs.csv's metrics (a metric not listed here shows its column name)
LABELS: dict[str, str] = {
    "liquidations": "trader liquidations",
    "liquidated_accounts": "liquidated accounts",
    "liquidated_notional_usd": "liquidated notional (USD)",
    "first_generation_notional_usd": "first-generation notional (USD)",
    "endogenous_multiplier": "endogenous multiplier",
    "max_generation": "max generation",
    "time_proximity_liquidations": "roots set off by time near a liquidation",
    "fund_liquidations": "insurance fund's own liquidations",
    "fund_liquidated_notional_usd": "insurance fund's own liquidated notional (USD)",
    "cascade_duration_s": "cascade window duration (s)",
    "max_liquidation_notional_per_second_usd": "peak liquidation notional per second (USD)",
    "mark_drawdown_pct": "mark drawdown (%)",
    "max_mark_overshoot_bps": "max mark overshoot vs index (bps)",
    "mark_move_basis_share": "share of the worst mark move from the basis",
    "hawkes_branching_ratio": "Hawkes branching ratio (index driver)",
    "adl_count": "ADL count",
    "bad_debt_usd": "bad debt, uncovered (USD)",
    "amplification_notional_ratio": "amplification: notional ÷ no-impact baseline",
    "amplification_accounts_ratio": "amplification: accounts ÷ no-impact baseline",
    "baseline_liquidated_notional_usd": "baseline liquidated notional (USD)",
    "forced_accounts": "forced accounts (liquidated, or sold by the broker)",
    "forced_notional_usd": "forced notional (USD)",
    "selling_span_s": "selling span, first to last forced execution (s)",
    "forced_active_seconds": "seconds with forced executions",
    "accounts_wiped_out": "retail accounts wiped out",
    "retail_pnl_usd": "retail PnL (USD)",
    "insurance_fund_change_usd": "insurance fund change (USD)",
    "adl_notional_usd": "ADL notional (USD)",
    "margin_calls": "margin calls",
    "top_ups": "margin calls met by a top-up",
    "broker_forced_notional_usd": "broker's forced-sale notional (USD)",
    "adl_accounts_per_liquidated_account": "ADL'd accounts per liquidated account",
    **{f"credit_d{k}_pct": f"credit balance, day {k} (% vs the day before the drop)"
       for k in range(6)},
}
# the charted metrics, in page order, with their y-axis titles
CHART_METRICS: tuple[tuple[str, str], ...] = (
    ("liquidated_notional_usd", "USD"),
    ("liquidated_accounts", "accounts"),
    ("endogenous_multiplier", "total ÷ first-generation notional"),
    ("max_generation", "generation"),
    ("cascade_duration_s", "seconds"),
    ("max_liquidation_notional_per_second_usd", "USD per second"),
    ("mark_drawdown_pct", "%"),
    ("adl_count", "ADL events"),
    # with --baseline only (a metric without values is not charted)
    ("amplification_notional_ratio", "run ÷ baseline notional"),
    ("hawkes_branching_ratio", "branching ratio n"),
)
# charted too when a run of the ensemble is in the margin-loan regime (it made margin calls):
# the keys that mean the same under either regime (docs/scenarios.md)
REGIME_CHART_METRICS: tuple[tuple[str, str], ...] = (
    ("forced_notional_usd", "USD"),
    ("forced_accounts", "accounts"),
    ("accounts_wiped_out", "accounts"),
    ("retail_pnl_usd", "USD"),
    ("forced_active_seconds", "seconds"),
)

_MINUS = "\u2212"
_COLORS = {"A": "#1f77b4", "B": "#ff7f0e", "diff": "#2ca02c"}
_MEAN_COLOR = "#222"
_SIGNIFICANT_COLOR = "#b00"
_JITTER = 0.13  # half the width of a strip, in category units
_GOLDEN = 0.6180339887498949
_HOVER_FORMAT = ",.6~r"  # d3: thousands separated, 6 significant digits, no trailing zeros
_HEIGHT = 400
_TITLE_TOP_PX = 34
# plotly's buttons a strip chart has no use for (zoom, pan, reset and download stay)
_MODEBAR_REMOVE = ("lasso2d", "select2d", "zoomIn2d", "zoomOut2d", "autoScale2d",
                   "toggleSpikelines", "hoverClosestCartesian", "hoverCompareCartesian")

_PAGE_STYLE = """
.ens-table{width:auto;max-width:100%}
.ens-table td,.ens-table th{vertical-align:top}
.ens-table .ci{color:#666;font-size:.9em;white-space:nowrap}
.ens-table .mean{white-space:nowrap}
.ens-table td.sig{background:#fff4cc;font-weight:600}
.ens-table .mark{color:#b00}
.charts{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:.8em 1.2em}
.charts>div{min-width:0}
.charts .chart{min-height:400px;margin:0}
.charts .empty{border:1px dashed #ddd;min-height:400px;display:flex;align-items:center;
  justify-content:center;color:#888;font-size:.9em}
.bad{color:#b00;font-weight:600}
"""


# -- numbers --------------------------------------------------------------------------------------


def _value(raw: Any) -> float | None:
    """A runs.csv cell as a float: ints and decimal strings; None (undefined) and flags are
    not values."""
    if raw is None or isinstance(raw, bool) or raw == "":
        return None
    if isinstance(raw, int):
        return float(raw)
    return float(Fraction(str(raw)))


def _exact_difference(a: Any, b: Any) -> float | None:
    """b - a for one seed, exactly (decimal strings), as a float; None if either is undefined."""
    if _value(a) is None or _value(b) is None:
        return None
    return float(Fraction(str(b)) - Fraction(str(a)))


def number_text(x: float | None) -> str:
    """A number for reading: 6 significant digits (what ensemble.json keeps), thousands
    separated, no trailing zeros, a true minus sign; "–" for none."""
    if x is None:
        return "–"
    if x == 0:
        return "0"
    places = min(8, max(0, 5 - math.floor(math.log10(abs(x)))))
    text = f"{abs(x):,.{places}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return (_MINUS if x < 0 else "") + text


def _seeds_text(seeds: list[int]) -> str:
    """Seeds compactly: runs of consecutive seeds as ranges ("7–18, 20")."""
    parts: list[str] = []
    ordered = sorted(seeds)
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        if j == i:
            parts.append(str(ordered[i]))
        elif j == i + 1:
            parts.append(f"{ordered[i]}, {ordered[j]}")
        else:
            parts.append(f"{ordered[i]}–{ordered[j]}")
        i = j + 1
    return ", ".join(parts)


def _excludes_zero(stat: dict[str, Any] | None) -> bool:
    if not stat or not stat.get("n") or stat.get("ci_low") is None:
        return False
    return bool(stat["ci_low"] > 0 or stat["ci_high"] < 0)


def _label(name: str) -> str:
    return LABELS.get(name, name.replace("_", " "))


# -- the table ------------------------------------------------------------------------------------


def _stat_cell(stat: dict[str, Any] | None, *, paired: bool = False) -> str:
    """One table cell: the mean and, below it, its interval (the numbers in data- attributes
    exactly as ensemble.json holds them)."""
    if not stat or not stat.get("n"):
        return "<td>–</td>"
    mean, low, high = stat["mean"], stat["ci_low"], stat["ci_high"]
    data = (f" data-mean='{mean!r}' data-ci-low='{low!r}' data-ci-high='{high!r}'"
            f" data-n='{stat['n']}'")
    mark = ""
    classes = ""
    if paired and _excludes_zero(stat):
        classes = " class='sig'"
        mark = " <span class='mark' title='the 95% interval excludes 0'>✱</span>"
    return (f"<td{classes}{data}><span class='mean'>{_esc(number_text(mean))}{mark}</span> "
            f"<span class='ci'>[{_esc(number_text(low))}, {_esc(number_text(high))}]</span>"
            "</td>")


def _n_text(stats: list[tuple[str, dict[str, Any] | None]], seeds: int) -> str:
    ns = [(name, (s or {}).get("n", 0)) for name, s in stats]
    if len({n for _, n in ns}) == 1:
        n = ns[0][1]
        return str(n) if n == seeds else f"{n} of {seeds}"
    return ", ".join(f"{name} {n}" for name, n in ns)


def _metrics_table(description: dict[str, Any]) -> str:
    a, b = description["a"], description["b"]
    metrics_a: dict[str, Any] = description["metrics_a"] or {}
    metrics_b: dict[str, Any] = description["metrics_b"] or {}
    paired: dict[str, Any] = description["paired_differences"] or {}
    seeds = len(description["seeds"])
    head = ["metric", f"A: {a}"]
    if b is not None:
        head += [f"B: {b}", "B − A, paired by seed"]
    head.append("n (seeds)")
    out = ["<table class='ens-table' id='ensemble-metrics'><thead><tr>",
           *(f"<th>{_esc(h)}</th>" for h in head), "</tr></thead><tbody>"]
    for name in metrics_a:
        cells = [f"<td>{_esc(_label(name))}</td>", _stat_cell(metrics_a[name])]
        stats: list[tuple[str, dict[str, Any] | None]] = [("A", metrics_a[name])]
        if b is not None:
            cells += [_stat_cell(metrics_b.get(name)),
                      _stat_cell(paired.get(name), paired=True)]
            stats += [("B", metrics_b.get(name)), ("B − A", paired.get(name))]
        cells.append(f"<td>{_esc(_n_text(stats, seeds))}</td>")
        out.append(f"<tr data-metric='{_esc(name)}'>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


# -- the charts -----------------------------------------------------------------------------------


def _jitter(i: int) -> float:
    """The i-th dot's sideways offset: a fixed low-discrepancy sequence in (-_JITTER, _JITTER)
    (evenly spread, the same on every run)."""
    return ((i * _GOLDEN + 0.5) % 1.0 - 0.5) * 2 * _JITTER


def _layout(title: str, y_title: str, **extra: Any) -> dict[str, Any]:
    """A strip chart's layout: room for long tick labels (automargin), separators on the
    values, no legend (the page says what the marks are)."""
    layout: dict[str, Any] = {
        # the title sits below the row of the plotly buttons (top right), never under them
        "title": {"text": title, "font": {"size": 14}, "x": 0.01, "xanchor": "left",
                  "y": 1 - _TITLE_TOP_PX / _HEIGHT, "yanchor": "top"},
        "margin": {"l": 80, "r": 30, "t": 72, "b": 60, "pad": 4}, "height": _HEIGHT,
        "modebar": {"remove": list(_MODEBAR_REMOVE)},
        "showlegend": False, "template": None, "hovermode": "closest",
        "xaxis": {"automargin": True, "zeroline": False, "showgrid": False,
                  "fixedrange": True},
        "yaxis": {"title": {"text": y_title, "standoff": 12}, "automargin": True,
                  "tickformat": ",~r", "separatethousands": True, "gridcolor": "#eee",
                  "zeroline": False},
    }
    layout.update(extra)
    return layout


def _dots(points: list[tuple[int, float]], center: float, color: str,
          group: str) -> dict[str, Any]:
    """Every seed's value as a dot, jittered sideways around ``center``; hover: the seed."""
    return {"type": "scatter", "mode": "markers", "name": f"{group}: seeds",
            "x": [center + _jitter(i) for i in range(len(points))],
            "y": [v for _, v in points], "customdata": [s for s, _ in points],
            "hovertemplate": (f"seed %{{customdata}}<br>%{{y:{_HOVER_FORMAT}}}"
                              f"<extra>{_esc(group)}</extra>"),
            "marker": {"size": 8, "color": color, "opacity": 0.7,
                       "line": {"width": 0.5, "color": "#fff"}}}


def _mean_mark(stat: dict[str, Any], x: float, group: str, color: str) -> dict[str, Any]:
    """The mean as a diamond, its 95% interval as an error bar."""
    mean, low, high = stat["mean"], stat["ci_low"], stat["ci_high"]
    text = (f"{_esc(group)}<br>mean {number_text(mean)}<br>95% interval "
            f"[{number_text(low)}, {number_text(high)}]<br>n = {stat['n']}")
    return {"type": "scatter", "mode": "markers", "name": f"{group}: mean, 95% interval",
            "x": [x], "y": [mean], "text": [text], "hovertemplate": "%{text}<extra></extra>",
            "marker": {"size": 12, "symbol": "diamond", "color": color,
                       "line": {"width": 1, "color": "#fff"}},
            "error_y": {"type": "data", "symmetric": False, "array": [max(0.0, high - mean)],
                        "arrayminus": [max(0.0, mean - low)], "color": color,
                        "thickness": 2, "width": 8}}


def _points(rows: list[dict[str, Any]], name: str) -> list[tuple[int, float]]:
    return [(r["seed"], v) for r in rows if (v := _value(r.get(name))) is not None]


def _tick(text: str, limit: int = 36) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _strip_figure(name: str, y_title: str, description: dict[str, Any],
                  groups: list[tuple[str, str, list[tuple[int, float]], dict[str, Any] | None]]
                  ) -> dict[str, Any]:
    """A and B side by side: dots at x = k - 0.12, the mean and its interval at x = k + 0.25."""
    data: list[dict[str, Any]] = []
    for k, (group, color, points, stat) in enumerate(groups):
        if points:
            data.append(_dots(points, k - 0.12, color, group))
        if stat and stat.get("n"):
            data.append(_mean_mark(stat, k + 0.25, group, _MEAN_COLOR))
    seeds = len(description["seeds"])
    layout = _layout(f"{_label(name)}: {seeds} seeds", y_title)
    layout["xaxis"].update({"tickmode": "array", "tickvals": list(range(len(groups))),
                            "ticktext": [_esc(_tick(g)) for g, *_ in groups],
                            "range": [-0.6, len(groups) - 0.4]})
    return {"data": data, "layout": layout}


def _difference_figure(name: str, y_title: str, points: list[tuple[int, float]],
                       stat: dict[str, Any]) -> dict[str, Any]:
    """The per-seed differences B − A, their mean and interval, and the zero line."""
    color = _SIGNIFICANT_COLOR if _excludes_zero(stat) else _MEAN_COLOR
    data = [_dots(points, -0.12, _COLORS["diff"], "B − A")]
    if stat and stat.get("n"):
        data.append(_mean_mark(stat, 0.25, "B − A", color))
    verdict = " · interval excludes 0" if _excludes_zero(stat) else ""
    layout = _layout(f"{_label(name)}: B − A per seed{verdict}", f"B − A, {y_title}",
                     shapes=[{"type": "line", "xref": "paper", "x0": 0, "x1": 1,
                              "yref": "y", "y0": 0, "y1": 0,
                              "line": {"color": "#888", "width": 1, "dash": "dash"}}])
    layout["xaxis"].update({"tickmode": "array", "tickvals": [0],
                            "ticktext": ["B − A (same seed)"], "range": [-0.6, 0.6]})
    if all(v == 0 for _, v in points):
        layout["yaxis"]["range"] = [-1, 1]  # no difference on any seed: zero in the middle
    else:
        layout["yaxis"]["rangemode"] = "tozero"  # the zero line is always in view
    return {"data": data, "layout": layout}


def _paired_points(rows_a: list[dict[str, Any]], rows_b: list[dict[str, Any]],
                   name: str) -> list[tuple[int, float]]:
    out = []
    for x, y in zip(rows_a, rows_b, strict=True):
        d = _exact_difference(x.get(name), y.get(name))
        if d is not None:
            out.append((x["seed"], d))
    return out


def _charts(description: dict[str, Any], rows_a: list[dict[str, Any]],
            rows_b: list[dict[str, Any]] | None
            ) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The figures by div id, and the grid's cells in order (a chart's div, or a note where a
    paired chart has nothing to draw, so every metric keeps its row)."""
    a, b = description["a"], description["b"]
    figures: dict[str, dict[str, Any]] = {}
    cells: list[str] = []
    every = rows_a + (rows_b or [])
    loan = any(str(r.get("margin_calls") or "0") != "0" for r in every)
    for name, y_title in CHART_METRICS + (REGIME_CHART_METRICS if loan else ()):
        points_a = _points(rows_a, name)
        points_b = _points(rows_b, name) if rows_b is not None else []
        if not points_a and not points_b:
            continue  # undefined on every seed: nothing to draw
        groups = [(f"A: {a}", _COLORS["A"], points_a,
                   (description["metrics_a"] or {}).get(name))]
        if rows_b is not None:
            groups.append((f"B: {b}", _COLORS["B"], points_b,
                           (description["metrics_b"] or {}).get(name)))
        div = f"strip-{name}"
        figures[div] = _strip_figure(name, y_title, description, groups)
        cells.append(f"<div class='chart' id='{div}'></div>")
        if rows_b is None:
            continue
        diffs = _paired_points(rows_a, rows_b, name)
        if diffs:
            div = f"diff-{name}"
            stat = (description["paired_differences"] or {}).get(name) or {}
            figures[div] = _difference_figure(name, y_title, diffs, stat)
            cells.append(f"<div class='chart' id='{div}'></div>")
        else:
            cells.append(f"<div class='empty'>{_esc(_label(name))}: no seed where both A and "
                         "B are defined, so no paired difference</div>")
    return figures, cells


# -- the page -------------------------------------------------------------------------------------


def _note(description: dict[str, Any]) -> str:
    seeds = description["seeds"]
    ray = description.get("ray") or {}
    nodes, cpus = ray.get("nodes"), ray.get("cpus")
    boot = description.get("bootstrap") or {}
    level = boot.get("level", 0.95)
    conserved = ("<span>yes</span>" if description["conservation_ok"]
                 else "<span class='bad'>no</span>")
    executor = (f"Ray ({_esc(nodes)} node{'s' if nodes != 1 else ''}, {_esc(cpus)} CPUs, "
                f"{_esc(ray.get('address', 'local'))}, Ray {_esc(ray.get('version', '?'))})")
    return (
        f"<p class='note'>{len(seeds)} seed{'s' if len(seeds) != 1 else ''} "
        f"({_esc(_seeds_text(seeds))}), {_esc(description['runs'])} runs · executor "
        f"{executor} · runtime {_esc(description.get('runtime_s'))} s · intervals: "
        f"{level:.0%} bootstrap ({_esc(boot.get('method', 'percentile, of the mean'))}; "
        f"{int(boot.get('resamples', 0)):,} resamples, rng seed {_esc(boot.get('rng_seed'))})"
        f" · all runs conserved money: {conserved}.</p>"
        "<p class='note'>A percentile bootstrap interval of the mean says how uncertain the "
        "mean is over these seeds of this model (how far it could move on other draws of the "
        "same simulated flow), not how far the model is from the real market, nor where one "
        "more seed will land (the dots show that spread). A metric undefined on a seed (the "
        "multiplier without liquidations, say) is left out of that seed's n.</p>")


def _html(description: dict[str, Any], rows_a: list[dict[str, Any]],
          rows_b: list[dict[str, Any]] | None) -> str:
    from plotly.offline import get_plotlyjs

    a, b = description["a"], description["b"]
    title = f"Gaemi ensemble · {a}" + (f" vs {b}" if b is not None else "")
    figures, cells = _charts(description, rows_a, rows_b)
    payload = json.dumps(figures, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    legend = ("Each dot is one seed (spread sideways so they do not hide one another; hover "
              "for the seed); the black diamond is the mean and its bar the 95% interval.")
    if b is not None:
        legend += (" Left: A and B side by side; right: the difference B − A on each seed "
                   "(the same flow under B's rules), its mean and interval (red when the "
                   "interval excludes 0), and the zero line.")
    table_note = ("<p class='note'>mean [95% interval]; ✱: the paired difference's "
                  "interval excludes 0.</p>" if b is not None
                  else "<p class='note'>mean [95% interval].</p>")
    return "".join([
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{_esc(title)}</title><style>{_STYLE}{_PAGE_STYLE}</style></head>",
        (f"<body data-charts-expected='{len(figures)}' data-charts-rendered='0' "
         "data-script-errors='0'>"),
        f"<script>{_BOOT}</script>",
        f"<h1>{_esc(title)}</h1>",
        _note(description),
        "<pre id='script-errors'></pre>",
        "<h2>Means over seeds</h2>", _metrics_table(description), table_note,
        "<h2>Every seed</h2>", f"<p class='note'>{_esc(legend)}</p>",
        "<div class='charts'>", *cells, "</div>",
        f"<script>{get_plotlyjs()}</script>",
        f"<script type='application/json' id='gaemi-figures'>{payload}</script>",
        f"<script>{_RENDER}</script>",
        "</body></html>\n",
    ])


def write_ensemble_report(description: dict[str, Any], rows_a: list[dict[str, Any]],
                          rows_b: list[dict[str, Any]] | None, out_dir: Path) -> Path:
    """Write ``out_dir/report.html`` for an ensemble and return its path.

    ``description`` is what ``describe`` returns (ensemble.json); ``rows_a`` and ``rows_b``
    are the runs' rows as ``run_row`` returns them (ints, decimal strings or None), B's on the
    same seeds in the same order (None without a counterfactual)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "report.html"
    path.write_text(_html(description, rows_a, rows_b), encoding="utf-8")
    return path
