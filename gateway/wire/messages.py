"""Message shapes of the wire protocol (docs/protocol.md): requests, responses, pushes, and the
strict reader of a request's arguments. What a message means to the venue (the commands an op
becomes) is the gateway's: gateway/commands.py. This module knows nothing of the venue.

Requests are ``{"id": int | text, "op": text, "args": map}``; responses are
``{"id", "ok": true, "result": ...}`` or ``{"id", "ok": false, "error": {"code", "msg"}}``;
pushes are ``{"ch", "seq", "prev", "data"}``. Arguments are checked strictly: a missing,
unknown or wrongly typed argument is a ``BAD_ARGUMENT`` error naming it, so a client learns
its mistake instead of having a field silently ignored.

Names follow the vocabulary traders know from Binance and Bybit (``side: "BUY"``,
``timeInForce: "GTC" | "IOC" | "FOK" | "POST_ONLY"``, ``reduceOnly``, ``clientOrderId``);
prices are integer ticks and sizes integer lots of the instrument (``instruments`` gives
each market's tick and lot), money integer micro-dollars.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gaemi.gateway.wire.codec import ProtocolError, request_id
from gaemi.gateway.wire.errors import GatewayCode as G

__all__ = ["ADMIN_OPS", "MAX_BATCH", "OPS", "ORDER_OPS", "PRIVATE_OPS", "PUBLIC_OPS", "Args",
           "Request", "error", "ok", "parse_request", "push"]

PUBLIC_OPS = frozenset({"session.logon", "ping", "instruments", "subscribe", "unsubscribe",
                        "snapshot.book"})
PRIVATE_OPS = frozenset({"order.place", "order.cancel", "order.amend", "order.cancelAll",
                         "order.batch", "session.cancelAllAfter", "account.balance",
                         "account.positions", "account.openOrders", "account.setLeverage",
                         "account.setMarginMode", "session.logout"})
ADMIN_OPS = frozenset({"admin.setIndex", "admin.deposit", "admin.setStatus"})
ORDER_OPS = frozenset({"order.place", "order.cancel", "order.amend", "order.cancelAll"})
OPS = PUBLIC_OPS | PRIVATE_OPS | ADMIN_OPS
MAX_BATCH = 20

@dataclass(frozen=True, slots=True)
class Request:
    id: int | str
    op: str
    args: dict[str, Any]


def parse_request(obj: dict[str, Any]) -> Request:
    """The request a decoded message carries; ProtocolError (8002/8003) otherwise."""
    rid = request_id(obj)
    if rid is None:
        raise ProtocolError(G.BAD_REQUEST, "id: an integer or 1-64 characters of text")
    op = obj.get("op")
    if not isinstance(op, str):
        raise ProtocolError(G.BAD_REQUEST, "op: text")
    if op not in OPS:
        raise ProtocolError(G.UNKNOWN_OP, f"unknown op {op[:40]!r}")
    args = obj.get("args", {})
    if not isinstance(args, dict):
        raise ProtocolError(G.BAD_REQUEST, "args: a map")
    extra = set(obj) - {"id", "op", "args"}
    if extra:
        raise ProtocolError(G.BAD_REQUEST, f"unknown field {sorted(extra)[0][:40]!r}")
    return Request(rid, op, args)


def ok(rid: int | str | None, result: Any) -> dict[str, Any]:
    return {"id": rid, "ok": True, "result": result}


def error(rid: int | str | None, code: int, msg: str) -> dict[str, Any]:
    return {"id": rid, "ok": False, "error": {"code": int(code), "msg": msg}}


def push(channel: str, seq: int, data: Any) -> dict[str, Any]:
    """A push on ``channel``: ``prev`` is the channel's previous ``seq`` (gap detection)."""
    return {"ch": channel, "seq": seq, "prev": seq - 1, "data": data}


class Args:
    """Strict argument reader: every argument must be read once; leftovers are an error."""

    def __init__(self, args: dict[str, Any]) -> None:
        self._args = args
        self._seen: set[str] = set()

    def get(self, name: str, kind: type | tuple[type, ...], *, required: bool = True,
            default: Any = None) -> Any:
        self._seen.add(name)
        if name not in self._args or self._args[name] is None:
            if required:
                raise ProtocolError(G.BAD_ARGUMENT, f"{name}: required")
            return default
        value = self._args[name]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds:
            raise ProtocolError(G.BAD_ARGUMENT, f"{name}: expected {_names(kinds)}")
        if not isinstance(value, kinds):
            raise ProtocolError(G.BAD_ARGUMENT, f"{name}: expected {_names(kinds)}")
        return value

    def choice(self, name: str, table: dict[str, Any], *, required: bool = True,
               default: str | None = None) -> Any:
        value = self.get(name, str, required=required, default=default)
        if value is None:
            return None
        if value not in table:
            raise ProtocolError(G.BAD_ARGUMENT, f"{name}: one of {', '.join(table)}")
        return table[value]

    def done(self) -> None:
        extra = set(self._args) - self._seen
        if extra:
            raise ProtocolError(G.BAD_ARGUMENT, f"unknown argument {sorted(extra)[0][:40]!r}")


def _names(kinds: tuple[type, ...]) -> str:
    return " or ".join({int: "integer", str: "text", bool: "boolean", list: "list",
                        dict: "map"}.get(k, k.__name__) for k in kinds)


