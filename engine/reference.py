"""The reference order book: the executable specification of matching.

Theory of operation
-------------------
A central limit order book with price-time priority. Each side is a ``SortedDict`` from
price (integer ticks) to a level; a level is an ``OrderedDict`` from order id to the resting
order, in arrival order, so the head of the queue is the first item and any order leaves in
O(1). A plain ``dict`` maps every resting order id to its order for O(1) cancel and amend.

Commands go in, a list of events comes out; nothing is called back during matching. The
event sequence each command produces is the contract both implementations keep (the table
in docs/engine.md); the compiled book (``engine._book``) must produce the same events and the
same ``state_hash()`` for every command sequence, and the differential tests check that.

Rules this module must keep:

* validation happens before any change: a rejected command leaves the book as it was;
* only GTC limit orders rest; IOC and market orders expire what they cannot fill; a
  fill-or-kill order trades its whole size at once or expires without any other event;
* a post-only order that would take is rejected;
* an amend that lowers the size at the same price keeps the order's place in its queue; a
  price change or a size increase re-queues it at the tail, and it may trade on the way;
* self-trade prevention is decided by the incoming order's mode and is checked before every
  maker it meets, so an account never trades with itself unless the mode is NONE.

Invariants (``check_invariants``): no level is empty; every order has size > 0 and sits at the
level of its price on its side; the id index holds exactly the resting orders; the book is
not crossed.

This module is optimised for clarity, not speed; it must not import anything that reads a
clock or a random source.
"""

from __future__ import annotations

import hashlib
from array import array
from collections import OrderedDict
from collections.abc import Iterator
from operator import index as _int
from typing import Any

from sortedcontainers import SortedDict

from gaemi.engine.codes import (
    MAX_ACCOUNT,
    MAX_ORDER_ID,
    MAX_PRICE,
    MAX_QTY,
    Command,
    EventKind,
    RejectReason,
    SelfTradePrevention,
    Side,
    TimeInForce,
)
from gaemi.engine.errors import InvariantViolation
from gaemi.engine.events import CMD_WIDTH, Event, OrderView, as_int64_rows

__all__ = ["IMPLEMENTATION", "OrderBook"]

IMPLEMENTATION = "reference"

ACCEPTED, REJECTED, FILL = EventKind.ACCEPTED, EventKind.REJECTED, EventKind.FILL
CANCELED, EXPIRED, AMENDED = EventKind.CANCELED, EventKind.EXPIRED, EventKind.AMENDED
STP = SelfTradePrevention
STP_REASON = RejectReason.SELF_TRADE_PREVENTED


class _Order:
    __slots__ = ("account", "order_id", "post_only", "price", "qty", "side", "stp")

    def __init__(self, order_id: int, side: Side, price: int, qty: int, account: int,
                 post_only: bool, stp: SelfTradePrevention) -> None:
        self.order_id = order_id
        self.side = side
        self.price = price
        self.qty = qty
        self.account = account
        self.post_only = post_only
        self.stp = stp

    def view(self) -> OrderView:
        return OrderView(self.order_id, self.side, self.price, self.qty, self.account)


def _valid_id(order_id: int) -> bool:
    return 0 < order_id <= MAX_ORDER_ID


class OrderBook:
    """A price-time priority limit order book for one instrument (pure Python)."""

    def __init__(self) -> None:
        # price -> OrderedDict[order_id, _Order]; best bid is the last key, best ask the first
        self._bids: SortedDict = SortedDict()
        self._asks: SortedDict = SortedDict()
        self._orders: dict[int, _Order] = {}

    # -- QUERIES --------------------------------------------------------------------------

    def __len__(self) -> int:
        """Number of resting orders."""
        return len(self._orders)

    def best_bid(self) -> int | None:
        """Highest bid price, or None. O(1)."""
        return self._bids.peekitem(-1)[0] if self._bids else None

    def best_ask(self) -> int | None:
        """Lowest ask price, or None. O(1)."""
        return self._asks.peekitem(0)[0] if self._asks else None

    def depth(self, n: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """The best ``n`` levels per side as ``(price, total_qty)``, best first."""
        n = max(_int(n), 0)  # any size is fine: islice stops at the end
        bids = [(p, self._level_qty(self._bids[p])) for p in self._prices(Side.BUY, n)]
        asks = [(p, self._level_qty(self._asks[p])) for p in self._prices(Side.SELL, n)]
        return bids, asks

    def order(self, order_id: int) -> OrderView | None:
        """The resting order with this id, or None. O(1)."""
        order = self._orders.get(_int(order_id))
        return None if order is None else order.view()

    def orders_at(self, side: int, price: int) -> list[OrderView]:
        """The orders resting at one price on one side, in queue order. O(log L + k)."""
        levels = self._bids if _int(side) == Side.BUY else self._asks
        return [o.view() for o in levels.get(_int(price), {}).values()]

    def snapshot(self) -> tuple[list[OrderView], list[OrderView]]:
        """Every resting order per side, in matching-priority order."""
        return (
            [o.view() for p in self._prices(Side.BUY) for o in self._bids[p].values()],
            [o.view() for p in self._prices(Side.SELL) for o in self._asks[p].values()],
        )

    def state_hash(self) -> int:
        """A 64-bit hash of the book's contents, equal across implementations for equal books.

        It covers every resting order's side, price, id, open size and account, in priority
        order (docs/engine.md gives the byte layout).
        """
        bids, asks = self.snapshot()
        words = array("q", (len(bids), len(asks)))
        for o in bids + asks:
            words.extend((o.side, o.price, o.order_id, o.qty, o.account))
        if words.itemsize != 8:  # pragma: no cover (design-time error)
            raise RuntimeError("array('q') is not 64-bit on this platform")
        data = words.tobytes() if _LITTLE_ENDIAN else _byteswapped(words)
        return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")

    def check_invariants(self) -> None:
        """Raise :class:`InvariantViolation` if the book is internally inconsistent."""
        seen = 0
        for side, levels in ((Side.BUY, self._bids), (Side.SELL, self._asks)):
            for price, level in levels.items():
                if not level:
                    _fail(f"empty level at {price} on {side.name}")
                for order_id, order in level.items():
                    if order.order_id != order_id or order.side != side or order.price != price:
                        _fail(f"order {order_id} sits at the wrong level")
                    if not 0 < order.qty <= MAX_QTY:
                        _fail(f"order {order_id} has size {order.qty}")
                    if self._orders.get(order_id) is not order:
                        _fail(f"order {order_id} is not indexed")
                    seen += 1
        if seen != len(self._orders):
            _fail(f"{seen} orders in levels but {len(self._orders)} indexed")
        bid, ask = self.best_bid(), self.best_ask()
        if bid is not None and ask is not None and bid >= ask:
            _fail(f"crossed book: {bid} >= {ask}")

    # -- COMMANDS -------------------------------------------------------------------------

    def place(
        self,
        order_id: int,
        side: int,
        price: int | None,
        qty: int,
        *,
        tif: int = TimeInForce.GTC,
        post_only: bool = False,
        account: int = 0,
        stp: int = SelfTradePrevention.NONE,
    ) -> list[Event]:
        """Submit an order; ``price=None`` makes it a market order.

        O(log L) to find the level plus O(1) per maker filled.
        """
        order_id, side, qty, tif, account, stp = (
            _int(order_id), _int(side), _int(qty), _int(tif), _int(account), _int(stp))
        price = None if price is None else _int(price)
        post_only = bool(post_only)
        reason = self._validate_place(order_id, side, price, qty, tif, post_only, account, stp)
        if reason:
            return [Event(REJECTED, order_id if _valid_id(order_id) else 0, reason=reason)]
        side, tif, stp = Side(side), TimeInForce(tif), SelfTradePrevention(stp)
        shown_price = price or 0
        if tif is TimeInForce.FOK and self._fillable(side, price, qty, account, stp) < qty:
            reason = RejectReason.FOK_NOT_FILLABLE
            return [Event(EXPIRED, order_id, shown_price, qty, reason=reason)]
        if post_only and self._crosses(side, price):
            return [Event(REJECTED, order_id, reason=RejectReason.POST_ONLY_WOULD_CROSS)]
        events = [Event(ACCEPTED, order_id, shown_price, qty)]
        order = _Order(order_id, side, shown_price, qty, account, post_only, stp)
        self._execute(order, price is not None and tif is TimeInForce.GTC, events)
        return events

    def cancel(self, order_id: int) -> list[Event]:
        """Remove a resting order. O(1) (plus O(log L) if its level empties)."""
        order_id = _int(order_id)
        if not _valid_id(order_id):
            return [Event(REJECTED, 0, reason=RejectReason.INVALID_ORDER_ID)]
        order = self._orders.get(order_id)
        if order is None:
            return [Event(REJECTED, order_id, reason=RejectReason.UNKNOWN_ORDER)]
        self._remove(order)
        return [Event(CANCELED, order_id, order.price, order.qty)]

    def amend(self, order_id: int, *, price: int | None = None,
              qty: int | None = None) -> list[Event]:
        """Change a resting order's price and/or open size (``qty`` is the new open size).

        A size decrease at the same price keeps queue priority; anything else re-queues the
        order at the tail of its (new) level, and it may trade first if it now crosses.
        """
        order_id = _int(order_id)
        price = None if price is None else _int(price)
        qty = None if qty is None else _int(qty)
        if not _valid_id(order_id):
            return [Event(REJECTED, 0, reason=RejectReason.INVALID_ORDER_ID)]
        reason = RejectReason.NONE
        if price is None and qty is None:
            reason = RejectReason.EMPTY_AMEND
        elif price is not None and not 0 < price <= MAX_PRICE:
            reason = RejectReason.INVALID_PRICE
        elif qty is not None and not 0 < qty <= MAX_QTY:
            reason = RejectReason.INVALID_QTY
        elif order_id not in self._orders:
            reason = RejectReason.UNKNOWN_ORDER
        if reason:
            return [Event(REJECTED, order_id, reason=reason)]
        order = self._orders[order_id]
        new_price = order.price if price is None else price
        new_qty = order.qty if qty is None else qty
        if new_price == order.price and new_qty <= order.qty:
            order.qty = new_qty  # keeps its place in the queue
            return [Event(AMENDED, order_id, new_price, new_qty)]
        if order.post_only and self._crosses(order.side, new_price):
            return [Event(REJECTED, order_id, reason=RejectReason.POST_ONLY_WOULD_CROSS)]
        self._remove(order)
        order.price, order.qty = new_price, new_qty
        events = [Event(AMENDED, order_id, new_price, new_qty)]
        self._execute(order, True, events)
        return events

    def apply_batch(self, commands: Any) -> array[int]:
        """Run a batch of commands (docs/engine.md) and return their events as one array."""
        rows = as_int64_rows(commands)
        out: array[int] = array("q")
        for i in range(len(rows) // CMD_WIDTH):
            command, order_id, side, price, qty, tif, post_only, stp, account = (
                rows[i * CMD_WIDTH : (i + 1) * CMD_WIDTH])
            if command == Command.PLACE:
                events = self.place(order_id, side, price or None, qty, tif=tif,
                                    post_only=bool(post_only), account=account, stp=stp)
            elif command == Command.CANCEL:
                events = self.cancel(order_id)
            elif command == Command.AMEND:
                events = self.amend(order_id, price=price or None, qty=qty or None)
            else:
                events = [Event(REJECTED, order_id if _valid_id(order_id) else 0,
                                reason=RejectReason.INVALID_COMMAND)]
            for event in events:
                out.append(i)
                out.extend(event.as_tuple())
        return out

    # -- MATCHING -------------------------------------------------------------------------

    def _execute(self, taker: _Order, may_rest: bool, events: list[Event]) -> None:
        """Match ``taker`` against the book, then rest or expire what is left."""
        limit = taker.price or None
        opposite = self._asks if taker.side is Side.BUY else self._bids
        stp_stop = False
        while taker.qty and opposite:
            price, level = opposite.peekitem(0 if taker.side is Side.BUY else -1)
            if limit is not None and (price > limit if taker.side is Side.BUY else price < limit):
                break
            maker = next(iter(level.values()))
            if taker.stp is not STP.NONE and maker.account == taker.account:
                stp_stop = self._prevent_self_trade(taker, maker, events)
                if stp_stop:
                    break
                continue
            traded = min(taker.qty, maker.qty)
            taker.qty -= traded
            maker.qty -= traded
            events.append(Event(FILL, taker.order_id, price, traded, maker.order_id, maker.qty))
            if maker.qty == 0:
                self._remove(maker)
        if not taker.qty:
            return
        if stp_stop:
            events.append(Event(EXPIRED, taker.order_id, taker.price, taker.qty, reason=STP_REASON))
        elif may_rest:
            self._insert(taker)
        else:
            events.append(Event(EXPIRED, taker.order_id, taker.price, taker.qty))

    def _prevent_self_trade(self, taker: _Order, maker: _Order, events: list[Event]) -> bool:
        """Apply the taker's STP mode to one maker; return True when matching must stop."""
        mode = taker.stp
        if mode is STP.DECREMENT:
            cut = min(taker.qty, maker.qty)
            maker.qty -= cut
            taker.qty -= cut
            if maker.qty:
                events.append(Event(AMENDED, maker.order_id, maker.price, maker.qty,
                                    reason=STP_REASON))
            else:
                self._remove(maker)
                events.append(Event(CANCELED, maker.order_id, maker.price, cut, reason=STP_REASON))
            if taker.qty:
                events.append(Event(AMENDED, taker.order_id, taker.price, taker.qty,
                                    reason=STP_REASON))
            else:
                events.append(Event(EXPIRED, taker.order_id, taker.price, cut, reason=STP_REASON))
            return False
        if mode is STP.CANCEL_RESTING or mode is STP.CANCEL_BOTH:
            self._remove(maker)
            events.append(Event(CANCELED, maker.order_id, maker.price, maker.qty,
                                reason=STP_REASON))
        return mode is not STP.CANCEL_RESTING

    def _fillable(self, side: Side, limit: int | None, qty: int, account: int,
                  stp: SelfTradePrevention) -> int:
        """How much an order could fill right now, walking the book without changing it.

        Own orders count as liquidity under STP NONE, are skipped under CANCEL_RESTING (they
        would be canceled), and end the walk under the other modes (matching would stop or
        stop filling there). Stops counting once ``qty`` is reached.
        """
        total: int = 0
        for price in self._prices(Side(-side)):
            if limit is not None and (price > limit if side is Side.BUY else price < limit):
                break
            level = (self._asks if side is Side.BUY else self._bids)[price]
            for maker in level.values():
                if stp is not STP.NONE and maker.account == account:
                    if stp is STP.CANCEL_RESTING:
                        continue
                    return total
                total += maker.qty
                if total >= qty:
                    return total
        return total

    def _crosses(self, side: Side, price: int | None) -> bool:
        if side is Side.BUY:
            ask = self.best_ask()
            return ask is not None and (price is None or ask <= price)
        bid = self.best_bid()
        return bid is not None and (price is None or bid >= price)

    def _insert(self, order: _Order) -> None:
        levels = self._bids if order.side is Side.BUY else self._asks
        level = levels.get(order.price)
        if level is None:
            level = levels[order.price] = OrderedDict()
        level[order.order_id] = order
        self._orders[order.order_id] = order

    def _remove(self, order: _Order) -> None:
        levels = self._bids if order.side is Side.BUY else self._asks
        level = levels[order.price]
        del level[order.order_id]
        if not level:
            del levels[order.price]
        del self._orders[order.order_id]

    # -- HELPERS --------------------------------------------------------------------------

    def _validate_place(self, order_id: int, side: int, price: int | None, qty: int, tif: int,
                        post_only: bool, account: int, stp: int) -> RejectReason:
        if not _valid_id(order_id):
            return RejectReason.INVALID_ORDER_ID
        if side != Side.BUY and side != Side.SELL:
            return RejectReason.INVALID_SIDE
        if price is not None and not 0 < price <= MAX_PRICE:
            return RejectReason.INVALID_PRICE
        if not 0 < qty <= MAX_QTY:
            return RejectReason.INVALID_QTY
        if tif not in _TIFS:
            return RejectReason.INVALID_TIME_IN_FORCE
        if stp not in _STPS:
            return RejectReason.INVALID_STP
        if not 0 <= account <= MAX_ACCOUNT:
            return RejectReason.INVALID_ACCOUNT
        if post_only and (price is None or tif != TimeInForce.GTC):
            return RejectReason.INVALID_POST_ONLY
        if order_id in self._orders:
            return RejectReason.DUPLICATE_ORDER_ID
        return RejectReason.NONE

    def _prices(self, side: Side, n: int | None = None) -> Iterator[int]:
        """A side's prices, best first (the best ``n`` if given)."""
        if side is Side.BUY:
            # islice picks the positions first, then reverses: take the top n of the bids
            start = 0 if n is None else max(len(self._bids) - n, 0)
            return iter(self._bids.islice(start=start, reverse=True))
        return iter(self._asks.islice(stop=n))

    @staticmethod
    def _level_qty(level: OrderedDict[int, _Order]) -> int:
        return sum(o.qty for o in level.values())


_TIFS = frozenset(int(t) for t in TimeInForce)
_STPS = frozenset(int(s) for s in SelfTradePrevention)
_LITTLE_ENDIAN = array("q", [1]).tobytes()[0] == 1


def _byteswapped(words: array[int]) -> bytes:  # pragma: no cover (big-endian hosts only)
    copy = array("q", words)
    copy.byteswap()
    return copy.tobytes()


def _fail(message: str) -> None:
    raise InvariantViolation(message)
