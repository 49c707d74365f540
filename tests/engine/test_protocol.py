"""The book interface as a type (gaemi.engine.protocol) against both implementations.

``Book`` and ``BookEvent`` are what the code above the engine is typed against, and mypy
checks the implementations against them (``make lint``; the compiled book through its stub
engine/_book.pyi). These tests keep the three in step at run time: each implementation is an
instance of the protocols, and the protocol, the reference book, the compiled book and the
stub name the same public methods, so none can gain or lose one unseen.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

import pytest

from gaemi.engine import Book, BookEvent
from gaemi.engine.codes import Side

STUB = Path(__file__).resolve().parents[2] / "engine" / "_book.pyi"


def _public(names: object) -> set[str]:
    return {n for n in dir(names) if not n.startswith("_")} | (
        {"__len__"} if hasattr(names, "__len__") else set())


def _protocol_members(proto: type) -> set[str]:
    return {n for n in vars(proto) if not n.startswith("_") or n == "__len__"} - {
        "__protocol_attrs__", "__non_callable_proto_members__"}


def test_each_book_is_a_book_and_its_events_book_events(
        make_book: Callable[[], Book]) -> None:
    # Arrange
    book = make_book()

    # Act
    events = book.place(1, Side.SELL, 100, 5)
    events += book.place(2, Side.BUY, 100, 2)

    # Assert
    assert isinstance(book, Book)
    assert len(events) == 3 and all(isinstance(e, BookEvent) for e in events)


def test_the_protocol_names_every_public_method_of_each_book(
        make_book: Callable[[], Book]) -> None:
    # Arrange
    book_type = type(make_book())

    # Act
    methods = _public(book_type)

    # Assert
    assert methods == _protocol_members(Book)


def test_the_event_protocol_names_every_public_field_of_each_event(
        make_book: Callable[[], Book]) -> None:
    # Arrange
    event = make_book().place(1, Side.BUY, 100, 1)[0]

    # Act
    fields = _public(event) - {"__len__"}

    # Assert
    assert fields == _protocol_members(BookEvent)


def test_the_stub_of_the_compiled_book_names_what_it_has() -> None:
    # Arrange
    compiled = pytest.importorskip("gaemi.engine._book")
    tree = ast.parse(STUB.read_text())

    # Act
    stub = {node.name: {f.name for f in node.body if isinstance(f, ast.FunctionDef)}
            for node in tree.body if isinstance(node, ast.ClassDef)}

    # Assert
    assert set(stub) == {"Event", "OrderBook"}
    assert stub["OrderBook"] - {"__init__"} == _public(compiled.OrderBook)
    assert stub["Event"] == _public(compiled.Event) - {"__len__"}
