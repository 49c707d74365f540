"""Calibration by simulated moments (clients/calibration/calibrate.py): the card's numbers from
hand-made rows, and `gaemi calibrate` end to end on a real local Ray with a tiny scenario
(every point runs, the moments come from the margin-loan runs, a rerun resumes, the page
draws)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from gaemi.clients.calibration.calibrate import TARGETS, card_for, screening_diagnosis
from gaemi.clients.calibration.targets import hyperliquid_adl, kospi_margin_credit
from gaemi.clients.cli import main as gaemi
from gaemi.clients.sim.sweep import plan_sweep
from tests.clients.browser import layout
from tests.clients.tiny import tiny_file

KOSPI = TARGETS["kospi-margin-credit"]
HYPERLIQUID = TARGETS["hyperliquid-adl"]


def _week(folder: Path, name: str) -> Path:
    """The tiny scenario under the margin loan, through the drop day and five sessions."""
    path = tiny_file(folder, name)
    text = path.read_text(encoding="utf-8")
    text = text.replace('name = "', 'regime = "margin-loan"\nname = "', 1).replace(
        "[path]\n", '[path]\nlast_day = "2026-08-04"\n', 1)
    path.write_text(text, encoding="utf-8")
    return path


def _row(point: str, seed: int, curve: list[float]) -> dict[str, str]:
    return {"point": point, "seed": str(seed), "conservation_ok": "True",
            **{f"credit_d{k}_pct": f"{v:.6f}" for k, v in enumerate(curve)}}


def test_the_card_scores_every_point_and_keeps_the_smallest_error(tmp_path: Path) -> None:
    # Arrange: three points; p1 sits on the real curve give or take 0.1 pp, p0 and p2 do not
    plan = plan_sweep(str(_week(tmp_path, "w")), ["margin_loan.top_up_share=0.0,0.5,1.0"],
                      seeds=2, first_seed=1)
    real = list(kospi_margin_credit().mean)
    rows = []
    for label, shift in (("p0", 2.0), ("p1", 0.0), ("p2", -1.0)):
        rows.append(_row(label, 1, [r + shift - 0.1 for r in real]))
        rows.append(_row(label, 2, [r + shift + 0.1 for r in real]))

    # Act
    card = card_for(KOSPI, plan, rows, {"conservation_ok": True})

    # Assert: the error is the RMSE of the seeds' mean curve; the band the seeds' range
    errors = [p["error"] for p in card["points"]]
    assert errors == pytest.approx([2.0, 0.0, 1.0], abs=1e-6)
    assert card["fit"]["point"] == "p1" and card["fit"]["passes"]
    assert card["fit"]["values"] == {"margin_loan.top_up_share": 0.5}
    assert card["fit"]["real_inside_band"] == 6
    low, high = card["fit"]["simulated_band"][0]
    assert low == pytest.approx(real[0] - 0.09, abs=1e-6)  # 5th percentile of two values
    assert high == pytest.approx(real[0] + 0.09, abs=1e-6)
    assert [p["passes"] for p in card["points"]] == [False, True, False]
    assert card["verdict"].startswith("passes at margin_loan.top_up_share = 0.5: RMSE")
    (sens,) = card["sensitivity"]
    assert sens["key"] == "margin_loan.top_up_share" and sens["error_range"] == 2.0
    assert sens["moment_change"][0] == pytest.approx(-3.0, abs=1e-6)


def test_a_fit_outside_the_tolerance_says_where_it_misses(tmp_path: Path) -> None:
    plan = plan_sweep(str(_week(tmp_path, "w")), ["margin_loan.top_up_share=0.0,1.0"],
                      seeds=1, first_seed=1)
    real = list(kospi_margin_credit().mean)
    rows = [_row("p0", 1, [r + 1.0 for r in real]), _row("p1", 1, [r + 3.0 for r in real])]

    card = card_for(KOSPI, plan, rows, {"conservation_ok": True})

    assert card["fit"]["point"] == "p0" and not card["fit"]["passes"]
    assert card["verdict"].startswith("fails: the best point (margin_loan.top_up_share = 0.0)")
    assert "day 0: real -0.2522 below the band" in card["verdict"]


def test_the_screening_says_when_a_held_key_decides_the_fit() -> None:
    screening = {"ranking": [{"key": "ants.dip_share", "mu_star": 50.0},
                             {"key": "margin_loan.top_up_share", "mu_star": 2.0}],
                 "points": [{"values": {"ants.dip_share": 0.0}, "error": 27.5},
                            {"values": {"ants.dip_share": 1.0}, "error": 70.0}]}

    text = screening_diagnosis(KOSPI, screening)

    assert "ants.dip_share mu* 50, margin_loan.top_up_share mu* 2." in text
    assert "ants.dip_share move the error more than the fitted margin_loan.top_up_share" in text
    assert text.endswith("27.5 at ants.dip_share = 0.0.")
    assert screening_diagnosis(KOSPI, {"ranking": []}) == ""


def test_the_real_moments_are_the_shipped_tables() -> None:
    assert KOSPI.real() == tuple(kospi_margin_credit().mean)
    assert len(KOSPI.real()) == len(KOSPI.columns) == 6
    ratio = hyperliquid_adl().overall.adl_per_liquidated
    assert HYPERLIQUID.real() == (ratio,)
    assert math.isclose(ratio, 4619 / 2924, rel_tol=1e-5)
    assert HYPERLIQUID.error([ratio * 1.3], [ratio]) == pytest.approx(0.3)


def test_gaemi_calibrate_runs_the_grid_on_ray_resumes_and_draws(tmp_path: Path) -> None:
    scenario = _week(tmp_path, "tiny-week")
    out = tmp_path / "card"
    command = ["calibrate", "--target", "kospi-margin-credit", "--scenario", str(scenario),
               "--seeds", "2", "--seed", "5", "--out", str(out), "--no-progress"]

    assert gaemi([*command, "--morris", "2", "--morris-seeds", "1"]) == 0

    card = json.loads((out / "calibration.json").read_text(encoding="utf-8"))
    assert [p["runs"] for p in card["points"]] == [2, 2, 2]
    assert all(p["seeds_with_a_value"] == [2] * 6 for p in card["points"])
    assert card["conservation_ok"] is True and card["fit"] is not None
    assert card["target"]["real"] == list(kospi_margin_credit().mean)
    # Morris: 2 trajectories x (3 keys + 1) design points, one seed each, every key ranked
    screening = card["global_sensitivity"]
    assert len(screening["points"]) == 8
    assert sorted(e["key"] for e in screening["ranking"]) == sorted(
        k for k, _, _ in KOSPI.screen)
    assert all(e["mu_star"] is not None and e["mu_star"] >= 0 for e in screening["ranking"])
    assert screening["conservation_ok"] is True
    # a rerun finds every run in DIR/sweep and runs nothing, with the same card
    assert gaemi(command) == 0
    again = json.loads((out / "calibration.json").read_text(encoding="utf-8"))
    assert again["points"] == card["points"]
    assert again["global_sensitivity"] is None  # not asked for this time: nor in the verdict
    assert card["verdict"] == again["verdict"] + screening_diagnosis(KOSPI, screening)
    # the page draws its chart, with nothing cut off at 1,400 px
    measured = layout(out / "report.html", tmp_path / "profile")
    assert measured["charts"] == 1 and measured["problems"] == []
