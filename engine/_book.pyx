# cython: language_level=3, embedsignature=True, cdivision=True
"""The compiled order book: the reference book's contract over C structures.

Theory of operation
-------------------
Same commands, same events, same ``state_hash()`` as ``engine.reference.OrderBook`` (the
specification; docs/engine.md has the event contract). Only the storage differs:

* Orders are C structs in one pool (``_orders``) grown by doubling and recycled through a free
  list. Each price level is an intrusive doubly linked FIFO through that pool, so cancel,
  reduce and fill-at-head are O(1). Pool slots are indices, never pointers: any allocation may
  move the pool, so pointers are taken again after one.
* Levels are structs in a second pool. Each side keeps its levels in a sorted array with the
  best level at the end (key = price for bids, -price for asks, so both arrays ascend towards
  the best). The best level is ``level[n - 1]``; finding a level is a binary search; adding or
  dropping one moves only the levels between it and the top.
* An open-addressing table (linear probing, Fibonacci hashing, backward-shift deletion, load
  at most 1/2) maps order id -> pool slot.
* Every command writes its events as C rows into ``_ev``. The per-call methods turn those rows
  into ``Event`` objects; ``apply_batch`` copies them into one int64 array and builds no Python
  object per command. One matching routine serves both paths.

Python-visible arguments are converted to int64 before anything changes: a non-integer raises
TypeError, an integer outside int64 becomes an out-of-range value that validation rejects.
"""

cimport cython
from cpython.array cimport array, clone
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.number cimport PyNumber_Index
from libc.stdint cimport int32_t, int64_t, uint64_t
from libc.string cimport memcpy, memmove

import hashlib

from gaemi.engine import codes
from gaemi.engine.codes import EventKind, RejectReason, Side
from gaemi.engine.errors import InvariantViolation
from gaemi.engine.events import CMD_WIDTH, OrderView, as_int64_rows, event_repr


IMPLEMENTATION = "compiled"

# kinds, reasons and modes as C constants (engine/codes.py holds the published values;
# tests/engine/test_codes.py checks that the two agree)
cdef enum:
    K_ACCEPTED = 1
    K_REJECTED = 2
    K_FILL = 3
    K_CANCELED = 4
    K_EXPIRED = 5
    K_AMENDED = 6

    R_INVALID_ORDER_ID = 1001
    R_INVALID_SIDE = 1002
    R_INVALID_PRICE = 1003
    R_INVALID_QTY = 1004
    R_INVALID_TIME_IN_FORCE = 1005
    R_INVALID_STP = 1006
    R_INVALID_ACCOUNT = 1007
    R_INVALID_POST_ONLY = 1008
    R_EMPTY_AMEND = 1009
    R_INVALID_COMMAND = 1010
    R_UNKNOWN_ORDER = 3001
    R_DUPLICATE_ORDER_ID = 3002
    R_POST_ONLY_WOULD_CROSS = 3003
    R_FOK_NOT_FILLABLE = 3004
    R_SELF_TRADE_PREVENTED = 3005

    GTC = 1
    FOK = 3
    STP_NONE = 0
    STP_CANCEL_RESTING = 1
    STP_CANCEL_INCOMING = 2
    STP_CANCEL_BOTH = 3
    STP_DECREMENT = 4

    CMD_PLACE = 1
    CMD_CANCEL = 2
    CMD_AMEND = 3

cdef int64_t MAX_ORDER_ID = codes.MAX_ORDER_ID
cdef int64_t MAX_PRICE = codes.MAX_PRICE
cdef int64_t MAX_QTY = codes.MAX_QTY
cdef int64_t MAX_ACCOUNT = codes.MAX_ACCOUNT

_KINDS = [None] + [EventKind(k) for k in range(1, 7)]
_REASONS = {int(r): r for r in RejectReason}
_SIDES = {1: Side.BUY, -1: Side.SELL}


cdef inline int64_t _to_i64(object x, int64_t bad) except? -1:
    # an int (or anything with __index__) as int64; `bad` if it does not fit
    cdef int overflow = 0
    cdef long long v
    if not isinstance(x, int):
        x = PyNumber_Index(x)  # TypeError for floats, strings, None
    v = PyLong_AsLongLongAndOverflow(x, &overflow)
    return bad if overflow else v


@cython.overflowcheck(False)  # the hash multiplies modulo 2**64 on purpose
cdef inline uint64_t _fib(int64_t key) noexcept:
    return <uint64_t>key * <uint64_t>0x9E3779B97F4A7C15ULL


cdef inline void _init_side(SideBook *sb) noexcept:
    sb.n = 0
    sb.cap = 64
    sb.key = <int64_t *>PyMem_Malloc(sb.cap * sizeof(int64_t))
    sb.level = <int32_t *>PyMem_Malloc(sb.cap * sizeof(int32_t))


cdef inline int64_t _key(int side, int64_t price) noexcept:
    return price if side == 1 else -price


@cython.final
@cython.freelist(256)
cdef class Event:
    """One thing that happened to one order (see engine.events for the fields)."""

    def __init__(self, *args, **kwargs):
        raise TypeError("compiled events are made by the book; use engine.events.Event")

    @property
    def kind(self):
        return _KINDS[self._kind]

    @property
    def reason(self):
        return _REASONS[self._reason]

    def as_tuple(self):
        """The fields in ``EVENT_FIELDS`` order (without the command index)."""
        return (self._kind, self.order_id, self.price, self.qty, self.maker_id,
                self.maker_remaining, self._reason)

    def __eq__(self, other):
        as_tuple = getattr(other, "as_tuple", None)
        if as_tuple is None:
            return NotImplemented
        return self.as_tuple() == as_tuple()

    def __hash__(self):
        return hash(self.as_tuple())

    def __repr__(self):
        return event_repr(self.as_tuple())


@cython.final
cdef class OrderBook:
    """A price-time priority limit order book for one instrument (compiled)."""

    def __cinit__(self):
        self._orders_cap = 64
        self._orders = <Order *>PyMem_Malloc(self._orders_cap * sizeof(Order))
        self._levels_cap = 64
        self._levels = <Level *>PyMem_Malloc(self._levels_cap * sizeof(Level))
        self._map_cap = 128
        self._map_shift = 64 - 7
        self._map_keys = <int64_t *>PyMem_Malloc(self._map_cap * sizeof(int64_t))
        self._map_vals = <int32_t *>PyMem_Malloc(self._map_cap * sizeof(int32_t))
        self._ev_cap = 64
        self._ev = <EventRow *>PyMem_Malloc(self._ev_cap * sizeof(EventRow))
        _init_side(&self._bids)
        _init_side(&self._asks)
        if (not self._orders or not self._levels or not self._map_keys or not self._map_vals
                or not self._ev or not self._bids.key or not self._bids.level
                or not self._asks.key or not self._asks.level):
            raise MemoryError()
        cdef Py_ssize_t i
        for i in range(self._map_cap):
            self._map_keys[i] = 0
        self._free_order = -1
        self._free_level = -1
        self._norders = 0
        self._grow_orders_from(0)
        self._grow_levels_from(0)

    def __dealloc__(self):
        PyMem_Free(self._orders)
        PyMem_Free(self._levels)
        PyMem_Free(self._map_keys)
        PyMem_Free(self._map_vals)
        PyMem_Free(self._ev)
        PyMem_Free(self._bids.key)
        PyMem_Free(self._bids.level)
        PyMem_Free(self._asks.key)
        PyMem_Free(self._asks.level)

    # -- QUERIES ---------------------------------------------------------------------------

    def __len__(self):
        """Number of resting orders."""
        return self._norders

    def best_bid(self):
        """Highest bid price, or None. O(1)."""
        if self._bids.n == 0:
            return None
        return self._levels[self._bids.level[self._bids.n - 1]].price

    def best_ask(self):
        """Lowest ask price, or None. O(1)."""
        if self._asks.n == 0:
            return None
        return self._levels[self._asks.level[self._asks.n - 1]].price

    def depth(self, n):
        """The best ``n`` levels per side as ``(price, total_qty)``, best first."""
        cdef int64_t count = _to_i64(n, 2**62)  # beyond int64 means "all levels"
        self._busy += 1
        try:
            return self._depth_side(&self._bids, count), self._depth_side(&self._asks, count)
        finally:
            self._busy -= 1

    cdef list _depth_side(self, SideBook *side, int64_t count):
        cdef list out = []
        cdef Py_ssize_t i = side.n - 1
        cdef Level *lv
        while i >= 0 and len(out) < count:
            lv = &self._levels[side.level[i]]
            out.append((lv.price, lv.total))
            i -= 1
        return out

    def order(self, order_id):
        """The resting order with this id, or None. O(1)."""
        cdef int64_t oid = _to_i64(order_id, 0)
        cdef int32_t slot = self._map_get(oid) if oid > 0 else -1
        if slot < 0:
            return None
        cdef Order o = self._orders[slot]  # a copy: making objects may run Python code
        return OrderView(o.id, _SIDES[o.side], o.price, o.qty, o.account)

    def orders_at(self, side, price):
        """The orders resting at one price on one side, in queue order. O(log L + k)."""
        cdef int64_t sd = _to_i64(side, 0)
        cdef int64_t px = _to_i64(price, -1)
        cdef list out = []
        cdef Order *o
        cdef int32_t lvl = self._find_level(1 if sd == 1 else -1, px)
        cdef int32_t slot = self._levels[lvl].head if lvl >= 0 else -1
        self._busy += 1
        try:
            while slot >= 0:
                o = &self._orders[slot]
                out.append(OrderView(o.id, _SIDES[o.side], o.price, o.qty, o.account))
                slot = o.next
        finally:
            self._busy -= 1
        return out

    def snapshot(self):
        """Every resting order per side, in matching-priority order."""
        self._busy += 1
        try:
            return self._snapshot_side(&self._bids), self._snapshot_side(&self._asks)
        finally:
            self._busy -= 1

    cdef list _snapshot_side(self, SideBook *side):
        cdef list out = []
        cdef Py_ssize_t i
        cdef int32_t slot
        cdef Order *o
        for i in range(side.n - 1, -1, -1):
            slot = self._levels[side.level[i]].head
            while slot >= 0:
                o = &self._orders[slot]
                out.append(OrderView(o.id, _SIDES[o.side], o.price, o.qty, o.account))
                slot = o.next
        return out

    def state_hash(self):
        """A 64-bit hash of the book's contents, equal across implementations for equal books.

        Covers every resting order's side, price, id, open size and account in priority order
        (docs/engine.md gives the byte layout).
        """
        cdef Py_ssize_t nbid = 0, nask = 0, i
        for i in range(self._bids.n):
            nbid += self._levels[self._bids.level[i]].count
        nask = self._norders - nbid
        cdef array words = clone(array("q"), 2 + 5 * self._norders, False)
        cdef long long *out = words.data.as_longlongs
        out[0] = nbid
        out[1] = nask
        self._hash_words(&self._asks, out, self._hash_words(&self._bids, out, 2))
        if words.itemsize != 8:  # pragma: no cover (design-time error)
            raise RuntimeError("array('q') is not 64-bit on this platform")
        if not _LITTLE_ENDIAN:  # pragma: no cover (big-endian hosts only)
            words.byteswap()
        digest = hashlib.blake2b(words.tobytes(), digest_size=8).digest()
        return int.from_bytes(digest, "big")

    cdef Py_ssize_t _hash_words(self, SideBook *sb, long long *out, Py_ssize_t w) noexcept:
        # write side, price, id, qty, account of every order of a side, in priority order
        cdef Py_ssize_t i
        cdef int32_t slot
        cdef Order *o
        for i in range(sb.n - 1, -1, -1):
            slot = self._levels[sb.level[i]].head
            while slot >= 0:
                o = &self._orders[slot]
                out[w] = o.side
                out[w + 1] = o.price
                out[w + 2] = o.id
                out[w + 3] = o.qty
                out[w + 4] = o.account
                w += 5
                slot = o.next
        return w

    # -- COMMANDS --------------------------------------------------------------------------

    def place(self, order_id, side, price, qty, *, tif=1, post_only=False, account=0, stp=0):
        """Submit an order; ``price=None`` makes it a market order.

        ``tif`` is a TimeInForce (default GTC) and ``stp`` a SelfTradePrevention (default
        NONE). O(log k) to find a level k places from the top, plus O(1) per maker filled.
        """
        cdef int64_t oid = _to_i64(order_id, -1)
        cdef int64_t sd = _to_i64(side, 0)
        cdef int64_t q = _to_i64(qty, -1)
        cdef int64_t tf = _to_i64(tif, 0)
        cdef int64_t acct = _to_i64(account, -1)
        cdef int64_t st = _to_i64(stp, -1)
        cdef int64_t px = 0
        if price is not None:
            px = _to_i64(price, -1)
            if px == 0:
                px = -1  # only None means a market order
        cdef bint po = post_only
        self._enter()
        self._place(oid, sd, px, q, tf, po, acct, st)
        return self._drain()

    def cancel(self, order_id):
        """Remove a resting order. O(1) (plus the level's removal if it empties)."""
        cdef int64_t oid = _to_i64(order_id, -1)
        self._enter()
        self._cancel(oid)
        return self._drain()

    def amend(self, order_id, *, price=None, qty=None):
        """Change a resting order's price and/or open size (``qty`` is the new open size).

        A size decrease at the same price keeps queue priority; anything else re-queues the
        order at the tail of its (new) level, and it may trade first if it now crosses.
        """
        cdef int64_t oid = _to_i64(order_id, -1)
        cdef int64_t px = 0, q = 0
        if price is not None:
            px = _to_i64(price, -1)
            if px == 0:
                px = -1  # 0 is "unchanged" only in the batch format
        if qty is not None:
            q = _to_i64(qty, -1)
            if q == 0:
                q = -1
        self._enter()
        self._amend(oid, px, q)
        return self._drain()

    def apply_batch(self, commands):
        """Run a batch of commands (docs/engine.md) and return their events as one array."""
        cdef const long long[::1] rows = as_int64_rows(commands)
        cdef Py_ssize_t n = rows.shape[0], i, base, width = CMD_WIDTH  # a C int in the loop
        cdef int64_t command, oid
        cdef array out
        self._enter()
        for i in range(n // width):
            base = i * width
            self._cmd_index = i
            command = rows[base]
            oid = rows[base + 1]
            if command == CMD_PLACE:
                self._place(oid, rows[base + 2], rows[base + 3], rows[base + 4],
                            rows[base + 5], rows[base + 6] != 0, rows[base + 8],
                            rows[base + 7])
            elif command == CMD_CANCEL:
                self._cancel(oid)
            elif command == CMD_AMEND:
                self._amend(oid, rows[base + 3], rows[base + 4])
            else:
                self._emit(K_REJECTED, oid if 0 < oid <= MAX_ORDER_ID else 0, 0, 0, 0, 0,
                           R_INVALID_COMMAND)
        self._busy += 1  # allocating the result may run Python code: keep the rows safe
        try:
            out = clone(array("q"), self._nev * 8, False)
            if self._nev:
                memcpy(out.data.as_voidptr, self._ev, self._nev * sizeof(EventRow))
        finally:
            self._nev = 0
            self._busy -= 1
        if self._ev_cap > 4096:  # a big batch must not pin its event memory to the book
            PyMem_Free(self._ev)
            self._ev_cap = 64
            self._ev = <EventRow *>PyMem_Malloc(self._ev_cap * sizeof(EventRow))
            if not self._ev:
                raise MemoryError()
        return out

    cdef int _place(self, int64_t oid, int64_t side, int64_t price, int64_t qty, int64_t tif,
                    bint post_only, int64_t account, int64_t stp) except -1:
        # price 0 is a market order; validation order follows the reference book
        cdef int64_t reason = 0
        if oid <= 0 or oid > MAX_ORDER_ID:
            return self._emit(K_REJECTED, 0, 0, 0, 0, 0, R_INVALID_ORDER_ID)
        if side != 1 and side != -1:
            reason = R_INVALID_SIDE
        elif price < 0 or price > MAX_PRICE:
            reason = R_INVALID_PRICE
        elif qty <= 0 or qty > MAX_QTY:
            reason = R_INVALID_QTY
        elif tif < 1 or tif > 3:
            reason = R_INVALID_TIME_IN_FORCE
        elif stp < 0 or stp > 4:
            reason = R_INVALID_STP
        elif account < 0 or account > MAX_ACCOUNT:
            reason = R_INVALID_ACCOUNT
        elif post_only and (price == 0 or tif != GTC):
            reason = R_INVALID_POST_ONLY
        elif self._map_get(oid) >= 0:
            reason = R_DUPLICATE_ORDER_ID
        if reason:
            return self._emit(K_REJECTED, oid, 0, 0, 0, 0, reason)
        if tif == FOK and self._fillable(<int>side, price, qty, account, <int>stp) < qty:
            return self._emit(K_EXPIRED, oid, price, qty, 0, 0, R_FOK_NOT_FILLABLE)
        if post_only and self._crosses(<int>side, price):
            return self._emit(K_REJECTED, oid, 0, 0, 0, 0, R_POST_ONLY_WOULD_CROSS)
        self._emit(K_ACCEPTED, oid, price, qty, 0, 0, 0)
        return self._execute(oid, <int>side, price, qty, account, <int>stp, post_only,
                             price != 0 and tif == GTC)

    cdef int _cancel(self, int64_t oid) except -1:
        if oid <= 0 or oid > MAX_ORDER_ID:
            return self._emit(K_REJECTED, 0, 0, 0, 0, 0, R_INVALID_ORDER_ID)
        cdef int32_t slot = self._map_get(oid)
        if slot < 0:
            return self._emit(K_REJECTED, oid, 0, 0, 0, 0, R_UNKNOWN_ORDER)
        cdef Order *o = &self._orders[slot]
        self._emit(K_CANCELED, oid, o.price, o.qty, 0, 0, 0)
        self._remove(slot)
        return 0

    cdef int _amend(self, int64_t oid, int64_t price, int64_t qty) except -1:
        # price / qty 0 mean "unchanged"; negative values are invalid
        cdef int64_t reason = 0
        if oid <= 0 or oid > MAX_ORDER_ID:
            return self._emit(K_REJECTED, 0, 0, 0, 0, 0, R_INVALID_ORDER_ID)
        cdef int32_t slot = -1
        if price == 0 and qty == 0:
            reason = R_EMPTY_AMEND
        elif price < 0 or price > MAX_PRICE:
            reason = R_INVALID_PRICE
        elif qty < 0 or qty > MAX_QTY:
            reason = R_INVALID_QTY
        else:
            slot = self._map_get(oid)
            if slot < 0:
                reason = R_UNKNOWN_ORDER
        if reason:
            return self._emit(K_REJECTED, oid, 0, 0, 0, 0, reason)
        cdef Order *o = &self._orders[slot]
        cdef int64_t new_price = price if price else o.price
        cdef int64_t new_qty = qty if qty else o.qty
        if new_price == o.price and new_qty <= o.qty:
            self._levels[o.level].total -= o.qty - new_qty  # keeps its place in the queue
            o.qty = new_qty
            return self._emit(K_AMENDED, oid, new_price, new_qty, 0, 0, 0)
        if o.post_only and self._crosses(o.side, new_price):
            return self._emit(K_REJECTED, oid, 0, 0, 0, 0, R_POST_ONLY_WOULD_CROSS)
        cdef int side = o.side
        cdef int64_t account = o.account
        cdef int stp = o.stp
        cdef bint post_only = o.post_only
        self._remove(slot)
        self._emit(K_AMENDED, oid, new_price, new_qty, 0, 0, 0)
        return self._execute(oid, side, new_price, new_qty, account, stp, post_only, True)

    # -- MATCHING --------------------------------------------------------------------------

    cdef int _execute(self, int64_t oid, int side, int64_t limit, int64_t qty, int64_t account,
                      int stp, bint post_only, bint may_rest) except -1:
        # match an incoming order (not in the book) against the other side, then rest or expire
        cdef SideBook *opp = &self._asks if side == 1 else &self._bids
        cdef Level *lv
        cdef Order *m
        cdef int32_t slot
        cdef int64_t price, traded, cut
        cdef bint stp_stop = False
        while qty > 0 and opp.n > 0:
            lv = &self._levels[opp.level[opp.n - 1]]
            price = lv.price
            if limit != 0 and ((side == 1 and price > limit) or (side == -1 and price < limit)):
                break
            slot = lv.head
            m = &self._orders[slot]
            if stp != STP_NONE and m.account == account:
                if stp == STP_DECREMENT:
                    cut = qty if qty < m.qty else m.qty
                    qty -= cut
                    m.qty -= cut
                    lv.total -= cut
                    if m.qty:
                        self._emit(K_AMENDED, m.id, m.price, m.qty, 0, 0, R_SELF_TRADE_PREVENTED)
                    else:
                        self._emit(K_CANCELED, m.id, m.price, cut, 0, 0, R_SELF_TRADE_PREVENTED)
                        self._remove(slot)
                    if qty:
                        self._emit(K_AMENDED, oid, limit, qty, 0, 0, R_SELF_TRADE_PREVENTED)
                    else:
                        self._emit(K_EXPIRED, oid, limit, cut, 0, 0, R_SELF_TRADE_PREVENTED)
                    continue
                if stp == STP_CANCEL_RESTING or stp == STP_CANCEL_BOTH:
                    self._emit(K_CANCELED, m.id, m.price, m.qty, 0, 0, R_SELF_TRADE_PREVENTED)
                    self._remove(slot)
                if stp != STP_CANCEL_RESTING:
                    stp_stop = True
                    break
                continue
            traded = qty if qty < m.qty else m.qty
            qty -= traded
            m.qty -= traded
            lv.total -= traded
            self._emit(K_FILL, oid, price, traded, m.id, m.qty, 0)
            if m.qty == 0:
                self._remove(slot)
        if qty == 0:
            return 0
        if stp_stop:
            return self._emit(K_EXPIRED, oid, limit, qty, 0, 0, R_SELF_TRADE_PREVENTED)
        if may_rest:
            return self._insert(oid, side, limit, qty, account, post_only, stp)
        return self._emit(K_EXPIRED, oid, limit, qty, 0, 0, 0)

    cdef int64_t _fillable(self, int side, int64_t limit, int64_t qty, int64_t account,
                           int stp) noexcept:
        # what the order could take now, without changing anything (see the reference)
        cdef SideBook *opp = &self._asks if side == 1 else &self._bids
        cdef Py_ssize_t i
        cdef int64_t total = 0, price
        cdef int32_t slot
        cdef Order *m
        for i in range(opp.n - 1, -1, -1):
            price = self._levels[opp.level[i]].price
            if limit != 0 and ((side == 1 and price > limit) or (side == -1 and price < limit)):
                break
            slot = self._levels[opp.level[i]].head
            while slot >= 0:
                m = &self._orders[slot]
                slot = m.next
                if stp != STP_NONE and m.account == account:
                    if stp == STP_CANCEL_RESTING:
                        continue
                    return total
                total += m.qty
                if total >= qty:
                    return total
        return total

    cdef bint _crosses(self, int side, int64_t price) noexcept:
        cdef SideBook *opp = &self._asks if side == 1 else &self._bids
        if opp.n == 0:
            return False
        cdef int64_t best = self._levels[opp.level[opp.n - 1]].price
        if price == 0:
            return True
        return best <= price if side == 1 else best >= price

    # -- STORAGE ---------------------------------------------------------------------------

    cdef int _insert(self, int64_t oid, int side, int64_t price, int64_t qty, int64_t account,
                     bint post_only, int stp) except -1:
        # rest an order at the tail of its level
        if self._free_order < 0:
            self._grow_orders_from(self._orders_cap)
        cdef int32_t lvl = self._level_for(side, price)
        cdef int32_t slot = self._free_order
        cdef Order *o = &self._orders[slot]
        self._free_order = o.next
        self._map_put(oid, slot)
        cdef Level *lv = &self._levels[lvl]
        o.id = oid
        o.account = account
        o.price = price
        o.qty = qty
        o.level = lvl
        o.side = side
        o.post_only = post_only
        o.stp = stp
        o.next = -1
        o.prev = lv.tail
        if lv.tail >= 0:
            self._orders[lv.tail].next = slot
        else:
            lv.head = slot
        lv.tail = slot
        lv.total += qty
        lv.count += 1
        self._norders += 1
        return 0

    cdef void _remove(self, int32_t slot) noexcept:
        # unlink a resting order, drop its level if it empties, recycle the slot
        cdef Order *o = &self._orders[slot]
        cdef Level *lv = &self._levels[o.level]
        if o.prev >= 0:
            self._orders[o.prev].next = o.next
        else:
            lv.head = o.next
        if o.next >= 0:
            self._orders[o.next].prev = o.prev
        else:
            lv.tail = o.prev
        lv.total -= o.qty
        lv.count -= 1
        if lv.count == 0:
            self._drop_level(o.side, o.level)
        self._map_del(o.id)
        o.next = self._free_order
        self._free_order = slot
        self._norders -= 1

    cdef Py_ssize_t _search(self, SideBook *sb, int64_t key) noexcept:
        # the index of the first level whose key is >= key. Gallops from the best end, where
        # nearly all activity is, then bisects: O(log k) for a level k places from the top
        cdef Py_ssize_t hi = sb.n - 1, lo, mid, step = 1, j
        if hi < 0 or sb.key[hi] < key:
            return sb.n
        j = hi - 1
        while j >= 0 and sb.key[j] >= key:  # key[hi] >= key holds throughout
            hi = j
            step <<= 1
            j = hi - step
        lo = j + 1 if j >= 0 else 0  # everything below lo has a smaller key
        while lo < hi:
            mid = (lo + hi) >> 1
            if sb.key[mid] < key:
                lo = mid + 1
            else:
                hi = mid
        return lo

    cdef int32_t _find_level(self, int side, int64_t price) noexcept:
        cdef SideBook *sb = &self._bids if side == 1 else &self._asks
        cdef int64_t key = _key(side, price)
        cdef Py_ssize_t i = self._search(sb, key)
        return sb.level[i] if i < sb.n and sb.key[i] == key else -1

    cdef int32_t _level_for(self, int side, int64_t price) except -2:
        # the level of `price` on `side`, created (and spliced into the sorted array) if new
        cdef SideBook *sb = &self._bids if side == 1 else &self._asks
        cdef int64_t key = _key(side, price)
        cdef Py_ssize_t lo = self._search(sb, key)
        if lo < sb.n and sb.key[lo] == key:
            return sb.level[lo]
        if self._free_level < 0:
            self._grow_levels_from(self._levels_cap)
        if sb.n == sb.cap:
            self._grow_side(sb)
        cdef int32_t lvl = self._free_level
        cdef Level *lv = &self._levels[lvl]
        self._free_level = lv.head
        lv.price = price
        lv.total = 0
        lv.head = -1
        lv.tail = -1
        lv.count = 0
        if lo < sb.n:
            memmove(&sb.key[lo + 1], &sb.key[lo], (sb.n - lo) * sizeof(int64_t))
            memmove(&sb.level[lo + 1], &sb.level[lo], (sb.n - lo) * sizeof(int32_t))
        sb.key[lo] = key
        sb.level[lo] = lvl
        sb.n += 1
        return lvl

    cdef void _drop_level(self, int side, int32_t lvl) noexcept:
        cdef SideBook *sb = &self._bids if side == 1 else &self._asks
        cdef Py_ssize_t i = sb.n - 1
        if sb.level[i] != lvl:  # not the best level: find it
            i = self._search(sb, _key(side, self._levels[lvl].price))
            memmove(&sb.key[i], &sb.key[i + 1], (sb.n - i - 1) * sizeof(int64_t))
            memmove(&sb.level[i], &sb.level[i + 1], (sb.n - i - 1) * sizeof(int32_t))
        sb.n -= 1
        self._levels[lvl].head = self._free_level
        self._free_level = lvl

    cdef int32_t _map_get(self, int64_t key) noexcept:
        cdef Py_ssize_t mask = self._map_cap - 1
        cdef Py_ssize_t i = <Py_ssize_t>(_fib(key) >> self._map_shift)
        while True:
            if self._map_keys[i] == key:
                return self._map_vals[i]
            if self._map_keys[i] == 0:
                return -1
            i = (i + 1) & mask

    cdef int _map_put(self, int64_t key, int32_t val) except -1:
        # key is known to be absent
        if (self._norders + 1) * 2 > self._map_cap:
            self._grow_map()
        cdef Py_ssize_t mask = self._map_cap - 1
        cdef Py_ssize_t i = <Py_ssize_t>(_fib(key) >> self._map_shift)
        while self._map_keys[i] != 0:
            i = (i + 1) & mask
        self._map_keys[i] = key
        self._map_vals[i] = val
        return 0

    cdef void _map_del(self, int64_t key) noexcept:
        # backward-shift deletion keeps every probe chain unbroken without tombstones
        cdef Py_ssize_t mask = self._map_cap - 1
        cdef Py_ssize_t i = <Py_ssize_t>(_fib(key) >> self._map_shift)
        cdef Py_ssize_t j, home
        while self._map_keys[i] != key:
            i = (i + 1) & mask
        j = i
        while True:
            j = (j + 1) & mask
            if self._map_keys[j] == 0:
                break
            home = <Py_ssize_t>(_fib(self._map_keys[j]) >> self._map_shift)
            # the entry at j may move back to i unless its home lies cyclically in (i, j]
            if (i <= j and (home <= i or home > j)) or (i > j and home <= i and home > j):
                self._map_keys[i] = self._map_keys[j]
                self._map_vals[i] = self._map_vals[j]
                i = j
        self._map_keys[i] = 0

    cdef int _emit(self, int64_t kind, int64_t oid, int64_t price, int64_t qty,
                   int64_t maker_id, int64_t maker_remaining, int64_t reason) except -1:
        cdef EventRow *row
        if self._nev == self._ev_cap:
            row = <EventRow *>PyMem_Realloc(self._ev, 2 * self._ev_cap * sizeof(EventRow))
            if not row:
                raise MemoryError()
            self._ev = row
            self._ev_cap *= 2
        row = &self._ev[self._nev]
        row.index = self._cmd_index
        row.kind = kind
        row.order_id = oid
        row.price = price
        row.qty = qty
        row.maker_id = maker_id
        row.maker_remaining = maker_remaining
        row.reason = reason
        self._nev += 1
        return 0

    cdef int _enter(self) except -1:
        # start a command: refuse to run while a result is being built. The matching core
        # runs no Python code, so only result building (object allocation, which may run
        # the garbage collector's finalizers or let another thread in) needs the guard
        if self._busy:
            raise RuntimeError("the order book was called while it was building a result: "
                               "a book is single-threaded and must not be re-entered")
        self._nev = 0
        self._cmd_index = 0
        return 0

    cdef list _drain(self):
        # the current command's event rows as Event objects, then the command is over.
        # Making objects can run Python code (the garbage collector's finalizers), which is
        # why the book stays busy until the list is complete
        cdef list out = []
        cdef Py_ssize_t i
        cdef EventRow *row
        cdef Event e
        self._busy += 1
        try:
            for i in range(self._nev):
                row = &self._ev[i]
                e = Event.__new__(Event)
                e._kind = row.kind
                e.order_id = row.order_id
                e.price = row.price
                e.qty = row.qty
                e.maker_id = row.maker_id
                e.maker_remaining = row.maker_remaining
                e._reason = row.reason
                out.append(e)
        finally:
            self._nev = 0
            self._busy -= 1
        return out

    cdef int _grow_orders_from(self, Py_ssize_t old) except -1:
        # double the order pool (or fill a fresh one) and chain the new slots as free
        cdef Py_ssize_t cap = self._orders_cap if old == 0 else 2 * old
        cdef Py_ssize_t i
        cdef Order *p
        if cap >= 2**31 - 1:
            raise MemoryError("order pool is full")
        if old:
            p = <Order *>PyMem_Realloc(self._orders, cap * sizeof(Order))
            if not p:
                raise MemoryError()
            self._orders = p
            self._orders_cap = cap
        for i in range(old, cap):
            self._orders[i].next = <int32_t>(i + 1) if i + 1 < cap else self._free_order
        self._free_order = <int32_t>old
        return 0

    cdef int _grow_levels_from(self, Py_ssize_t old) except -1:
        cdef Py_ssize_t cap = self._levels_cap if old == 0 else 2 * old
        cdef Py_ssize_t i
        cdef Level *p
        if cap >= 2**31 - 1:
            raise MemoryError("level pool is full")
        if old:
            p = <Level *>PyMem_Realloc(self._levels, cap * sizeof(Level))
            if not p:
                raise MemoryError()
            self._levels = p
            self._levels_cap = cap
        for i in range(old, cap):
            self._levels[i].head = <int32_t>(i + 1) if i + 1 < cap else self._free_level
        self._free_level = <int32_t>old
        return 0

    cdef int _grow_side(self, SideBook *sb) except -1:
        cdef Py_ssize_t cap = 2 * sb.cap
        cdef int64_t *k = <int64_t *>PyMem_Realloc(sb.key, cap * sizeof(int64_t))
        if not k:
            raise MemoryError()
        sb.key = k
        cdef int32_t *l = <int32_t *>PyMem_Realloc(sb.level, cap * sizeof(int32_t))
        if not l:
            raise MemoryError()
        sb.level = l
        sb.cap = cap
        return 0

    cdef int _grow_map(self) except -1:
        cdef Py_ssize_t old_cap = self._map_cap, cap = 2 * old_cap, i, j, mask = cap - 1
        cdef int64_t *old_keys = self._map_keys
        cdef int32_t *old_vals = self._map_vals
        cdef int64_t *keys = <int64_t *>PyMem_Malloc(cap * sizeof(int64_t))
        cdef int32_t *vals = <int32_t *>PyMem_Malloc(cap * sizeof(int32_t))
        if not keys or not vals:
            PyMem_Free(keys)
            PyMem_Free(vals)
            raise MemoryError()
        for i in range(cap):
            keys[i] = 0
        self._map_shift -= 1
        for i in range(old_cap):
            if old_keys[i] != 0:
                j = <Py_ssize_t>(_fib(old_keys[i]) >> self._map_shift)
                while keys[j] != 0:
                    j = (j + 1) & mask
                keys[j] = old_keys[i]
                vals[j] = old_vals[i]
        self._map_keys = keys
        self._map_vals = vals
        self._map_cap = cap
        PyMem_Free(old_keys)
        PyMem_Free(old_vals)
        return 0

    # -- INVARIANTS ------------------------------------------------------------------------

    def check_invariants(self):
        """Raise InvariantViolation if the book is internally inconsistent."""
        cdef Py_ssize_t seen = 0, mapped = 0, i
        seen += self._check_side(&self._bids, 1)
        seen += self._check_side(&self._asks, -1)
        for i in range(self._map_cap):
            mapped += self._map_keys[i] != 0
        if not seen == mapped == self._norders:
            _fail(f"{seen} orders in levels, {mapped} indexed, {self._norders} counted")
        bid, ask = self.best_bid(), self.best_ask()
        if bid is not None and ask is not None and bid >= ask:
            _fail(f"crossed book: {bid} >= {ask}")

    cdef Py_ssize_t _check_side(self, SideBook *sb, int side) except -1:
        cdef Py_ssize_t i, seen = 0, count
        cdef int32_t slot, prev
        cdef int64_t total
        cdef Level *lv
        cdef Order *o
        for i in range(sb.n):
            lv = &self._levels[sb.level[i]]
            if i and sb.key[i - 1] >= sb.key[i]:
                _fail(f"levels out of order at {lv.price}")
            if sb.key[i] != _key(side, lv.price):
                _fail(f"level key does not match its price {lv.price}")
            if lv.count <= 0 or lv.head < 0:
                _fail(f"empty level at {lv.price}")
            slot, prev, count, total = lv.head, -1, 0, 0
            while slot >= 0:
                o = &self._orders[slot]
                if o.prev != prev:
                    _fail(f"broken FIFO link at order {o.id}")
                if o.side != side or o.price != lv.price or o.level != sb.level[i]:
                    _fail(f"order {o.id} sits at the wrong level")
                if not 0 < o.qty <= MAX_QTY:
                    _fail(f"order {o.id} has size {o.qty}")
                if self._map_get(o.id) != slot:
                    _fail(f"order {o.id} is not indexed")
                count += 1
                total += o.qty
                prev = slot
                slot = o.next
            if lv.tail != prev or count != lv.count or total != lv.total:
                _fail(f"level {lv.price}: tail/count/total {lv.tail}/{lv.count}/{lv.total} "
                      f"but the FIFO ends at {prev} with {count} orders of {total} lots")
            seen += count
        return seen


_LITTLE_ENDIAN = array("q", [1]).tobytes()[0] == 1


def _fail(message):
    raise InvariantViolation(message)
