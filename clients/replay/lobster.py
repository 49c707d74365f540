"""Replay LOBSTER NASDAQ order flow through a Gaemi order book and check it against the file.

Theory of operation
-------------------
A LOBSTER sample is two files: messages (one event per row) and the visible book after each
message, to depth L (docs/replay.md has the formats). The replay drives the book with the
day's events, one engine command per message:

* type 1 (new limit order)   -> ``place`` GTC at the file's price, with the file's order id;
* type 2 (partial cancel)    -> ``amend`` to the smaller open size (keeps queue priority);
* type 3 (delete)            -> ``cancel``;
* type 4 (visible execution) -> an aggressive IOC from the other side at the execution price,
  which must fill against the very order the file names (price-time priority);
* types 5, 6, 7              -> no change to the visible book.

Prices stay in LOBSTER's unit ($0.0001), which is then the book's tick: exact, no rounding.

Unknown liquidity. A level-L file only shows events that touch the top L levels, and the day
starts with a book already full. Orders that rested before the file starts, or arrived while
their price was deeper than L, are unknown; so are cancels of known orders that happened while
they were deeper than L. Before each message the replay *aligns* the book with the file's
previous row, inside the window that row shows (its L levels per side):

* missing size at a shown level becomes one **synthetic order** (reserved id range, its own
  account) at the tail of that level;
* size beyond what the row shows is **stale**: synthetic size is removed first, then
  *uncertain* orders (those whose price has left the window since they were placed), then
  the rest, each from the tail of the queue (which orders really left is unknowable);
* levels the row proves empty (better than its best, or between two shown levels) are cleared.

When a message names an order the book does not hold, the order is carved out of the
uncertain size at its price: for an execution it becomes the head of its queue (the file
says it was matched first), for a cancel the uncertain orders shrink. When an execution
names a known order with uncertain orders ahead of it, those move behind it; a *certain*
order ahead of it is a defect.

Checks. After every message the book's top L levels are compared with the file's row (the
*transition* check: alignment only ever uses the *previous* row). Differences are sorted into
"a level entered from beyond the window" and "after a message on a hidden level" (data limits
of the file) and unexplained rows (defects); docs/replay.md gives the rules and the figures.
"""

from __future__ import annotations

import gzip
import time
from array import array
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from gaemi.engine import Book, BookEvent
from gaemi.engine.codes import EventKind, Side, TimeInForce
from gaemi.engine.events import encode_amend, encode_cancel, encode_place

__all__ = [
    "BookRow",
    "Message",
    "ReplayReport",
    "read_messages",
    "read_orderbook",
    "replay",
    "sample_files",
]

#: LOBSTER marks an empty level with these prices and size 0
EMPTY_ASK = 9999999999
EMPTY_BID = -9999999999
#: order ids the replay invents; LOBSTER ids are far below these
SYNTHETIC_ID_BASE = 2**61
TAKER_ID_BASE = 2**60
#: accounts: the file's own orders, synthetic liquidity, the replay's aggressors
FILE_ACCOUNT, SYNTHETIC_ACCOUNT, TAKER_ACCOUNT = 1, 2, 3


@dataclass(frozen=True, slots=True)
class Message:
    """One row of a LOBSTER message file."""

    time_ns: int  # nanoseconds after midnight (exact: parsed from the decimal text)
    type: int
    order_id: int
    size: int
    price: int  # dollars x 10000
    direction: int  # 1 buy, -1 sell; for executions the side of the resting order


@dataclass(frozen=True, slots=True)
class BookRow:
    """The visible book after one message: ``(price, size)`` levels, best first."""

    bids: tuple[tuple[int, int], ...]
    asks: tuple[tuple[int, int], ...]


def _open_text(path: Path) -> Any:
    return gzip.open(path, "rt") if path.suffix == ".gz" else open(path)


def _time_ns(text: str) -> int:
    seconds, _, fraction = text.partition(".")
    return int(seconds) * 1_000_000_000 + int((fraction + "000000000")[:9])


def read_messages(path: Path) -> Iterator[Message]:
    """Read a LOBSTER message file (``.csv`` or ``.csv.gz``, no header)."""
    with _open_text(path) as f:
        for line in f:
            if not line.strip():
                continue
            t, kind, oid, size, price, direction = line.strip().split(",")[:6]
            yield Message(_time_ns(t), int(kind), int(oid), int(size), int(price), int(direction))


def read_orderbook(path: Path) -> Iterator[BookRow]:
    """Read a LOBSTER orderbook file; empty levels are dropped from the row."""
    with _open_text(path) as f:
        for line in f:
            if not line.strip():
                continue
            values = [int(v) for v in line.strip().split(",")]
            asks = tuple((values[i], values[i + 1]) for i in range(0, len(values), 4)
                         if values[i] != EMPTY_ASK and values[i + 1] > 0)
            bids = tuple((values[i + 2], values[i + 3]) for i in range(0, len(values), 4)
                         if values[i + 2] != EMPTY_BID and values[i + 3] > 0)
            yield BookRow(bids, asks)


def sample_files(name: str = "AMZN") -> tuple[Path, Path, int]:
    """The embedded sample for a ticker (AMZN: the full day at level 1; AAPL: 49 s at level 10).

    ``name`` may also be a path prefix ending just before ``_message_L.csv[.gz]``.
    Returns ``(message_file, orderbook_file, levels)``.
    """
    candidates: Iterable[Path]
    prefix = Path(name)
    if prefix.parent != Path("."):
        candidates = prefix.parent.glob(prefix.name + "*_message_*.csv*")
    else:
        data = resources.files("gaemi.clients.replay") / "data" / "lobster"
        candidates = (Path(str(p)) for p in data.iterdir() if p.name.startswith(name + "_")
                      and "_message_" in p.name)
    found = sorted(candidates)
    if not found:
        raise FileNotFoundError(f"no LOBSTER message file for {name!r}")
    message = found[0]
    levels = int(message.name.split("_message_")[1].split(".")[0])
    orderbook = message.with_name(message.name.replace("_message_", "_orderbook_"))
    return message, orderbook, levels


@dataclass
class ReplayReport:
    """What the replay saw and how well the book reproduced the file."""

    levels: int = 0
    messages: Counter[int] = field(default_factory=Counter)
    rows_compared: int = 0
    rows_equal: int = 0
    rows_beyond_window: int = 0  # differ only in a level that entered from beyond depth L
    rows_after_data_limit: int = 0  # the message met an order of a level that had been hidden
    rows_unexplained: int = 0
    executions: int = 0
    executions_hit_named: int = 0
    executions_named_known: int = 0  # the named order was already in the book
    executions_named_carved: int = 0  # carved out of synthetic (pre-file or deeper) liquidity
    executions_requeued: int = 0  # the named order was known but not at the head of its queue
    synthetic_orders: int = 0
    synthetic_lots: int = 0
    stale_lots_removed: int = 0
    data_limits: Counter[str] = field(default_factory=Counter)  # explained by hidden levels
    defects: Counter[str] = field(default_factory=Counter)  # not explained by the data
    engine_commands: int = 0
    seconds: float = 0.0
    final_state_hash: int = 0
    commands: array[int] = field(default_factory=lambda: array("q"))

    @property
    def row_match_fraction(self) -> float:
        return self.rows_equal / self.rows_compared if self.rows_compared else 0.0

    @property
    def row_explained_fraction(self) -> float:
        ok = self.rows_equal + self.rows_beyond_window + self.rows_after_data_limit
        return ok / self.rows_compared if self.rows_compared else 0.0

    @property
    def execution_hit_fraction(self) -> float:
        return self.executions_hit_named / self.executions if self.executions else 0.0

    @property
    def known_head_fraction(self) -> float:
        """Of the executions naming an order the book knew, how many found it at the head
        of its queue with no correction: the plain test of price-time priority."""
        known = self.executions_named_known
        return (known - self.executions_requeued) / known if known else 0.0

    def summary(self) -> dict[str, Any]:
        """The report as plain numbers (what `gaemi replay --json` prints)."""
        return {
            "levels": self.levels,
            "messages": sum(self.messages.values()),
            "messages_by_type": {str(k): v for k, v in sorted(self.messages.items())},
            "rows_compared": self.rows_compared,
            "rows_equal": self.rows_equal,
            "row_match_fraction": round(self.row_match_fraction, 6),
            "rows_differing_by_level_from_beyond_window": self.rows_beyond_window,
            "rows_differing_after_a_data_limit": self.rows_after_data_limit,
            "rows_unexplained": self.rows_unexplained,
            "row_explained_fraction": round(self.row_explained_fraction, 6),
            "executions": self.executions,
            "executions_hit_named_order": self.executions_hit_named,
            "execution_hit_fraction": round(self.execution_hit_fraction, 6),
            "executions_named_known": self.executions_named_known,
            "executions_named_known_requeued": self.executions_requeued,
            "known_named_order_at_head_fraction": round(self.known_head_fraction, 6),
            "executions_named_carved_from_unknown": self.executions_named_carved,
            "synthetic_orders": self.synthetic_orders,
            "synthetic_lots": self.synthetic_lots,
            "stale_lots_removed": self.stale_lots_removed,
            "data_limits": dict(sorted(self.data_limits.items())),
            "defects": dict(sorted(self.defects.items())),
            "engine_commands": self.engine_commands,
            "seconds": round(self.seconds, 3),
            "final_state_hash": f"{self.final_state_hash:016x}",
        }


class _HiddenSince:
    """Answers "has this price left the visible window since message i?" for one side.

    ``record(i, edge)`` stores the window's far edge after message i (the worst shown bid, or
    minus the worst shown ask), or nothing when the row shows the whole side. A price with
    key ``k`` (the price for bids, minus the price for asks) is hidden when ``edge > k``. A
    suffix-maximum stack answers each question in O(log n).
    """

    def __init__(self) -> None:
        self._index: list[int] = []
        self._edge: list[int] = []

    def record(self, i: int, edge: int | None) -> None:
        if edge is None:
            return
        while self._edge and self._edge[-1] <= edge:
            self._index.pop()
            self._edge.pop()
        self._index.append(i)
        self._edge.append(edge)

    def hidden_since(self, i: int, key: int) -> bool:
        """True if some row from message i on had its edge beyond ``key`` (the price hidden)."""
        at = bisect_left(self._index, i)
        return at < len(self._edge) and self._edge[at] > key


class _Replayer:
    """Drives one book through one file; every book command is also recorded as a batch row."""

    def __init__(self, book: Book, levels: int, report: ReplayReport) -> None:
        self.book = book
        self.levels = levels
        self.report = report
        self.rec = report.commands
        self.next_synthetic = SYNTHETIC_ID_BASE
        self.next_taker = TAKER_ID_BASE
        self.now = 0
        self.placed_at: dict[int, int] = {}  # file order id -> message index it was placed at
        self.hidden = {Side.BUY: _HiddenSince(), Side.SELL: _HiddenSince()}

    # -- book commands, recorded ----------------------------------------------------------

    def place(self, oid: int, side: int, price: int, qty: int, tif: int = TimeInForce.GTC,
              account: int = FILE_ACCOUNT) -> Sequence[BookEvent]:
        encode_place(self.rec, oid, side, price, qty, tif=tif, account=account)
        return self.book.place(oid, side, price, qty, tif=tif, account=account)

    def cancel(self, oid: int) -> Sequence[BookEvent]:
        encode_cancel(self.rec, oid)
        return self.book.cancel(oid)

    def amend(self, oid: int, qty: int) -> Sequence[BookEvent]:
        encode_amend(self.rec, oid, qty=qty)
        return self.book.amend(oid, qty=qty)

    def _uncertain(self, order: Any) -> bool:
        """Synthetic, or a file order whose level has been hidden since it was placed."""
        if order.account != FILE_ACCOUNT:
            return True
        key = order.price if order.side == Side.BUY else -order.price
        return self.hidden[order.side].hidden_since(self.placed_at.get(order.order_id, 0), key)

    # -- alignment with the previous row ---------------------------------------------------

    def align(self, row: BookRow) -> None:
        for side, shown in ((Side.BUY, row.bids), (Side.SELL, row.asks)):
            self._align_side(side, shown)

    def _align_side(self, side: Side, shown: tuple[tuple[int, int], ...]) -> None:
        wanted = dict(shown)
        # the window the row shows: down to its last level, or the whole side when the row
        # shows fewer than L levels (then the side has no more)
        last = shown[-1][0] if len(shown) == self.levels else None
        for price, total in self._window(side, last):
            want = wanted.get(price, 0)
            if total > want:
                self._remove_stale(self.book.orders_at(side, price), total - want)
        for price, want in shown:
            have = sum(o.qty for o in self.book.orders_at(side, price))
            if want > have:
                self._add_synthetic(side, price, want - have)

    def record_window(self, row: BookRow) -> None:
        """Remember how far the window reached after this message (for ``_uncertain``)."""
        # a bid is hidden below the worst shown bid, an ask above the worst shown ask; with
        # key = price for bids and -price for asks, "hidden" is always "edge > key"
        bids_edge = row.bids[-1][0] if len(row.bids) == self.levels else None
        asks_edge = -row.asks[-1][0] if len(row.asks) == self.levels else None
        self.hidden[Side.BUY].record(self.now, bids_edge)
        self.hidden[Side.SELL].record(self.now, asks_edge)

    def _window(self, side: Side, last: int | None) -> list[tuple[int, int]]:
        """The book's levels on ``side`` from the best down to ``last`` (all if None)."""
        n = self.levels + 2
        while True:
            bids, asks = self.book.depth(n)
            levels = bids if side is Side.BUY else asks
            inside = [lv for lv in levels if last is None
                      or (lv[0] >= last if side is Side.BUY else lv[0] <= last)]
            if len(inside) < n:
                return inside
            n *= 4

    def _remove_stale(self, orders: list[Any], excess: int) -> None:
        # synthetic size first, then uncertain file orders, then the rest; each from the tail
        ranked = sorted(reversed(orders), key=lambda o: (o.account == FILE_ACCOUNT,
                                                         not self._uncertain(o)))
        certain = {o.order_id for o in ranked if not self._uncertain(o)}
        taken = self._take(ranked, excess)
        self.report.stale_lots_removed += sum(taken.values())
        removed_certain = certain.intersection(taken)
        if removed_certain:
            self.report.defects["certain order removed as stale"] += len(removed_certain)

    def _take(self, orders: list[Any], amount: int) -> dict[int, int]:
        """Remove ``amount`` lots from ``orders``, in the order given; returns lots per id."""
        taken: dict[int, int] = {}
        for o in orders:
            if amount == 0:
                break
            cut = min(amount, o.qty)
            if cut == o.qty:
                self.cancel(o.order_id)
            else:
                self.amend(o.order_id, o.qty - cut)
            amount -= cut
            taken[o.order_id] = cut
        return taken

    def _add_synthetic(self, side: Side, price: int, qty: int) -> None:
        self.next_synthetic += 1
        self.place(self.next_synthetic, side, price, qty, account=SYNTHETIC_ACCOUNT)
        self.report.synthetic_orders += 1
        self.report.synthetic_lots += qty

    def _carve(self, msg: Message, to_head: bool) -> bool:
        """Turn uncertain size at the message's price into the order it names.

        Takes size from synthetic orders first, then from file orders whose level has been
        hidden since they were placed (they may have left unseen). Returns False, changing
        nothing, if there is not that much uncertain size there.
        """
        side = Side(msg.direction)
        orders = self.book.orders_at(side, msg.price)
        pool = sorted((o for o in reversed(orders) if self._uncertain(o)),
                      key=lambda o: o.account == FILE_ACCOUNT)
        if sum(o.qty for o in pool) < msg.size:
            return False
        self._take(pool, msg.size)
        self.placed_at[msg.order_id] = self.now
        if to_head:  # the file says the named order was matched first: it heads the queue
            self._move_to_head(side, msg.price, msg.order_id, msg.size)
        else:
            self.place(msg.order_id, side, msg.price, msg.size)
        return True

    def _move_to_head(self, side: Side, price: int, oid: int, qty: int | None) -> None:
        """Put ``oid`` at the head of its level (placing it with ``qty`` if given); everything
        else there keeps its relative order behind it."""
        rest = [o for o in self.book.orders_at(side, price) if o.order_id != oid]
        for o in rest:
            self.cancel(o.order_id)
        if qty is not None:
            self.place(oid, side, price, qty)
        for o in rest:
            self.place(o.order_id, side, price, o.qty, account=o.account)

    # -- messages ---------------------------------------------------------------------------

    def apply(self, i: int, msg: Message) -> None:
        self.now = i
        kind = msg.type
        if kind == 1:
            events = self.place(msg.order_id, msg.direction, msg.price, msg.size)
            if events[0].kind == EventKind.ACCEPTED:
                self.placed_at[msg.order_id] = i
            else:
                self.report.defects[f"add rejected: {events[0].reason.name}"] += 1
        elif kind in (2, 3):
            self._apply_cancel(msg)
        elif kind == 4:
            self._apply_execution(msg)

    def _note(self, order: Any, what: str) -> None:
        # a surprise about a known order: a data limit if its level was hidden, else a defect
        if self._uncertain(order):
            self.report.data_limits[what] += 1
        else:
            self.report.defects[what] += 1

    def _apply_cancel(self, msg: Message) -> None:
        resting = self.book.order(msg.order_id)
        if resting is None:
            if self._carve(msg, to_head=False):
                self.report.data_limits["cancel of an order placed while hidden"] += 1
                resting = self.book.order(msg.order_id)
                assert resting is not None  # _carve placed it
            else:
                self.report.defects["cancel of an unknown order, no uncertain size"] += 1
                return
        if msg.type == 3 or msg.size >= resting.qty:
            if msg.size != resting.qty:
                self._note(resting, "delete size differs from the open size")
            self.cancel(msg.order_id)
        else:
            self.amend(msg.order_id, resting.qty - msg.size)

    def _apply_execution(self, msg: Message) -> None:
        report = self.report
        report.executions += 1
        resting = self.book.order(msg.order_id)
        if resting is not None:
            report.executions_named_known += 1
            if resting.qty < msg.size:
                self._note(resting, "execution larger than the open size")
            queue = self.book.orders_at(resting.side, resting.price)
            ahead = queue[: [o.order_id for o in queue].index(msg.order_id)]
            if ahead:
                report.executions_requeued += 1
                if all(self._uncertain(o) for o in ahead):
                    report.data_limits["hidden-level orders requeued behind the named one"] += 1
                else:
                    report.defects["a certain order stood ahead of the named one"] += 1
                self._move_to_head(resting.side, resting.price, msg.order_id, None)
        elif self._carve(msg, to_head=True):
            report.executions_named_carved += 1
        else:
            report.defects["execution of an unknown order, no uncertain size"] += 1
        self.next_taker += 1
        events = self.place(self.next_taker, -msg.direction, msg.price, msg.size,
                            tif=TimeInForce.IOC, account=TAKER_ACCOUNT)
        fills = [e for e in events if e.kind == EventKind.FILL]
        if fills and fills[0].maker_id == msg.order_id:
            report.executions_hit_named += 1
        if sum(e.qty for e in fills) != msg.size:
            report.defects["execution filled a different size"] += 1

    # -- the check ---------------------------------------------------------------------------

    def compare(self, before: BookRow, after: BookRow, msg: Message,
                met_data_limit: bool) -> None:
        report = self.report
        report.rows_compared += 1
        bids, asks = self.book.depth(self.levels)
        if tuple(bids) == after.bids and tuple(asks) == after.asks:
            report.rows_equal += 1
            return
        sides = ((bids, after.bids, before.bids, Side.BUY), (asks, after.asks, before.asks,
                                                              Side.SELL))
        if all(_differences(have, want, before_side) == [] for have, want, before_side, _ in
               sides):
            report.rows_beyond_window += 1
        elif met_data_limit and all(
                all(side == msg.direction and msg.price in prices for prices in
                    _differences(have, want, before_side))
                for have, want, before_side, side in sides):
            # every difference involves the level the message touched, and the message met
            # an order whose level had been hidden
            report.rows_after_data_limit += 1
        else:
            report.rows_unexplained += 1


def _differences(have: list[tuple[int, int]], want: tuple[tuple[int, int], ...],
                 before: tuple[tuple[int, int], ...]) -> list[list[int]]:
    """The prices (book's, file's) at each position where book and file differ, except
    positions the file never showed.

    A difference is excused (left out) only when neither the book's level nor the file's
    level at that position was visible in the previous row: such a level entered the window
    from beyond depth L with a size the file had never shown.
    """
    seen = {price for price, _ in before}
    out = []
    for i in range(max(len(have), len(want))):
        h = have[i] if i < len(have) else None
        w = want[i] if i < len(want) else None
        if h == w:
            continue
        shown = [lv[0] for lv in (h, w) if lv is not None]
        if any(price in seen for price in shown):
            out.append(shown)
    return out


def _undo(row: BookRow, msg: Message, levels: int) -> BookRow:
    """The row before ``msg``, as far as the row after it and the message determine it."""
    sign = {1: -1, 2: 1, 3: 1, 4: 1}.get(msg.type)
    if sign is None:
        return row
    side = dict(row.bids if msg.direction == 1 else row.asks)
    side[msg.price] = side.get(msg.price, 0) + sign * msg.size
    ordered = sorted(((p, s) for p, s in side.items() if s > 0),
                     key=lambda ps: -ps[0] if msg.direction == 1 else ps[0])[:levels]
    if msg.direction == 1:
        return BookRow(tuple(ordered), row.asks)
    return BookRow(row.bids, tuple(ordered))


def replay(
    messages: Iterable[Message],
    rows: Iterable[BookRow],
    book: Any,
    levels: int,
    progress: Callable[[int], None] | None = None,
) -> ReplayReport:
    """Replay a LOBSTER file through ``book`` (an empty ``engine`` OrderBook) and check it.

    ``report.commands`` holds every command the book received, in the batch format, so the
    same day can be re-run through ``apply_batch`` (benches/ and ``gaemi replay`` do).
    """
    report = ReplayReport(levels=levels)
    replayer = _Replayer(book, levels, report)
    previous: BookRow | None = None
    start = time.perf_counter()
    for i, (msg, row) in enumerate(zip(messages, rows, strict=True)):
        report.messages[msg.type] += 1
        if previous is None:
            previous = _undo(row, msg, levels)
        replayer.align(previous)
        limits = sum(report.data_limits.values())
        replayer.apply(i, msg)
        replayer.compare(previous, row, msg, sum(report.data_limits.values()) > limits)
        replayer.record_window(row)
        previous = row
        if progress is not None and i % 1000 == 0:
            progress(i)
    report.seconds = time.perf_counter() - start
    report.engine_commands = len(report.commands) // 9
    report.final_state_hash = book.state_hash()
    return report
