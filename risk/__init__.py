"""Gaemi's clearinghouse: markets, accounts, margin, prices, funding, liquidations and the
sequenced ``Venue`` that owns the books (docs/design.md §5, docs/architecture.md)."""

from gaemi.risk import commands
from gaemi.risk.commands import (
    AdvanceTime,
    AmendOrder,
    CancelAll,
    CancelOrder,
    Deposit,
    PlaceConditional,
    PlaceOrder,
    SetIndexPrice,
    SetLeverage,
    SetMarginMode,
    SetTradingStatus,
    Withdraw,
)
from gaemi.risk.markets import PPB, PRESETS, UNIT, MarginTier, MarketSpec, preset, usd
from gaemi.risk.venue import Venue

__all__ = [
    "PPB", "PRESETS", "UNIT", "AdvanceTime", "AmendOrder", "CancelAll", "CancelOrder",
    "Deposit", "MarginTier", "MarketSpec", "PlaceConditional", "PlaceOrder", "SetIndexPrice",
    "SetLeverage", "SetMarginMode", "SetTradingStatus", "Venue", "Withdraw", "commands",
    "preset", "usd",
]
