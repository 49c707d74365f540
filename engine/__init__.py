"""Gaemi's matching engine: a price-time priority order book, in two implementations.

``gaemi.engine.OrderBook`` is the compiled book (``gaemi.engine._book``) unless the
environment sets ``ENGINE_PUREPYTHON=1``; then, or when the extension is not built, it is the
pure-Python reference (``gaemi.engine.reference``), and ``IMPLEMENTATION`` says which one was
chosen. The choice is made on first use of either name: importing ``gaemi.engine.codes`` loads
no C code.
"""

from __future__ import annotations

import os
import warnings
from typing import cast

from gaemi.engine.codes import (
    EventKind,
    RejectReason,
    SelfTradePrevention,
    Side,
    TimeInForce,
)
from gaemi.engine.events import Event, OrderView
from gaemi.engine.protocol import Book, BookEvent

__all__ = [
    "IMPLEMENTATION",
    "Book",
    "BookEvent",
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


def book_class(name: str = "auto") -> type[Book]:
    """The OrderBook class of one implementation: "reference", "compiled" or "auto".

    "auto" is ``engine.OrderBook``; "compiled" raises ImportError if the extension is not built.
    """
    if name == "reference":
        from gaemi.engine.reference import OrderBook as reference_book

        return reference_book
    if name == "compiled":
        from gaemi.engine._book import OrderBook as compiled_book

        return compiled_book
    if name == "auto":
        return cast("type[Book]", __getattr__("OrderBook"))
    raise ValueError(f"unknown implementation {name!r} (reference, compiled or auto)")


def _select() -> tuple[type[Book], str]:
    if os.environ.get("ENGINE_PUREPYTHON") == "1":
        from gaemi.engine.reference import OrderBook as reference_book

        return reference_book, "reference"
    try:
        from gaemi.engine._book import OrderBook as compiled_book

        return compiled_book, "compiled"
    except ImportError as exc:  # the extension was not built
        warnings.warn(f"gaemi.engine._book is not available ({exc}); using the reference "
                      "book", RuntimeWarning, stacklevel=3)
        from gaemi.engine.reference import OrderBook as reference_book

        return reference_book, "reference"


def __getattr__(name: str) -> object:
    """``OrderBook`` and ``IMPLEMENTATION`` are chosen on first use, not at import: a module
    that needs only the codes (the wire, the clients) never loads the compiled book."""
    if name in ("OrderBook", "IMPLEMENTATION"):
        book, implementation = _select()
        globals().update(OrderBook=book, IMPLEMENTATION=implementation)
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
