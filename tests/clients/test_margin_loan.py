"""The margin-loan regime (clients/sim/scenario/broker.py): the broker's rules by hand-computed
cases, the broker acting on a real venue through real sessions, and whole runs under the
regime (conservation after every command, no funding, forced sales at the limit price)."""

from __future__ import annotations

import csv
import dataclasses
import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from tiny import tiny_file

from gaemi.clients.cli.sim import main as gaemi
from gaemi.clients.sim.cascade.metrics import summarize
from gaemi.clients.sim.inprocess import InProcess, InProcessSession
from gaemi.clients.sim.scenario.agents import place
from gaemi.clients.sim.scenario.broker import (
    Broker,
    Valuation,
    forced_sale_lots,
    limit_prices,
    top_up_amount,
    valuation,
)
from gaemi.clients.sim.scenario.driver import run
from gaemi.clients.sim.scenario.loader import load_scenario
from gaemi.clients.sim.scenario.market import build_spec, scenario_spec
from gaemi.clients.sim.scenario.params import MarginLoanParams, MarketParams, Scenario
from gaemi.gateway.exchange import Exchange
from gaemi.gateway.sessions import Limits
from gaemi.risk import commands as C
from gaemi.risk.markets import PPB
from gaemi.risk.venue import Venue

M140 = Fraction(140, 100)
M120 = Fraction(120, 100)
MULT = 10  # SKHYNIX-PERP: µ$ per tick per lot (a tick is $0.01 a share, a lot 0.001 share)


# -- the rules, by hand -------------------------------------------------------------------------

def test_long_valuation_call_top_up_and_forced_sale() -> None:
    # 10,000 lots (10 shares) bought at 100,000 ticks ($1,000) with $4,000 of own money: a
    # $10,000 holding, a $6,000 loan, a ratio of 166.7%
    v0 = valuation(10_000, 4_000_000_000, 100_000, MULT)
    assert v0 == Valuation(10_000, 10_000_000_000, 6_000_000_000)
    assert not v0.below(M140)
    # the price falls 20%: $8,000 against the same $6,000 loan, 133.3% < 140%: a call
    v1 = valuation(10_000, 2_000_000_000, 80_000, MULT)
    assert v1 == Valuation(10_000, 8_000_000_000, 6_000_000_000)
    assert v1.below(M140)
    # the top-up repays loan until 8,000 / (6,000 - X) = 1.4: X = $285.714285..., rounded up
    assert top_up_amount(v1, M140) == 285_714_286
    assert Fraction(8_000_000_000, 6_000_000_000 - 285_714_286) >= M140
    assert Fraction(8_000_000_000, 6_000_000_000 - 285_714_285) < M140
    # the forced sale at the lower limit, 70,000 ticks: the equity there is $1,000, the holding
    # $7,000; selling k lots at $7 each keeps (7,000 - 7k) / (6,000 - 7k) = 1.4 at k = 5,000
    at_limit = valuation(10_000, 1_000_000_000, 70_000, MULT)
    assert at_limit == Valuation(10_000, 7_000_000_000, 6_000_000_000)
    assert forced_sale_lots(at_limit, 70_000, MULT, M140) == 5_000
    assert Fraction(3_500_000_000, 2_500_000_000) == M140  # after the sale: exactly 140%


def test_forced_sale_sells_everything_under_water_and_at_least_one_lot() -> None:
    # $7,500 loan against a holding worth $7,000 at the limit: the broker sells it all
    under = valuation(10_000, -500_000_000, 70_000, MULT)
    assert under.collateral < under.loan
    assert forced_sale_lots(under, 70_000, MULT, M140) == 10_000
    # barely under the ratio: one lot
    v = Valuation(10_000, 7_000_000_000, 5_000_000_001)
    assert forced_sale_lots(v, 70_000, MULT, M140) == 1


def test_short_valuation_call_and_top_up() -> None:
    # 10,000 lots short at 100,000 ticks with $4,000: $14,000 of cash against $10,000 of lent
    # stock, 140%; the price rises 20%: the equity is $2,000, the stock $12,000, 116.7% < 120%
    v0 = valuation(-10_000, 4_000_000_000, 100_000, MULT)
    assert v0 == Valuation(-10_000, 14_000_000_000, 10_000_000_000)
    assert not v0.below(M120)
    v1 = valuation(-10_000, 2_000_000_000, 120_000, MULT)
    assert v1 == Valuation(-10_000, 14_000_000_000, 12_000_000_000)
    assert v1.below(M120)
    # the deposit adds to the cash: (14,000 + X) / 12,000 = 1.2 at X = $400
    assert top_up_amount(v1, M120) == 400_000_000
    # buying back at the upper limit, 130,000 ($1.30 a lot): the equity there is $1,000
    at_limit = valuation(-10_000, 1_000_000_000, 130_000, MULT)
    assert at_limit == Valuation(-10_000, 14_000_000_000, 13_000_000_000)
    # (14,000 - 1.3k) / (13,000 - 1.3k) = 1.2 at k = 6,153.85 lots: 6,154
    assert forced_sale_lots(at_limit, 130_000, MULT, M120) == 6_154
    assert Fraction(14_000_000_000 - 6_154 * 1_300_000,
                    13_000_000_000 - 6_154 * 1_300_000) >= M120


def test_limit_prices_round_inside_the_band() -> None:
    assert limit_prices(100_000, 300_000_000, 10**8) == (70_000, 130_000)
    # 1,550,001 x 0.7 = 1,085,000.7 (up: inside), x 1.3 = 2,015,001.3 (down: inside)
    assert limit_prices(1_550_001, 300_000_000, 10**8) == (1_085_001, 2_015_001)
    assert limit_prices(1, 300_000_000, 10**8) == (1, 1)


def test_the_regime_market_is_the_stock_market() -> None:
    perp = Scenario()
    assert scenario_spec(perp) == build_spec(perp.market)
    loan = dataclasses.replace(perp, regime="margin-loan")
    spec = scenario_spec(loan)
    assert spec.daily_limit_ppb == 300_000_000
    assert spec.price_band_ppb == PPB - 1
    assert spec.funding_cap_ppb == 1
    assert spec.taker_fee_ppb == build_spec(perp.market).taker_fee_ppb  # same fees
    with pytest.raises(ValueError, match="regime"):
        dataclasses.replace(perp, regime="cash")
    with pytest.raises(ValueError, match="maintenance_pct"):
        MarginLoanParams(maintenance_pct=100)
    assert MarginLoanParams().max_leverage == 2.5


# -- the broker on a real venue -----------------------------------------------------------------

class _Ant:
    def __init__(self, account_id: int, session: InProcessSession) -> None:
        self.account_id = account_id
        self.session = session


class _Accounts:
    """The three accounts under the broker, standing in for a RetailCohort (the interface the
    broker calls): what it was told is kept for the test to check."""

    def __init__(self, first_id: int, sessions: list[InProcessSession]) -> None:
        self.first_id = first_id
        self.ants = [_Ant(first_id + i, s) for i, s in enumerate(sessions)]
        self.blocked: dict[int, bool] = {}
        self.forced_out: list[int] = []

    def session_of(self, account_id: int) -> InProcessSession:
        return self.ants[account_id - self.first_id].session

    def set_blocked(self, account_id: int, blocked: bool) -> None:
        self.blocked[account_id] = blocked

    def on_orders_cancelled(self, account_id: int) -> None:
        pass

    def on_forced_out(self, account_id: int) -> None:
        self.forced_out.append(account_id)


def test_broker_calls_tops_up_and_sells_at_the_limit_price() -> None:
    """Three longs of $10,000 at 100,000 ticks (fees 0): A and B with $4,000 of their own,
    C with $2,500. The price falls 20% and the close calls all three; A tops up at the next
    open; B and C are sold at the open two sessions later at the lower limit, 70,000."""
    market = MarketParams(overrides=(("taker_fee_ppb", 0), ("maker_fee_ppb", 0)))
    scenario = Scenario(regime="margin-loan", market=market)
    spec = scenario_spec(scenario)
    venue = Venue([spec], start_ts=0)
    exchange = Exchange(venue, {}, limits=Limits(requests_per_second=10**9,
                                                 orders_per_second=10**9))
    wire = InProcess(exchange, lambda: venue.time)
    symbol = spec.symbol
    venue.submit(C.SetIndexPrice(symbol, 100_000))  # also the previous close
    mm, a, b, c = 1, 10, 11, 12
    for aid, usd in ((mm, 1_000_000), (a, 4_000), (b, 4_000), (c, 2_500)):
        venue.submit(C.Deposit(aid, usd * 1_000_000))
    maker = wire.session(mm, ())
    assert maker.send(place(symbol, -1, 30_000, 100_000)).ok
    sessions = [wire.session(aid, ("fills",)) for aid in (a, b, c)]
    for s in sessions:
        assert s.send({"op": "account.setLeverage",
                       "args": {"symbol": symbol, "leverage": 20}}).ok
        assert s.send(place(symbol, 1, 10_000)).ok
        assert s.position(symbol) == 10_000
    venue.submit(C.SetIndexPrice(symbol, 80_000))
    assert venue.market(symbol).mark == 80_000  # no funding, no basis yet: the index
    accounts = _Accounts(a, sessions)
    deposits: list[tuple[int, int]] = []

    def deposit(aid: int, amount: int) -> None:
        venue.submit(C.Deposit(aid, amount))
        deposits.append((aid, amount))

    broker = Broker(MarginLoanParams(top_up_share=0.0), 1, venue, symbol, [accounts], deposit)
    broker.at_close(0)
    # A and B: $8,000 against $6,000 (133%); C: $8,000 against $7,500 (107%)
    assert broker.call_log == [(0, a, 285_714_286, False), (0, b, 285_714_286, False),
                               (0, c, 1_785_714_286, False)]
    assert accounts.blocked == {a: True, b: True, c: True}
    broker.calls[a].top_up = True  # A meets its call (the share is the rng's; fixed here)
    broker.at_open(1)
    assert deposits == [(a, 285_714_286)]
    assert accounts.blocked[a] is False and a not in broker.calls
    assert venue.account(a).equity == 2_285_714_286
    # the bids the forced sales meet: 3,000 lots at 75,000, 4,000 at 70,000
    assert maker.send(place(symbol, 1, 3_000, 75_000)).ok
    assert maker.send(place(symbol, 1, 4_000, 70_000)).ok
    broker.at_open(2)
    # B: 5,000 lots at 70,000 restore 140% (the unit test's case); C is under water there
    # (a $7,000 holding for a $7,500 loan): all 10,000 lots, 8,000 of them left resting
    assert broker.placed == [(venue.time, b, -5_000, 70_000), (venue.time, c, -10_000, 70_000)]
    assert broker.sales == [(venue.time, b, -3_000, 75_000), (venue.time, b, -2_000, 70_000),
                            (venue.time, c, -2_000, 70_000)]
    assert sessions[1].position(symbol) == 5_000
    assert sessions[2].position(symbol) == 8_000
    assert accounts.blocked[b] is False and accounts.blocked[c] is True
    (order_id, (owner, left)), = broker.orders.items()
    assert (owner, left) == (c, 8_000)
    assert venue.open_orders(c)[0]["reduce_only"]
    # a buyer takes the rest: the maker fill goes to the broker, and C is flat and gone
    wire.take()
    buyer = wire.session(mm, ())
    assert buyer.send(place(symbol, 1, 8_000)).ok
    fills = [m["data"] for s, m in wire.take() if s is sessions[2] and m.get("ch") == "fills"]
    assert [f["orderId"] for f in fills] == [order_id]
    broker.on_fill(c, fills[0])
    assert sessions[2].position(symbol) == 0
    assert accounts.forced_out == [c] and accounts.blocked[c] is False
    assert broker.orders == {}
    # sold at $7 a lot against a $7,500 loan: $500 short, the broker's bad debt (the venue's
    # fund covers it, as the broker's own capital would)
    assert venue.account(c).equity == 0
    assert venue.market(symbol).insurance_fund == spec.insurance_fund - 500_000_000
    venue.check_invariants()
    facts = broker.facts()
    assert (facts["margin_calls"], facts["top_ups"], facts["top_up"],
            facts["forced_sales"]) == (3, 1, 285_714_286, 2)


# -- whole runs ---------------------------------------------------------------------------------

def _tiny_5d(folder: Path, name: str, extra: str) -> Path:
    """The tiny scenario over the whole week of 2026-07-27 (a call can reach its sale)."""
    path = tiny_file(folder, name, extra)
    text = path.read_text(encoding="utf-8").replace(
        "[path]\n", '[path]\nlast_day = "2026-07-31"\n', 1)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def loan_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, dict[str, Any]]:
    folder = tmp_path_factory.mktemp("loan")
    path = _tiny_5d(folder, "tiny-5d-loan", "[margin_loan]\ntop_up_share = 0.5\n")
    scenario = dataclasses.replace(load_scenario(path), regime="margin-loan")
    record = run(scenario, progress=False, check_every_command=True)
    return record, summarize(record)


def test_a_margin_loan_run_conserves_money_and_pays_no_funding(loan_run: Any) -> None:
    record, summary = loan_run
    assert record.conservation_ok  # and check_invariants held after every command
    assert summary["funding_settlements"] > 0 and summary["funding_paid"] == 0
    assert all(e.rate == 0 for _, e in record.events if e.kind == "funding")
    regime = summary["regime"]
    assert regime["name"] == "margin-loan"
    assert regime["margin_calls"] > 0 and regime["broker_forced_orders"] > 0


def test_forced_sales_are_placed_at_the_days_limit_price(loan_run: Any) -> None:
    record, summary = loan_run
    facts = record.config["run_facts"]
    broker, days = facts["broker"], facts["days"]
    assert broker["orders"]
    for ts, account, lots, price in broker["orders"]:
        n = next(i for i, d in enumerate(days) if d["open_ts"] <= ts < d["close_ts"])
        assert ts == days[n]["open_ts"]  # the session's first step
        lo, hi = limit_prices(days[n - 1]["close_ticks"], 300_000_000, 10**8)
        assert price == (lo if lots < 0 else hi)
        call_days = [c[0] for c in broker["calls"] if c[1] == account and not c[3]]
        assert n - 2 in call_days  # two sessions after the call's close
    for _, account, lots, price in broker["sales"]:
        assert any(o[1] == account and (price >= o[3] if lots < 0 else price <= o[3])
                   for o in broker["orders"])
    # every met call came back as a deposit of its amount at the next open
    met = [(c[1], c[2]) for c in broker["calls"] if c[3] and c[2] > 0]
    assert broker["top_ups"] == len(met) and broker["top_up"] == sum(x for _, x in met)
    regime = summary["regime"]
    assert regime["broker_forced_fills"] == len(broker["sales"])
    assert regime["forced_accounts"] >= len({o[1] for o in broker["sales"]})


def test_the_perp_and_the_loan_share_flow_and_keys(tmp_path: Path) -> None:
    """`gaemi ensemble --compare-regime margin-loan`: the same scenario and seeds under both
    regimes, the regime columns in runs.csv and paired differences in ensemble.json."""
    path = _tiny_5d(tmp_path, "tiny-5d", "")
    out = tmp_path / "out"
    status = gaemi(["ensemble", "--scenario", str(path), "--compare-regime", "margin-loan",
                    "--seeds", "2", "--seed", "3", "--out", str(out), "--no-progress"])
    assert status == 0
    with (out / "runs.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["scenario"] for r in rows] == ["tiny-5d"] * 2 + ["tiny-5d-margin-loan"] * 2
    perp, loan = rows[:2], rows[2:]
    assert all(r["margin_calls"] == "0" and r["top_ups"] == "0" for r in perp)
    assert any(int(r["margin_calls"]) > 0 for r in loan)
    assert all(r["conservation_ok"] == "True" for r in rows)
    summary = json.loads((out / "ensemble.json").read_text(encoding="utf-8"))
    diff = summary["paired_differences"]["forced_notional_usd"]
    assert diff["n"] == 2
