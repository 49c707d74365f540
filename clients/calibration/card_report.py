"""A calibration's report card as a page (report.html beside calibration.json).

The same page machinery as the other reports (clients/sim/cascade/report.py ``_STYLE``,
``_BOOT``, ``_RENDER``: plotly.js inlined, the figures as JSON, the markers a headless browser
reads). One chart: the real moments against every grid point's simulated mean, the fit's 5-95%
band as bars; then the verdict, the fit, every point and the sensitivity as tables.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gaemi.clients.sim.cascade.report import _BOOT, _RENDER, _STYLE, _esc
from gaemi.clients.sim.sweep import value_text

__all__ = ["write_card_report"]

_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf")
_PAGE_STYLE = """
.card{width:auto;max-width:100%;table-layout:auto}
.card td,.card th{vertical-align:top}
.pass{color:#1a7f37;font-weight:600}
.fail{color:#b00;font-weight:600}
.chart{min-height:420px}
"""


def _num(x: Any) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:,.4g}"
    return _esc(str(x))


def _values(values: dict[str, Any]) -> str:
    return ", ".join(f"{_esc(k)} = {_esc(value_text(v))}" for k, v in values.items())


def _figure(doc: dict[str, Any]) -> dict[str, Any]:
    target = doc["target"]
    labels = target["moments"]
    xs = list(range(len(labels)))
    data: list[dict[str, Any]] = []
    fit = (doc["fit"] or {}).get("point")
    for j, p in enumerate(doc["points"]):
        ys = p["simulated_mean"]
        if all(y is None for y in ys):
            continue
        best = p["point"] == fit
        color = _PALETTE[j % len(_PALETTE)]
        trace: dict[str, Any] = {
            "type": "scatter", "mode": "lines+markers", "x": xs, "y": ys,
            "name": _esc(("fit: " if best else "") + _values(p["values"])),
            "line": {"color": color, "width": 3 if best else 1.2,
                     "dash": "solid" if best else "dot"},
            "marker": {"size": 8 if best else 5, "color": color}}
        if best:
            bands = p["simulated_band"]
            trace["error_y"] = {
                "type": "data", "symmetric": False, "color": color, "thickness": 1.5,
                "width": 6,
                "array": [None if b is None or y is None else max(0.0, b[1] - y)
                          for b, y in zip(bands, ys, strict=True)],
                "arrayminus": [None if b is None or y is None else max(0.0, y - b[0])
                               for b, y in zip(bands, ys, strict=True)]}
        data.append(trace)
    data.append({"type": "scatter", "mode": "markers", "x": xs, "y": target["real"],
                 "name": "real", "marker": {"size": 12, "symbol": "diamond", "color": "#000"}})
    layout = {
        "title": {"text": _esc(target["title"]), "font": {"size": 14}, "x": 0.01,
                  "xanchor": "left"},
        "margin": {"l": 80, "r": 30, "t": 60, "b": 60, "pad": 4}, "height": 440,
        "template": None, "hovermode": "closest",
        "legend": {"orientation": "h", "x": 0, "xanchor": "left", "y": -0.18, "yanchor": "top",
                   "font": {"size": 11}},
        "xaxis": {"tickmode": "array", "tickvals": xs, "ticktext": [_esc(x) for x in labels],
                  "range": [-0.5, len(labels) - 0.5], "automargin": True, "showgrid": False},
        "yaxis": {"title": {"text": _esc(target["unit"]), "standoff": 10}, "automargin": True,
                  "gridcolor": "#eee"},
    }
    return {"data": data, "layout": layout}


def _table(head: list[str], rows: list[list[str]]) -> str:
    return ("<table class='card'><thead><tr>" + "".join(f"<th>{h}</th>" for h in head)
            + "</tr></thead><tbody>"
            + "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
            + "</tbody></table>")


def _band(b: Any) -> str:
    return "–" if b is None else f"[{_num(b[0])}, {_num(b[1])}]"


def _morris(screening: dict[str, Any] | None) -> str:
    if not screening:
        return ("<h2>Global sensitivity</h2><p class='note'>Not run (gaemi calibrate "
                "--morris R ranks the screened keys).</p>")
    rows = [[_esc(e["key"]), f"{_num(e['range'][0])} … {_num(e['range'][1])}",
             _num(e["mu_star"]), _num(e["mu_star_conf"]), _num(e["sigma"])]
            for e in screening["ranking"]]
    return ("<h2>Global sensitivity</h2>"
            f"<p class='note'>{_esc(screening['method'])}; output: {_esc(screening['output'])}."
            f" {_esc(screening['note'])}.</p>"
            + _table(["key (by mu*)", "range", "mu*", "± (95%)", "sigma"], rows))


def _html(doc: dict[str, Any]) -> str:
    from plotly.offline import get_plotlyjs

    target = doc["target"]
    title = f"Gaemi calibration · {target['name']}"
    fit = doc["fit"]
    verdict_class = "pass" if fit and fit["passes"] else "fail"
    figures = {"card": _figure(doc)}
    payload = json.dumps(figures, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    moments = target["moments"]
    fit_rows = []
    if fit:
        for k, label in enumerate(moments):
            fit_rows.append([_esc(label), _num(target["real"][k]),
                             _num(fit["simulated_mean"][k]), _band(fit["simulated_band"][k])])
    points = [[_esc(p["point"]), _values(p["values"]), str(p["runs"]), _num(p["error"]),
               _num(p["real_inside_band"]),
               "<span class='pass'>pass</span>" if p["passes"] else "fail"]
              for p in doc["points"]]
    sens = []
    for s in doc["sensitivity"]:
        at = "; ".join(f"{_esc(value_text(a['value']))}: error {_num(a['error'])}"
                       for a in s["at"])
        change = ", ".join(_num(x) for x in s.get("moment_change") or [])
        sens.append([_esc(s["key"]), at, _num(s.get("error_range")), change or "–"])
    free = "".join(f"<li><code>{_esc(f['key'])}</code> ∈ {{"
                   f"{', '.join(_esc(value_text(v)) for v in f['values'])}}}: {_esc(f['why'])}"
                   "</li>" for f in doc["free"])
    return "".join([
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{_esc(title)}</title><style>{_STYLE}{_PAGE_STYLE}</style></head>",
        (f"<body data-charts-expected='{len(figures)}' data-charts-rendered='0' "
         "data-script-errors='0'>"),
        f"<script>{_BOOT}</script>",
        f"<h1>{_esc(title)}</h1>",
        f"<p>{_esc(target['title'])}. Real values: <code>{_esc(target['source'])}</code>. "
        f"Scenario <code>{_esc(doc['scenario'])}</code>, seeds {doc['seeds'][0]}.."
        f"{doc['seeds'][-1]} ({len(doc['seeds'])} per point) on Ray"
        f" ({_esc((doc.get('ray') or {}).get('address', 'local'))}).</p>",
        f"<p class='{verdict_class}'>{_esc(doc['verdict'])}</p>",
        f"<p class='note'>Method: {_esc(doc['method'])}. Error: {_esc(doc['error_metric'])}. "
        f"Tolerance: {_esc(doc['tolerance'])}. Money conserved in every run: "
        f"{_esc(str(doc['conservation_ok']))}.</p>",
        f"<p class='note'>Free parameters:</p><ul>{free}</ul>",
        "<pre id='script-errors'></pre>",
        "<div class='chart' id='card'></div>",
        "<h2>The fit</h2>",
        _table(["moment", "real", "simulated mean", "simulated 5-95%"], fit_rows)
        if fit else "<p>No point gave the simulated moments.</p>",
        "<h2>Every point</h2>",
        _table(["point", "values", "runs", "error", "real inside the band", "tolerance"],
               points),
        "<h2>Sensitivity</h2>",
        "<p class='note'>Each free key's values with the others at the fit: the error at each, "
        "its range, and the change of the simulated means from the lowest to the highest "
        "value.</p>",
        _table(["key", "error at each value", "error range", "moment change"], sens),
        _morris(doc.get("global_sensitivity")),
        f"<script>{get_plotlyjs()}</script>",
        f"<script type='application/json' id='gaemi-figures'>{payload}</script>",
        f"<script>{_RENDER}</script>",
        "</body></html>\n",
    ])


def write_card_report(document: dict[str, Any], out_dir: Path) -> Path:
    """Write ``out_dir/report.html`` for calibration.json's ``document``; return its path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "report.html"
    path.write_text(_html(document), encoding="utf-8")
    return path
