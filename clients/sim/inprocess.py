"""The in-process transport: sessions on the sans-I/O ``Exchange``, called directly with
message objects (nothing encoded; time passed in), so that the simulator's agents speak the
very messages a websocket client would, through the same checks and the same mapping to venue
commands (clients/live/session.py has the websocket twin).

Every session's connection writes into one stream, in the order the exchange publishes:
``send`` takes out the session's own response and pushes; what other sessions received (a
maker's fill caused by someone else's order, a liquidation notice) stays in the stream, in
order, for the owner to hand out (``take``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from gaemi.clients.live.session import Reply, Session, reply_of
from gaemi.gateway.exchange import Exchange
from gaemi.gateway.sessions import Conn

__all__ = ["InProcess", "InProcessSession"]


class _Sink(list[Any]):
    """A connection's outbox that writes to the transport's stream."""

    __slots__ = ("stream", "session")

    def __init__(self, stream: list[tuple[InProcessSession, Any]],
                 session: InProcessSession) -> None:
        super().__init__()
        self.stream = stream
        self.session = session

    def append(self, message: Any) -> None:
        self.stream.append((self.session, message))


class InProcess:
    """Sessions on ``exchange``; ``clock()`` is the time each request is handled at."""

    def __init__(self, exchange: Exchange, clock: Callable[[], int]) -> None:
        self.exchange = exchange
        self.clock = clock
        self.stream: list[tuple[InProcessSession, Any]] = []

    def session(self, account_id: int,
                channels: Iterable[str] = ("fills", "account")) -> InProcessSession:
        """A logged-on session of ``account_id``, subscribed to ``channels``."""
        conn = self.exchange.open_session(account_id, self.clock())
        session = InProcessSession(self, conn, account_id)
        conn.outbox = _Sink(self.stream, session)
        if channels:
            session.request("subscribe", {"channels": list(channels)})
        return session

    def take(self) -> list[tuple[InProcessSession, dict[str, Any]]]:
        """Every message waiting for any session, in the order it was published."""
        out, self.stream[:] = list(self.stream), []
        return out


class InProcessSession(Session):
    __slots__ = ("transport", "conn", "account_id", "_ids")

    def __init__(self, transport: InProcess, conn: Conn, account_id: int) -> None:
        self.transport = transport
        self.conn = conn
        self.account_id = account_id
        self._ids = 0

    def send(self, message: dict[str, Any]) -> Reply:
        self._ids += 1
        rid = self._ids
        stream = self.transport.stream
        mark = len(stream)
        self.transport.exchange.handle(self.conn, {"id": rid, **message},
                                       self.transport.clock())
        new = stream[mark:]
        del stream[mark:]
        own = []
        for session, m in new:
            if session is self:
                own.append(m)
            else:
                stream.append((session, m))
        return reply_of(own, rid)
