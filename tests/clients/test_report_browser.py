"""report.html in a real browser: headless Chromium loads the page from file:// (offline: plotly.js
is inlined), and the page's own markers say how many charts it drew and how many script errors
it saw (``data-charts-rendered``, ``data-script-errors`` on <body>).

Chromium comes from Debian's packages (``apt-get install -y chromium``: /usr/bin/chromium;
.ci/run installs it). Without it the tests fail under CI (the CI variable is set) and are
skipped elsewhere.

The records here are synthetic (``synthetic_record``): a seeded, venue-shaped cascade with
many generations, fills, takeovers, ADL and bad debt, so the page is exercised on more than
the three liquidations of the hand-computed run (tests/clients/test_cascade_metrics.py).
"""

from __future__ import annotations

import random
import re
from pathlib import Path

from gaemi.clients.sim.cascade.metrics import summarize
from gaemi.clients.sim.cascade.record import Cohort, RunRecord, Sample
from gaemi.clients.sim.cascade.report import CHARTS, write_outputs
from gaemi.risk import preset
from gaemi.risk.events import (
    Adl,
    BadDebt,
    Cause,
    Fill,
    FundingSettled,
    InsuranceTakeover,
    Liquidation,
)
from tests.clients.browser import chromium_dom, layout

NS = 1_000_000_000
SYM = "SKHYNIX-PERP"
COHORTS = (Cohort("ant long 3x", "ant", 3), Cohort("ant long 10x", "ant", 10),
           Cohort("ant inverse 2x", "inverse", 2), Cohort("market maker", "market_maker", 1))


def synthetic_record(liquidations: int, seconds: int, *, seed: int = 1,
                     label: str = "synthetic") -> RunRecord:
    """A seeded record shaped like a venue's: the index falls 12% over the first third of the
    run and recovers; liquidations cluster in the fall, each caused by one of the last few
    with probability 0.7 (so generations run deep); events are in emission order."""
    rng = random.Random(seed)
    spec = preset(SYM, session=None)
    start = 1_760_000_000 * NS
    record = RunRecord("synthetic", seed, SYM, spec, {"label": label, "accounts": 2_000},
                       insurance_fund_start=spec.insurance_fund, commands=liquidations * 5)
    for account in range(1, 2_001):
        record.cohorts[account] = COHORTS[account % len(COHORTS)]
        record.deposits[account] = 10_000_000 * (1 + account % 7)
        record.final_equity[account] = record.deposits[account] - rng.randrange(0, 12_000_000)
    fund = spec.insurance_fund
    index = []
    for s in range(seconds):
        fall = min(s, seconds // 3) / max(1, seconds // 3)
        rise = max(0, s - seconds // 3) / seconds
        index.append(int(20_000 * (1 - 0.12 * fall + 0.05 * rise)))
    times = sorted(rng.randrange(0, max(1, seconds // 3)) * NS + rng.randrange(NS)
                   for _ in range(liquidations))
    trade_id, recent = 1, []
    by_second: dict[int, int] = {}
    for i, ts in enumerate(times, start=1):
        second = ts // NS
        mark = index[second] - rng.randrange(0, 400)
        parent = rng.choice(recent[-8:]) if recent and rng.random() < 0.7 else None
        cause = (Cause("index", i, None, None, 0) if parent is None
                 else Cause("fill", i, trade_id, parent[0], parent[1]))
        generation = cause.generation + 1
        qty = rng.randrange(1, 5_000)
        bankruptcy = mark - rng.randrange(50, 300)
        book = qty if rng.random() < 0.8 else qty // 2
        rest = qty - book
        insurance = rest if rng.random() < 0.7 else 0
        adl = rest - insurance
        events = []
        value = 0
        if book:
            for part in (book // 2, book - book // 2):
                if part:
                    price = mark - rng.randrange(0, 40)
                    value += price * part
                    events.append(Fill(SYM, trade_id, price, part, -1, 100 + i % 50, i, 9, i,
                                       0, 0, 0, i))
                    trade_id += 1
        if insurance:
            events.append(InsuranceTakeover(i, SYM, 100 + i % 50, insurance, bankruptcy))
        if adl:
            events.append(Adl(i, SYM, 1_000 + i % 30, 100 + i % 50, adl, bankruptcy, 1))
        value += rest * bankruptcy
        fee = value * spec.multiplier // 100
        fund += fee
        events.append(Liquidation(i, 1 + i % 2_000, SYM, -1, qty, value // qty, mark,
                                  bankruptcy, book, insurance, adl, fee, generation, cause))
        if rng.random() < 0.01:
            loss = rng.randrange(1, 5_000_000)
            covered = min(loss, loss // 2)
            fund -= covered
            events.append(BadDebt(1 + i % 2_000, SYM, loss, covered, loss - covered))
        record.events += [(start + ts, e) for e in events]
        by_second[second] = fund
        recent.append((i, generation))
    fund_now, oi = spec.insurance_fund, 2_000_000
    for s in range(seconds):
        fund_now = by_second.get(s, fund_now)
        oi -= rng.randrange(0, 50) if s < seconds // 3 else 0
        mark = index[s] - (rng.randrange(0, 300) if s < seconds // 3 else rng.randrange(-20, 20))
        record.samples.append(Sample(start + s * NS + NS - 1, index[s], mark, mark + 1, mark - 2,
                                     mark + 3, oi, fund_now, rng.randrange(1_000, 50_000),
                                     rng.randrange(1_000, 50_000)))
        if s and s % 3_600 == 0:
            record.events.append((start + s * NS, FundingSettled(SYM, start + s * NS, 1_000,
                                                                 mark, 5, oi, 5 * oi)))
    record.events.sort(key=lambda te: te[0])  # stable: emission order within a time
    record.insurance_fund_end = fund
    record.state_hash = f"{seed:016x}"
    record.conservation_ok = True
    return record


def _chromium_dom(page: Path, profile: Path) -> str:
    return chromium_dom(page, profile)


def _body(dom: str) -> dict[str, str]:
    tag = re.search(r"<body([^>]*)>", dom)
    assert tag, dom[:500]
    return dict(re.findall(r'([\w-]+)="([^"]*)"', tag.group(1)))


def _errors(dom: str) -> str:
    found = re.search(r'<pre id="script-errors">(.*?)</pre>', dom, re.DOTALL)
    return found.group(1) if found else ""


def test_the_report_renders_every_chart_without_script_errors(tmp_path: Path) -> None:
    # Arrange
    record = synthetic_record(400, 900, seed=3)
    paths = write_outputs(record, tmp_path / "out")

    # Act
    dom = _chromium_dom(paths["report"], tmp_path / "profile")

    # Assert
    body = _body(dom)
    assert body["data-script-errors"] == "0", _errors(dom)
    assert body["data-charts-expected"] == str(len(CHARTS)) == "7"
    assert body["data-charts-rendered"] == "7" and body["data-charts-done"] == "true"
    assert dom.count("js-plotly-plot") >= 7  # plotly marks every div it drew into
    assert dom.count('class="main-svg"') >= 14  # two SVG layers per chart
    # the page opens on the cascade window, on the exchange's clock
    assert dom.index("The cascade window: index, mark and last price") < \
        dom.index("Index, mark and last price")
    assert "Liquidation notional per second in the cascade window" in dom
    assert "the exchange's clock" in dom
    assert dom.count('class="point"') >= 1  # the bars of liquidations per second
    # the causal graph on the cascade window's time axis, before the whole-run charts
    assert dom.index("Liquidation notional per second in the cascade window") < \
        dom.index("Cascade graph: trader liquidations per second and generation") < \
        dom.index("Index, mark and last price")
    assert "set off by an index move" in dom and "caused by a liquidation" in dom
    summary = summarize(record)
    assert summary["max_generation"] >= 3  # the graph has several generations to draw
    assert f"<td>{summary['endogenous_multiplier']}</td>" in dom


def test_the_comparison_page_renders_both_runs(tmp_path: Path) -> None:
    # Arrange: the same seed (the same flow) under a second configuration
    base = synthetic_record(300, 600, seed=4, label="base")
    other = synthetic_record(120, 600, seed=4, label="deeper book")
    paths = write_outputs(base, tmp_path / "out", compare=other)

    # Act
    dom = _chromium_dom(paths["report"], tmp_path / "profile")

    # Assert: seven charts per run and the overlay
    body = _body(dom)
    assert body["data-script-errors"] == "0", _errors(dom)
    assert body["data-charts-expected"] == body["data-charts-rendered"] == "15"
    assert "A: base" in dom and "B: deeper book" in dom
    assert dom.count("js-plotly-plot") >= 15


def test_a_broken_page_is_reported_not_silently_blank(tmp_path: Path) -> None:
    # Arrange: the negative control for the markers the tests above rely on
    paths = write_outputs(synthetic_record(20, 60, seed=5), tmp_path / "out")
    page = paths["report"]
    text = page.read_text()
    page.write_text(text.replace("id='gaemi-figures'>{", "id='gaemi-figures'>{oops", 1))

    # Act
    dom = _chromium_dom(page, tmp_path / "profile")

    # Assert
    body = _body(dom)
    assert body["data-script-errors"] != "0"
    assert body["data-charts-rendered"] == "0"
    assert "JSON" in _errors(dom)


def test_no_label_is_cut_off_or_overlapping_and_no_table_overflows_at_1400_px(
        tmp_path: Path) -> None:
    # Arrange: a deep synthetic cascade, and the same seed under a second configuration
    one = write_outputs(synthetic_record(400, 900, seed=3), tmp_path / "one")["report"]
    two = write_outputs(synthetic_record(300, 600, seed=4, label="base"), tmp_path / "two",
                        compare=synthetic_record(120, 600, seed=4, label="deeper book"))["report"]

    # Act: the test's own bounding-box measurement (tests/clients/browser.py)
    single = layout(one, tmp_path / "profile-one")
    both = layout(two, tmp_path / "profile-two")

    # Assert
    assert single["width"] == both["width"] == 1_400
    assert single["problems"] == [] and both["problems"] == []
    # it measured the page: every chart, their labels, the three tables (key metrics,
    # generations, cohorts; twice over with the comparison's key table)
    assert single["charts"] == len(CHARTS) and both["charts"] == 2 * len(CHARTS) + 1
    assert single["labels"] >= 10 * len(CHARTS) and single["tables"] == 3
    assert both["tables"] == 5


def test_the_layout_check_finds_a_cut_off_label_and_an_overflowing_table(
        tmp_path: Path) -> None:
    # Arrange: the negative control: one chart loses its left margin (its y tick labels fall
    # outside it) and the page gets a table wider than the window
    page = write_outputs(synthetic_record(40, 120, seed=6), tmp_path / "out")["report"]
    text = page.read_text()
    assert text.count('"automargin":true') >= 2
    text = text.replace('"margin":{"l":60', '"margin":{"l":0', 1)
    text = text.replace('"yaxis":{"title":{"text":"USD per share","standoff":8},'
                        '"automargin":true}',
                        '"yaxis":{"title":{"text":"USD per share","standoff":8},'
                        '"automargin":false}', 1)
    wide = "<table><tr>" + "<td>123,456,789.00</td>" * 40 + "</tr></table>"
    text = text.replace("<h2>Key metrics</h2>", "<h2>Key metrics</h2>" + wide, 1)
    page.write_text(text)

    # Act
    found = layout(page, tmp_path / "profile")

    # Assert
    problems = "\n".join(found["problems"])
    assert "is cut off" in problems, problems
    assert "ends at" in problems and "past the window" in problems, problems
