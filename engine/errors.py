"""Exceptions of the engine.

Business outcomes (a rejected order, an unknown id) are never exceptions: they are
``REJECTED`` events with a :class:`~engine.codes.RejectReason`. Exceptions are for bugs:

    AssertionError
    └── InvariantViolation   the book's internal state is inconsistent (fail fast)

A wrong argument *type* (a float price, a string id) raises the builtin ``TypeError`` before
anything changes, in both implementations.
"""

from __future__ import annotations

__all__ = ["InvariantViolation"]


class InvariantViolation(AssertionError):
    """Raised by ``check_invariants()`` when the book is internally inconsistent."""
