"""What one scenario run leaves behind: the contract between the scenario driver
(clients/sim/scenario) and the cascade metrics and report (clients/sim/cascade).

Everything is in the venue's integer units: prices in ticks, sizes in lots, money in
micro-dollars, times in nanoseconds. ``events`` are the venue's own event objects
(risk.events) with the time of the command that produced them, so the metrics can rebuild
the provenance graph from ``Liquidation.cause`` and ``Liquidation.generation``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gaemi.risk.markets import MarketSpec

__all__ = ["Cohort", "RunRecord", "Sample"]


@dataclass(frozen=True, slots=True)
class Sample:
    """The market once per sample interval (default: every simulated second)."""

    ts_ns: int
    index: int | None
    mark: int | None
    last: int | None
    best_bid: int | None
    best_ask: int | None
    open_interest: int  # lots, one side
    insurance_fund: int  # the fund's cash, micro-dollars
    bid_depth: int  # lots resting on the bid within 5% of the mark
    ask_depth: int  # lots resting on the ask within 5% of the mark


@dataclass(frozen=True, slots=True)
class Cohort:
    """Who an account is in the scenario: ``label`` groups accounts in the cohort table."""

    label: str  # e.g. "ant long 3x", "ant inverse 2x", "market maker", "etf rebalancer"
    role: str  # "ant" | "inverse" | "market_maker" | "etf" | "background" | ...
    leverage: int  # the leverage the account chose (1 for market makers)


@dataclass(slots=True)
class RunRecord:
    scenario: str
    seed: int
    market: str  # the symbol the cascade is watched on
    spec: MarketSpec
    config: dict[str, Any]  # the scenario's parameters as run (for summary.json)
    # (ts_ns, event) for every Fill with a liquidation_id, Liquidation, InsuranceTakeover,
    # Adl, BadDebt and FundingSettled, in the order the venue emitted them
    events: list[tuple[int, Any]] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    cohorts: dict[int, Cohort] = field(default_factory=dict)
    deposits: dict[int, int] = field(default_factory=dict)  # account -> net deposited
    final_equity: dict[int, int] = field(default_factory=dict)  # account -> equity at the end
    insurance_fund_start: int = 0
    insurance_fund_end: int = 0
    state_hash: str = ""
    conservation_ok: bool = False
    commands: int = 0  # commands submitted to the venue
    # the paired baseline's numbers (clients/sim/baseline.py: run_baseline), None if not run
    baseline: dict[str, Any] | None = None
