"""Scenario TOML files: presets, ``extends``, and strict validation with errors that name the
key. Every rejection below is a mistake a person makes when writing a scenario by hand."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from gaemi.clients.sim.scenario import Scenario, ScenarioError, load_scenario, preset_names
from gaemi.clients.sim.scenario.market import build_spec
from gaemi.clients.sim.scenario.params import CohortParams
from gaemi.risk.markets import PPB, PRESETS


def _write(tmp_path: Path, text: str, name: str = "s.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ScenarioError) as info:
        load_scenario(_write(tmp_path, 'name = "x"\n' + text))
    return str(info.value)


def test_every_preset_loads_and_names_itself() -> None:
    # Arrange
    names = preset_names()

    # Act
    scenarios = {name: load_scenario(name) for name in names}

    # Assert: the default and the counterfactual presets the docs promise are all there
    assert {"ants-skhynix", "ants-skhynix-mm5", "ants-skhynix-mm10", "ants-skhynix-partial",
            "ants-skhynix-flash-crash", "ants-skhynix-flash-crash-krx-limit",
            "ants-skhynix-oracle-freeze"} <= set(names)
    for name, scenario in scenarios.items():
        assert scenario.name == name
        assert scenario.description


def test_the_defaults_are_the_default_scenario() -> None:
    # Arrange: docs/scenarios.md documents the dataclass defaults as the demo's parameters
    preset = load_scenario("ants-skhynix")

    # Act
    defaults = dataclasses.replace(Scenario(), description=preset.description)

    # Assert
    assert preset == defaults


def test_variants_inherit_the_base_and_change_only_what_they_say() -> None:
    # Arrange
    base = load_scenario("ants-skhynix")

    # Act
    mm5, mm10 = load_scenario("ants-skhynix-mm5"), load_scenario("ants-skhynix-mm10")

    # Assert: same flow and seed; the pair differs only in the first tier's maintenance rate
    for variant in (mm5, mm10):
        assert variant.seed == base.seed
        assert (variant.ants, variant.path, variant.market_makers) == \
            (base.ants, base.path, base.market_makers)
    assert mm5.market.tiers[1:] == mm10.market.tiers[1:]
    spec5, spec10 = build_spec(mm5.market), build_spec(mm10.market)
    assert spec5.tiers[0].mmr_ppb == 5 * PPB // 100
    assert spec10.tiers[0].mmr_ppb == 10 * PPB // 100
    assert spec5.max_leverage == spec10.max_leverage == 10
    assert build_spec(base.market) == PRESETS["SKHYNIX-PERP"]


def test_a_seed_given_to_the_loader_replaces_the_files() -> None:
    # Act
    scenario = load_scenario("ants-skhynix", seed=7)

    # Assert
    assert scenario.seed == 7


def test_a_full_scenario_file_is_read_into_every_table(tmp_path: Path) -> None:
    # Arrange
    path = _write(tmp_path, """
name = "mine"
seed = 5
[market]
symbol = "SKHYNIX-PERP"
usdkrw = 1400.5
[market.overrides]
daily_limit_ppb = 300_000_000
[ants]
count = 10
leverage = { 2 = 1, 20 = 3 }
[[shocks]]
kind = "crash"
day = "2026-07-28"
at = "13:00"
pct = -10
duration_s = 300
[etf]
enabled = false
""")

    # Act
    scenario = load_scenario(path)

    # Assert
    assert (scenario.name, scenario.seed, scenario.market.usdkrw) == ("mine", 5, 1400.5)
    assert scenario.ants.count == 10
    assert scenario.ants.leverage == ((2, 1.0), (20, 3.0))
    assert scenario.ants.dip_share == CohortParams().dip_share  # untouched keys keep defaults
    assert scenario.shocks[0].kind == "crash" and scenario.shocks[0].at_seconds == 13 * 3600
    assert scenario.etf.enabled is False
    assert build_spec(scenario.market).daily_limit_ppb == 300_000_000


def test_extends_takes_a_path_relative_to_the_file(tmp_path: Path) -> None:
    # Arrange
    _write(tmp_path, 'name = "base"\nseed = 11\n[ants]\ncount = 7\n', "base.toml")
    child = _write(tmp_path, 'extends = "base.toml"\nname = "child"\n[ants]\ndip_share = 0\n',
                   "child.toml")

    # Act
    scenario = load_scenario(child)

    # Assert: the child's table is merged over the base's, key by key
    assert (scenario.name, scenario.seed, scenario.ants.count, scenario.ants.dip_share) == \
        ("child", 11, 7, 0.0)


@pytest.mark.parametrize(("text", "expected"), [
    ("colour = 3\n", "unknown key 'colour'"),
    ("[ants]\ncout = 5\n", "unknown key 'ants.cout'"),
    ("[market_makers]\nlevel = 3\n", "unknown key 'market_makers.level'"),
    ("[bots]\nx = 1\n", "unknown key 'bots'"),
    ("[ants]\ncount = \"many\"\n", "ants.count: expected an integer"),
    ("[ants]\ncount = true\n", "ants.count: expected an integer"),
    ("[ants]\ncount = 2.5\n", "ants.count: expected an integer"),
    ("[etf]\nenabled = 1\n", "etf.enabled: expected true or false"),
    ("[ants]\ndip_share = 1.5\n", "dip_share in [0, 1]"),
    ("[ants]\ncount = -1\n", "count >= 0"),
    ("[ants]\nleverage = { two = 1 }\n", "'two' is not a whole leverage"),
    ("[ants]\nside = \"short\"\n", "ants: side is long"),
    ("[path]\nfirst_day = \"2026-13-01\"\n", "first_day: a date"),
    ("[path]\nfirst_day = \"2026-07-28\"\nlast_day = \"2026-07-27\"\n",
     "first_day is not after last_day"),
    ("[market]\nsymbol = \"BTC-PERP\"\n", "unknown market 'BTC-PERP'"),
    ("[market.overrides]\nmaker_fees = 0\n", "unknown key market.overrides.'maker_fees'"),
    ("[market.overrides]\ntaker_fee_ppb = \"0.05%\"\n",
     "market.overrides.taker_fee_ppb: expected an integer"),
    ("[market.overrides]\ntaker_fee_ppb = -1\n", "taker fee >= 0"),
    ("[[market.tiers]]\nmax_leverage = 20\nmmr_pct = 6\n", "mmr_pct <= 100 / max_leverage"),
    ("[[market.tiers]]\nmax_notional_usd = 100\nmax_leverage = 10\nmmr_pct = 5\n",
     "only the last tier leaves out max_notional_usd"),
    ("[[shocks]]\nkind = \"gap\"\npct = -5\n", "every shock needs 'day'"),
    ("[[shocks]]\nkind = \"meteor\"\nday = \"2026-07-28\"\n", "kind: one of gap, crash"),
    ("[[shocks]]\nkind = \"gap\"\nday = \"2026-07-28\"\n", "gap: pct in (-90, 1000), not 0"),
    ("[[shocks]]\nkind = \"gap\"\nday = \"2026-07-28\"\npct = -5\nat = \"09:00\"\n",
     "a gap acts at the open"),
    ("[[shocks]]\nkind = \"crash\"\nday = \"2026-07-28\"\nat = \"25:00\"\npct = -5\n"
     "duration_s = 60\n", "at: HH:MM or HH:MM:SS"),
    ("[[shocks]]\nkind = \"oracle_freeze\"\nday = \"2026-07-28\"\nat = \"10:00\"\n",
     "oracle_freeze: duration_s > 0"),
    ("[[shocks]]\nkind = \"oracle_freeze\"\nday = \"2026-08-03\"\nat = \"10:00\"\n"
     "duration_s = 9\n", "outside the simulated days"),
    ("seed = \n", "not valid TOML"),
])
def test_a_bad_file_is_refused_with_the_key_named(tmp_path: Path, text: str,
                                                 expected: str) -> None:
    # Act
    message = _error(tmp_path, text)

    # Assert
    assert expected in message
    assert "s.toml" in message


def test_an_unknown_key_lists_the_known_ones(tmp_path: Path) -> None:
    # Act
    message = _error(tmp_path, "[ants]\ncout = 5\n")

    # Assert: the person sees the spelling they meant
    assert "count" in message and "hold_mean_s" in message


def test_an_unknown_preset_lists_the_presets() -> None:
    # Act
    with pytest.raises(ScenarioError) as info:
        load_scenario("ants-samsung-moon")

    # Assert
    assert "ants-skhynix" in str(info.value)


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    # Act / Assert
    with pytest.raises(ScenarioError, match="no scenario file"):
        load_scenario(tmp_path / "absent.toml")


def test_an_extends_cycle_is_refused(tmp_path: Path) -> None:
    # Arrange
    _write(tmp_path, 'extends = "b.toml"\nname = "a"\n', "a.toml")
    _write(tmp_path, 'extends = "a.toml"\nname = "b"\n', "b.toml")

    # Act / Assert
    with pytest.raises(ScenarioError, match="nests more than"):
        load_scenario(tmp_path / "a.toml")
