"""The ensemble's report.html in a real browser: headless Chromium loads the page from file://
(plotly.js is inlined), every chart is drawn without a script error, the table shows what
``describe`` computed, and nothing is cut off, overlaps or overflows a 1,400 px window
(tests/clients/browser.py measures it).

The ensembles here are built by hand (12 synthetic seeds of A and of B, some values undefined):
no Ray is needed; tests/clients/test_ensemble.py runs the real thing.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

from gaemi.clients.sim.cascade.ensemble_report import CHART_METRICS, REGIME_CHART_METRICS
from gaemi.clients.sim.ensemble import METRICS, EnsembleResult, describe, write_ensemble
from tests.clients.browser import chromium_dom, layout

SEEDS = list(range(7, 19))  # 12 seeds
RAY = {"address": "local", "nodes": 1, "cpus": 2, "version": "2.x"}


def _row(scenario: str, seed: int, shift: int, undefined: frozenset[str]) -> dict[str, Any]:
    """One run's row as ``run_row`` gives it (ints, decimal strings, None). The same seed gives
    the same draw for A and B; B (``shift`` > 0) liquidates more accounts and notional on every
    seed and has the same ADL count. Seed 9 has no cascade (its multiplier and duration are
    undefined), and so has B's seed 12."""
    rng = random.Random(seed)
    accounts = rng.randrange(150, 400)
    notional = _decimal(rng.randrange(2_000_000_00, 9_000_000_00) + shift * 45_000_00, 2)
    row: dict[str, Any] = {name: None for name, _ in METRICS}
    row.update({
        "scenario": scenario, "seed": seed,
        "liquidations": accounts + rng.randrange(0, 40) + shift,
        "liquidated_accounts": accounts + shift * (25 + seed % 7),
        "liquidated_notional_usd": notional,
        "first_generation_notional_usd": _decimal(rng.randrange(500_000_00, 900_000_00), 2),
        "endogenous_multiplier": _decimal(rng.randrange(10_000, 40_000) - shift * 900, 4),
        "max_generation": rng.randrange(3, 12) + rng.randrange(0, 2) * shift,
        "time_proximity_liquidations": rng.randrange(0, 20),
        "fund_liquidations": 0,
        "fund_liquidated_notional_usd": "0.00",
        "cascade_duration_s": _decimal(rng.randrange(30_000, 900_000) + shift * rng.randrange(
            -90_000, 90_000), 3),
        "max_liquidation_notional_per_second_usd": _decimal(
            rng.randrange(50_000_00, 400_000_00) + shift * rng.randrange(0, 60_000_00), 2),
        "mark_drawdown_pct": _decimal(rng.randrange(300, 1_800) + shift * rng.randrange(
            -150, 150), 2),
        "max_mark_overshoot_bps": _decimal(rng.randrange(0, 9_000), 2),
        "mark_move_basis_share": _decimal(rng.randrange(-500, 2_000), 4),
        "hawkes_branching_ratio": _decimal(rng.randrange(1_000, 6_000) + shift * 300, 4),
        "adl_count": rng.randrange(0, 30),
        "bad_debt_usd": None,
        "amplification_notional_ratio": _decimal(rng.randrange(10_000, 14_000), 4),
        "amplification_accounts_ratio": _decimal(rng.randrange(10_000, 12_000), 4),
        "baseline_liquidated_notional_usd": _decimal(rng.randrange(2_000_000_00, 8_000_000_00),
                                                     2),
        "state_hash": f"{seed * 2 + shift:016x}", "conservation_ok": True,
    })
    if seed == 9 or (shift and seed == 12):
        row["endogenous_multiplier"] = row["cascade_duration_s"] = None
    for name in undefined:
        row[name] = None
    return row


def _decimal(units: int, places: int) -> str:
    """``units`` of 10^-places as the summary's exact decimal string."""
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), 10 ** places)
    return f"{sign}{whole}.{frac:0{places}d}"


def _result(compare: bool, undefined: frozenset[str] = frozenset()) -> EnsembleResult:
    rows_a = [_row("mm5", s, 0, undefined) for s in SEEDS]
    rows_b = [_row("mm10", s, 1, undefined) for s in SEEDS] if compare else None
    return EnsembleResult(rows_a, rows_b, "mm5", "mm10" if compare else None, list(SEEDS), RAY,
                          41.25)


def _body(dom: str) -> dict[str, str]:
    tag = re.search(r"<body([^>]*)>", dom)
    assert tag, dom[:500]
    return dict(re.findall(r'([\w-]+)="([^"]*)"', tag.group(1)))


def _errors(dom: str) -> str:
    found = re.search(r'<pre id="script-errors">(.*?)</pre>', dom, re.DOTALL)
    return found.group(1) if found else ""


def _row_cells(dom: str, metric: str) -> list[str]:
    """The <td> elements (tag and inner HTML) of the table row of ``metric``."""
    found = re.search(rf'<tr data-metric="{metric}">(.*?)</tr>', dom, re.DOTALL)
    assert found, f"no table row for {metric}"
    return re.findall(r"<td[^>]*>.*?</td>", found.group(1), re.DOTALL)


def _numbers(cell: str) -> list[float]:
    """The numbers a cell shows, read as a person would: separators dropped, − as minus."""
    text = re.sub(r"<[^>]+>", " ", cell).replace(",", "").replace("\u2212", "-")
    return [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?", text)]


def _shown(stat: dict[str, Any]) -> list[float]:
    return [stat["mean"], stat["ci_low"], stat["ci_high"]]


def _close(shown: list[float], expected: list[float]) -> bool:
    # the page shows 6 significant digits, as ensemble.json keeps them
    return len(shown) == len(expected) and all(
        abs(x - y) <= 1e-5 * max(1.0, abs(y)) for x, y in zip(shown, expected, strict=True))


def test_the_comparison_page_draws_every_seed_and_shows_what_describe_computed(
        tmp_path: Path) -> None:
    # Arrange
    result = _result(compare=True)
    description = describe(result)

    # Act
    paths = write_ensemble(result, tmp_path / "out")
    dom = chromium_dom(paths["report"], tmp_path / "profile")
    measured = layout(paths["report"], tmp_path / "profile")

    # Assert: every chart drawn (a strip and a paired chart per metric), no script error
    assert paths["report"] == tmp_path / "out" / "report.html"
    body = _body(dom)
    assert body["data-script-errors"] == "0", _errors(dom)
    expected = 2 * len(CHART_METRICS)
    assert body["data-charts-expected"] == body["data-charts-rendered"] == str(expected)
    assert body["data-charts-done"] == "true"
    assert dom.count("js-plotly-plot") >= expected
    assert "Gaemi ensemble · mm5 vs mm10" in dom
    assert "12 seeds (7–18)" in dom and "all runs conserved money: <span>yes</span>" in dom
    # the table: A, B and B − A of liquidated notional as describe computed them
    cells = _row_cells(dom, "liquidated_notional_usd")
    assert "liquidated notional (USD)" in cells[0]
    assert _close(_numbers(cells[1]), _shown(description["metrics_a"]
                                             ["liquidated_notional_usd"]))
    assert _close(_numbers(cells[2]), _shown(description["metrics_b"]
                                             ["liquidated_notional_usd"]))
    assert _close(_numbers(cells[3]), _shown(description["paired_differences"]
                                             ["liquidated_notional_usd"]))
    assert re.search(r"\d,\d{3},\d{3}", cells[1])  # thousands separated
    assert _numbers(cells[4]) == [12]
    # n counts the seeds where the metric is defined
    assert _numbers(_row_cells(dom, "endogenous_multiplier")[4]) == [11, 10, 10]
    # a difference is marked exactly when its interval excludes 0
    marked = 0
    for name, stat in description["paired_differences"].items():
        excludes = stat["n"] > 0 and (stat["ci_low"] > 0 or stat["ci_high"] < 0)
        assert ('class="sig"' in _row_cells(dom, name)[3]) == excludes, name
        marked += excludes
    assert 0 < marked < len(METRICS)
    # nothing cut off, overlapping or overflowing at 1,400 px
    assert measured["width"] == 1_400
    assert measured["problems"] == []
    assert measured["charts"] == expected and measured["labels"] > 0
    assert measured["tables"] >= 1


def test_one_scenario_alone_draws_its_strips_and_skips_a_metric_without_values(
        tmp_path: Path) -> None:
    # Arrange: no counterfactual; the ADL count undefined on every seed
    result = _result(compare=False, undefined=frozenset({"adl_count"}))
    description = describe(result)

    # Act
    paths = write_ensemble(result, tmp_path / "out")
    dom = chromium_dom(paths["report"], tmp_path / "profile")
    measured = layout(paths["report"], tmp_path / "profile")

    # Assert
    body = _body(dom)
    assert body["data-script-errors"] == "0", _errors(dom)
    expected = len(CHART_METRICS) - 1
    assert body["data-charts-expected"] == body["data-charts-rendered"] == str(expected)
    assert body["data-charts-done"] == "true"
    assert 'id="strip-adl_count"' not in dom and 'id="diff-' not in dom
    assert "Gaemi ensemble · mm5" in dom and " vs " not in dom.split("<h1>")[1][:60]
    cells = _row_cells(dom, "liquidated_accounts")
    assert len(cells) == 3  # metric, A, n
    assert _close(_numbers(cells[1]), _shown(description["metrics_a"]["liquidated_accounts"]))
    assert measured["problems"] == []
    assert measured["charts"] == expected and measured["labels"] > 0
    assert measured["tables"] >= 1


def test_the_page_is_the_same_for_the_same_ensemble(tmp_path: Path) -> None:
    # Arrange
    result = _result(compare=True)

    # Act
    first = write_ensemble(result, tmp_path / "one")["report"].read_bytes()
    again = write_ensemble(result, tmp_path / "two")["report"].read_bytes()

    # Assert: the jitter is a fixed sequence, the intervals a fixed resampling
    assert first == again


def test_a_margin_loan_ensemble_also_charts_the_regime_neutral_metrics(tmp_path: Path) -> None:
    # Arrange: B made margin calls on every seed (the margin-loan regime), A none
    result = _result(compare=True)
    for i, (a, b) in enumerate(zip(result.rows_a, result.rows_b or [], strict=True)):
        for row, calls, forced in ((a, 0, 300 + i), (b, 60 + i, 9 + i % 3)):
            row.update({"margin_calls": calls, "forced_accounts": forced,
                        "forced_notional_usd": _decimal(forced * 40_000_00, 2),
                        "accounts_wiped_out": forced // 2, "retail_pnl_usd": "-1000.00",
                        "forced_active_seconds": 1 + forced})

    # Act
    page = write_ensemble(result, tmp_path / "out")["report"]
    html = page.read_text(encoding="utf-8")
    plain = write_ensemble(_result(compare=True), tmp_path / "plain")["report"]

    # Assert: the five regime charts (a strip and a paired chart each), only when a run called
    expected = 2 * (len(CHART_METRICS) + len(REGIME_CHART_METRICS))
    assert f"data-charts-expected='{expected}'" in html
    for name, _ in REGIME_CHART_METRICS:
        assert f"strip-{name}" in html
    assert "strip-forced_notional_usd" not in plain.read_text(encoding="utf-8")
    measured = layout(page, tmp_path / "profile")
    assert measured["problems"] == []
