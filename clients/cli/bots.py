"""``gaemi bot <name>``: run one bot against a Gaemi server and print what it does.

    gaemi bot market-maker --url ws://127.0.0.1:8765 --keys-file keys.json --account 1
    gaemi bot ant --api-key dev-2 --secret ... --symbol SKHYNIX-PERP --duration 60 \\
        --param leverage=15 --param dip_bps=50
    gaemi bot ant --api binance --url http://127.0.0.1:8766 --keys-file keys.json --account 2

``--api binance`` runs the same bot through the stock ccxt package against the Binance
USDⓈ-M facade (``gaemi serve --binance-port``; clients/live/binance.py).

``add_parser(subparsers)`` registers the subcommand; its ``func`` default is ``run``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import signal
import time
from pathlib import Path
from typing import Any

from websockets.exceptions import InvalidHandshake, InvalidURI

from gaemi.clients.live.bots import BOTS, Bot, BotParams
from gaemi.clients.live.client import Client, RequestError

__all__ = ["add_parser", "parse_params", "read_key", "run", "server_url"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``bot`` subcommand to an ``argparse`` subparsers object."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "bot", help="run a trading bot (market-maker, ant, momentum) against a server",
        description="Run one bot against a Gaemi server until --duration ends or Ctrl-C; "
                    "prints its fills, position and PnL as it goes. Bot parameters: "
                    "docs/bots.md (set them with --param NAME=VALUE).")
    p.add_argument("name", choices=sorted(BOTS), help="which bot")
    p.add_argument("--api", choices=("native", "binance"), default="native",
                   help="native: Gaemi's websocket protocol; binance: the Binance USDⓈ-M "
                        "facade through ccxt (gaemi serve --binance-port)")
    p.add_argument("--url", help="the server: ws://127.0.0.1:8765 (native, the default) or "
                                 "http://127.0.0.1:8766 (binance, the default)")
    p.add_argument("--encoding", choices=("json", "msgpack"), default="json",
                   help="the native protocol's encoding")
    p.add_argument("--keys-file", type=Path,
                   help="a key file (gaemi serve --dev-accounts writes one); with --account")
    p.add_argument("--account", type=int, help="the account whose key to use from --keys-file")
    p.add_argument("--api-key", help="an API key (with --secret), instead of --keys-file")
    p.add_argument("--secret", help="the API key's secret")
    p.add_argument("--symbol", default="SKHYNIX-PERP", help="the market to trade")
    p.add_argument("--duration", type=float, help="seconds to run (default: until Ctrl-C)")
    p.add_argument("--report-every", type=float, default=5.0, metavar="SECONDS",
                   help="print the bot's position and PnL this often")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="a bot parameter (repeatable), e.g. --param levels=5")
    p.set_defaults(func=run)
    return p


def read_key(path: Path, account: int | None) -> tuple[str, str]:
    """(API key, secret) of ``account`` in a key file (the only trading key if None);
    SystemExit with a one-line message for a missing or malformed file."""
    try:
        keys = [(str(r["apiKey"]), str(r["secret"]), int(r["accountId"]), bool(r.get("admin")))
                for r in json.loads(Path(path).read_text())["keys"]]
    except OSError as exc:
        raise SystemExit(f"--keys-file {path}: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise SystemExit(f"--keys-file {path}: not a Gaemi key file (gaemi serve writes one: "
                         "docs/protocol.md §3)") from None
    rows = [(key, secret) for key, secret, owner, admin in keys
            if not admin and (account is None or owner == account)]
    if len(rows) != 1:
        which = f"account {account}" if account is not None else "a single trading key"
        raise SystemExit(f"{path}: no {which} (found {len(rows)}); use --account N")
    return rows[0]


def parse_params(cls: type[BotParams], items: list[str], **given: Any) -> BotParams:
    """A bot's parameters from ``NAME=VALUE`` texts (and keyword values)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = dict(given)
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in fields:
            raise SystemExit(f"--param {item!r}: NAME=VALUE with NAME one of "
                             f"{', '.join(sorted(fields))}")
        kind = str(fields[name].type)
        try:
            if kind.startswith("bool"):
                if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(text)
                values[name] = text.lower() in ("true", "1", "yes")
            elif kind.startswith("int"):
                values[name] = int(text)
            elif kind.startswith("float"):
                values[name] = float(text)
            else:
                values[name] = text
        except ValueError:
            raise SystemExit(f"--param {item!r}: {name} is {kind}") from None
    return cls(**values)


DEFAULT_URLS = {"native": "ws://127.0.0.1:8765", "binance": "http://127.0.0.1:8766"}


def server_url(args: argparse.Namespace) -> str:
    """``--url``, or the default of ``--api`` (gaemi serve's ports)."""
    return str(args.url) if args.url is not None else DEFAULT_URLS[args.api]


def run(args: argparse.Namespace) -> int:
    """The ``gaemi bot`` command."""
    if args.keys_file is not None:
        if args.api_key or args.secret:
            raise SystemExit("give --keys-file (and --account) or --api-key and --secret")
        api_key, secret = read_key(args.keys_file, args.account)
    elif args.api_key and args.secret:
        api_key, secret = args.api_key, args.secret
    else:
        raise SystemExit("credentials: --keys-file F --account N, or --api-key K --secret S")
    args.url = server_url(args)
    if args.api == "native" and not args.url.startswith(("ws://", "wss://")):
        raise SystemExit(f"--url {args.url}: a websocket URL (ws://HOST:PORT)")
    if args.api == "binance" and not args.url.startswith(("http://", "https://")):
        raise SystemExit(f"--url {args.url}: the facade's HTTP URL (http://HOST:PORT)")
    cls = BOTS[args.name]
    params = parse_params(cls.Params, args.param, symbol=args.symbol)
    return asyncio.run(_run(args, cls, params, api_key, secret))


async def _run(args: argparse.Namespace, cls: type[Bot], params: BotParams, api_key: str,
               secret: str) -> int:
    started = time.monotonic()

    def say(text: str) -> None:
        print(f"[{time.monotonic() - started:7.1f}s] {text}", flush=True)

    client: Any
    if getattr(args, "api", "native") == "binance":
        client = await _binance_client(args.url, api_key, secret)
    else:
        try:
            client = await Client.connect(args.url, args.encoding)
        except (OSError, InvalidURI, InvalidHandshake) as exc:
            raise SystemExit(f"cannot connect to {args.url}: {exc}") from None
    try:
        symbols = [i["symbol"] for i in await client.instruments()]
    except (RequestError, ConnectionError) as exc:
        await client.close()
        raise SystemExit(f"{args.url}: {exc}") from None
    if params.symbol not in symbols:
        await client.close()
        raise SystemExit(f"--symbol {params.symbol}: not a market of {args.url} (it lists "
                         f"{', '.join(symbols)})")
    bot = cls(params, log=say)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    reporter = loop.create_task(_report(bot, say, args.report_every, stop))
    try:
        if isinstance(client, Client):
            result = await client.logon(api_key, secret, cancel_on_disconnect=True)
            account = result["accountId"]
        else:
            account = client.account_id
        say(f"logged on to {args.url} as account {account} ({client.encoding})")
        await bot.run(client, stop_event=stop, duration=args.duration)
    except RequestError as exc:
        raise SystemExit(f"refused: {exc}") from None
    except ConnectionError as exc:
        raise SystemExit(f"connection lost: {exc}") from None
    finally:
        reporter.cancel()
        await client.close()
    say("done: " + bot.status())
    return 0


async def _binance_client(url: str, api_key: str, secret: str) -> Any:
    """The bots' client over ccxt and the Binance facade; SystemExit with one line if it
    cannot start (no ccxt, no server, a refused key)."""
    from gaemi.clients.live.binance import BinanceClient, NeedsCcxt

    try:
        return await BinanceClient.connect(url, api_key, secret)
    except NeedsCcxt as exc:
        raise SystemExit(str(exc)) from None
    except Exception as exc:  # ccxt's errors (it is imported only with --api binance)
        raise SystemExit(f"cannot use the Binance API at {url}: "
                         f"{type(exc).__name__}: {exc}") from None


async def _report(bot: Bot, say: Any, every: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await asyncio.sleep(every)
        if bot.mark is None:
            say(f"{bot.name}: waiting for a mark price on {bot.params.symbol} "
                "(the market has no index yet)")
        else:
            say(bot.status())
