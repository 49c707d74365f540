"""Market specifications: what a perp is, in integers, and the four preset single-stock perps.

Theory of operation
-------------------
Units (docs/design.md §2). Money is an integer count of micro-dollars (``UNIT``: 1 USD =
1,000,000). A price is an integer number of ticks; ``tick_size`` is the tick's value in
micro-dollars per share. A size is an integer number of lots; ``lot_size`` is the number of
shares in a lot, as exact decimal text. Their product is the contract multiplier,
``multiplier`` = micro-dollars per (tick x lot), which must be a whole number, so every
notional is ``price * lots * multiplier`` exactly. Rates are integers in parts per billion
(``PPB``: 1% = 10,000,000).

Margin tiers (the "tax brackets" of Binance and Hyperliquid): a position whose notional lies in
tier n needs initial margin ``notional / max_leverage_n`` and maintenance margin
``notional * mmr_n - cum_n``, where ``cum_n = cum_(n-1) + floor_n * (mmr_n - mmr_(n-1))`` keeps
the maintenance requirement continuous at every tier boundary (perp-mechanics.md §3.1, §9.3).
Divisions round up: margin is never under-required.

FX convention for the KRW names: every market is quoted and settled in USD per share. The
index of SKHYNIX-PERP and SAMSUNG-PERP is the KRX price in KRW divided by a USD/KRW reference
rate applied by whoever publishes the index (the scenario or the feed states the rate it
uses); the venue never converts currencies. A daily price limit, when enabled, therefore
applies to the USD index's previous close, which equals the KRX rule under a fixed rate.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from fractions import Fraction
from itertools import pairwise
from typing import Any

from gaemi.engine.codes import MAX_PRICE, MAX_QTY
from gaemi.risk.calendar import KRX_REGULAR, NS_PER_HOUR, NS_PER_SECOND, US_REGULAR, Session

__all__ = ["UNIT", "PPB", "MarginTier", "MarketSpec", "PRESETS", "preset", "usd"]

UNIT = 1_000_000  # collateral units per USD (micro-dollars)
PPB = 1_000_000_000  # rates: parts per billion
INT64_MAX = 2**63 - 1
EIGHT_HOURS_NS = 8 * NS_PER_HOUR


def usd(dollars: int | str) -> int:
    """Collateral units of a dollar amount given as an int or exact decimal text."""
    value = Fraction(dollars) * UNIT
    if value.denominator != 1:
        raise ValueError(f"{dollars!r} is finer than one micro-dollar")
    return int(value)


@dataclass(frozen=True, slots=True)
class MarginTier:
    """One bracket of position notional. ``max_notional`` is the bracket's inclusive upper
    bound in collateral units (None: unbounded, only for the last tier)."""

    max_notional: int | None
    max_leverage: int
    mmr_ppb: int


@dataclass(frozen=True, slots=True)
class MarketSpec:
    """Everything the venue needs to know about one perp market. All fields are integers
    (or enums/text), so a spec is part of the journal header and of the state hash."""

    symbol: str
    underlying: str
    tick_size: int  # micro-dollars per share per tick
    lot_size: str  # shares per lot, exact decimal text
    tiers: tuple[MarginTier, ...]
    max_price: int = 10**8  # ticks; keeps price * open_interest_cap * multiplier in int64
    max_order_qty: int = 1_000_000  # lots per order
    open_interest_cap: int = 100_000_000  # lots, one side
    max_open_orders: int = 200  # per account in this market
    price_band_ppb: int = 100_000_000  # limit orders within 10% of the mark
    market_protection_ppb: int = 50_000_000  # a market order is a limit at mark +/- 5%
    maker_fee_ppb: int = 200_000  # 0.02% (negative: a rebate)
    taker_fee_ppb: int = 500_000  # 0.05%
    # funding (rates quoted per 8 hours, paid every funding_interval_ns, perp-mechanics §1, §9.1)
    funding_interval_ns: int = NS_PER_HOUR
    funding_interest_ppb: int = 100_000  # 0.01% per 8 h
    funding_clamp_ppb: int = 500_000  # clamp(I - P, +/-0.05%) per 8 h
    funding_cap_ppb: int = 18_750_000  # |F_8h| <= 0.75 * tier-1 MMR (Binance variant a)
    premium_sample_ns: int = 5 * NS_PER_SECOND
    impact_notional: int = 4_000 * UNIT  # 200 USD / IMR at max leverage (Binance rule)
    premium_weighting: str = "mean"  # "mean" (Hyperliquid) or "linear" (Binance/Bybit)
    funding_price: str = "mark"  # notional of the payment: "mark" or "index"
    funding_when_closed: bool = False  # QFEX: no funding while the underlying is closed
    # index and mark (perp-mechanics §2, §9.2)
    mark_method: str = "median3"  # "median3" (Binance/Bybit) or "hl" (Hyperliquid-style)
    basis_window_s: int = 30  # MA of (mid - index) over the last 30 one-second samples
    mark_ema_s: int = 150  # Hyperliquid: 150 s EMA of (mid - index)
    index_when_closed: str = "frozen"  # "frozen" or "book" (drifts with the impact mid)
    index_drift_tau_s: int = 3600  # the book-driven index's time constant
    # liquidation (perp-mechanics §4, §9.5)
    liquidation_fee_ppb: int = 10_000_000  # 1% of the liquidated notional, to the fund
    partial_liquidation_notional: int = 100_000 * UNIT  # larger positions go in slices
    partial_liquidation_ppb: int = 200_000_000  # 20% per slice (Hyperliquid)
    insurance_fund: int = 250_000 * UNIT  # the fund's opening balance
    # where liquidations execute: "book" (an IOC, then the fund, then ADL), or "backstop": a
    # counterfactual venue where the fund closes every slice off the book at the mark (never
    # beyond the bankruptcy price) with unlimited capacity, so forced flow never trades on the
    # book (the cascade lab's paired baseline, docs/cascade.md)
    liquidation_venue: str = "book"
    # the underlying's market
    session: Session | None = None  # None: the underlying never closes
    daily_limit_ppb: int | None = None  # KRX-style limit from the previous close (30%: 300M)
    cums: tuple[int, ...] = field(default=(), init=False, compare=False)  # derived: per-tier cum

    def __post_init__(self) -> None:
        problems = self._problems()
        if problems:
            raise ValueError(f"{self.symbol}: " + "; ".join(problems))
        cums = [0]
        for prev, tier in pairwise(self.tiers):
            assert prev.max_notional is not None
            step = Fraction(prev.max_notional * (tier.mmr_ppb - prev.mmr_ppb), PPB)
            cums.append(cums[-1] + int(step))
        object.__setattr__(self, "cums", tuple(cums))

    def _problems(self) -> list[str]:
        out = []
        if not self.symbol or not self.symbol.isascii():
            out.append("symbol must be ASCII text")
        if self.tick_size <= 0:
            out.append("tick_size must be positive")
        lot = Fraction(self.lot_size)
        if lot <= 0:
            out.append("lot_size must be positive")
        elif (self.tick_size * lot).denominator != 1:
            out.append("tick_size * lot_size must be a whole number of collateral units")
        if not self.tiers:
            out.append("at least one margin tier")
        for i, tier in enumerate(self.tiers):
            last = i == len(self.tiers) - 1
            if (tier.max_notional is None) != last:
                out.append("only the last tier is unbounded")
            if not 1 <= tier.max_leverage <= 1000:
                out.append(f"tier {i}: max_leverage in 1..1000")
            if not 0 < tier.mmr_ppb < PPB // tier.max_leverage + 1:
                out.append(f"tier {i}: 0 < mmr <= 1 / max_leverage")
            if i:
                prev = self.tiers[i - 1]
                if tier.mmr_ppb <= prev.mmr_ppb or tier.max_leverage > prev.max_leverage:
                    out.append(f"tier {i}: rates rise and leverage falls with notional")
                if prev.max_notional is not None and tier.max_notional is not None \
                        and tier.max_notional <= prev.max_notional:
                    out.append(f"tier {i}: bounds increase")
                if prev.max_notional is not None and \
                        Fraction(prev.max_notional * (tier.mmr_ppb - prev.mmr_ppb), PPB) \
                        .denominator != 1:
                    out.append(f"tier {i}: the deduction must be a whole number of units")
        if not 0 < self.max_order_qty <= MAX_QTY:
            out.append("max_order_qty in 1..engine MAX_QTY")
        if self.open_interest_cap <= 0 or not 0 < self.max_price <= MAX_PRICE:
            out.append("open_interest_cap is positive; max_price in 1..engine MAX_PRICE")
        elif (lot > 0 and (self.tick_size * lot).denominator == 1 and
              self.max_price * self.open_interest_cap * int(self.tick_size * lot) > INT64_MAX):
            out.append("max_price * open_interest_cap * multiplier must fit in int64")
        for name in ("price_band_ppb", "market_protection_ppb"):
            if not 0 < getattr(self, name) < PPB:
                out.append(f"{name} in (0, 100%)")
        if self.funding_interval_ns <= 0 or EIGHT_HOURS_NS % self.funding_interval_ns:
            out.append("funding_interval_ns divides 8 hours")
        if self.premium_sample_ns <= 0 or self.funding_interval_ns % self.premium_sample_ns:
            out.append("premium_sample_ns divides the funding interval")
        if self.premium_weighting not in ("mean", "linear"):
            out.append("premium_weighting is 'mean' or 'linear'")
        if self.funding_price not in ("mark", "index"):
            out.append("funding_price is 'mark' or 'index'")
        if self.mark_method not in ("median3", "hl"):
            out.append("mark_method is 'median3' or 'hl'")
        if self.index_when_closed not in ("frozen", "book"):
            out.append("index_when_closed is 'frozen' or 'book'")
        if self.basis_window_s <= 0 or self.mark_ema_s <= 0 or self.index_drift_tau_s <= 0:
            out.append("windows and time constants are positive")
        if self.funding_cap_ppb <= 0 or self.funding_clamp_ppb < 0 or self.impact_notional <= 0:
            out.append("funding cap and impact notional are positive")
        if not 0 < self.partial_liquidation_ppb <= PPB:
            out.append("partial_liquidation_ppb in (0, 100%]")
        if self.liquidation_venue not in ("book", "backstop"):
            out.append("liquidation_venue is 'book' or 'backstop'")
        if not 0 <= self.liquidation_fee_ppb < PPB or self.insurance_fund < 0:
            out.append("liquidation fee in [0, 100%), insurance fund >= 0")
        if self.taker_fee_ppb < 0 or self.maker_fee_ppb < -self.taker_fee_ppb:
            out.append("taker fee >= 0 and any maker rebate no larger than the taker fee")
        if self.daily_limit_ppb is not None and not 0 < self.daily_limit_ppb < PPB:
            out.append("daily_limit_ppb in (0, 100%)")
        if self.max_open_orders <= 0:
            out.append("max_open_orders is positive")
        return out

    # -- derived quantities -------------------------------------------------------------------

    @property
    def multiplier(self) -> int:
        """Collateral units per (tick x lot)."""
        return int(self.tick_size * Fraction(self.lot_size))

    @property
    def max_leverage(self) -> int:
        return self.tiers[0].max_leverage

    def tier_index(self, notional: int) -> int:
        """The tier whose bracket holds ``notional`` (collateral units, >= 0)."""
        for i, tier in enumerate(self.tiers):
            if tier.max_notional is None or notional <= tier.max_notional:
                return i
        raise AssertionError("the last tier is unbounded")

    def maintenance(self, notional: int) -> int:
        """Maintenance margin of a position of this notional: ceil(notional * mmr) - cum."""
        i = self.tier_index(notional)
        return -(-notional * self.tiers[i].mmr_ppb // PPB) - self.cums[i]

    def initial(self, notional: int, leverage: int) -> int:
        """Initial margin at the user's leverage, never below the tier's: ceil(notional / L)."""
        tier_leverage = self.tiers[self.tier_index(notional)].max_leverage
        return -(-notional // min(leverage, tier_leverage))

    def price_of(self, ticks: int) -> str:
        """A price in ticks as decimal dollars, for people."""
        return _decimal(Fraction(ticks * self.tick_size, UNIT))


def _decimal(value: Fraction) -> str:
    sign = "-" if value < 0 else ""
    value = abs(value)
    whole, rest = divmod(value.numerator, value.denominator)
    digits = ""
    while rest and len(digits) < 9:
        rest *= 10
        digit, rest = divmod(rest, value.denominator)
        digits += str(digit)
    return f"{sign}{whole}" + (f".{digits}" if digits else "")


def _tiers(*rows: tuple[int | None, int, str]) -> tuple[MarginTier, ...]:
    """Tiers from (max notional in whole USD or None, max leverage, MMR as percent text)."""
    return tuple(
        MarginTier(None if cap is None else cap * UNIT, lev, int(Fraction(mmr) * PPB // 100))
        for cap, lev, mmr in rows
    )


# Korean names: 20x at the first tier (the single secondary source on Binance's Korean TradFi
# perps), stepping down like Binance's brackets. Korean retail concentration makes these the
# cascade markets. US names: the same shape with a wider first bracket.
_KRW_TIERS = _tiers((100_000, 20, "2.5"), (500_000, 10, "5"), (2_000_000, 5, "10"),
                    (10_000_000, 3, "15"), (None, 2, "25"))
_US_TIERS = _tiers((250_000, 20, "2.5"), (1_000_000, 10, "5"), (5_000_000, 5, "10"),
                   (None, 2, "25"))

PRESETS: dict[str, MarketSpec] = {
    spec.symbol: spec
    for spec in (
        MarketSpec("SKHYNIX-PERP", "SK hynix (KRX 000660)", tick_size=10_000, lot_size="0.001",
                   tiers=_KRW_TIERS, max_order_qty=1_000_000, open_interest_cap=200_000_000,
                   session=KRX_REGULAR),
        MarketSpec("SAMSUNG-PERP", "Samsung Electronics (KRX 005930)", tick_size=10_000,
                   lot_size="0.01", tiers=_KRW_TIERS, max_order_qty=1_000_000,
                   open_interest_cap=200_000_000, session=KRX_REGULAR),
        MarketSpec("NVDA-PERP", "NVIDIA (NASDAQ NVDA)", tick_size=10_000, lot_size="0.01",
                   tiers=_US_TIERS, max_order_qty=2_000_000, open_interest_cap=500_000_000,
                   session=US_REGULAR),
        MarketSpec("TSLA-PERP", "Tesla (NASDAQ TSLA)", tick_size=10_000, lot_size="0.01",
                   tiers=_US_TIERS, max_order_qty=2_000_000, open_interest_cap=500_000_000,
                   session=US_REGULAR),
    )
}


def preset(symbol: str, **changes: Any) -> MarketSpec:
    """A preset market with some fields changed (``preset("NVDA-PERP", session=None)``)."""
    return replace(PRESETS[symbol], **changes) if changes else PRESETS[symbol]
