"""Replay an order flow into a running ``gaemi serve`` at real time x a speed factor, so that
bots can trade against the replayed flow.

Each account of the flow trades through its own websocket session (its API key comes from a
key file: flow account N uses the key of account N); ``admin.*`` records go through the admin
key. Record k is sent at ``start + (ts_k - ts_0) / speed`` on the local clock (``speed = 0``:
as fast as possible), without waiting for the previous response, so a slow answer never delays
the schedule. Within one account the order of requests is kept (one connection, answered in
order); across accounts, records with the same wall time may reach the sequencer in either
order, unlike the in-process ``orderflow.apply`` (exactly the flow's order).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from gaemi.clients.live.client import Client, RequestError
from gaemi.clients.replay.orderflow import ADMIN_OPS, FlowRecord

__all__ = ["LiveReplay", "replay_live"]


@dataclass(slots=True)
class LiveReplay:
    """What happened: requests sent, acknowledged, refused (by code), and the lag behind the
    schedule (how late the worst request was sent, in seconds)."""

    sent: int = 0
    ok: int = 0
    refused: Counter[int] = field(default_factory=Counter)
    max_lag: float = 0.0
    accounts: int = 0


async def replay_live(url: str, records: Iterable[FlowRecord], *,
                      keys: dict[int, tuple[str, str]],
                      admin: tuple[str, str] | None = None, speed: float = 1.0,
                      encoding: str = "msgpack") -> LiveReplay:
    """Send ``records`` to the server at ``url``. ``keys``: flow account -> (API key,
    secret); ``admin``: the admin key for ``admin.*`` records."""
    flow = list(records)
    need = {r.account for r in flow if r.op not in ADMIN_OPS}
    missing = sorted(need - set(keys))
    if missing:
        raise ValueError(f"no API key for flow accounts {missing[:10]}")
    if admin is None and any(r.op in ADMIN_OPS for r in flow):
        raise ValueError("the flow has admin records: an admin key is needed")
    if speed < 0:
        raise ValueError("speed: >= 0 (0: as fast as possible)")
    stats = LiveReplay(accounts=len(need))
    clients: dict[Any, Client] = {}
    try:
        for account in sorted(need):
            c = clients[account] = await Client.connect(url, encoding)
            await c.logon(*keys[account])
        if admin is not None:
            c = clients["admin"] = await Client.connect(url, encoding)
            await c.logon(*admin)
        pending: list[asyncio.Future[Any]] = []
        start = time.monotonic()
        ts0 = flow[0].ts if flow else 0
        for record in flow:
            if speed:
                due = start + (record.ts - ts0) / 1e9 / speed
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    stats.max_lag = max(stats.max_lag, -delay)
            client = clients["admin" if record.op in ADMIN_OPS else record.account]
            pending.append(asyncio.ensure_future(client.request(record.op, record.args)))
            stats.sent += 1
        for outcome in await asyncio.gather(*pending, return_exceptions=True):
            if isinstance(outcome, RequestError):
                stats.refused[int(outcome.code)] += 1
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                stats.ok += 1
    finally:
        for c in clients.values():
            await c.close()
    return stats
