"""Scenario runs through a real Venue: the default cascade, the record it leaves, determinism,
conservation, and the counterfactual presets moving the outcome the way their mechanism says.

The default scenario runs at full size once (about 7 s on the compiled book). The other runs
use ``_small``: the same flow on fewer accounts (400 ants, 80 inverse, 2 makers, 1 arbitrageur,
3 background traders), stepped every 10 s, so each takes one or two seconds. Expected
directions are asserted, not exact counts, except where the mechanism fixes a number.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from fractions import Fraction
from functools import cache
from itertools import pairwise
from pathlib import Path

import pytest

from gaemi.clients.cli.sim import main
from gaemi.clients.sim.baseline import backstop, run_baseline
from gaemi.clients.sim.cascade.metrics import liquidation_rows, ratio_text, summarize
from gaemi.clients.sim.cascade.record import RunRecord
from gaemi.clients.sim.scenario import Scenario, load_scenario, run
from gaemi.clients.sim.scenario.market import build_spec
from gaemi.risk.calendar import NS_PER_SECOND
from gaemi.risk.events import Liquidation
from tests.clients.tiny import tiny_file


def _small(scenario: Scenario, step_s: int = 10) -> Scenario:
    r = dataclasses.replace
    return r(scenario,
             path=r(scenario.path, step_s=step_s, pre_open_s=600, post_close_s=5400),
             ants=r(scenario.ants, count=400), inverse=r(scenario.inverse, count=80),
             noise=r(scenario.noise, count=3), market_makers=r(scenario.market_makers, count=2),
             arbitrageurs=r(scenario.arbitrageurs, count=1))


@cache
def _run_small(preset: str, step_s: int = 10, book: str = "auto", seed: int | None = None
               ) -> RunRecord:
    return run(_small(load_scenario(preset, seed=seed), step_s), book=book, progress=False)


def _liquidations(record: RunRecord) -> list[tuple[int, Liquidation]]:
    return [(t, e) for t, e in record.events if isinstance(e, Liquidation)]


def _accounts(record: RunRecord) -> set[int]:
    return {e.account_id for _, e in _liquidations(record)}


def _notional(record: RunRecord) -> int:
    return sum(e.qty * e.price * record.spec.multiplier for _, e in _liquidations(record))


@pytest.fixture(scope="module")
def default_record() -> RunRecord:
    return run(load_scenario("ants-skhynix"), progress=False)


# -- the default scenario -----------------------------------------------------------------------

@pytest.mark.slow
def test_the_default_scenario_cascades_through_several_generations(
        default_record: RunRecord) -> None:
    # Arrange
    liquidations = _liquidations(default_record)
    by_id = {e.liquidation_id: e for _, e in liquidations}
    generations = Counter(e.generation for _, e in liquidations)

    # Act: walk every liquidation's provenance back to its generation-1 root
    for _, e in liquidations:
        node, depth = e, 1
        while node.cause.liquidation_id is not None:
            parent = by_id[node.cause.liquidation_id]
            assert parent.generation == node.generation - 1
            node, depth = parent, depth + 1
        # Assert: the chain is as long as the generation says, down to a first generation
        # that no liquidation caused (an index update, a trade, a mark sample or funding)
        assert depth == e.generation
        assert node.generation == 1 and node.cause.generation == 0

    # Assert: at least three generations, and the later ones are not a single stray account
    assert max(generations) >= 3
    assert sum(n for g, n in generations.items() if g >= 3) >= 5


# the state hash `gaemi demo` prints (README, docs/scenarios.md): the default scenario's
# commands and the venue's rules, fixed; any change of either must say why it moved
DEMO_STATE_HASH = "5f7ad2a48f0808a1"


@pytest.mark.slow
def test_the_default_scenario_ends_in_its_documented_state(default_record: RunRecord) -> None:
    assert default_record.state_hash == DEMO_STATE_HASH
    assert default_record.conservation_ok


@pytest.mark.slow
def test_the_default_summary_counts_traders_apart_and_finds_the_cascade_window(
        default_record: RunRecord) -> None:
    # Act
    s = summarize(default_record)

    # Assert: the identities of docs/cascade.md on the real run
    everything = _liquidations(default_record)
    assert s["fund_liquidations"] >= 1  # the fund deleverages what it took over
    assert s["liquidations"] + s["fund_liquidations"] == len(everything)
    assert s["liquidated_notional"] + s["fund_liquidated_notional"] == sum(
        row["notional"] for row in liquidation_rows(default_record))
    for key in ("liquidations", "liquidated_accounts", "liquidated_notional"):
        assert sum(c[key] for c in s["cohorts"]) == s[key], key
    assert sum(g["liquidations"] for g in s["generations"]) == s["liquidations"]
    assert sum(g["notional"] for g in s["generations"]) == s["liquidated_notional"]
    assert s["liquidated_accounts"] == len({a for a in _accounts(default_record) if a >= 0})
    # the window holds the peak second and opens after the reference of the depth and OI
    window = s["cascade_window"]
    assert window["start_ts_ns"] <= s["peak_second_ts_ns"] <= window["end_ts_ns"]
    assert s["depth_consumed"]["reference_ts_ns"] < window["start_ts_ns"]
    assert s["open_interest"]["start_ts_ns"] < window["start_ts_ns"] <= \
        s["open_interest"]["end_ts_ns"]
    assert s["open_interest"]["start"] > 0 and s["open_interest"]["change"] < 0
    assert Fraction(s["duration_s"]) < Fraction(s["run_duration_s"])
    # the worst mark move splits exactly; longs were liquidated, so the flow sold and it fell
    move = s["mark_move"]
    assert move["mark_move_ticks"] == move["index_move_ticks"] + move["basis_move_ticks"] < 0
    assert move["direction"] == "down" and move["forced_flow_lots"] < 0
    assert move["from_ts_ns"] < window["start_ts_ns"] <= move["to_ts_ns"]
    # the Hawkes fit read every trader liquidation and converged
    fit = s["hawkes"]["with_index_driver"]
    assert fit["events"] == s["liquidations"] and fit["converged"]
    assert 0 <= fit["branching_ratio"] < 1


@pytest.mark.slow
def test_the_gap_at_the_open_sets_it_off(default_record: RunRecord) -> None:
    # Arrange
    crash = default_record.config["run_facts"]["days"][-1]
    first_minute = [e for t, e in _liquidations(default_record)
                    if crash["open_ts"] <= t < crash["open_ts"] + 60 * NS_PER_SECOND]

    # Assert: the -8.5% open liquidates a wave of the leveraged ants through the index
    assert len(first_minute) >= 20
    assert Counter(e.cause.kind for e in first_minute).most_common(1)[0][0] == "index"
    labels = Counter(default_record.cohorts[e.account_id].label for e in first_minute
                     if e.account_id > 0)  # -1: the insurance fund deleveraged by ADL
    assert set(labels) <= {"ant long 10x", "ant long 20x", "ant long 5x"}


@pytest.mark.slow
def test_the_record_is_complete_and_consistent(default_record: RunRecord) -> None:
    # Arrange
    record = default_record
    days = record.config["run_facts"]["days"]
    scenario = load_scenario("ants-skhynix")
    window = scenario.path.pre_open_s + 6 * 3600 + 30 * 60 + scenario.path.post_close_s

    # Assert: a sample every simulated second of every window, in time order
    assert len(record.samples) == len(days) * (window + 1)
    assert all(a.ts_ns < b.ts_ns for a, b in pairwise(record.samples))
    # every account has a cohort, a deposit and a final equity; money is conserved
    assert set(record.cohorts) == set(record.deposits) == set(record.final_equity)
    assert Counter(c.role for c in record.cohorts.values()) == Counter(
        {"ant": 2000, "inverse": 400, "background": 10, "market_maker": 3, "arbitrageur": 2,
         "etf": 2})
    assert record.conservation_ok and record.config["run_facts"]["problems"] == []
    assert record.insurance_fund_start == build_spec(scenario.market).insurance_fund
    assert record.insurance_fund_end == record.samples[-1].insurance_fund
    assert len(record.state_hash) == 16 and record.commands > 100_000
    # the events are the kinds the record promises, in time order
    kinds = Counter(e.kind for _, e in record.events)
    assert set(kinds) <= {"fill", "liquidation", "insurance_takeover", "adl", "bad_debt",
                          "funding"}
    assert all(e.liquidation_id is not None for _, e in record.events if e.kind == "fill")
    assert all(a[0] <= b[0] for a, b in pairwise(record.events))
    # the ants liquidated are longs (their liquidation sells), the inverse cohort's shorts
    for _, e in _liquidations(record):
        if e.account_id > 0:  # not the insurance fund
            role = record.cohorts[e.account_id].role
            assert e.side == {"ant": -1, "inverse": 1}.get(role, e.side)


@pytest.mark.slow
def test_the_index_path_lands_on_the_real_closes(default_record: RunRecord) -> None:
    # Arrange
    samples = {s.ts_ns: s for s in default_record.samples}
    days = default_record.config["run_facts"]["days"]

    # Assert: open and close of each simulated session are the real ones, and the index is
    # frozen at the close until the next open (the gap)
    for d in days:
        assert samples[d["open_ts"]].index == d["open_ticks"]
        assert samples[d["close_ts"] - NS_PER_SECOND].index == d["close_ticks"]
        assert samples[d["close_ts"]].index == d["close_ticks"]
    for before, after in pairwise(days):
        assert after["prev_close_ticks"] == before["close_ticks"]
        assert samples[after["open_ts"] - NS_PER_SECOND].index == before["close_ticks"]
    assert (days[-1]["prev_close_ticks"], days[-1]["open_ticks"], days[-1]["close_ticks"]) == \
        (126_111, 115_417, 107_639)


# -- determinism and conservation ---------------------------------------------------------------

def test_the_same_seed_gives_the_same_state_hash(impl: str) -> None:
    # Act: a run on the book under test, and (cached) on the default book (the compiled one,
    # unless ENGINE_PUREPYTHON=1)
    record = run(_small(load_scenario("ants-skhynix")), book=impl, progress=False)
    compiled = _run_small("ants-skhynix")
    other_seed = _run_small("ants-skhynix", seed=1)

    # Assert: equal on a repeat and across the two books; the flow had liquidations in it,
    # and another seed is another flow
    assert record.state_hash == compiled.state_hash
    assert _liquidations(record)
    assert other_seed.state_hash != record.state_hash


def test_money_is_conserved_after_every_command() -> None:
    # Arrange: a tiny flow, checked with Venue.check_invariants after each of its commands
    scenario = load_scenario("ants-skhynix")
    r = dataclasses.replace
    tiny = r(scenario, path=r(scenario.path, step_s=60, pre_open_s=600, post_close_s=5400),
             ants=r(scenario.ants, count=100), inverse=r(scenario.inverse, count=20),
             noise=r(scenario.noise, count=2), arbitrageurs=r(scenario.arbitrageurs, count=1),
             market_makers=r(scenario.market_makers, count=1, levels=2))

    # Act
    record = run(tiny, progress=False, check_every_command=True)

    # Assert: it passed every check, through liquidations and takeovers
    assert record.conservation_ok
    kinds = Counter(e.kind for _, e in record.events)
    assert kinds["liquidation"] >= 3 and kinds["insurance_takeover"] >= 1


# -- counterfactuals: the same flow and seed under a second configuration -----------------------

def _same_flow(a: RunRecord, b: RunRecord) -> None:
    assert a.seed == b.seed
    index_a = [s.index for s in a.samples]
    index_b = [s.index for s in b.samples]
    assert index_a == index_b  # the oracle published the same path in both runs


@pytest.mark.slow
def test_a_10pct_maintenance_margin_liquidates_more_and_earlier_than_5pct() -> None:
    # Why: both cap leverage at 10x. At 10% maintenance an ant that opened 10x with 90% of its
    # buying power is liquidated after a 1.2% fall instead of 6.4%, a 5x one after 13.6%
    # instead of 18.1%: on the same path more accounts cross their liquidation price, sooner.
    mm5, mm10 = _run_small("ants-skhynix-mm5"), _run_small("ants-skhynix-mm10")
    _same_flow(mm5, mm10)

    # Assert
    assert len(_accounts(mm10)) > len(_accounts(mm5))
    assert _notional(mm10) > _notional(mm5)
    assert _liquidations(mm10)[0][0] <= _liquidations(mm5)[0][0]


@pytest.mark.slow
def test_partial_liquidation_sells_less_than_full_liquidation() -> None:
    # Why: a 20% slice restores an account above its maintenance margin with part of the
    # position, where the preset closes every ant position (< $100,000) in one go.
    full, partial = _run_small("ants-skhynix"), _run_small("ants-skhynix-partial")
    _same_flow(full, partial)

    # Assert: more, smaller liquidation orders, and less notional liquidated overall
    assert len(_liquidations(partial)) > len(_liquidations(full))
    assert _notional(partial) < _notional(full)
    sizes = [e.qty for _, e in _liquidations(partial)]
    assert max(sizes) < max(e.qty for _, e in _liquidations(full))


@pytest.mark.slow
def test_the_krx_limit_holds_the_mark_within_30pct_and_saves_accounts() -> None:
    # Why: with a +-30% limit on the previous close, the mark (and every liquidation order)
    # stops at the limit while the shocked index falls beyond it.
    free = _run_small("ants-skhynix-flash-crash")
    held = _run_small("ants-skhynix-flash-crash-krx-limit")
    _same_flow(free, held)
    day = held.config["run_facts"]["days"][-1]
    floor = -(-day["prev_close_ticks"] * 7 // 10)
    in_day = [(a, b) for a, b in zip(free.samples, held.samples, strict=True)
              if day["open_ts"] <= a.ts_ns < day["close_ts"]]

    # Assert: the index broke the limit; only the run without it followed the mark down
    assert min(a.index for a, _ in in_day) < floor
    assert min(a.mark for a, _ in in_day) < floor
    assert min(b.mark for _, b in in_day) >= floor
    assert len(_accounts(held)) < len(_accounts(free))


def test_an_oracle_freeze_holds_the_index_and_then_catches_up() -> None:
    # Arrange: no index update for the first 600 s of the crash day
    record = _run_small("ants-skhynix-oracle-freeze")
    day = record.config["run_facts"]["days"][-1]
    frozen = [s for s in record.samples
              if day["open_ts"] <= s.ts_ns < day["open_ts"] + 600 * NS_PER_SECOND]
    after = next(s for s in record.samples if s.ts_ns >= day["open_ts"] + 600 * NS_PER_SECOND)

    # Assert: the venue kept the previous close through the gap, then moved on
    assert frozen and all(s.index == day["prev_close_ticks"] for s in frozen)
    assert after.index < day["prev_close_ticks"] * 0.95


# -- the command line ---------------------------------------------------------------------------

def test_cascade_runs_a_scenario_file_and_its_counterfactual(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Arrange
    base = tiny_file(tmp_path, "tiny")
    variant = tiny_file(tmp_path, "tiny-limit", "[market.overrides]\n"
                                                 "daily_limit_ppb = 300_000_000\n")
    out = tmp_path / "out"

    # Act
    status = main(["cascade", "--scenario", str(base), "--compare", str(variant),
                   "--out", str(out), "--no-progress"])

    # Assert
    printed = capsys.readouterr().out
    assert status == 0
    assert f"Report: {(out / 'report.html').resolve()}" in printed
    for name in ("report.html", "summary.json", "comparison.json", "liquidations.csv"):
        assert (out / name).is_file()
    assert (out / "compare" / "summary.json").is_file()
    # each run was paired with its own no-impact baseline
    for path in (out / "summary.json", out / "compare" / "summary.json"):
        amplification = json.loads(path.read_text())["amplification"]
        assert amplification["baseline_conservation_ok"] is True
        assert set(amplification) >= {"method", "baseline_liquidated_notional",
                                      "baseline_liquidated_accounts", "notional_ratio",
                                      "accounts_ratio"}


def test_no_baseline_leaves_the_amplification_null(tmp_path: Path) -> None:
    # Act
    status = main(["cascade", "--scenario", str(tiny_file(tmp_path, "tiny")), "--out",
                   str(tmp_path / "out"), "--no-progress", "--no-baseline"])

    # Assert
    assert status == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["amplification"] is None


def test_the_baseline_liquidates_off_the_book_and_amplification_compares_with_it() -> None:
    # Arrange: the small default flow, and the same with the backstop venue
    scenario = _small(load_scenario("ants-skhynix"))
    record = _run_small("ants-skhynix")
    baseline = run(backstop(scenario), progress=False)

    # Act
    numbers = run_baseline(scenario)
    record = dataclasses.replace(record, baseline=numbers)
    s = summarize(record)

    # Assert: the baseline's forced flow never reached the book, and it conserved money
    liquidations = _liquidations(baseline)
    assert liquidations and baseline.conservation_ok
    assert all(e.book_qty == 0 and e.insurance_qty == e.qty for _, e in liquidations)
    assert not [e for _, e in baseline.events if e.kind == "fill"]
    # the numbers kept are the baseline run's own, and the ratios are exact
    assert numbers["state_hash"] == baseline.state_hash
    assert numbers["liquidated_accounts"] == len(_accounts(baseline))
    amplification = s["amplification"]
    assert amplification["notional_ratio"] == ratio_text(
        s["liquidated_notional"], numbers["liquidated_notional"], 4)
    assert amplification["accounts_ratio"] == ratio_text(
        s["liquidated_accounts"], numbers["liquidated_accounts"], 4)
    # the Hawkes control is the same fit on the baseline run's own tape
    assert amplification["baseline_hawkes_branching_ratio"] == \
        summarize(baseline)["hawkes"]["branching_ratio"]


def test_cascade_refuses_a_bad_scenario_with_a_message(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Arrange
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\n[ants]\ncout = 1\n', encoding="utf-8")

    # Act
    status = main(["cascade", "--scenario", str(bad), "--out", str(tmp_path / "o")])

    # Assert
    assert status == 2
    assert "unknown key 'ants.cout'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
