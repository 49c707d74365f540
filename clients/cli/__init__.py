"""The ``gaemi`` command line, on top of everything else: one module per family of
subcommands (``replay``: replay, flow; ``serve``; ``sim``: demo, cascade, ensemble; ``bots``:
bot), and ``common``: the one-line user errors every subcommand shares.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from gaemi.clients.cli import bots, replay, serve, sim
from gaemi.clients.cli.common import Parser, guarded

__all__ = ["build_parser", "main"]


def _version() -> str:
    try:
        return version("gaemi")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="gaemi", description="Gaemi: a perpetual-futures exchange you can run "
                    "on a laptop, and the liquidation cascades of leveraged retail demand.")
    parser.add_argument("--version", action="version", version=f"gaemi {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    replay.add_parsers(sub)
    serve.add_parser(sub)
    sim.add_parsers(sub)
    bots.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gaemi`` console script."""
    return guarded(lambda: build_parser().parse_args(argv))
