"""Seed ensembles on a real local Ray: every run gives the state hash of the same seed run
alone, the files hold every run, and the intervals and paired differences are what the rows
say (docs/cascade.md, Ensembles)."""

from __future__ import annotations

import csv
import json
from fractions import Fraction
from pathlib import Path

import pytest

from gaemi.clients.cli import main as gaemi
from gaemi.clients.sim.ensemble import (
    METRICS,
    EnsembleResult,
    describe,
    run_row,
    write_ensemble,
)
from gaemi.clients.sim.scenario import load_scenario
from tests.clients.tiny import tiny_file

SEEDS = 3


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """`gaemi ensemble` of a tiny scenario and its 10%-maintenance variant on 3 seeds."""
    folder = tmp_path_factory.mktemp("ensemble")
    a = tiny_file(folder, "tiny")
    b = tiny_file(folder, "tiny-mm10", "[[market.tiers]]\n"
                                        "max_leverage = 10\nmmr_pct = 10\n")
    out = folder / "out"
    status = gaemi(["ensemble", "--scenario", str(a), "--compare", str(b), "--seeds",
                    str(SEEDS), "--seed", "7", "--out", str(out), "--baseline",
                    "--no-progress"])
    assert status == 0
    return a, b, out


@pytest.mark.slow
def test_every_ray_run_gives_the_state_hash_of_the_same_seed_run_alone(
        ensemble: tuple[Path, Path, Path]) -> None:
    # Arrange
    a, b, out = ensemble
    with (out / "runs.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))

    # Assert: A's seeds, then B's, each the same as a local run of that seed
    assert [(r["scenario"], int(r["seed"])) for r in rows] == \
        [("tiny", 7 + i) for i in range(SEEDS)] + [("tiny-mm10", 7 + i) for i in range(SEEDS)]
    for row in rows:
        ref = a if row["scenario"] == "tiny" else b
        alone = run_row(load_scenario(str(ref), seed=int(row["seed"])), baseline=True)
        assert row["state_hash"] == alone["state_hash"]
        assert row["liquidated_notional_usd"] == alone["liquidated_notional_usd"]
        # the paired baseline ran in the same task: the amplification of the run alone
        for name in ("amplification_notional_ratio", "amplification_accounts_ratio",
                     "baseline_liquidated_notional_usd"):
            assert row[name] == ("" if alone[name] is None else str(alone[name]))
        assert row["conservation_ok"] == "True"
    assert len({r["state_hash"] for r in rows}) == len(rows)  # the seeds differ


@pytest.mark.slow
def test_ensemble_json_holds_the_rows_intervals_and_paired_differences(
        ensemble: tuple[Path, Path, Path]) -> None:
    # Arrange
    _, _, out = ensemble
    summary = json.loads((out / "ensemble.json").read_text())
    with (out / "runs.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    a_rows, b_rows = rows[:SEEDS], rows[SEEDS:]

    # Assert
    assert summary["executor"] == "ray" and summary["ray"]["address"] == "local"
    assert summary["seeds"] == [7, 8, 9] and summary["runs"] == 2 * SEEDS
    assert set(summary["metrics_a"]) == {name for name, _ in METRICS}
    accounts = [Fraction(r["liquidated_accounts"]) for r in a_rows]
    stat = summary["metrics_a"]["liquidated_accounts"]
    assert stat["n"] == SEEDS
    assert stat["mean"] == pytest.approx(float(sum(accounts) / SEEDS), rel=1e-5)
    assert min(accounts) <= stat["ci_low"] <= stat["mean"] <= stat["ci_high"] <= max(accounts)
    diffs = [Fraction(y["liquidated_accounts"]) - Fraction(x["liquidated_accounts"])
             for x, y in zip(a_rows, b_rows, strict=True)]
    paired = summary["paired_differences"]["liquidated_accounts"]
    assert paired["n"] == SEEDS
    assert paired["mean"] == pytest.approx(float(sum(diffs) / SEEDS), rel=1e-5)
    assert min(diffs) <= paired["ci_low"] <= paired["ci_high"] <= max(diffs)


def _result(values_a: list[int | None], values_b: list[int | None] | None) -> EnsembleResult:
    def rows(values: list[int | None], name: str) -> list[dict]:
        return [{**{m: None for m, _ in METRICS}, "scenario": name, "seed": i,
                 "liquidations": v, "endogenous_multiplier": None if v is None else f"{v}.5000",
                 "state_hash": f"{i:016x}", "conservation_ok": True}
                for i, v in enumerate(values)]
    return EnsembleResult(rows(values_a, "a"), None if values_b is None else rows(values_b, "b"),
                          "a", None if values_b is None else "b", list(range(len(values_a))),
                          {"address": "local", "nodes": 1, "cpus": 2, "version": "x"}, 0.0)


def test_the_intervals_are_deterministic_and_skip_undefined_values() -> None:
    # Arrange: seed 2's multiplier is undefined (no liquidations)
    result = _result([10, 20, None, 30], [12, 20, 5, 36])

    # Act
    first, again = describe(result), describe(result)

    # Assert
    assert first == again
    liq = first["metrics_a"]["liquidations"]
    assert liq["n"] == 3 and liq["mean"] == 20
    assert 10 <= liq["ci_low"] < 20 < liq["ci_high"] <= 30
    assert first["metrics_a"]["endogenous_multiplier"]["mean"] == 20.5
    paired = first["paired_differences"]["liquidations"]
    assert paired["n"] == 3 and paired["mean"] == pytest.approx((2 + 0 + 6) / 3, rel=1e-5)
    assert first["metrics_a"]["bad_debt_usd"] == {"mean": None, "ci_low": None,
                                                  "ci_high": None, "n": 0}


def test_one_scenario_has_no_paired_differences(tmp_path: Path) -> None:
    # Act
    paths = write_ensemble(_result([1, 2, 3], None), tmp_path)

    # Assert
    summary = json.loads(paths["ensemble"].read_text())
    assert summary["b"] is None and summary["metrics_b"] is None
    assert summary["paired_differences"] is None
    assert len(paths["runs"].read_text().splitlines()) == 4


@pytest.mark.parametrize("argv, message", [
    (["--seeds", "0"], "must be at least 1"),
    (["--seeds", "x"], "not a whole number"),
    (["--seeds", "2", "--compare", "no-such-preset"], "no-such-preset"),
])
def test_a_bad_ensemble_command_is_one_line(argv: list[str], message: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    # Act
    try:
        status = gaemi(["ensemble", "--scenario", "ants-skhynix", *argv])
    except SystemExit as exc:  # argparse's own errors leave through sys.exit
        status = exc.code

    # Assert
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert len(err) == 1 and err[0].startswith("gaemi: error: ") and message in err[0]
