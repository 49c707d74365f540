"""The commands of the venue: every change of state is one of these, and each is journaled.

Commands are frozen dataclasses of plain values (ints, text, bools, None), so the journal can
store one as ``[code, *fields]`` and rebuild it exactly. ``CODE`` is part of the journal
format: a value, once used, is never reused for another command.

Units: prices in ticks, sizes in lots, money in collateral units (micro-dollars), time in
nanoseconds since the Unix epoch (UTC). Validation happens in the venue, not here: a command
with a bad field is still a command, and the venue answers it with a typed rejection.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

from gaemi.engine.codes import Side, TimeInForce

__all__ = [
    "AdvanceTime", "AmendOrder", "CancelAll", "CancelOrder", "Command", "Deposit",
    "PlaceConditional", "PlaceOrder", "SetIndexPrice", "SetLeverage", "SetMarginMode",
    "SetTradingStatus", "Withdraw", "decode", "encode",
]


@dataclass(frozen=True, slots=True)
class Deposit:
    """Credit collateral to an account (creating the account if it is new)."""

    CODE: ClassVar[int] = 1
    account_id: int
    amount: int


@dataclass(frozen=True, slots=True)
class Withdraw:
    """Debit collateral; refused beyond the withdrawable amount (no unrealized profit)."""

    CODE: ClassVar[int] = 2
    account_id: int
    amount: int


@dataclass(frozen=True, slots=True)
class PlaceOrder:
    """A limit order (``price`` in ticks) or, with ``price=None``, a market order."""

    CODE: ClassVar[int] = 3
    account_id: int
    symbol: str
    side: int
    price: int | None
    qty: int
    tif: int = TimeInForce.GTC
    post_only: bool = False
    reduce_only: bool = False
    client_order_id: str | None = None


@dataclass(frozen=True, slots=True)
class CancelOrder:
    """Cancel a resting or conditional order by venue ``order_id`` or by ``client_order_id``."""

    CODE: ClassVar[int] = 4
    account_id: int
    symbol: str
    order_id: int | None = None
    client_order_id: str | None = None


@dataclass(frozen=True, slots=True)
class AmendOrder:
    """Change a resting order's price and/or open size (the rules of docs/engine.md)."""

    CODE: ClassVar[int] = 5
    account_id: int
    symbol: str
    order_id: int
    price: int | None = None
    qty: int | None = None


@dataclass(frozen=True, slots=True)
class SetLeverage:
    """The account's leverage in one market (1 .. the first tier's maximum)."""

    CODE: ClassVar[int] = 6
    account_id: int
    symbol: str
    leverage: int


@dataclass(frozen=True, slots=True)
class SetMarginMode:
    """"cross" or "isolated" for one market; only with no position and no open orders there."""

    CODE: ClassVar[int] = 7
    account_id: int
    symbol: str
    mode: str


@dataclass(frozen=True, slots=True)
class SetIndexPrice:
    """The underlying's index price, in ticks (the oracle update)."""

    CODE: ClassVar[int] = 8
    symbol: str
    price: int


@dataclass(frozen=True, slots=True)
class AdvanceTime:
    """Venue time moves to ``ts_ns``: samples, funding and session changes that fall due run."""

    CODE: ClassVar[int] = 9
    ts_ns: int


@dataclass(frozen=True, slots=True)
class CancelAll:
    """Cancel all the account's orders (resting and conditional), in one market or all."""

    CODE: ClassVar[int] = 10
    account_id: int
    symbol: str | None = None


@dataclass(frozen=True, slots=True)
class PlaceConditional:
    """A stop-market or take-profit order held by the venue until the mark crosses
    ``trigger_price``; then it enters the book as a market order (or a limit at ``price``).

    A sell stop fires when the mark falls to the trigger, a buy stop when it rises to it; a
    take-profit fires the other way (sell when the mark rises to the trigger)."""

    CODE: ClassVar[int] = 11
    account_id: int
    symbol: str
    side: int
    qty: int
    trigger_price: int
    kind: str  # "stop" or "take_profit"
    price: int | None = None
    reduce_only: bool = False
    client_order_id: str | None = None


@dataclass(frozen=True, slots=True)
class SetTradingStatus:
    """Halt or reopen a market: "open" or "halted" (orders refused, cancels allowed,
    liquidations and funding paused until it reopens)."""

    CODE: ClassVar[int] = 12
    symbol: str
    status: str


Command = (Deposit | Withdraw | PlaceOrder | CancelOrder | AmendOrder | SetLeverage
           | SetMarginMode | SetIndexPrice | AdvanceTime | CancelAll | PlaceConditional
           | SetTradingStatus)

BY_CODE: dict[int, type] = {
    cls.CODE: cls
    for cls in (Deposit, Withdraw, PlaceOrder, CancelOrder, AmendOrder, SetLeverage,
                SetMarginMode, SetIndexPrice, AdvanceTime, CancelAll, PlaceConditional,
                SetTradingStatus)
}


_FIELDS: dict[type, tuple[str, ...]] = {
    cls: tuple(f.name for f in fields(cls)) for cls in BY_CODE.values()
}


def encode(command: Command) -> list[object]:
    """``[code, *fields]`` with enums as plain ints (what the journal stores)."""
    row: list[object] = [command.CODE]
    for name in _FIELDS[type(command)]:
        value = getattr(command, name)
        row.append(int(value) if isinstance(value, (Side, TimeInForce)) else value)
    return row


def decode(row: list[object]) -> Command:
    """The command ``encode`` produced; ValueError for anything else."""
    if not row or not isinstance(row[0], int) or row[0] not in BY_CODE:
        raise ValueError(f"not a command record: {row!r}")
    try:
        return BY_CODE[row[0]](*row[1:])  # type: ignore[no-any-return]
    except TypeError as exc:
        raise ValueError(f"bad fields for command {row[0]}: {exc}") from None
