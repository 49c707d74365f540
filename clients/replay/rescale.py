"""Map historical prices and sizes onto a Gaemi market's integer ticks and lots, exactly.

Theory of operation
-------------------
A source states a price in its own unit (LOBSTER: dollars x 10000 as an integer; Binance and
Bitfinex: decimal text in dollars) and a size in its own unit (shares, coins). A Gaemi market
(``risk.MarketSpec``) counts prices in ticks of ``tick_size`` micro-dollars and sizes in lots of
``lot_size`` shares. The mapping is one stated formula per quantity, computed in exact rational
arithmetic (``fractions.Fraction``) and rounded once, by a named rule, to an integer::

    price_ticks = round(src_price * price_unit * price_factor / tick)
    size_lots   = round(src_size  * size_unit  * size_factor  / lot)

``price_unit`` is the value of one source price unit in dollars (LOBSTER 1/10000, decimal text
1), ``tick`` the value of one tick in dollars (``tick_size / 1_000_000``); likewise for sizes.
``price_factor`` and ``size_factor`` (default 1) move one instrument's flow onto another:
``Rescale.anchored`` sets ``price_factor = target_price / source_price`` for a chosen pair of
prices, and ``size_factor = 1 / price_factor`` so each order keeps its dollar notional.

Rounding (``ROUNDINGS``): ``half_even`` (the default: the nearest integer, ties to even),
``floor``, ``ceil``, ``exact`` (refuse a value that does not land on the grid, ValueError).
A resting bid rounded down and a resting ask rounded up (``outward``, see
``clients.replay.binance.BackgroundLiquidity``) can never cross or lock the mapped book: from
bid < ask in the source, floor(bid) < ceil(ask) on any grid.

Sources are parsed without floats: decimal text and ``Decimal`` convert exactly, an ``int`` is a
count of the source unit, and a ``float`` is refused. ``decimal_units`` turns decimal text
into an integer count of 10**-places (Binance numbers have at most 8 decimals), the fast path
for bulk data. docs/replay.md has a worked example.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

__all__ = [
    "ROUNDINGS",
    "Rescale",
    "decimal_units",
    "exact",
    "round_div",
]

ROUNDINGS = ("half_even", "floor", "ceil", "exact")
_MICRO = 1_000_000  # micro-dollars per dollar (risk.markets.UNIT)
_DECIMAL = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?")


def decimal_units(text: str, places: int) -> int:
    """The exact integer count of ``10**-places`` in decimal ``text`` ("61800.20", "-0.5").

    ValueError if the text is not a plain decimal (an optional sign, digits, one optional
    point) or has a non-zero digit beyond ``places`` decimals.
    """
    match = _DECIMAL.fullmatch(text)
    if match is None or not (match[2] or match[3]):
        raise ValueError(f"not a decimal number: {text!r}")
    sign, whole, fraction = match[1], match[2], match[3] or ""
    if len(fraction) > places:
        if fraction[places:].strip("0"):
            raise ValueError(f"{text!r} has more than {places} decimals")
        fraction = fraction[:places]
    value: int = int(whole or "0") * 10**places + int(fraction.ljust(places, "0") or "0")
    return -value if sign == "-" else value


def exact(value: Any) -> Fraction:
    """A source number as an exact fraction: int, decimal text, Decimal or Fraction."""
    if isinstance(value, (bool, float)):
        raise TypeError(f"refusing {type(value).__name__} {value!r}: pass exact decimal text")
    if isinstance(value, (int, Fraction)):
        return Fraction(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"not a finite number: {value!r}")
        return Fraction(value)
    if isinstance(value, str):
        return Fraction(value)  # decimal text ("61800.20", "1e-3") converts exactly
    raise TypeError(f"not a number: {value!r}")


def round_div(numerator: int, denominator: int, rounding: str = "half_even") -> int:
    """``numerator / denominator`` rounded to an integer by the named rule (denominator > 0)."""
    q, r = divmod(numerator, denominator)
    if r == 0:
        return q
    if rounding == "floor":
        return q
    if rounding == "ceil":
        return q + 1
    if rounding == "half_even":
        twice = 2 * r
        if twice > denominator or (twice == denominator and q % 2):
            return q + 1
        return q
    if rounding == "exact":
        raise ValueError(f"{Fraction(numerator, denominator)} is not on the grid")
    raise ValueError(f"unknown rounding {rounding!r} (one of {', '.join(ROUNDINGS)})")


@dataclass(frozen=True, slots=True)
class Rescale:
    """One stated mapping of source prices and sizes to ticks and lots (module docstring).

    ``tick`` and ``lot`` are the target grid in dollars per tick and units per lot;
    ``price_unit`` / ``size_unit`` the source's units in dollars and units. Every field is an
    exact ``Fraction``; text such as ``"0.1"`` is accepted and converted exactly.
    """

    tick: Fraction
    lot: Fraction
    price_unit: Fraction = Fraction(1)
    size_unit: Fraction = Fraction(1)
    price_factor: Fraction = Fraction(1)
    size_factor: Fraction = Fraction(1)

    def __post_init__(self) -> None:
        for name in ("tick", "lot", "price_unit", "size_unit", "price_factor", "size_factor"):
            value = exact(getattr(self, name))
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
            object.__setattr__(self, name, value)

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def for_market(cls, spec: Any, **fields: Any) -> Rescale:
        """The mapping onto a ``risk.MarketSpec``'s grid (tick_size micro-dollars, lot_size)."""
        return cls(tick=Fraction(spec.tick_size, _MICRO), lot=exact(spec.lot_size), **fields)

    @classmethod
    def anchored(cls, spec: Any, source_price: Any, target_price: Any, *,
                 price_unit: Any = 1, size_unit: Any = 1, keep_notional: bool = True) -> Rescale:
        """Move an instrument's flow so that ``source_price`` (in source units) lands on
        ``target_price`` (dollars, exact text): ``price_factor = target / source``, and with
        ``keep_notional`` ``size_factor = 1 / price_factor`` (each order keeps its dollars)."""
        source = exact(source_price) * exact(price_unit)
        factor = exact(target_price) / source
        return cls.for_market(spec, price_unit=exact(price_unit), size_unit=exact(size_unit),
                              price_factor=factor,
                              size_factor=1 / factor if keep_notional else Fraction(1))

    # -- the mapping ----------------------------------------------------------------------------

    @property
    def price_ratio(self) -> Fraction:
        """Ticks per source price unit: ``price_unit * price_factor / tick``."""
        return self.price_unit * self.price_factor / self.tick

    @property
    def size_ratio(self) -> Fraction:
        """Lots per source size unit: ``size_unit * size_factor / lot``."""
        return self.size_unit * self.size_factor / self.lot

    def ticks(self, price: Any, rounding: str = "half_even") -> int:
        """A source price in ticks (``price`` in source units: int, decimal text, Decimal)."""
        value = exact(price) * self.price_ratio
        return round_div(value.numerator, value.denominator, rounding)

    def lots(self, size: Any, rounding: str = "half_even") -> int:
        """A source size in lots."""
        value = exact(size) * self.size_ratio
        return round_div(value.numerator, value.denominator, rounding)

    def price(self, ticks: int) -> Fraction:
        """The source price a tick count stands for (the inverse map, exact)."""
        return ticks / self.price_ratio

    def size(self, lots: int) -> Fraction:
        """The source size a lot count stands for (the inverse map, exact)."""
        return lots / self.size_ratio

    def unit_mapper(self, places: int, what: str = "price") -> Callable[..., int]:
        """A fast ``f(units, rounding="half_even") -> int`` for sources already parsed by
        ``decimal_units(text, places)`` (``what``: "price" or "size"): the same formula with
        the ratio pre-reduced to two integers."""
        if what not in ("price", "size"):
            raise ValueError("what is 'price' or 'size'")
        ratio = (self.price_ratio if what == "price" else self.size_ratio) / 10**places
        num, den = ratio.numerator, ratio.denominator

        def mapped(units: int, rounding: str = "half_even") -> int:
            return round_div(units * num, den, rounding)

        return mapped
