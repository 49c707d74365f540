"""Binance's symbols and decimal strings, converted exactly to the venue's integers.

Binance USDⓈ-M names a perp ``<BASE>USDT`` and writes prices (USD a share) and quantities
(shares) as decimal strings. The venue counts ticks (``tick_size`` micro-dollars a share) and
lots (``lot_size`` shares). Every conversion here is exact integer arithmetic: a string that
is not a whole number of ticks or lots is refused (Binance's filter errors), never rounded, and
no float touches a price or a size.

Symbols: ``SKHYNIX-PERP`` <-> ``SKHYNIXUSDT`` (drop ``-PERP``, add ``USDT``; the margin asset is
USDT, one USDT = one of the venue's dollars). docs/binance-api.md has the table.
"""

from __future__ import annotations

import re
from fractions import Fraction
from functools import lru_cache

from gaemi.risk.markets import PPB, UNIT, MarketSpec

__all__ = ["BinanceSymbols", "OffGrid", "binance_symbol", "decimal_text", "lots_text",
           "parse_decimal", "price_text", "rate_text", "scaled_text", "to_lots", "to_ticks",
           "average_text", "usd_text"]

QUOTE = "USDT"
_DECIMAL = re.compile(r"[0-9]{1,20}(\.[0-9]{1,20})?")  # ASCII digits only


class OffGrid(ValueError):
    """A decimal that is not a whole number of ticks or lots."""


def binance_symbol(venue_symbol: str) -> str:
    return venue_symbol.removesuffix("-PERP").replace("-", "") + QUOTE


class BinanceSymbols:
    """The two names of every market, both ways."""

    def __init__(self, venue_symbols: list[str]) -> None:
        self.to_venue = {binance_symbol(s): s for s in venue_symbols}
        if len(self.to_venue) != len(venue_symbols):
            raise ValueError("two markets share a Binance symbol")
        self.to_binance = {v: b for b, v in self.to_venue.items()}


def decimal_text(value: Fraction) -> str:
    """An exact decimal (its denominator divides a power of ten) as Binance writes it:
    no exponent, no trailing zeros, at least one digit before the point."""
    sign = "-" if value < 0 else ""
    value = abs(value)
    whole, rest = divmod(value.numerator, value.denominator)
    digits = ""
    while rest:
        if len(digits) > 30:
            raise ValueError(f"{value} is not a decimal")
        rest *= 10
        digit, rest = divmod(rest, value.denominator)
        digits += str(digit)
    return f"{sign}{whole}" + (f".{digits}" if digits else "")


def parse_decimal(text: str) -> Fraction:
    """A non-negative decimal string (``"1234.5"``) exactly; ValueError for anything else
    (signs, exponents, spaces, more than 20 digits either side of the point)."""
    if not isinstance(text, str) or not _DECIMAL.fullmatch(text):
        raise ValueError(f"not a decimal: {text!r}")
    return Fraction(text)


def scaled_text(n: int, places: int) -> str:
    """``n / 10**places`` as ``decimal_text`` writes it, in integers (the hot path of every
    answer: several figures an order)."""
    whole, rest = divmod(abs(n), 10**places)
    sign = "-" if n < 0 else ""
    if not rest:
        return f"{sign}{whole}"
    return f"{sign}{whole}." + f"{rest:0{places}d}".rstrip("0")


_UNIT_PLACES = len(str(UNIT)) - 1
assert 10**_UNIT_PLACES == UNIT


@lru_cache(maxsize=64)
def _lot_scale(lot_size: str) -> tuple[int, int]:
    """A lot size as ``(m, places)``: one lot is ``m / 10**places`` shares."""
    lot = Fraction(lot_size)
    for places in range(31):
        if (lot * 10**places).denominator == 1:
            return int(lot * 10**places), places
    raise ValueError(f"lot size {lot_size} is not a decimal")


def usd_text(micro: int) -> str:
    """Micro-dollars (the venue's collateral units) as USD(T)."""
    return scaled_text(micro, _UNIT_PLACES)


def price_text(ticks: int, spec: MarketSpec) -> str:
    """Ticks as USD a share."""
    return scaled_text(ticks * spec.tick_size, _UNIT_PLACES)


def lots_text(lots: int, spec: MarketSpec) -> str:
    """Lots as shares."""
    m, places = _lot_scale(str(spec.lot_size))
    return scaled_text(lots * m, places)


def _scaled(text: str) -> tuple[int, int]:
    """A decimal string as ``(n, places)``: its value is ``n / 10**places`` (what
    ``parse_decimal`` reads, in integers)."""
    if not isinstance(text, str) or not _DECIMAL.fullmatch(text):
        raise ValueError(f"not a decimal: {text!r}")
    whole, _, digits = text.partition(".")
    return int(whole + digits), len(digits)


def to_ticks(text: str, spec: MarketSpec) -> int:
    """USD a share -> ticks; OffGrid if it is not a whole number of ticks."""
    n, places = _scaled(text)
    ticks, rest = divmod(n * UNIT, 10**places * spec.tick_size)
    if rest:
        raise OffGrid(f"{text} is not a multiple of the tick size {price_text(1, spec)}")
    return int(ticks)


def to_lots(text: str, spec: MarketSpec) -> int:
    """Shares -> lots; OffGrid if it is not a whole number of lots."""
    n, places = _scaled(text)
    m, lot_places = _lot_scale(str(spec.lot_size))
    lots, rest = divmod(n * 10**lot_places, 10**places * m)
    if rest:
        raise OffGrid(f"{text} is not a multiple of the step size {spec.lot_size}")
    return int(lots)


def rate_text(ppb: int) -> str:
    """A rate in parts per billion as Binance's 8-decimal string (exact: 9 when needed)."""
    text = decimal_text(Fraction(ppb, PPB))
    whole, _, digits = text.partition(".")
    return f"{whole}.{digits.ljust(8, '0')}" if len(digits) <= 8 else text


def average_text(ticks: Fraction, spec: MarketSpec) -> str:
    """An average price (ticks, a fraction) as USD a share: exact when it ends within 8
    decimals, else rounded half to even at 8."""
    if not ticks:
        return "0"
    usd = ticks * spec.tick_size / UNIT
    scaled = usd * 10**8
    if scaled.denominator == 1:
        return decimal_text(usd)
    return decimal_text(Fraction(round(scaled), 10**8))
