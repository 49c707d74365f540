"""A local copy of a market's order book, kept from the ``book.<symbol>`` channel.

Two parts:

``LocalBook`` is sans-I/O: it is fed pushes and snapshots and says when it needs a snapshot.
The rule is docs/protocol.md §5 (Binance's ``pu`` rule): the first push after subscribing is a
snapshot; a delta is applied when its ``prev`` is the ``seq`` last applied; otherwise it is a
gap: deltas are buffered, a ``snapshot.book`` is requested, buffered deltas with ``seq`` ≤ the
snapshot's are dropped and the rest applied. Deltas carry *absolute* level sizes, so a delta
applied on top of a snapshot that already reflects part of it gives the right book.

``BookFeed`` is the asyncio glue: it subscribes ``book.<symbol>`` through a ``Client``, feeds
the pushes to a ``LocalBook`` and requests snapshots by itself, counting its resyncs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from sortedcontainers import SortedDict

if TYPE_CHECKING:  # pragma: no cover
    from gaemi.clients.live.client import Client


__all__ = ["BookFeed", "LocalBook", "follow_book"]

log = logging.getLogger(__name__)

Level = tuple[int, int]  # (price in ticks, size in lots)

EMPTY = "empty"  # subscribed, waiting for the first snapshot
SYNCED = "synced"  # every delta since the last snapshot applied
RESYNCING = "resyncing"  # a gap was seen: buffering deltas until a snapshot arrives


class LocalBook:
    """The book of one market, rebuilt from snapshots and deltas (no I/O).

    ``feed(push)`` takes a ``book.<symbol>`` push and ``apply_snapshot(result)`` a
    ``snapshot.book`` result; both return True when the book needs a snapshot to go on (a gap
    the buffered deltas cannot bridge). ``seq`` is the channel sequence the book reflects.
    """

    def __init__(self, symbol: str | None = None) -> None:
        self.symbol = symbol
        self.state = EMPTY
        self.seq: int | None = None
        self.ts: int | None = None
        self._bids: SortedDict = SortedDict()  # price -> qty; best bid is the last key
        self._asks: SortedDict = SortedDict()  # price -> qty; best ask is the first key
        self._buffer: dict[int, dict[str, Any]] = {}  # seq -> push, while not synced
        # counters
        self.snapshots = 0  # snapshots applied (pushed or requested)
        self.deltas = 0  # deltas applied
        self.gaps = 0  # times the book went from synced to resyncing
        self.duplicates = 0  # deltas ignored because the book already reflected them

    # -- input ---------------------------------------------------------------------------------

    def feed(self, push: dict[str, Any]) -> bool:
        """Apply one push of the book channel. True: a gap, request a snapshot."""
        data = push["data"]
        if data.get("type") == "snapshot":
            self._reset(data, push["seq"])
            return self._drain()
        seq, prev = push["seq"], push["prev"]
        if self.state == SYNCED:
            if prev == self.seq:
                self._apply_delta(data, seq)
                return False
            if self.seq is not None and seq <= self.seq:
                self.duplicates += 1
                return False
            self.gaps += 1
            self.state = RESYNCING
            self._buffer[seq] = push
            return True
        # EMPTY (the subscription snapshot is on its way) or RESYNCING: keep it for later
        if self.seq is not None and seq <= self.seq:
            self.duplicates += 1
            return False
        self._buffer[seq] = push
        if self.state == RESYNCING:
            return self._drain()
        return False

    def apply_snapshot(self, snapshot: dict[str, Any]) -> bool:
        """Apply a ``snapshot.book`` result (``{seq, bids, asks, ts}``). True: the deltas
        buffered after it still have a hole, request another snapshot.

        A snapshot no newer than a synced book is ignored: the book is exact at its ``seq``
        and the snapshot could only take it back."""
        if self.state == SYNCED and self.seq is not None and snapshot["seq"] <= self.seq:
            return False
        self._reset(snapshot, snapshot["seq"])
        return self._drain()

    @property
    def needs_snapshot(self) -> bool:
        return self.state == RESYNCING

    # -- queries -------------------------------------------------------------------------------

    def best_bid(self) -> Level | None:
        return self._bids.peekitem(-1) if self._bids else None

    def best_ask(self) -> Level | None:
        return self._asks.peekitem(0) if self._asks else None

    def depth(self, n: int | None = None) -> tuple[list[Level], list[Level]]:
        """Up to ``n`` levels a side (all when None): bids best (highest) first, asks best
        (lowest) first, as the protocol lists them."""
        bids = list(reversed(self._bids.items()))
        asks = list(self._asks.items())
        if n is not None:
            bids, asks = bids[:n], asks[:n]
        return bids, asks

    def mid(self) -> int | None:
        """The mid price in ticks, rounded down; None unless both sides have orders."""
        bid, ask = self.best_bid(), self.best_ask()
        if bid is None or ask is None:
            return None
        return (bid[0] + ask[0]) // 2

    def crossed(self) -> bool:
        bid, ask = self.best_bid(), self.best_ask()
        return bid is not None and ask is not None and bid[0] >= ask[0]

    def __len__(self) -> int:
        return len(self._bids) + len(self._asks)

    def __repr__(self) -> str:
        return (f"LocalBook({self.symbol!r}, {self.state}, seq={self.seq}, "
                f"bid={self.best_bid()}, ask={self.best_ask()})")

    # -- internals -----------------------------------------------------------------------------

    def _reset(self, data: dict[str, Any], seq: int) -> None:
        self._bids = SortedDict({p: q for p, q in data.get("bids") or () if q > 0})
        self._asks = SortedDict({p: q for p, q in data.get("asks") or () if q > 0})
        self.seq = seq
        self.ts = data.get("ts")
        self.state = SYNCED
        self.snapshots += 1
        for old in [s for s in self._buffer if s <= seq]:
            del self._buffer[old]

    def _drain(self) -> bool:
        """Apply the buffered deltas that follow ``seq``; True if a hole remains."""
        while self._buffer:
            nxt = min(self._buffer)
            push = self._buffer[nxt]
            if push["prev"] != self.seq:
                if self.state == SYNCED:  # the buffered deltas start beyond a hole
                    self.gaps += 1
                self.state = RESYNCING
                return True
            del self._buffer[nxt]
            self._apply_delta(push["data"], nxt)
        if self.state == RESYNCING and self.seq is not None:
            self.state = SYNCED  # the buffer bridged the hole by itself (out of order)
        return False

    def _apply_delta(self, data: dict[str, Any], seq: int) -> None:
        _apply_levels(self._bids, data.get("bids") or ())
        _apply_levels(self._asks, data.get("asks") or ())
        self.seq = seq
        self.ts = data.get("ts", self.ts)
        self.deltas += 1


def _apply_levels(side: SortedDict, levels: Iterable[Sequence[int]]) -> None:
    for price, qty in levels:
        if qty:
            side[price] = qty
        else:
            side.pop(price, None)


class BookFeed:
    """A ``LocalBook`` kept up to date over a ``Client``, resynchronising by itself.

    ``await BookFeed(client, symbol).start()`` subscribes; ``book`` is the ``LocalBook``;
    ``resyncs`` counts the snapshots requested after gaps; ``wait_synced()`` waits until the
    book is in sync (and, optionally, at or past a channel ``seq``)."""

    def __init__(self, client: Client, symbol: str, *, depth: int = 1000) -> None:
        self.client = client
        self.symbol = symbol
        self.channel = f"book.{symbol}"
        self.depth = depth
        self.book = LocalBook(symbol)
        self.resyncs = 0
        self.errors = 0  # snapshot requests that failed
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def start(self) -> BookFeed:
        self.client.add_handler(self.channel, self._on_push)
        try:
            await self.client.subscribe([self.channel])
        except BaseException:
            self.client.remove_handler(self.channel, self._on_push)
            raise
        return self

    async def stop(self) -> None:
        self.client.remove_handler(self.channel, self._on_push)
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if not self.client.closed:
            await self.client.unsubscribe([self.channel])

    async def __aenter__(self) -> BookFeed:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def wait_synced(self, seq: int | None = None, timeout: float = 10.0) -> LocalBook:
        """Wait until the book is synced and at or past ``seq``; TimeoutError otherwise."""
        async def ready() -> None:
            while not (self.book.state == SYNCED and
                       (seq is None or (self.book.seq or 0) >= seq)):
                if self.client.closed:
                    raise ConnectionError("the connection closed before the book synced")
                self._changed.clear()
                await self._changed.wait()
        await asyncio.wait_for(ready(), timeout)
        return self.book

    def _on_push(self, push: dict[str, Any]) -> None:
        if self.book.feed(push):
            self._resync()
        self._changed.set()

    def _resync(self) -> None:
        if self._task is None or self._task.done():
            self.resyncs += 1
            self._task = asyncio.get_running_loop().create_task(self._fetch())

    async def _fetch(self) -> None:
        while self.book.needs_snapshot:
            try:
                snap = await self.client.snapshot_book(self.symbol, depth=self.depth)
            except ConnectionError:
                self._changed.set()
                return
            except Exception:  # a refused snapshot (rate limit, ...): retry a little later
                self.errors += 1
                log.warning("snapshot.book %s failed; retrying", self.symbol, exc_info=True)
                await asyncio.sleep(0.2)
                continue
            if self.book.apply_snapshot(snap):
                self.resyncs += 1  # the buffer still has a hole: one more snapshot
            self._changed.set()


async def follow_book(client: Client, symbol: str, *, depth: int = 1000) -> BookFeed:
    """Subscribe ``book.<symbol>`` and keep a local book: ``(await follow_book(c, s)).book``."""
    return await BookFeed(client, symbol, depth=depth).start()
