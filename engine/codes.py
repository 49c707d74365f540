"""Integer codes shared by every layer of Gaemi.

This module is a leaf: it imports nothing from the project and loads no C code, so the
gateway, the risk layer and the clients can all speak the same codes cheaply.

All enums are ``IntEnum`` because they cross the wire. Codes are stable: a value, once
published, is never reused; a retired member stays here as a comment naming its code.

``RejectReason`` codes are grouped by range (docs/design.md §7):

====== ==========================================
range  meaning
====== ==========================================
0      no reason (a normal, requested outcome)
1xxx   structural validation of a command
2xxx   pre-trade risk (owned by ``risk``)
3xxx   matching (owned by ``engine``)
4xxx   account management (owned by ``risk``)
====== ==========================================

The gateway's own codes (8xxx protocol, 9xxx system) live with the gateway:
``gaemi.gateway.wire.errors.GatewayCode``. Both sets share one space of numbers, so a response's
``error.code`` names exactly one of them.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "MAX_ACCOUNT",
    "MAX_ORDERS",
    "MAX_ORDER_ID",
    "MAX_PRICE",
    "MAX_QTY",
    "Command",
    "EventKind",
    "RejectReason",
    "SelfTradePrevention",
    "Side",
    "TimeInForce",
]

# Engine bounds. Values outside are rejected with a typed reason before the book changes.
# They keep every quantity the book adds up (level totals, fillable size) inside int64: the
# compiled book holds at most 2**31 orders (int32 slots), and 2**31 orders of MAX_QTY lots
# make 2**62 < 2**63.
MAX_ORDER_ID = 2**62
MAX_PRICE = 2**40
MAX_QTY = 2**31
MAX_ORDERS = 2**31 - 1
MAX_ACCOUNT = 2**62


class Side(IntEnum):
    """Order side. The values are the sign of the position change a fill causes."""

    BUY = 1
    SELL = -1


class TimeInForce(IntEnum):
    """How long an order may live."""

    GTC = 1  # rests until filled or canceled
    IOC = 2  # takes what it can, the rest expires
    FOK = 3  # fills completely at once or expires without trading


class SelfTradePrevention(IntEnum):
    """What happens when an incoming order would trade with its own account's resting order.

    The incoming (taker) order's mode decides. ``NONE`` allows the self-trade.
    """

    NONE = 0
    CANCEL_RESTING = 1  # cancel the resting order, keep matching ("expire maker")
    CANCEL_INCOMING = 2  # expire the rest of the incoming order ("expire taker")
    CANCEL_BOTH = 3  # both of the above
    DECREMENT = 4  # reduce both by the smaller size, no trade; a side reduced to 0 is removed


class EventKind(IntEnum):
    """What happened to an order. See docs/engine.md for the event contract."""

    ACCEPTED = 1
    REJECTED = 2
    FILL = 3
    CANCELED = 4
    EXPIRED = 5
    AMENDED = 6


class Command(IntEnum):
    """Command codes of the batch format (``apply_batch``, docs/engine.md)."""

    PLACE = 1
    CANCEL = 2
    AMEND = 3


class RejectReason(IntEnum):
    """Why a command was refused, or why an order left the book early.

    A ``REJECTED`` event always carries a non-zero reason. ``CANCELED``, ``EXPIRED`` and
    ``AMENDED`` events carry ``NONE`` when the outcome was asked for, or a reason when the
    engine imposed it (self-trade prevention, fill-or-kill).
    """

    NONE = 0

    # 1xxx: structural validation
    INVALID_ORDER_ID = 1001
    INVALID_SIDE = 1002
    INVALID_PRICE = 1003
    INVALID_QTY = 1004
    INVALID_TIME_IN_FORCE = 1005
    INVALID_STP = 1006
    INVALID_ACCOUNT = 1007
    INVALID_POST_ONLY = 1008  # post-only needs a GTC limit order
    EMPTY_AMEND = 1009  # an amend that names neither a price nor a size
    INVALID_COMMAND = 1010  # an unknown command code in a batch
    # 11xx: validation of venue commands (owned by ``risk``)
    UNKNOWN_MARKET = 1101
    INVALID_AMOUNT = 1102  # a deposit or withdrawal that is not a positive integer
    INVALID_LEVERAGE = 1103
    INVALID_MARGIN_MODE = 1104
    INVALID_TIMESTAMP = 1105  # time that goes backwards
    INVALID_TRIGGER = 1106  # a conditional order's trigger price or kind
    INVALID_CLIENT_ORDER_ID = 1107
    INVALID_STATUS = 1108  # an unknown trading status
    INVALID_REDUCE_ONLY = 1109  # reduce_only that is not a bool
    TIME_STEP_TOO_LARGE = 1110  # one AdvanceTime may cover a bounded number of fundings

    # 2xxx: pre-trade risk (owned by ``risk``)
    INSUFFICIENT_MARGIN = 2001
    REDUCE_ONLY_WOULD_INCREASE = 2002
    PRICE_OUTSIDE_BAND = 2003  # limit price too far from the mark
    ORDER_TOO_LARGE = 2004
    OPEN_INTEREST_CAP = 2005
    MARKET_HALTED = 2006
    PRICE_LIMIT = 2007  # outside the daily price limit (KRX-style) of the market
    NO_MARK_PRICE = 2008  # the market has no index yet, so nothing can be priced
    LEVERAGE_ABOVE_TIER = 2009  # the position's notional tier allows less leverage

    # 3xxx: matching
    UNKNOWN_ORDER = 3001
    DUPLICATE_ORDER_ID = 3002
    POST_ONLY_WOULD_CROSS = 3003
    FOK_NOT_FILLABLE = 3004
    SELF_TRADE_PREVENTED = 3005

    # 4xxx: account management (owned by ``risk``)
    INSUFFICIENT_BALANCE = 4001  # a withdrawal larger than what is withdrawable
    UNKNOWN_ACCOUNT = 4002
    POSITION_OPEN = 4003  # margin mode or isolated leverage cannot change with a position
    OPEN_ORDERS_EXIST = 4004  # margin mode cannot change with open orders
    DUPLICATE_CLIENT_ORDER_ID = 4005
    TOO_MANY_OPEN_ORDERS = 4006
