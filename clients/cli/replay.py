"""``gaemi replay`` (a LOBSTER day through the book, checked against the file, and the engine's
speed on it) and ``gaemi flow`` (a Gaemi order flow, in process or into a running server)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from gaemi import engine
from gaemi.clients.cli.common import check_url
from gaemi.engine.codes import Command

__all__ = ["add_parsers"]


def add_parsers(sub: Any) -> None:
    rp = sub.add_parser("replay", help="replay a LOBSTER day through the book and verify it")
    rp.add_argument("--ticker", default="AMZN",
                    help="embedded sample (AMZN: full day, level 1; AAPL: 49 s, level 10) or a "
                         "path prefix of a LOBSTER file pair")
    rp.add_argument("--implementation", choices=("auto", "compiled", "reference"),
                    default="auto", help="which book (auto: gaemi.engine.OrderBook)")
    rp.add_argument("--json", action="store_true", help="print the summary as JSON")
    rp.set_defaults(func=_cmd_replay)
    fp = sub.add_parser("flow", help="replay a Gaemi order-flow file (JSONL or msgpack), in "
                                     "process or into a running server")
    fp.add_argument("file", help="a .jsonl or .msgpack flow (optionally .gz); docs/replay.md")
    fp.add_argument("--url", help="replay into this server instead of in process")
    fp.add_argument("--keys-file", type=Path, help="keys of the flow's accounts (with --url)")
    fp.add_argument("--speed", type=float, default=1.0,
                    help="x real time (with --url; 0: as fast as possible)")
    fp.set_defaults(func=_cmd_flow)


def _per_call(book: Any, rows: Any) -> None:
    # the day's commands one Python call each, as a bot or a gateway without batching would
    place, cancel, amend = book.place, book.cancel, book.amend
    for i in range(0, len(rows), 9):
        command, oid, side, price, qty, tif, _, _, account = rows[i : i + 9]
        if command == Command.PLACE:
            place(oid, side, price or None, qty, tif=tif, account=account)
        elif command == Command.CANCEL:
            cancel(oid)
        else:
            amend(oid, price=price or None, qty=qty or None)


def _throughput(book_class: Any, commands: Any, expected_hash: int) -> dict[str, float]:
    """Re-run the recorded commands per call and in one batch; best of 3 each."""
    n = len(commands) // 9
    out: dict[str, float] = {}
    for mode in ("per_call", "batch"):
        best = float("inf")
        for _ in range(3):
            book = book_class()
            start = time.perf_counter()
            if mode == "batch":
                book.apply_batch(commands)
            else:
                _per_call(book, commands)
            best = min(best, time.perf_counter() - start)
            if book.state_hash() != expected_hash:
                raise SystemExit(f"{mode} re-run ended in a different state: a defect")
        out[f"{mode}_commands_per_second"] = n / best
    return out


def _cmd_replay(args: argparse.Namespace) -> int:
    from gaemi.clients.replay.lobster import read_messages, read_orderbook, replay, sample_files

    try:
        message_file, orderbook_file, levels = sample_files(args.ticker)
    except FileNotFoundError:
        raise SystemExit(f"--ticker {args.ticker}: no LOBSTER data (embedded: AMZN, AAPL; "
                         "or a path prefix of a LOBSTER message/orderbook file pair)") from None
    book_class = engine.book_class(args.implementation)
    name = book_class.__module__.replace("gaemi.engine.", "").replace("_book", "compiled")
    if not args.json:
        print(f"Replaying {message_file.name} (level {levels}) through the {name} book ...")
    book = book_class()
    report = replay(read_messages(message_file), read_orderbook(orderbook_file), book, levels)
    book.check_invariants()
    summary = report.summary()
    summary["implementation"] = name
    summary.update(_throughput(book_class, report.commands, report.final_state_hash))
    summary["machine"] = (f"{platform.machine()}, {os.cpu_count()} cores, "
                          f"Python {platform.python_version()}")
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_summary(summary)
    return 0 if summary["rows_unexplained"] == 0 else 1


def _print_summary(s: dict[str, Any]) -> None:
    def pct(x: float) -> str:
        return f"{100 * x:.2f}%"

    print(f"""
Messages            {s['messages']:>9,}   by type {s['messages_by_type']}
Book rows checked   {s['rows_compared']:>9,}
  equal to the file {s['rows_equal']:>9,}   ({pct(s['row_match_fraction'])})
  a level entered from beyond depth {s['levels']} (unknowable)  {s['rows_differing_by_level_from_beyond_window']:,}
  after a message on a level that had been hidden          {s['rows_differing_after_a_data_limit']:,}
  unexplained       {s['rows_unexplained']:>9,}
Executions          {s['executions']:>9,}
  first fill hit the named order      {s['executions_hit_named_order']:,} ({pct(s['execution_hit_fraction'])})
  named order known to the book       {s['executions_named_known']:,}, at the head of its queue in {pct(s['known_named_order_at_head_fraction'])}
  named order from hidden liquidity   {s['executions_named_carved_from_unknown']:,}
Unknown liquidity   {s['synthetic_orders']:,} synthetic orders ({s['synthetic_lots']:,} lots); {s['stale_lots_removed']:,} stale lots removed
Data limits         {s['data_limits']}
Defects             {s['defects'] or 'none'}
Final state hash    {s['final_state_hash']}

Engine throughput on the day's {s['engine_commands']:,} commands ({s['implementation']} book, {s['machine']}):
  one Python call per command  {s['per_call_commands_per_second']:>14,.0f} commands/s
  apply_batch                  {s['batch_commands_per_second']:>14,.0f} commands/s
""")


def _cmd_flow(args: argparse.Namespace) -> int:
    """Replay a Gaemi order-flow file in process (full speed) or into a running server."""
    import asyncio
    from collections import Counter

    from gaemi.clients.replay import orderflow
    from gaemi.risk import Venue

    if args.url is not None:
        check_url(args.url)
    if not Path(args.file).is_file():
        raise SystemExit(f"{args.file}: no such file")
    try:
        records = list(orderflow.read(args.file))
    except ValueError as exc:  # OrderFlowError names the line
        raise SystemExit(f"{args.file}: {exc}") from None
    if not records:
        raise SystemExit(f"{args.file}: no records")
    if args.url is None:
        venue = Venue(start_ts=records[0].ts)
        started = time.perf_counter()
        try:
            applied = orderflow.apply(records, venue)
        except ValueError as exc:
            raise SystemExit(f"{args.file}: {exc}") from None
        elapsed = time.perf_counter() - started
        venue.check_invariants()
        refused = Counter(e.reason for a in applied for e in a.events if e.kind == "rejected")
        print(f"{len(records):,} records in {elapsed:.2f} s ({len(records) / elapsed:,.0f}/s); "
              f"refused {sum(refused.values()):,} {dict(refused) or ''}")
        print(f"state hash {venue.state_hash()}")
        return 0
    from gaemi.clients.cli.bots import read_key
    from gaemi.clients.replay.live import replay_live

    if args.keys_file is None:
        raise SystemExit("--keys-file is needed with --url (gaemi serve writes one)")
    accounts = sorted({r.account for r in records if r.op not in orderflow.ADMIN_OPS})
    keys = {a: read_key(args.keys_file, a) for a in accounts}
    rows = json.loads(args.keys_file.read_text())["keys"]  # read_key has checked the file
    admin = next(((r["apiKey"], r["secret"]) for r in rows if r.get("admin")), None)
    stats = asyncio.run(replay_live(args.url, records, keys=keys, admin=admin,
                                    speed=args.speed))
    print(f"sent {stats.sent:,} over {stats.accounts} accounts: {stats.ok:,} acknowledged, "
          f"refused {dict(stats.refused) or 0}; worst lag {stats.max_lag * 1000:.1f} ms")
    return 0


