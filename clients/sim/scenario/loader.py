"""Scenario files: TOML (stdlib ``tomllib``), validated strictly, with presets and ``extends``.

A scenario file sets any of the parameters of clients/sim/scenario/params.py; what it leaves out
keeps its default (the defaults are the default scenario). Every key is checked: an unknown
key, a value of the wrong type or out of range is a ``ScenarioError`` that names the key and
the file, never silently ignored::

    name = "my-run"
    extends = "ants-skhynix"        # optional: a preset name or a path (relative to this file)
    seed = 7
    [market]
    symbol = "SKHYNIX-PERP"
    [market.overrides]              # MarketSpec fields, the spec's integer units
    daily_limit_ppb = 300_000_000
    [[market.tiers]]                # replaces the preset's tiers (here: one, unbounded)
    max_leverage = 10
    mmr_pct = 10
    [ants]
    count = 1000
    leverage = { 2 = 0.5, 3 = 0.3, 20 = 0.2 }
    [[shocks]]
    kind = "crash"
    day = "2026-07-28"
    at = "13:00"
    pct = -10
    duration_s = 300

``extends`` merges this file's tables over the base's, key by key; an array (``shocks``,
``market.tiers``, ``etf.products``) replaces the base's array as a whole. Presets are the
``*.toml`` files in clients/sim/scenario/presets/ (``preset_names()``).
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from importlib import resources
from pathlib import Path
from typing import Any

from gaemi.clients.sim.scenario.market import scenario_spec
from gaemi.clients.sim.scenario.params import (
    CohortParams,
    EtfParams,
    EtfProductParams,
    MarketParams,
    Scenario,
    ShockParams,
    TierParams,
)
from gaemi.risk.markets import PRESETS, MarketSpec

__all__ = ["ScenarioError", "load_scenario", "parse_scenario", "preset_names", "preset_path",
           "scenario_data"]

_MAX_EXTENDS = 8
# MarketSpec fields a scenario may not override: they name the market or have their own key
_SPEC_FIXED = {"symbol", "underlying", "tiers", "session", "cums"}


class ScenarioError(ValueError):
    """A scenario file that cannot be run: the message names the key and the file."""


def _presets_dir() -> Any:
    return resources.files("gaemi.clients.sim.scenario") / "presets"


def preset_names() -> list[str]:
    return sorted(p.name.removesuffix(".toml") for p in _presets_dir().iterdir()
                  if p.name.endswith(".toml"))


def preset_path(name: str) -> Path:
    source = _presets_dir() / f"{name}.toml"
    if not source.is_file():
        raise ScenarioError(f"no preset {name!r} (presets: {', '.join(preset_names())})")
    return Path(str(source))


def load_scenario(ref: str | Path, *, seed: int | None = None) -> Scenario:
    """A scenario from a preset name or a TOML file path; ``seed`` replaces the file's."""
    path = _resolve(str(ref), None)
    data = _read_with_bases(path, 0)
    if seed is not None:
        data["seed"] = seed
    return parse_scenario(data, str(path))


def scenario_data(ref: str | Path) -> tuple[dict[str, Any], str]:
    """A scenario's merged table (``extends`` resolved, not yet validated) and its source
    (the file's path): what ``parse_scenario`` takes, for callers that change keys first."""
    path = _resolve(str(ref), None)
    return _read_with_bases(path, 0), str(path)


def _resolve(ref: str, relative_to: Path | None) -> Path:
    candidate = Path(ref)
    if relative_to is not None and not candidate.is_absolute():
        candidate = relative_to.parent / candidate
    if ref.endswith(".toml") or candidate.is_file():
        if not candidate.is_file():
            raise ScenarioError(f"no scenario file {candidate}")
        return candidate
    return preset_path(ref)


def _read_with_bases(path: Path, depth: int) -> dict[str, Any]:
    if depth > _MAX_EXTENDS:
        raise ScenarioError(f"{path}: 'extends' nests more than {_MAX_EXTENDS} deep (a cycle?)")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from None
    base_ref = data.pop("extends", None)
    if base_ref is None:
        return data
    if not isinstance(base_ref, str):
        raise ScenarioError(f"{path}: extends: a preset name or a file path (text)")
    base = _read_with_bases(_resolve(base_ref, path), depth + 1)
    return _merge(base, data)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_scenario(data: dict[str, Any], source: str = "<scenario>") -> Scenario:
    """A validated Scenario from parsed TOML (``extends`` already resolved)."""
    try:
        scenario: Scenario = _build(Scenario, Scenario(), data, "")
        scenario_spec(scenario)  # the market must be a valid MarketSpec too
    except (ScenarioError, ValueError) as exc:
        raise ScenarioError(f"{source}: {exc}") from None
    return scenario


def _build(cls: type, default: Any, data: Any, where: str) -> Any:
    """``default`` (an instance, or a dict of field values) with the keys of the table
    ``data`` replaced, every key checked."""
    if not isinstance(data, dict):
        raise ScenarioError(f"{where or 'the file'}: expected a table")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ScenarioError(f"unknown key {_key(where, unknown[0])!r} "
                            f"(known in {where or 'the top level'}: {', '.join(names)})")
    values = dict(default) if isinstance(default, dict) else \
        {name: getattr(default, name) for name in names}
    for name, value in data.items():
        values[name] = _value(cls, name, hints[name], values[name], value, _key(where, name))
    try:
        return cls(**values)
    except ValueError as exc:
        raise ScenarioError(f"{where or 'scenario'}: {exc}") from None


def _key(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _value(cls: type, name: str, hint: Any, current: Any, value: Any, key: str) -> Any:
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _build(hint, current, value, key)
    if cls is MarketParams and name == "tiers":
        return _tiers(value, key)
    if cls is MarketParams and name == "overrides":
        return _overrides(value, key)
    if cls is Scenario and name == "shocks":
        if not isinstance(value, list):
            raise ScenarioError(f"{key}: an array of tables ([[shocks]])")
        defaults = {f.name: f.default for f in dataclasses.fields(ShockParams)}
        return tuple(_build(ShockParams, defaults, _shock(v, f"{key}[{i}]"), f"{key}[{i}]")
                     for i, v in enumerate(value))
    if cls is EtfParams and name == "products":
        if not isinstance(value, list):
            raise ScenarioError(f"{key}: an array of tables ([[etf.products]])")
        defaults = {f.name: f.default for f in dataclasses.fields(EtfProductParams)}
        return tuple(_build(EtfProductParams, defaults, _product(v, f"{key}[{i}]"),
                            f"{key}[{i}]") for i, v in enumerate(value))
    if cls is CohortParams and name == "leverage":
        return _leverage(value, key)
    return _scalar(hint, value, key)


def _product(value: Any, key: str) -> Any:
    # a product names what it is, how it is levered, its size and where it trades
    if isinstance(value, dict):
        for required in ("name", "leverage", "aum_ratio", "zone", "close"):
            if required not in value:
                raise ScenarioError(f"{key}: every product needs {required!r}")
    return value


def _shock(value: Any, key: str) -> Any:
    # a shock must name its kind and day: they have no meaningful default
    if isinstance(value, dict):
        for required in ("kind", "day"):
            if required not in value:
                raise ScenarioError(f"{key}: every shock needs {required!r}")
    return value


def _scalar(hint: Any, value: Any, key: str) -> Any:
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if type(value) in allowed:  # exact types: true is not an integer here
        return value
    if type(value) is int and float in allowed:
        return float(value)
    raise ScenarioError(f"{key}: expected {_type_names(allowed)}, got {value!r}")


def _type_names(kinds: tuple[Any, ...]) -> str:
    names = {int: "an integer", float: "a number", str: "text", bool: "true or false",
             type(None): "nothing"}
    return " or ".join(names.get(k, str(k)) for k in kinds)


def _leverage(value: Any, key: str) -> tuple[tuple[int, float], ...]:
    if not isinstance(value, dict) or not value:
        raise ScenarioError(f"{key}: a table of leverage = weight, e.g. {{ 2 = 0.5, 3 = 0.5 }}")
    out = []
    for lev, weight in value.items():
        if not lev.isdigit():
            raise ScenarioError(f"{key}: {lev!r} is not a whole leverage")
        out.append((int(lev), _scalar(float, weight, f"{key}.{lev}")))
    return tuple(sorted(out))


def _tiers(value: Any, key: str) -> tuple[TierParams, ...]:
    if not isinstance(value, list) or not value:
        raise ScenarioError(f"{key}: a non-empty array of tables ([[market.tiers]])")
    tiers = tuple(_build(TierParams, TierParams(), t, f"{key}[{i}]") for i, t in enumerate(value))
    if tiers[-1].max_notional_usd is not None or any(
            t.max_notional_usd is None for t in tiers[:-1]):
        raise ScenarioError(f"{key}: only the last tier leaves out max_notional_usd")
    return tiers


def _overrides(value: Any, key: str) -> tuple[tuple[str, Any], ...]:
    if not isinstance(value, dict):
        raise ScenarioError(f"{key}: a table of MarketSpec fields")
    spec_fields = {f.name: f for f in dataclasses.fields(MarketSpec) if f.name not in _SPEC_FIXED}
    sample = next(iter(PRESETS.values()))
    out = []
    for name, v in sorted(value.items()):
        if name not in spec_fields:
            raise ScenarioError(f"unknown key {key}.{name!r} (MarketSpec fields: "
                                f"{', '.join(sorted(spec_fields))})")
        # TOML has no null: an optional field (daily_limit_ppb) is set with an integer
        like = getattr(sample, name)
        kinds: tuple[type, ...] = (int,) if like is None else (type(like),)
        if type(v) not in kinds:
            raise ScenarioError(f"{key}.{name}: expected {_type_names(kinds)}, got {v!r}")
        out.append((name, v))
    return tuple(out)
