"""The leveraged and inverse products' daily hedge (clients/sim/scenario/agents.py,
EtfRebalancer): dH = AUM (L^2 - L) r by hand for 2x, 3x, -1x and -2x, traded in slices before
the close of the product's own market; the HKEX product hedging at 17:00 KST on the real
simulated days; the scenario keys; a run's record of every product's hedge."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from tiny import tiny_file

from gaemi.clients.sim.scenario.agents import EtfRebalancer, View
from gaemi.clients.sim.scenario.driver import _hedge_closes, run
from gaemi.clients.sim.scenario.loader import ScenarioError, load_scenario
from gaemi.clients.sim.scenario.market import scenario_spec
from gaemi.clients.sim.scenario.params import EtfProductParams
from gaemi.clients.sim.scenario.path import build_days
from gaemi.clients.sim.sweep import plan_sweep
from gaemi.risk.calendar import NS_PER_SECOND
from gaemi.risk.markets import UNIT

MULT = 10  # SKHYNIX-PERP: µ$ per tick per lot
CLOSE = 1_000_000 * NS_PER_SECOND  # an arbitrary close, in venue ns


class _Api:
    """Just what a rebalancer uses: it records the orders it sends and the deposit."""

    def __init__(self) -> None:
        self.symbol = "SKHYNIX-PERP"
        self.spec = SimpleNamespace(max_leverage=20, max_order_qty=10**9)
        self.mult = MULT
        self.view = View(t=0, ref=0)
        self.sent: list[tuple[int, dict[str, Any]]] = []
        self.deposits: dict[int, int] = {}

    def register(self, account_id: int, cohort: Any, owner: Any) -> None:
        self.cohort = cohort

    def session(self, account_id: int) -> Any:
        return SimpleNamespace(send=lambda msg: self.sent.append((self.view.t, msg)))

    def deposit(self, account_id: int, amount: int) -> None:
        self.deposits[account_id] = amount


def _hedge(leverage: int, r_pct: int, *, step_s: int = 1, prev_close: int = 100_000,
           aum_usd: float = 1_000_000.0) -> tuple[_Api, EtfRebalancer]:
    """Step a product through the ten minutes before CLOSE with the underlying at
    prev_close x (1 + r) and return what it sent."""
    api = _Api()
    product = EtfProductParams(name=f"{leverage}x", leverage=leverage, aum_ratio=1.0)
    etf = EtfRebalancer(product, 7, aum_usd, api, [CLOSE], step_s)
    ref = prev_close * (100 + r_pct) // 100
    for t in range(CLOSE - 900 * NS_PER_SECOND, CLOSE + 300 * NS_PER_SECOND,
                   step_s * NS_PER_SECOND):
        api.view.t, api.view.ref = t, ref
        etf.on_step(api.view, 0, prev_close)
    return api, etf


@pytest.mark.parametrize(("leverage", "factor"), [(2, 2), (3, 6), (-1, 2), (-2, 6)])
def test_every_product_sells_into_a_fall_by_aum_times_l2_minus_l(leverage: int,
                                                                 factor: int) -> None:
    # Act: the underlying is 10% down; $1M of AUM
    api, etf = _hedge(leverage, -10)

    # Assert: dH = 1,000,000 x (L^2 - L) x -0.10, inverse products included: 2x and -1x sell
    # $200k, 3x and -2x $600k
    assert etf.stats["rebalanced_usd"] == pytest.approx(-100_000.0 * factor)
    assert {msg["args"]["side"] for _, msg in api.sent} == {"SELL"}
    assert all(msg["args"]["type"] == "MARKET" for _, msg in api.sent)
    # 60 slices of 10 s; each the slice's notional at $900 (90,000 ticks x 10 µ$ per lot):
    # $200k / 60 = $3,333.33 -> 3,703 lots (3,703.7 rounded down); $600k: 11,111 lots
    lots = int(100_000 * factor * UNIT / 60) // (90_000 * MULT)
    assert [msg["args"]["qty"] for _, msg in api.sent] == [lots] * 60
    assert etf.stats["slices"] == 60


def test_the_slices_fill_the_ten_minutes_before_the_close() -> None:
    api, _ = _hedge(-2, -10)
    times = [t for t, _ in api.sent]
    assert times == [CLOSE - (600 - 10 * k) * NS_PER_SECOND for k in range(60)]


def test_a_rise_buys_and_a_flat_day_trades_nothing() -> None:
    up, etf_up = _hedge(-1, 5)
    flat, etf_flat = _hedge(2, 0)
    assert etf_up.stats["rebalanced_usd"] == pytest.approx(1_000_000 * 2 * 0.05)
    assert {msg["args"]["side"] for _, msg in up.sent} == {"BUY"}
    assert flat.sent == [] and etf_flat.stats["rebalanced_usd"] == 0.0


def test_a_coarse_clock_trades_the_whole_hedge_in_fewer_slices() -> None:
    # steps of 60 s: a slice each step, ten in all, each a tenth of the hedge
    api, etf = _hedge(2, -10, step_s=60)
    lots = int(200_000 * UNIT / 10) // (90_000 * MULT)
    assert [msg["args"]["qty"] for _, msg in api.sent] == [lots] * 10
    assert etf.stats["slices"] == 10


def test_the_hkex_product_hedges_at_its_own_close_after_krx() -> None:
    # Arrange: the default scenario's days and products
    scenario = load_scenario("ants-skhynix")
    spec = scenario_spec(scenario)
    days = build_days(spec, scenario.path, scenario.shocks, scenario.market.usdkrw,
                      scenario.seed)
    hk, krx = scenario.etf.products

    # Act
    hk_closes = _hedge_closes(hk, 0, days)
    krx_closes = _hedge_closes(krx, 1, days)

    # Assert: 16:00 HKT = 08:00 UTC = 17:00 KST, 90 minutes after KRX's 15:30 close; the KRX
    # product hedges at KRX's close; both windows lie in the simulated day
    assert hk.leverage == 2 and krx.leverage == -2
    for day, hk_close, krx_close in zip(days, hk_closes, krx_closes, strict=True):
        assert hk_close == day.close_ts + 5400 * NS_PER_SECOND
        assert hk_close % (86_400 * NS_PER_SECOND) == 8 * 3600 * NS_PER_SECOND
        assert krx_close == day.close_ts
        assert day.window_start <= hk_close - 600 * NS_PER_SECOND and hk_close <= day.window_end


def test_a_window_that_misses_the_products_close_is_refused() -> None:
    scenario = load_scenario("ants-skhynix")
    short = dataclasses.replace(scenario, path=dataclasses.replace(scenario.path,
                                                                   post_close_s=900))
    with pytest.raises(ValueError, match=r"etf.products\[0\].*path.post_close_s >= 5400"):
        run(short, progress=False)


def test_products_are_scenario_keys(tmp_path: Path) -> None:
    # a product of one's own replaces the list; each product must say what it is
    path = tiny_file(tmp_path, "one-product", '''[[etf.products]]
name = "NVDL"
leverage = 2
aum_ratio = 0.5
zone = "America/New_York"
close = "16:00"
''')
    scenario = load_scenario(path)
    assert [p.name for p in scenario.etf.products] == ["NVDL"]
    assert scenario.etf.products[0].window_s == 600
    bad = tiny_file(tmp_path, "bad", '[[etf.products]]\nname = "x"\nleverage = -1\n')
    with pytest.raises(ScenarioError, match=r"etf.products\[0\]: every product needs"):
        load_scenario(bad)
    zero = tiny_file(tmp_path, "zero", '''[[etf.products]]
name = "x"
leverage = 1
aum_ratio = 1.0
zone = "Asia/Seoul"
close = "15:30"
''')
    with pytest.raises(ScenarioError, match="0 and 1 never rebalance"):
        load_scenario(zero)


def test_a_sweep_can_set_one_products_aum() -> None:
    plan = plan_sweep("ants-skhynix", ["etf.products.1.aum_ratio=0,0.12"], seeds=1)
    assert [p.template.etf.products[1].aum_ratio for p in plan.points] == [0.0, 0.12]
    assert all(p.template.etf.products[0].aum_ratio == 0.24 for p in plan.points)


@pytest.mark.slow
def test_a_run_records_each_products_hedge(tmp_path: Path) -> None:
    # Arrange: the tiny flow (simulated to 17:00 KST)
    scenario = load_scenario(tiny_file(tmp_path, "hedges"))

    # Act
    record = run(scenario, progress=False)

    # Assert: two products, each on its own account, each hedged on both days; the fall of
    # 07-28 (-14.6%) made both sell: 2 x 0.24 x deposits x r and 6 x 0.03 x deposits x r
    stats = record.config["run_facts"]["agent_stats"]["etf"]
    assert list(stats) == ["CSOP 2x (HKEX)", "KRX -2x"]
    etf_accounts = [a for a, c in record.cohorts.items() if c.role == "etf"]
    assert len(etf_accounts) == 2
    hk, krx = stats.values()
    assert hk["aum_usd"] == pytest.approx(8 * krx["aum_usd"])  # 0.24 and 0.03 of the same
    assert sorted(record.deposits[a] for a in etf_accounts) == sorted(
        int(s["aum_usd"] * UNIT) for s in stats.values())
    assert hk["rebalanced_usd"] < 0 and krx["rebalanced_usd"] < 0  # the week's net: a fall
    assert all(s["slices"] == 20 for s in stats.values())  # 10 a day at 60 s steps
    assert record.conservation_ok
