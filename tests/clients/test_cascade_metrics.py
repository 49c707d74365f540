"""Cascade metrics on a cascade small enough to compute by hand.

The run is the three-generation cascade of tests/risk/test_cascade.py, recorded the way a
scenario driver records one (events with the time of their command, market samples, cohorts):
NVDA-PERP, multiplier 100 micro-dollars per tick-lot, no trading fees, index 10000. Four 20x
ant longs of 1000 lots at 10000; a maker bids 1000 @ 9650, 1000 @ 9580, 500 @ 9500; one lot
traded at 9700 at t = 30.5 s sets it off:

====  ===  ====  ============================================  ===========================
gen   acct  lots  how it closed                                 notional (micro-dollars)
====  ===  ====  ============================================  ===========================
1     A1   1000  1000 @ 9650 in the book                       9650 x 1000 x 100 = 965e6
2     A2   1000  1000 @ 9580 in the book                       9580 x 1000 x 100 = 958e6
3     A3   1000  500 @ 9500 in the book, 500 taken over by     (9500 + 9380) x 500 x 100
                 the fund at the bankruptcy price 9380          = 944e6
====  ===  ====  ============================================  ===========================

Total 2,867e6 = $2,867; first generation 965e6, so the endogenous multiplier is
2867 / 965 = 2.970984... -> "2.9710" (4 decimals, half to even). A1 caused A2, A2 caused A3:
two edges over three liquidations, mean fan-out 2/3 -> "0.6667". The book sold 2500 lots into
a bid of 2501 lots within 5% of the mark (the trigger's 1-lot bid at 9700 included):
2500/2501 -> "0.9996". The mark ended at 9500 against the index 10000: an overshoot of -500
ticks = -500.00 bps. Fees to the fund: 9.65 + 9.58 + 4.75 = $23.98; no ADL, no bad debt.

Ant outcomes (final equity at mark 9500): A1 5.35e6 of 50e6 (10.7% kept: not wiped out), A2
4.62e6 of 56.2e6 (8.2%: wiped out), A3 1.30e6 of 62.05e6 (2.1%: wiped out), A4 not liquidated
at 100e6 - 500 x 1000 x 100 = 50e6. Deposits 268.25e6, final equity 61.27e6, loss 206.98e6.

The control: the same run with the maker's bids cancelled before the trigger. The fund takes
A1 over at its bankruptcy price 9500, no fill moves the mark, and the cascade stops at
generation 1: 1000 x 9500 x 100 = 950e6 and a multiplier of exactly 1.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from gaemi.clients.sim.cascade.metrics import (
    CSV_COLUMNS,
    liquidation_rows,
    ratio_text,
    summarize,
    time_text,
    usd_text,
)
from gaemi.clients.sim.cascade.record import Cohort, RunRecord, Sample
from gaemi.clients.sim.cascade.report import PNG_CHARTS, print_summary, write_outputs
from gaemi.risk import (
    AdvanceTime,
    CancelAll,
    Deposit,
    PlaceOrder,
    SetIndexPrice,
    SetLeverage,
    Venue,
    preset,
    usd,
)

SYM = "NVDA-PERP"
BUY, SELL = 1, -1
MAKER, SHORT, BIDDER, TRIGGER = 10, 11, 12, 13
A1, A2, A3, A4 = 1, 2, 3, 4
WALLETS = {A1: 50_000_000, A2: 56_200_000, A3: 62_050_000, A4: 100_000_000}
KEPT = {"liquidation", "insurance_takeover", "adl", "bad_debt", "funding"}
REQUIRED = ("scenario", "seed", "market", "liquidations", "liquidated_notional",
            "max_generation", "endogenous_multiplier", "adl_count", "bad_debt",
            "insurance_fund_start", "insurance_fund_end", "min_mark", "max_mark",
            "conservation_ok", "state_hash")
ANTS = Cohort("ant long 20x", "ant", 20)


def _sample(venue: Venue) -> Sample:
    """The market now, with the depth within 5% of the mark (as record.Sample defines it)."""
    m = venue.market(SYM)
    bids, asks = venue.book(SYM).depth(1_000)
    mark = m.mark
    return Sample(venue.time, m.index, mark, m.last_price, m.best_bid, m.best_ask,
                  m.open_interest, m.insurance_fund,
                  sum(q for p, q in bids if p * 100 >= mark * 95),
                  sum(q for p, q in asks if p * 100 <= mark * 105))


def cascade_record(impl: str, *, depth: bool = True) -> RunRecord:
    """Run the hand-computed cascade on a Venue and record it (``depth=False``: the control)."""
    spec = preset(SYM, session=None, maker_fee_ppb=0, taker_fee_ppb=0)
    venue = Venue([spec], book=impl)
    record = RunRecord("hand-computed cascade", 7, SYM, spec,
                       {"label": "with depth" if depth else "no depth", "depth": depth})
    record.insurance_fund_start = venue.market(SYM).insurance_fund
    cohorts = {MAKER: Cohort("market maker", "market_maker", 1),
               SHORT: Cohort("background", "background", 1),
               BIDDER: Cohort("background", "background", 1),
               TRIGGER: Cohort("background", "background", 1)}
    cohorts.update({a: ANTS for a in WALLETS})
    record.cohorts = cohorts

    def submit(command: Any) -> None:
        events = venue.submit(command)
        assert not [e for e in events if e.kind == "rejected"], (command, events)
        venue.check_invariants()
        record.commands += 1
        record.events += [(venue.time, e) for e in events if e.kind in KEPT or (
            e.kind == "fill" and e.liquidation_id is not None)]
        for e in events:
            if e.kind == "deposit":
                record.deposits[e.account_id] = record.deposits.get(e.account_id, 0) + e.amount

    submit(SetIndexPrice(SYM, 10_000))
    for a in (MAKER, SHORT):
        submit(Deposit(a, usd(1_000_000)))
    for a in (BIDDER, TRIGGER):
        submit(Deposit(a, usd(10_000)))
    for a, w in WALLETS.items():
        submit(Deposit(a, w))
    # 30 one-second samples of a book with mid 9000: the mark's basis input becomes 9000
    for command in (PlaceOrder(MAKER, SYM, BUY, 8_995, 1), PlaceOrder(MAKER, SYM, SELL, 9_005, 1),
                    AdvanceTime(30 * 10**9), CancelAll(MAKER, SYM)):
        submit(command)
    for a in WALLETS:
        submit(SetLeverage(a, SYM, 20))
    submit(PlaceOrder(SHORT, SYM, SELL, 10_000, 4_000))
    for a in WALLETS:
        submit(PlaceOrder(a, SYM, BUY, 10_000, 1_000))
    for price, qty in ((9_650, 1_000), (9_580, 1_000), (9_500, 500)):
        submit(PlaceOrder(MAKER, SYM, BUY, price, qty))
    submit(PlaceOrder(BIDDER, SYM, BUY, 9_700, 1))
    record.samples.append(_sample(venue))  # t = 30 s: before
    submit(AdvanceTime(30 * 10**9 + 500_000_000))  # half a second: no sample falls due
    if not depth:
        submit(CancelAll(MAKER, SYM))
    submit(PlaceOrder(TRIGGER, SYM, SELL, 9_700, 1))  # the trigger at t = 30.5 s
    record.samples.append(_sample(venue))  # t = 30.5 s: after
    record.final_equity = {a: venue.account(a).equity for a in record.deposits}
    record.insurance_fund_end = venue.market(SYM).insurance_fund
    record.state_hash = venue.state_hash()
    record.conservation_ok = True  # check_invariants passed after every command
    return record


@pytest.fixture
def record(impl: str) -> RunRecord:
    return cascade_record(impl)


def test_generations_and_multiplier_are_as_computed_by_hand(record: RunRecord) -> None:
    # Act
    s = summarize(record)

    # Assert
    assert s["liquidations"] == 3 and s["liquidated_accounts"] == 3
    assert s["max_generation"] == 3
    assert [(g["generation"], g["liquidations"], g["notional"]) for g in s["generations"]] == \
        [(1, 1, 965_000_000), (2, 1, 958_000_000), (3, 1, 944_000_000)]
    assert [g["share"] for g in s["generations"]] == ["0.3366", "0.3341", "0.3293"]
    assert [g["branching"] for g in s["generations"]] == ["1.0000", "1.0000", "0.0000"]
    assert s["liquidated_notional"] == 2_867_000_000
    assert s["liquidated_notional_usd"] == "2867.00"
    assert s["first_generation_notional"] == 965_000_000
    assert s["endogenous_multiplier"] == "2.9710"
    assert s["endogenous_multiplier_fraction"] == "2867/965"
    assert s["notional_from_average_price"] == 0
    assert s["first_generation_causes"] == {"fill": 1}


def test_the_provenance_graph_links_each_liquidation_to_its_cause(record: RunRecord) -> None:
    # Act
    s = summarize(record)
    rows = liquidation_rows(record)

    # Assert: A1 -> A2 -> A3, one child each but the last
    ids = [r["liquidation_id"] for r in rows]
    assert [r["account"] for r in rows] == [A1, A2, A3]
    assert [r["cause_liquidation_id"] for r in rows] == ["", ids[0], ids[1]]
    assert [r["cause_kind"] for r in rows] == ["fill", "fill", "fill"]
    fan = s["fan_out"]
    assert (fan["edges"], fan["roots"], fan["orphans"], fan["max"]) == (2, 1, 0, 1)
    assert fan["max_parent_id"] == ids[0]
    assert fan["distribution"] == {"0": 1, "1": 2}
    assert fan["mean"] == "0.6667" and fan["mean_of_parents"] == "1.0000"


def test_intensity_depth_prices_fund_adl_and_bad_debt(record: RunRecord) -> None:
    # Act
    s = summarize(record)

    # Assert: all three in the second that starts at 30 s
    assert s["liquidation_notional_per_second"] == [[30 * 10**9, 2_867_000_000, 3]]
    assert s["max_liquidation_notional_per_second"] == 2_867_000_000
    assert s["max_liquidation_notional_per_minute"] == 2_867_000_000
    assert s["peak_second_ts_ns"] == 30 * 10**9
    depth = s["depth_consumed"]
    assert depth["reference_ts_ns"] == 30 * 10**9
    assert depth["bid"] == {"book_lots": 2_500, "pre_cascade_depth_lots": 2_501,
                            "ratio": "0.9996"}
    assert depth["ask"] == {"book_lots": 0, "pre_cascade_depth_lots": 0, "ratio": None}
    assert s["execution"] == {"book_lots": 2_500, "insurance_lots": 500, "adl_lots": 0,
                              "fees": 23_980_000, "fees_usd": "23.98"}
    assert s["by_side"]["long"]["notional"] == 2_867_000_000
    assert s["by_side"]["short"]["liquidations"] == 0
    # the trigger marks 9700, 9650, 9580 and the final 9500; the index stays at 10000
    assert (s["min_mark"], s["max_mark"], s["min_mark_usd"]) == (9_500, 10_000, "95.00")
    assert s["max_mark_overshoot_ticks"] == -500 and s["max_mark_overshoot_bps"] == "-500.00"
    assert s["mark_overshoot"]["above"] is None
    assert s["mark_drawdown_pct"] == "5.00"
    assert s["open_interest"]["start"] == 4_000
    # the ants' lots moved to the maker and the fund; the trigger's lot is new
    assert s["open_interest"]["end"] == 4_001
    start = usd(250_000)
    assert (s["insurance_fund_start"], s["insurance_fund_end"]) == (start, start + 23_980_000)
    assert s["insurance_fund_min"] == start and s["insurance_fund_drawdown"] == 0
    assert (s["insurance_takeovers"], s["insurance_takeover_lots"]) == (1, 500)
    assert (s["adl_count"], s["adl_notional"], s["adl_accounts"]) == (0, 0, 0)
    assert (s["bad_debt"], s["bad_debt_covered"], s["bad_debt_total"]) == (0, 0, 0)
    assert s["conservation_ok"] is True and len(s["state_hash"]) == 16


def test_cohort_outcomes(record: RunRecord) -> None:
    # Act
    cohorts = {c["label"]: c for c in summarize(record)["cohorts"]}

    # Assert
    assert list(cohorts) == ["ant long 20x", "background", "market maker"]
    ants = cohorts["ant long 20x"]
    assert (ants["role"], ants["leverage"], ants["accounts"]) == ("ant", 20, 4)
    assert (ants["liquidated_accounts"], ants["liquidations"]) == (3, 3)
    assert ants["liquidated_notional"] == 2_867_000_000
    assert ants["deposits"] == 268_250_000
    assert ants["final_equity"] == 5_350_000 + 4_620_000 + 1_300_000 + 50_000_000
    assert ants["pnl"] == -206_980_000 and ants["loss"] == 206_980_000
    assert ants["loss_usd"] == "206.98" and ants["loss_pct"] == "77.16"
    assert (ants["wiped_out"], ants["bankrupt"]) == (2, 0)  # A2 and A3, not A1 (10.7% kept)
    assert cohorts["market maker"]["liquidated_accounts"] == 0
    assert cohorts["background"]["accounts"] == 3


def test_without_depth_the_cascade_stops_and_the_multiplier_is_one(impl: str) -> None:
    # Arrange
    control = cascade_record(impl, depth=False)

    # Act
    s = summarize(control)

    # Assert
    assert [(g["generation"], g["notional"]) for g in s["generations"]] == [(1, 950_000_000)]
    assert s["endogenous_multiplier"] == "1.0000"
    assert s["endogenous_multiplier_fraction"] == "1/1"
    assert s["execution"]["insurance_lots"] == 1_000
    assert s["depth_consumed"]["bid"]["book_lots"] == 0
    assert s["fan_out"]["edges"] == 0


def test_no_liquidations_leave_the_multiplier_undefined(record: RunRecord) -> None:
    # Arrange: the same market, with nothing but the samples
    record.events = []

    # Act
    s = summarize(record)

    # Assert
    assert (s["liquidations"], s["liquidated_notional"], s["max_generation"]) == (0, 0, 0)
    assert s["endogenous_multiplier"] is None and s["endogenous_multiplier_fraction"] is None
    assert s["generations"] == [] and s["liquidation_notional_per_second"] == []
    assert s["max_liquidation_notional_per_second"] == 0 and s["fan_out"]["mean"] is None


def test_both_books_give_the_same_summary() -> None:
    # Act
    a, b = (summarize(cascade_record(impl)) for impl in ("reference", "compiled"))

    # Assert
    assert a == b


def test_rounding_helpers() -> None:
    # half to even, once; exact dollars
    assert [ratio_text(1, 8, 2), ratio_text(3, 8, 2), ratio_text(-1, 8, 2)] == \
        ["0.12", "0.38", "-0.12"]
    assert ratio_text(1, 0) is None and ratio_text(5, 2, 0) == "2"
    assert [usd_text(9_650_000), usd_text(1), usd_text(-1_500_000), usd_text(0)] == \
        ["9.65", "0.000001", "-1.50", "0.00"]
    assert time_text(30 * 10**9 + 5) == "1970-01-01T00:00:30.000000005Z"


def test_output_files(record: RunRecord, tmp_path: Path) -> None:
    # Act
    paths = write_outputs(record, tmp_path)

    # Assert: summary.json has every required key, with the values computed above
    summary = json.loads(paths["summary"].read_text())
    assert [k for k in REQUIRED if k not in summary] == []
    assert (summary["scenario"], summary["seed"], summary["market"]) == \
        ("hand-computed cascade", 7, SYM)
    assert summary["endogenous_multiplier"] == "2.9710"
    # liquidations.csv: one row per liquidation, in emission order
    with paths["liquidations"].open() as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [(r["account"], r["generation"], r["notional"], r["cohort"], r["side"])
            for r in rows] == [("1", "1", "965000000", "ant long 20x", "sell"),
                               ("2", "2", "958000000", "ant long 20x", "sell"),
                               ("3", "3", "944000000", "ant long 20x", "sell")]
    assert [(r["price"], r["bankruptcy_price"], r["book_qty"], r["insurance_qty"], r["fee"])
            for r in rows][2] == ("9440", "9380", "500", "500", "4750000")
    assert rows[1]["cause_liquidation_id"] == rows[0]["liquidation_id"]
    assert rows[0]["time_utc"] == "1970-01-01T00:00:30.500000000Z"
    assert rows[0]["t_s"] == "0.500"  # seconds since the first sample (t = 30 s)
    # the page and the charts exist and are not empty
    assert paths["report"].stat().st_size > 1_000_000  # plotly.js inlined
    for name in PNG_CHARTS:  # every chart, the cascade window's included
        assert paths[f"png_{name}"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_writes_both_runs_and_a_comparison(impl: str, tmp_path: Path) -> None:
    # Arrange
    base, control = cascade_record(impl), cascade_record(impl, depth=False)

    # Act
    paths = write_outputs(base, tmp_path, compare=control)

    # Assert
    cmp = json.loads(paths["comparison"].read_text())
    assert paths["compare_summary"] == tmp_path / "compare" / "summary.json"
    assert json.loads(paths["compare_summary"].read_text())["endogenous_multiplier"] == "1.0000"
    assert cmp["same_seed"] is True
    assert cmp["config_differences"] == {"depth": [True, False],
                                         "label": ["with depth", "no depth"]}
    rows = {r["metric"]: r for r in cmp["metrics"]}
    assert rows["endogenous multiplier"] == {"metric": "endogenous multiplier", "a": "2.9710",
                                             "b": "1.0000", "delta": "-1.9710"}
    assert rows["liquidations"]["delta"] == -2
    assert rows["liquidated notional (USD)"]["delta"] == "-1917.00"


def test_an_empty_record_still_writes_every_file(tmp_path: Path) -> None:
    # Arrange: no events, no samples (a run that never started)
    spec = preset(SYM, session=None)
    empty = RunRecord("empty", 0, SYM, spec, {})

    # Act
    paths = write_outputs(empty, tmp_path)

    # Assert
    summary = json.loads(paths["summary"].read_text())
    assert (summary["liquidations"], summary["endogenous_multiplier"]) == (0, None)
    assert summary["depth_consumed"] is None and summary["open_interest"] is None
    assert paths["liquidations"].read_text().splitlines() == [",".join(CSV_COLUMNS)]
    assert paths["png_cascade_graph"].stat().st_size > 0
    # no cascade window, no chart of it; every other chart is drawn (empty)
    assert "png_cascade_price" not in paths
    assert all(paths[f"png_{name}"].stat().st_size > 0 for name in PNG_CHARTS
               if name != "cascade_price")


def test_the_terminal_summary_puts_two_runs_side_by_side(impl: str) -> None:
    # Arrange
    from rich.console import Console

    a = summarize(cascade_record(impl))
    b = summarize(cascade_record(impl, depth=False))
    console = Console(record=True, width=160)

    # Act
    print_summary(a, compare=b, console=console)

    # Assert
    text = console.export_text()
    line = next(ln for ln in text.splitlines() if "endogenous multiplier" in ln)
    assert [cell.strip() for cell in line.split("│")[2:5]] == ["2.9710", "1.0000", "-1.9710"]
    assert "A: with depth" in text and "B: no depth" in text
    assert "ant long 20x" in text
