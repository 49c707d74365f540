"""Market specifications: units, tiers and their cum deductions, margin formulas, validation.

Money is in micro-dollars (``usd(1) == 1_000_000``), rates in parts per billion. The US
presets' tiers are <= $250k 20x 2.5%, <= $1M 10x 5%, <= $5M 5x 10%, above 2x 25%; the Korean
ones <= $100k 20x 2.5%, <= $500k 10x 5%, <= $2M 5x 10%, <= $10M 3x 15%, above 2x 25%.
``cum_n = cum_(n-1) + bound_(n-1) * (mmr_n - mmr_(n-1))``.
"""

from __future__ import annotations

import pytest

from gaemi.risk import Deposit, MarginTier, PlaceOrder, SetIndexPrice, Venue, preset, usd
from gaemi.risk.calendar import NS_PER_HOUR
from gaemi.risk.events import Fill

M = 1_000_000  # micro-dollars per dollar


def test_usd_converts_exact_decimals_to_micro_dollars() -> None:
    # Act + Assert
    assert usd(1) == 1_000_000
    assert usd("0.01") == 10_000
    assert usd("1.5") == 1_500_000
    assert usd("0.000001") == 1
    assert usd("-2.25") == -2_250_000
    with pytest.raises(ValueError, match="finer than one micro-dollar"):
        usd("0.0000001")


@pytest.mark.parametrize(
    ("symbol", "multiplier", "cums"),
    [
        # tick 10_000 x lot 0.01 = 100; cums 250e9 * 2.5% = 6.25e9; + 1e12 * 5% = 56.25e9;
        # + 5e12 * 15% = 806.25e9
        ("NVDA-PERP", 100, (0, 6_250_000_000, 56_250_000_000, 806_250_000_000)),
        ("TSLA-PERP", 100, (0, 6_250_000_000, 56_250_000_000, 806_250_000_000)),
        # tick 10_000 x lot 0.001 = 10; cums 100e9 * 2.5% = 2.5e9; + 500e9 * 5% = 27.5e9;
        # + 2e12 * 5% = 127.5e9; + 10e12 * 10% = 1_127.5e9
        ("SKHYNIX-PERP", 10, (0, 2_500_000_000, 27_500_000_000, 127_500_000_000,
                              1_127_500_000_000)),
        ("SAMSUNG-PERP", 100, (0, 2_500_000_000, 27_500_000_000, 127_500_000_000,
                               1_127_500_000_000)),
    ],
)
def test_preset_multiplier_and_cum_deductions(
        impl: str, symbol: str, multiplier: int, cums: tuple[int, ...]) -> None:
    # Arrange
    spec = preset(symbol)

    # Act
    venue = Venue(book=impl)  # the four presets
    view = venue.market(symbol)

    # Assert
    assert (spec.multiplier, spec.cums) == (multiplier, cums)
    assert (view.tick_size, view.multiplier, view.insurance_fund) == (10_000, multiplier,
                                                                      250_000 * M)
    assert venue.symbols == ["NVDA-PERP", "SAMSUNG-PERP", "SKHYNIX-PERP", "TSLA-PERP"]
    venue.check_invariants()


@pytest.mark.parametrize(
    ("symbol", "boundary", "at", "above"),
    [
        # at the bound: lower tier, notional * mmr - cum; one unit above: the upper tier,
        # ceil((bound + 1) * mmr') - cum' = the same value + 1 (the ceil of mmr' units)
        ("NVDA-PERP", 250_000 * M, 6_250_000_000, 6_250_000_001),  # 250e9 * 2.5%
        ("NVDA-PERP", 1_000_000 * M, 43_750_000_000, 43_750_000_001),  # 50e9 - 6.25e9
        ("NVDA-PERP", 5_000_000 * M, 443_750_000_000, 443_750_000_001),  # 500e9 - 56.25e9
        ("SKHYNIX-PERP", 100_000 * M, 2_500_000_000, 2_500_000_001),  # 100e9 * 2.5%
        ("SKHYNIX-PERP", 500_000 * M, 22_500_000_000, 22_500_000_001),  # 25e9 - 2.5e9
        ("SKHYNIX-PERP", 2_000_000 * M, 172_500_000_000, 172_500_000_001),  # 200e9 - 27.5e9
        ("SKHYNIX-PERP", 10_000_000 * M, 1_372_500_000_000, 1_372_500_000_001),  # 1.5e12 - 127.5e9
    ],
)
def test_maintenance_is_continuous_at_every_tier_boundary(
        symbol: str, boundary: int, at: int, above: int) -> None:
    # Arrange
    spec = preset(symbol)
    lower = spec.tier_index(boundary)

    # Act
    mm_at, mm_above = spec.maintenance(boundary), spec.maintenance(boundary + 1)

    # Assert: the bound belongs to the lower tier; the step across it is one unit (rounding)
    assert spec.tier_index(boundary + 1) == lower + 1
    assert (mm_at, mm_above) == (at, above)


@pytest.mark.parametrize(
    ("notional", "leverage", "initial"),
    [
        (200_000 * M, 20, 10_000 * M),  # tier 1 allows 20x: 200e9 / 20
        (300_000 * M, 20, 30_000 * M),  # tier 2 allows 10x only: 300e9 / 10
        (300_000 * M, 5, 60_000 * M),  # the user's 5x is lower: 300e9 / 5
        (250_000 * M, 20, 12_500 * M),  # the bound is tier 1: 250e9 / 20
        (250_000 * M + 1, 20, 25_000 * M + 1),  # tier 2: ceil(250_000_000_001 / 10)
        (1_000_001, 10, 100_001),  # ceil(100_000.1)
        (6_000 * M * M, 20, 3_000 * M * M),  # $6B: the last tier, 2x
    ],
)
def test_initial_margin_at_user_leverage_capped_by_the_tier(
        notional: int, leverage: int, initial: int) -> None:
    # Act + Assert
    assert preset("NVDA-PERP").initial(notional, leverage) == initial


def test_price_of_writes_ticks_as_dollars() -> None:
    # Arrange
    spec = preset("NVDA-PERP")

    # Act + Assert: a tick is $0.01
    assert spec.price_of(20_003) == "200.03"
    assert spec.price_of(20_000) == "200"
    assert spec.price_of(1) == "0.01"


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"tiers": (MarginTier(None, 20, 25_000_000), MarginTier(None, 10, 50_000_000))},
         "only the last tier is unbounded"),
        ({"tiers": (MarginTier(100 * M, 20, 60_000_000), MarginTier(None, 10, 70_000_000))},
         "0 < mmr <= 1 / max_leverage"),  # 6% > 1/20
        ({"tiers": (MarginTier(100 * M, 10, 50_000_000), MarginTier(None, 20, 60_000_000))},
         "rates rise and leverage falls"),
        ({"tick_size": 3}, "whole number of collateral units"),  # 3 * 0.01
        ({"funding_interval_ns": 3 * NS_PER_HOUR}, "divides 8 hours"),
        ({"maker_fee_ppb": -600_000}, "maker rebate no larger than the taker fee"),
        ({"daily_limit_ppb": 1_000_000_000}, "daily_limit_ppb in (0, 100%)"),
        ({"mark_method": "vwap"}, "mark_method"),
    ],
    ids=["unbounded-inner-tier", "mmr-above-im", "leverage-rises", "fractional-multiplier",
         "funding-interval", "rebate-above-taker", "daily-limit-100", "mark-method"],
)
def test_invalid_specs_are_refused(changes: dict[str, object], problem: str) -> None:
    # Act + Assert
    with pytest.raises(ValueError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        preset("NVDA-PERP", **changes)


def test_a_venue_needs_unique_symbols(impl: str) -> None:
    # Act + Assert
    with pytest.raises(ValueError, match="unique symbols"):
        Venue([preset("NVDA-PERP"), preset("NVDA-PERP")], book=impl)
    with pytest.raises(ValueError, match="unique symbols"):
        Venue([], book=impl)


def test_skhynix_notional_uses_its_smaller_lot(impl: str) -> None:
    # Arrange: SKHYNIX-PERP lots are 0.001 share: multiplier 10
    venue = Venue([preset("SKHYNIX-PERP", session=None)], book=impl)
    for command in [SetIndexPrice("SKHYNIX-PERP", 50_000), Deposit(1, usd(10_000)),
                    Deposit(2, usd(10_000)), PlaceOrder(2, "SKHYNIX-PERP", -1, 50_000, 7)]:
        venue.submit(command)
        venue.check_invariants()

    # Act
    events = venue.submit(PlaceOrder(1, "SKHYNIX-PERP", 1, 50_000, 7))
    venue.check_invariants()

    # Assert: 7 lots * 50_000 ticks * 10 = 3_500_000 ($3.50 = 0.007 share at $500);
    # taker 0.05% = 1750, maker 0.02% = 700
    [fill] = [e for e in events if isinstance(e, Fill)]
    assert (fill.taker_fee, fill.maker_fee) == (1_750, 700)
    # initial margin at 10x: ceil(3_500_000 / 10) = 350_000
    assert venue.account(1).margin_used == 350_000
