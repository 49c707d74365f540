"""The sweep's report.html: each headline metric against each swept key, the mean over the
seeds with its 95% bootstrap interval (docs/cascade.md, Sweeps).

The same page machinery as the ensemble's (clients/sim/cascade/ensemble_report.py, and the
single-run report's ``_STYLE``, ``_BOOT``, ``_RENDER``): plotly.js inlined, the figures as JSON,
and on ``<body>`` the markers a headless browser reads (``data-charts-expected``,
``data-charts-rendered``, ``data-charts-done``, ``data-script-errors``).

Per charted metric and swept key, one chart: the key's values along x (as categories, in the
order given), the mean and its interval at each. With one key, one line; with two, one line per
value of the other key (each point a grid point, its numbers those of sweep.json); with more,
the other keys are pooled: each mean and interval is over every run with that value of the key
(all seeds of all the points that have it). A table lists every grid point's means.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gaemi.clients.sim.cascade.ensemble_report import _label, number_text
from gaemi.clients.sim.cascade.report import _BOOT, _RENDER, _STYLE, _esc
from gaemi.clients.sim.ensemble import exact_number, mean_interval

__all__ = ["CHART_METRICS", "write_sweep_report"]

# the charted metrics, in page order, with their y-axis titles (one without values is left out)
CHART_METRICS: tuple[tuple[str, str], ...] = (
    ("liquidated_notional_usd", "USD"),
    ("liquidated_accounts", "accounts"),
    ("endogenous_multiplier", "total ÷ first-generation notional"),
    ("cascade_duration_s", "seconds"),
    ("mark_drawdown_pct", "%"),
    ("adl_count", "ADL events"),
    ("amplification_notional_ratio", "run ÷ baseline notional"),
)
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
            "#7f7f7f", "#bcbd22", "#17becf")
_HEIGHT = 400
_TITLE_TOP_PX = 34
_SPREAD = 0.16  # how far apart the lines sit sideways at one value (category units, in all)
_MODEBAR_REMOVE = ("lasso2d", "select2d", "zoomIn2d", "zoomOut2d", "autoScale2d",
                   "toggleSpikelines", "hoverClosestCartesian", "hoverCompareCartesian")

_PAGE_STYLE = """
.sweep-table{width:auto;max-width:100%;table-layout:auto}
.sweep-table th{vertical-align:bottom;overflow-wrap:anywhere}
.sweep-table td{vertical-align:top}
.sweep-table .ci{color:#666;font-size:.85em;white-space:nowrap;display:block}
.sweep-table .mean{white-space:nowrap}
.sweep-table th.key,.sweep-table td.key{max-width:12em;overflow-wrap:anywhere}
.charts{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:.8em 1.2em}
.charts>div{min-width:0}
.charts .chart{min-height:400px;margin:0}
.bad{color:#b00;font-weight:600}
"""


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _tick(text: str, limit: int = 24) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _has_values(description: dict[str, Any], name: str) -> bool:
    return any(p["metrics"][name]["n"] for p in description["points"])


# -- the charts -----------------------------------------------------------------------------------


def _series(description: dict[str, Any], rows: list[dict[str, Any]], name: str, k: int
            ) -> tuple[list[tuple[str, list[dict[str, Any] | None]]], str]:
    """The lines of the chart of metric ``name`` against key ``k``: (line name, the stat at
    each of the key's values), and what the lines are."""
    grid = description["grid"]
    values = grid[k]["values"]
    points = description["points"]
    key = grid[k]["key"]

    def at(match: dict[str, Any]) -> dict[str, Any] | None:
        for p in points:
            if all(p["values"][kk] == vv and type(p["values"][kk]) is type(vv)
                   for kk, vv in match.items()):
                return dict(p["metrics"][name])
        return None

    if len(grid) == 1:
        return [("mean", [at({key: v}) for v in values])], "one line: the grid points"
    if len(grid) == 2:
        other = grid[1 - k]
        return ([(f"{other['key']} = {_text(w)}",
                  [at({key: v, other["key"]: w}) for v in values]) for w in other["values"]],
                f"one line per value of {other['key']}")
    labels = {p["point"]: p["values"] for p in points}
    pooled: list[dict[str, Any] | None] = []
    for v in values:
        mine = [r for r in rows if labels[r["point"]][key] == v]
        pooled.append(mean_interval([x for r in mine if (x := exact_number(r[name] or None))
                                 is not None]))
    return [("pooled", pooled)], "the other keys pooled"


def _figure(description: dict[str, Any], rows: list[dict[str, Any]], name: str, y_title: str,
            k: int) -> dict[str, Any]:
    grid = description["grid"]
    key = grid[k]["key"]
    values = grid[k]["values"]
    lines, what = _series(description, rows, name, k)
    data = []
    for j, (line, stats) in enumerate(lines):
        offset = 0.0 if len(lines) == 1 else (j / (len(lines) - 1) - 0.5) * _SPREAD
        xs, ys, lows, highs, texts = [], [], [], [], []
        for i, stat in enumerate(stats):
            if not stat or not stat.get("n"):
                continue
            xs.append(i + offset)
            ys.append(stat["mean"])
            lows.append(max(0.0, stat["mean"] - stat["ci_low"]))
            highs.append(max(0.0, stat["ci_high"] - stat["mean"]))
            texts.append(f"{_esc(key)} = {_esc(_text(values[i]))}<br>{_esc(line)}<br>"
                         f"mean {number_text(stat['mean'])}<br>95% interval "
                         f"[{number_text(stat['ci_low'])}, {number_text(stat['ci_high'])}]"
                         f"<br>n = {stat['n']}")
        color = _PALETTE[j % len(_PALETTE)]
        data.append({"type": "scatter", "mode": "lines+markers", "name": _esc(_tick(line, 40)),
                     "x": xs, "y": ys, "text": texts,
                     "hovertemplate": "%{text}<extra></extra>",
                     "line": {"color": color, "width": 2},
                     "marker": {"size": 8, "color": color},
                     "error_y": {"type": "data", "symmetric": False, "array": highs,
                                 "arrayminus": lows, "color": color, "thickness": 1.5,
                                 "width": 6}})
    legend = len(lines) > 1
    layout: dict[str, Any] = {
        "title": {"text": _esc(f"{_label(name)} by {_tick(key, 48)}"), "font": {"size": 14},
                  "x": 0.01, "xanchor": "left", "y": 1 - _TITLE_TOP_PX / _HEIGHT,
                  "yanchor": "top"},
        "margin": {"l": 80, "r": 30, "t": 72, "b": 60, "pad": 4},
        "height": _HEIGHT + (40 if legend else 0),
        "modebar": {"remove": list(_MODEBAR_REMOVE)},
        "showlegend": legend, "template": None, "hovermode": "closest",
        "legend": {"orientation": "h", "x": 0, "xanchor": "left", "y": -0.22,
                   "yanchor": "top", "font": {"size": 11}},
        "xaxis": {"title": {"text": _esc(_tick(key, 60)), "standoff": 8}, "automargin": True,
                  "tickmode": "array", "tickvals": list(range(len(values))),
                  "ticktext": [_esc(_tick(_text(v))) for v in values],
                  "range": [-0.5, len(values) - 0.5], "showgrid": False, "zeroline": False,
                  "fixedrange": True},
        "yaxis": {"title": {"text": y_title, "standoff": 12}, "automargin": True,
                  "tickformat": ",~r", "separatethousands": True, "gridcolor": "#eee",
                  "zeroline": False},
        "meta": {"lines": what},
    }
    return {"data": data, "layout": layout}


def _charts(description: dict[str, Any], rows: list[dict[str, Any]]
            ) -> tuple[dict[str, dict[str, Any]], list[str]]:
    figures: dict[str, dict[str, Any]] = {}
    cells: list[str] = []
    for name, y_title in CHART_METRICS:
        if not _has_values(description, name):
            continue
        for k in range(len(description["grid"])):
            div = f"sweep-{name}-k{k}"
            figures[div] = _figure(description, rows, name, y_title, k)
            cells.append(f"<div class='chart' id='{div}'></div>")
    return figures, cells


# -- the table ------------------------------------------------------------------------------------


def _stat_cell(stat: dict[str, Any]) -> str:
    if not stat or not stat.get("n"):
        return "<td>–</td>"
    data = (f" data-mean='{stat['mean']!r}' data-ci-low='{stat['ci_low']!r}'"
            f" data-ci-high='{stat['ci_high']!r}' data-n='{stat['n']}'")
    return (f"<td{data}><span class='mean'>{_esc(number_text(stat['mean']))}</span>"
            f"<span class='ci'>[{_esc(number_text(stat['ci_low']))}, "
            f"{_esc(number_text(stat['ci_high']))}]</span></td>")


def _points_table(description: dict[str, Any]) -> str:
    keys = [g["key"] for g in description["grid"]]
    metrics = [(n, t) for n, t in CHART_METRICS if _has_values(description, n)]
    out = ["<table class='sweep-table' id='sweep-points'><thead><tr><th>point</th>",
           *(f"<th class='key'>{_esc(k)}</th>" for k in keys), "<th>runs</th>",
           *(f"<th>{_esc(_label(n))}</th>" for n, _ in metrics), "<th>conserved</th>",
           "</tr></thead><tbody>"]
    for p in description["points"]:
        cells = [f"<td>{_esc(p['point'])}</td>",
                 *(f"<td class='key'>{_esc(_text(p['values'][k]))}</td>" for k in keys),
                 f"<td>{p['runs']}</td>",
                 *(_stat_cell(p["metrics"][n]) for n, _ in metrics),
                 "<td>yes</td>" if p["conservation_ok"] else "<td class='bad'>no</td>"]
        out.append(f"<tr data-point='{_esc(p['point'])}'>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


# -- the page -------------------------------------------------------------------------------------


def _note(description: dict[str, Any]) -> str:
    seeds = description["seeds"]
    ray = description.get("ray") or {}
    boot = description.get("bootstrap") or {}
    grid = description["grid"]
    nodes = ray.get("nodes")
    executor = (f"Ray ({_esc(nodes)} node{'s' if nodes != 1 else ''}, {_esc(ray.get('cpus'))} "
                f"CPUs, {_esc(ray.get('address', 'local'))}, Ray "
                f"{_esc(ray.get('version', '?'))})") if ray else "Ray"
    conserved = ("<span>yes</span>" if description["conservation_ok"]
                 else "<span class='bad'>no</span>")
    keys = " × ".join(f"{_esc(g['key'])} ({len(g['values'])})" for g in grid)
    if len(grid) == 1:
        lines = "Each chart has one line: the grid points."
    elif len(grid) == 2:
        lines = ("Each chart draws one line per value of the other key: every dot is one grid "
                 "point, its numbers those of sweep.json.")
    else:
        lines = (f"With {len(grid)} keys the other keys are pooled: each dot is the mean over "
                 "every run with that value of the key (all seeds of all the grid points that "
                 "have it), and its interval is of that pooled mean.")
    return (
        f"<p class='note'>Scenario {_esc(description['scenario']['name'])} "
        f"({_esc(description['scenario']['ref'])}) · grid {keys}: "
        f"{len(description['points'])} points, each on the same {len(seeds)} seed"
        f"{'s' if len(seeds) != 1 else ''} ({seeds[0]}–{seeds[-1]}) · {description['runs']} "
        f"runs · executor {executor} · intervals: {boot.get('level', 0.95):.0%} bootstrap "
        f"({_esc(boot.get('method'))}; {int(boot.get('resamples', 0)):,} resamples, rng seed "
        f"{_esc(boot.get('rng_seed'))}) · all runs conserved money: {conserved}.</p>"
        f"<p class='note'>{_esc(lines)} The key's values sit along x in the order given, "
        "evenly spaced whatever their size; lines are drawn slightly apart so their bars do "
        "not hide one another. An interval says how uncertain a mean over these seeds of this "
        "model is, not how far the model is from the real market. Every point runs on the "
        "same seeds, so a difference between points is the same flow under other "
        "parameters.</p>")


def _html(description: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    from plotly.offline import get_plotlyjs

    title = f"Gaemi sweep · {description['scenario']['name']}"
    figures, cells = _charts(description, rows)
    payload = json.dumps(figures, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    return "".join([
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{_esc(title)}</title><style>{_STYLE}{_PAGE_STYLE}</style></head>",
        (f"<body data-charts-expected='{len(figures)}' data-charts-rendered='0' "
         "data-script-errors='0'>"),
        f"<script>{_BOOT}</script>",
        f"<h1>{_esc(title)}</h1>",
        _note(description),
        "<pre id='script-errors'></pre>",
        "<h2>Metrics by key</h2>",
        "<p class='note'>The mean over the seeds (dot) and its 95% interval (bar).</p>",
        "<div class='charts'>", *cells, "</div>",
        "<h2>Grid points</h2>", _points_table(description),
        "<p class='note'>mean [95% interval] over the point's seeds.</p>",
        f"<script>{get_plotlyjs()}</script>",
        f"<script type='application/json' id='gaemi-figures'>{payload}</script>",
        f"<script>{_RENDER}</script>",
        "</body></html>\n",
    ])


def write_sweep_report(description: dict[str, Any], rows: list[dict[str, Any]],
                       out_dir: Path) -> Path:
    """Write ``out_dir/report.html`` for a sweep and return its path. ``description`` is
    sweep.json's content, ``rows`` runs.csv's rows ordered by point and seed."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "report.html"
    path.write_text(_html(description, rows), encoding="utf-8")
    return path
