"""Shared fixtures: every engine test runs on both book implementations."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from gaemi.engine import Book, book_class


def implementations() -> list[str]:
    # ENGINE_PUREPYTHON=1 runs the whole suite on the reference book alone
    if os.environ.get("ENGINE_PUREPYTHON") == "1":
        return ["reference"]
    return ["reference", "compiled"]


__all__ = ["book_class", "implementations"]


@pytest.fixture(params=implementations())
def impl(request: pytest.FixtureRequest) -> str:
    """The name of the implementation under test."""
    return str(request.param)


@pytest.fixture
def make_book(impl: str) -> Callable[[], Book]:
    """A factory of empty books of the implementation under test."""
    return book_class(impl)
