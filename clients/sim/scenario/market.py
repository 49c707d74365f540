"""The scenario's MarketSpec: a preset of risk/markets.py with the scenario's changes."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

from gaemi.clients.sim.scenario.params import MarketParams, Scenario
from gaemi.risk.calendar import NS_PER_HOUR
from gaemi.risk.markets import PPB, PRESETS, UNIT, MarginTier, MarketSpec

__all__ = ["build_spec", "scenario_spec"]


def scenario_spec(scenario: Scenario) -> MarketSpec:
    """The market the scenario's venue runs: ``build_spec`` of its market, and in the
    ``margin-loan`` regime the stock market's rules instead of the perp's (docs/scenarios.md,
    "The margin-loan regime"): KRX's daily price limit from the previous close, no band around
    the mark but that limit, and no funding (a stock pays none: the cap of 1 ppb per 8 hours
    makes every hourly rate round to 0). Fees stay the perp's, so the two regimes differ only
    in how the ants lever up."""
    spec = build_spec(scenario.market)
    if scenario.regime == "perp":
        return spec
    if spec.funding_interval_ns >= 8 * NS_PER_HOUR:
        raise ValueError("margin-loan: the market's funding interval must be under 8 hours "
                         "(a 1 ppb cap per 8 hours then pays 0 each interval)")
    limit = round(scenario.margin_loan.daily_limit_pct * PPB / 100)
    return replace(spec, daily_limit_ppb=limit, price_band_ppb=PPB - 1, funding_cap_ppb=1)


def build_spec(params: MarketParams) -> MarketSpec:
    """The preset ``params.symbol`` with ``params.tiers`` and ``params.overrides`` applied.
    ValueError (naming the problem) if the market is unknown or the result is not a valid spec.
    """
    if params.symbol not in PRESETS:
        raise ValueError(f"market.symbol: unknown market {params.symbol!r} "
                         f"(presets: {', '.join(sorted(PRESETS))})")
    changes: dict[str, object] = dict(params.overrides)
    if params.tiers:
        tiers = []
        for i, t in enumerate(params.tiers):
            mmr = Fraction(repr(t.mmr_pct)) * PPB / 100
            if mmr.denominator != 1:
                raise ValueError(f"market.tiers[{i}].mmr_pct: finer than 1 ppb")
            cap = None if t.max_notional_usd is None else t.max_notional_usd * UNIT
            tiers.append(MarginTier(cap, t.max_leverage, int(mmr)))
        changes["tiers"] = tuple(tiers)
    try:
        return replace(PRESETS[params.symbol], **changes)  # type: ignore[arg-type]
    except ValueError as exc:
        raise ValueError(f"market: {exc}") from None
