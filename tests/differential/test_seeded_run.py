"""A seeded long differential run: 100,000 realistic commands on both book implementations.

One command stream, generated from ``random.Random(seed)`` while it runs (cancels and amends
pick resting orders, so the stream depends on the book), goes to a reference book
(``engine.reference``) and a compiled book (``engine._book``) through the per-call methods.
After every command the two event lists must be equal and both books must pass
``check_invariants()``; ``state_hash()`` is compared every 100 commands and at the end.
Then the recorded stream runs again through ``apply_batch`` on fresh books of both
implementations, in chunks of 10,000 rows, and the batch events (tagged with the command
index) and final hashes must equal the per-call ones.

The mix is 55 : 10 : 2 : 3 : 5 : 20 : 10 of GTC limit, IOC, FOK, market, post-only, cancel
and amend (those parts add up to 105, so each is scaled by 1/1.05), plus a sprinkle (0.5%) of
invalid commands (bad values, duplicate ids, unknown ids). Prices
follow a random walk around 10,000 ticks over about 100 levels; eight accounts trade, each
with a usual self-trade-prevention mode. The resting book stays around a few hundred orders
(far-away orders are cancelled more often when it grows), which keeps the reference book's
``check_invariants()`` cheap enough to run after every command.

The seed is printed. ``GAEMI_SEED`` overrides the default seed. With ``ENGINE_PUREPYTHON=1``
the test is skipped (the compiled book is not to be used); otherwise the compiled extension
must import.
"""

from __future__ import annotations

import os
import random
import time
from array import array
from collections import Counter
from typing import Any

import pytest

from gaemi.engine import book_class
from gaemi.engine.codes import EventKind, RejectReason, SelfTradePrevention, Side, TimeInForce
from gaemi.engine.errors import InvariantViolation
from gaemi.engine.events import EVENT_WIDTH, encode_amend, encode_cancel, encode_place

PURE_PYTHON = os.environ.get("ENGINE_PUREPYTHON") == "1"


DEFAULT_SEED = 20_240_611
N_COMMANDS = 100_000
HASH_EVERY = 100
CHUNK = 10_000

MID, MID_RANGE = 10_000, 50  # the walk stays within MID +- MID_RANGE
TARGET_BOOK = 300  # resting orders the flow steers towards
N_ACCOUNTS = 8

BUY, SELL = Side.BUY, Side.SELL
GTC, IOC, FOK = TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK
STP = SelfTradePrevention
STP_REASON = RejectReason.SELF_TRADE_PREVENTED

# a command: ("place", order_id, side, price|None, qty, tif, post_only, stp, account),
# ("cancel", order_id) or ("amend", order_id, price|None, qty|None)
Cmd = tuple


class Flow:
    """Generates a realistic command stream, steered by what rests in the book."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.mid = MID
        self.next_id = 1
        self.live: list[int] = []  # resting order ids, for O(1) random choice
        self.where: dict[int, int] = {}  # id -> index in self.live
        # accounts 1..5 usually use STP NONE, CANCEL_RESTING, ..., DECREMENT; 6..8 vary
        self.home_stp = {a: (STP(a - 1) if a <= 5 else None) for a in range(1, N_ACCOUNTS + 1)}

    # -- bookkeeping -------------------------------------------------------------------------

    def observe(self, events: list[Any], book: Any) -> None:
        """Update the set of resting ids from the ids the events touched."""
        touched = set()
        for e in events:
            if e.order_id:
                touched.add(e.order_id)
            if e.maker_id:
                touched.add(e.maker_id)
        for order_id in touched:
            resting = book.order(order_id) is not None
            if resting and order_id not in self.where:
                self.where[order_id] = len(self.live)
                self.live.append(order_id)
            elif not resting and order_id in self.where:
                i = self.where.pop(order_id)
                last = self.live.pop()
                if last != order_id:
                    self.live[i] = last
                    self.where[last] = i

    # -- values ------------------------------------------------------------------------------

    def new_id(self) -> int:
        self.next_id += 1 + (self.rng.random() < 0.01)  # ids gaps happen too
        return self.next_id

    def account_and_stp(self) -> tuple[int, STP]:
        account = self.rng.randint(1, N_ACCOUNTS)
        stp = self.home_stp[account]
        if stp is None or self.rng.random() < 0.1:
            stp = STP(self.rng.randrange(5))
        return account, stp

    def passive_price(self, side: Side) -> int:
        off = 1 + min(int(self.rng.expovariate(1 / 6)), 60)
        return max(1, self.mid - side * off)

    def aggressive_price(self, side: Side) -> int:
        return max(1, self.mid + side * self.rng.randint(-1, 5))

    def qty(self, big: float = 0.08) -> int:
        if self.rng.random() < big:
            return self.rng.randint(10, 60)
        return self.rng.randint(1, 10)

    def side(self) -> Side:
        return BUY if self.rng.random() < 0.5 else SELL

    def live_id(self, book: Any) -> int:
        """A resting id; when the book is large, prefer one far from the walk."""
        rng = self.rng
        order_id = self.live[rng.randrange(len(self.live))]
        if len(self.live) > TARGET_BOOK:
            for _ in range(3):
                other = self.live[rng.randrange(len(self.live))]
                if abs(book.order(other).price - self.mid) > abs(book.order(order_id).price
                                                                 - self.mid):
                    order_id = other
        return order_id

    # -- commands ----------------------------------------------------------------------------

    def next_command(self, book: Any) -> Cmd:
        rng = self.rng
        if rng.random() < 0.3:
            self.mid = min(MID + MID_RANGE, max(MID - MID_RANGE, self.mid + rng.choice((-1, 1))))
        if rng.random() < 0.005:
            return self.invalid_command(book)
        r = rng.random()
        side = self.side()
        account, stp = self.account_and_stp()
        if r < 0.524:  # GTC limit, mostly passive
            price = (self.aggressive_price(side) if rng.random() < 0.2
                     else self.passive_price(side))
            return ("place", self.new_id(), side, price, self.qty(), GTC, False, stp, account)
        if r < 0.619:  # IOC
            return ("place", self.new_id(), side, self.aggressive_price(side), self.qty(0.2),
                    IOC, False, stp, account)
        if r < 0.638:  # FOK, limit or (sometimes) market
            price = None if rng.random() < 0.2 else self.aggressive_price(side)
            return ("place", self.new_id(), side, price, rng.randint(1, 40), FOK, False, stp,
                    account)
        if r < 0.667:  # market, any tif
            return ("place", self.new_id(), side, None, self.qty(0.3),
                    rng.choice((GTC, IOC, FOK)), False, stp, account)
        if r < 0.715:  # post-only near the touch (sometimes it would cross)
            price = max(1, self.mid - side * rng.randint(-2, 6))
            return ("place", self.new_id(), side, price, self.qty(), GTC, True, stp, account)
        if r < 0.905 or not self.live:  # cancel
            if self.live and rng.random() < 0.93:
                return ("cancel", self.live_id(book))
            return ("cancel", rng.randint(1, self.next_id + 5))  # gone, unknown or live
        return self.amend(book)

    def amend(self, book: Any) -> Cmd:
        rng = self.rng
        if rng.random() < 0.05:
            return ("amend", rng.randint(1, self.next_id), None, rng.randint(1, 9))
        order_id = self.live_id(book)
        view = book.order(order_id)
        r = rng.random()
        if r < 0.35:  # size only: down (keeps priority), same, or up (re-queues)
            return ("amend", order_id, None, max(1, view.qty + rng.randint(-5, 4)))
        if r < 0.65:  # price only, towards or away from the touch
            return ("amend", order_id, max(1, view.price + rng.randint(-4, 4)), None)
        if r < 0.97:
            return ("amend", order_id, max(1, self.mid - view.side * rng.randint(-3, 8)),
                    rng.randint(1, 20))
        return ("amend", order_id, None, None)  # EMPTY_AMEND

    def invalid_command(self, book: Any) -> Cmd:
        """A bad command; each has the same meaning per call and in the batch format."""
        rng = self.rng
        side = self.side()
        account, stp = self.account_and_stp()
        kind = rng.randrange(8)
        if kind == 0:
            return ("place", self.new_id(), side, self.passive_price(side), -rng.randint(1, 5),
                    GTC, False, stp, account)
        if kind == 1:
            return ("place", self.new_id(), side, -rng.randint(1, 5), 1, GTC, False, stp,
                    account)
        if kind == 2:
            return ("place", self.new_id(), side, self.mid, 1, rng.choice((0, 4)), False, stp,
                    account)
        if kind == 3 and self.live:  # duplicate of a resting id
            return ("place", self.live_id(book), side, self.passive_price(side), 1, GTC, False,
                    stp, account)
        if kind == 4:
            return ("place", self.new_id(), side, self.mid, 1, IOC, True, stp, account)
        if kind == 5:
            return ("cancel", rng.choice((0, -1)))
        if kind == 6:
            return ("amend", 0, self.mid, None)
        return ("place", self.new_id(), rng.choice((0, 2)), self.mid, 1, GTC, False, stp,
                account)


def apply(book: Any, cmd: Cmd) -> list[Any]:
    if cmd[0] == "place":
        _, order_id, side, price, qty, tif, post_only, stp, account = cmd
        return book.place(order_id, side, price, qty, tif=tif, post_only=post_only,
                          account=account, stp=stp)
    if cmd[0] == "cancel":
        return book.cancel(cmd[1])
    return book.amend(cmd[1], price=cmd[2], qty=cmd[3])


def encode(rows: array[int], cmd: Cmd) -> None:
    if cmd[0] == "place":
        _, order_id, side, price, qty, tif, post_only, stp, account = cmd
        encode_place(rows, order_id, side, price, qty, tif=tif, post_only=post_only,
                     account=account, stp=stp)
    elif cmd[0] == "cancel":
        encode_cancel(rows, cmd[1])
    else:
        encode_amend(rows, cmd[1], price=cmd[2], qty=cmd[3])


@pytest.mark.slow
def test_seeded_long_run_compiled_matches_reference() -> None:
    if PURE_PYTHON:
        pytest.skip("ENGINE_PUREPYTHON=1: the compiled book is not to be used")
    reference_book, compiled_book = book_class("reference"), book_class("compiled")
    assert compiled_book.__module__ == "gaemi.engine._book", compiled_book
    seed = int(os.environ.get("GAEMI_SEED") or DEFAULT_SEED)
    print(f"seeded run: seed {seed} (rerun with GAEMI_SEED={seed}), {N_COMMANDS} commands")
    started = time.perf_counter()

    # -- per call, both books in lockstep ----------------------------------------------------
    rng = random.Random(seed)
    flow = Flow(rng)
    ref, comp = reference_book(), compiled_book()
    commands: list[Cmd] = []
    events: list[tuple[int, ...]] = []  # (command index, *event.as_tuple())
    kinds: Counter[tuple[int, int]] = Counter()
    sizes = []
    for i in range(N_COMMANDS):
        cmd = flow.next_command(ref)
        commands.append(cmd)
        ref_events, comp_events = apply(ref, cmd), apply(comp, cmd)
        if ref_events != comp_events:
            pytest.fail(f"seed {seed}, command {i} {cmd}:\n  reference {ref_events}\n"
                        f"  compiled  {comp_events}")
        try:
            ref.check_invariants()
            comp.check_invariants()
        except InvariantViolation as exc:
            pytest.fail(f"seed {seed}, after command {i} {cmd}: {exc!r}")
        for e in ref_events:
            t = e.as_tuple()
            events.append((i, *t))
            kinds[t[0], t[6]] += 1
        flow.observe(ref_events, ref)
        if i % HASH_EVERY == HASH_EVERY - 1:
            assert ref.state_hash() == comp.state_hash(), f"seed {seed}: hashes differ after {i}"
            assert (ref.best_bid(), ref.best_ask(), ref.depth(5)) == (
                comp.best_bid(), comp.best_ask(), comp.depth(5)), f"seed {seed}: after {i}"
            assert len(ref) == len(comp) == len(flow.live), (i, len(ref), len(flow.live))
            sizes.append(len(ref))
    final_hash = ref.state_hash()
    assert comp.state_hash() == final_hash
    assert ref.snapshot() == comp.snapshot()
    per_call = time.perf_counter() - started

    # -- the same stream through apply_batch, in chunks, on fresh books ----------------------
    batch_books = (reference_book(), compiled_book())
    batch_events: list[list[tuple[int, ...]]] = [[], []]
    for start in range(0, N_COMMANDS, CHUNK):
        rows: array[int] = array("q")
        for cmd in commands[start : start + CHUNK]:
            encode(rows, cmd)
        outs = [book.apply_batch(rows) for book in batch_books]
        assert outs[0] == outs[1], f"seed {seed}: batch events differ in chunk at {start}"
        for out, acc in zip(outs, batch_events, strict=True):
            for j in range(0, len(out), EVENT_WIDTH):
                acc.append((out[j] + start, *out[j + 1 : j + EVENT_WIDTH]))
    for name, acc in zip(("reference", "compiled"), batch_events, strict=True):
        if acc != events:
            k = next((k for k, (a, b) in enumerate(zip(acc, events, strict=False)) if a != b),
                     min(len(acc), len(events)))
            pytest.fail(f"seed {seed}: {name} apply_batch events differ from the per-call "
                        f"events at event {k} (command, kind, id, price, qty, maker, "
                        f"remaining, reason): batch {acc[k:k + 3]}, per call {events[k:k + 3]}")
    for book in batch_books:
        book.check_invariants()
        assert book.state_hash() == final_hash
    elapsed = time.perf_counter() - started

    # -- the run exercised what it should have -----------------------------------------------
    fills = kinds[EventKind.FILL, 0]
    print(f"per call {per_call:.1f}s, total {elapsed:.1f}s; {len(events)} events; book size "
          f"min/mean/max {min(sizes)}/{sum(sizes) / len(sizes):.0f}/{max(sizes)}; "
          + ", ".join(f"{EventKind(k).name}/{RejectReason(r).name}={n}"
                      for (k, r), n in sorted(kinds.items())))
    assert fills > 20_000
    assert kinds[EventKind.CANCELED, 0] > 10_000
    assert kinds[EventKind.AMENDED, 0] > 5_000
    assert kinds[EventKind.EXPIRED, 0] > 3_000  # IOC / market leftovers
    assert kinds[EventKind.EXPIRED, RejectReason.FOK_NOT_FILLABLE] > 100
    assert kinds[EventKind.REJECTED, RejectReason.POST_ONLY_WOULD_CROSS] > 200
    for kind in (EventKind.CANCELED, EventKind.EXPIRED, EventKind.AMENDED):
        assert kinds[kind, STP_REASON] > 100, f"too few {kind.name} from self-trade prevention"
    for reason in (RejectReason.UNKNOWN_ORDER, RejectReason.DUPLICATE_ORDER_ID,
                   RejectReason.INVALID_QTY, RejectReason.INVALID_PRICE,
                   RejectReason.EMPTY_AMEND, RejectReason.INVALID_POST_ONLY):
        assert kinds[EventKind.REJECTED, reason] > 10, f"too few {reason.name}"
    assert 50 < sum(sizes) / len(sizes) < 1_000, "the resting book drifted out of shape"
