"""Parameter sweeps: one scenario over a grid of its keys, every grid point on the same seeds.

``gaemi sweep --scenario S --grid KEY=V1,V2 [--grid KEY2=...] --seeds N --out DIR`` sets each
KEY (a dotted path into the scenario's table after ``extends`` is merged: ``ants.count``,
``market.overrides.liquidation_fee_ppb``, ``market.tiers.0.mmr_pct``, a number indexing an
array element that must exist) to each of its values (TOML scalars: ``5``, ``0.5``, ``true``,
``"median3"``; text that does not parse as one is taken as text), for every combination of the
keys (the grid points ``p0``, ``p1``, ... named ``S[key=v,...]``). Every point is validated by
``parse_scenario`` before anything runs, and runs on the same seeds S0..S0+N-1 (paired: the
same flow under different parameters), one Ray task per (point, seed) calling ``run_row``.

DIR holds ``sweep-plan.json`` (the scenario, its merged table's digest, the grid, the seeds),
``runs.csv`` (one row per run, appended and flushed as each task finishes, so an interrupted
sweep keeps what finished and a rerun of the same plan runs only what is missing),
``sweep.json`` (per point and metric: the mean over the seeds and its 95% percentile-bootstrap
interval, ``ensemble.mean_interval``) and ``report.html`` (clients/sim/cascade/sweep_report.py).
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import hashlib
import itertools
import json
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gaemi.clients.sim.ensemble import (
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    LEVEL,
    METRICS,
    RunProgress,
    exact_number,
    mean_interval,
    run_row,
)
from gaemi.clients.sim.scenario.loader import (
    ScenarioError,
    parse_scenario,
    preset_names,
    scenario_data,
)
from gaemi.clients.sim.scenario.params import Scenario

__all__ = ["SCHEMA", "Axis", "Plan", "Point", "SweepError", "SweepResult", "describe_sweep",
           "parse_grid", "parse_value", "plan_sweep", "read_runs", "run_sweep", "value_text"]

SCHEMA = "gaemi-sweep/1"
PLAN_SCHEMA = "gaemi-sweep-plan/1"
RESERVED = {"seed": "the seeds are --seed and --seeds", "name": "each grid point is named "
            "after its values", "extends": "a sweep varies keys of one scenario"}


class SweepError(ValueError):
    """A sweep that cannot run as asked: one line naming the key or the file."""


# -- the grid -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Axis:
    key: str  # a dotted path into the merged scenario table
    values: tuple[Any, ...]  # TOML scalars: int, float, bool, str


def parse_value(text: str) -> Any:
    """A TOML scalar (``5``, ``0.5``, ``true``, ``"x"``); anything else, dates included, is
    the text itself."""
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text
    return value if type(value) in (int, float, bool, str) else text


def value_text(value: Any) -> str:
    """A grid value as written in runs.csv and in point names (TOML's spelling of booleans)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_grid(text: str) -> Axis:
    """``KEY=V1,V2,...`` (values split at commas, so a value cannot hold one)."""
    key, sep, values = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise SweepError(f"--grid {text}: expected KEY=V1,V2,...")
    parts = key.split(".")
    if any(not p.strip() for p in parts):
        raise SweepError(f"--grid {key}: an empty component in the dotted key")
    if parts[0] in RESERVED:
        raise SweepError(f"--grid {key}: cannot be swept ({RESERVED[parts[0]]})")
    items = [v.strip() for v in values.split(",")]
    if not values.strip() or any(not v for v in items):
        raise SweepError(f"--grid {key}: an empty value in {values!r}")
    parsed = tuple(parse_value(v) for v in items)
    if len({(type(v), v) for v in parsed}) != len(parsed):
        raise SweepError(f"--grid {key}: a value is repeated in {values!r}")
    return Axis(key, parsed)


def _set(data: dict[str, Any], key: str, value: Any) -> None:
    """Set ``key`` (dotted; a number indexes an array) in ``data``, making missing tables."""
    node: Any = data
    parts = key.split(".")
    for i, part in enumerate(parts):
        where = ".".join(parts[:i]) or "the top level"
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit():
                raise SweepError(f"--grid {key}: {where} is an array; index it with a number")
            index = int(part)
            if index >= len(node):
                raise SweepError(f"--grid {key}: index {index} is out of range ({where} has "
                                 f"{len(node)} element{'s' if len(node) != 1 else ''})")
            if last:
                node[index] = value
            else:
                node = node[index]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
        else:
            raise SweepError(f"--grid {key}: {where} is a value, not a table or an array")


# -- the plan -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Point:
    label: str  # p0, p1, ...
    name: str  # S[key=v,...]
    values: tuple[Any, ...]  # one per axis
    template: Scenario  # validated, with the base seed

    def scenario(self, seed: int) -> Scenario:
        return dataclasses.replace(self.template, seed=seed)


@dataclass(frozen=True, slots=True)
class Plan:
    ref: str  # a preset name or the scenario file's absolute path
    base: str  # the scenario's name
    digest: str  # sha256 of the merged table: a changed file is a different sweep
    axes: tuple[Axis, ...]
    seeds: tuple[int, ...]
    baseline: bool
    points: tuple[Point, ...]

    @property
    def keys(self) -> list[str]:
        return [a.key for a in self.axes]

    @property
    def columns(self) -> list[str]:
        return ["point", *self.keys, "seed", *(n for n, _ in METRICS), "state_hash",
                "conservation_ok"]

    def to_json(self) -> dict[str, Any]:
        return {"schema": PLAN_SCHEMA, "scenario": self.ref, "scenario_sha256": self.digest,
                "grid": [{"key": a.key, "values": list(a.values)} for a in self.axes],
                "seeds": list(self.seeds), "baseline": self.baseline}


def _strip_source(message: str, source: str) -> str:
    return message.removeprefix(f"{source}: ")


def plan_sweep(ref: str, grid: Sequence[str], *, seeds: int, first_seed: int | None = None,
               baseline: bool = False) -> Plan:
    """Every grid point's scenario, validated: a bad key or value is a SweepError naming it
    (the scenario's own errors are ScenarioError)."""
    axes = [parse_grid(g) for g in grid]
    if not axes:
        raise SweepError("a sweep needs at least one --grid KEY=V1,V2,...")
    keys = [a.key for a in axes]
    for key in keys:
        if keys.count(key) > 1:
            raise SweepError(f"--grid {key}: given twice")
        clash = {"point", "state_hash", "conservation_ok", *(n for n, _ in METRICS)}
        if key in clash:
            raise SweepError(f"--grid {key}: the name of a runs.csv column")
    data, source = scenario_data(ref)
    base = parse_scenario(copy.deepcopy(data), source)
    # each key's values alone first: an error names the one key and value at fault
    for axis in axes:
        for value in axis.values:
            trial = copy.deepcopy(data)
            _set(trial, axis.key, value)
            try:
                parse_scenario(trial, source)
            except ScenarioError as exc:
                raise SweepError(f"--grid {axis.key}={value_text(value)}: "
                                 f"{_strip_source(str(exc), source)}") from None
    points = []
    for i, values in enumerate(itertools.product(*(a.values for a in axes))):
        trial = copy.deepcopy(data)
        for axis, value in zip(axes, values, strict=True):
            _set(trial, axis.key, value)
        name = base.name + "[" + ",".join(
            f"{a.key}={value_text(v)}" for a, v in zip(axes, values, strict=True)) + "]"
        trial["name"] = name
        try:
            scenario = parse_scenario(trial, source)
        except ScenarioError as exc:
            raise SweepError(f"--grid: the point {name}: "
                             f"{_strip_source(str(exc), source)}") from None
        points.append(Point(f"p{i}", name, values, scenario))
    start = base.seed if first_seed is None else first_seed
    is_file = ref.endswith(".toml") or Path(ref).is_file()
    canonical = json.dumps(data, sort_keys=True, default=str).encode()
    return Plan(str(Path(source).resolve()) if is_file or ref not in preset_names() else ref,
                base.name, hashlib.sha256(canonical).hexdigest(), tuple(axes),
                tuple(range(start, start + seeds)), baseline, tuple(points))


# -- the table in DIR -----------------------------------------------------------------------------


def _check_plan(plan: Plan, out: Path) -> None:
    """Refuse a DIR that holds another sweep (or something else's runs.csv)."""
    stored_path = out / "sweep-plan.json"
    wanted = json.loads(json.dumps(plan.to_json()))
    if stored_path.is_file():
        try:
            stored = json.loads(stored_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            raise SweepError(f"{stored_path}: not a sweep plan (not JSON)") from None
        if stored != wanted:
            differ = [name for name, key in (("scenario", "scenario"),
                                             ("scenario file", "scenario_sha256"),
                                             ("grid", "grid"), ("seeds", "seeds"),
                                             ("--baseline", "baseline"))
                      if not isinstance(stored, dict) or stored.get(key) != wanted[key]]
            raise SweepError(f"{out} holds a different sweep ({', '.join(differ) or 'plan'} "
                             "differ): use another --out, or delete it to start again")
    elif (out / "runs.csv").exists():
        raise SweepError(f"{out / 'runs.csv'} is not a sweep's (no sweep-plan.json): "
                         "use another --out")


def read_runs(plan: Plan, out: Path) -> tuple[list[dict[str, str]], bool]:
    """The finished rows of runs.csv (each (point, seed) once, a torn last line dropped) and
    whether the file must be rewritten to hold just those."""
    path = out / "runs.csv"
    if not path.exists():
        return [], True
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        lines = list(reader)
    if header is None:
        return [], True
    if header != plan.columns:
        raise SweepError(f"{path}: its columns are not this sweep's: use another --out")
    labels = {p.label: p for p in plan.points}
    seeds = set(plan.seeds)
    rows: list[dict[str, str]] = []
    seen: set[tuple[str, int]] = set()
    for line in lines:
        if len(line) != len(header) or line[-1] not in ("True", "False"):
            continue  # a row cut short by a kill
        row = dict(zip(header, line, strict=True))
        key = (row["point"], int(row["seed"]) if row["seed"].lstrip("-").isdigit() else 0)
        if row["point"] not in labels or key[1] not in seeds or key in seen:
            continue
        seen.add(key)
        rows.append(row)
    return rows, len(rows) != len(lines)


def _write_rows(path: Path, columns: list[str], rows: list[dict[str, str]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


def _csv_row(plan: Plan, point: Point, row: dict[str, Any]) -> dict[str, str]:
    out = {"point": point.label}
    out.update({a.key: value_text(v) for a, v in zip(plan.axes, point.values, strict=True)})
    out["seed"] = str(row["seed"])
    for name in plan.columns[len(plan.axes) + 2:]:
        out[name] = "" if row[name] is None else str(row[name])
    return out


# -- running --------------------------------------------------------------------------------------


@dataclass(slots=True)
class SweepResult:
    rows: list[dict[str, str]]  # every finished run, as runs.csv holds it
    done_before: int  # rows already in runs.csv when the command started
    ran: int  # runs this call made
    ray: dict[str, Any] | None  # the cluster this call ran on (None: nothing ran)
    seconds: float
    paths: dict[str, Path]
    description: dict[str, Any]


def run_sweep(plan: Plan, out_dir: str | Path, *, address: str | None = None,
              book: str = "auto", progress: bool = True,
              say: Callable[[str], None] = print) -> SweepResult:
    """Run what runs.csv in ``out_dir`` does not hold yet, then write sweep.json and
    report.html. A KeyboardInterrupt leaves every finished row in runs.csv."""
    out = Path(out_dir)
    _check_plan(plan, out)
    out.mkdir(parents=True, exist_ok=True)
    runs = out / "runs.csv"
    rows, rewrite = read_runs(plan, out)
    (out / "sweep-plan.json").write_text(json.dumps(plan.to_json(), indent=2) + "\n",
                                         encoding="utf-8")
    if rewrite:
        _write_rows(runs, plan.columns, rows)
    have = {(r["point"], int(r["seed"])) for r in rows}
    todo = [(p, s) for p in plan.points for s in plan.seeds if (p.label, s) not in have]
    total = len(plan.points) * len(plan.seeds)
    say(f"{len(rows)} of {total} runs done in {runs}, {len(todo)} to run")
    started = time.perf_counter()
    info: dict[str, Any] | None = None
    if todo:
        info = _run(plan, todo, runs, rows, address=address, book=book, progress=progress)
    seconds = time.perf_counter() - started
    previous = _previous(out / "sweep.json")
    if info is None:  # nothing ran: keep what the last run said about its cluster and time
        ray, runtime = previous.get("ray"), previous.get("runtime_s")
    else:
        ray, runtime = info, round(seconds, 1)
    description = describe_sweep(plan, rows, ray, runtime)
    summary = out / "sweep.json"
    summary.write_text(json.dumps(description, indent=2) + "\n", encoding="utf-8")
    from gaemi.clients.sim.cascade.sweep_report import write_sweep_report

    report = write_sweep_report(description, _ordered(plan, rows), out)
    return SweepResult(rows, total - len(todo), len(todo), info, seconds,
                       {"runs": runs, "sweep": summary, "report": report,
                        "plan": out / "sweep-plan.json"}, description)


def _previous(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _run(plan: Plan, todo: list[tuple[Point, int]], runs: Path, rows: list[dict[str, str]], *,
         address: str | None, book: str, progress: bool) -> dict[str, Any]:
    import ray
    from ray.exceptions import RayTaskError

    ours = not ray.is_initialized()
    if ours:
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    try:
        resources = ray.cluster_resources()
        info = {"address": address or "local", "nodes": len(ray.nodes()),
                "cpus": int(resources.get("CPU", 0)), "version": ray.__version__}
        task = ray.remote(run_row)
        pending = {task.remote(point.scenario(seed), book, plan.baseline): (point, seed)
                   for point, seed in todo}
        with RunProgress(progress, len(todo)) as advance, \
                runs.open("a", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=plan.columns)
            waiting = list(pending)
            while waiting:
                # a bounded wait: Ctrl-C is seen within a second
                done, waiting = ray.wait(waiting, num_returns=1, timeout=1.0)
                for ref in done:
                    point, seed = pending[ref]
                    try:
                        result = ray.get(ref)
                    except RayTaskError as exc:
                        cause = getattr(exc, "cause", None) or exc
                        if isinstance(cause, KeyboardInterrupt):
                            raise KeyboardInterrupt from None
                        first = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
                        raise SweepError(f"{point.name} seed {seed}: {first}") from None
                    row = _csv_row(plan, point, result)
                    writer.writerow(row)
                    f.flush()
                    rows.append(row)
                    advance()
    finally:
        if ours:
            ray.shutdown()
    return info


# -- sweep.json -----------------------------------------------------------------------------------


def _ordered(plan: Plan, rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """Rows by point, then seed: the bootstrap resamples by position, so a fixed order gives
    the same intervals whatever order the runs finished in."""
    order = {p.label: i for i, p in enumerate(plan.points)}
    return sorted(rows, key=lambda r: (order[r["point"]], int(r["seed"])))


def _values(rows: list[dict[str, str]], name: str) -> list[Any]:
    return [v for r in rows if (v := exact_number(r[name] or None)) is not None]


def describe_sweep(plan: Plan, rows: list[dict[str, str]], ray: dict[str, Any] | None,
                   runtime_s: float | None) -> dict[str, Any]:
    """sweep.json: per grid point and metric, the mean over its seeds and the 95% interval."""
    ordered = _ordered(plan, rows)
    names = [name for name, _ in METRICS]
    points = []
    for point in plan.points:
        mine = [r for r in ordered if r["point"] == point.label]
        points.append({
            "point": point.label, "name": point.name,
            "values": {a.key: v for a, v in zip(plan.axes, point.values, strict=True)},
            "runs": len(mine), "conservation_ok": all(r["conservation_ok"] == "True"
                                                      for r in mine),
            "metrics": {name: mean_interval(_values(mine, name)) for name in names},
        })
    return {
        "schema": SCHEMA,
        "scenario": {"ref": plan.ref, "name": plan.base, "sha256": plan.digest},
        "grid": [{"key": a.key, "values": list(a.values)} for a in plan.axes],
        "seeds": list(plan.seeds),
        "baseline": plan.baseline,
        "executor": "ray",
        "ray": ray,
        "runtime_s": runtime_s,
        "runs": len(rows),
        "bootstrap": {"level": float(LEVEL), "method": "percentile, of the mean",
                      "resamples": BOOTSTRAP_RESAMPLES, "rng_seed": BOOTSTRAP_SEED},
        "conservation_ok": all(r["conservation_ok"] == "True" for r in rows),
        "points": points,
    }
