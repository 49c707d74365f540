"""``gaemi serve``: the websocket exchange with sane defaults and no arguments needed.

Defaults: loopback, port 8765, the four preset markets, the journal
``gaemi-data/journal.gaemij`` (recovered when it exists), and 8 funded dev accounts whose keys
go to ``gaemi-data/dev-keys.json`` (kept across restarts). SIGINT or SIGTERM shuts down
cleanly (docs/protocol.md §7).

A user's mistake (a port out of range or in use, a missing or malformed key file) raises
``SystemExit`` with a one-line message (``gaemi`` prints it as ``gaemi: error: ...``); the
address is bound before anything is written, so a server that cannot start leaves nothing
behind.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from gaemi.gateway.server import (
    DEFAULT_PORT,
    SEND_BUFFER,
    SNAPSHOT_EVERY,
    Server,
    dev_keys,
    load_keys,
    save_keys,
)
from gaemi.gateway.sessions import Limits
from gaemi.gateway.wire.auth import ApiKey
from gaemi.risk.journal import JournalCorrupt

__all__ = ["add_parser", "raise_file_limit", "serve"]

log = logging.getLogger(__name__)

DATA_DIR = Path("gaemi-data")


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port (0-65535)")
    return port


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value}: a positive integer")
    return value


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        "serve", help="run the exchange on a websocket (JSON or msgpack)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=_port, default=DEFAULT_PORT, help="0: any free port")
    p.add_argument("--binance-port", type=_port, default=None,
                   help="also serve the Binance USDⓈ-M REST facade on this port "
                        "(docs/binance-api.md; 0: any free port)")
    p.add_argument("--journal", default=str(DATA_DIR / "journal.gaemij"),
                   help="command journal; recovered when it exists ('none': no journal)")
    p.add_argument("--keys", help="API key file (docs/protocol.md §3); default: dev keys")
    p.add_argument("--dev-accounts", type=int, default=None,
                   help="create N funded dev accounts and write their keys (default 8 when "
                        "no --keys is given)")
    p.add_argument("--dev-keys-file", default=str(DATA_DIR / "dev-keys.json"),
                   help="where the dev keys are written (and read back on restart)")
    p.add_argument("--book", choices=("auto", "compiled", "reference"), default="auto")
    p.add_argument("--durability", choices=("fsync", "flush"), default="fsync")
    d = Limits()
    p.add_argument("--requests-per-second", type=_positive, default=d.requests_per_second,
                   help="per connection (docs/protocol.md §7)")
    p.add_argument("--orders-per-second", type=_positive, default=d.orders_per_second,
                   help="per account, across its connections")
    p.add_argument("--max-queued-bytes", type=_positive, default=d.outbox_bytes,
                   help="output waiting for one connection before it is closed as a slow "
                        f"consumer (default {d.outbox_bytes:,})")
    p.add_argument("--max-connections", type=_positive, default=d.max_connections)
    p.add_argument("--max-connections-per-address", type=_positive,
                   default=d.max_connections_per_address)
    p.add_argument("--send-buffer", type=_positive, default=SEND_BUFFER,
                   help="kernel send buffer per connection, bytes")
    p.add_argument("--snapshot-every", type=int, default=SNAPSHOT_EVERY,
                   help="commands between snapshots of the venue (0: none); a restart "
                        "loads the newest and replays the journal after it")
    return p


def _keys(args: argparse.Namespace) -> tuple[dict[str, ApiKey], Callable[[], None]]:
    """The API keys the server accepts, and the writing of new dev keys to their file (done
    only once the server has its address: a failed start leaves nothing behind)."""
    try:
        keys = load_keys(args.keys) if args.keys else {}
        n = args.dev_accounts if args.dev_accounts is not None else (0 if args.keys else 8)
        path = Path(args.dev_keys_file)
        dev = load_keys(path) if n and path.exists() else {}
    except OSError as exc:
        raise SystemExit(f"key file {exc.filename}: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise SystemExit(f"key file: not a Gaemi key file ({exc})") from None
    save: Callable[[], None] = lambda: None  # noqa: E731
    if n:
        missing = {k: v for k, v in dev_keys(n).items() if k not in dev}
        if missing:
            dev.update(missing)
            save = lambda: save_keys(dev, path)  # noqa: E731
        keys.update({k: v for k, v in dev.items()
                     if k == "admin" or (k.startswith("dev-") and k[4:].isdigit()
                                         and int(k[4:]) <= n)})
    return keys, save


def server_from_args(args: argparse.Namespace) -> Server:
    """The server the arguments describe, with its address already bound (SystemExit with
    a one-line message when it cannot be); new dev keys are written once it has started."""
    keys, save = _keys(args)
    journal = None if args.journal == "none" else args.journal
    limits = Limits(args.requests_per_second, args.orders_per_second,
                    outbox_bytes=args.max_queued_bytes, max_connections=args.max_connections,
                    max_connections_per_address=args.max_connections_per_address)
    server = Server(host=args.host, port=args.port, journal=journal, keys=keys,
                    book=args.book, limits=limits, durability=args.durability,
                    snapshot_every=args.snapshot_every or None, send_buffer=args.send_buffer,
                    binance_port=args.binance_port)
    try:
        server.bind()
    except OSError as exc:
        ports = f"{args.port}" + (f" and {args.binance_port}" if args.binance_port is not None
                                  else "")
        raise SystemExit(f"cannot listen on {args.host}:{ports}: "
                         f"{exc.strerror or exc}") from None
    server.on_started.append(save)
    facade = server.binance_connections.total if args.binance_port is not None else 0
    warning = raise_file_limit(limits.max_connections + facade + FILES_BESIDES)
    if warning:
        log.warning(warning)
    return server


FILES_BESIDES = 64  # descriptors the server needs besides its connections (journal, ...)


def raise_file_limit(needed: int) -> str | None:
    """Raise this process's soft limit on open files to ``needed`` (at most its hard limit),
    so that the connection bounds are reached before the system's limit; the warning to give
    when the hard limit is lower (None when all is well)."""
    try:
        import resource
    except ImportError:  # not on a POSIX system
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    infinite = resource.RLIM_INFINITY
    if soft != infinite and soft < needed:
        soft = needed if hard == infinite else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    if soft != infinite and soft < needed:
        return (f"the system allows {soft} open files ({needed} to hold every connection the "
                "limits allow): past that, new connections fail until some close")
    return None


async def serve(server: Server,
                on_ready: Callable[[Server], Awaitable[None] | None] | None = None) -> int:
    """Run until SIGINT/SIGTERM (or a sequencer failure); 0 on a clean stop."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await server.start()
    except JournalCorrupt as exc:
        raise SystemExit(f"{exc}; the journal was left as it is (docs/reliability.md)") \
            from None
    try:
        if on_ready is not None:
            ready = on_ready(server)
            if ready is not None:
                await ready
        waiter = asyncio.create_task(stop.wait())
        stopped = asyncio.create_task(server.stopped.wait())
        await asyncio.wait({waiter, stopped}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        stopped.cancel()
    finally:
        await server.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return 1 if server.failure is not None else 0


def print_ready(s: Server, args: argparse.Namespace) -> None:
    venue = s.venue
    assert venue is not None
    print(f"gaemi serve: listening on {s.url} (JSON: gaemi.json, msgpack: gaemi.msgpack)")
    if s.binance_port is not None:
        print(f"  binance  {s.binance_url}/fapi (Binance USDⓈ-M REST: docs/binance-api.md)")
    print(f"  markets  {', '.join(venue.symbols)}")
    print(f"  journal  {s.journal or 'none'} ({venue.seq} commands, state "
          f"{venue.state_hash()})")
    r = s.recovery
    if r.get("seq") is not None:
        print(f"  recovery {r['seconds']:.2f} s: {r['snapshot'] or 'no snapshot'} + "
              f"{r['replayed']:,} journaled commands"
              + (f"; skipped {', '.join(r['skipped'])}" if r["skipped"] else "")
              + (f"; dropped a torn tail of {r['torn_bytes']} bytes" if r["torn_bytes"]
                 else ""))
    if r.get("guard_cancels"):
        print(f"  cancels  accounts {r['guard_cancels']}: cancel-on-disconnect or dead-man "
              "switch armed when the server stopped")
    if args.keys:
        print(f"  keys     {args.keys}")
    if Path(args.dev_keys_file).exists() and any(k.startswith("dev-") for k in s.keys):
        print(f"  dev keys {args.dev_keys_file} (accounts 1..; admin key 'admin')")
    print("  stop with Ctrl-C (SIGINT) or SIGTERM", flush=True)


def run(args: argparse.Namespace) -> int:
    """``gaemi serve`` without the index feed (the feed is a client: clients/cli/)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    return asyncio.run(serve(server_from_args(args), lambda s: print_ready(s, args)))
