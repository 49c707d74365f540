"""Stateful differential test: the compiled book against the reference book.

A hypothesis ``RuleBasedStateMachine`` drives one reference book (``engine.reference``, the
specification) and one compiled book (``engine._book``) with the same commands and asserts
that both answer alike: equal event lists (by value, by ``as_tuple()`` and by ``repr``), or
the same exception type with neither book changed. After every step an invariant checks both
books (``check_invariants()``) and compares everything the query API shows: ``state_hash()``
(also recomputed from the documented byte layout), ``depth(3)``, best bid/ask, ``len``,
``snapshot()`` and ``order(id)`` for every id of the pool.

The books are kept small on purpose so that interesting states come up often: prices within
about 20 ticks of ``BASE`` (plus the boundary values 1 and ``MAX_PRICE``), order ids from a
pool of 8 (so duplicates, unknown ids and re-use after a cancel or a fill happen all the time),
and accounts 1-4 (so self-trade prevention triggers). Invalid values are mixed in: zero and
negative ids, prices and sizes; values exactly at and just above ``MAX_ORDER_ID``,
``MAX_PRICE``, ``MAX_QTY`` and ``MAX_ACCOUNT``; int64 extremes; huge ints (``2**70``); and
arguments of the wrong type (floats, strings, ``Decimal``, ``None``) that must raise
``TypeError`` in both books.

The hypothesis seed is printed (``pytest -s`` shows it; a failure shows it too). Set
``GAEMI_SEED`` to rerun with a given seed. With ``ENGINE_PUREPYTHON=1`` the compiled book is
not to be used, and the test is skipped; otherwise the compiled extension must import.
"""

from __future__ import annotations

import hashlib
import os
import random
from array import array
from decimal import Decimal
from fractions import Fraction
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import HealthCheck, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from gaemi.engine import book_class
from gaemi.engine.codes import (
    MAX_ACCOUNT,
    MAX_ORDER_ID,
    MAX_PRICE,
    MAX_QTY,
    Command,
    EventKind,
    SelfTradePrevention,
    Side,
    TimeInForce,
)
from gaemi.engine.events import (
    CMD_WIDTH,
    EVENT_WIDTH,
    decode_events,
    encode_amend,
    encode_cancel,
    encode_place,
)

try:  # optional: NumPy integers have __index__, NumPy int64 arrays are batch buffers
    import numpy as np
except ImportError:  # pragma: no cover (numpy is not a dependency of the engine)
    np = None

PURE_PYTHON = os.environ.get("ENGINE_PUREPYTHON") == "1"


SEED = int(os.environ.get("GAEMI_SEED") or random.SystemRandom().randrange(2**32))

MAX_EXAMPLES = 300
STEPS = 60

BASE = 1_000  # the tick the small books trade around
INT64_MAX, INT64_MIN = 2**63 - 1, -(2**63)
HUGE = 2**70

# -- values ----------------------------------------------------------------------------------
# Each argument has a "valid" strategy (small, so that orders meet) and an "edge" strategy
# that adds the boundary values (valid ones exactly at a bound, invalid ones just past it)
# and out-of-range values, including ints that do not fit int64.

POOL_IDS = st.integers(1, 8)
ID_EDGES = [MAX_ORDER_ID]  # valid
BAD_IDS = [0, -1, INT64_MIN, MAX_ORDER_ID + 1, INT64_MAX, 2**63, HUGE, -HUGE]
NEAR_PRICES = st.integers(BASE - 10, BASE + 10)
PRICE_EDGES = [1, MAX_PRICE]  # valid
BAD_PRICES = [0, -1, INT64_MIN, MAX_PRICE + 1, INT64_MAX, 2**63, HUGE, -HUGE]
SMALL_QTYS = st.integers(1, 6)
QTY_EDGES = [MAX_QTY]  # valid
BAD_QTYS = [0, -1, INT64_MIN, MAX_QTY + 1, INT64_MAX, 2**63, HUGE, -HUGE]
ACCOUNTS = st.integers(1, 4)
ACCOUNT_EDGES = [0, MAX_ACCOUNT]  # valid
BAD_ACCOUNTS = [-1, MAX_ACCOUNT + 1, INT64_MAX, 2**63, HUGE, -HUGE]
SIDES = st.sampled_from([Side.BUY, Side.SELL, 1, -1])
BAD_SIDES = [0, 2, -2, INT64_MIN, HUGE]
TIFS = st.sampled_from([TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK, 1, 2, 3])
BAD_TIFS = [0, 4, -1, INT64_MAX, HUGE]
STPS = st.sampled_from([*SelfTradePrevention, 0, 1, 2, 3, 4])
BAD_STPS = [5, -1, INT64_MIN, HUGE]
POST_ONLY = st.one_of(st.booleans(), st.sampled_from([0, 1, 2]))

# wrong types: no __index__, so both books must raise TypeError before changing anything
WRONG_TYPES = st.sampled_from([1.0, float(BASE), 0.5, "1", b"1", Decimal(1), Fraction(3, 1),
                               complex(1, 0), [1], None,
                               *([np.float64(1.0), np.array([1.0])] if np is not None else [])])
INT_FORMS = ["int", "numpy"] if np is not None else ["int"]


def edgy(valid: st.SearchStrategy[Any], *edges: list[Any]) -> st.SearchStrategy[Any]:
    """Mostly ``valid`` (4 in 5), else one of the edge lists."""
    return st.one_of(valid, valid, valid, valid, st.sampled_from([e for es in edges for e in es]))


ids_edge = edgy(POOL_IDS, ID_EDGES, BAD_IDS)
prices_edge = edgy(NEAR_PRICES, PRICE_EDGES, BAD_PRICES)
qtys_edge = edgy(SMALL_QTYS, QTY_EDGES, BAD_QTYS)
accounts_edge = edgy(ACCOUNTS, ACCOUNT_EDGES, BAD_ACCOUNTS)
sides_edge = edgy(SIDES, [True], BAD_SIDES)
tifs_edge = edgy(TIFS, BAD_TIFS)
stps_edge = edgy(STPS, BAD_STPS)

# the batch format holds int64: edge values that fit it (0 means "market"/"unchanged" there)
I64_IDS = st.one_of(POOL_IDS, st.sampled_from([0, -1, MAX_ORDER_ID, MAX_ORDER_ID + 1,
                                               INT64_MAX, INT64_MIN]))
I64_PRICES = st.one_of(NEAR_PRICES, st.sampled_from([0, 1, -1, MAX_PRICE, MAX_PRICE + 1,
                                                     INT64_MAX, INT64_MIN]))
I64_QTYS = st.one_of(SMALL_QTYS, st.sampled_from([0, -1, MAX_QTY, MAX_QTY + 1, INT64_MAX,
                                                  INT64_MIN]))


# -- helpers ---------------------------------------------------------------------------------


def documented_hash(snapshot: tuple[list[Any], list[Any]]) -> int:
    """``state_hash()`` recomputed from a snapshot with the layout docs/engine.md gives."""
    bids, asks = snapshot
    words = array("q", (len(bids), len(asks)))
    for o in [*bids, *asks]:
        words.extend((o.side, o.price, o.order_id, o.qty, o.account))
    assert words.itemsize == 8
    if array("q", [1]).tobytes()[0] != 1:  # pragma: no cover (big-endian hosts only)
        words.byteswap()
    return int.from_bytes(hashlib.blake2b(words.tobytes(), digest_size=8).digest(), "big")


def depth_from_snapshot(snapshot: tuple[list[Any], list[Any]], n: int) -> tuple[list, list]:
    """``depth(n)`` derived from a snapshot: per side the best ``n`` levels, best first."""
    out = []
    for side in snapshot:
        levels: list[list[int]] = []
        for o in side:
            if levels and levels[-1][0] == o.price:
                levels[-1][1] += o.qty
            else:
                levels.append([o.price, o.qty])
        out.append([(p, q) for p, q in levels[: max(n, 0)]])
    return out[0], out[1]


def _call(book: Any, name: str, args: tuple, kwargs: dict) -> tuple[str, Any]:
    try:
        return "returned", getattr(book, name)(*args, **kwargs)
    except Exception as exc:  # compared across implementations by the caller
        return "raised", exc


def _show(name: str, args: tuple, kwargs: dict) -> str:
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    return f"{name}({', '.join(parts)})"


# -- the machine -----------------------------------------------------------------------------


class DifferentialBooks(RuleBasedStateMachine):
    """The same commands on a reference book and a compiled book; they must agree."""

    def __init__(self) -> None:
        super().__init__()
        self.ref = book_class("reference")()
        self.comp = book_class("compiled")()

    # -- comparing ---------------------------------------------------------------------------

    def both(self, name: str, *args: Any, expect: type[BaseException] | None = None,
             **kwargs: Any) -> Any:
        """Call ``name`` on both books; assert equal results or the same exception type."""
        what = _show(name, args, kwargs)
        before = (self.ref.state_hash(), self.comp.state_hash())
        (rk, rv), (ck, cv) = (_call(self.ref, name, args, kwargs),
                              _call(self.comp, name, args, kwargs))
        assert rk == ck, f"{what}: reference {rk} {rv!r}, compiled {ck} {cv!r}"
        if rk == "raised":
            assert type(rv) is type(cv), f"{what}: reference raised {rv!r}, compiled {cv!r}"
            if expect is not None:
                assert isinstance(rv, expect), f"{what}: expected {expect.__name__}, got {rv!r}"
            # an exception is raised before anything changes
            assert (self.ref.state_hash(), self.comp.state_hash()) == before, what
            return None
        assert expect is None, f"{what}: expected {expect.__name__}, both returned {rv!r}"
        return rv, cv, before

    def command(self, name: str, *args: Any, expect: type[BaseException] | None = None,
                **kwargs: Any) -> None:
        """Run a command (place/cancel/amend) on both books and compare the events."""
        result = self.both(name, *args, expect=expect, **kwargs)
        if result is None:
            return
        ref_events, comp_events, before = result
        what = _show(name, args, kwargs)
        assert isinstance(ref_events, list) and isinstance(comp_events, list), what
        assert ref_events == comp_events, (
            f"{what}:\n  reference {ref_events}\n  compiled  {comp_events}")
        assert [e.as_tuple() for e in ref_events] == [e.as_tuple() for e in comp_events], what
        assert [repr(e) for e in ref_events] == [repr(e) for e in comp_events], what
        assert [(e.kind, e.reason) for e in ref_events] == [
            (e.kind, e.reason) for e in comp_events], what
        assert ref_events, f"{what}: no events"
        if ref_events[0].kind == EventKind.REJECTED:
            # validation happens before any change: a rejection is the only event
            assert len(ref_events) == 1, what
            assert ref_events[0].reason != 0, what
            assert (self.ref.state_hash(), self.comp.state_hash()) == before, what

    def live_ids(self) -> list[int]:
        bids, asks = self.ref.snapshot()
        return sorted(o.order_id for o in [*bids, *asks])

    # -- setup -------------------------------------------------------------------------------

    @initialize(orders=st.lists(st.tuples(POOL_IDS, SIDES, NEAR_PRICES, SMALL_QTYS, ACCOUNTS),
                                max_size=8))
    def seed_book(self, orders: list[tuple[int, int, int, int, int]]) -> None:
        """Start from a few resting orders (duplicates and crosses are fine: compared too)."""
        for order_id, side, price, qty, account in orders:
            self.command("place", order_id, side, price, qty, account=account)

    # -- place -------------------------------------------------------------------------------

    def some_price(self, data: st.DataObject) -> int:
        """Near ``BASE``, or (half the time, when the book has orders) a resting order's
        price, so that queues of several orders form at one level."""
        bids, asks = self.ref.snapshot()
        prices = sorted({o.price for o in [*bids, *asks]})
        if prices and data.draw(st.booleans(), "at a resting price?"):
            return int(data.draw(st.sampled_from(prices), "resting price"))
        return int(data.draw(NEAR_PRICES, "price"))

    @rule(data=st.data(), order_id=POOL_IDS, side=SIDES, qty=SMALL_QTYS,
          post_only=st.booleans(), account=ACCOUNTS, stp=STPS)
    def place_gtc(self, data: st.DataObject, order_id: int, side: int, qty: int,
                  post_only: bool, account: int, stp: int) -> None:
        """A GTC limit order near the touch: the rule that fills the book."""
        self.command("place", order_id, side, self.some_price(data), qty, post_only=post_only,
                     account=account, stp=stp)

    @rule(order_id=POOL_IDS, side=SIDES,
          price=st.one_of(st.none(), NEAR_PRICES, NEAR_PRICES, st.sampled_from(PRICE_EDGES)),
          qty=st.one_of(SMALL_QTYS, st.integers(7, 25)), tif=TIFS, post_only=POST_ONLY,
          account=ACCOUNTS, stp=STPS, form=st.sampled_from(INT_FORMS))
    def place_any(self, order_id: int, side: int, price: int | None, qty: int, tif: int,
                  post_only: Any, account: int, stp: int, form: str) -> None:
        """Every valid combination: side, tif, post-only, STP, account, market (None); the
        integers plain, IntEnum, bool or (when NumPy is there) NumPy int64."""
        args: list[Any] = [order_id, side, price, qty, tif, post_only, account, stp]
        if form == "numpy":
            args = [a if a is None or isinstance(a, bool) else np.int64(a) for a in args]
        order_id, side, price, qty, tif, post_only, account, stp = args
        self.command("place", order_id, side, price, qty, tif=tif, post_only=post_only,
                     account=account, stp=stp)

    @rule(order_id=ids_edge, side=sides_edge, price=st.one_of(st.none(), prices_edge),
          qty=qtys_edge, tif=tifs_edge, post_only=POST_ONLY, account=accounts_edge,
          stp=stps_edge)
    def place_edge(self, order_id: int, side: int, price: int | None, qty: int, tif: int,
                   post_only: Any, account: int, stp: int) -> None:
        """Boundary and invalid values in any field (the validation order is contract too)."""
        self.command("place", order_id, side, price, qty, tif=tif, post_only=post_only,
                     account=account, stp=stp)

    @rule(data=st.data(), order_id=POOL_IDS, side=SIDES,
          price=st.one_of(st.none(), NEAR_PRICES), qty=SMALL_QTYS, tif=TIFS,
          post_only=POST_ONLY, account=ACCOUNTS, stp=STPS,
          field=st.sampled_from(["order_id", "side", "price", "qty", "tif", "account", "stp"]))
    def place_one_off(self, data: st.DataObject, field: str, **args: Any) -> None:
        """A valid order with exactly one field at a boundary or out of range."""
        args[field] = data.draw(st.sampled_from({
            "order_id": ID_EDGES + BAD_IDS, "side": [True, *BAD_SIDES],
            "price": PRICE_EDGES + BAD_PRICES, "qty": QTY_EDGES + BAD_QTYS, "tif": BAD_TIFS,
            "account": ACCOUNT_EDGES + BAD_ACCOUNTS, "stp": BAD_STPS}[field]), field)
        self.command("place", args.pop("order_id"), args.pop("side"), args.pop("price"),
                     args.pop("qty"), **args)

    @precondition(lambda self: len(self.ref) > 0)
    @rule(data=st.data(), order_id=POOL_IDS, stp=STPS,
          tif=st.sampled_from([TimeInForce.FOK, TimeInForce.FOK, TimeInForce.IOC,
                               TimeInForce.GTC]),
          which=st.sampled_from(["all", "others", "before own"]), delta=st.integers(-1, 1))
    def place_sized_taker(self, data: st.DataObject, order_id: int, stp: int, tif: int,
                          which: str, delta: int) -> None:
        """A taker against resting orders, often of its own account, sized at what it can
        reach (all of it, without its own orders, or up to its first own order) plus -1, 0
        or +1: the edges of fill-or-kill and of self-trade prevention."""
        bids, asks = self.ref.snapshot()
        side = data.draw(st.sampled_from([s for s, opp in ((Side.BUY, asks), (Side.SELL, bids))
                                          if opp]), "side")
        opposite = asks if side == Side.BUY else bids
        account = data.draw(st.one_of(st.sampled_from([o.account for o in opposite]), ACCOUNTS),
                            "account")
        price = data.draw(st.one_of(
            st.none(), st.builds(lambda p, d: p + d, st.sampled_from([o.price for o in opposite]),
                                 st.integers(-1, 1))), "price")
        reachable = [o for o in opposite if price is None
                     or (o.price <= price if side == Side.BUY else o.price >= price)]
        own = [o.account == account for o in reachable]
        first_own = own.index(True) if True in own else len(reachable)
        size = {"all": sum(o.qty for o in reachable),
                "others": sum(o.qty for o, mine in zip(reachable, own, strict=True) if not mine),
                "before own": sum(o.qty for o in reachable[:first_own])}[which]
        self.command("place", order_id, side, price, max(1, size + delta), tif=tif,
                     account=account, stp=stp)

    # -- cancel and amend --------------------------------------------------------------------

    def some_id(self, data: st.DataObject) -> int:
        """A resting order's id (mostly, when there is one), else a pool or edge id."""
        live = self.live_ids()
        if live and data.draw(st.integers(0, 3), "live?"):
            return int(data.draw(st.sampled_from(live), "live id"))
        return int(data.draw(ids_edge, "id"))

    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        self.command("cancel", self.some_id(data))

    @rule(data=st.data(), what=st.sampled_from(["price", "qty", "both", "neither"]))
    def amend(self, data: st.DataObject, what: str) -> None:
        """Reprice or resize (down and same keep priority, up re-queues), both, or neither;
        prices often at the order's own price, next to it, or at the opposite touch (where a
        post-only order would cross)."""
        order_id = self.some_id(data)
        view = self.ref.order(order_id)
        price = qty = None
        if what in ("price", "both"):
            options = [prices_edge]
            if view is not None:
                touch = self.ref.best_ask() if view.side == Side.BUY else self.ref.best_bid()
                near = [view.price - 1, view.price, view.price + 1]
                if touch is not None:
                    near += [touch - 1, touch, touch + 1]
                options += [st.sampled_from(near)] * 2
            price = data.draw(st.one_of(*options), "price")
        if what in ("qty", "both"):
            options = [qtys_edge, st.integers(7, 12)]
            if view is not None:
                options += [st.sampled_from([view.qty, max(1, view.qty - 1), view.qty + 1,
                                             max(1, view.qty - 3)])] * 2
            qty = data.draw(st.one_of(*options), "qty")
        self.command("amend", order_id, price=price, qty=qty)

    def queued(self) -> list[int]:
        """Ids of resting orders with another order behind them in their level's queue."""
        out = []
        for side in self.ref.snapshot():
            out += [a.order_id for a, b in pairwise(side) if a.price == b.price]
        return out

    @precondition(lambda self: bool(self.queued()))
    @rule(data=st.data(), how=st.sampled_from(["same size", "smaller", "larger", "same price",
                                               "same price and size", "next price"]))
    def amend_in_queue(self, data: st.DataObject, how: str) -> None:
        """Amend an order that has orders behind it: who keeps the place in the queue."""
        order_id = data.draw(st.sampled_from(self.queued()), "queued id")
        view = self.ref.order(order_id)
        price, qty = {
            "same size": (None, view.qty),
            "smaller": (None, max(1, view.qty - 1)),
            "larger": (None, view.qty + 1),
            "same price": (view.price, None),
            "same price and size": (view.price, view.qty),
            "next price": (view.price - view.side, None),  # one tick away from the touch
        }[how]
        self.command("amend", order_id, price=price, qty=qty)

    # -- wrong types -------------------------------------------------------------------------

    @rule(data=st.data(), bad=WRONG_TYPES,
          where=st.sampled_from(["place.order_id", "place.side", "place.price", "place.qty",
                                 "place.tif", "place.account", "place.stp", "cancel.order_id",
                                 "amend.order_id", "amend.price", "amend.qty", "depth.n",
                                 "order.order_id", "orders_at.side", "orders_at.price"]))
    def wrong_type(self, data: st.DataObject, bad: Any, where: str) -> None:
        """One argument without ``__index__``: TypeError from both books, and no change."""
        method, field = where.split(".")
        if bad is None and field in ("price", "qty") and method in ("place", "amend"):
            bad = 1.5  # None is a market order / "unchanged" there, not a wrong type
        if method == "place":
            # the other arguments are often out of range: the TypeError comes first anyway
            args = {"order_id": data.draw(st.one_of(POOL_IDS, st.sampled_from(BAD_IDS)), "id"),
                    "side": data.draw(st.one_of(SIDES, st.sampled_from(BAD_SIDES)), "side"),
                    "price": data.draw(st.one_of(st.none(), NEAR_PRICES,
                                                 st.sampled_from(BAD_PRICES)), "price"),
                    "qty": data.draw(st.one_of(SMALL_QTYS, st.sampled_from(BAD_QTYS)), "qty"),
                    "tif": data.draw(st.one_of(TIFS, st.sampled_from(BAD_TIFS)), "tif"),
                    "account": data.draw(st.one_of(ACCOUNTS, st.sampled_from(BAD_ACCOUNTS)),
                                         "account"),
                    "stp": data.draw(st.one_of(STPS, st.sampled_from(BAD_STPS)), "stp")}
            args[field] = bad
            self.command("place", args["order_id"], args["side"], args["price"], args["qty"],
                         tif=args["tif"], account=args["account"], stp=args["stp"],
                         post_only=data.draw(POST_ONLY, "post_only"), expect=TypeError)
        elif method == "cancel":
            self.command("cancel", bad, expect=TypeError)
        elif method == "amend":
            args = {"order_id": data.draw(st.one_of(st.just(self.some_id(data)),
                                                    st.sampled_from(BAD_IDS)), "id"),
                    "price": data.draw(st.one_of(st.none(), NEAR_PRICES,
                                                 st.sampled_from(BAD_PRICES)), "price"),
                    "qty": data.draw(st.one_of(st.none(), SMALL_QTYS, st.sampled_from(BAD_QTYS)),
                                     "qty")}
            args[field] = bad
            self.command("amend", args["order_id"], price=args["price"], qty=args["qty"],
                         expect=TypeError)
        elif method == "orders_at":
            args = {"side": Side.BUY, "price": BASE}
            args[field] = bad
            self.both("orders_at", args["side"], args["price"], expect=TypeError)
        else:
            self.both(method, bad, expect=TypeError)

    # -- batch -------------------------------------------------------------------------------

    @rule(data=st.data(), n=st.integers(1, 8),
          form=st.sampled_from(["array", "array", "bytes", "memoryview", "list",
                                *(["numpy"] if np is not None else [])]))
    def batch(self, data: st.DataObject, n: int, form: str) -> None:
        """A few rows through apply_batch on both books (0 = market / unchanged there)."""
        rows: array[int] = array("q")
        for _ in range(n):
            kind = data.draw(st.sampled_from(["place", "place", "place", "cancel", "amend",
                                              "bad command"]), "row kind")
            if kind == "place":
                encode_place(rows, data.draw(I64_IDS, "id"),
                             data.draw(st.sampled_from([1, -1, 1, -1, 0, 2]), "side"),
                             data.draw(I64_PRICES, "price"), data.draw(I64_QTYS, "qty"),
                             tif=data.draw(st.sampled_from([1, 2, 3, 1, 0, 4]), "tif"),
                             post_only=data.draw(st.booleans(), "post_only"),
                             account=data.draw(st.one_of(ACCOUNTS, ACCOUNTS, st.sampled_from(
                                 [0, -1, MAX_ACCOUNT, MAX_ACCOUNT + 1])), "account"),
                             stp=data.draw(st.sampled_from([0, 1, 2, 3, 4, 5, -1]), "stp"))
            elif kind == "cancel":
                encode_cancel(rows, data.draw(I64_IDS, "id"))
            elif kind == "amend":
                encode_amend(rows, data.draw(I64_IDS, "id"), price=data.draw(I64_PRICES, "price"),
                             qty=data.draw(I64_QTYS, "qty"))
            else:
                code = data.draw(st.sampled_from([0, 4, -1, INT64_MAX]), "command code")
                rows.extend((code, data.draw(I64_IDS, "id"), 1, BASE, 1, 1, 0, 0, 1))
        assert len(rows) == n * CMD_WIDTH
        if data.draw(st.booleans(), "garbage in unused columns"):
            # cancel and amend ignore the columns they do not use
            for i in range(n):
                if rows[i * CMD_WIDTH] in (Command.CANCEL, Command.AMEND):
                    rows[i * CMD_WIDTH + 2] = 7
                    rows[i * CMD_WIDTH + 6] = 1
                    rows[i * CMD_WIDTH + 8] = -3
        commands: Any = {"array": rows, "bytes": rows.tobytes(), "memoryview": memoryview(rows),
                         "list": list(rows)}.get(form)
        if form == "numpy":
            commands = np.array(rows.tolist(), dtype=np.int64)
        result = self.both("apply_batch", commands)
        assert result is not None, "apply_batch raised"
        out_ref, out_comp, _ = result
        what = f"apply_batch({rows.tolist()})"
        assert isinstance(out_ref, array) and isinstance(out_comp, array), what
        assert out_ref.typecode == out_comp.typecode == "q", what
        assert out_ref == out_comp, (f"{what}:\n  reference {decode_events(out_ref)}"
                                     f"\n  compiled  {decode_events(out_comp)}")
        assert len(out_ref) % EVENT_WIDTH == 0, what
        # every command gives at least one event, tagged with its index, in order
        indexes = out_ref[::EVENT_WIDTH].tolist()
        assert indexes == sorted(indexes) and set(indexes) == set(range(n)), what

    @rule(cut=st.integers(0, CMD_WIDTH - 1))
    def odd_batch(self, cut: int) -> None:
        """An empty batch, or one that is not a whole number of rows (ValueError, no change)."""
        if cut == 0:
            result = self.both("apply_batch", array("q"))
            assert result is not None and len(result[0]) == len(result[1]) == 0
            return
        rows: array[int] = array("q")
        encode_place(rows, 1, Side.BUY, BASE, 1)
        self.both("apply_batch", rows[:-cut], expect=ValueError)

    # -- queries -----------------------------------------------------------------------------

    @rule(n=st.integers(-2, 25), order_id=ids_edge,
          side=st.one_of(SIDES, st.sampled_from([0, 2, HUGE])),
          price=st.one_of(NEAR_PRICES, st.sampled_from(PRICE_EDGES + BAD_PRICES)))
    def queries(self, n: int, order_id: int, side: int, price: int) -> None:
        """depth(n), order(id), orders_at(side, price) with in-range and odd arguments."""
        for name, args in (("depth", (n,)), ("order", (order_id,)),
                           ("orders_at", (side, price))):
            result = self.both(name, *args)
            assert result is not None, f"{name}{args} raised"
            assert result[0] == result[1], f"{name}{args}: {result[0]!r} != {result[1]!r}"
        bids, asks = self.ref.snapshot()
        assert self.ref.depth(n) == depth_from_snapshot((bids, asks), n)
        level = [o for o in (bids if side == Side.BUY else asks) if o.price == price]
        assert self.ref.orders_at(side, price) == level

    # -- invariants --------------------------------------------------------------------------

    @invariant()
    def books_agree(self) -> None:
        ref, comp = self.ref, self.comp
        ref.check_invariants()
        comp.check_invariants()
        snap = ref.snapshot()
        assert snap == comp.snapshot(), f"snapshots differ:\n  {snap}\n  {comp.snapshot()}"
        hashes = (ref.state_hash(), comp.state_hash(), documented_hash(snap))
        assert hashes[0] == hashes[1] == hashes[2], f"state_hash reference/compiled/doc {hashes}"
        depths = (ref.depth(3), comp.depth(3), depth_from_snapshot(snap, 3))
        assert depths[0] == depths[1] == depths[2], f"depth(3) reference/compiled/snapshot {depths}"
        assert ref.best_bid() == comp.best_bid()
        assert ref.best_ask() == comp.best_ask()
        assert len(ref) == len(comp) == len(snap[0]) + len(snap[1])
        bids, asks = snap
        assert ref.best_bid() == (bids[0].price if bids else None)
        assert ref.best_ask() == (asks[0].price if asks else None)
        for order_id in range(1, 9):
            assert ref.order(order_id) == comp.order(order_id), order_id
        assert ref.order(MAX_ORDER_ID) == comp.order(MAX_ORDER_ID)


SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    stateful_step_count=STEPS,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def test_compiled_book_matches_reference_book() -> None:
    if PURE_PYTHON:
        pytest.skip("ENGINE_PUREPYTHON=1: the compiled book is not to be used")
    compiled = book_class("compiled")  # must import: a missing extension is a failure here
    assert compiled.__module__ == "gaemi.engine._book", compiled
    print(f"hypothesis seed {SEED} (rerun with GAEMI_SEED={SEED})")
    run_state_machine_as_test(
        seed(SEED)(DifferentialBooks),
        settings=SETTINGS,
    )
