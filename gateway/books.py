"""Book channels: one conflated delta per market per sequencer batch, and the snapshots that
start a subscription (docs/protocol.md §5).

``BookFeed`` keeps the levels last published on ``book.<symbol>`` (only while someone listens
to the book or the bbo): a delta is the difference between them and the live book at the end
of a batch, and a ``snapshot.book`` returns them, so that a snapshot and the next delta always
agree. A new subscriber's snapshot follows the batch's delta.
"""

from __future__ import annotations

from typing import Any

from gaemi.gateway.sessions import Channel, Conn

__all__ = ["BOOK_LEVELS", "BookFeed", "BookState"]

BOOK_LEVELS = 1_000  # levels a side in a book snapshot (and the depth deltas are kept to)


class BookState:
    """The levels last published on ``book.<symbol>``: deltas are differences from it."""

    __slots__ = ("bids", "asks", "bbo")

    def __init__(self, bids: dict[int, int], asks: dict[int, int]) -> None:
        self.bids = bids
        self.asks = asks
        self.bbo: tuple[Any, ...] | None = None


class BookFeed:
    def __init__(self, public: dict[str, Channel]) -> None:
        self.public = public
        self.states: dict[str, BookState] = {}
        self.pending: list[tuple[Conn, str]] = []  # (connection, "book.<symbol>") to snapshot

    def levels(self, venue: Any, symbol: str,
               depth: int) -> tuple[list[list[int]], list[list[int]]]:
        """The levels as last published (so a snapshot and the next delta agree)."""
        state = self.state(venue, symbol)
        bids = sorted(state.bids.items(), reverse=True)[:depth]
        asks = sorted(state.asks.items())[:depth]
        return [list(x) for x in bids], [list(x) for x in asks]

    def state(self, venue: Any, symbol: str) -> BookState:
        state = self.states.get(symbol)
        if state is None:
            state = self.states[symbol] = _live(venue, symbol)
        return state

    def end_batch(self, venue: Any, touched: set[str], conns: dict[int, Conn],
                  staged: list[tuple[Any, dict[str, Any]]]) -> None:
        """Post one book and bbo delta per touched market, then the snapshots of new book
        subscribers; forget the markets nobody listens to any more."""
        ts = venue.time
        public = self.public
        published: dict[str, BookState] = {}  # the new states, kept only if all went well
        for symbol in sorted(touched):
            book_ch = public["book." + symbol]
            bbo_ch = public["bbo." + symbol]
            state = self.states.get(symbol)
            if state is None and not book_ch.conns and not bbo_ch.conns:
                continue
            live = _live(venue, symbol)
            if state is not None:
                bids = _diff(state.bids, live.bids, reverse=True)
                asks = _diff(state.asks, live.asks, reverse=False)
                if bids or asks:
                    book_ch.post({"type": "delta", "bids": bids, "asks": asks, "ts": ts})
                live.bbo = state.bbo
            bbo = _bbo(live)
            if bbo != live.bbo:
                live.bbo = bbo
                bbo_ch.post({"bid": bbo[0], "bidQty": bbo[1], "ask": bbo[2], "askQty": bbo[3],
                             "ts": ts})
            published[symbol] = live
        self.states.update(published)
        touched.clear()
        for conn, name in self.pending:
            channel = public[name]
            if conn.cid not in conns or name not in conn.channels or conn in channel.conns:
                continue
            bids, asks = self.levels(venue, name[5:], BOOK_LEVELS)
            channel.conns.add(conn)
            staged.append((conn, {"ch": name, "seq": channel.seq, "prev": None, "data": {
                "type": "snapshot", "bids": bids, "asks": asks, "ts": ts}}))
        self.pending.clear()
        for symbol in [s for s in self.states
                       if not public["book." + s].conns and not public["bbo." + s].conns]:
            del self.states[symbol]


def _live(venue: Any, symbol: str) -> BookState:
    bids, asks = venue.book(symbol).depth(BOOK_LEVELS)
    return BookState(dict(bids), dict(asks))


def _diff(old: dict[int, int], new: dict[int, int], *, reverse: bool) -> list[list[int]]:
    out = [[p, q] for p, q in new.items() if old.get(p) != q]
    out += [[p, 0] for p in old if p not in new]
    out.sort(reverse=reverse)
    return out


def _bbo(state: BookState) -> tuple[Any, ...]:
    bid = max(state.bids) if state.bids else None
    ask = min(state.asks) if state.asks else None
    return (bid, state.bids[bid] if bid is not None else None,
            ask, state.asks[ask] if ask is not None else None)
