"""The scenario's MarketSpec: a preset of risk/markets.py with the scenario's changes."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

from gaemi.clients.sim.scenario.params import MarketParams
from gaemi.risk.markets import PPB, PRESETS, UNIT, MarginTier, MarketSpec

__all__ = ["build_spec"]


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
