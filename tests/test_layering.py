"""The direction of dependencies (docs/design.md §1), checked by reading the imports of every module.

``engine`` imports nothing from the other packages, no asyncio, no clock and no random source.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[1]
_CLOCK_AND_CHANCE = {"time", "datetime", "random", "uuid", "secrets", "socket", "threading",
                     "asyncio", "websockets"}
FORBIDDEN = {
    "engine": {"risk", "gateway", "clients", "msgpack"} | _CLOCK_AND_CHANCE,
    # the venue never reads a clock or a random source: time and prices arrive in commands
    "risk": {"gateway", "clients"} | _CLOCK_AND_CHANCE,
    "gateway": {"clients"},
    # the wire is sans-I/O: codecs, messages and session rules, time passed in as an argument
    "gateway/wire": {"clients"} | _CLOCK_AND_CHANCE,
}


def _imports_of(path: Path) -> set[str]:
    text = path.read_text()
    if path.suffix == ".py":
        names: set[str] = set()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        return names
    # .pyx/.pxd: Cython syntax; its import lines are plain enough to read by pattern
    pattern = r"^\s*(?:from\s+([\w.]+)\s+c?import|c?import\s+([\w.]+))"
    return {a or b for a, b in re.findall(pattern, text, flags=re.MULTILINE)}


def _modules(package: str) -> list[Path]:
    return sorted(p for ext in ("*.py", "*.pyx", "*.pxd") for p in (ROOT / package).rglob(ext))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layering_package_imports_nothing_forbidden(package: str) -> None:
    # Arrange
    modules = _modules(package)
    assert modules, f"no modules found in {package}"

    # Act
    offences = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in modules
        for name in _imports_of(path)
        if name.removeprefix("gaemi.").split(".")[0] in FORBIDDEN[package]
    ]

    # Assert
    assert offences == []


def test_layering_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    # the checker itself must be able to fail
    bad = tmp_path / "bad.py"
    bad.write_text("import time\nfrom risk.venue import Venue\n")
    pyx = tmp_path / "bad.pyx"
    pyx.write_text("cimport cython\nfrom random import random\n")
    assert _imports_of(bad) == {"time", "risk.venue"}
    assert _imports_of(pyx) == {"cython", "random"}


# -- the venue's parts: one direction, no cycles ------------------------------------------------

# a part may import only the parts before it (risk/venue/core.py draws the same picture)
VENUE_PARTS = ["arith", "state", "margin", "index", "settlement", "orders", "upkeep", "pricing",
               "liquidation", "stabilise", "handlers", "views", "persist", "core"]


def _venue_imports(path: Path) -> set[str]:
    parts = set()
    for name in _imports_of(path):
        if name.startswith("gaemi.risk.venue."):
            parts.add(name.split(".")[3])
        elif name == "gaemi.risk.venue":  # "from gaemi.risk.venue import orders, views"
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.module == "gaemi.risk.venue":
                    parts.update(alias.name for alias in node.names
                                 if alias.name in VENUE_PARTS)
    return parts


def test_layering_the_venue_parts_depend_in_one_direction() -> None:
    # Arrange
    files = {p.stem: p for p in (ROOT / "risk" / "venue").glob("*.py") if p.stem != "__init__"}
    assert sorted(files) == sorted(VENUE_PARTS), "a part is missing from VENUE_PARTS"

    # Act
    offences = [f"{part} imports {other}" for part, path in files.items()
                for other in _venue_imports(path)
                if VENUE_PARTS.index(other) >= VENUE_PARTS.index(part)]

    # Assert
    assert offences == []


def test_no_module_of_the_clearinghouse_is_a_big_room() -> None:
    # every file under risk/ is one concern a reader takes in at a sitting
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / "risk").rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 500}
    assert long == {}
