"""The paired baseline of a scenario run: the same scenario and seed with forced flow that has
no price impact, so the cascade's amplification can be measured against it.

``backstop(scenario)`` is the scenario with ``liquidation_venue = "backstop"``: the venue
closes every liquidation off the book at the mark (never beyond the bankruptcy price) with
the insurance fund as an unlimited counterparty (risk/venue/liquidation.py), so the forced
flow never trades on the book (the liquidated account's resting orders are still cancelled).
Everything else is the same: the seed, the index path,
the agents and their rules (they still see the liquidations happen and react to them, as
the makers' withdrawal does). ``run_baseline`` runs it and keeps only what the amplification
needs: the traders' liquidations, accounts and notional, the Hawkes branching ratio of their
times (the control for the one measured on the run with price impact) and the run's state
hash.
"""

from __future__ import annotations

import signal
from dataclasses import replace
from typing import Any

from gaemi.clients.sim.scenario.params import Scenario

__all__ = ["METHOD", "backstop", "quiet_worker", "run_baseline"]

METHOD = ("paired baseline: the same scenario and seed run again with every liquidation "
          "closed off the book at the mark by an unlimited backstop (liquidation_venue = "
          "backstop), so forced flow never trades on the book (the liquidated accounts' resting "
          "orders are still cancelled)")


def backstop(scenario: Scenario) -> Scenario:
    """The scenario with liquidations executed by the backstop instead of the book."""
    market = scenario.market
    overrides = tuple((k, v) for k, v in market.overrides if k != "liquidation_venue")
    return replace(scenario, market=replace(
        market, overrides=overrides + (("liquidation_venue", "backstop"),)))


def run_baseline(scenario: Scenario, book: str = "auto") -> dict[str, Any]:
    """Run the baseline of ``scenario`` and return its numbers (a RunRecord's ``baseline``)."""
    from gaemi.clients.sim.cascade.metrics import hawkes_summary, tape
    from gaemi.clients.sim.scenario.driver import run

    record = run(backstop(scenario), book=book, progress=False)
    rows = tape(record).rows
    return {"method": METHOD, "state_hash": record.state_hash,
            "conservation_ok": record.conservation_ok, "liquidations": len(rows),
            "liquidated_accounts": len({r.event.account_id for r in rows}),
            "liquidated_notional": sum(r.notional for r in rows),
            # the same fit on the run without price impact: the control for the Hawkes n
            "hawkes_branching_ratio": hawkes_summary(record, rows)["branching_ratio"]}


def quiet_worker() -> None:
    """A worker process's initializer: Ctrl-C is the parent's to handle (it stops us)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
