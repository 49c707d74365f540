"""``gaemi serve``: the websocket exchange (gateway/cli.py) with the index feed beside it, a
client of the server like any other (clients/live/feed.py)."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_parser"]


def add_parser(sub: Any) -> None:
    # the server is the composition root of gateway/; the command line adds the index feed
    from gaemi.gateway import cli as gateway_cli

    sp = gateway_cli.add_parser(sub)
    sp.add_argument("--index", choices=("hold", "replay", "none"), default="hold",
                    help="hold: set each market's index to its last real close (if unset); "
                         "replay: walk the real daily series (clients/live/feed.py); none: "
                         "only admin.setIndex")
    sp.add_argument("--index-speed", type=float, default=390.0,
                    help="replay speed x real time (390: a 6.5 h session a minute)")
    sp.add_argument("--index-from", help="replay from this date (YYYY-MM-DD; default: the "
                                         "last 20 trading days)")
    sp.set_defaults(func=_cmd_serve)


def _cmd_serve(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from gaemi.clients.live.client import Client
    from gaemi.clients.live.feed import IndexFeed
    from gaemi.gateway import cli as gateway_cli

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    server = gateway_cli.server_from_args(args)
    tasks: list[asyncio.Task[Any]] = []

    async def feed(url: str, secret: str, symbols: list[str]) -> None:
        async with await Client.connect(url) as client:
            await client.logon("admin", secret)
            index = IndexFeed(client, symbols)
            held = await index.hold()
            print(f"  index    {', '.join(f'{s} {p / 100:,.2f}' for s, p in held.items())} "
                  f"(last real closes; {index.sent} set)", flush=True)
            if args.index == "replay":
                sent = await index.replay(start=args.index_from, speed=args.index_speed)
                print(f"  index replay finished: {sent} updates", flush=True)

    async def ready(s: Any) -> None:
        gateway_cli.print_ready(s, args)
        admin = s.keys.get("admin")
        if args.index != "none":
            if admin is None or not admin.admin:
                print("  index    no 'admin' key: the feed is off (use admin.setIndex)")
            else:
                tasks.append(asyncio.create_task(feed(s.url, admin.secret, s.venue.symbols)))

    return asyncio.run(gateway_cli.serve(server, ready))


