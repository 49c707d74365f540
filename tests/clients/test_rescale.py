"""The stated price and size mapping onto a market's ticks and lots, on real rows."""

from __future__ import annotations

import gzip
from decimal import Decimal
from fractions import Fraction
from itertools import islice

import pytest

from gaemi.clients.replay.lobster import read_messages, read_orderbook, sample_files
from gaemi.clients.replay.rescale import Rescale, decimal_units, exact, round_div
from gaemi.risk import preset

LOBSTER_UNIT = Fraction(1, 10_000)  # LOBSTER prices are dollars x 10000


# -- exact parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "places", "units"), [
    ("61800.20", 8, 6_180_020_000_000),
    ("0.001", 8, 100_000),
    ("2.909", 3, 2909),
    ("-0.5", 8, -50_000_000),
    ("5.", 2, 500),
    (".25", 2, 25),
    ("1.2300000000", 8, 123_000_000),  # trailing zeros beyond the places are exact
])
def test_decimal_units_parses_exactly(text: str, places: int, units: int) -> None:
    assert decimal_units(text, places) == units


@pytest.mark.parametrize("text", ["", ".", "1.2.3", "abc", "1e5", "1_000", " 1", "١٢",
                                  "1.000000001"])
def test_decimal_units_refuses_what_is_not_an_exact_decimal(text: str) -> None:
    with pytest.raises(ValueError):
        decimal_units(text, 8)


def test_exact_refuses_floats_and_converts_text_and_decimal_exactly() -> None:
    assert exact("60940.35136398") == Fraction(6_094_035_136_398, 10**8)
    assert exact(Decimal("0.1")) == Fraction(1, 10)
    assert exact(7) == 7
    with pytest.raises(TypeError):
        exact(0.1)
    with pytest.raises(TypeError):
        exact(True)


@pytest.mark.parametrize(("n", "d", "rule", "out"), [
    (5, 2, "half_even", 2), (7, 2, "half_even", 4), (-5, 2, "half_even", -2),
    (11, 4, "half_even", 3), (9, 4, "half_even", 2),
    (7, 2, "floor", 3), (7, 2, "ceil", 4), (-7, 2, "floor", -4), (-7, 2, "ceil", -3),
    (8, 2, "exact", 4),
])
def test_round_div_applies_the_named_rule(n: int, d: int, rule: str, out: int) -> None:
    assert round_div(n, d, rule) == out


def test_round_div_exact_refuses_a_value_off_the_grid() -> None:
    with pytest.raises(ValueError, match="not on the grid"):
        round_div(7, 2, "exact")
    with pytest.raises(ValueError, match="unknown rounding"):
        round_div(7, 2, "nearest")


# -- real rows -------------------------------------------------------------------------------------


def test_lobster_rows_onto_nvda_perp_at_factor_one_are_exact() -> None:
    # Arrange: the AMZN day's first rows; NVDA-PERP has $0.01 ticks and 0.01-share lots
    message_file, orderbook_file, _ = sample_files("AMZN")
    with gzip.open(orderbook_file, "rt") as f:
        first_row = f.readline().strip()
    messages = list(islice(read_messages(message_file), 200))
    rescale = Rescale.for_market(preset("NVDA-PERP"), price_unit=LOBSTER_UNIT)

    # Act
    ticks = [rescale.ticks(m.price, "exact") for m in messages]
    lots = [rescale.lots(m.size, "exact") for m in messages]

    # Assert: "2239500,100,2231800,100" -> $223.95 x 100 shares, $223.18 x 100 shares
    assert first_row == "2239500,100,2231800,100"
    assert rescale.ticks(2_239_500) == 22_395 and rescale.lots(100) == 10_000
    assert ticks[0] == 22_382 and lots[0] == 100  # message 1: 1 share at $223.82
    assert all(t * 100 == m.price for t, m in zip(ticks, messages, strict=True))
    assert all(q == 100 * m.size for q, m in zip(lots, messages, strict=True))


def test_anchored_mapping_is_the_documented_worked_example() -> None:
    # Arrange: AMZN's opening trade price $223.82 anchored onto NVDA at $118.50 (docs/replay.md)
    nvda = preset("NVDA-PERP")
    rescale = Rescale.anchored(nvda, 2_238_200, "118.50", price_unit=LOBSTER_UNIT)
    row = next(iter(read_orderbook(sample_files("AMZN")[1])))

    # Act
    (bid, bid_size), (ask, ask_size) = row.bids[0], row.asks[0]

    # Assert: the stated factors and the mapped first row
    assert rescale.price_factor == Fraction(5925, 11191)
    assert rescale.size_factor == 1 / rescale.price_factor
    assert rescale.price_ratio == Fraction(237, 44764)
    assert rescale.ticks(2_238_200) == 11_850  # exactly $118.50
    assert (rescale.ticks(bid), rescale.ticks(ask)) == (11_816, 11_857)
    assert rescale.lots(bid_size) == rescale.lots(ask_size) == 18_888  # 188.88 shares
    # the notional is kept up to one lot's rounding: 100 x $223.82 vs 188.88 x $118.50
    source = 100 * Fraction("223.82")
    target = 18_888 * rescale.lot * 11_850 * rescale.tick
    assert target == Fraction("22382.28")
    assert abs(target - source) <= rescale.lot * 11_850 * rescale.tick / 2


def test_half_even_ties_and_outward_rounding_on_a_coarser_grid() -> None:
    # Arrange: LOBSTER half-cent prices onto a $0.01 grid: ties go to the even cent
    rescale = Rescale.for_market(preset("NVDA-PERP"), price_unit=LOBSTER_UNIT)

    # Act / Assert
    assert rescale.ticks(2_238_250) == 22_382  # 22382.5 -> even
    assert rescale.ticks(2_238_350) == 22_384  # 22383.5 -> even
    assert rescale.ticks(2_238_251) == 22_383
    assert rescale.ticks(2_238_251, "floor") == 22_382
    assert rescale.ticks(2_238_201, "ceil") == 22_383
    with pytest.raises(ValueError):
        rescale.ticks(2_238_251, "exact")


def test_binance_and_bitfinex_decimal_text_onto_their_grids() -> None:
    # Arrange: rows of the recordings (BTCUSDT 0.1 tick, 0.001 BTC step; the Bitfinex GRID)
    btc = Rescale(tick="0.1", lot="0.001")
    from gaemi.clients.replay.bitfinex import GRID

    # Act / Assert
    assert btc.ticks("61800.20", "exact") == 618_002
    assert btc.lots("2.909", "exact") == 2_909
    assert btc.unit_mapper(8)(decimal_units("61800.20", 8), "exact") == 618_002
    assert btc.unit_mapper(8, "size")(decimal_units("606.675", 8)) == 606_675
    # 60940.35136398 -> 60940351363.98 ticks of $0.000001 -> rounds up; 0.21274597 BTC
    assert GRID.ticks(Decimal("60940.35136398")) == 60_940_351_364
    assert GRID.lots(Decimal("0.21274597")) == 2_127_460
    assert GRID.price(60_940_351_364) == Fraction("60940.351364")


def test_rescale_refuses_non_positive_or_float_fields() -> None:
    with pytest.raises(ValueError):
        Rescale(tick=0, lot=1)
    with pytest.raises(TypeError):
        Rescale(tick=0.1, lot=1)  # type: ignore[arg-type]
