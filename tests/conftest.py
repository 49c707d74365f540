"""Shared fixtures: every engine test runs on both book implementations."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable

import pytest

from engine import reference


def _implementations() -> list[str]:
    # ENGINE_PUREPYTHON=1 runs the whole suite on the reference book alone
    if os.environ.get("ENGINE_PUREPYTHON") == "1":
        return ["reference"]
    return ["reference", "compiled"]


def book_class(name: str) -> type:
    """The OrderBook class of one implementation ("reference" or "compiled")."""
    if name == "reference":
        return reference.OrderBook
    return importlib.import_module("engine._book").OrderBook


@pytest.fixture(params=_implementations())
def impl(request: pytest.FixtureRequest) -> str:
    """The name of the implementation under test."""
    return str(request.param)


@pytest.fixture
def make_book(impl: str) -> Callable[[], object]:
    """A factory of empty books of the implementation under test."""
    return book_class(impl)
