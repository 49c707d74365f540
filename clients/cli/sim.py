"""``gaemi demo`` and ``gaemi cascade``: run scenarios and write their cascade reports;
``gaemi ensemble``: run one (or two) over many seeds on Ray; ``gaemi sweep``: one over a grid
of its parameters, every grid point on the same seeds, on Ray.

``add_parsers(subparsers)`` registers the subcommands on the ``gaemi`` parser; each sets
``func`` to its handler, which takes the parsed arguments and returns the exit status::

    args = parser.parse_args(argv)
    return args.func(args)

``main(argv)`` runs the same subcommands without the rest of the ``gaemi`` parser (the
tests call it); from a shell, ``python -m gaemi.clients.cli demo`` is ``gaemi demo``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import signal
import sys
import time
from collections.abc import Sequence
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from gaemi.clients.cli.common import guarded
from gaemi.clients.sim.baseline import quiet_worker, run_baseline
from gaemi.clients.sim.scenario import DEFAULT_PRESET
from gaemi.clients.sim.scenario.loader import ScenarioError, load_scenario, preset_names
from gaemi.clients.sim.scenario.params import REGIMES, Scenario

__all__ = ["add_parsers", "cmd_calibrate", "cmd_cascade", "cmd_demo", "cmd_ensemble",
           "cmd_sweep", "main"]

DEFAULT_OUT = Path("gaemi-out")


def add_parsers(subparsers: Any) -> None:
    """Register ``demo`` and ``cascade`` on an ``argparse`` subparsers object."""
    presets = ", ".join(preset_names())
    demo = subparsers.add_parser(
        "demo", help="the default cascade: retail ants on SKHYNIX-PERP through SK Hynix's "
                     "real fall of 2026-07-28, with a report",
        description="Run the default scenario (preset ants-skhynix, docs/scenarios.md) and "
                    "write its cascade report.")
    demo.add_argument("--out", type=Path, default=DEFAULT_OUT / "demo",
                      help="output folder (default: ./gaemi-out/demo)")
    _common(demo)
    demo.set_defaults(func=cmd_demo)
    cascade = subparsers.add_parser(
        "cascade", help="run a scenario (and optionally a counterfactual) and write the report",
        description=f"Run a scenario file or preset ({presets}); with --compare, run a second "
                    "configuration on the same flow and seed and write them side by side.")
    cascade.add_argument("--scenario", required=True, metavar="FILE|PRESET",
                         help="a scenario TOML file or a preset name")
    cascade.add_argument("--compare", metavar="FILE|PRESET",
                         help="the counterfactual: another scenario run with the same seed")
    _regime_options(cascade)
    cascade.add_argument("--out", type=Path, default=None,
                         help="output folder (default: ./gaemi-out/<scenario>[-vs-<compare>])")
    _common(cascade)
    cascade.set_defaults(func=cmd_cascade)
    ensemble = subparsers.add_parser(
        "ensemble", help="run a scenario (and a counterfactual) over N seeds on Ray: means "
                         "and 95%% intervals, paired differences",
        description="Run N seeds of a scenario (and of --compare, on the same seeds, so each "
                    "difference is paired) as parallel Ray tasks; write runs.csv and "
                    "ensemble.json (docs/cascade.md, Ensembles).")
    ensemble.add_argument("--scenario", required=True, metavar="FILE|PRESET",
                          help="a scenario TOML file or a preset name")
    ensemble.add_argument("--compare", metavar="FILE|PRESET",
                          help="the counterfactual, run on the same seeds")
    _regime_options(ensemble)
    ensemble.add_argument("--seeds", type=_positive, required=True, metavar="N",
                          help="how many seeds: S, S+1, ..., S+N-1")
    ensemble.add_argument("--seed", type=int, default=None, metavar="S",
                          help="the first seed (default: the scenario's own)")
    ensemble.add_argument("--address", default=None, metavar="ADDR",
                          help="join a running Ray cluster (\"auto\", host:port or "
                               "ray://host:port); default: start a local Ray")
    ensemble.add_argument("--out", type=Path, default=None,
                          help="output folder (default: ./gaemi-out/ensemble-<scenario>"
                               "[-vs-<compare>])")
    ensemble.add_argument("--book", choices=("auto", "compiled", "reference"), default="auto",
                          help="order-book implementation (default: auto)")
    ensemble.add_argument("--baseline", action="store_true",
                          help="also run each seed's paired no-impact baseline (twice the "
                               "work) for the amplification columns")
    ensemble.add_argument("--no-progress", action="store_true", help="no progress bar")
    ensemble.set_defaults(func=cmd_ensemble)
    _sweep_parser(subparsers)


def _sweep_parser(subparsers: Any) -> None:
    sweep = subparsers.add_parser(
        "sweep", help="run a scenario over a grid of its parameters, every point on the same "
                      "seeds, on Ray: means and 95%% intervals per point",
        description="Run every combination of the --grid values (a grid point) on the same "
                    "seeds S..S+N-1, one Ray task per (point, seed); write runs.csv (one row "
                    "per run, as each finishes), sweep.json and report.html. Run the same "
                    "command again to finish an interrupted sweep: the runs already in "
                    "runs.csv are not run again (docs/cascade.md, Sweeps).")
    sweep.add_argument("--scenario", required=True, metavar="FILE|PRESET",
                       help="a scenario TOML file or a preset name")
    sweep.add_argument("--grid", action="append", required=True, metavar="KEY=V1,V2,...",
                       help="a dotted key of the scenario's table after extends (ants.count, "
                            "market.overrides.liquidation_fee_ppb, market.tiers.0.mmr_pct) "
                            "and its values, TOML scalars (5, 0.5, true, \"x\"; other text "
                            "is text); repeat for more keys (their Cartesian product)")
    sweep.add_argument("--seeds", type=_positive, required=True, metavar="N",
                       help="how many seeds per grid point: S, S+1, ..., S+N-1")
    sweep.add_argument("--seed", type=int, default=None, metavar="S",
                       help="the first seed (default: the scenario's own)")
    sweep.add_argument("--baseline", action="store_true",
                       help="also run each run's paired no-impact baseline (twice the work) "
                            "for the amplification columns")
    sweep.add_argument("--address", default=None, metavar="ADDR",
                       help="join a running Ray cluster (\"auto\", host:port or "
                            "ray://host:port); default: start a local Ray")
    sweep.add_argument("--book", choices=("auto", "compiled", "reference"), default="auto",
                       help="order-book implementation (default: auto)")
    sweep.add_argument("--no-progress", action="store_true", help="no progress bar")
    sweep.add_argument("--out", type=Path, required=True, metavar="DIR",
                       help="output folder; if it holds this sweep's runs.csv, only the "
                            "missing runs are run")
    sweep.set_defaults(func=cmd_sweep)
    _calibrate_parser(subparsers)


def _calibrate_parser(subparsers: Any) -> None:
    from gaemi.clients.calibration.calibrate import TARGETS

    calibrate = subparsers.add_parser(
        "calibrate", help="fit a target's free parameters to real data by simulated moments, "
                          "on Ray, and write its report card",
        description="Run the target's scenario over its free parameters' values, every point "
                    "on the same seeds (a sweep, in DIR/sweep: rerun to resume), and write "
                    "the report card: the real moments, the simulated mean and 5-95% band at "
                    "the fit, the error and the tolerance, every point's error "
                    "(docs/scenarios.md, Calibration). Targets: " + ", ".join(
                        f"{t.name} ({t.title})" for t in TARGETS.values()))
    calibrate.add_argument("--target", required=True, choices=sorted(TARGETS),
                           help="the real measurement to hold the model against")
    calibrate.add_argument("--seeds", type=_positive, default=20, metavar="N",
                           help="seeds per point (default 20)")
    calibrate.add_argument("--seed", type=int, default=None, metavar="S",
                           help="the first seed (default: the scenario's own)")
    calibrate.add_argument("--scenario", default=None, metavar="FILE|PRESET",
                           help="run the target on another scenario than its own (a smaller "
                                "one to try it out)")
    calibrate.add_argument("--address", default=None, metavar="ADDR",
                           help="join a running Ray cluster (\"auto\", host:port or "
                                "ray://host:port); default: start a local Ray")
    calibrate.add_argument("--book", choices=("auto", "compiled", "reference"),
                           default="auto", help="order-book implementation (default: auto)")
    calibrate.add_argument("--morris", type=_positive, default=None, metavar="R",
                           help="also rank the target's screened keys by Morris elementary "
                                "effects (SALib): R trajectories, --morris-seeds seeds per "
                                "design point (not resumable)")
    calibrate.add_argument("--morris-seeds", type=_positive, default=4, metavar="N",
                           help="seeds per Morris design point (default 4)")
    calibrate.add_argument("--no-progress", action="store_true", help="no progress bar")
    calibrate.add_argument("--out", type=Path, default=None, metavar="DIR",
                           help="output folder (default: ./gaemi-out/calibrate-<target>)")
    calibrate.set_defaults(func=cmd_calibrate)


def cmd_calibrate(args: argparse.Namespace) -> int:
    from gaemi.clients.calibration.calibrate import TARGETS, calibrate
    from gaemi.clients.sim.sweep import SweepError

    target = TARGETS[args.target]
    try:
        import ray  # noqa: F401
    except ImportError:
        raise SystemExit("gaemi calibrate needs Ray (pip install ray)") from None
    out = args.out or DEFAULT_OUT / f"calibrate-{target.name}"
    print(f"Calibrate: {target.title}\n  scenario {args.scenario or target.scenario}, free: "
          + ", ".join(f"{f.key} ({len(f.values)} values)" for f in target.free)
          + f", {args.seeds} seeds per point, on Ray ({args.address or 'local'})")
    try:
        card = calibrate(target, out, seeds=args.seeds, first_seed=args.seed,
                         scenario=args.scenario, address=args.address, book=args.book,
                         progress=not args.no_progress, morris_trajectories=args.morris or 0,
                         morris_seeds=args.morris_seeds)
    except (ScenarioError, SweepError, FileNotFoundError) as exc:
        raise SystemExit(str(exc)) from None
    except ConnectionError as exc:
        raise SystemExit(f"cannot reach the Ray cluster at {args.address}: {exc}") from None
    doc = card.document
    print(f"\n{doc['verdict']}")
    for p in doc["points"]:
        values = ", ".join(f"{k}={v}" for k, v in p["values"].items())
        print(f"  {p['point']} {values}: error {p['error']}, "
              f"{'pass' if p['passes'] else 'fail'}")
    screening = doc.get("global_sensitivity")
    if screening:
        print(f"Morris ({screening['method']}): " + ", ".join(
            f"{e['key']} mu* {e['mu_star']}" for e in screening["ranking"]))
    print(f"\nFiles:  {card.paths['calibration'].resolve()}, {card.paths['report'].name}, "
          f"{card.paths['sweep'].name}/")
    if not doc["conservation_ok"]:
        print("WARNING: a run failed its conservation check", file=sys.stderr)
        return 1
    return 0


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return value


def _regime_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--regime", choices=REGIMES, default=None,
                        help="how the ants lever up in the scenario: on the perp, or through "
                             "a broker's margin loan on the stock (default: the scenario's)")
    parser.add_argument("--compare-regime", choices=REGIMES, default=None, metavar="REGIME",
                        help="the same for the counterfactual; without --compare, the "
                             "counterfactual is the scenario itself under this regime")


def _scenarios(ref: str, compare: str | None, args: argparse.Namespace,
               seed: int | None) -> tuple[Scenario, Scenario | None]:
    """Scenario A and the counterfactual B (or None), with the command line's regimes."""
    a = _with_regime(load_scenario(ref, seed=seed), args.regime)
    if compare is None and args.compare_regime is None:
        return a, None
    b = load_scenario(compare, seed=seed) if compare else a
    return a, _with_regime(b, args.compare_regime)


def _with_regime(scenario: Scenario, regime: str | None) -> Scenario:
    """``scenario`` under ``regime`` (a changed regime is named in the scenario's name)."""
    if regime is None or regime == scenario.regime:
        return scenario
    return dataclasses.replace(scenario, regime=regime, name=f"{scenario.name}-{regime}")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=None,
                        help="replace the scenario's seed (both runs, with --compare)")
    parser.add_argument("--book", choices=("auto", "compiled", "reference"), default="auto",
                        help="order-book implementation (default: auto, the compiled book "
                             "when it is built)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip the paired no-impact baseline run (and the amplification "
                             "it measures)")


def cmd_demo(args: argparse.Namespace) -> int:
    return _run([DEFAULT_PRESET], args.out, args)


def cmd_cascade(args: argparse.Namespace) -> int:
    refs = [args.scenario] + ([args.compare] if args.compare else [])
    return _run(refs, args.out, args)


def cmd_ensemble(args: argparse.Namespace) -> int:
    from gaemi.clients.sim.ensemble import describe, run_ensemble, write_ensemble

    try:
        first = load_scenario(args.scenario, seed=args.seed)
        seeds = [first.seed + i for i in range(args.seeds)]
        pairs = [_scenarios(args.scenario, args.compare, args, s) for s in seeds]
        a = [x for x, _ in pairs]
        b = [y for _, y in pairs if y is not None] or None
    except (ScenarioError, FileNotFoundError) as exc:
        raise SystemExit(str(exc)) from None
    try:
        import ray  # noqa: F401
    except ImportError:
        raise SystemExit("gaemi ensemble needs Ray (pip install ray)") from None
    names = [a[0].name] + ([b[0].name] if b else [])
    out = args.out or DEFAULT_OUT / ("ensemble-" + "-vs-".join(names))
    paired = ", each with its no-impact baseline" if args.baseline else ""
    print(f"Ensemble: {' vs '.join(names)} on seeds {seeds[0]}..{seeds[-1]} "
          f"({len(a) + len(b or [])} runs{paired}) on Ray ({args.address or 'local'})")
    try:
        result = run_ensemble(a, b, address=args.address, book=args.book,
                              baseline=args.baseline, progress=not args.no_progress)
    except ConnectionError as exc:
        raise SystemExit(f"cannot reach the Ray cluster at {args.address}: {exc}") from None
    paths = write_ensemble(result, out)
    _print_ensemble(describe(result))
    print(f"\nFiles:  {paths['runs'].resolve()}, {paths['ensemble'].name}, "
          f"{paths['report'].name}")
    print(f"Time:   {result.seconds:.1f} s on {result.ray['cpus']} CPUs "
          f"({result.ray['nodes']} node{'s' if result.ray['nodes'] != 1 else ''})")
    return 0 if all(r["conservation_ok"] for r in result.rows_a + (result.rows_b or [])) else 1


def cmd_sweep(args: argparse.Namespace) -> int:
    from gaemi.clients.sim.sweep import SweepError, plan_sweep, run_sweep

    try:
        plan = plan_sweep(args.scenario, args.grid, seeds=args.seeds, first_seed=args.seed,
                          baseline=args.baseline)
    except (ScenarioError, SweepError, FileNotFoundError) as exc:
        raise SystemExit(str(exc)) from None
    try:
        import ray  # noqa: F401
    except ImportError:
        raise SystemExit("gaemi sweep needs Ray (pip install ray)") from None
    seeds = plan.seeds
    paired = ", each with its no-impact baseline" if args.baseline else ""
    print(f"Sweep: {plan.base} over {' × '.join(f'{a.key} ({len(a.values)})' for a in plan.axes)}"
          f" = {len(plan.points)} points, each on seeds {seeds[0]}..{seeds[-1]} "
          f"({len(plan.points) * len(seeds)} runs{paired}) on Ray ({args.address or 'local'})")
    try:
        result = run_sweep(plan, args.out, address=args.address, book=args.book,
                           progress=not args.no_progress)
    except SweepError as exc:
        raise SystemExit(str(exc)) from None
    except ConnectionError as exc:
        raise SystemExit(f"cannot reach the Ray cluster at {args.address}: {exc}") from None
    _print_sweep(result.description)
    paths = result.paths
    print(f"\nFiles:  {paths['runs'].resolve()}, {paths['sweep'].name}, "
          f"{paths['report'].name}, {paths['plan'].name}")
    if result.ray is not None:
        print(f"Time:   {result.seconds:.1f} s for {result.ran} runs on {result.ray['cpus']} "
              f"CPUs ({result.ray['nodes']} node{'s' if result.ray['nodes'] != 1 else ''})")
    if not result.description["conservation_ok"]:
        print("WARNING: a run failed its conservation check (runs.csv, conservation_ok)",
              file=sys.stderr)
        return 1
    return 0


def _print_sweep(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    from gaemi.clients.sim.cascade.ensemble_report import number_text

    shown = ("liquidated_notional_usd", "liquidated_accounts", "mark_drawdown_pct")

    def cell(stat: dict[str, Any]) -> str:
        if not stat["n"]:
            return "–"
        return (f"{number_text(stat['mean'])} [{number_text(stat['ci_low'])}, "
                f"{number_text(stat['ci_high'])}]")

    table = Table(title=f"{summary['runs']} runs: mean [95% bootstrap interval] over the "
                        "seeds", title_justify="left")
    table.add_column("point")
    for g in summary["grid"]:
        table.add_column(g["key"], justify="right")
    for name in shown:
        table.add_column(name, justify="right")
    for p in summary["points"]:
        table.add_row(p["point"], *(str(p["values"][g["key"]]) for g in summary["grid"]),
                      *(cell(p["metrics"][name]) for name in shown))
    Console(width=max(Console().width, 120)).print(table)


def _print_ensemble(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    def num(x: float) -> str:
        for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e4, "k")):
            if abs(x) >= scale:
                return f"{x / scale:.3g}{suffix}" if suffix != "k" else f"{x / 1e3:.1f}k"
        return f"{x:.4g}"

    def cell(stat: dict[str, Any] | None) -> str:
        if not stat or stat["n"] == 0:
            return "–"
        return f"{num(stat['mean'])} [{num(stat['ci_low'])}, {num(stat['ci_high'])}]"

    table = Table(title=f"{summary['runs']} runs, seeds {summary['seeds'][0]}.."
                        f"{summary['seeds'][-1]}: mean [95% bootstrap interval]",
                  title_justify="left")
    table.add_column("metric")
    table.add_column(f"A: {summary['a']}", justify="right")
    if summary["b"] is not None:
        table.add_column(f"B: {summary['b']}", justify="right")
        table.add_column("B − A (paired)", justify="right")
    for name, stat in summary["metrics_a"].items():
        cells = [cell(stat)]
        if summary["b"] is not None:
            cells += [cell(summary["metrics_b"][name]), cell(summary["paired_differences"][name])]
        table.add_row(name, *cells)
    Console(width=max(Console().width, 120)).print(table)


def _run(refs: list[str], out: Path | None, args: argparse.Namespace) -> int:
    from gaemi.clients.sim.cascade.metrics import summarize
    from gaemi.clients.sim.cascade.report import print_summary, write_outputs
    from gaemi.clients.sim.scenario.driver import run

    started = time.perf_counter()
    try:
        if hasattr(args, "regime"):  # cascade (demo runs the default as it is)
            x, y = _scenarios(refs[0], refs[1] if len(refs) > 1 else None, args, args.seed)
            scenarios = [x] + ([y] if y is not None else [])
        else:
            scenarios = [load_scenario(ref, seed=args.seed) for ref in refs]
    except (ScenarioError, FileNotFoundError) as exc:
        raise SystemExit(str(exc)) from None
    if len(scenarios) == 2 and scenarios[0].seed != scenarios[1].seed:
        print(f"note: the two scenarios have different seeds ({scenarios[0].seed}, "
              f"{scenarios[1].seed}); pass --seed to run both on the same flow",
              file=sys.stderr)
    if out is None:
        out = DEFAULT_OUT / "-vs-".join(s.name for s in scenarios)
    records = []
    run_seconds = 0.0
    # the paired baselines run in a second process while this one runs the scenarios
    pool = None if args.no_baseline else _baseline_pool()
    try:
        baselines = [] if pool is None else [
            pool.apply_async(run_baseline, (scenario, args.book)) for scenario in scenarios]
        for scenario in scenarios:
            _describe(scenario)
            t0 = time.perf_counter()
            try:
                records.append(run(scenario, book=args.book, progress=not args.no_progress))
            except ValueError as exc:  # a scenario the data or the market cannot support
                raise SystemExit(f"{scenario.name}: {exc}") from None
            run_seconds += time.perf_counter() - t0
        if baselines:
            print("Waiting for the paired no-impact baselines ...", flush=True)
            for record, pending in zip(records, baselines, strict=True):
                record.baseline = pending.get()
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    t0 = time.perf_counter()
    paths = write_outputs(records[0], out, compare=records[1] if len(records) > 1 else None)
    summaries = [summarize(r) for r in records]
    report_seconds = time.perf_counter() - t0
    print_summary(summaries[0], compare=summaries[1] if len(summaries) > 1 else None)
    for record in records:
        if not record.conservation_ok:
            problems = record.config.get("run_facts", {}).get("problems", [])
            print(f"WARNING: {record.scenario}: conservation check failed: {problems[:3]}",
                  file=sys.stderr)
    report = Path(paths["report"]).resolve()
    print(f"\nReport: {report}")
    print(f"Files:  {report.parent}{os.sep} (summary.json, liquidations.csv, PNG charts"
          f"{', comparison.json, compare/' if len(records) > 1 else ''})")
    print(f"Time:   {time.perf_counter() - started:.1f} s (simulation {run_seconds:.1f} s, "
          f"report {report_seconds:.1f} s) on {_machine()}")
    baseline_ok = all(r.baseline is None or r.baseline["conservation_ok"] for r in records)
    if not baseline_ok:
        print("WARNING: a paired baseline failed its conservation check", file=sys.stderr)
    return 0 if baseline_ok and all(r.conservation_ok for r in records) else 1


def _baseline_pool() -> Any:
    """One worker process that ignores Ctrl-C from its first instruction (the terminal sends
    it to the whole group; this process handles it and stops the worker): SIGINT is ignored
    here while the worker starts, and an ignored signal stays ignored in the new process."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return get_context("spawn").Pool(1, initializer=quiet_worker)
    finally:
        signal.signal(signal.SIGINT, previous)


def _describe(scenario: Scenario) -> None:
    p = scenario.path
    days = p.first_day if p.first_day == p.last_day else f"{p.first_day} to {p.last_day}"
    print(f"Scenario {scenario.name} (seed {scenario.seed}): {scenario.market.symbol}, "
          f"{days}, {scenario.ants.count:,} ants + {scenario.inverse.count:,} inverse")
    if scenario.description:
        print(f"  {scenario.description}")


def _machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gaemi")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    return guarded(lambda: parser.parse_args(argv))
