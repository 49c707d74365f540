"""``gaemi serve``: the websocket exchange with sane defaults and no arguments needed.

Defaults: loopback, port 8765, the four preset markets, the journal
``gaemi-data/journal.gaemij`` (recovered when it exists), and 8 funded dev accounts whose keys
go to ``gaemi-data/dev-keys.json`` (kept across restarts). SIGINT or SIGTERM shuts down
cleanly (docs/protocol.md §7).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from gateway.server import DEFAULT_PORT, Server, dev_keys, load_keys, save_keys
from gateway.wire.session import Limits


__all__ = ["add_parser", "serve"]

DATA_DIR = Path("gaemi-data")


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("serve", help="run the exchange on a websocket (JSON or msgpack)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="0: any free port")
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
    p.add_argument("--requests-per-second", type=int, default=Limits().requests_per_second)
    p.add_argument("--orders-per-second", type=int, default=Limits().orders_per_second)
    return p


def server_from_args(args: argparse.Namespace) -> Server:
    keys = load_keys(args.keys) if args.keys else {}
    n = args.dev_accounts if args.dev_accounts is not None else (0 if args.keys else 8)
    if n:
        path = Path(args.dev_keys_file)
        dev = load_keys(path) if path.exists() else {}
        fresh = dev_keys(n)
        missing = {k: v for k, v in fresh.items() if k not in dev}
        if missing:
            dev.update(missing)
            save_keys(dev, path)
        keys.update({k: v for k, v in dev.items()
                     if k == "admin" or int(k.split("-")[1]) <= n})
    journal = None if args.journal == "none" else args.journal
    limits = Limits(args.requests_per_second, args.orders_per_second)
    return Server(host=args.host, port=args.port, journal=journal, keys=keys, book=args.book,
                  limits=limits, durability=args.durability)


async def serve(server: Server,
                on_ready: Callable[[Server], Awaitable[None] | None] | None = None) -> int:
    """Run until SIGINT/SIGTERM (or a sequencer failure); 0 on a clean stop."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
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
    print(f"  markets  {', '.join(venue.symbols)}")
    print(f"  journal  {s.journal or 'none'} ({venue.seq} commands, state "
          f"{venue.state_hash()})")
    if args.keys:
        print(f"  keys     {args.keys}")
    if Path(args.dev_keys_file).exists() and any(k.startswith("dev-") for k in s.keys):
        print(f"  dev keys {args.dev_keys_file} (accounts 1..; admin key 'admin')")
    print("  stop with Ctrl-C (SIGINT) or SIGTERM", flush=True)


def run(args: argparse.Namespace) -> int:
    """``gaemi serve`` without the index feed (the feed is a client: clients/cli.py)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    return asyncio.run(serve(server_from_args(args), lambda s: print_ready(s, args)))
