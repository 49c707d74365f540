"""Sessions: what the exchange keeps for each connection (``Conn``), the limits it enforces
(``Limits``, token ``Bucket`` s), the channels clients subscribe to (``Channel``), and the
promises a session leaves behind it (``Guards``: cancel-on-disconnect and the dead-man switch,
journaled as notes so that they survive a crash).

Output is bounded per connection: ``Conn.push`` refuses to queue more than
``Limits.outbox_bytes`` (counting what the I/O layer still holds, ``Conn.backlog``) and marks
the connection to be closed with 1008 "slow consumer". A connection of the in-process
transport (``INPROCESS``) holds the messages themselves: nothing is encoded and nothing is
counted in bytes.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from gaemi.gateway.wire.auth import ApiKey
from gaemi.gateway.wire.codec import INPROCESS, encode

__all__ = ["INPROCESS", "MAX_CHANNELS", "NS_PER_MS", "NS_PER_S", "PRIVATE_CHANNELS",
           "PUBLIC_KINDS", "SLOW_CONSUMER", "STRIKE_WINDOW_NS", "Bucket", "Channel", "Conn",
           "Guards", "Limits"]

PUBLIC_KINDS = ("book", "bbo", "trades", "mark", "liquidations", "funding")
PRIVATE_CHANNELS = frozenset({"orders", "fills", "positions", "account"})
MAX_CHANNELS = 50
NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000
STRIKE_WINDOW_NS = 10 * NS_PER_S


@dataclass(frozen=True, slots=True)
class Limits:
    """Rate limits and bounds (docs/protocol.md §7). Buckets hold two seconds' worth."""

    requests_per_second: int = 1_000  # per connection
    orders_per_second: int = 500  # per account, across its connections
    outbox_max: int = 10_000  # messages waiting for one connection before it is dropped
    outbox_bytes: int = 4 * 1024 * 1024  # bytes waiting for one connection: ditto
    max_connections: int = 1_024  # open at once (the server refuses more with HTTP 503)
    max_connections_per_address: int = 64  # from one client IP address
    snapshot_levels_per_request: int = 100  # snapshot.book costs 1 request per this many levels


class Bucket:
    """A token bucket in integer nano-tokens: ``rate`` a second, capacity two seconds."""

    __slots__ = ("rate", "cap", "level", "last")

    def __init__(self, rate: int, now_ns: int) -> None:
        self.rate = rate
        self.cap = 2 * rate * NS_PER_S
        self.level = self.cap
        self.last = now_ns

    def take(self, now_ns: int, n: int = 1) -> bool:
        if now_ns > self.last:
            self.level = min(self.cap, self.level + (now_ns - self.last) * self.rate)
            self.last = now_ns
        if self.level < n * NS_PER_S:
            return False
        self.level -= n * NS_PER_S
        return True


SLOW_CONSUMER = (1008, "slow consumer")


@dataclass(eq=False, slots=True)
class Conn:
    """One connection's session. ``outbox``: frames to send, in order (``outbox_bytes`` of
    them). ``backlog``: bytes the I/O layer took from the outbox and has not written yet (it
    keeps this count). ``close``: set when the exchange wants the connection closed,
    ``(websocket close code, reason)``."""

    cid: int
    encoding: str
    bucket: Bucket
    max_bytes: int = 4 * 1024 * 1024
    key: ApiKey | None = None
    cancel_on_disconnect: bool = False
    channels: set[str] = field(default_factory=set)
    outbox: list[str | bytes] = field(default_factory=list)
    outbox_bytes: int = 0
    backlog: int = 0
    strikes: deque[int] = field(default_factory=deque)  # times of refused requests
    close: tuple[int, str] | None = None

    def send(self, message: dict[str, Any]) -> None:
        self.push(encode(message, self.encoding))

    def push(self, frame: Any) -> None:
        """Queue a frame, unless the connection already holds ``max_bytes`` unsent: then it
        is a slow consumer, its queue is dropped and it is to be closed."""
        if self.close is SLOW_CONSUMER:
            return
        if self.encoding == INPROCESS:  # the message itself, for a peer in this process
            self.outbox.append(frame)
            return
        size = len(frame)
        if self.outbox_bytes + self.backlog + size > self.max_bytes:
            self.outbox.clear()
            self.outbox_bytes = 0
            self.close = SLOW_CONSUMER
            return
        self.outbox.append(frame)
        self.outbox_bytes += size

    def take_outbox(self) -> list[str | bytes]:
        """The queued frames, handed to the I/O layer (which adds them to ``backlog``)."""
        frames, self.outbox = self.outbox, []
        self.backlog += self.outbox_bytes
        self.outbox_bytes = 0
        return frames


class Channel:
    """Subscribers of one channel and its sequence number. ``post`` stages a push (sent by
    ``publish`` when the request that made it succeeds: ``Exchange._commit``)."""

    __slots__ = ("name", "seq", "conns", "staged")

    def __init__(self, name: str, staged: list[tuple[Any, dict[str, Any]]]) -> None:
        self.name = name
        self.seq = 0
        self.conns: set[Conn] = set()
        self.staged = staged

    def post(self, data: dict[str, Any]) -> None:
        if self.conns:
            self.staged.append((self, data))

    def publish(self, data: dict[str, Any]) -> None:
        """Send ``data`` to every subscriber. The sequence counts what was sent: a channel
        nobody listens to does not advance (a new subscriber starts from any ``seq``)."""
        if not self.conns:
            return
        self.seq += 1
        message = {"ch": self.name, "seq": self.seq, "prev": self.seq - 1, "data": data}
        frames: dict[str, str | bytes] = {}
        for conn in self.conns:
            frame = frames.get(conn.encoding)
            if frame is None:
                frame = frames[conn.encoding] = encode(message, conn.encoding)
            conn.push(frame)


class Guards:
    """Which accounts hold a promise of a cancel when their connection ends: sessions logged
    on with ``cancelOnDisconnect`` (counted per account) and armed dead-man switches. Every
    change is a journal note, so the promises survive a crash (docs/protocol.md §3, §7)."""

    def __init__(self) -> None:
        self.cod: dict[int, int] = {}  # account -> live sessions that asked for it
        self.dead_man: set[int] = set()  # accounts whose switch is armed

    def apply(self, note: Any) -> None:
        """Replay one note (a journal's, or one just made)."""
        if not isinstance(note, dict):
            return  # another owner's note
        kind = note.get("g")
        if kind == "cod":
            n = self.cod.get(note["a"], 0) + note["d"]
            if n > 0:
                self.cod[note["a"]] = n
            else:
                self.cod.pop(note["a"], None)
        elif kind == "dms":
            (self.dead_man.add if note["on"] else self.dead_man.discard)(note["a"])
        elif kind == "reset":
            self.cod.clear()
            self.dead_man.clear()

    def accounts(self) -> list[int]:
        """The accounts whose orders a crash leaves owed a cancel."""
        return sorted(set(self.cod) | self.dead_man)

    def state(self) -> dict[str, Any]:
        """For a snapshot (msgpack: no integer map keys)."""
        return {"cod": sorted(self.cod.items()), "dms": sorted(self.dead_man)}

    @classmethod
    def from_state(cls, state: Any) -> Guards:
        guards = cls()
        if isinstance(state, dict):
            guards.cod = {int(a): int(n) for a, n in state.get("cod", [])}
            guards.dead_man = {int(a) for a in state.get("dms", [])}
        return guards
