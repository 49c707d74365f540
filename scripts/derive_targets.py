"""Recompute the shipped calibration targets from the raw files in the shared data folder.

    python scripts/derive_targets.py [--shared PATH] [--check]

The raw files are not part of the repository: they sit in ``shared/data`` beside it
(``../shared/data`` from the repository root), and only the derived tables ship, in
clients/calibration/data/targets/ (its README gives the provenance). The computation is
gaemi.clients.calibration.targets's; this script only reads, writes and compares.

Without ``--check`` it writes both JSON tables; with ``--check`` it writes nothing and exits 1
when a shipped table differs from the recomputation. A missing folder or file, or a malformed
one, is one line on stderr (``derive_targets: error: ...``) and exit status 2.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from gaemi.clients.calibration.targets import (
    HYPERLIQUID_FILE,
    KOSPI_FILE,
    hyperliquid_from_files,
    hyperliquid_table,
    kospi_response_from_csv,
    kospi_table,
    render,
)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SHARED = ROOT / ".." / "shared" / "data"
TARGETS = ROOT / "clients" / "calibration" / "data" / "targets"

KOSPI_CSV = Path("kospi-margin-credit") / "KOSPI.csv.gz"
POSITIONS = Path("hyperliquid-2025-10-10-adl") / "positions_FINAL.csv.gz"
ADL_BY_COIN = Path("hyperliquid-2025-10-10-adl") / "adl_by_coin_REALTIME.csv"


class _Failure(Exception):
    """A one-line error for the user (exit status 2)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="derive_targets",
        description="Recompute the calibration targets (clients/calibration/data/targets) "
                    "from the raw files of the shared data folder.")
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED,
                        help="the shared data folder (default: ../shared/data beside the "
                             "repository)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 when a shipped table differs")
    return parser


def _source(shared: Path, relative: Path) -> Path:
    path = shared / relative
    if not path.is_file():
        raise _Failure(f"{path.resolve()} is not here (the shared data folder holds the raw "
                       f"files; pass --shared PATH)")
    return path


def _tables(shared: Path) -> dict[str, str]:
    """The recomputed tables' texts by file name."""
    if not shared.is_dir():
        raise _Failure(f"no shared data folder at {shared.resolve()} (pass --shared PATH)")
    kospi, positions, adl = (_source(shared, p) for p in (KOSPI_CSV, POSITIONS, ADL_BY_COIN))
    builders: list[tuple[str, Callable[[], str]]] = [
        (KOSPI_FILE, lambda: render(kospi_table(kospi_response_from_csv(kospi)))),
        (HYPERLIQUID_FILE,
         lambda: render(hyperliquid_table(hyperliquid_from_files(positions, adl)))),
    ]
    out = {}
    for name, build in builders:
        try:
            out[name] = build()
        except (OSError, ValueError, EOFError, csv.Error) as exc:
            raise _Failure(f"{name}: {exc}") from None
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        tables = _tables(args.shared)
    except _Failure as exc:
        print(f"derive_targets: error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        differ = [name for name, text in tables.items()
                  if not (TARGETS / name).is_file()
                  or (TARGETS / name).read_text(encoding="utf-8") != text]
        for name in differ:
            print(f"derive_targets: {TARGETS / name} differs from the recomputation "
                  f"(run without --check to rewrite it)", file=sys.stderr)
        if not differ:
            print(f"derive_targets: {len(tables)} tables match the recomputation")
        return 1 if differ else 0
    TARGETS.mkdir(parents=True, exist_ok=True)
    for name, text in tables.items():
        (TARGETS / name).write_text(text, encoding="utf-8")
        print(f"derive_targets: wrote {(TARGETS / name).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
