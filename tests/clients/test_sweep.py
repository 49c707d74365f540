"""Parameter sweeps on a real local Ray: the grid is typed and checked before anything runs,
every (grid point, seed) runs once and gives the state hash of the same scenario run alone,
sweep.json's intervals are what the rows say, the page draws, and a sweep resumes where it
stopped, after a row was lost or after Ctrl-C (docs/cascade.md, Sweeps)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import pytest

from gaemi.clients.cli import main as gaemi
from gaemi.clients.sim.ensemble import METRICS, mean_interval, run_row
from gaemi.clients.sim.sweep import parse_grid, plan_sweep
from tests.clients.browser import chromium_dom, layout
from tests.clients.tiny import tiny_file

# the tiny scenario with one explicit tier, so a grid can index it
TIER = "[[market.tiers]]\nmax_leverage = 10\nmmr_pct = 5\n"
GRID = ["--grid", "market.tiers.0.mmr_pct=5,10", "--grid", "ants.count=50,100"]
KEYS = ["market.tiers.0.mmr_pct", "ants.count"]
FILES = ("runs.csv", "sweep.json", "report.html", "sweep-plan.json")


def _rows(out: Path) -> list[dict[str, str]]:
    with (out / "runs.csv").open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _command(scenario: Path, out: Path, *extra: str) -> list[str]:
    return ["sweep", "--scenario", str(scenario), *GRID, "--seeds", "2", "--seed", "7",
            "--out", str(out), "--no-progress", *extra]


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """`gaemi sweep` of the tiny scenario: 2 tier maintenance rates × 2 ant counts × 2 seeds."""
    folder = tmp_path_factory.mktemp("sweep")
    scenario = tiny_file(folder, "tiny", TIER)
    out = folder / "out"
    status = gaemi(_command(scenario, out))
    assert status == 0
    return scenario, out, str(folder)


# -- the grid -------------------------------------------------------------------------------------


def test_grid_values_are_typed_as_toml_scalars() -> None:
    # Act
    axis = parse_grid('market.overrides.x=5,0.5,true,"median3",last,2026-07-28')

    # Assert: a quoted or bare text is text; a date is not a TOML scalar here, so text too
    assert axis.key == "market.overrides.x"
    assert axis.values == (5, 0.5, True, "median3", "last", "2026-07-28")
    assert [type(v) for v in axis.values] == [int, float, bool, str, str, str]


def test_the_grid_points_are_the_cartesian_product_in_order(tmp_path: Path) -> None:
    # Arrange
    scenario = tiny_file(tmp_path, "tiny", TIER)

    # Act
    plan = plan_sweep(str(scenario), ["market.tiers.0.mmr_pct=5,10", "ants.count=50,100"],
                      seeds=3, first_seed=7)

    # Assert
    assert [p.label for p in plan.points] == ["p0", "p1", "p2", "p3"]
    assert [p.values for p in plan.points] == [(5, 50), (5, 100), (10, 50), (10, 100)]
    assert plan.points[1].name == "tiny[market.tiers.0.mmr_pct=5,ants.count=100]"
    third = plan.points[2].scenario(9)
    assert third.seed == 9 and third.ants.count == 50
    assert third.market.tiers[0].mmr_pct == 10
    assert plan.seeds == (7, 8, 9)


@pytest.mark.parametrize("grid, message", [
    ("market.tiers.3.mmr_pct=5", "--grid market.tiers.3.mmr_pct: index 3 is out of range"),
    ("antz.count=5", "--grid antz.count=5: unknown key 'antz'"),
    ("ants.count=1.5", "--grid ants.count=1.5: ants.count: expected an integer"),
    ("market.tiers.0.mmr_pct=5,high", "--grid market.tiers.0.mmr_pct=high:"),
    ("market.overrides.liquidation_fee_ppb=0.5",
     "--grid market.overrides.liquidation_fee_ppb=0.5:"),
    ("market.tiers.x=1", "--grid market.tiers.x: market.tiers is an array"),
    ("ants.count=50,50", "--grid ants.count: a value is repeated"),
    ("seed=1,2", "--grid seed: cannot be swept"),
    ("ants.count", "expected KEY=V1,V2"),
])
def test_a_bad_grid_is_one_line_naming_the_key_and_nothing_runs(
        grid: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Arrange
    scenario = tiny_file(tmp_path, "tiny", TIER)
    out = tmp_path / "out"

    # Act
    status = gaemi(["sweep", "--scenario", str(scenario), "--grid", grid, "--seeds", "2",
                    "--out", str(out), "--no-progress"])

    # Assert
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert status == 2
    assert len(err) == 1 and err[0].startswith("gaemi: error: ") and message in err[0], err
    assert captured.out == "" and not out.exists()  # no run started


# -- a real sweep ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_every_point_and_seed_runs_once_with_the_hash_of_its_scenario_alone(
        swept: tuple[Path, Path, str]) -> None:
    # Arrange
    scenario, out, _ = swept
    rows = _rows(out)
    plan = plan_sweep(str(scenario), [GRID[1], GRID[3]], seeds=2, first_seed=7)
    points = {p.label: p for p in plan.points}

    # Assert
    assert list(rows[0]) == ["point", *KEYS, "seed", *(n for n, _ in METRICS), "state_hash",
                             "conservation_ok"]
    assert sorted((r["point"], int(r["seed"])) for r in rows) == \
        [(f"p{i}", s) for i in range(4) for s in (7, 8)]
    for row in rows:
        point = points[row["point"]]
        assert [row[k] for k in KEYS] == [str(v) for v in point.values]
        alone = run_row(point.scenario(int(row["seed"])))
        assert row["state_hash"] == alone["state_hash"]
        assert row["liquidated_notional_usd"] == str(alone["liquidated_notional_usd"])
        assert row["conservation_ok"] == "True"
    assert len({r["state_hash"] for r in rows}) == len(rows)  # points and seeds differ


@pytest.mark.slow
def test_sweep_json_holds_each_points_intervals_of_its_rows(
        swept: tuple[Path, Path, str]) -> None:
    # Arrange
    scenario, out, _ = swept
    summary = json.loads((out / "sweep.json").read_text())
    rows = _rows(out)

    # Assert
    assert summary["schema"] == "gaemi-sweep/1" and summary["executor"] == "ray"
    assert summary["ray"]["address"] == "local" and summary["ray"]["cpus"] >= 1
    assert summary["scenario"]["ref"] == str(scenario.resolve())
    assert summary["grid"] == [{"key": KEYS[0], "values": [5, 10]},
                               {"key": KEYS[1], "values": [50, 100]}]
    assert summary["seeds"] == [7, 8] and summary["runs"] == 8
    assert summary["conservation_ok"] is True
    assert [p["values"] for p in summary["points"]] == [
        {KEYS[0]: 5, KEYS[1]: 50}, {KEYS[0]: 5, KEYS[1]: 100},
        {KEYS[0]: 10, KEYS[1]: 50}, {KEYS[0]: 10, KEYS[1]: 100}]
    for point in summary["points"]:
        mine = sorted((r for r in rows if r["point"] == point["point"]),
                      key=lambda r: int(r["seed"]))
        assert point["runs"] == 2 and point["conservation_ok"] is True
        assert set(point["metrics"]) == {n for n, _ in METRICS}
        for name in ("liquidated_accounts", "liquidated_notional_usd", "mark_drawdown_pct"):
            values = [Fraction(r[name]) for r in mine]
            stat = point["metrics"][name]
            assert stat == mean_interval(values)
            assert stat["n"] == 2
            assert stat["mean"] == pytest.approx(float(sum(values) / 2), rel=1e-5)
            # the interval lies within the values (sweep.json keeps 6 significant digits)
            slack = 1e-5 * float(max(abs(v) for v in values))
            assert float(min(values)) - slack <= stat["ci_low"] <= stat["mean"] \
                <= stat["ci_high"] <= float(max(values)) + slack
        assert point["metrics"]["amplification_notional_ratio"]["n"] == 0  # no --baseline


@pytest.mark.slow
def test_the_report_draws_every_chart_and_nothing_is_cut_off(
        swept: tuple[Path, Path, str], tmp_path: Path) -> None:
    # Arrange
    _, out, _ = swept
    page = out / "report.html"

    # Act
    dom = chromium_dom(page, tmp_path / "profile")
    measured = layout(page, tmp_path / "profile2")

    # Assert: 6 metrics with values (no amplification without --baseline) × 2 keys
    assert "data-script-errors=\"0\"" in dom
    assert "data-charts-expected=\"12\"" in dom and "data-charts-rendered=\"12\"" in dom
    assert "data-charts-done=\"true\"" in dom
    assert measured["charts"] == 12 and measured["tables"] == 1
    assert measured["problems"] == []


# -- resume ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_rerun_runs_only_what_is_missing(swept: tuple[Path, Path, str], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    # Arrange: a copy of the finished sweep
    scenario, done, _ = swept
    out = tmp_path / "out"
    shutil.copytree(done, out)
    before = {name: (out / name).read_bytes() for name in FILES}
    hashes = {(r["point"], r["seed"]): r["state_hash"] for r in _rows(out)}
    capsys.readouterr()

    # Act: the same command again
    status = gaemi(_command(scenario, out))

    # Assert: nothing ran, nothing changed
    printed = capsys.readouterr().out
    assert status == 0
    assert "8 of 8 runs done" in printed and "0 to run" in printed
    assert {name: (out / name).read_bytes() for name in FILES} == before

    # Arrange: lose 3 rows (the header stays)
    lines = (out / "runs.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    lost = {(line.split(",")[0], line.split(",")[3]) for line in lines[2:5]}
    (out / "runs.csv").write_text("".join(lines[:2] + lines[5:]), encoding="utf-8")

    # Act
    status = gaemi(_command(scenario, out))

    # Assert: exactly those 3 ran again, with the same results
    printed = capsys.readouterr().out
    rows = _rows(out)
    assert status == 0
    assert "5 of 8 runs done" in printed and "3 to run" in printed
    assert "for 3 runs" in printed
    assert len(rows) == 8
    assert {(r["point"], r["seed"]): r["state_hash"] for r in rows} == hashes
    assert {(r["point"], r["seed"]) for r in rows[5:]} == lost
    assert json.loads((out / "sweep.json").read_text())["points"] == \
        json.loads(before["sweep.json"])["points"]


@pytest.mark.slow
def test_a_different_sweep_into_the_same_folder_is_refused(
        swept: tuple[Path, Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    # Arrange
    scenario, out, _ = swept
    before = (out / "runs.csv").read_bytes()

    # Act
    status = gaemi(["sweep", "--scenario", str(scenario), "--grid", "ants.count=50,200",
                    "--seeds", "2", "--seed", "7", "--out", str(out), "--no-progress"])

    # Assert
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert len(err) == 1 and err[0].startswith("gaemi: error: ")
    assert "holds a different sweep (grid differ)" in err[0]
    assert (out / "runs.csv").read_bytes() == before


# -- Ctrl-C ---------------------------------------------------------------------------------------


def _data_rows(path: Path) -> int:
    if not path.exists():
        return 0
    return max(0, len(path.read_text(encoding="utf-8").splitlines()) - 1)


@pytest.mark.slow
def test_ctrl_c_keeps_the_finished_rows_and_a_rerun_completes_the_table(
        tmp_path: Path) -> None:
    # Arrange: 2 points × 8 seeds, enough runs to be stopped part way
    scenario = tiny_file(tmp_path, "tiny", TIER)
    out = tmp_path / "out"
    command = ["sweep", "--scenario", str(scenario), "--grid", "ants.count=50,100",
               "--seeds", "8", "--seed", "7", "--out", str(out), "--no-progress"]
    proc = subprocess.Popen([sys.executable, "-m", "gaemi.clients.cli", *command],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while _data_rows(out / "runs.csv") < 1 and proc.poll() is None \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        assert proc.poll() is None, "the sweep ended before it could be interrupted"
        assert _data_rows(out / "runs.csv") >= 1

        # Act: Ctrl-C, as a terminal sends it (to the whole process group)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    # Assert
    kept = _rows(out)
    assert proc.returncode == 130, err[-2_000:]
    assert "gaemi: error: interrupted" in err
    assert 1 <= len(kept) < 16

    # Act: the same command again, in process
    status = gaemi(command)

    # Assert: every (point, seed) exactly once, the rows kept unchanged
    rows = _rows(out)
    assert status == 0
    assert sorted((r["point"], int(r["seed"])) for r in rows) == \
        [(p, s) for p in ("p0", "p1") for s in range(7, 15)]
    assert rows[:len(kept)] == kept
