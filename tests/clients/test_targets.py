"""The calibration targets (clients/calibration/data/targets/README.md): the shipped tables
load and hold together, the computation on tiny hand-computed files, and, when the shared data
folder is here, the recomputation from the real files equals the shipped tables byte for byte
and the counts equal the source README's.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import json
import statistics
import subprocess
import sys
from datetime import date, timedelta
from fractions import Fraction
from pathlib import Path

import pytest

from gaemi.clients.calibration import targets
from gaemi.clients.calibration.targets import (
    HYPERLIQUID_FILE,
    KOSPI_FILE,
    AdlCounts,
    hyperliquid_adl,
    hyperliquid_from_files,
    hyperliquid_table,
    kospi_margin_credit,
    kospi_response_from_csv,
    kospi_table,
    render,
)

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
SHIPPED = ROOT / "clients" / "calibration" / "data" / "targets"
SCRIPT = ROOT / "scripts" / "derive_targets.py"
KOSPI_CSV = Path("kospi-margin-credit") / "KOSPI.csv.gz"
POSITIONS = Path("hyperliquid-2025-10-10-adl") / "positions_FINAL.csv.gz"
ADL_BY_COIN = Path("hyperliquid-2025-10-10-adl") / "adl_by_coin_REALTIME.csv"


def shared(relative: Path) -> Path:
    path = SHARED / relative
    if not path.is_file():
        pytest.skip(f"{path} is not here (the shared data folder is optional; CI has it)")
    return path


def script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


# -- synthetic files ----------------------------------------------------------------------------

def write_kospi(path: Path, rows: list[tuple[str, str]]) -> None:
    """Rows of (close, credit) text, oldest first, written newest first like the source."""
    start = date(2024, 1, 1)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Date", "KOSPI_index", "Volume", "Credit_Balance_KOSPI"])
        for i, (close, credit) in reversed(list(enumerate(rows))):
            w.writerow([(start + timedelta(days=i)).isoformat(), close, "1.0", credit])


# day: 0 1 = -3 % exactly (no drop), 3 = -3.01 % (episode A, reference credit[2] = 1000),
# 5 = -10 % (episode B, reference credit[4] = 1000, overlapping A), 12 = -5.5 % (too close to
# the end: 12 + 5 > 13)
KOSPI_ROWS = [
    ("100", "1000"),     # 0
    ("97", "990"),       # 1: 97 / 100 - 1 = -0.03 exactly (a float says -0.030000000000000027)
    ("97", "1000"),      # 2: A's reference
    ("94.0803", "980"),  # 3: A, 97 * (1 - 0.0301); A: -2
    ("94.0803", "1000"),  # 4: B's reference; A: 0
    ("84.67227", "950"),  # 5: B, -10 %; A: -5, B: -5
    ("84.67227", "1000"),  # 6: A: 0, B: 0
    ("84.67227", "1010"),  # 7: A: 1, B: 1
    ("84.67227", "1020"),  # 8: A: 2, B: 2
    ("84.67227", "1030"),  # 9: B: 3
    ("84.67227", "1040"),  # 10: B: 4
    ("84.67227", "1040"),  # 11
    ("80.0137", "1000"),   # 12: -5.5 %, left out
    ("80.0137", "1000"),   # 13
]


def write_positions(path: Path) -> None:
    # (asset, side, was_liquidated, was_adl) and how many such rows
    rows = [("BTC", "LONG", "True", "False", 3), ("BTC", "LONG", "False", "False", 1),
            ("BTC", "LONG", "True", "True", 1),
            ("BTC", "SHORT", "False", "True", 2), ("BTC", "SHORT", "True", "False", 1),
            ("SOL", "LONG", "True", "False", 1), ("SOL", "LONG", "False", "False", 1),
            ("SOL", "SHORT", "False", "True", 3),
            ("ETH", "LONG", "True", "True", 1)]  # not BTC or SOL: left out
    with gzip.open(path, "wt", newline="") as f:
        w = csv.writer(f)
        w.writerow(["user_address", "asset", "side", "position_size", "was_liquidated",
                    "was_adl"])
        n = 0
        for asset, side, liquidated, adl, count in rows:
            for _ in range(count):
                n += 1
                w.writerow([f"0x{n:040x}", asset, side, "1.0", liquidated, adl])


def write_adl_by_coin(path: Path) -> None:
    # notional 100 in all: shares 0.5, 0.3, 0.1, 0.05, 0.03, 0.02
    path.write_text("coin,adl_notional,closed_pnl,num_users,num_events\n"
                    "SOL,10.0,1,1,4\nBTC,50.000,1,1,10\nETH,30,1,1,7\nkPEPE,2,0,1,1\n"
                    "HYPE,5.00,1,1,2\nXPL,3,1,1,1\n")


# -- the shipped tables -------------------------------------------------------------------------

def test_shipped_kospi_table_loads_and_holds_together() -> None:
    # Act
    k = kospi_margin_credit()

    # Assert
    assert k.days == (0, 1, 2, 3, 4, 5)
    assert all(len(s) == 6 for s in (k.mean, k.median, k.stdev, k.p05, k.p95))
    assert k.episodes == len(k.episode_dates) > 0
    assert k.drop_days == k.episodes + k.left_out_near_end
    assert 0 <= k.overlapping_episodes <= k.episodes and 1 <= k.episode_clusters <= k.episodes
    assert list(k.episode_dates) == sorted(set(k.episode_dates))
    assert k.first_date < k.episode_dates[0] and k.episode_dates[-1] < k.last_date
    assert all(lo <= mid <= hi for lo, mid, hi in zip(k.p05, k.median, k.p95, strict=True))
    assert all(lo <= m <= hi for lo, m, hi in zip(k.p05, k.mean, k.p95, strict=True))
    assert all(s > 0 for s in k.stdev)
    assert "< -0.03, strictly" in k.definition
    with pytest.raises(dataclasses.FrozenInstanceError):
        k.episodes = 0  # type: ignore[misc]


def test_shipped_hyperliquid_table_loads_and_holds_together() -> None:
    # Act
    h = hyperliquid_adl()

    # Assert: the parts add up to the whole
    def added(cells: list[AdlCounts]) -> tuple[int, int, int]:
        return (sum(c.positions for c in cells), sum(c.liquidated for c in cells),
                sum(c.adl for c in cells))

    whole = (h.overall.positions, h.overall.liquidated, h.overall.adl)
    assert added(list(h.by_coin.values())) == whole == added(list(h.by_side.values()))
    assert added(list(h.by_coin_and_side.values())) == whole
    for coin, cell in h.by_coin.items():
        assert added([v for (c, _), v in h.by_coin_and_side.items() if c == coin]) == (
            cell.positions, cell.liquidated, cell.adl)
    assert h.liquidated_and_adl <= min(h.overall.liquidated, h.overall.adl)
    for cell in [h.overall, *h.by_coin.values(), *h.by_side.values()]:
        assert cell.adl_per_liquidated == round(cell.adl / cell.liquidated, 6)
    liquidated_long = h.by_side["LONG"].liquidated
    assert h.adl_short_per_liquidated_long == round(h.by_side["SHORT"].adl / liquidated_long, 6)
    # shares on [0, 1], in order; the Herfindahl index between its bounds
    assert 0 < h.top1_share <= h.top5_share <= 1 and len(h.top5_coins) == 5
    assert h.top5_coins[0] == h.top1_coin
    assert h.top1_share == round(h.top1_notional_usd / h.total_adl_notional_usd, 6)
    assert max(1 / h.coins, h.top1_share**2) <= h.herfindahl <= h.top1_share
    with pytest.raises(TypeError):
        h.by_coin["BTC"] = h.overall  # type: ignore[index]


def test_shipped_tables_carry_their_provenance_and_readme_numbers() -> None:
    # Arrange
    kospi = json.loads((SHIPPED / KOSPI_FILE).read_text())
    hyper = json.loads((SHIPPED / HYPERLIQUID_FILE).read_text())
    readme = (SHIPPED / "README.md").read_text()

    # Assert: source, commit, path, licence and the command of each table
    assert kospi["source"]["commit"] == "1357edc1a27c803c73e913132811bd6cc5551576"
    assert hyper["source"]["positions"]["commit"] == "18a7319909e0fa8d389cc1ed70ca04750849548a"
    assert hyper["source"]["adl_by_coin"]["commit"] == "79bad0fae259fc1fcd9fce960953ae3b398f2db7"
    assert "GPL-3.0" in hyper["source"]["positions"]["licence"]
    assert "ConejoCapital" in hyper["source"]["attribution"]
    assert all("scripts/derive_targets.py" in d["regenerate"] for d in (kospi, hyper))
    # the README states the shipped figures
    k = kospi_margin_credit()
    assert f"{k.episodes} episodes" in readme
    assert all(f"{m:.6f}" in readme for m in k.mean)
    h = hyperliquid_adl()
    assert all(f"{x:.6f}" in readme for x in (h.overall.adl_per_liquidated, h.top1_share,
                                              h.top5_share, h.herfindahl))


# -- the KOSPI computation, by hand -------------------------------------------------------------

def test_kospi_episodes_by_hand(tmp_path: Path) -> None:
    # Arrange
    path = tmp_path / "kospi.csv"
    write_kospi(path, KOSPI_ROWS)

    # Act
    v = kospi_response_from_csv(path)

    # Assert: -3 % exactly is no drop, -3.01 % is; the one near the end is left out; A and B
    # overlap and are both kept
    assert v["drop_days"] == 3 and v["episodes"] == 2
    assert v["episode_dates"] == ["2024-01-04", "2024-01-06"]
    assert v["left_out_near_end"] == 1 and v["left_out_dates"] == ["2024-01-13"]
    assert v["overlapping_episodes"] == 2 and v["episode_clusters"] == 1
    assert (v["trading_days"], v["first_date"], v["last_date"]) == (14, "2024-01-01",
                                                                    "2024-01-14")
    # A = -2, 0, -5, 0, 1, 2 and B = -5, 0, 1, 2, 3, 4 (percent of the day before each drop)
    assert v["mean_percent"] == [-3.5, 0.0, -2.0, 1.0, 2.0, 3.0]
    assert v["median_percent"] == v["mean_percent"]
    # two values a, b: sample standard deviation |a - b| / sqrt(2)
    assert v["stdev_percent"] == [2.12132, 0.0, 4.242641, 1.414214, 1.414214, 1.414214]
    # linear interpolation at (n - 1) p = 0.05 and 0.95 between the two sorted values
    assert v["p05_percent"] == [-4.85, 0.0, -4.7, 0.1, 1.1, 2.1]
    assert v["p95_percent"] == [-2.15, 0.0, 0.7, 1.9, 2.9, 3.9]


def test_kospi_last_episode_that_fits_is_kept(tmp_path: Path) -> None:
    # Arrange: drops on days 2 (2 + 5 = the last row) and 3 (past it), nothing else
    rows = [("100", "100"), ("100", "100"), ("90", "99"), ("80", "98"), ("80", "97"),
            ("80", "96"), ("80", "95"), ("80", "94")]
    path = tmp_path / "kospi.csv"
    write_kospi(path, rows)

    # Act
    v = kospi_response_from_csv(path)

    # Assert: one episode, referenced to day 1's credit of 100; one episode cannot have a
    # standard deviation
    assert (v["episodes"], v["left_out_near_end"]) == (1, 1)
    assert v["mean_percent"] == [-1.0, -2.0, -3.0, -4.0, -5.0, -6.0]
    assert v["stdev_percent"] == [None] * 6
    assert v["overlapping_episodes"] == 1  # its neighbour was left out, but it is a drop day


def test_kospi_empty_close_stays_a_day_without_returns(tmp_path: Path) -> None:
    # Arrange: day 2's close is empty, so day 2's and day 3's returns are undefined (day 3's
    # -10 % against day 1 is no drop); day 4 drops
    rows = [("100", "100"), ("100", "100"), ("", "100"), ("90", "100"), ("80", "100"),
            ("80", "110"), ("80", "100"), ("80", "100"), ("80", "100"), ("80", "100")]
    path = tmp_path / "kospi.csv"
    write_kospi(path, rows)

    # Act
    v = kospi_response_from_csv(path)

    # Assert: day 2 still counts in k (day 4 + 1 = day 5)
    assert v["missing_close_dates"] == ["2024-01-03"]
    assert v["undefined_return_dates"] == ["2024-01-03", "2024-01-04"]
    assert v["episode_dates"] == ["2024-01-05"]
    assert v["mean_percent"] == [0.0, 10.0, 0.0, 0.0, 0.0, 0.0]


def test_kospi_refuses_a_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "kospi.csv"
    write_kospi(path, [("100", "100"), ("100", "100")])
    with pytest.raises(ValueError, match="no drop"):
        kospi_response_from_csv(path)
    write_kospi(path, [("100", "100"), ("100", "")])
    with pytest.raises(ValueError, match="Credit_Balance_KOSPI is not a number"):
        kospi_response_from_csv(path)
    path.write_text("Date,Close\n2024-01-01,1\n")
    with pytest.raises(ValueError, match="missing column"):
        kospi_response_from_csv(path)


def test_percentile_rule_is_numpys_linear() -> None:
    # the rule the README names: statistics.quantiles(method="inclusive") at 5 % steps
    for values in ([Fraction(3)], [Fraction(1), Fraction(4)],
                   [Fraction(n * n, 7) - 3 for n in range(13)]):
        cuts = statistics.quantiles(values, n=20, method="inclusive") if len(values) > 1 else [
            values[0]] * 19
        assert targets._percentile(sorted(values), 5) == cuts[0]
        assert targets._percentile(sorted(values), 95) == cuts[-1]


# -- the Hyperliquid computation, by hand -------------------------------------------------------

def test_hyperliquid_ratios_by_hand(tmp_path: Path) -> None:
    # Arrange
    positions, adl = tmp_path / "positions.csv.gz", tmp_path / "adl.csv"
    write_positions(positions)
    write_adl_by_coin(adl)

    # Act
    v = hyperliquid_from_files(positions, adl)

    # Assert: counts and ratios of positions
    p = v["positions"]
    assert (p["rows"], p["positions"], p["liquidated"], p["adl"]) == (14, 13, 6, 6)
    assert p["adl_per_liquidated"] == 1.0 and p["liquidated_and_adl"] == 1
    assert p["by_coin"] == {
        "BTC": {"positions": 8, "liquidated": 5, "adl": 3, "adl_per_liquidated": 0.6},
        "SOL": {"positions": 5, "liquidated": 1, "adl": 3, "adl_per_liquidated": 3.0}}
    assert p["by_side"] == {
        "LONG": {"positions": 7, "liquidated": 5, "adl": 1, "adl_per_liquidated": 0.2},
        "SHORT": {"positions": 6, "liquidated": 1, "adl": 5, "adl_per_liquidated": 5.0}}
    assert p["by_coin_and_side"]["SOL"]["SHORT"] == {
        "positions": 3, "liquidated": 0, "adl": 3, "adl_per_liquidated": None}
    assert p["by_coin_and_side"]["BTC"]["LONG"]["adl_per_liquidated"] == 0.25
    assert p["adl_short_per_liquidated_long"] == 1.0
    # the ADL notional over the coins
    assert v["adl_by_coin"] == {
        "coins": 6, "adl_events": 25, "total_adl_notional_usd": 100.0,
        "top1": {"coin": "BTC", "adl_notional_usd": 50.0, "share": 0.5},
        "top5": {"coins": ["BTC", "ETH", "SOL", "HYPE", "XPL"], "share": 0.98},
        "herfindahl": 0.3538,  # .25 + .09 + .01 + .0025 + .0009 + .0004
    }


def test_hyperliquid_refuses_a_bad_file(tmp_path: Path) -> None:
    positions, adl = tmp_path / "positions.csv.gz", tmp_path / "adl.csv"
    write_adl_by_coin(adl)
    with gzip.open(positions, "wt") as f:
        f.write("asset,side,was_liquidated,was_adl\nBTC,LONG,yes,False\n")
    with pytest.raises(ValueError, match="was_liquidated is not True or False"):
        hyperliquid_from_files(positions, adl)
    with gzip.open(positions, "wt") as f:
        f.write("asset,side,was_liquidated,was_adl\nBTC,LONG,True,False\n")
    adl.write_text("coin,adl_notional,num_events\nBTC,1,1\nBTC,2,1\n")
    with pytest.raises(ValueError, match="repeated coin"):
        hyperliquid_from_files(positions, adl)


# -- the real files -----------------------------------------------------------------------------

def test_real_kospi_recomputes_the_shipped_table() -> None:
    # Arrange
    path = shared(KOSPI_CSV)

    # Act
    document = kospi_table(kospi_response_from_csv(path))

    # Assert
    text = (SHIPPED / KOSPI_FILE).read_text(encoding="utf-8")
    assert document == json.loads(text) and render(document) == text
    assert document["values"]["trading_days"] == 3_762  # the source README's row count
    assert document["values"]["missing_close_dates"] == ["2012-07-16"]


def test_real_hyperliquid_recomputes_the_shipped_table_and_the_readme_counts() -> None:
    # Arrange
    positions, adl = shared(POSITIONS), shared(ADL_BY_COIN)

    # Act
    document = hyperliquid_table(hyperliquid_from_files(positions, adl))

    # Assert
    text = (SHIPPED / HYPERLIQUID_FILE).read_text(encoding="utf-8")
    assert document == json.loads(text) and render(document) == text
    # the counts of the data folder's README
    p, a = document["values"]["positions"], document["values"]["adl_by_coin"]
    assert (p["rows"], p["liquidated"], p["adl"]) == (13_031, 2_924, 4_619)
    assert (p["by_side"]["LONG"]["positions"], p["by_side"]["SHORT"]["positions"]) == (
        7_475, 5_556)
    cells = p["by_coin_and_side"]
    assert [cells[c][s]["liquidated"] for c, s in
            [("BTC", "LONG"), ("SOL", "LONG"), ("BTC", "SHORT"), ("SOL", "SHORT")]] == [
        1_468, 1_307, 107, 42]
    assert (cells["SOL"]["SHORT"]["adl"], cells["BTC"]["SHORT"]["adl"]) == (2_824, 1_699)
    assert (a["coins"], a["adl_events"]) == (162, 34_983)
    assert round(a["total_adl_notional_usd"] / 1e9, 3) == 2.103
    assert a["top5"]["coins"] == ["BTC", "ETH", "SOL", "HYPE", "XPL"]


def test_real_script_check_passes() -> None:
    shared(KOSPI_CSV), shared(POSITIONS), shared(ADL_BY_COIN)
    result = script("--check")
    assert result.returncode == 0, result.stderr
    assert "2 tables match" in result.stdout


# -- the script ---------------------------------------------------------------------------------

def test_script_names_a_missing_folder_in_one_line(tmp_path: Path) -> None:
    # Act
    result = script("--check", "--shared", str(tmp_path / "absent"))

    # Assert
    assert result.returncode == 2
    assert result.stderr.startswith("derive_targets: error: no shared data folder at ")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_script_check_fails_on_different_data(tmp_path: Path) -> None:
    # Arrange: a shared folder of the synthetic files (negative control of --check)
    for relative in (KOSPI_CSV, POSITIONS):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(tmp_path / KOSPI_CSV, "wt", newline="") as f:
        f.write("Date,KOSPI_index,Credit_Balance_KOSPI\n")
        for i, (close, credit) in enumerate(KOSPI_ROWS):
            f.write(f"2024-01-{i + 1:02d},{close},{credit}\n")
    write_positions(tmp_path / POSITIONS)
    write_adl_by_coin(tmp_path / ADL_BY_COIN)
    before = {p.name: p.read_bytes() for p in SHIPPED.iterdir()}

    # Act
    result = script("--check", "--shared", str(tmp_path))

    # Assert: both differ, nothing written
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("differs from the recomputation") == 2
    assert {p.name: p.read_bytes() for p in SHIPPED.iterdir()} == before
