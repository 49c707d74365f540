"""The integer codes are a wire format: their values must never change silently.

Adding, renaming or renumbering a member makes one of these tests fail on purpose; update
them only together with a deliberate, documented change of the codes.
"""

from __future__ import annotations

from enum import IntEnum

import pytest

from gaemi.engine import codes
from gaemi.engine.codes import (
    Command,
    EventKind,
    RejectReason,
    SelfTradePrevention,
    Side,
    TimeInForce,
)

EXPECTED = {
    Side: {"BUY": 1, "SELL": -1},
    TimeInForce: {"GTC": 1, "IOC": 2, "FOK": 3},
    SelfTradePrevention: {
        "NONE": 0, "CANCEL_RESTING": 1, "CANCEL_INCOMING": 2, "CANCEL_BOTH": 3, "DECREMENT": 4,
    },
    EventKind: {
        "ACCEPTED": 1, "REJECTED": 2, "FILL": 3, "CANCELED": 4, "EXPIRED": 5, "AMENDED": 6,
    },
    Command: {"PLACE": 1, "CANCEL": 2, "AMEND": 3},
    RejectReason: {
        "NONE": 0,
        "INVALID_ORDER_ID": 1001,
        "INVALID_SIDE": 1002,
        "INVALID_PRICE": 1003,
        "INVALID_QTY": 1004,
        "INVALID_TIME_IN_FORCE": 1005,
        "INVALID_STP": 1006,
        "INVALID_ACCOUNT": 1007,
        "INVALID_POST_ONLY": 1008,
        "EMPTY_AMEND": 1009,
        "INVALID_COMMAND": 1010,
        "UNKNOWN_MARKET": 1101,
        "INVALID_AMOUNT": 1102,
        "INVALID_LEVERAGE": 1103,
        "INVALID_MARGIN_MODE": 1104,
        "INVALID_TIMESTAMP": 1105,
        "INVALID_TRIGGER": 1106,
        "INVALID_CLIENT_ORDER_ID": 1107,
        "INVALID_STATUS": 1108,
        "INVALID_REDUCE_ONLY": 1109,
        "TIME_STEP_TOO_LARGE": 1110,
        "INSUFFICIENT_MARGIN": 2001,
        "REDUCE_ONLY_WOULD_INCREASE": 2002,
        "PRICE_OUTSIDE_BAND": 2003,
        "ORDER_TOO_LARGE": 2004,
        "OPEN_INTEREST_CAP": 2005,
        "MARKET_HALTED": 2006,
        "PRICE_LIMIT": 2007,
        "NO_MARK_PRICE": 2008,
        "LEVERAGE_ABOVE_TIER": 2009,
        "UNKNOWN_ORDER": 3001,
        "DUPLICATE_ORDER_ID": 3002,
        "POST_ONLY_WOULD_CROSS": 3003,
        "FOK_NOT_FILLABLE": 3004,
        "SELF_TRADE_PREVENTED": 3005,
        "INSUFFICIENT_BALANCE": 4001,
        "UNKNOWN_ACCOUNT": 4002,
        "POSITION_OPEN": 4003,
        "OPEN_ORDERS_EXIST": 4004,
        "DUPLICATE_CLIENT_ORDER_ID": 4005,
        "TOO_MANY_OPEN_ORDERS": 4006,
    },
}

ENUMS = list(EXPECTED)


@pytest.mark.parametrize("enum", ENUMS, ids=lambda e: e.__name__)
def test_codes_enum_members_have_their_published_values(enum):
    # Arrange
    expected = EXPECTED[enum]
    # Act: __members__ also lists aliases, so a duplicated value would show up here
    actual = {name: int(member) for name, member in enum.__members__.items()}
    # Assert
    assert actual == expected


@pytest.mark.parametrize("enum", ENUMS, ids=lambda e: e.__name__)
def test_codes_enum_values_are_not_duplicated(enum):
    # Arrange
    names = list(enum.__members__)
    # Act
    values = [int(enum.__members__[name]) for name in names]
    # Assert: no member is an alias of another
    assert len(set(values)) == len(values)
    assert [m.name for m in enum] == names


@pytest.mark.parametrize("enum", ENUMS, ids=lambda e: e.__name__)
def test_codes_enums_are_int_enums(enum):
    # Arrange / Act
    is_int_enum = issubclass(enum, IntEnum)
    # Assert
    assert is_int_enum


def test_codes_bounds_have_their_published_values():
    # Arrange / Act
    bounds = (codes.MAX_ORDER_ID, codes.MAX_PRICE, codes.MAX_QTY, codes.MAX_ACCOUNT)
    # Assert
    assert bounds == (2**62, 2**40, 2**31, 2**62)


def test_codes_max_qty_level_sums_fit_in_int64():
    # Arrange: the most orders a book can hold, every one of the largest size, at one level
    orders = codes.MAX_ORDERS
    # Act
    total = orders * codes.MAX_QTY
    # Assert: a level total (and any sum of fillable size) cannot overflow int64
    assert total < 2**63


def test_reject_reason_validation_codes_are_in_1xxx_range():
    # Arrange
    validation = {
        RejectReason.INVALID_ORDER_ID, RejectReason.INVALID_SIDE, RejectReason.INVALID_PRICE,
        RejectReason.INVALID_QTY, RejectReason.INVALID_TIME_IN_FORCE, RejectReason.INVALID_STP,
        RejectReason.INVALID_ACCOUNT, RejectReason.INVALID_POST_ONLY, RejectReason.EMPTY_AMEND,
        RejectReason.INVALID_COMMAND, RejectReason.UNKNOWN_MARKET, RejectReason.INVALID_AMOUNT,
        RejectReason.INVALID_LEVERAGE, RejectReason.INVALID_MARGIN_MODE,
        RejectReason.INVALID_TIMESTAMP, RejectReason.INVALID_TRIGGER,
        RejectReason.INVALID_CLIENT_ORDER_ID, RejectReason.INVALID_STATUS,
        RejectReason.INVALID_REDUCE_ONLY, RejectReason.TIME_STEP_TOO_LARGE,
    }
    # Act
    in_range = {r for r in RejectReason if 1000 <= r <= 1999}
    # Assert
    assert in_range == validation


def test_reject_reason_matching_codes_are_in_3xxx_range():
    # Arrange
    matching = {
        RejectReason.UNKNOWN_ORDER, RejectReason.DUPLICATE_ORDER_ID,
        RejectReason.POST_ONLY_WOULD_CROSS, RejectReason.FOK_NOT_FILLABLE,
        RejectReason.SELF_TRADE_PREVENTED,
    }
    # Act
    in_range = {r for r in RejectReason if 3000 <= r <= 3999}
    # Assert
    assert in_range == matching


def test_reject_reason_every_code_is_none_or_in_a_published_range():
    # Arrange: 1xxx, 2xxx, 3xxx, 4xxx (the table in engine/codes.py); 8xxx and 9xxx are the
    # gateway's (tests/gateway/test_codes.py)
    ranges = {1, 2, 3, 4}
    # Act
    outside = [r for r in RejectReason
               if r != 0 and not (1000 <= r <= 9999 and r // 1000 in ranges)]
    # Assert
    assert outside == []
    assert RejectReason.NONE == 0


def test_side_values_are_the_sign_of_the_position_change():
    # Arrange / Act
    signs = (Side.BUY + Side.SELL, Side.BUY * Side.SELL)
    # Assert
    assert signs == (0, -1)
