"""The values the engine hands out: events, resting-order views, and the batch format.

Both book implementations return these shapes. The reference book builds :class:`Event`
objects from this module; the compiled book has its own C-level ``Event`` type with the same
fields, the same ``repr`` and an equality that compares by value across the two, so a test
can write ``reference_events == compiled_events``.

Event fields (unused fields are 0):

============== ==================================================================
field          meaning
============== ==================================================================
kind           :class:`~engine.codes.EventKind`
order_id       the order the event is about (the taker, for a FILL)
price          limit price in ticks (0 for a market order); the trade price of a FILL
qty            ACCEPTED: size accepted; FILL: lots traded; CANCELED/EXPIRED: lots
               removed; AMENDED: the new open size
maker_id       FILL only: the resting order
maker_remaining FILL only: the resting order's open size after the fill
reason         :class:`~engine.codes.RejectReason`; 0 unless imposed by the engine
============== ==================================================================

The batch format (``apply_batch``) is documented in docs/engine.md.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from typing import Any, NamedTuple

from gaemi.engine.codes import (
    Command,
    EventKind,
    RejectReason,
    SelfTradePrevention,
    Side,
    TimeInForce,
)

__all__ = [
    "CMD_FIELDS",
    "CMD_WIDTH",
    "EVENT_FIELDS",
    "EVENT_WIDTH",
    "Event",
    "OrderView",
    "as_int64_rows",
    "decode_events",
    "encode_cancel",
    "encode_amend",
    "encode_place",
]

#: Columns of one command row in a batch (int64 each)
CMD_FIELDS = ("command", "order_id", "side", "price", "qty", "tif", "post_only", "stp", "account")
CMD_WIDTH = len(CMD_FIELDS)
#: Columns of one event row returned by a batch (int64 each)
EVENT_FIELDS = (
    "command_index", "kind", "order_id", "price", "qty", "maker_id", "maker_remaining", "reason",
)
EVENT_WIDTH = len(EVENT_FIELDS)


class OrderView(NamedTuple):
    """A resting order as the book holds it (a copy: changing it changes nothing)."""

    order_id: int
    side: Side
    price: int
    qty: int
    account: int


class Event:
    """One thing that happened to one order. Compared by value."""

    __slots__ = ("kind", "maker_id", "maker_remaining", "order_id", "price", "qty", "reason")

    def __init__(
        self,
        kind: EventKind,
        order_id: int,
        price: int = 0,
        qty: int = 0,
        maker_id: int = 0,
        maker_remaining: int = 0,
        reason: RejectReason = RejectReason.NONE,
    ) -> None:
        self.kind = kind
        self.order_id = order_id
        self.price = price
        self.qty = qty
        self.maker_id = maker_id
        self.maker_remaining = maker_remaining
        self.reason = reason

    def as_tuple(self) -> tuple[int, int, int, int, int, int, int]:
        """The fields in ``EVENT_FIELDS`` order (without the command index)."""
        return (
            int(self.kind), self.order_id, self.price, self.qty,
            self.maker_id, self.maker_remaining, int(self.reason),
        )

    def __eq__(self, other: object) -> bool:
        as_tuple = getattr(other, "as_tuple", None)
        if as_tuple is None:
            return NotImplemented
        return bool(self.as_tuple() == as_tuple())

    def __hash__(self) -> int:
        return hash(self.as_tuple())

    def __repr__(self) -> str:
        return event_repr(self.as_tuple())


def event_repr(t: tuple[int, ...]) -> str:
    """The ``repr`` both implementations give an event, from its ``as_tuple()``."""
    kind, order_id, price, qty, maker_id, maker_remaining, reason = t
    text = f"Event({EventKind(kind).name} order_id={order_id} price={price} qty={qty}"
    if kind == EventKind.FILL:
        text += f" maker_id={maker_id} maker_remaining={maker_remaining}"
    if reason:
        text += f" reason={RejectReason(reason).name}"
    return text + ")"


def encode_place(
    out: array[int],
    order_id: int,
    side: int,
    price: int | None,
    qty: int,
    *,
    tif: int = TimeInForce.GTC,
    post_only: bool = False,
    account: int = 0,
    stp: int = SelfTradePrevention.NONE,
) -> None:
    """Append one place command to a batch (``price=None`` is a market order)."""
    out.extend((Command.PLACE, order_id, side, price or 0, qty, tif, int(post_only), stp, account))


def encode_cancel(out: array[int], order_id: int) -> None:
    """Append one cancel command to a batch."""
    out.extend((Command.CANCEL, order_id, 0, 0, 0, 0, 0, 0, 0))


def encode_amend(out: array[int], order_id: int, *, price: int | None = None,
                 qty: int | None = None) -> None:
    """Append one amend command to a batch (0 in a column means "unchanged")."""
    out.extend((Command.AMEND, order_id, 0, price or 0, qty or 0, 0, 0, 0, 0))


_INT64_FORMATS = frozenset(("q", "l", "@q", "@l", "=q", "=l"))


def as_int64_rows(commands: Any, width: int = CMD_WIDTH) -> memoryview:
    """A batch as a flat, contiguous int64 memoryview; TypeError/ValueError if it is not one.

    Accepts a list or tuple of ints, raw bytes, or a contiguous native-endian buffer of
    8-byte signed integers. Checked in full before any command runs.
    """
    if isinstance(commands, (list, tuple)):
        commands = array("q", commands)  # TypeError for non-ints, OverflowError beyond int64
    view = memoryview(commands)
    if not view.c_contiguous:
        raise TypeError("a batch must be a contiguous buffer")
    if view.format in ("B", "b", "c"):
        if view.nbytes % 8:
            raise ValueError(f"a batch of {view.nbytes} bytes is not a whole number of int64")
        view = view.cast("B").cast("q")
    elif view.format not in _INT64_FORMATS or view.itemsize != 8:
        raise TypeError(f"a batch must hold native int64 values, not format {view.format!r}")
    else:
        view = view.cast("B").cast("q")
    if len(view) % width:
        raise ValueError(f"batch length {len(view)} is not a multiple of {width}")
    return view


def decode_events(rows: Iterable[int] | Any) -> list[tuple[int, Event]]:
    """Turn a batch's flat event array into ``(command_index, Event)`` pairs."""
    flat = list(rows)
    if len(flat) % EVENT_WIDTH:
        raise ValueError(f"event array length {len(flat)} is not a multiple of {EVENT_WIDTH}")
    out = []
    for i in range(0, len(flat), EVENT_WIDTH):
        index, kind, order_id, price, qty, maker_id, maker_remaining, reason = flat[
            i : i + EVENT_WIDTH
        ]
        out.append(
            (index, Event(EventKind(kind), order_id, price, qty, maker_id, maker_remaining,
                          RejectReason(reason)))
        )
    return out
