"""Shared helpers of the asyncio client tests: a real server with funded dev accounts and an
index, a condition wait, and a run with a hang guard (never a speed requirement)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from gaemi.clients.live.client import Client, connect
from gaemi.gateway.server import Server

SYMBOL = "SKHYNIX-PERP"
INDEX = 120_000  # ticks: $1,200.00; the multiplier is 10 µ$ per tick-lot
GUARD = 20.0  # seconds: a hang guard, never a speed requirement


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, GUARD * 2))


async def until(condition: Callable[[], bool], what: str, timeout: float = GUARD) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.005)
    try:
        await asyncio.wait_for(poll(), timeout)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


@asynccontextmanager
async def exchange(accounts: int = 3) -> AsyncIterator[tuple[Server, Client]]:
    """A server with funded dev accounts and SKHYNIX-PERP's index set (so it has a mark)."""
    async with (
        Server(port=0, dev_accounts=accounts, tick_interval=0.2) as srv,
        connect(srv.url) as admin,
    ):
        await admin.logon("admin", srv.keys["admin"].secret)
        await admin.set_index(SYMBOL, INDEX)
        yield srv, admin
