"""The implementation under test is the one that was asked for.

A stale or missing extension must not turn a compiled run silently into a pure one.
"""

from __future__ import annotations

import os

from gaemi import engine


def test_environment_implementation_matches_request() -> None:
    # Arrange
    wanted = "reference" if os.environ.get("ENGINE_PUREPYTHON") == "1" else "compiled"

    # Act
    chosen = engine.IMPLEMENTATION

    # Assert
    assert chosen == wanted
    assert engine.OrderBook.__module__ == ("gaemi.engine.reference" if wanted == "reference"
                                           else "gaemi.engine._book")
