"""Calibration by the method of simulated moments: hold the cascade lab against a real event.

A ``Target`` names a real measurement shipped with the package (clients/calibration/targets.py),
the scenario that should reproduce it, the runs.csv columns that are its simulated
counterpart (clients/sim/ensemble.py ``METRICS``), the parameters it declares free, with the
values to try, and its tolerance. ``calibrate`` runs every combination of the free values on
the same seeds (a ``gaemi sweep`` in ``DIR/sweep``: Ray tasks, resumable), then for each point
takes the simulated moments over the seeds (mean, and the 5-95% band of the per-seed values),
the error against the real moments, and keeps the point with the smallest error: the fit. The
report card (``calibration.json``, ``report.html``) gives the target, the fitted values, the
band and the mean at the fit, the error and whether it passes, every point's error (how
sensitive the fit is to each free parameter) and, when it fails, where and why.

The grid is deliberately coarse (a few values per parameter, each point at >= 20 seeds): the
question is whether the model can hold the data at all, and what moves it, not a fifth decimal.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gaemi.clients.calibration.targets import hyperliquid_adl, kospi_margin_credit
from gaemi.clients.sim.ensemble import exact_number
from gaemi.clients.sim.sweep import Plan, SweepResult, plan_sweep, run_sweep, value_text

__all__ = ["SCHEMA", "TARGETS", "Card", "Free", "Target", "calibrate", "card_for",
           "screening_diagnosis"]

SCHEMA = "gaemi-calibration/1"
BAND = (5, 95)  # the simulated band: percentiles of the per-seed values


@dataclass(frozen=True, slots=True)
class Free:
    key: str  # a dotted scenario key (gaemi sweep's)
    values: tuple[Any, ...]
    why: str  # what it stands for and why these values


@dataclass(frozen=True, slots=True)
class Target:
    name: str  # --target
    title: str
    source: str  # the shipped table
    scenario: str  # the preset that should reproduce it
    free: tuple[Free, ...]
    columns: tuple[str, ...]  # runs.csv columns: the simulated moments, in order
    labels: tuple[str, ...]  # one per column, for people
    unit: str
    real: Callable[[], tuple[float, ...]]  # the real moments, read from the shipped table
    error_name: str
    error: Callable[[Sequence[float], Sequence[float]], float]  # (simulated means, real)
    tolerance: str
    passes: Callable[[float, Sequence[tuple[float, float]], Sequence[float]], bool]
    # the keys Morris screening ranks (the free ones and others held at the scenario's
    # value), each with its range (low, high): whole numbers stay whole
    screen: tuple[tuple[str, float, float], ...] = ()


def _rmse(sim: Sequence[float], real: Sequence[float]) -> float:
    return math.sqrt(sum((s - r) ** 2 for s, r in zip(sim, real, strict=True)) / len(real))


def _inside(bands: Sequence[tuple[float, float]], real: Sequence[float]) -> int:
    return sum(1 for (lo, hi), r in zip(bands, real, strict=True) if lo <= r <= hi)


def _relative(sim: Sequence[float], real: Sequence[float]) -> float:
    return abs(sim[0] / real[0] - 1)


TARGETS: dict[str, Target] = {t.name: t for t in (
    Target(
        name="kospi-margin-credit",
        title="KOSPI margin-credit balance after a daily drop of more than 3%",
        source="clients/calibration/data/targets/kospi_margin_credit_response.json",
        scenario="ants-skhynix-credit-week",
        free=(Free("margin_loan.top_up_share", (0.0, 0.5, 1.0),
                   "the share of margin calls met by a deposit instead of a forced sale"),),
        columns=tuple(f"credit_d{k}_pct" for k in range(6)),
        labels=tuple(f"day {k}" for k in range(6)),
        unit="% change from the day before the drop",
        real=lambda: tuple(kospi_margin_credit().mean),
        error_name="RMSE over days 0-5 (percentage points)",
        error=_rmse,
        tolerance="RMSE <= 0.75 percentage points, and the real mean inside the simulated "
                  "5-95% band on at least 4 of the 6 days",
        passes=lambda err, bands, real: err <= 0.75 and _inside(bands, real) >= 4,
        screen=(("margin_loan.top_up_share", 0.0, 1.0),
                ("ants.dip_share", 0.0, 1.0),
                ("ants.hold_mean_s", 23_400.0, 93_600.0)),
    ),
    Target(
        name="hyperliquid-adl",
        title="Hyperliquid, 10 October 2025: positions auto-deleveraged per position "
              "liquidated (BTC and SOL)",
        source="clients/calibration/data/targets/hyperliquid_2025_10_10_adl.json",
        scenario="crypto-style-crash",
        free=(Free("inverse.count", (400, 2000, 4000),
                   "the short side's crowd: ADL reduces the profitable opposite positions, so "
                   "how many there are bounds how many are deleveraged per liquidation"),),
        columns=("adl_accounts_per_liquidated_account",),
        labels=("ADL / liquidated",),
        unit="ADL'd positions per liquidated one",
        real=lambda: (_hyperliquid_ratio(),),
        error_name="relative error of the ratio",
        error=_relative,
        tolerance="within ±30% of the real ratio",
        passes=lambda err, bands, real: err <= 0.30,
        screen=(("inverse.count", 400, 4000),
                ("market.overrides.insurance_fund", 0, 250_000_000_000),
                ("market_makers.level_usd", 10_000.0, 50_000.0)),
    ),
)}


def _hyperliquid_ratio() -> float:
    ratio = hyperliquid_adl().overall.adl_per_liquidated
    assert ratio is not None
    return ratio


@dataclass(slots=True)
class Card:
    document: dict[str, Any]  # calibration.json
    paths: dict[str, Path]


def _band(values: list[float]) -> tuple[float, float]:
    if len(values) == 1:
        return values[0], values[0]
    cuts = statistics.quantiles(values, n=20, method="inclusive")  # 5%, 10%, ..., 95%
    return cuts[0], cuts[-1]


def _point_moments(target: Target, rows: list[dict[str, str]]) -> dict[str, Any]:
    """Per column: the seeds' values as floats, their mean and 5-95% band."""
    out: dict[str, Any] = {"means": [], "bands": [], "n": []}
    for column in target.columns:
        values = [float(v) for r in rows
                  if (v := exact_number(r.get(column) or None)) is not None]
        out["n"].append(len(values))
        if values:
            out["means"].append(statistics.fmean(values))
            out["bands"].append(_band(values))
        else:
            out["means"].append(None)
            out["bands"].append(None)
    return out


def card_for(target: Target, plan: Plan, rows: list[dict[str, str]],
             sweep: dict[str, Any]) -> dict[str, Any]:
    """calibration.json from the sweep's rows."""
    real = list(target.real())
    points = []
    for point in plan.points:
        mine = [r for r in rows if r["point"] == point.label]
        m = _point_moments(target, mine)
        complete = all(x is not None for x in m["means"])
        error = target.error(m["means"], real) if complete else None
        inside = _inside(m["bands"], real) if complete else None
        points.append({
            "point": point.label,
            "values": {f.key: v for f, v in zip(target.free, point.values, strict=True)},
            "runs": len(mine),
            "simulated_mean": [_r(x) for x in m["means"]],
            "simulated_band": [None if b is None else [_r(b[0]), _r(b[1])]
                               for b in m["bands"]],
            "seeds_with_a_value": m["n"],
            "error": _r(error),
            "real_inside_band": inside,
            "passes": bool(complete and error is not None
                           and target.passes(error, m["bands"], real)),
        })
    scored = [p for p in points if p["error"] is not None]
    best = min(scored, key=lambda p: p["error"]) if scored else None
    return {
        "schema": SCHEMA,
        "target": {"name": target.name, "title": target.title, "source": target.source,
                   "unit": target.unit, "moments": list(target.labels), "real": real},
        "scenario": plan.base,
        "free": [{"key": f.key, "values": list(f.values), "why": f.why} for f in target.free],
        "seeds": list(plan.seeds),
        "method": "method of simulated moments on a grid: every combination of the free "
                  "values on the same seeds; the fit is the point with the smallest error; "
                  f"the band is the {BAND[0]}-{BAND[1]}% range of the per-seed values",
        "error_metric": target.error_name,
        "tolerance": target.tolerance,
        "points": points,
        "fit": None if best is None else {
            "point": best["point"], "values": best["values"], "error": best["error"],
            "simulated_mean": best["simulated_mean"], "simulated_band": best["simulated_band"],
            "real_inside_band": best["real_inside_band"], "passes": best["passes"]},
        "sensitivity": _sensitivity(target, points),
        "verdict": _verdict(target, best, real),
        "conservation_ok": sweep.get("conservation_ok"),
        "ray": sweep.get("ray"),
        "runtime_s": sweep.get("runtime_s"),
    }


def _sensitivity(target: Target, points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each free key: the error and the simulated means at each of its values (the other
    keys at the fit's values), and the change of the first moment's mean across the range."""
    scored = [p for p in points if p["error"] is not None]
    if not scored:
        return []
    best = min(scored, key=lambda p: p["error"])
    out = []
    for f in target.free:
        line = [p for p in scored if all(p["values"][g.key] == best["values"][g.key]
                                         for g in target.free if g.key != f.key)]
        line.sort(key=lambda p: f.values.index(p["values"][f.key]))
        entry: dict[str, Any] = {
            "key": f.key,
            "at": [{"value": p["values"][f.key], "error": p["error"],
                    "simulated_mean": p["simulated_mean"]} for p in line]}
        if len(line) >= 2:
            lo, hi = line[0], line[-1]
            entry["error_range"] = _r(max(p["error"] for p in line)
                                      - min(p["error"] for p in line))
            entry["moment_change"] = [None if a is None or b is None else _r(b - a)
                                      for a, b in zip(lo["simulated_mean"],
                                                      hi["simulated_mean"], strict=True)]
        out.append(entry)
    return out


def _verdict(target: Target, best: dict[str, Any] | None, real: list[float]) -> str:
    if best is None:
        return ("cannot be computed: no run gave the simulated moments (the scenario never "
                "met the target's event)")
    values = ", ".join(f"{k} = {value_text(v)}" for k, v in best["values"].items())
    if best["passes"]:
        return f"passes at {values}: {target.error_name} {best['error']:.4g}."
    misses = []
    for label, mean, band, r in zip(target.labels, best["simulated_mean"],
                                    best["simulated_band"], real, strict=True):
        if band is not None and not band[0] <= r <= band[1]:
            side = "above" if r > band[1] else "below"
            misses.append(f"{label}: real {r:.4g} {side} the band [{band[0]:.4g}, "
                          f"{band[1]:.4g}] (mean {mean:.4g})")
    where = "; ".join(misses) if misses else "the band holds the real values but the error " \
        "is over the tolerance"
    return (f"fails: the best point ({values}) has {target.error_name} {best['error']:.4g} "
            f"against a tolerance of {target.tolerance}. {where}.")


def screening_diagnosis(target: Target, screening: dict[str, Any]) -> str:
    """What the Morris screening adds to the verdict: the keys that move the error more than
    the fitted ones, and the smallest error any screened point reached."""
    ranking = screening.get("ranking") or []
    if not ranking:
        return ""
    free = {f.key for f in target.free}
    top_free = max((e["mu_star"] for e in ranking if e["key"] in free), default=0.0)
    above = [e for e in ranking if e["key"] not in free and e["mu_star"] > top_free]
    text = " Screening (Morris): " + ", ".join(
        f"{e['key']} mu* {e['mu_star']:.4g}" for e in ranking) + "."
    if above:
        text += (" " + " and ".join(e["key"] for e in above) + " move the error more than "
                 "the fitted " + ", ".join(sorted(free)) + ": what decides the fit is held "
                 "fixed by it.")
    scored = [p for p in screening.get("points") or [] if p.get("error") is not None]
    if scored:
        best = min(scored, key=lambda p: p["error"])
        values = ", ".join(f"{k} = {value_text(v if not isinstance(v, float) else round(v, 4))}"
                           for k, v in best["values"].items())
        text += f" The smallest error among the screened points: {best['error']:.4g} at {values}."
    return text


def _r(x: float | None) -> float | None:
    return None if x is None else float(f"{x:.6g}")


MORRIS_LEVELS = 4
MORRIS_SEED = 0  # the design is deterministic: the same trajectories every time


def morris(target: Target, *, trajectories: int, seeds: int, first_seed: int | None,
           scenario: str | None, address: str | None, book: str,
           progress: bool) -> dict[str, Any]:
    """Morris elementary-effects screening (SALib) of the target's error over its screened
    keys: ``trajectories`` x (keys + 1) design points on a 4-level grid of each key's range,
    each point run on the same ``seeds`` seeds (its error is that of the seeds' mean moments);
    the keys ranked by mu* (the mean absolute elementary effect, in the error's units)."""
    from SALib.analyze import morris as analyze
    from SALib.sample import morris as sample

    from gaemi.clients.sim.ensemble import run_ensemble

    keys = [k for k, _, _ in target.screen]
    problem = {"num_vars": len(keys), "names": keys,
               "bounds": [[float(lo), float(hi)] for _, lo, hi in target.screen]}
    design = sample.sample(problem, N=trajectories, num_levels=MORRIS_LEVELS,
                           seed=MORRIS_SEED)
    whole = [isinstance(lo, int) and isinstance(hi, int) for _, lo, hi in target.screen]
    ref = scenario or target.scenario
    points: list[dict[str, Any]] = []
    runs = []
    for x in design:
        values = [int(round(v)) if w else float(v) for v, w in zip(x, whole, strict=True)]
        grid = [f"{k}={value_text(v)}" for k, v in zip(keys, values, strict=True)]
        plan = plan_sweep(ref, grid, seeds=seeds, first_seed=first_seed)
        points.append({"values": dict(zip(keys, values, strict=True))})
        runs += [plan.points[0].scenario(seed) for seed in plan.seeds]
    result = run_ensemble(runs, address=address, book=book, progress=progress)
    real = list(target.real())
    errors = []
    for i, point in enumerate(points):
        rows = result.rows_a[i * seeds:(i + 1) * seeds]
        m = _point_moments(target, [{k: "" if v is None else str(v) for k, v in r.items()}
                                    for r in rows])
        complete = all(x is not None for x in m["means"])
        point["error"] = _r(target.error(m["means"], real)) if complete else None
        errors.append(point["error"])
    if any(e is None for e in errors):
        ranking: list[dict[str, Any]] = []
        note = "a design point gave no simulated moments: no ranking"
    else:
        import numpy as np

        si = analyze.analyze(problem, design, np.array(errors, dtype=float),
                             num_levels=MORRIS_LEVELS, seed=MORRIS_SEED)
        ranking = sorted(({"key": k, "mu_star": _r(float(si["mu_star"][j])),
                           "mu_star_conf": _r(float(si["mu_star_conf"][j])),
                           "mu": _r(float(si["mu"][j])), "sigma": _r(float(si["sigma"][j])),
                           "range": [lo, hi]}
                          for j, (k, lo, hi) in enumerate(target.screen)),
                         key=lambda e: -(e["mu_star"] or 0.0))
        note = ("mu*: the mean absolute elementary effect of the key on the error (SALib's "
                "definition, over the key's range), by which the keys are ranked; sigma: how "
                "much that effect varies with the other keys (interaction or non-linearity); "
                "mu_star_conf: mu*'s 95% bootstrap half-width")
    return {"method": f"Morris elementary effects (SALib), {trajectories} trajectories, "
                      f"{MORRIS_LEVELS} levels, {len(points)} design points x {seeds} seeds",
            "output": f"the target's error ({target.error_name})",
            "note": note, "ranking": ranking, "points": points,
            "runtime_s": round(result.seconds, 1),
            "conservation_ok": all(r["conservation_ok"] for r in result.rows_a)}


def calibrate(target: Target, out_dir: str | Path, *, seeds: int, first_seed: int | None = None,
              scenario: str | None = None, address: str | None = None, book: str = "auto",
              progress: bool = True, morris_trajectories: int = 0, morris_seeds: int = 5,
              say: Callable[[str], None] = print) -> Card:
    """Run the target's grid (resuming what DIR/sweep holds) and write its report card; with
    ``morris_trajectories``, a Morris screening of the screened keys too (not resumable)."""
    out = Path(out_dir)
    grid = [f"{f.key}={','.join(value_text(v) for v in f.values)}" for f in target.free]
    plan = plan_sweep(scenario or target.scenario, grid, seeds=seeds, first_seed=first_seed)
    result: SweepResult = run_sweep(plan, out / "sweep", address=address, book=book,
                                    progress=progress, say=say)
    document = card_for(target, plan, result.rows, result.description)
    document["global_sensitivity"] = None
    if morris_trajectories:
        say(f"Morris screening: {morris_trajectories} trajectories over "
            f"{len(target.screen)} keys, {morris_seeds} seeds per point")
        document["global_sensitivity"] = morris(
            target, trajectories=morris_trajectories, seeds=morris_seeds,
            first_seed=first_seed, scenario=scenario, address=address, book=book,
            progress=progress)
        document["verdict"] += screening_diagnosis(target, document["global_sensitivity"])
    out.mkdir(parents=True, exist_ok=True)
    path = out / "calibration.json"
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    from gaemi.clients.calibration.card_report import write_card_report

    report = write_card_report(document, out)
    return Card(document, {"calibration": path, "report": report, "sweep": out / "sweep"})

