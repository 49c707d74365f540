"""Gaemi's matching engine: a price-time priority order book, in two implementations.

``engine.OrderBook`` is the compiled book (``engine._book``) unless the environment sets
``ENGINE_PUREPYTHON=1``; then, or when the extension is not built, it is the pure-Python
reference (``engine.reference``), and ``IMPLEMENTATION`` says which one was chosen.
"""

from __future__ import annotations

import os
import warnings

from gaemi.engine.codes import (
    EventKind,
    RejectReason,
    SelfTradePrevention,
    Side,
    TimeInForce,
)
from gaemi.engine.events import Event, OrderView


__all__ = [
    "IMPLEMENTATION",
    "book_class",
    "Event",
    "EventKind",
    "OrderBook",
    "OrderView",
    "RejectReason",
    "SelfTradePrevention",
    "Side",
    "TimeInForce",
]


def book_class(name: str = "auto") -> type:
    """The OrderBook class of one implementation: "reference", "compiled" or "auto".

    "auto" is ``engine.OrderBook``; "compiled" raises ImportError if the extension is not built.
    """
    if name == "reference":
        from gaemi.engine.reference import OrderBook as reference_book

        return reference_book
    if name == "compiled":
        from gaemi.engine._book import OrderBook as compiled_book

        return compiled_book  # type: ignore[no-any-return]
    if name == "auto":
        return OrderBook
    raise ValueError(f"unknown implementation {name!r} (reference, compiled or auto)")


if os.environ.get("ENGINE_PUREPYTHON") == "1":
    from gaemi.engine.reference import OrderBook

    IMPLEMENTATION = "reference"
else:
    try:
        from gaemi.engine._book import OrderBook  # type: ignore[no-redef]

        IMPLEMENTATION = "compiled"
    except ImportError as exc:  # the extension was not built
        warnings.warn(f"engine._book is not available ({exc}); using the reference book",
                      RuntimeWarning, stacklevel=2)
        from gaemi.engine.reference import OrderBook  # type: ignore[assignment]

        IMPLEMENTATION = "reference"
