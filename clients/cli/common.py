"""What every ``gaemi`` subcommand shares: one line for a user's error, the parser that says
it that way, and the check of a websocket URL.

A user's mistake never ends in a traceback: a subcommand reports one by raising
``SystemExit`` with a one-line message, which ``guarded`` prints as ``gaemi: error: ...`` on
stderr with exit status 2 (argparse's own errors look the same); a file or network error
(``OSError``) is reported the same way, and Ctrl-C exits with 130.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import NoReturn

__all__ = ["Parser", "check_url", "guarded"]


def check_url(url: str) -> str:
    """A websocket URL, or SystemExit with what is wrong with it."""
    if not url.startswith(("ws://", "wss://")):
        raise SystemExit(f"--url {url}: a websocket URL (ws://HOST:PORT, as gaemi serve "
                         "prints it)")
    return url


class Parser(argparse.ArgumentParser):
    """argparse, with its errors as the one line every other user error gets."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"gaemi: error: {message} (see {self.prog} --help)\n")


def guarded(parse: Callable[[], argparse.Namespace]) -> int:
    """Parse and run a command: a user error becomes one line and status 2, Ctrl-C 130."""
    try:
        args = parse()
        return int(args.func(args))
    except SystemExit as exc:
        if isinstance(exc.code, str):  # a user error, said in one line
            return _error(exc.code)
        raise
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except OSError as exc:  # a file or the network: the user's environment, not a defect
        where = f"{exc.filename}: " if exc.filename else ""
        return _error(f"{where}{exc.strerror or exc}")


def _error(message: str) -> int:
    print(f"gaemi: error: {message}", file=sys.stderr, flush=True)
    return 2
