"""Seed ensembles: one scenario (and a counterfactual) over N seeds, as parallel Ray tasks.

One seed is one draw of a scenario's random flow; a difference between two scenarios on one
seed can be noise. ``run_ensemble`` runs the same seeds for scenario A and, optionally, B (so
every difference is paired: same flow, different rules), one Ray task per (scenario, seed),
and ``describe`` gives each headline metric's mean with a 95% bootstrap interval, and the same
for the paired differences B - A (docs/cascade.md, "Ensembles").

The driver loads each scenario (with its seed) and ships the ``Scenario`` to the task, so a
scenario file need not exist on the workers; the task runs the scenario exactly as ``gaemi
cascade --scenario A --seed S`` does and returns the run's row (its headline metrics and state
hash), never the whole record. A local Ray is started unless an address is given; on a
cluster every node needs the same gaemi installed.
"""

from __future__ import annotations

import csv
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from gaemi.clients.sim.scenario.params import Scenario

__all__ = ["BOOTSTRAP_RESAMPLES", "METRICS", "EnsembleResult", "RunProgress", "describe",
           "exact_number", "mean_interval", "run_ensemble", "run_row", "write_ensemble"]

SCHEMA = "gaemi-ensemble/1"
BOOTSTRAP_RESAMPLES = 4_000
BOOTSTRAP_SEED = 0  # the resampling is deterministic: the same rows give the same intervals
LEVEL = Fraction(95, 100)


def _get(*path: str) -> Callable[[dict[str, Any]], Any]:
    def read(summary: dict[str, Any]) -> Any:
        value: Any = summary
        for key in path:
            value = None if value is None else value.get(key)
        return value
    return read


def _credit(k: int) -> Callable[[dict[str, Any]], Any]:
    def read(summary: dict[str, Any]) -> Any:
        response = (summary.get("regime") or {}).get("credit_response")
        return None if response is None else response["change_pct"][k]
    return read


# runs.csv columns after scenario and seed: (name, reader of the run's summary). Money in
# exact decimal dollars, ratios as the summary's decimal strings.
METRICS: tuple[tuple[str, Callable[[dict[str, Any]], Any]], ...] = (
    ("liquidations", _get("liquidations")),
    ("liquidated_accounts", _get("liquidated_accounts")),
    ("liquidated_notional_usd", _get("liquidated_notional_usd")),
    ("first_generation_notional_usd", _get("first_generation_notional_usd")),
    ("endogenous_multiplier", _get("endogenous_multiplier")),
    ("max_generation", _get("max_generation")),
    ("time_proximity_liquidations", _get("time_proximity", "liquidations")),
    ("fund_liquidations", _get("fund_liquidations")),
    ("fund_liquidated_notional_usd", _get("fund_liquidated_notional_usd")),
    ("cascade_duration_s", _get("duration_s")),
    ("max_liquidation_notional_per_second_usd",
     _get("max_liquidation_notional_per_second_usd")),
    ("mark_drawdown_pct", _get("mark_drawdown_pct")),
    ("max_mark_overshoot_bps", _get("max_mark_overshoot_bps")),
    ("mark_move_basis_share", _get("mark_move", "basis_share")),
    ("hawkes_branching_ratio", _get("hawkes", "branching_ratio")),
    ("adl_count", _get("adl_count")),
    ("bad_debt_usd", _get("bad_debt_usd")),
    # the same keys under either regime (perp or margin loan): forced selling, who lost
    ("forced_accounts", _get("regime", "forced_accounts")),
    ("forced_notional_usd", _get("regime", "forced_notional_usd")),
    ("selling_span_s", _get("regime", "selling_span_s")),
    ("forced_active_seconds", _get("regime", "forced_active_seconds")),
    ("accounts_wiped_out", _get("regime", "accounts_wiped_out")),
    ("retail_pnl_usd", _get("regime", "retail_pnl_usd")),
    ("insurance_fund_change_usd", _get("insurance_fund_change_usd")),
    ("adl_notional_usd", _get("adl_notional_usd")),
    ("margin_calls", _get("regime", "margin_calls")),
    ("top_ups", _get("regime", "top_ups")),
    ("broker_forced_notional_usd", _get("regime", "broker_forced_notional_usd")),
    # the calibration targets' simulated moments (clients/calibration/calibrate.py)
    ("adl_accounts_per_liquidated_account", _get("adl_accounts_per_liquidated_account")),
    *((f"credit_d{k}_pct", _credit(k)) for k in range(6)),
    # with --baseline only (empty otherwise): the paired no-impact baseline of the same seed
    ("amplification_notional_ratio", _get("amplification", "notional_ratio")),
    ("amplification_accounts_ratio", _get("amplification", "accounts_ratio")),
    ("baseline_liquidated_notional_usd",
     _get("amplification", "baseline_liquidated_notional_usd")),
)
COLUMNS = ("scenario", "seed", *(name for name, _ in METRICS), "state_hash", "conservation_ok")


def run_row(scenario: Scenario, book: str = "auto", baseline: bool = False) -> dict[str, Any]:
    """Run one scenario (its own seed) and return its runs.csv row; with ``baseline``, its
    paired no-impact baseline too (clients/sim/baseline.py), in the same task, for the
    amplification columns. ``conservation_ok`` holds for both runs."""
    from gaemi.clients.sim.baseline import run_baseline
    from gaemi.clients.sim.cascade.metrics import summarize
    from gaemi.clients.sim.scenario.driver import run

    record = run(scenario, book=book, progress=False)
    if baseline:
        record.baseline = run_baseline(scenario, book)
    summary = summarize(record)
    row: dict[str, Any] = {"scenario": scenario.name, "seed": scenario.seed}
    for name, read in METRICS:
        row[name] = read(summary)
    row["state_hash"] = summary["state_hash"]
    row["conservation_ok"] = summary["conservation_ok"] and (
        record.baseline is None or record.baseline["conservation_ok"])
    return row


@dataclass(slots=True)
class EnsembleResult:
    rows_a: list[dict[str, Any]]  # one per seed, in seed order
    rows_b: list[dict[str, Any]] | None  # the same seeds, for the counterfactual
    a: str
    b: str | None
    seeds: list[int]
    ray: dict[str, Any]  # the cluster the tasks ran on
    seconds: float


def run_ensemble(a: Sequence[Scenario], b: Sequence[Scenario] | None = None, *,
                 address: str | None = None, book: str = "auto", baseline: bool = False,
                 progress: bool = True) -> EnsembleResult:
    """Run every scenario of ``a`` (and ``b``: the same seeds, in the same order) as a Ray
    task and collect their rows. ``address`` joins a running cluster ("auto", "host:port",
    "ray://host:10001"); None starts a local Ray for the duration of the call."""
    import ray

    started = time.perf_counter()
    runs = list(a) + list(b or ())
    if b is not None and [s.seed for s in a] != [s.seed for s in b]:
        raise ValueError("the two scenarios must run on the same seeds")
    ours = not ray.is_initialized()
    if ours:
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    try:
        resources = ray.cluster_resources()
        info = {"address": address or "local", "nodes": len(ray.nodes()),
                "cpus": int(resources.get("CPU", 0)), "version": ray.__version__}
        task = ray.remote(run_row)
        pending = {task.remote(scenario, book, baseline): i for i, scenario in enumerate(runs)}
        rows: list[dict[str, Any] | None] = [None] * len(runs)
        with RunProgress(progress, len(runs)) as advance:
            waiting = list(pending)
            while waiting:
                done, waiting = ray.wait(waiting, num_returns=1)
                for ref in done:
                    rows[pending[ref]] = ray.get(ref)
                    advance()
    finally:
        if ours:
            ray.shutdown()
    done_rows = [r for r in rows if r is not None]
    n = len(a)
    return EnsembleResult(done_rows[:n], done_rows[n:] if b is not None else None,
                          a[0].name if a else "", b[0].name if b else None,
                          [s.seed for s in a], info, time.perf_counter() - started)


class RunProgress:
    """A rich progress bar over the finished tasks (nothing when off)."""

    def __init__(self, on: bool, total: int) -> None:
        self.on, self.total = on, total

    def __enter__(self) -> Callable[[], None]:
        if not self.on:
            return lambda: None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        self.bar = Progress("runs", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        self.bar.__enter__()
        job = self.bar.add_task("runs", total=self.total)
        return lambda: self.bar.advance(job)

    def __exit__(self, *exc: Any) -> None:
        if self.on:
            self.bar.__exit__(*exc)


# -- statistics ----------------------------------------------------------------------------------


def exact_number(value: Any) -> Fraction | None:
    if value is None or isinstance(value, bool):
        return None
    return Fraction(value) if isinstance(value, int) else Fraction(str(value))


def mean_interval(values: list[Fraction]) -> dict[str, Any]:
    """Mean and its 95% percentile-bootstrap interval (BOOTSTRAP_RESAMPLES resamples of the
    values with replacement, a fixed random seed); floats rounded to 6 significant digits."""
    n = len(values)
    if n == 0:
        return {"mean": None, "ci_low": None, "ci_high": None, "n": 0}
    mean = sum(values, Fraction(0)) / n
    floats = [float(v) for v in values]
    rng = random.Random(BOOTSTRAP_SEED)
    means = sorted(sum(rng.choices(floats, k=n)) / n for _ in range(BOOTSTRAP_RESAMPLES))
    tail = (1 - LEVEL) / 2
    low = means[int(tail * BOOTSTRAP_RESAMPLES)]
    high = means[int((1 - tail) * BOOTSTRAP_RESAMPLES) - 1]
    return {"mean": _round(float(mean)), "ci_low": _round(low), "ci_high": _round(high), "n": n}


def _round(x: float) -> float:
    return float(f"{x:.6g}")


def describe(result: EnsembleResult) -> dict[str, Any]:
    """ensemble.json: per metric of each scenario, and of the paired differences B - A."""
    names = [name for name, _ in METRICS]
    every = result.rows_a + (result.rows_b or [])
    out: dict[str, Any] = {
        "schema": SCHEMA,
        "executor": "ray",
        "ray": result.ray,
        "a": result.a,
        "b": result.b,
        "seeds": result.seeds,
        "runs": len(every),
        "bootstrap": {"level": float(LEVEL), "method": "percentile, of the mean",
                      "resamples": BOOTSTRAP_RESAMPLES, "rng_seed": BOOTSTRAP_SEED},
        "conservation_ok": all(r["conservation_ok"] for r in every),
        "runtime_s": round(result.seconds, 1),
    }
    for key, rows in (("metrics_a", result.rows_a), ("metrics_b", result.rows_b)):
        out[key] = None if rows is None else {
            name: mean_interval([v for r in rows if (v := exact_number(r[name])) is not None])
            for name in names}
    if result.rows_b is None:
        out["paired_differences"] = None
    else:
        diffs: dict[str, Any] = {}
        for name in names:
            pairs = [(exact_number(x[name]), exact_number(y[name]))
                     for x, y in zip(result.rows_a, result.rows_b, strict=True)]
            diffs[name] = mean_interval([y - x for x, y in pairs
                                         if x is not None and y is not None])
        out["paired_differences"] = diffs
    return out


def write_ensemble(result: EnsembleResult, out_dir: str | Path) -> dict[str, Path]:
    """Write runs.csv (one row per run), ensemble.json and report.html; return their paths."""
    from gaemi.clients.sim.cascade.ensemble_report import write_ensemble_report

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs = out / "runs.csv"
    with runs.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows({k: ("" if r[k] is None else r[k]) for k in COLUMNS}
                         for r in result.rows_a + (result.rows_b or []))
    summary = out / "ensemble.json"
    description = describe(result)
    summary.write_text(json.dumps(description, indent=2) + "\n", encoding="utf-8")
    report = write_ensemble_report(description, result.rows_a, result.rows_b, out)
    return {"runs": runs, "ensemble": summary, "report": report}
