"""The direction of dependencies (docs/design.md §1), checked by reading the imports of every
module, function-level imports included.

* ``engine`` imports nothing from the other packages, no asyncio, no clock and no random
  source; ``risk`` reads no clock and no random source; the wire (``gateway/wire``) does no I/O
  and knows nothing of the venue.
* ``clients`` is cut by role, each subpackage with the arrows it may draw (``CLIENT_ARROWS``):
  the wire client, its book, bots and index feed (``live``) never import the venue.
* The venue's parts depend in one direction, and nothing in the project imports in a circle.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("engine", "risk", "gateway", "clients")
_CLOCK_AND_CHANCE = {"time", "datetime", "random", "uuid", "secrets", "socket", "threading",
                     "asyncio", "websockets"}
FORBIDDEN = {
    "engine": {"gaemi.risk", "gaemi.gateway", "gaemi.clients", "msgpack"} | _CLOCK_AND_CHANCE,
    # the venue never reads a clock or a random source: time and prices arrive in commands
    "risk": {"gaemi.gateway", "gaemi.clients"} | _CLOCK_AND_CHANCE,
    "gateway": {"gaemi.clients"},
    # the wire is bytes in, messages out: no I/O, no clock, no venue
    "gateway/wire": {"gaemi.risk", "gaemi.clients", "gaemi.gateway.exchange",
                     "gaemi.gateway.server"} | _CLOCK_AND_CHANCE,
}
# the project's modules a subpackage of clients/ may import (besides itself and the standard
# library and third-party packages)
CLIENT_ARROWS = {
    "clients/live": {"gaemi.engine.codes", "gaemi.gateway.wire", "gaemi.clients.marketdata"},
    "clients/marketdata": set(),
    # the derived tables (targets.py reads files and imports nothing of ours) and, on top of
    # the simulator, the calibration that runs it (calibrate.py, card_report.py)
    "clients/calibration": {"gaemi.clients.sim"},
    "clients/replay": {"gaemi.engine", "gaemi.risk", "gaemi.gateway.commands",
                       "gaemi.gateway.wire", "gaemi.clients.live"},
    "clients/sim": {"gaemi.engine", "gaemi.risk", "gaemi.gateway", "gaemi.clients.marketdata",
                    "gaemi.clients.live"},
    "clients/cli": {"gaemi"},  # on top: everything
}


def _imports_of(path: Path) -> set[str]:
    """Every module named in an import of the file (``from a import b`` also names ``a.b``,
    which is the module when ``b`` is one)."""
    text = path.read_text()
    if path.suffix == ".py":
        names: set[str] = set()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
        return names
    # .pyx/.pxd: Cython syntax; its import lines are plain enough to read by pattern
    pattern = r"^\s*(?:from\s+([\w.]+)\s+c?import|c?import\s+([\w.]+))"
    return {a or b for a, b in re.findall(pattern, text, flags=re.MULTILINE)}


def _modules(package: str) -> list[Path]:
    return sorted(p for ext in ("*.py", "*.pyx", "*.pxd") for p in (ROOT / package).rglob(ext))


def _under(name: str, prefixes: set[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layering_package_imports_nothing_forbidden(package: str) -> None:
    # Arrange
    modules = _modules(package)
    assert modules, f"no modules found in {package}"

    # Act
    offences = [f"{path.relative_to(ROOT)} imports {name}" for path in modules
                for name in _imports_of(path) if _under(name, FORBIDDEN[package])]

    # Assert
    assert offences == []


@pytest.mark.parametrize("package", sorted(CLIENT_ARROWS))
def test_layering_clients_draw_only_their_arrows(package: str) -> None:
    # Arrange
    modules = _modules(package)
    assert modules, f"no modules found in {package}"
    own = "gaemi." + package.replace("/", ".")
    allowed = CLIENT_ARROWS[package] | {own}

    # Act
    offences = [f"{path.relative_to(ROOT)} imports {name}" for path in modules
                for name in _imports_of(path)
                if name.startswith("gaemi.") and not _under(name, allowed)]

    # Assert
    assert offences == []


def test_every_client_module_is_in_a_subpackage_with_its_arrows() -> None:
    loose = [p.name for p in (ROOT / "clients").glob("*.py") if p.name != "__init__.py"]
    packages = {f"clients/{p.name}" for p in (ROOT / "clients").iterdir()
                if (p / "__init__.py").exists()}
    assert loose == [] and packages == set(CLIENT_ARROWS)


def test_layering_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    # the checker itself must be able to fail
    bad = tmp_path / "bad.py"
    bad.write_text("import time\nfrom gaemi.risk.venue import Venue\n")
    pyx = tmp_path / "bad.pyx"
    pyx.write_text("cimport cython\nfrom random import random\n")
    assert _imports_of(bad) == {"time", "gaemi.risk.venue", "gaemi.risk.venue.Venue"}
    assert _imports_of(pyx) == {"cython", "random"}
    assert _under("gaemi.risk.venue", {"gaemi.risk"})
    assert not _under("gaemi.riskier", {"gaemi.risk"})


# -- no circles ---------------------------------------------------------------------------------

def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return "gaemi." + ".".join(parts)


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        targets = set()
        for imported in _imports_of(path):
            if imported in files and imported != name and not name.startswith(imported + "."):
                targets.add(imported)  # a package's own parts may import its __init__'s names
        graph[name] = targets
    return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_nothing_in_the_project_imports_in_a_circle() -> None:
    assert _circles(_graph()) == []


def test_the_circle_finder_finds_a_circle() -> None:
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


# -- the venue's parts: one direction ---------------------------------------------------------

# a part may import only the parts before it (risk/venue/core.py draws the same picture)
VENUE_PARTS = ["arith", "state", "margin", "index", "settlement", "orders", "upkeep", "pricing",
               "liquidation", "stabilise", "handlers", "views", "persist", "core"]


def test_layering_the_venue_parts_depend_in_one_direction() -> None:
    # Arrange
    files = {p.stem: p for p in (ROOT / "risk" / "venue").glob("*.py") if p.stem != "__init__"}
    assert sorted(files) == sorted(VENUE_PARTS), "a part is missing from VENUE_PARTS"

    # Act
    offences = [f"{part} imports {other}" for part, path in files.items()
                for name in _imports_of(path) if name.startswith("gaemi.risk.venue.")
                if (other := name.split(".")[3]) in VENUE_PARTS
                and VENUE_PARTS.index(other) >= VENUE_PARTS.index(part)]

    # Assert
    assert offences == []


def test_no_module_of_the_clearinghouse_is_a_big_room() -> None:
    # every file under risk/ is one concern a reader takes in at a sitting
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / "risk").rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 500}
    assert long == {}


def test_importing_the_codes_loads_no_compiled_book() -> None:
    # the wire and the clients need the codes only: the book is chosen on first use
    code = ("import sys, gaemi.engine.codes, gaemi.gateway.wire.codec, "
            "gaemi.gateway.wire.messages; "
            "print(sorted(m for m in sys.modules if m.startswith(('gaemi.engine._book', "
            "'gaemi.engine.reference', 'gaemi.risk'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout.strip()
    assert out == "[]"
