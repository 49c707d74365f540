"""The exchange behind the wire, without I/O: sessions, channels and the venue's sequencer.

``Exchange`` owns a ``risk.Venue`` and the state of every connection (``Conn``): logon, rate
limits, subscriptions, cancel-on-disconnect and the dead-man switch. The I/O layer
(gateway/server.py) feeds it frames with ``receive`` (the current time is an argument: this
module reads no clock), closes connections with ``disconnect``, advances time with ``tick``,
ends each batch with ``end_batch``, and sends what ``Conn.outbox`` holds. The protocol is
docs/protocol.md; this module is its executable form.

Ordering (docs/protocol.md §2): the pushes a command causes are posted as its events are
translated (pushes.py), in the venue's order, and the response after them; book and bbo
deltas are conflated and posted by ``end_batch`` (books.py). Sessions, limits and channels
are sessions.py; what an op means to the venue is commands.py.

Requests come as frames (``receive``) or, from a peer in this process, as message objects
(``handle``: the in-process transport of clients/sim, which skips only the encoding).

Faults: no exception raised while handling one request (or one tick, disconnect or batch end)
escapes this class. A refusal is a ``ProtocolError`` and becomes the request's typed error. Any
other exception is a defect: it is logged once with its traceback, the request is answered
with 9001 ``INTERNAL_ERROR``, the pushes it staged are dropped, and if the venue moved (or may
have moved: ``Venue.failed``) the journal is cut back to where it stood before the request and
the venue is rebuilt from it (``restore``), so that nothing of the request was applied. Pushes
are staged while a request runs and handed to the outboxes only when it succeeds.

Session guards: cancel-on-disconnect and the dead-man switch promise a cancel "for any reason"
the connection ends, a crash of the server included. Which accounts hold such a promise is
journaled as notes (``Guards``); after a restart the server runs those cancels before it
accepts a connection.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any

from gaemi.engine.codes import RejectReason as R
from gaemi.gateway.books import BOOK_LEVELS, BookFeed
from gaemi.gateway.commands import account_command, admin_command, order_command
from gaemi.gateway.pushes import SIDE_NAME, Publisher, position_push
from gaemi.gateway.sessions import (
    MAX_CHANNELS,
    NS_PER_MS,
    NS_PER_S,
    PRIVATE_CHANNELS,
    PUBLIC_KINDS,
    STRIKE_WINDOW_NS,
    Bucket,
    Channel,
    Conn,
    Guards,
    Limits,
)
from gaemi.gateway.wire.auth import ApiKey, verify_logon
from gaemi.gateway.wire.codec import (
    INPROCESS,
    ProtocolError,
    check_message,
    decode,
    request_id,
)
from gaemi.gateway.wire.errors import GatewayCode as G
from gaemi.gateway.wire.errors import code_name
from gaemi.gateway.wire.messages import MAX_BATCH, ORDER_OPS, Args, error, ok, parse_request
from gaemi.risk import commands as C
from gaemi.risk.events import (
    AccountView,
    ConditionalAccepted,
    Fill,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    Rejected,
)
from gaemi.risk.venue import Venue

__all__ = ["Exchange"]

log = logging.getLogger("gaemi.gateway")

class Exchange:
    """Sessions and channels around one venue. ``keys``: API key -> ApiKey.

    ``restore(position)``: after a defect, cut the venue's journal back to ``position`` (a
    ``JournalWriter.position``) and return the venue rebuilt from it (None: no rollback
    possible; a venue without a journal). ``guards``: the session guards, as recovered.
    ``observer(command, events)``: called after every command the venue runs (the simulator
    records its run with it)."""

    def __init__(self, venue: Venue, keys: dict[str, ApiKey], *,
                 limits: Limits | None = None,
                 restore: Callable[[Any], Venue] | None = None,
                 guards: Guards | None = None,
                 observer: Callable[[Any, list[Any]], None] | None = None) -> None:
        self.venue = venue
        self.observer = observer  # sees every command the venue runs and its events
        self.keys = keys
        self.limits = limits or Limits()
        self.guards = guards or Guards()
        self.faults = 0  # defects caught (each logged with its traceback)
        self._restore = restore
        self._staged: list[tuple[Any, dict[str, Any]]] = []  # (channel or conn, message)
        self._notes: list[dict[str, Any]] = []  # guard notes of the request being handled
        self.conns: dict[int, Conn] = {}
        self.shutting_down = False
        self._next_cid = 1
        public: dict[str, Channel] = {}
        for symbol in venue.symbols:
            for kind in PUBLIC_KINDS:
                name = f"{kind}.{symbol}"
                public[name] = Channel(name, self._staged)
        self._public = public
        self._pushes = Publisher(public)
        self._private = self._pushes.private
        self._books = BookFeed(public)
        self._order_buckets: dict[int, Bucket] = {}
        self._deadlines: dict[int, int] = {}  # account -> dead-man switch deadline (ns)
        self._now = 0
        self._ops: dict[str, Callable[[Conn, Any, dict[str, Any]], Any]] = {
            "ping": self._ping, "instruments": self._instruments,
            "session.logon": self._logon, "session.logout": self._logout,
            "subscribe": self._subscribe, "unsubscribe": self._unsubscribe,
            "snapshot.book": self._snapshot, "order.batch": self._batch,
            "session.cancelAllAfter": self._cancel_all_after,
            "account.balance": self._balance, "account.positions": self._positions,
            "account.openOrders": self._open_orders, "account.setLeverage": self._leverage,
            "account.setMarginMode": self._margin_mode, "admin.setIndex": self._admin_op,
            "admin.deposit": self._admin_op, "admin.setStatus": self._admin_op,
        }

    # -- connections ------------------------------------------------------------------------------

    def connect(self, encoding: str, now_ns: int) -> Conn:
        conn = Conn(self._next_cid, encoding, Bucket(self.limits.requests_per_second, now_ns),
                    self.limits.outbox_bytes)
        self._next_cid += 1
        self.conns[conn.cid] = conn
        return conn

    def disconnect(self, conn: Conn, now_ns: int) -> None:
        """The connection is gone: drop its subscriptions, cancel its orders if it asked."""
        if self.conns.pop(conn.cid, None) is None:
            return
        self._now = now_ns
        for name in list(conn.channels):
            self._unsubscribe_one(conn, name)
        self._guarded(lambda: self._end_session(conn), f"disconnect of connection {conn.cid}")
        conn.outbox.clear()
        conn.outbox_bytes = 0

    def _end_session(self, conn: Conn) -> None:
        if conn.key is not None and conn.cancel_on_disconnect:
            account = conn.key.account_id
            self._system(C.CancelAll(account))
            self._note({"g": "cod", "a": account, "d": -1})
        conn.key = None

    def _note(self, note: dict[str, Any]) -> None:
        """A guard note: journaled, and applied, when the request succeeds."""
        self._notes.append(note)

    # -- staging and faults -----------------------------------------------------------------------

    def _commit(self) -> None:
        """Hand the staged pushes to the outboxes and journal the guard notes."""
        if self._staged:
            staged = self._staged[:]
            self._staged.clear()  # in place: every channel holds this list
            for target, data in staged:
                if type(target) is Channel:
                    target.publish(data)
                else:
                    target.send(data)
        if self._notes:
            notes, self._notes = self._notes, []
            for note in notes:
                self.guards.apply(note)
                self.venue.note(note)

    def _savepoint(self) -> tuple[int, Any]:
        journal = self.venue.journal
        return self.venue.seq, journal.position if journal is not None else None

    def _fault(self, savepoint: tuple[int, Any], what: str) -> bool:
        """After an unexpected exception (being handled): log it, drop what the request
        staged, and roll the venue back to ``savepoint`` if it moved. True when nothing of
        the request remains applied."""
        self.faults += 1
        log.error("%s failed with a defect; answered 9001", what, exc_info=True)
        self._staged.clear()
        self._notes.clear()
        seq, position = savepoint
        if not self.venue.failed and self.venue.seq == seq:
            return True
        if self._restore is None or position is None:
            log.critical("the venue cannot be rolled back (no journal): it may hold a "
                         "half-applied command")
            self.venue.failed = False
            return False
        self.venue = self._restore(position)
        log.warning("venue rolled back to seq %d from its journal (state %s)", self.venue.seq,
                    self.venue.state_hash())
        return True

    def _guarded(self, fn: Callable[[], Any], what: str) -> None:
        """Run ``fn`` (a tick, a disconnect, the end of a batch) so that a defect in it is
        logged and undone, never raised."""
        savepoint = self._savepoint()
        try:
            fn()
        except Exception:
            self._fault(savepoint, what)
            return
        self._commit()

    # -- the clock's commands ---------------------------------------------------------------------

    def tick(self, now_ns: int) -> None:
        """Advance venue time to ``now_ns`` and fire expired dead-man switches.

        A step longer than the venue allows in one command (``Venue.max_time_step``: a host
        clock that jumped) advances by that maximum only, with a warning; later ticks catch
        up by as much each."""
        self._now = now_ns
        self._guarded(lambda: self._tick(now_ns), "a clock tick")

    def _tick(self, now_ns: int) -> None:
        venue = self.venue
        if now_ns > venue.time:
            target = now_ns
            limit = venue.max_time_step()
            if target - venue.time > limit:
                log.warning("the clock is %.0f s ahead of venue time; advancing by the most "
                            "one step allows (%.0f s)", (target - venue.time) / NS_PER_S,
                            limit / NS_PER_S)
                target = venue.time + limit
            self._system(C.AdvanceTime(target))
        for account, deadline in list(self._deadlines.items()):
            if deadline <= now_ns:
                del self._deadlines[account]
                self._system(C.CancelAll(account))
                self._note({"g": "dms", "a": account, "on": False})

    def system(self, command: Any) -> list[Any]:
        """A command of the gateway's own (time, cancel-on-disconnect, feeds): its events
        are published; nobody gets a response. A defect in it is logged and rolled back
        (the result is then ``[]``)."""
        out: list[Any] = []
        self._guarded(lambda: out.extend(self._system(command)), f"system command {command!r}")
        return out

    def _system(self, command: Any) -> list[Any]:
        events = self.venue.submit(command)
        if self.observer is not None:
            self.observer(command, events)
        self._pushes.publish(self.venue, events)
        return events

    def apply(self, command: Any) -> list[Any]:
        """A command of the exchange's owner (the simulator's clock, oracle and deposits),
        run unguarded: its events are published, and a defect raises, for the owner to
        judge."""
        events = self._system(command)
        self._commit()
        return events

    def recover_guards(self) -> list[int]:
        """At start, before any connection: cancel the orders of every account that held a
        cancel-on-disconnect session or an armed dead-man switch when the server stopped
        (every connection is gone), as journaled commands, then clear the guards. Returns
        the accounts."""
        accounts = self.guards.accounts()
        for account in accounts:
            self._guarded(partial(self._system, C.CancelAll(account)),
                          f"the recovery cancel of account {account}")
        if accounts:
            self._note({"g": "reset"})
            self._commit()
        return accounts

    # -- requests -----------------------------------------------------------------------------

    def receive(self, conn: Conn, frame: str | bytes, now_ns: int) -> None:
        """Handle one frame from ``conn``: its pushes and response go to the outboxes.
        Nothing raised while handling it escapes (see the module's "Faults")."""
        self._request(conn, frame, True, now_ns)

    def handle(self, conn: Conn, message: Any, now_ns: int) -> None:
        """Handle one request given as a message object (a peer in this process, whose
        connection is ``INPROCESS``): the same checks and outcome as ``receive``, without the
        encoding."""
        self._request(conn, message, False, now_ns)

    def open_session(self, account_id: int, now_ns: int) -> Conn:
        """An in-process connection already logged on as ``account_id`` (the simulator's
        agents: the driver holds the money and the keys, as an exchange's own operators do).
        Not reachable from the wire."""
        conn = self.connect(INPROCESS, now_ns)
        conn.key = ApiKey(f"account-{account_id}", "", account_id)
        return conn

    def _request(self, conn: Conn, frame: Any, encoded: bool, now_ns: int) -> None:
        self._now = now_ns
        rid: Any = None
        savepoint = self._savepoint()
        try:
            try:
                obj = decode(frame, conn.encoding) if encoded else check_message(frame)
            except ProtocolError as exc:
                rid = exc.rid
                raise
            rid = request_id(obj)
            request = parse_request(obj)
            if self.shutting_down:
                raise ProtocolError(G.SHUTTING_DOWN, "the server is shutting down")
            if not conn.bucket.take(now_ns):
                self._strike(conn, now_ns)
                raise ProtocolError(G.RATE_LIMITED, "request rate limit")
            op = request.op
            if op in ORDER_OPS:
                result = self._order(conn, op, request.args)
            else:
                result = self._ops[op](conn, op, request.args)
        except ProtocolError as exc:
            self._commit()  # a refusal changed nothing; an order.batch may have run items
            conn.send(error(rid, exc.code, _message(exc)))
            return
        except Exception:
            clean = self._fault(savepoint, f"request {rid!r} on connection {conn.cid}")
            conn.send(error(rid, G.INTERNAL_ERROR, "INTERNAL_ERROR: the request failed; " + (
                "nothing of it was applied" if clean else "its outcome is unknown")))
            return
        self._commit()
        conn.send(ok(rid, result))

    def _strike(self, conn: Conn, now_ns: int) -> None:
        strikes = conn.strikes
        strikes.append(now_ns)
        while strikes and strikes[0] <= now_ns - STRIKE_WINDOW_NS:
            strikes.popleft()
        if len(strikes) > self.limits.requests_per_second and conn.close is None:
            conn.close = (1008, "rate limit")

    def _account(self, conn: Conn) -> int:
        if conn.key is None:
            raise ProtocolError(G.NOT_LOGGED_IN, "log on first (session.logon)")
        return conn.key.account_id

    def _admin(self, conn: Conn) -> None:
        self._account(conn)
        if not conn.key.admin:  # type: ignore[union-attr]
            raise ProtocolError(G.FORBIDDEN, "an admin key is needed")

    def _take_orders(self, account: int, n: int) -> None:
        bucket = self._order_buckets.get(account)
        if bucket is None:
            bucket = self._order_buckets[account] = Bucket(self.limits.orders_per_second,
                                                            self._now)
        if not bucket.take(self._now, n):
            raise ProtocolError(G.RATE_LIMITED, "order rate limit of the account")

    def _submit(self, command: Any) -> list[Any]:
        """Run a client's command; a rejection becomes the request's error."""
        events = self.venue.submit(command)
        if self.observer is not None:
            self.observer(command, events)
        if len(events) == 1 and type(events[0]) is Rejected:
            raise ProtocolError(R(events[0].reason), "")
        self._pushes.publish(self.venue, events)
        return events

    # -- order ops ----------------------------------------------------------------------------

    def _order(self, conn: Conn, op: str, args: dict[str, Any]) -> dict[str, Any]:
        account = self._account(conn)
        self._take_orders(account, 1)
        return self._order_op(account, op, args)

    def _order_op(self, account: int, op: str, args: dict[str, Any]) -> dict[str, Any]:
        command = order_command(op, args, account)
        events = self._submit(command)
        if op == "order.place":
            return _place_result(command, events)
        if op == "order.cancel":
            gone = next(e for e in events if type(e) is OrderCanceled)
            return {"orderId": gone.order_id, "symbol": gone.symbol,
                    "canceledQty": gone.remaining}
        if op == "order.amend":
            amended = next(e for e in events if type(e) is OrderAmended)
            return {"orderId": amended.order_id, "symbol": amended.symbol,
                    "price": amended.price, "qty": amended.qty}
        return {"canceled": sum(1 for e in events if type(e) is OrderCanceled
                                and e.account_id == account)}

    def _batch(self, conn: Conn, op: str, args: dict[str, Any]) -> dict[str, Any]:
        account = self._account(conn)
        a = Args(args)
        orders = a.get("orders", list)
        a.done()
        if not orders:
            raise ProtocolError(G.BAD_ARGUMENT, "orders: at least one")
        if len(orders) > MAX_BATCH:
            raise ProtocolError(G.BATCH_TOO_LARGE, f"orders: at most {MAX_BATCH}")
        items = []
        for i, item in enumerate(orders):
            if not isinstance(item, dict) or set(item) - {"op", "args"} or \
                    item.get("op") not in ORDER_OPS or \
                    not isinstance(item.get("args", {}), dict):
                raise ProtocolError(G.BAD_ARGUMENT, f"orders[{i}]: {{op: an order op, args}}")
            items.append((item["op"], item.get("args", {})))
        self._take_orders(account, len(items))
        results = []
        for item_op, item_args in items:
            try:
                results.append({"ok": True,
                                "result": self._order_op(account, item_op, item_args)})
            except ProtocolError as exc:
                results.append({"ok": False, "error": {"code": int(exc.code),
                                                       "msg": _message(exc)}})
        return {"results": results}

    def _cancel_all_after(self, conn: Conn, op: str, args: dict[str, Any]) -> dict[str, Any]:
        account = self._account(conn)
        a = Args(args)
        timeout = a.get("timeoutMs", int)
        a.done()
        if timeout == 0:
            if self._deadlines.pop(account, None) is not None:
                self._note({"g": "dms", "a": account, "on": False})
            return {"deadline": 0}
        if not 1_000 <= timeout <= 600_000:
            raise ProtocolError(G.BAD_ARGUMENT, "timeoutMs: 0, or 1000-600000")
        deadline = self._now + timeout * NS_PER_MS
        if account not in self._deadlines:
            self._note({"g": "dms", "a": account, "on": True})
        self._deadlines[account] = deadline
        return {"deadline": deadline // NS_PER_MS}

    # -- session and market data ops ------------------------------------------------------------

    def _ping(self, conn: Conn, op: str, args: dict[str, Any]) -> dict[str, Any]:
        Args(args).done()
        return {"time": self.venue.time, "serverTime": self._now // NS_PER_MS}

    def _instruments(self, conn: Conn, op: str, args: dict[str, Any]) -> dict[str, Any]:
        Args(args).done()
        out = []
        for symbol in self.venue.symbols:
            spec, view = self.venue.spec(symbol), self.venue.market(symbol)
            out.append({"symbol": symbol, "underlying": spec.underlying,
                        "tickSize": spec.tick_size, "lotSize": spec.lot_size,
                        "multiplier": view.multiplier,
                        "maxLeverage": max(t.max_leverage for t in spec.tiers),
                        "maxOrderQty": spec.max_order_qty, "priceBandPpb": spec.price_band_ppb,
                        "makerFeePpb": spec.maker_fee_ppb, "takerFeePpb": spec.taker_fee_ppb,
                        "fundingIntervalNs": spec.funding_interval_ns, "status": view.status,
                        "sessionOpen": view.session_open, "index": view.index,
                        "mark": view.mark})
        return {"instruments": out}

    def _logon(self, conn: Conn, op: str, args: dict[str, Any]) -> dict[str, Any]:
        if conn.key is not None:
            raise ProtocolError(G.ALREADY_LOGGED_IN, "this connection is logged on")
        extra = set(args) - {"apiKey", "timestamp", "recvWindow", "cancelOnDisconnect",
                             "signature"}
        if extra:
            raise ProtocolError(G.BAD_ARGUMENT, f"unknown argument {sorted(extra)[0][:40]!r}")
        cod = args.get("cancelOnDisconnect", False)
        if not isinstance(cod, bool):
            raise ProtocolError(G.BAD_ARGUMENT, "cancelOnDisconnect: expected boolean")
        key = verify_logon(args, self.keys, self._now // NS_PER_MS)
        conn.key = key
        conn.cancel_on_disconnect = cod
        if cod:
            self._note({"g": "cod", "a": key.account_id, "d": 1})
        return {"accountId": key.account_id, "admin": key.admin, "cancelOnDisconnect": cod,
                "limits": {"requestsPerSecond": self.limits.requests_per_second,
                           "ordersPerSecond": self.limits.orders_per_second}}

    def _logout(self, conn: Conn, op: str, args: dict[str, Any]) -> dict[str, Any]:
        Args(args).done()
        self._account(conn)
        for name in [n for n in conn.channels if n in PRIVATE_CHANNELS]:
            self._unsubscribe_one(conn, name)
        self._end_session(conn)
        return {}

    def _channel_names(self, args: dict[str, Any]) -> list[str]:
        a = Args(args)
        names: list[str] = a.get("channels", list)
        a.done()
        if not 0 < len(names) <= MAX_CHANNELS or not all(isinstance(n, str) for n in names):
            raise ProtocolError(G.BAD_ARGUMENT, f"channels: 1-{MAX_CHANNELS} names")
        return names

    def _subscribe(self, conn: Conn, op: str, args: dict[str, Any]) -> dict[str, Any]:
        names = self._channel_names(args)
        for name in names:
            if name in PRIVATE_CHANNELS:
                self._account(conn)
            elif name not in self._public:
                raise ProtocolError(G.UNKNOWN_TOPIC, f"unknown channel {name[:60]!r}")
        if len(conn.channels | set(names)) > MAX_CHANNELS:
            raise ProtocolError(G.BAD_ARGUMENT, f"at most {MAX_CHANNELS} channels")
        for name in names:
            if name in conn.channels:
                continue
            conn.channels.add(name)
            if name in PRIVATE_CHANNELS:
                key = (conn.key.account_id, name)  # type: ignore[union-attr]
                channel = self._private.get(key)
                if channel is None:
                    channel = self._private[key] = Channel(name, self._staged)
                channel.conns.add(conn)
            elif name.startswith("book."):
                # joins the channel with its snapshot, after this batch's delta (end_batch)
                self._books.pending.append((conn, name))
            else:
                self._public[name].conns.add(conn)
        return {"channels": names}

    def _unsubscribe(self, conn: Conn, op: str, args: dict[str, Any]) -> dict[str, Any]:
        names = self._channel_names(args)
        for name in names:
            self._unsubscribe_one(conn, name)
        return {"channels": names}

    def _unsubscribe_one(self, conn: Conn, name: str) -> None:
        if name not in conn.channels:
            return
        conn.channels.discard(name)
        if name in PRIVATE_CHANNELS:
            channel = self._private.get((conn.key.account_id, name))  # type: ignore[union-attr]
            if channel is not None:
                channel.conns.discard(conn)
        else:
            self._public[name].conns.discard(conn)

    def _snapshot(self, conn: Conn, op: str, args: dict[str, Any]) -> dict[str, Any]:
        a = Args(args)
        symbol = a.get("symbol", str)
        depth = a.get("depth", int, required=False, default=50)
        a.done()
        if symbol not in self.venue.symbols:
            raise ProtocolError(R.UNKNOWN_MARKET, f"unknown market {symbol[:40]!r}")
        if not 1 <= depth <= BOOK_LEVELS:
            raise ProtocolError(G.BAD_ARGUMENT, f"depth: 1-{BOOK_LEVELS}")
        # charged by its size: one request per `snapshot_levels_per_request` levels sent
        state = self._books.states.get(symbol) or self._books.state(self.venue, symbol)
        levels = min(depth, len(state.bids)) + min(depth, len(state.asks))
        extra = levels // self.limits.snapshot_levels_per_request
        if extra and not conn.bucket.take(self._now, extra):
            self._strike(conn, self._now)
            raise ProtocolError(G.RATE_LIMITED, f"request rate limit (a snapshot of {levels} "
                                f"levels costs {extra + 1} requests)")
        bids, asks = self._books.levels(self.venue, symbol, depth)
        return {"symbol": symbol, "seq": self._public[f"book.{symbol}"].seq, "bids": bids,
                "asks": asks, "ts": self.venue.time}

    # -- account ops ----------------------------------------------------------------------------

    def _view(self, conn: Conn) -> AccountView:
        account = self._account(conn)
        try:
            return self.venue.account(account)
        except KeyError:
            raise ProtocolError(R.UNKNOWN_ACCOUNT, "the account has no deposit") from None

    def _balance(self, conn: Conn, op: str, args: dict[str, Any]) -> dict[str, Any]:
        Args(args).done()
        v = self._view(conn)
        return {"accountId": v.account_id, "balance": v.balance, "equity": v.equity,
                "marginUsed": v.margin_used, "maintenanceMargin": v.maintenance_margin,
                "available": v.available, "withdrawable": v.withdrawable,
                "openOrders": v.open_orders}

    def _positions(self, conn: Conn, op: str, args: dict[str, Any]) -> dict[str, Any]:
        Args(args).done()
        view = self._view(conn)
        return {"positions": [position_push(p, p.symbol, self.venue.time)
                              for p in view.positions.values()]}

    def _open_orders(self, conn: Conn, op: str, args: dict[str, Any]) -> dict[str, Any]:
        a = Args(args)
        symbol = a.get("symbol", str, required=False)
        a.done()
        self._view(conn)
        out = []
        for o in self.venue.open_orders(conn.key.account_id):  # type: ignore[union-attr]
            if symbol is not None and o["symbol"] != symbol:
                continue
            row = {"orderId": o["order_id"], "symbol": o["symbol"],
                   "side": SIDE_NAME[int(o["side"])], "price": o["price"], "qty": o["qty"],
                   "reduceOnly": o["reduce_only"], "clientOrderId": o["client_order_id"]}
            if "trigger_price" in o:
                row["triggerPrice"] = o["trigger_price"]
                row["triggerKind"] = o["trigger_kind"]
            out.append(row)
        return {"orders": out}

    def _leverage(self, conn: Conn, op: str, args: dict[str, Any]) -> dict[str, Any]:
        command = account_command(op, args, self._account(conn))
        self._submit(command)
        return {"symbol": command.symbol, "leverage": command.leverage}

    def _margin_mode(self, conn: Conn, op: str, args: dict[str, Any]) -> dict[str, Any]:
        command = account_command(op, args, self._account(conn))
        self._submit(command)
        return {"symbol": command.symbol, "mode": command.mode}

    # -- admin ops ------------------------------------------------------------------------------

    def _admin_op(self, conn: Conn, op: str, args: dict[str, Any]) -> dict[str, Any]:
        self._admin(conn)
        command = admin_command(op, args)
        events = self._submit(command)
        if op == "admin.setIndex":
            view = self.venue.market(command.symbol)
            return {"symbol": command.symbol, "index": view.index, "mark": view.mark}
        if op == "admin.deposit":
            return {"accountId": command.account_id, "balance": events[0].balance}
        return {"symbol": command.symbol, "status": command.status}

    # -- events to pushes -----------------------------------------------------------------------

    def end_batch(self) -> None:
        """Publish one conflated book and bbo delta per changed market, then the snapshots of
        new book subscribers."""
        self._guarded(lambda: self._books.end_batch(self.venue, self._pushes.touched_books,
                                                    self.conns, self._staged),
                      "the end of a batch")

def _message(exc: ProtocolError) -> str:
    name = code_name(exc.code)
    return f"{name}: {exc.msg}" if exc.msg else name


def _place_result(command: Any, events: list[Any]) -> dict[str, Any]:
    first = next(e for e in events if (type(e) is OrderAccepted or type(e) is ConditionalAccepted)
                 and e.account_id == command.account_id)
    if type(first) is ConditionalAccepted:
        return {"orderId": first.order_id, "clientOrderId": first.client_order_id,
                "symbol": first.symbol, "status": "UNTRIGGERED", "filledQty": 0,
                "remainingQty": first.qty}
    oid = first.order_id
    filled = 0
    status = None
    for e in events:
        t = type(e)
        if t is Fill and e.taker_order_id == oid:
            filled += e.qty
        elif t is OrderCanceled and e.order_id == oid:
            status = {"expired": "EXPIRED", "fok": "EXPIRED"}.get(e.reason, "CANCELED")
    if status is None:
        status = "FILLED" if filled == command.qty else \
            "PARTIALLY_FILLED" if filled else "NEW"
    remaining = command.qty - filled if status in ("NEW", "PARTIALLY_FILLED") else 0
    return {"orderId": oid, "clientOrderId": first.client_order_id, "symbol": first.symbol,
            "status": status, "filledQty": filled, "remainingQty": remaining}
