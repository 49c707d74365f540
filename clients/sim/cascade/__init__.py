"""Cascade metrics and reports: what a scenario run (``RunRecord``) did, as summary.json,
liquidations.csv, an interactive report.html, PNG charts and a terminal table
(docs/cascade.md)."""

from gaemi.clients.sim.cascade.metrics import liquidation_rows, summarize
from gaemi.clients.sim.cascade.record import Cohort, RunRecord, Sample
from gaemi.clients.sim.cascade.report import comparison, print_summary, write_outputs

__all__ = [
    "Cohort", "RunRecord", "Sample", "comparison", "liquidation_rows", "print_summary",
    "summarize", "write_outputs",
]
