# cython: language_level=3
"""Declarations of the compiled order book (engine/_book.pyx)."""

from libc.stdint cimport int8_t, int32_t, int64_t


cdef struct Order:
    int64_t id
    int64_t account
    int64_t price
    int64_t qty
    int32_t prev          # neighbours in the level's FIFO, -1 at the ends; `next` links the free list
    int32_t next
    int32_t level         # slot of the level it rests at
    int8_t side
    int8_t post_only
    int8_t stp


cdef struct Level:
    int64_t price
    int64_t total         # sum of the open sizes of its orders
    int32_t head          # oldest order (matched first), -1 if none
    int32_t tail
    int32_t count         # `head` links the free list of levels


cdef struct SideBook:
    # the side's levels sorted by key, best at the end (key = price for bids, -price for asks)
    int64_t *key
    int32_t *level
    Py_ssize_t n
    Py_ssize_t cap


cdef struct EventRow:
    # one event, laid out exactly as a row of apply_batch's output
    int64_t index
    int64_t kind
    int64_t order_id
    int64_t price
    int64_t qty
    int64_t maker_id
    int64_t maker_remaining
    int64_t reason


cdef class Event:
    cdef readonly int64_t order_id
    cdef readonly int64_t price
    cdef readonly int64_t qty
    cdef readonly int64_t maker_id
    cdef readonly int64_t maker_remaining
    cdef int64_t _kind
    cdef int64_t _reason


cdef class OrderBook:
    # order pool
    cdef Order *_orders
    cdef Py_ssize_t _orders_cap
    cdef int32_t _free_order
    cdef Py_ssize_t _norders
    # level pool
    cdef Level *_levels
    cdef Py_ssize_t _levels_cap
    cdef int32_t _free_level
    # the two sides
    cdef SideBook _bids
    cdef SideBook _asks
    # id -> order slot (open addressing, linear probing, key 0 = empty)
    cdef int64_t *_map_keys
    cdef int32_t *_map_vals
    cdef Py_ssize_t _map_cap
    cdef int _map_shift
    # events of the command (or batch) being run
    cdef EventRow *_ev
    cdef Py_ssize_t _nev
    cdef Py_ssize_t _ev_cap
    cdef int64_t _cmd_index
    # > 0 while a command runs or a result is being built: re-entry raises RuntimeError
    cdef int _busy

    # -- COMMANDS --
    cdef int _place(self, int64_t oid, int64_t side, int64_t price, int64_t qty, int64_t tif,
                    bint post_only, int64_t account, int64_t stp) except -1
    cdef int _cancel(self, int64_t oid) except -1
    cdef int _amend(self, int64_t oid, int64_t price, int64_t qty) except -1

    # -- MATCHING --
    cdef int _execute(self, int64_t oid, int side, int64_t limit, int64_t qty, int64_t account,
                      int stp, bint post_only, bint may_rest) except -1
    cdef int64_t _fillable(self, int side, int64_t limit, int64_t qty, int64_t account,
                           int stp) noexcept
    cdef bint _crosses(self, int side, int64_t price) noexcept

    # -- STORAGE --
    cdef int _insert(self, int64_t oid, int side, int64_t price, int64_t qty, int64_t account,
                     bint post_only, int stp) except -1
    cdef void _remove(self, int32_t slot) noexcept
    cdef Py_ssize_t _search(self, SideBook *sb, int64_t key) noexcept
    cdef int32_t _find_level(self, int side, int64_t price) noexcept
    cdef int32_t _level_for(self, int side, int64_t price) except -2
    cdef void _drop_level(self, int side, int32_t lvl) noexcept
    cdef int32_t _map_get(self, int64_t key) noexcept
    cdef int _map_put(self, int64_t key, int32_t val) except -1
    cdef void _map_del(self, int64_t key) noexcept
    cdef int _emit(self, int64_t kind, int64_t oid, int64_t price, int64_t qty,
                   int64_t maker_id, int64_t maker_remaining, int64_t reason) except -1
    cdef int _enter(self) except -1
    cdef list _drain(self)
    cdef int _grow_orders_from(self, Py_ssize_t old) except -1
    cdef int _grow_levels_from(self, Py_ssize_t old) except -1
    cdef int _grow_side(self, SideBook *sb) except -1
    cdef int _grow_map(self) except -1

    # -- QUERIES --
    cdef list _depth_side(self, SideBook *side, int64_t count)
    cdef list _snapshot_side(self, SideBook *side)
    cdef Py_ssize_t _hash_words(self, SideBook *sb, long long *out, Py_ssize_t w) noexcept

    # -- INVARIANTS --
    cdef Py_ssize_t _check_side(self, SideBook *sb, int side) except -1
