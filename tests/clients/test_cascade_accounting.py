"""The cascade metrics count traders only, link liquidations by cause, not by proximity in
time, and measure the cascade over its window (docs/cascade.md).

The tape is written by hand: Liquidation events of the venue's own type, with causes chosen
to exercise each rule. Notionals: every liquidation closes ``qty`` lots at 100 ticks through
the book, so its notional is qty x 100 x multiplier micro-dollars.

    t (s)   id  account        cause                    causal parent   generation
    0       1   ant 1          index                    -               1
    1       2   ant 2          fill of #1               1               2
    2       3   fund (-1)      fill of #2               (2)             -
    3       4   ant 3          fill of #3 (the fund's)  2               3
    10      5   ant 4          time, #4 in the window   -               1 (time proximity)
    500     6   ant 5          index                    -               1 (a later cluster)
"""

from __future__ import annotations

from fractions import Fraction

import pytest

from gaemi.clients.sim.cascade.metrics import (
    CASCADE_GAP_NS,
    NS_PER_SECOND,
    liquidation_rows,
    summarize,
)
from gaemi.clients.sim.cascade.record import Cohort, RunRecord, Sample
from gaemi.risk import preset
from gaemi.risk.events import Cause, Fill, Liquidation

SYM = "NVDA-PERP"
SELL = -1
T0 = 1_785_000_000 * NS_PER_SECOND
PRICE = 100
QTY = {1: 10, 2: 20, 3: 40, 4: 5, 5: 7, 6: 1}
ACCOUNT = {1: 1, 2: 2, 3: -1, 4: 3, 5: 4, 6: 5}
AT_S = {1: 0, 2: 1, 3: 2, 4: 3, 5: 10, 6: 500}


def _cause(lid: int) -> Cause:
    return {1: Cause("index", 1), 2: Cause("fill", 2, 7, 1, 1), 3: Cause("fill", 3, 8, 2, 2),
            4: Cause("fill", 4, 9, 3, 3), 5: Cause("time", 5, None, 4, 4),
            6: Cause("index", 6)}[lid]


def _record() -> RunRecord:
    spec = preset(SYM)
    record = RunRecord(scenario="hand", seed=1, market=SYM, spec=spec, config={})
    for lid in sorted(QTY):
        ts = T0 + AT_S[lid] * NS_PER_SECOND
        cause = _cause(lid)
        fill = Fill(trade_id=100 + lid, symbol=SYM, price=PRICE, qty=QTY[lid], taker_side=SELL,
                    taker_account=ACCOUNT[lid], maker_account=99, taker_order_id=lid,
                    maker_order_id=1_000 + lid, maker_remaining=0, taker_fee=0, maker_fee=0,
                    liquidation_id=lid)
        record.events.append((ts, fill))
        record.events.append((ts, Liquidation(
            liquidation_id=lid, account_id=ACCOUNT[lid], symbol=SYM, side=SELL, qty=QTY[lid],
            price=PRICE, mark=PRICE, bankruptcy_price=PRICE - 5, book_qty=QTY[lid],
            insurance_qty=0, adl_qty=0, fee=0, generation=cause.generation + 1, cause=cause)))
    for account in (1, 2, 3, 4, 5):
        record.cohorts[account] = Cohort(f"ant long {account}x", "ant", account)
        record.deposits[account] = 1_000_000
        record.final_equity[account] = 0
    record.cohorts[6] = Cohort("market maker", "market_maker", 1)
    record.deposits[6] = 5_000_000
    record.final_equity[6] = 5_000_000
    record.final_equity[-1] = 7  # the fund's account is not a trader's: in no cohort row
    # samples: open interest 1,000 lots before, 900 after the first cluster
    for second, oi in ((-5, 1_000), (-1, 1_000), (2, 950), (3, 930), (4, 900), (600, 900)):
        record.samples.append(Sample(T0 + second * NS_PER_SECOND, PRICE, PRICE, PRICE, PRICE - 1,
                                     PRICE + 1, oi, 0, 200 if second < 0 else 0, 300))
    return record


def _notional(lid: int) -> int:
    return QTY[lid] * PRICE * preset(SYM).multiplier


@pytest.fixture()
def summary() -> dict:
    return summarize(_record())


def test_headline_counts_traders_and_the_fund_apart(summary: dict) -> None:
    traders = [1, 2, 4, 5, 6]
    assert summary["liquidations"] == 5 and summary["liquidated_accounts"] == 5
    assert summary["liquidated_notional"] == sum(_notional(i) for i in traders)
    assert summary["fund_liquidations"] == 1
    assert summary["fund_liquidated_notional"] == _notional(3)
    assert summary["fund_liquidated_lots"] == QTY[3]
    assert summary["liquidated_lots"] + summary["fund_liquidated_lots"] == sum(QTY.values())


def test_the_cohort_and_generation_tables_sum_to_the_headline(summary: dict) -> None:
    cohorts, gens = summary["cohorts"], summary["generations"]
    for key in ("liquidations", "liquidated_accounts", "liquidated_notional"):
        assert sum(c[key] for c in cohorts) == summary[key], key
    assert "insurance fund" not in {c["label"] for c in cohorts}
    assert sum(g["liquidations"] for g in gens) == summary["liquidations"]
    assert sum(g["notional"] for g in gens) == summary["liquidated_notional"]
    assert sum(summary["by_side"][s]["notional"] for s in ("long", "short")) == \
        summary["liquidated_notional"]


def test_links_are_causal_the_fund_is_transparent_and_time_is_no_parent(summary: dict) -> None:
    rows = {r["liquidation_id"]: r for r in liquidation_rows(_record())}
    assert [rows[i]["parent"] for i in sorted(rows)] == ["", 1, 2, 2, "", ""]
    assert [rows[i]["generation"] for i in (1, 2, 4, 5, 6)] == [1, 2, 3, 1, 1]
    assert [rows[i]["trader"] for i in sorted(rows)] == [1, 1, 0, 1, 1, 1]
    # the raw cause is kept: #5 names #4, but as time proximity, not as its parent
    assert rows[5]["cause_kind"] == "time" and rows[5]["cause_liquidation_id"] == 4
    assert summary["time_proximity"]["liquidations"] == 1
    assert summary["time_proximity"]["notional"] == _notional(5)
    assert [(g["generation"], g["liquidations"]) for g in summary["generations"]] == \
        [(1, 3), (2, 1), (3, 1)]
    first = _notional(1) + _notional(5) + _notional(6)
    assert summary["first_generation_notional"] == first
    m = Fraction(summary["liquidated_notional"], first)
    assert summary["endogenous_multiplier_fraction"] == f"{m.numerator}/{m.denominator}"
    assert summary["max_generation"] == 3
    assert summary["fan_out"]["edges"] == 2 and summary["fan_out"]["max"] == 1


def test_the_cascade_window_is_the_cluster_with_the_most_notional(summary: dict) -> None:
    assert 500 * NS_PER_SECOND > CASCADE_GAP_NS > 7 * NS_PER_SECOND
    window = summary["cascade_window"]
    assert (window["start_ts_ns"], window["end_ts_ns"]) == (T0, T0 + 10 * NS_PER_SECOND)
    assert window["duration_s"] == summary["duration_s"] == "10.000"
    assert window["liquidations"] == 4  # #6, 490 s later, is another cluster
    assert summary["run_duration_s"] == "605.000"
    rows = {r["liquidation_id"]: r for r in liquidation_rows(_record())}
    assert [rows[i]["in_cascade_window"] for i in sorted(rows)] == [1, 1, 1, 1, 1, 0]


def test_depth_and_open_interest_are_measured_from_the_window(summary: dict) -> None:
    depth = summary["depth_consumed"]
    assert depth["reference_ts_ns"] == T0 - NS_PER_SECOND
    # forced flow on the book inside the window, the fund's included: 10 + 20 + 40 + 5 + 7
    assert depth["bid"] == {"book_lots": 82, "pre_cascade_depth_lots": 200, "ratio": "0.4100"}
    oi = summary["open_interest"]
    assert (oi["start_ts_ns"], oi["end_ts_ns"]) == (T0 - NS_PER_SECOND, T0 + 600 * NS_PER_SECOND)
    assert (oi["start"], oi["end"], oi["change"], oi["change_pct"]) == (1_000, 900, -100,
                                                                       "-10.00")


def test_a_run_without_trader_liquidations_has_no_window() -> None:
    record = _record()
    record.events = [(ts, e) for ts, e in record.events if getattr(e, "account_id", 0) < 0
                     or getattr(e, "liquidation_id", None) == 3]
    s = summarize(record)
    assert s["liquidations"] == 0 and s["fund_liquidations"] == 1
    assert s["cascade_window"] is None and s["duration_s"] is None
    assert s["depth_consumed"]["bid"]["book_lots"] == 0
    assert s["open_interest"]["over"].startswith("the whole run")


def test_the_summary_and_the_report_say_they_are_one_seed(tmp_path) -> None:
    # Arrange
    from rich.console import Console

    from gaemi.clients.sim.cascade.report import print_summary, write_outputs

    record = _record()
    console = Console(record=True, width=300)

    # Act
    print_summary(summarize(record), console=console)
    paths = write_outputs(record, tmp_path)

    # Assert
    text = " ".join(console.export_text().split())
    assert "One seed (1)" in text and "gaemi ensemble --scenario hand --seeds 20" in text
    assert "count traders only" in text
    page = paths["report"].read_text(encoding="utf-8")
    assert "One seed (1)" in page and "the insurance fund's own 1 apart" in page
    assert "cascade window" in page


def test_the_worst_mark_move_splits_into_index_and_basis_beside_the_forced_flow() -> None:
    # Arrange: the index falls 3 ticks while the mark falls 7 (the basis 4) during the cluster
    record = _record()
    path = {-5: (100, 100), -1: (100, 100), 2: (98, 95), 3: (97, 93), 4: (97, 94),
            600: (100, 100)}  # second -> (index, mark)
    record.samples = [Sample(T0 + second * NS_PER_SECOND, index, mark, mark, mark - 1,
                             mark + 1, 1_000, 0, 200, 300)
                      for second, (index, mark) in path.items()]

    # Act
    move = summarize(record)["mark_move"]

    # Assert: from the last sample before the window (-1 s) to the lowest mark in it (3 s)
    assert move["direction"] == "down"
    assert (move["from_ts_ns"], move["to_ts_ns"]) == (T0 - NS_PER_SECOND, T0 + 3 * NS_PER_SECOND)
    assert (move["mark_move_ticks"], move["index_move_ticks"], move["basis_move_ticks"]) == \
        (-7, -3, -4)
    assert move["mark_move_ticks"] == move["index_move_ticks"] + move["basis_move_ticks"]
    assert (move["index_share"], move["basis_share"]) == ("0.4286", "0.5714")
    # the book fills of liquidations 1-4 (the fund's #3 included) in (-1 s, 3 s]: all sells
    assert move["forced_flow_lots"] == -(10 + 20 + 40 + 5)
    assert move["basis_ticks_per_1000_lots"] == "53.3333"  # 1000 x -4 / -75
    extreme = move["basis_extreme"]  # the basis at its lowest in the window: -4 at 3 s
    assert (extreme["ts_ns"], extreme["basis_ticks"], extreme["move_ticks"]) == \
        (T0 + 3 * NS_PER_SECOND, -4, -4)
    assert extreme["bps_of_index"] == "-412.37"  # 10,000 x -4 / 97
    # per interval between samples, -5..4 s: flow (0, -70, -5, 0), basis change (0, -3, -1, 1)
    per = move["per_second"]
    assert (per["intervals"], per["intervals_with_flow"]) == (4, 2)
    assert per["slope_ticks_per_1000_lots"] == "45.1155"  # 1000 x 158.75 / 3518.75
    assert per["r_squared"] == "0.8185"  # 158.75^2 / (3518.75 x 8.75)


def test_no_window_no_mark_move() -> None:
    record = _record()
    record.events = [(ts, e) for ts, e in record.events
                     if getattr(e, "liquidation_id", None) == 3]
    assert summarize(record)["mark_move"] is None


def test_the_hawkes_fit_reads_the_traders_liquidations_per_second(summary: dict) -> None:
    # the hand tape: five trader liquidations in five distinct seconds over a 605 s run
    fit = summary["hawkes"]["with_index_driver"]
    assert (fit["events"], fit["event_bins"]) == (5, 5)
    assert fit["bins"] == 605 + 1  # from the first sample (-5 s) to the last (600 s)
    assert summary["hawkes"]["without_driver"]["events"] == 5
    # a flat index: the driver is zero everywhere, so it has no coefficient
    assert fit["driver_coefficient"] is None and "zero" in fit["note"]
    n = fit["branching_ratio"]
    assert summary["hawkes"]["branching_ratio"] == (None if n is None else f"{n:.4f}")
