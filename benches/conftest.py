"""Benchmark plumbing: collect ``bench_*.py``, the two implementations, a cmds/s summary.

``make bench`` runs ``pytest benches --benchmark-only --benchmark-disable-gc``; ``make
bench-smoke`` runs every benchmark once, untimed (``--benchmark-disable``), and still checks
its results. BENCHMARKS.md has the declared workloads and the figures of a full run.

pytest only collects ``test_*.py`` by default and the project's pytest configuration
(pyproject.toml, ``testpaths = ["tests"]``) is left as it is, so this conftest collects the
``bench_*.py`` files of this directory itself. A ``benches/pytest.ini`` would also work, but
it would become the run's configuration file and drop the project's settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gaemi.engine import book_class
from tests.conftest import implementations


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    # a file named on the command line is already collected by pytest's python plugin
    if (file_path.suffix == ".py" and file_path.name.startswith("bench_")
            and not parent.session.isinitpath(file_path)):
        ihook = parent.session.gethookproxy(file_path)
        module: pytest.Collector | None = ihook.pytest_pycollect_makemodule(
            module_path=file_path, parent=parent)
        return module
    return None


@pytest.fixture(params=implementations())
def impl(request: pytest.FixtureRequest) -> str:
    """The name of the implementation under benchmark."""
    return str(request.param)


@pytest.fixture
def make_book(impl: str) -> type:
    """The OrderBook class of the implementation under benchmark."""
    return book_class(impl)


# group -> implementation -> (commands, median seconds, min seconds), filled by `throughput`
_RESULTS: dict[str, dict[str, tuple[int, float, float]]] = {}


@pytest.fixture
def throughput(benchmark: Any, impl: str) -> Any:
    """``record(group, commands)``: store the command count of one timed unit (and its
    commands per second, when timed) in ``extra_info`` and in the end-of-run summary."""

    def record(group: str, commands: int) -> None:
        benchmark.extra_info["commands"] = commands
        stats = getattr(benchmark, "stats", None)
        if stats is None:  # --benchmark-disable: ran once, untimed
            return
        median, best = stats.stats.median, stats.stats.min
        benchmark.extra_info["commands_per_s_median"] = round(commands / median)
        benchmark.extra_info["commands_per_s_best"] = round(commands / best)
        _RESULTS.setdefault(group, {})[impl] = (commands, median, best)

    return record


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _RESULTS:
        return
    write = terminalreporter.write_line
    terminalreporter.section("throughput (commands per second)")
    write(f"{'group':<22} {'implementation':<10} {'commands':>9} {'median s':>10} "
          f"{'cmds/s (median)':>16} {'cmds/s (best)':>14}")
    for group in sorted(_RESULTS):
        rows = _RESULTS[group]
        for name in ("reference", "compiled"):
            if name in rows:
                n, median, best = rows[name]
                write(f"{group:<22} {name:<10} {n:>9,} {median:>10.4f} "
                      f"{n / median:>16,.0f} {n / best:>14,.0f}")
        if "reference" in rows and "compiled" in rows:
            ratio = rows["reference"][1] / rows["compiled"][1]
            write(f"{group:<22} {'compiled/reference':<32} {ratio:>27.1f}x (median)")
