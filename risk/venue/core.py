"""The ``Venue``: one sequenced pipeline that owns the order books and the accounts.

``Venue.submit(command)`` is the only way state changes. Each command runs the pipeline to
completion before the next starts; the stages are called here, in this order, and nowhere
else (docs/design.md §5, docs/architecture.md "The pipeline"):

1. validate      the command's fields (types, bounds), account and market
2. pre-trade risk trading status, mark, price band and daily limit, reduce-only, open-interest
                 cap, initial margin with open orders
3. match         an order meets the market's book (price-time priority, self-trade
                 prevention)
4. settle        positions, cost bases, realized PnL, fees, isolated margin, orders
5. stabilise     reprice, release conditional orders, liquidate, until nothing is due
6. journal       the accepted command, appended to the journal
7. events        returned to the caller

The first rejection wins and is a value (a ``Rejected`` event with a typed reason); a rejected
command changed nothing, is not journaled and takes no sequence number, so the journal replays
to the identical state. What each command does in each stage is its ``Handler``
(``risk/venue/handlers.py``); the parts it calls are functions of the venue's ``State``:

    arith <- state <- margin <- index <- settlement <- orders <- upkeep <- pricing
          <- liquidation <- stabilise <- handlers, views, persist <- core (this module)

Money (integers, micro-dollars), after every command::

    sum(wallets) + sum(isolated margins) + sum(insurance funds) + fee_pool
        - bad_debt - sum(cost_i * multiplier_i) == net_deposits

``check_invariants`` verifies it and every bookkeeping invariant; the tests run it after every
command. The rounding policy is in settlement.py and docs/architecture.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gaemi.engine import book_class
from gaemi.engine.codes import EventKind, TimeInForce
from gaemi.engine.errors import InvariantViolation
from gaemi.risk import commands as C
from gaemi.risk.events import AccountView, MarketView, Rejected
from gaemi.risk.journal import JournalWriter
from gaemi.risk.markets import PRESETS, MarketSpec
from gaemi.risk.venue import persist, views
from gaemi.risk.venue.arith import STP, is_int
from gaemi.risk.venue.handlers import HANDLERS, max_time_step
from gaemi.risk.venue.stabilise import stabilise
from gaemi.risk.venue.state import Account, Market, State

__all__ = ["Venue"]


class Venue:
    """A perpetual-futures venue: books, accounts, prices, funding and liquidations.

    ``markets``: market specs (default: the four presets). ``book``: the engine
    implementation, "auto", "compiled" or "reference". ``journal``: a path to append every
    accepted command to (created with a header naming the markets). ``start_ts``: the venue's
    time before the first ``AdvanceTime``.
    """

    def __init__(self, markets: Iterable[MarketSpec] | None = None, *, book: str = "auto",
                 journal: str | Path | None = None, start_ts: int = 0) -> None:
        specs = list(PRESETS.values()) if markets is None else list(markets)
        if not specs or len({s.symbol for s in specs}) != len(specs):
            raise ValueError("a venue needs at least one market and unique symbols")
        if not is_int(start_ts) or start_ts < 0:
            raise ValueError("start_ts is a non-negative integer of nanoseconds")
        book_cls = book_class(book)
        st = self._st = State(start_ts, book)
        for i, spec in enumerate(sorted(specs, key=lambda s: s.symbol)):
            fund = Account(-1 - i)
            fund.wallet = spec.insurance_fund
            st.net_deposits += spec.insurance_fund
            st.markets[spec.symbol] = Market(spec, book_cls(), fund, start_ts)
        st.funds = {m.fund.account_id: m for m in st.markets.values()}
        self._handlers = dict(HANDLERS)
        self._journal: JournalWriter | None = None
        if journal is not None:
            path = Path(journal)
            if path.exists() and path.stat().st_size:
                raise FileExistsError(f"{path} exists: use Venue.recover() to continue it")
            self._journal = JournalWriter(path)
            self._journal.append({"version": 1, "start_ts": start_ts,
                                  "markets": [persist.spec_to_dict(s) for s in specs]})
            self._journal.flush()

    # -- the pipeline ---------------------------------------------------------------------------

    def submit(self, command: C.Command) -> list[Any]:
        """Run one command through the pipeline; return its events (a rejection is a value)."""
        handler = self._handlers.get(type(command))
        if handler is None:
            raise TypeError(f"not a venue command: {command!r}")
        st = self._st
        st.cur_seq = st.seq + 1
        events: list[Any] = []
        st.events = events
        try:
            ctx = handler.validate(st, command)                  # 1. validate
            if ctx is not None and handler.risk(st, ctx):        # 2. pre-trade risk
                matched = handler.match(st, ctx)                 # 3. match
                if matched is not None:
                    handler.settle(st, ctx, matched)             # 4. settle
                    if handler.stabilises:
                        stabilise(st)                            # 5. stabilise
        except BaseException:
            # a defect: the command may be half applied, and nothing was journaled. The
            # owner rebuilds the venue from its journal (gateway/exchange.py does).
            st.failed = True
            raise
        if len(events) == 1 and type(events[0]) is Rejected:
            return events
        st.seq = st.cur_seq
        if self._journal is not None:
            self._journal.append(C.encode(command))              # 6. journal
        return events                                            # 7. events

    # -- state ----------------------------------------------------------------------------------

    @property
    def time(self) -> int:
        """Venue time, ns since the epoch (moved only by ``AdvanceTime``)."""
        return self._st.time

    @property
    def seq(self) -> int:
        """The sequence number of the last accepted command."""
        return self._st.seq

    @property
    def fee_pool(self) -> int:
        return self._st.fee_pool

    @property
    def bad_debt(self) -> int:
        return self._st.bad_debt

    @property
    def net_deposits(self) -> int:
        return self._st.net_deposits

    @property
    def funding_net(self) -> int:
        return self._st.funding_net

    @property
    def failed(self) -> bool:
        """A command raised: the state may be half applied (see ``submit``)."""
        return self._st.failed

    @failed.setter
    def failed(self, value: bool) -> None:
        self._st.failed = value

    # -- views ----------------------------------------------------------------------------------

    def account(self, account_id: int) -> AccountView:
        """A read-only view of an account. KeyError if it never deposited."""
        return views.account_view(self._st, account_id)

    def market(self, symbol: str) -> MarketView:
        return views.market_view(self._st, symbol)

    @property
    def symbols(self) -> list[str]:
        return list(self._st.markets)

    def spec(self, symbol: str) -> MarketSpec:
        return self._st.markets[symbol].spec

    def book(self, symbol: str) -> Any:
        """The market's order book, for read-only queries (depth, best bid/ask)."""
        return self._st.markets[symbol].book

    def open_orders(self, account_id: int) -> list[dict[str, Any]]:
        return views.open_orders(self._st, account_id)

    def accounts(self) -> list[int]:
        return sorted(self._st.accounts)

    def max_time_step(self) -> int:
        """The longest step one ``AdvanceTime`` may take, in ns (handlers.max_time_step)."""
        return max_time_step(self._st)

    def state_hash(self) -> str:
        """A 16-hex-digit digest of the whole state; equal on both book implementations."""
        return views.state_hash(self._st)

    def check_invariants(self) -> None:
        """Raise InvariantViolation unless every bookkeeping and money invariant holds."""
        views.check_invariants(self._st)

    # -- the journal ----------------------------------------------------------------------------

    @classmethod
    def recover(cls, path: str | Path, *, book: str = "auto") -> Venue:
        """Rebuild a venue from its journal (the newest valid snapshot beside it, then the
        records after it; a torn tail is cut off and kept aside) and keep appending to it.
        ``gaemi.risk.recovery.recover`` also returns the journal's notes and what it did."""
        return persist.recover(path, venue_class=cls, book=book).venue

    @classmethod
    def from_header(cls, header: dict[str, Any], *, book: str = "auto") -> Venue:
        """A fresh venue configured as the journal header says (no journal attached)."""
        if not isinstance(header, dict) or "markets" not in header:
            raise ValueError("the journal has no header")
        specs = [persist.spec_from_dict(d) for d in header["markets"]]
        return cls(specs, book=book, start_ts=header["start_ts"])

    def replay(self, row: Any) -> None:
        """Apply one journaled command record; a rejection means the journal and the code
        disagree, which is a defect (InvariantViolation)."""
        events = self.submit(C.decode(row))
        if len(events) == 1 and type(events[0]) is Rejected:
            raise InvariantViolation(f"journaled command replays as a rejection: {row!r}")

    def note(self, record: Any) -> None:
        """Journal a note for the venue's owner (the gateway's session facts that must survive
        a crash): not a command, no sequence number, handed back by the recovery."""
        if self._journal is not None:
            self._journal.append({"note": record})

    @property
    def journal(self) -> JournalWriter | None:
        """The journal writer (None: this venue keeps no journal)."""
        return self._journal

    def attach_journal(self, writer: JournalWriter | None) -> None:
        """Append every later accepted command to ``writer`` (after a recovery; None: stop
        journaling)."""
        self._journal = writer

    def flush(self) -> None:
        """Hand every journaled command to the operating system: it survives a crash of this
        process (not of the machine: that is ``sync``)."""
        if self._journal is not None:
            self._journal.flush()

    def sync(self) -> None:
        """Make every journaled command durable (flush + fsync)."""
        if self._journal is not None:
            self._journal.sync()

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()

    # -- snapshots (persist.py) -------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        """The whole state but the books and the journal: each book is stored as its resting
        order ids in priority order (the orders themselves are the state's ``orders``)."""
        st = self._st
        return {"st": st, "resting": {
            symbol: [o.order_id for side in m.book.snapshot() for o in side]
            for symbol, m in st.markets.items()}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._st = state["st"]
        self._st.events = []
        self._handlers = dict(HANDLERS)
        self._journal = None
        self._resting_after_load = state["resting"]

    def _attach_books(self, book: str) -> None:
        """Rebuild every book of an unpickled venue: its resting orders placed again in
        priority order, so every level's queue is as it was."""
        st = self._st
        book_cls = book_class(book)
        st.book_name = book
        for symbol, order_ids in self.__dict__.pop("_resting_after_load").items():
            m = st.markets[symbol]
            m.book = book_cls()
            for oid in order_ids:
                o = st.orders[oid]
                events = m.book.place(oid, o.side, o.price, o.qty, tif=TimeInForce.GTC,
                                      post_only=o.post_only, account=o.account_id, stp=STP)
                if len(events) != 1 or events[0].kind != EventKind.ACCEPTED:
                    raise InvariantViolation(f"snapshot order {oid} does not rest: {events}")
