"""Replay Binance USDⓈ-M websocket recordings: a local book kept by Binance's rules, checked
against the recorded ``bookTicker``, and usable as background liquidity for a Gaemi book.

Theory of operation
-------------------
A recording (the ``hftbacktest`` collector's format, docs/replay.md) is one message per line,
``<local receive time ns> <json>``: the combined streams ``<sym>@depth@0ms`` (diffs),
``<sym>@bookTicker`` and ``<sym>@trade``, and one REST depth snapshot (a line without
``stream``). Every number is decimal text; the reader parses it exactly into an integer count
of 10**-8 (``PLACES``), never a float.

The local book follows Binance's procedure for USDⓈ-M futures: diffs that arrive before the
snapshot are buffered; those with ``u < lastUpdateId`` are dropped; the first diff applied must
bracket the snapshot, ``U <= lastUpdateId + 1`` and ``u >= lastUpdateId`` (Binance's futures
page says ``U <= lastUpdateId``, its spot page ``U <= lastUpdateId + 1``; both are accepted,
since quantities are absolute re-applying an update the snapshot already holds is harmless);
after that every diff's ``pu`` must equal the previous diff's ``u``. A break is a
``SequenceGap``: raised (``on_gap="raise"``), or the book waits for the next snapshot in the
file (``on_gap="resync"``), counting what it could not check meanwhile.

Ground truth. A ``bookTicker`` carries the book update id ``u`` after which it was sent; update
ids are shared with the diff stream, and a diff covers the ids ``U..u``. So each ticker is
checked against the book state its id names:

* ``u`` equal to a diff's final id (or between two diffs): the book after that diff is exactly
  the ticker's state, and its best bid, best ask and both quantities must be equal;
* ``U <= u < final u`` of a diff: the ticker shows a state *inside* a diff, which the diff
  stream (aggregated per ~50 ms) never shows. It is still checked for what the diff implies:
  a level the diff does not list was constant during the whole diff, so the ticker's best bid
  must be a listed price or the best unlisted bid with exactly its quantity, and no unlisted
  bid may be better than the ticker's (likewise asks). A ticker failing that contradicts the
  recording.

``BackgroundLiquidity`` turns the level changes into one resting post-only order per price
level per side of a Gaemi book (an engine ``OrderBook`` through ``EngineSink``, a
``risk.Venue`` market through ``VenueSink``), placed, amended or canceled as the level changes,
with prices and sizes mapped by a ``clients.replay.rescale.Rescale``.
"""

from __future__ import annotations

import gzip
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
from sortedcontainers import SortedDict, SortedList

from gaemi.clients.replay.rescale import Rescale
from gaemi.engine.codes import EventKind, Side, TimeInForce
from gaemi.risk import Venue
from gaemi.risk import commands as C
from gaemi.risk.events import Rejected

__all__ = [
    "PLACES",
    "BackgroundLiquidity",
    "BookTicker",
    "DepthDiff",
    "EngineSink",
    "LiquidityStats",
    "LocalBook",
    "RecordingError",
    "ReplayReport",
    "SequenceGap",
    "Snapshot",
    "Trade",
    "VenueSink",
    "read_recording",
    "replay",
    "sample_file",
]

#: every Binance number is parsed to an exact integer count of 10**-PLACES
PLACES = 8
_SCALE: int = 10**PLACES
Level = tuple[int, int]  # (price, quantity), both in units of 10**-8
_BUY, _SELL = int(Side.BUY), int(Side.SELL)


class RecordingError(ValueError):
    """A line of a recording that cannot be read; ``line`` is 1-based."""

    def __init__(self, line: int, msg: str) -> None:
        super().__init__(f"line {line}: {msg}")
        self.line = line
        self.msg = msg


class SequenceGap(RecordingError):
    """The diff stream broke Binance's sequence rules at ``line``."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The REST depth snapshot: the book as of update id ``last_update_id``."""

    line: int
    local_ns: int
    event_ms: int
    last_update_id: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]


@dataclass(frozen=True, slots=True)
class DepthDiff:
    """A ``depthUpdate``: absolute quantities of the levels that changed in ids ``U..u``."""

    line: int
    local_ns: int
    event_ms: int
    first_id: int  # U
    final_id: int  # u
    prev_final_id: int  # pu
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]


@dataclass(frozen=True, slots=True)
class BookTicker:
    """Best bid and ask after book update ``update_id``."""

    line: int
    local_ns: int
    event_ms: int
    update_id: int
    bid: int
    bid_qty: int
    ask: int
    ask_qty: int


@dataclass(frozen=True, slots=True)
class Trade:
    """One trade; ``buyer_maker`` true means the aggressor sold."""

    line: int
    local_ns: int
    event_ms: int
    trade_ms: int
    trade_id: int
    price: int
    qty: int
    buyer_maker: bool
    order_type: str


Record = Snapshot | DepthDiff | BookTicker | Trade


def _units(text: Any) -> int:
    """Decimal text as an exact integer count of 10**-8 (the fast path of
    ``rescale.decimal_units``: Binance numbers are unsigned plain decimals)."""
    if not isinstance(text, str):
        raise ValueError(f"expected decimal text, got {text!r}")
    whole, _, fraction = text.partition(".")
    digits = whole + fraction
    if not digits.isdigit() or not digits.isascii() or not whole or len(fraction) > PLACES:
        raise ValueError(f"not a decimal with at most {PLACES} places: {text!r}")
    return int(whole) * _SCALE + int(fraction.ljust(PLACES, "0"))


def _levels(rows: Any) -> tuple[Level, ...]:
    return tuple((_units(p), _units(q)) for p, q in rows)


def _int(obj: dict[str, Any], key: str) -> int:
    value = obj[key]
    if value.__class__ is not int:
        raise ValueError(f"{key}: expected an integer, got {value!r}")
    return value


def _parse(n: int, line: str) -> Record | None:
    stamp, _, text = line.partition(" ")
    if not stamp.isdigit() or not stamp.isascii():
        raise ValueError(f"the line starts with a receive time in ns, got {stamp[:30]!r}")
    local_ns = int(stamp)
    obj = orjson.loads(text)
    if not isinstance(obj, dict):
        raise ValueError("a message is a JSON object")
    stream = obj.get("stream")
    if stream is None:
        return Snapshot(n, local_ns, _int(obj, "E"), _int(obj, "lastUpdateId"),
                        _levels(obj["bids"]), _levels(obj["asks"]))
    d = obj["data"]
    if "@depth" in stream:
        return DepthDiff(n, local_ns, _int(d, "E"), _int(d, "U"), _int(d, "u"), _int(d, "pu"),
                         _levels(d["b"]), _levels(d["a"]))
    if stream.endswith("@bookTicker"):
        return BookTicker(n, local_ns, _int(d, "E"), _int(d, "u"), _units(d["b"]),
                          _units(d["B"]), _units(d["a"]), _units(d["A"]))
    if stream.endswith("@trade"):
        if not isinstance(d["m"], bool):
            raise ValueError("m: a boolean")
        return Trade(n, local_ns, _int(d, "E"), _int(d, "T"), _int(d, "t"), _units(d["p"]),
                     _units(d["q"]), d["m"], d.get("X", ""))
    return None  # another stream (markPrice, aggTrade, ...): not used here


def _open_text(path: Path) -> Any:
    with open(path, "rb") as probe:
        gz = probe.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rt", encoding="utf-8") if gz else open(path, encoding="utf-8")


def read_recording(path: Path | str) -> Iterator[Record]:
    """Read a recording (gzip or plain text), one record per line it knows.

    Lines of other streams are skipped; a line that does not parse raises
    ``RecordingError`` naming it."""
    with _open_text(Path(path)) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = _parse(n, line.rstrip("\n"))
            except (ValueError, KeyError, TypeError, IndexError) as exc:
                raise RecordingError(n, f"{type(exc).__name__}: {exc}") from None
            if record is not None:
                yield record


def sample_file(name: str = "btcusdt") -> Path:
    """The embedded sample (clients/replay/data/binance/), or ``name`` itself if it is a path."""
    candidate = Path(name)
    if candidate.parent != Path(".") or candidate.exists():
        return candidate
    data = resources.files("gaemi.clients.replay") / "data" / "binance"
    found = sorted(Path(str(p)) for p in data.iterdir()
                   if p.name.startswith(name) and p.name.endswith(".gz"))
    if not found:
        raise FileNotFoundError(f"no embedded Binance recording named {name!r}")
    return found[0]


# -- the local book ------------------------------------------------------------------------------


Top = tuple[int | None, int, int | None, int]  # bid, bid qty, ask, ask qty (None: empty side)


class LocalBook:
    """A price-level book kept by Binance's documented snapshot + diff procedure."""

    def __init__(self) -> None:
        self.bids: SortedDict = SortedDict()  # price -> qty, best bid is the last key
        self.asks: SortedDict = SortedDict()  # best ask is the first key
        self.last_update_id: int | None = None  # the snapshot's id, then each applied ``u``
        self.awaiting_first = False  # a snapshot is loaded and no diff applied since

    @property
    def synced(self) -> bool:
        return self.last_update_id is not None

    def load(self, snapshot: Snapshot) -> None:
        self.bids = SortedDict(snapshot.bids)
        self.asks = SortedDict(snapshot.asks)
        for side in (self.bids, self.asks):
            for price in [p for p, q in side.items() if q == 0]:
                del side[price]
        self.last_update_id = snapshot.last_update_id
        self.awaiting_first = True

    def unsync(self) -> None:
        self.last_update_id = None
        self.awaiting_first = False

    def apply(self, diff: DepthDiff) -> bool:
        """Apply one diff. False: it predates the snapshot and is dropped. ``SequenceGap`` if
        it does not follow the previous one (or does not bracket the snapshot)."""
        last = self.last_update_id
        if last is None:
            raise SequenceGap(diff.line, "no snapshot loaded")
        if self.awaiting_first:
            if diff.final_id < last:
                return False
            if diff.first_id > last + 1:
                raise SequenceGap(diff.line, f"first diff after the snapshot starts at U="
                                  f"{diff.first_id} > lastUpdateId + 1 = {last + 1}")
            self.awaiting_first = False
        elif diff.prev_final_id != last:
            raise SequenceGap(diff.line, f"pu={diff.prev_final_id} but the previous diff "
                              f"ended at u={last}")
        for side, levels in ((self.bids, diff.bids), (self.asks, diff.asks)):
            for price, qty in levels:
                if qty:
                    side[price] = qty
                else:
                    side.pop(price, None)
        self.last_update_id = diff.final_id
        return True

    def top(self) -> Top:
        bid = self.bids.peekitem(-1) if self.bids else (None, 0)
        ask = self.asks.peekitem(0) if self.asks else (None, 0)
        return bid[0], bid[1], ask[0], ask[1]

    def crossed(self) -> bool:
        return bool(self.bids and self.asks and self.bids.peekitem(-1)[0] >=
                    self.asks.peekitem(0)[0])

    def levels(self) -> list[tuple[int, int, int]]:
        """Every level as ``(side, price, qty)``."""
        return ([(_BUY, p, q) for p, q in self.bids.items()] +
                [(_SELL, p, q) for p, q in self.asks.items()])


# -- the replay ------------------------------------------------------------------------------------


@dataclass
class ReplayReport:
    """What the replay saw, and how the book compared with every ``bookTicker``."""

    lines: Counter[str] = field(default_factory=Counter)  # records by kind
    snapshots_loaded: int = 0
    diffs_applied: int = 0
    diffs_dropped_before_snapshot: int = 0  # buffered diffs with u < lastUpdateId
    diffs_unapplied: int = 0  # buffered while unsynced and never applied
    first_diff: tuple[int, int, int] | None = None  # (U, u, lastUpdateId) of the first applied
    gaps: list[str] = field(default_factory=list)
    crossed_after_diff: int = 0
    levels_changed: int = 0
    tickers_exact: int = 0  # the ticker's id names a state the diffs show
    tickers_exact_equal: int = 0
    tickers_inside_diff: int = 0  # the ticker's id falls strictly inside a diff's U..u
    tickers_inside_consistent: int = 0
    ticker_sides_unlisted: int = 0  # inside a diff, a best level the diff does not list:
    # its price and quantity were checked exactly (two sides per ticker)
    tickers_inside_equal_after: int = 0  # ... and equals the book after that diff anyway
    tickers_inside_equal_before: int = 0  # ... or the book before it
    tickers_unsynced: int = 0  # before the first applied diff, or between a gap and a resync
    tickers_late: int = 0  # arrived more than HISTORY diffs after the diff covering its id
    tickers_after_last_diff: int = 0
    mismatches: list[str] = field(default_factory=list)  # the first few, for people
    trades: int = 0
    trade_id_gaps: int = 0
    trades_buyer_maker: int = 0
    trade_price_range: tuple[int, int] | None = None
    final_top: Top | None = None
    seconds: float = 0.0

    @property
    def tickers(self) -> int:
        return (self.tickers_exact + self.tickers_inside_diff + self.tickers_unsynced
                + self.tickers_late + self.tickers_after_last_diff)

    @property
    def tickers_contradicted(self) -> int:
        return (self.tickers_exact - self.tickers_exact_equal
                + self.tickers_inside_diff - self.tickers_inside_consistent)

    def summary(self) -> dict[str, Any]:
        """The report as plain numbers."""
        return {
            "records": dict(sorted(self.lines.items())),
            "snapshots_loaded": self.snapshots_loaded,
            "diffs_applied": self.diffs_applied,
            "diffs_dropped_before_snapshot": self.diffs_dropped_before_snapshot,
            "diffs_unapplied": self.diffs_unapplied,
            "gaps": len(self.gaps),
            "crossed_after_diff": self.crossed_after_diff,
            "levels_changed": self.levels_changed,
            "tickers": self.tickers,
            "tickers_exact": self.tickers_exact,
            "tickers_exact_equal": self.tickers_exact_equal,
            "tickers_inside_diff": self.tickers_inside_diff,
            "tickers_inside_consistent": self.tickers_inside_consistent,
            "ticker_sides_unlisted": self.ticker_sides_unlisted,
            "tickers_inside_equal_after": self.tickers_inside_equal_after,
            "tickers_inside_equal_before": self.tickers_inside_equal_before,
            "tickers_unsynced": self.tickers_unsynced,
            "tickers_late": self.tickers_late,
            "tickers_after_last_diff": self.tickers_after_last_diff,
            "tickers_contradicted": self.tickers_contradicted,
            "trades": self.trades,
            "trade_id_gaps": self.trade_id_gaps,
            "trades_buyer_maker": self.trades_buyer_maker,
            "seconds": round(self.seconds, 3),
        }


OnBook = Callable[[LocalBook, list[tuple[int, int, int]], "Snapshot | DepthDiff"], None]


@dataclass(frozen=True, slots=True)
class _DiffFacts:
    """What one applied diff tells about every state whose id it covers."""

    first_id: int
    final_id: int
    before: Top  # the book after the previous diff
    after: Top
    listed_bids: frozenset[int]
    listed_asks: frozenset[int]
    unlisted_bid: tuple[int, int] | None  # the best level the diff does not list: constant
    unlisted_ask: tuple[int, int] | None  # throughout the diff
    first: bool  # the first diff after a snapshot: nothing is known before its U


#: how many applied diffs are remembered for tickers that arrive after their diff
HISTORY = 256


class _Replayer:
    def __init__(self, on_gap: str, on_book: OnBook | None, report: ReplayReport) -> None:
        if on_gap not in ("raise", "resync"):
            raise ValueError("on_gap is 'raise' or 'resync'")
        self.on_gap = on_gap
        self.on_book = on_book
        self.report = report
        self.book = LocalBook()
        self.buffer: list[DepthDiff] = []  # diffs waiting for a snapshot
        self.pending: deque[BookTicker] = deque()  # tickers whose diff has not come yet
        self.history: deque[_DiffFacts] = deque(maxlen=HISTORY)
        self.last_trade_id: int | None = None

    # -- records ---------------------------------------------------------------------------

    def snapshot(self, snap: Snapshot) -> None:
        self.book.load(snap)
        self.report.snapshots_loaded += 1
        if self.on_book is not None:
            self.on_book(self.book, self.book.levels(), snap)
        buffered, self.buffer = self.buffer, []
        for i, diff in enumerate(buffered):
            self.diff(diff)
            if not self.book.synced:  # a gap inside the buffer (resync mode): wait again
                self.buffer = buffered[i:]
                return

    def diff(self, diff: DepthDiff) -> None:
        book, report = self.book, self.report
        if not book.synced:
            self.buffer.append(diff)
            return
        first = book.awaiting_first
        snapshot_id = book.last_update_id
        before = book.top()
        try:
            applied = book.apply(diff)
        except SequenceGap as gap:
            report.gaps.append(str(gap))
            if self.on_gap == "raise":
                raise
            book.unsync()
            self.history.clear()
            self.buffer = [diff]
            return
        if not applied:
            report.diffs_dropped_before_snapshot += 1
            return
        if first:
            assert snapshot_id is not None
            report.first_diff = (diff.first_id, diff.final_id, snapshot_id)
        report.diffs_applied += 1
        report.levels_changed += len(diff.bids) + len(diff.asks)
        if book.crossed():
            report.crossed_after_diff += 1
        facts = self._facts(diff, before, first)
        self.history.append(facts)
        pending = self.pending
        while pending and pending[0].update_id <= diff.final_id:
            self._check(pending.popleft(), facts)
        if self.on_book is not None:
            self.on_book(book, [(_BUY, p, q) for p, q in diff.bids] +
                         [(_SELL, p, q) for p, q in diff.asks], diff)

    def _facts(self, diff: DepthDiff, before: Top, first: bool) -> _DiffFacts:
        book = self.book
        listed_bids = frozenset(p for p, _ in diff.bids)
        listed_asks = frozenset(p for p, _ in diff.asks)
        bid = next((p for p in reversed(book.bids) if p not in listed_bids), None)
        ask = next((p for p in book.asks if p not in listed_asks), None)
        return _DiffFacts(diff.first_id, diff.final_id, before, book.top(), listed_bids,
                          listed_asks, None if bid is None else (bid, book.bids[bid]),
                          None if ask is None else (ask, book.asks[ask]), first)

    def ticker(self, t: BookTicker) -> None:
        history = self.history
        if not self.pending and history and t.update_id <= history[-1].final_id:
            # it arrived after the diff covering its id: look that diff up
            later = None
            for facts in reversed(history):
                if facts.first_id <= t.update_id or facts.first:
                    # between this diff and the next one, the book is the next one's "before"
                    covering = facts if t.update_id <= facts.final_id else later
                    assert covering is not None  # the newest diff covers the id (see above)
                    self._check(t, covering)
                    return
                later = facts
            self.report.tickers_late += 1  # older than the history: not checked
            return
        self.pending.append(t)

    def trade(self, t: Trade) -> None:
        report = self.report
        report.trades += 1
        report.trades_buyer_maker += t.buyer_maker
        if self.last_trade_id is not None and t.trade_id != self.last_trade_id + 1:
            report.trade_id_gaps += 1
        self.last_trade_id = t.trade_id
        lo, hi = report.trade_price_range or (t.price, t.price)
        report.trade_price_range = (min(lo, t.price), max(hi, t.price))

    # -- the ticker check ----------------------------------------------------------------------

    def _check(self, t: BookTicker, facts: _DiffFacts) -> None:
        """Check one ticker whose id is at most ``facts.final_id`` and after the diff before."""
        report = self.report
        shown = (t.bid, t.bid_qty, t.ask, t.ask_qty)
        if t.update_id < facts.first_id:
            if facts.first:  # before anything the snapshot and the diffs tell
                report.tickers_unsynced += 1
            else:  # between the previous diff and this one: the book before this one
                self._exact(t, shown, facts.before)
        elif t.update_id == facts.final_id:
            self._exact(t, shown, facts.after)
        else:
            report.tickers_inside_diff += 1
            if self._consistent(t, facts):
                report.tickers_inside_consistent += 1
            else:
                self._mismatch(t, "inside a diff, against a level it does not list")
            report.tickers_inside_equal_after += shown == facts.after
            report.tickers_inside_equal_before += shown == facts.before

    def _exact(self, t: BookTicker, shown: Top, state: Top) -> None:
        self.report.tickers_exact += 1
        if shown == state:
            self.report.tickers_exact_equal += 1
        else:
            self._mismatch(t, f"book {state}")

    def _mismatch(self, t: BookTicker, why: str) -> None:
        if len(self.report.mismatches) < 20:
            self.report.mismatches.append(
                f"line {t.line} u={t.update_id} ticker ({t.bid}, {t.bid_qty}, {t.ask}, "
                f"{t.ask_qty}): {why}")

    def _consistent(self, t: BookTicker, facts: _DiffFacts) -> bool:
        """What a state inside a diff must satisfy: unlisted levels were constant, so the
        ticker's best is a listed price better than every unlisted one, or the best unlisted
        level itself with its quantity."""
        ok = []
        for price, qty, listed, unlisted, sign in (
                (t.bid, t.bid_qty, facts.listed_bids, facts.unlisted_bid, 1),
                (t.ask, t.ask_qty, facts.listed_asks, facts.unlisted_ask, -1)):
            if price in listed:
                ok.append(unlisted is None or sign * unlisted[0] < sign * price)
            else:
                self.report.ticker_sides_unlisted += 1
                ok.append(unlisted == (price, qty))
        return all(ok)

    def finish(self) -> None:
        self.report.tickers_after_last_diff += len(self.pending)
        self.report.diffs_unapplied += len(self.buffer)
        self.pending.clear()
        self.report.final_top = self.book.top() if self.book.synced else None


def replay(records: Iterable[Record], *, on_gap: str = "raise",
           on_book: OnBook | None = None) -> ReplayReport:
    """Keep a local book from a recording and check it against every ``bookTicker``.

    ``on_book(book, changes, record)`` is called after the snapshot is loaded (``changes``:
    every level) and after each applied diff (its levels), with ``(side, price, qty)`` in
    units of 10**-8: this is how ``BackgroundLiquidity`` follows the book.
    """
    report = ReplayReport()
    r = _Replayer(on_gap, on_book, report)
    start = time.perf_counter()
    for record in records:
        kind = type(record)
        report.lines[kind.__name__] += 1
        if kind is DepthDiff:
            r.diff(record)  # type: ignore[arg-type]
        elif kind is BookTicker:
            r.ticker(record)  # type: ignore[arg-type]
        elif kind is Trade:
            r.trade(record)  # type: ignore[arg-type]
        elif kind is Snapshot:
            r.snapshot(record)  # type: ignore[arg-type]
    r.finish()
    report.seconds = time.perf_counter() - start
    return report


# -- background liquidity ----------------------------------------------------------------------


class EngineSink:
    """Background orders straight into an engine ``OrderBook`` (ids from ``first_id`` up)."""

    def __init__(self, book: Any, *, account: int = 9, first_id: int = 2**59) -> None:
        self.book = book
        self.account = account
        self.next_id = first_id
        self.observer: BackgroundLiquidity | None = None

    def place(self, side: int, price: int, qty: int) -> int | None:
        self.next_id += 1
        events = self.book.place(self.next_id, side, price, qty, tif=TimeInForce.GTC,
                                 post_only=True, account=self.account)
        if events[0].kind != EventKind.ACCEPTED:
            return None
        return self.next_id

    def amend(self, order_id: int, qty: int) -> bool:
        # a size change at the same price never trades: there are no fills to observe
        return bool(self.book.amend(order_id, qty=qty)[0].kind == EventKind.AMENDED)

    def cancel(self, order_id: int) -> bool:
        return bool(self.book.cancel(order_id)[0].kind == EventKind.CANCELED)


class VenueSink:
    """Background orders through a ``risk.Venue``'s pipeline, as one account's post-only
    GTC orders in ``symbol`` (the venue assigns the ids; events are kept for the caller)."""

    def __init__(self, venue: Venue, symbol: str, account: int) -> None:
        self.venue = venue
        self.symbol = symbol
        self.account = account
        self.rejections: Counter[int] = Counter()
        self.observer: BackgroundLiquidity | None = None

    def _submit(self, command: Any) -> list[Any]:
        events = self.venue.submit(command)
        if len(events) == 1 and events[0].kind == "rejected":
            self.rejections[events[0].reason] += 1
        elif self.observer is not None:
            self.observer.observe(events)
        return events

    def place(self, side: int, price: int, qty: int) -> int | None:
        events = self._submit(C.PlaceOrder(self.account, self.symbol, side, price, qty,
                                                 TimeInForce.GTC, True))
        for e in events:
            if e.kind == "order_accepted":
                return int(e.order_id)
        return None

    def amend(self, order_id: int, qty: int) -> bool:
        events = self._submit(C.AmendOrder(self.account, self.symbol, order_id, qty=qty))
        return type(events[0]) is not Rejected

    def cancel(self, order_id: int) -> bool:
        events = self._submit(C.CancelOrder(self.account, self.symbol, order_id))
        return type(events[0]) is not Rejected


@dataclass
class LiquidityStats:
    places: int = 0
    amends: int = 0
    cancels: int = 0
    refused: int = 0  # a place or amend the book refused (post-only would cross, risk, ...)
    fills_observed: int = 0  # background orders traded by someone else


class BackgroundLiquidity:
    """One resting order per price level per side, following a level book.

    Feed it ``(side, price, qty)`` level changes in source units (``update``; ``on_book`` of
    ``replay`` does). Source levels that map to the same tick are summed (exactly, in source
    units) and the sum is mapped to lots once: ``lots = round_half_even(sum * size_ratio)``.
    Prices map outward by default (bids down, asks up: the mapped book cannot cross); use
    ``rounding="exact"`` to refuse any price off the target grid. ``levels``: mirror only the
    best ``levels`` non-empty target levels per side (None: all of them).

    A level's order is placed when the level appears, amended to the new size when it
    changes (a decrease keeps queue priority, an increase re-queues it, the engine's rule),
    and canceled when it empties or leaves the window. Removals and decreases go first, so
    the book never holds a stale level on the other side of a new one. Fills by other
    traders (``observe``) lower the order's open size; the next change of that level amends
    it back to the recorded size.
    """

    def __init__(self, rescale: Rescale, sink: Any, *, levels: int | None = None,
                 rounding: str = "outward") -> None:
        if rounding not in ("outward", "exact"):
            raise ValueError("rounding is 'outward' or 'exact'")
        self.sink = sink
        sink.observer = self
        self.levels = levels
        to_ticks = rescale.unit_mapper(PLACES, "price")
        self._to_lots = rescale.unit_mapper(PLACES, "size")
        rules = {_BUY: "floor", _SELL: "ceil"} if rounding == "outward" else \
            {_BUY: "exact", _SELL: "exact"}
        self._to_tick = {side: (lambda p, rule=rule: to_ticks(p, rule))
                         for side, rule in rules.items()}
        self._tick_of: dict[int, dict[int, int]] = {_BUY: {}, _SELL: {}}  # source -> tick
        self._source: dict[int, dict[int, int]] = {_BUY: {}, _SELL: {}}  # price -> qty
        # per tick, the exact sum of the source quantities mapped there; its ticks, sorted
        self._sum: dict[int, dict[int, int]] = {_BUY: {}, _SELL: {}}
        self._ticks: dict[int, SortedList] = {_BUY: SortedList(), _SELL: SortedList()}
        self._orders: dict[int, dict[int, list[int]]] = {_BUY: {}, _SELL: {}}
        self._owner: dict[int, tuple[int, int]] = {}  # order id -> (side, tick)
        self.stats = LiquidityStats()

    # -- the target book ------------------------------------------------------------------------

    def target(self, side: int, n: int | None = None) -> list[tuple[int, int]]:
        """The mapped levels ``(tick, lots)`` of one side, best first (lots > 0 only)."""
        sums, to_lots = self._sum[side], self._to_lots
        ticks = self._ticks[side]
        out = []
        for tick in (reversed(ticks) if side == _BUY else ticks):
            lots = to_lots(sums[tick])
            if lots > 0:
                out.append((tick, lots))
                if n is not None and len(out) == n:
                    break
        return out

    def on_book(self, book: LocalBook, changes: list[tuple[int, int, int]],
                record: Any) -> None:
        """``replay``'s callback: a snapshot replaces everything, a diff changes levels."""
        if isinstance(record, Snapshot):
            for side in (_BUY, _SELL):
                changes = [(side, p, 0) for p in self._source[side]] + changes
        self.update(changes)

    def update(self, changes: Iterable[tuple[int, int, int]]) -> None:
        touched: dict[int, set[int]] = {_BUY: set(), _SELL: set()}
        for side, price, qty in changes:
            source = self._source[side]
            old = source.get(price, 0)
            if qty == old:
                continue
            if qty:
                source[price] = qty
            else:
                del source[price]
            tick_of = self._tick_of[side]
            tick = tick_of.get(price)
            if tick is None:
                tick = tick_of[price] = self._to_tick[side](price)
            sums = self._sum[side]
            before = sums.get(tick, 0)
            total = before + qty - old
            if total:
                sums[tick] = total
                if not before:
                    self._ticks[side].add(tick)
            else:
                del sums[tick]
                self._ticks[side].remove(tick)
            touched[side].add(tick)
        wanted: dict[int, dict[int, int]] = {}
        for side in (_BUY, _SELL):
            if self.levels is None:
                sums, to_lots = self._sum[side], self._to_lots
                wanted[side] = {t: to_lots(sums.get(t, 0)) for t in touched[side]}
            else:
                window = dict(self.target(side, self.levels))
                wanted[side] = {t: window.get(t, 0)
                                for t in set(window) | set(self._orders[side])}
        self._reconcile(wanted)

    def _reconcile(self, wanted: dict[int, dict[int, int]]) -> None:
        grow = []
        for side, ticks in wanted.items():
            orders = self._orders[side]
            for tick, lots in ticks.items():
                held = orders.get(tick)
                if held is None:
                    if lots > 0:
                        grow.append((side, tick, lots))
                elif lots <= 0:
                    self._cancel(side, tick, held[0])
                elif lots < held[1]:
                    self._amend(side, tick, held, lots)
                elif lots > held[1]:
                    grow.append((side, tick, lots))
        for side, tick, lots in grow:
            held = self._orders[side].get(tick)
            if held is None:
                self._place(side, tick, lots)
            else:
                self._amend(side, tick, held, lots)

    def _place(self, side: int, tick: int, lots: int) -> None:
        order_id = self.sink.place(side, tick, lots)
        if order_id is None:
            self.stats.refused += 1
            return
        self.stats.places += 1
        self._orders[side][tick] = [order_id, lots]
        self._owner[order_id] = (side, tick)

    def _amend(self, side: int, tick: int, held: list[int], lots: int) -> None:
        if self.sink.amend(held[0], lots):
            self.stats.amends += 1
            if held[0] in self._owner:  # not filled away while re-queued
                held[1] = lots
        else:
            self.stats.refused += 1

    def _cancel(self, side: int, tick: int, order_id: int) -> None:
        if self.sink.cancel(order_id):
            self.stats.cancels += 1
        self._forget(order_id)

    def _forget(self, order_id: int) -> None:
        owned = self._owner.pop(order_id, None)  # the sink may have reported it already
        if owned is not None:
            del self._orders[owned[0]][owned[1]]

    # -- other traders --------------------------------------------------------------------------

    def observe(self, events: Iterable[Any]) -> None:
        """Follow fills and cancels of background orders caused by anyone: engine ``Event``s
        (FILL, CANCELED, EXPIRED) or venue events (``fill``, ``order_canceled``)."""
        for e in events:
            kind = e.kind
            if kind == EventKind.FILL or kind == "fill":
                maker = e.maker_id if kind == EventKind.FILL else e.maker_order_id
                if maker in self._owner:
                    self.stats.fills_observed += 1
                    side, tick = self._owner[maker]
                    if e.maker_remaining:
                        self._orders[side][tick][1] = e.maker_remaining
                    else:
                        self._forget(maker)
            elif (kind in (EventKind.CANCELED, EventKind.EXPIRED) or kind == "order_canceled") \
                    and e.order_id in self._owner:
                self._forget(e.order_id)
