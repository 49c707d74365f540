"""The asyncio client of the Gaemi wire protocol (docs/protocol.md, "The Python client").

::

    async with connect("ws://127.0.0.1:8765", encoding="msgpack") as client:
        await client.logon("dev-1", secret)
        await client.subscribe(["fills"], handler=print)
        order = await client.place("NVDA-PERP", "BUY", 100, 21_000)
        await client.cancel("NVDA-PERP", order["orderId"])

One reader task reads every frame: a response completes the future of its request (matched by
``id``, so any number of requests may be in flight: pipelining), a push goes to the handlers
and queues of its channel. Every channel's ``seq``/``prev`` is checked: a push whose ``prev`` is
not the ``seq`` last seen on its channel is counted in ``gaps`` and reported to the gap
handlers. When the connection is lost, every pending request fails with ``ConnectionLost`` (a
``ConnectionError``) naming the close code and reason, and so does every later request.

Prices are integer ticks, sizes integer lots, money integer micro-dollars, as on the wire.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterable
from typing import Any

import msgpack
import orjson
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from gaemi.engine.codes import Side
from gaemi.gateway.wire.auth import DEFAULT_RECV_WINDOW_MS, sign
from gaemi.gateway.wire.codec import JSON, MSGPACK, encode
from gaemi.gateway.wire.errors import ErrorCode, known_code

__all__ = ["Client", "ConnectionLost", "Push", "RequestError", "connect", "place_args"]

log = logging.getLogger(__name__)

Push = dict[str, Any]  # {"ch", "seq", "prev", "data"}
Handler = Callable[[Push], Any]
GapHandler = Callable[[str, int, Push], Any]  # (channel, last seq seen, the push)

ENCODINGS = {"json": JSON, "msgpack": MSGPACK, JSON: JSON, MSGPACK: MSGPACK}
DEFAULT_TIMEOUT = 30.0  # seconds a request may wait for its response (a hang guard)
MAX_INCOMING = 16 * 2**20  # bytes: a frame from the server (a deep book snapshot is large)
ALL = "*"  # the channel name of handlers that see every push


class RequestError(Exception):
    """The server refused a request: ``code`` (a ``RejectReason`` or a ``GatewayCode`` when
    the code is known, else the integer) and ``msg``. Nothing changed on the server."""

    def __init__(self, code: int, msg: str, op: str | None = None) -> None:
        self.code: ErrorCode | int = known_code(code)
        self.msg = msg
        self.op = op
        # the server's msg starts with the code's name (docs/protocol.md §6)
        super().__init__(f"{op + ': ' if op else ''}{int(code)} {msg}")


class ConnectionLost(ConnectionError):
    """The websocket is closed: ``code`` and ``reason`` of the close (None if unknown)."""

    def __init__(self, message: str, code: int | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


def _side(side: str | Side | int) -> str:
    if isinstance(side, Side) or (isinstance(side, int) and not isinstance(side, bool)):
        return Side(side).name
    if isinstance(side, str) and side.upper() in ("BUY", "SELL"):
        return side.upper()
    raise ValueError(f"side: BUY or SELL, not {side!r}")


def _int(name: str, value: Any) -> int:
    """Integers only (ticks, lots, units): a float would be refused by the server anyway."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: an integer (ticks, lots or units), not {value!r}")
    return int(value)


def place_args(symbol: str, side: str | Side, qty: int, price: int | None = None, *,
               type: str = "LIMIT", tif: str = "GTC", reduce_only: bool = False,
               client_order_id: str | None = None,
               trigger_price: int | None = None) -> dict[str, Any]:
    """The ``args`` of an ``order.place`` (also for ``order.batch`` items). Defaults are left
    out of the message."""
    args: dict[str, Any] = {"symbol": symbol, "side": _side(side), "qty": _int("qty", qty)}
    if price is not None:
        args["price"] = _int("price", price)
    if type != "LIMIT":
        args["type"] = type
    if tif != "GTC":
        args["timeInForce"] = tif
    if reduce_only:
        args["reduceOnly"] = True
    if client_order_id is not None:
        args["clientOrderId"] = client_order_id
    if trigger_price is not None:
        args["triggerPrice"] = _int("trigger_price", trigger_price)
    return args


class Client:
    """One websocket connection to a Gaemi gateway. Make one with ``await Client.connect(url)``
    or ``async with connect(url) as client``."""

    def __init__(self, ws: ClientConnection, encoding: str, *,
                 request_timeout: float | None = DEFAULT_TIMEOUT) -> None:
        self._ws = ws
        self.encoding = encoding  # "gaemi.json" or "gaemi.msgpack"
        self.request_timeout = request_timeout
        self._loop = asyncio.get_running_loop()
        self._next_id = 1
        # id -> (op, future, timeout handle); insertion order is request order
        self._pending: dict[int, tuple[str, asyncio.Future[Any], asyncio.TimerHandle | None]] = {}
        self._handlers: dict[str, list[Handler]] = {}
        self._queues: dict[str, list[asyncio.Queue[Push | None]]] = {}
        self._gap_handlers: list[GapHandler] = []
        self._lost: ConnectionLost | None = None
        self._closed = asyncio.Event()
        # session
        self.account_id: int | None = None
        self.admin = False
        self.limits: dict[str, int] = {}
        # per-channel sequence tracking
        self.last_seq: dict[str, int] = {}
        self.gaps: dict[str, int] = {}
        # counters
        self.pushes_received = 0
        self.responses_received = 0
        self.handler_errors = 0
        self.bad_frames = 0
        # test hook: a push for which this returns True is dropped as if lost in transit
        # (before sequence tracking, so the gap is seen like a real one)
        self.drop_push: Callable[[Push], bool] | None = None
        self._reader = self._loop.create_task(self._read(), name="gaemi-client-reader")

    # -- connection ----------------------------------------------------------------------------

    @classmethod
    async def connect(cls, url: str, encoding: str = "json", *,
                      request_timeout: float | None = DEFAULT_TIMEOUT,
                      open_timeout: float = 10.0, max_size: int = MAX_INCOMING,
                      **ws_options: Any) -> Client:
        """Open a connection. ``encoding``: ``"json"`` (text frames) or ``"msgpack"`` (binary
        frames), asked for as the websocket subprotocol ``gaemi.json`` / ``gaemi.msgpack``."""
        if encoding not in ENCODINGS:
            raise ValueError(f"encoding: json or msgpack, not {encoding!r}")
        proto = ENCODINGS[encoding]
        ws = await ws_connect(url, subprotocols=[proto], compression=None,  # type: ignore[list-item]
                              max_size=max_size, open_timeout=open_timeout, **ws_options)
        chosen = ws.subprotocol or JSON  # the server's default when it names none
        if chosen != proto:
            await ws.close()
            raise ConnectionLost(f"the server does not speak {proto} (chose {chosen})")
        return cls(ws, proto, request_timeout=request_timeout)

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    @property
    def close_code(self) -> int | None:
        return self._ws.close_code

    @property
    def close_reason(self) -> str | None:
        return self._ws.close_reason

    def raise_if_closed(self) -> None:
        """``ConnectionLost`` (with the close code and reason) if the connection is closed."""
        if self._lost is not None and self.closed:
            raise ConnectionLost(str(self._lost), self._lost.code, self._lost.reason)

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def close(self) -> None:
        """Close the connection and wait for the reader to finish; pending requests fail."""
        if self._lost is None:
            self._lost = ConnectionLost("connection closed by the client", 1000, "")
        await self._ws.close()
        await asyncio.shield(self._reader)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- requests ------------------------------------------------------------------------------

    async def request(self, op: str, args: dict[str, Any] | None = None, *,
                      timeout: float | None = -1.0) -> Any:
        """Send one request and return its ``result``; ``RequestError`` if the server refused
        it, ``ConnectionLost`` if the connection closed first, ``TimeoutError`` after
        ``timeout`` seconds (default: the client's ``request_timeout``; None: no limit)."""
        fut = await self._send(op, args, self.request_timeout if timeout == -1.0 else timeout)
        return await fut

    async def request_many(self, calls: Iterable[tuple[str, dict[str, Any] | None]], *,
                           timeout: float | None = -1.0) -> list[Any]:
        """Pipeline: send every ``(op, args)`` without waiting, then wait for all the
        responses. Each item of the answer is a result or the ``RequestError`` of that
        request (connection loss and timeouts raise)."""
        limit = self.request_timeout if timeout == -1.0 else timeout
        futures = [await self._send(op, args, limit) for op, args in calls]
        out: list[Any] = []
        for fut in futures:
            try:
                out.append(await fut)
            except RequestError as exc:
                out.append(exc)
        return out

    async def send_raw(self, message: dict[str, Any] | str | bytes) -> None:
        """Send a frame as is (tests of the server's refusals). A map is encoded; its
        response, if any, is not matched to a request by this client unless its id is."""
        frame = message if isinstance(message, (str, bytes)) else encode(message, self.encoding)
        await self._ws.send(frame)

    async def _send(self, op: str, args: dict[str, Any] | None,
                    timeout: float | None) -> asyncio.Future[Any]:
        if self._lost is not None:
            raise ConnectionLost(f"{op}: {self._lost}", self._lost.code, self._lost.reason)
        rid = self._next_id
        self._next_id += 1
        fut: asyncio.Future[Any] = self._loop.create_future()
        handle = self._loop.call_later(timeout, self._expire, rid) if timeout else None
        self._pending[rid] = (op, fut, handle)
        message: dict[str, Any] = {"id": rid, "op": op}
        if args:
            message["args"] = args
        try:
            await self._ws.send(encode(message, self.encoding))
        except ConnectionClosed:
            self._pending.pop(rid, None)
            if handle is not None:
                handle.cancel()
            if fut.done():  # the reader failed it already: this error replaces that one
                fut.exception()
            else:
                fut.cancel()
            await asyncio.shield(self._reader)  # the reader records why the connection closed
            lost = self._lost or ConnectionLost("connection lost")
            raise ConnectionLost(f"{op}: {lost}", lost.code, lost.reason) from None
        return fut

    def _expire(self, rid: int) -> None:
        entry = self._pending.pop(rid, None)
        if entry is not None and not entry[1].done():
            entry[1].set_exception(TimeoutError(f"{entry[0]}: no response in time"))

    # -- the reader ----------------------------------------------------------------------------

    async def _read(self) -> None:
        ws = self._ws
        try:
            async for frame in ws:
                try:
                    if self.encoding == MSGPACK:
                        msg = msgpack.unpackb(frame, raw=False)
                    else:
                        msg = orjson.loads(frame)
                except Exception:
                    self.bad_frames += 1
                    log.warning("undecodable frame from the server (%d bytes)", len(frame))
                    continue
                if not isinstance(msg, dict):
                    self.bad_frames += 1
                    continue
                if "ch" in msg:
                    self._on_push(msg)
                else:
                    self._on_response(msg)
        except ConnectionClosed:
            pass
        except Exception:  # a bug in this module: never leave requests hanging because of it
            log.exception("the client's reader failed")
        finally:
            if self._lost is None:
                code, reason = ws.close_code, ws.close_reason
                self._lost = ConnectionLost(
                    f"connection lost (close code {code}{': ' + reason if reason else ''})",
                    code, reason)
            self._closed.set()
            pending, self._pending = self._pending, {}
            for op, fut, handle in pending.values():
                if handle is not None:
                    handle.cancel()
                if not fut.done():
                    fut.set_exception(ConnectionLost(f"{op}: {self._lost}", self._lost.code,
                                                     self._lost.reason))
            for queues in self._queues.values():
                for q in queues:
                    q.put_nowait(None)

    def _on_response(self, msg: dict[str, Any]) -> None:
        self.responses_received += 1
        rid = msg.get("id")
        entry = self._pending.pop(rid, None) if isinstance(rid, int) else None
        if entry is None and rid is None and self._pending:
            # an unreadable request is answered with id null; responses come in request
            # order, so it answers the oldest request still waiting
            entry = self._pending.pop(next(iter(self._pending)))
        if entry is None:
            return  # a late answer to a request that timed out, or to send_raw
        op, fut, handle = entry
        if handle is not None:
            handle.cancel()
        if fut.done():
            return
        if msg.get("ok"):
            fut.set_result(msg.get("result"))
        else:
            err = msg.get("error") or {}
            fut.set_exception(RequestError(err.get("code", 0), err.get("msg", ""), op))

    def _on_push(self, push: Push) -> None:
        if self.drop_push is not None and self.drop_push(push):
            return
        self.pushes_received += 1
        ch = push.get("ch")
        if not isinstance(ch, str):
            self.bad_frames += 1
            return
        seq, prev = push.get("seq"), push.get("prev")
        last = self.last_seq.get(ch)
        if prev is not None and last is not None and prev != last:
            self.gaps[ch] = self.gaps.get(ch, 0) + 1
            for gap_handler in list(self._gap_handlers):
                self._call(gap_handler, ch, last, push)
        if isinstance(seq, int):
            self.last_seq[ch] = seq
        for handler in self._handlers.get(ch, ()):
            self._call(handler, push)
        for handler in self._handlers.get(ALL, ()):
            self._call(handler, push)
        for q in self._queues.get(ch, ()):
            q.put_nowait(push)

    def _call(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            self.handler_errors += 1
            log.exception("a push handler failed")

    # -- push routing --------------------------------------------------------------------------

    def add_handler(self, channel: str, handler: Handler) -> None:
        """Call ``handler(push)`` for every push on ``channel`` (``"*"``: every channel). It
        runs in the reader task: keep it short and do not block (start a task for I/O)."""
        self._handlers.setdefault(channel, []).append(handler)

    def remove_handler(self, channel: str, handler: Handler) -> None:
        handlers = self._handlers.get(channel, [])
        if handler in handlers:
            handlers.remove(handler)

    def on_gap(self, handler: GapHandler) -> None:
        """Call ``handler(channel, last_seq, push)`` when a push does not follow the last one
        seen on its channel."""
        self._gap_handlers.append(handler)

    def pushes(self, channel: str) -> AsyncIterator[Push]:
        """Every push on ``channel`` from this call on, until the connection closes::

            async for push in client.pushes("fills"): ...
        """
        return self._iterate(channel, self.queue(channel))

    async def _iterate(self, channel: str, q: asyncio.Queue[Push | None]
                       ) -> AsyncIterator[Push]:
        try:
            while (item := await q.get()) is not None:
                yield item
        finally:
            self.remove_queue(channel, q)

    def queue(self, channel: str) -> asyncio.Queue[Push | None]:
        """A queue that receives every push on ``channel`` from now on, then None once the
        connection closes."""
        q: asyncio.Queue[Push | None] = asyncio.Queue()
        self._queues.setdefault(channel, []).append(q)
        if self.closed:
            q.put_nowait(None)
        return q

    def remove_queue(self, channel: str, q: asyncio.Queue[Push | None]) -> None:
        queues = self._queues.get(channel, [])
        if q in queues:
            queues.remove(q)

    # -- session -------------------------------------------------------------------------------

    async def logon(self, api_key: str, secret: str, *, cancel_on_disconnect: bool = False,
                    recv_window: int = DEFAULT_RECV_WINDOW_MS,
                    timestamp: int | None = None) -> dict[str, Any]:
        """``session.logon`` signed with HMAC-SHA256 (``timestamp``: now, in ms, by default)."""
        args: dict[str, Any] = {
            "apiKey": api_key,
            "timestamp": int(time.time() * 1000) if timestamp is None else timestamp,
            "recvWindow": recv_window,
            "cancelOnDisconnect": cancel_on_disconnect,
        }
        args["signature"] = sign(args, secret)
        result = await self.request("session.logon", args)
        self.account_id = result.get("accountId")
        self.admin = bool(result.get("admin"))
        self.limits = result.get("limits") or {}
        return result  # type: ignore[no-any-return]

    async def logout(self) -> dict[str, Any]:
        result = await self.request("session.logout")
        self.account_id = None
        return result  # type: ignore[no-any-return]

    async def ping(self) -> dict[str, Any]:
        return await self.request("ping")  # type: ignore[no-any-return]

    async def cancel_all_after(self, timeout_ms: int) -> dict[str, Any]:
        """The dead-man switch: cancel everything unless renewed within ``timeout_ms``
        (0 disarms it)."""
        return await self.request(  # type: ignore[no-any-return]
            "session.cancelAllAfter", {"timeoutMs": _int("timeout_ms", timeout_ms)})

    # -- market data ---------------------------------------------------------------------------

    async def instruments(self) -> list[dict[str, Any]]:
        return (await self.request("instruments"))["instruments"]  # type: ignore[no-any-return]

    async def instrument(self, symbol: str) -> dict[str, Any]:
        for spec in await self.instruments():
            if spec["symbol"] == symbol:
                return spec
        raise KeyError(f"no market {symbol!r} on this server")

    async def snapshot_book(self, symbol: str, depth: int = 50) -> dict[str, Any]:
        """``{symbol, seq, bids, asks, ts}``: levels as ``[price, qty]``, best first."""
        return await self.request(  # type: ignore[no-any-return]
            "snapshot.book", {"symbol": symbol, "depth": _int("depth", depth)})

    async def subscribe(self, channels: str | Iterable[str],
                        handler: Handler | None = None) -> list[str]:
        """Subscribe (all or nothing). ``handler``, if given, is added to every channel first,
        so it sees the first push (a book snapshot may come before the response)."""
        names = [channels] if isinstance(channels, str) else list(channels)
        if handler is not None:
            for ch in names:
                self.add_handler(ch, handler)
        try:
            result = await self.request("subscribe", {"channels": names})
        except BaseException:
            if handler is not None:
                for ch in names:
                    self.remove_handler(ch, handler)
            raise
        return result["channels"]  # type: ignore[no-any-return]

    async def unsubscribe(self, channels: str | Iterable[str]) -> list[str]:
        """Unsubscribe; the channels' sequence tracking starts afresh on a new subscribe."""
        names = [channels] if isinstance(channels, str) else list(channels)
        result = await self.request("unsubscribe", {"channels": names})
        for ch in names:
            self.last_seq.pop(ch, None)
        return result["channels"]  # type: ignore[no-any-return]

    # -- orders --------------------------------------------------------------------------------

    async def place(self, symbol: str, side: str | Side, qty: int, price: int | None = None, *,
                    type: str = "LIMIT", tif: str = "GTC", reduce_only: bool = False,
                    client_order_id: str | None = None,
                    trigger_price: int | None = None) -> dict[str, Any]:
        """``order.place``: ``{orderId, clientOrderId, symbol, status, filledQty,
        remainingQty}``; ``RequestError`` with the reason if the venue rejected it."""
        return await self.request("order.place", place_args(  # type: ignore[no-any-return]
            symbol, side, qty, price, type=type, tif=tif, reduce_only=reduce_only,
            client_order_id=client_order_id, trigger_price=trigger_price))

    async def market(self, symbol: str, side: str | Side, qty: int, *,
                     reduce_only: bool = False) -> dict[str, Any]:
        """A market order (IOC at the mark ± the market's protection band)."""
        return await self.place(symbol, side, qty, type="MARKET", reduce_only=reduce_only)

    async def cancel(self, symbol: str, order_id: int | None = None, *,
                     client_order_id: str | None = None) -> dict[str, Any]:
        args: dict[str, Any] = {"symbol": symbol}
        if order_id is not None:
            args["orderId"] = _int("order_id", order_id)
        if client_order_id is not None:
            args["clientOrderId"] = client_order_id
        return await self.request("order.cancel", args)  # type: ignore[no-any-return]

    async def amend(self, symbol: str, order_id: int, *, price: int | None = None,
                    qty: int | None = None) -> dict[str, Any]:
        """A size decrease keeps queue priority; a price change or size increase loses it."""
        args: dict[str, Any] = {"symbol": symbol, "orderId": _int("order_id", order_id)}
        if price is not None:
            args["price"] = _int("price", price)
        if qty is not None:
            args["qty"] = _int("qty", qty)
        return await self.request("order.amend", args)  # type: ignore[no-any-return]

    async def cancel_all(self, symbol: str | None = None) -> int:
        """Cancel every open order (of ``symbol``, or of every market); the count."""
        args = {"symbol": symbol} if symbol is not None else None
        return (await self.request("order.cancelAll", args))["canceled"]  # type: ignore[no-any-return]

    async def batch(self, orders: Iterable[tuple[str, dict[str, Any]] | dict[str, Any]]
                    ) -> list[dict[str, Any] | RequestError]:
        """``order.batch`` of up to 20 order ops, ``(op, args)`` pairs or ``{op, args}`` maps
        (``place_args`` builds a place's args). Each item of the answer is its result or its
        ``RequestError``, in order."""
        items: list[dict[str, Any]] = [o if isinstance(o, dict) else {"op": o[0], "args": o[1]}
                                       for o in orders]
        result = await self.request("order.batch", {"orders": items})
        out: list[dict[str, Any] | RequestError] = []
        for item, answer in zip(items, result["results"], strict=True):
            if answer.get("ok"):
                out.append(answer.get("result"))
            else:
                err = answer.get("error") or {}
                out.append(RequestError(err.get("code", 0), err.get("msg", ""), item["op"]))
        return out

    # -- account -------------------------------------------------------------------------------

    async def balance(self) -> dict[str, Any]:
        return await self.request("account.balance")  # type: ignore[no-any-return]

    async def positions(self) -> list[dict[str, Any]]:
        return (await self.request("account.positions"))["positions"]  # type: ignore[no-any-return]

    async def position(self, symbol: str) -> dict[str, Any] | None:
        for pos in await self.positions():
            if pos.get("symbol") == symbol:
                return pos
        return None

    async def open_orders(self, symbol: str | None = None) -> list[dict[str, Any]]:
        args = {"symbol": symbol} if symbol is not None else None
        return (await self.request("account.openOrders", args))["orders"]  # type: ignore[no-any-return]

    async def set_leverage(self, symbol: str, leverage: int) -> dict[str, Any]:
        return await self.request(  # type: ignore[no-any-return]
            "account.setLeverage", {"symbol": symbol, "leverage": _int("leverage", leverage)})

    async def set_margin_mode(self, symbol: str, mode: str) -> dict[str, Any]:
        """``"cross"`` or ``"isolated"`` (only without a position or open orders)."""
        return await self.request(  # type: ignore[no-any-return]
            "account.setMarginMode", {"symbol": symbol, "mode": mode})

    # -- admin (admin keys only) ---------------------------------------------------------------

    async def set_index(self, symbol: str, price: int) -> dict[str, Any]:
        return await self.request(  # type: ignore[no-any-return]
            "admin.setIndex", {"symbol": symbol, "price": _int("price", price)})

    async def deposit(self, account_id: int, amount: int) -> dict[str, Any]:
        return await self.request(  # type: ignore[no-any-return]
            "admin.deposit", {"accountId": _int("account_id", account_id),
                              "amount": _int("amount", amount)})

    async def set_status(self, symbol: str, status: str) -> dict[str, Any]:
        return await self.request(  # type: ignore[no-any-return]
            "admin.setStatus", {"symbol": symbol, "status": status})


class connect:
    """``client = await connect(url)`` or ``async with connect(url) as client:`` (closed on
    exit). Arguments as ``Client.connect``."""

    def __init__(self, url: str, encoding: str = "json", **options: Any) -> None:
        self._url, self._encoding, self._options = url, encoding, options
        self._client: Client | None = None

    def __await__(self) -> Generator[Any, None, Client]:
        return Client.connect(self._url, self._encoding, **self._options).__await__()

    async def __aenter__(self) -> Client:
        self._client = await Client.connect(self._url, self._encoding, **self._options)
        return self._client

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.close()
