"""Replay a Bitfinex raw (L3, order-by-order) book feed through a Gaemi order book.

Theory of operation
-------------------
The feed (websocket v2, channel ``book`` with ``prec: "R0"``, docs/replay.md) is one JSON
array: an ``info`` event, the ``subscribed`` event, the snapshot ``[chanId, [[id, price,
amount], ...]]`` and then one ``[chanId, [id, price, amount]]`` per order event. ``amount > 0``
is a bid and ``< 0`` an ask; ``price == 0`` deletes the order (its amount, +1 or -1, only flags
the side); any other price adds the order or moves it to that price and size. The reader parses
numbers as ``Decimal`` (exactly, from the text: never floats).

Each event is one engine command: an add is a post-only GTC ``place`` with the file's order id,
an update an ``amend`` (price and/or size), a delete a ``cancel``. Prices and sizes go through a
stated ``Rescale`` (``GRID``: ticks of $0.000001 and lots of 0.0000001 BTC, rounded half-even:
the file's prices carry up to 8 decimals around $61,000 and its sizes up to 38.8 BTC, which
would overflow the engine's bounds on a 10**-8 grid; the report counts what the grid rounds
and checks that no two distinct prices share a tick).

The raw feed is sometimes crossed for a few messages (an order arrives before the fills that
remove what it crosses; the channel publishes no trades). A Gaemi book cannot rest crossed, so
an add or move that would cross (post-only refuses it) is **held**: kept aside, updated or
deleted by later events like any order, and placed as soon as it no longer crosses. Held
orders exist exactly while the file's book is crossed (a crossed file book always leaves one
side of the crossing pair out of the engine, and a held order crosses an order the engine
holds), so the count of messages with a held order is the count of crossed states.

Checks (the file's own ground truth): the engine book after the snapshot equals the snapshot,
level by level; every delete names a known order and flags its side; no update flips an order's
side; the book never holds more than the subscription's ``len`` orders per side; after every
event the engine holds exactly the file's orders minus the held ones (the touched order and
the count every event; every order, its price and size, every ``check_every`` events and at
the end), and the engine never trades.
"""

from __future__ import annotations

import gzip
import json
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from importlib import resources
from itertools import pairwise
from pathlib import Path
from typing import Any

from gaemi.clients.replay.rescale import Rescale
from gaemi.engine.codes import EventKind, RejectReason, Side, TimeInForce

__all__ = [
    "GRID",
    "Feed",
    "FeedError",
    "RawOrder",
    "ReplayReport",
    "read_feed",
    "replay",
    "sample_file",
]

#: the default mapping: $0.000001 ticks, 0.0000001 BTC lots (module docstring)
GRID = Rescale(tick=Fraction(1, 10**6), lot=Fraction(1, 10**7))
#: the engine account the file's orders rest on
FILE_ACCOUNT = 1


class FeedError(ValueError):
    """An element of the feed that cannot be read; ``index`` is its 0-based array position."""

    def __init__(self, index: int, msg: str) -> None:
        super().__init__(f"element {index}: {msg}")
        self.index = index
        self.msg = msg


@dataclass(frozen=True, slots=True)
class RawOrder:
    """One order event: ``price == 0`` deletes; ``amount`` > 0 bid, < 0 ask (BTC)."""

    index: int  # position in the feed's array (the snapshot's orders share its index)
    order_id: int
    price: Decimal
    amount: Decimal

    @property
    def side(self) -> Side:
        return Side.BUY if self.amount > 0 else Side.SELL

    @property
    def is_delete(self) -> bool:
        return self.price == 0


@dataclass(frozen=True, slots=True)
class Feed:
    """A whole recorded session: its subscription, the snapshot and the events in order."""

    subscribed: dict[str, Any]
    channel_id: int
    snapshot: tuple[RawOrder, ...]
    updates: tuple[RawOrder, ...]

    @property
    def length(self) -> int:
        """Orders per side the subscription covers (``len``)."""
        return int(self.subscribed.get("len", 25))


def _number(value: Any, what: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise ValueError(f"{what}: expected a number, got {value!r}")
    return Decimal(value)


def _order(index: int, row: Any) -> RawOrder:
    if not isinstance(row, list) or len(row) != 3:
        raise ValueError(f"an order is [id, price, amount], got {row!r}")
    order_id, price, amount = row
    if isinstance(order_id, bool) or not isinstance(order_id, int) or order_id <= 0:
        raise ValueError(f"order id: a positive integer, got {order_id!r}")
    raw = RawOrder(index, order_id, _number(price, "price"), _number(amount, "amount"))
    if raw.amount == 0 or raw.price < 0 or (raw.is_delete and abs(raw.amount) != 1):
        raise ValueError(f"not an order event: {row!r}")
    return raw


def read_feed(path: Path | str) -> Feed:
    """Read a recorded raw-book session (a JSON array, gzip or plain); ``FeedError`` names the
    first element that does not fit the format. Heartbeats (``[chanId, "hb"]``) are skipped."""
    path = Path(path)
    with open(path, "rb") as probe:
        gz = probe.read(2) == b"\x1f\x8b"
    with (gzip.open(path, "rt", encoding="utf-8") if gz else open(path, encoding="utf-8")) as f:
        try:
            data = json.load(f, parse_float=Decimal)
        except ValueError as exc:
            raise FeedError(-1, f"not JSON: {exc}") from None
    if not isinstance(data, list):
        raise FeedError(-1, "the feed is a JSON array")
    subscribed: dict[str, Any] | None = None
    snapshot: tuple[RawOrder, ...] | None = None
    updates: list[RawOrder] = []
    channel = -1
    for i, element in enumerate(data):
        try:
            if isinstance(element, dict):
                if element.get("event") == "subscribed":
                    if element.get("channel") != "book" or element.get("prec") != "R0":
                        raise ValueError("not a raw book subscription (channel book, prec R0)")
                    subscribed, channel = element, element["chanId"]
                continue  # info and other events
            if not isinstance(element, list) or len(element) != 2:
                raise ValueError("a channel message is [chanId, payload]")
            if subscribed is None or element[0] != channel:
                raise ValueError(f"channel {element[0]!r} was not subscribed")
            payload = element[1]
            if payload == "hb":
                continue
            if snapshot is None:
                if not isinstance(payload, list) or (payload and not isinstance(payload[0], list)):
                    raise ValueError("the first message is the snapshot, a list of orders")
                snapshot = tuple(_order(i, row) for row in payload)
            else:
                updates.append(_order(i, payload))
        except (ValueError, KeyError, TypeError) as exc:
            raise FeedError(i, str(exc)) from None
    if subscribed is None or snapshot is None:
        raise FeedError(len(data), "no subscription or no snapshot")
    return Feed(subscribed, channel, snapshot, tuple(updates))


def sample_file(name: str = "btcusd") -> Path:
    """The embedded sample (clients/replay/data/bitfinex/), or ``name`` itself if it is a path."""
    candidate = Path(name)
    if candidate.parent != Path(".") or candidate.exists():
        return candidate
    data = resources.files("gaemi.clients.replay") / "data" / "bitfinex"
    found = sorted(Path(str(p)) for p in data.iterdir()
                   if name.lower() in p.name.lower() and p.name.endswith(".json.gz"))
    if not found:
        raise FileNotFoundError(f"no embedded Bitfinex feed named {name!r}")
    return found[0]


# -- the replay ------------------------------------------------------------------------------------


@dataclass
class ReplayReport:
    """What the feed held and how the engine book followed it."""

    snapshot_bids: int = 0
    snapshot_asks: int = 0
    snapshot_sorted: bool = False  # bids best first, then asks best first
    snapshot_book_equal: bool = False  # engine depth after the snapshot == the snapshot's
    events: Counter[str] = field(default_factory=Counter)
    deletes_unknown: int = 0
    delete_side_flag_wrong: int = 0
    side_flips: int = 0
    held_on_arrival: int = 0  # adds or moves that would have crossed the engine book
    crossed_states: int = 0  # events after which some order was held (the file crossed)
    crossed_indices: list[int] = field(default_factory=list)
    max_held: int = 0
    max_per_side: tuple[int, int] = (0, 0)
    over_length: int = 0  # events after which a side held more than ``len`` orders
    count_mismatches: int = 0
    order_mismatches: int = 0
    full_checks: int = 0
    full_check_failures: int = 0
    engine_fills: int = 0
    engine_rejections: Counter[str] = field(default_factory=Counter)  # other than crossing
    prices_distinct: int = 0
    prices_rounded: int = 0  # distinct prices off the tick grid (rounded half-even)
    tick_collisions: int = 0  # distinct prices that share a tick with another
    sizes_rounded: int = 0  # events whose size is off the lot grid
    sizes_zero: int = 0  # sizes that round to no lot (skipped)
    updates_lost_to_grid: int = 0  # updates the file makes that the grid cannot show
    final_orders: int = 0
    final_state_hash: int = 0
    seconds: float = 0.0

    @property
    def defects(self) -> int:
        """Everything the file's ground truth or the engine contradicted (0 on the real file)."""
        return (self.deletes_unknown + self.delete_side_flag_wrong + self.side_flips
                + self.over_length + self.count_mismatches + self.order_mismatches
                + self.full_check_failures + self.engine_fills
                + sum(self.engine_rejections.values()) + self.tick_collisions
                + self.sizes_zero + (not self.snapshot_book_equal) + (not self.snapshot_sorted))

    def summary(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k not in ("crossed_indices",)}
        out["events"] = dict(sorted(self.events.items()))
        out["engine_rejections"] = dict(self.engine_rejections)
        out["final_state_hash"] = f"{self.final_state_hash:016x}"
        out["seconds"] = round(self.seconds, 3)
        out["defects"] = self.defects
        return out


class _Replayer:
    def __init__(self, book: Any, grid: Rescale, length: int, report: ReplayReport) -> None:
        self.book = book
        self.grid = grid
        self.length = length
        self.report = report
        self.orders: dict[int, tuple[int, int, int]] = {}  # file book: id -> (side, tick, lots)
        self.raw: dict[int, tuple[Decimal, Decimal]] = {}  # id -> the file's (price, amount)
        self.held: OrderedDict[int, tuple[int, int, int]] = OrderedDict()
        self.per_side: dict[int, int] = {Side.BUY: 0, Side.SELL: 0}
        self.ticks: dict[Decimal, int] = {}

    def tick(self, price: Decimal) -> int:
        tick = self.ticks.get(price)
        if tick is None:
            tick = self.ticks[price] = self.grid.ticks(price)
        return tick

    def lots(self, amount: Decimal) -> int:
        lots = self.grid.lots(abs(amount))
        if self.grid.size(lots) != abs(amount):
            self.report.sizes_rounded += 1
        return lots

    # -- engine commands -----------------------------------------------------------------------

    def _events(self, events: list[Any]) -> list[Any]:
        for e in events:
            if e.kind == EventKind.FILL:
                self.report.engine_fills += 1
        return events

    def _crossing(self, events: list[Any]) -> bool:
        e = events[0]
        if e.kind != EventKind.REJECTED:
            return False
        if e.reason == RejectReason.POST_ONLY_WOULD_CROSS:
            return True
        self.report.engine_rejections[RejectReason(e.reason).name] += 1
        return False

    def _place(self, oid: int, order: tuple[int, int, int]) -> bool:
        """Place ``order``; False (and nothing placed) if it would cross."""
        side, tick, lots = order
        events = self._events(self.book.place(oid, side, tick, lots, tif=TimeInForce.GTC,
                                              post_only=True, account=FILE_ACCOUNT))
        return not self._crossing(events)

    def _remove(self, oid: int) -> None:
        if self.held.pop(oid, None) is None:
            events = self.book.cancel(oid)
            if events[0].kind != EventKind.CANCELED:
                self.report.engine_rejections["cancel refused"] += 1

    # -- events --------------------------------------------------------------------------------

    def snapshot(self, orders: tuple[RawOrder, ...]) -> None:
        report = self.report
        bids = [o for o in orders if o.side == Side.BUY]
        asks = [o for o in orders if o.side == Side.SELL]
        report.snapshot_bids, report.snapshot_asks = len(bids), len(asks)
        report.snapshot_sorted = (
            list(orders) == bids + asks
            and all(a.price >= b.price for a, b in pairwise(bids))
            and all(a.price <= b.price for a, b in pairwise(asks)))
        for o in orders:
            self.apply(o)
        report.events.clear()  # the counts are of the events after the snapshot
        expected: dict[tuple[int, int], int] = Counter()
        for side, tick, lots in self.orders.values():
            expected[(side, tick)] += lots
        want_bids = sorted(((p, q) for (s, p), q in expected.items() if s == Side.BUY),
                           reverse=True)
        want_asks = sorted((p, q) for (s, p), q in expected.items() if s == Side.SELL)
        have_bids, have_asks = self.book.depth(len(orders) + 1)
        report.snapshot_book_equal = (list(have_bids) == want_bids
                                      and list(have_asks) == want_asks and not self.held)

    def apply(self, raw: RawOrder) -> None:
        report, orders = self.report, self.orders
        oid = raw.order_id
        old = orders.get(oid)
        if raw.is_delete:
            report.events["delete"] += 1
            if old is None:
                report.deletes_unknown += 1
                return
            if raw.side != old[0]:
                report.delete_side_flag_wrong += 1
            self._remove(oid)
            del orders[oid], self.raw[oid]
            self.per_side[old[0]] -= 1
            return
        side, tick, lots = raw.side, self.tick(raw.price), self.lots(raw.amount)
        if lots == 0:
            report.sizes_zero += 1
            return
        new = (side, tick, lots)
        if old is not None and old[0] != side:
            report.side_flips += 1
            self._remove(oid)
            del orders[oid], self.raw[oid]
            self.per_side[old[0]] -= 1
            old = None
        if old is None:
            report.events["add"] += 1
            orders[oid] = new
            self.raw[oid] = (raw.price, raw.amount)
            self.per_side[side] += 1
            if not self._place(oid, new):
                self.held[oid] = new
                report.held_on_arrival += 1
            return
        price, amount = self.raw[oid]
        report.events["update " + ("price and size" if price != raw.price and amount != raw.amount
                                   else "price" if price != raw.price else
                                   "size" if amount != raw.amount else "unchanged")] += 1
        if new == old and (price, amount) != (raw.price, raw.amount):
            report.updates_lost_to_grid += 1
        self.raw[oid] = (raw.price, raw.amount)
        orders[oid] = new
        if oid in self.held:
            self.held[oid] = new
        elif new != old:
            events = self._events(self.book.amend(oid, price=tick if tick != old[1] else None,
                                                  qty=lots if lots != old[2] else None))
            if self._crossing(events):  # the move would cross: take it out and hold it
                self._remove(oid)
                self.held[oid] = new
                report.held_on_arrival += 1

    def release(self) -> None:
        for oid, order in list(self.held.items()):
            if self._place(oid, order):
                del self.held[oid]

    # -- checks --------------------------------------------------------------------------------

    def check(self, raw: RawOrder, full: bool) -> None:
        report, book = self.report, self.book
        if self.held:
            report.crossed_states += 1
            report.crossed_indices.append(raw.index)
            report.max_held = max(report.max_held, len(self.held))
        bids, asks = self.per_side[Side.BUY], self.per_side[Side.SELL]
        report.max_per_side = (max(report.max_per_side[0], bids),
                               max(report.max_per_side[1], asks))
        if bids > self.length or asks > self.length:
            report.over_length += 1
        if len(book) != len(self.orders) - len(self.held):
            report.count_mismatches += 1
        expected = self.orders.get(raw.order_id)
        if expected is not None and raw.order_id not in self.held:
            view = book.order(raw.order_id)
            if view is None or (view.side, view.price, view.qty) != expected:
                report.order_mismatches += 1
        if full:
            self.full_check()

    def full_check(self) -> None:
        report = self.report
        report.full_checks += 1
        bids, asks = self.book.snapshot()
        have = {o.order_id: (o.side, o.price, o.qty) for o in bids + asks}
        want = {oid: o for oid, o in self.orders.items() if oid not in self.held}
        try:
            self.book.check_invariants()
        except Exception:  # an InvariantViolation: a broken book is a failed check
            report.full_check_failures += 1
            return
        if have != want:
            report.full_check_failures += 1


def replay(feed: Feed, book: Any, *, grid: Rescale = GRID, check_every: int = 1000) -> \
        ReplayReport:
    """Drive ``book`` (an empty engine OrderBook) through the feed, order by order, and check
    it against the feed's own ground truth (module docstring)."""
    report = ReplayReport()
    r = _Replayer(book, grid, feed.length, report)
    start = time.perf_counter()
    r.snapshot(feed.snapshot)
    for n, raw in enumerate(feed.updates, 1):
        r.apply(raw)
        if r.held:
            r.release()
        r.check(raw, n % check_every == 0)
    r.full_check()
    prices = {o.price for o in feed.snapshot + feed.updates if not o.is_delete}
    report.prices_distinct = len(prices)
    report.prices_rounded = sum(1 for p in prices if grid.price(r.tick(p)) != p)
    report.tick_collisions = len(prices) - len({r.tick(p) for p in prices})
    report.final_orders = len(book)
    report.final_state_hash = book.state_hash()
    report.seconds = time.perf_counter() - start
    return report
