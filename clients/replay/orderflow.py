"""Gaemi's own order-flow format: timestamped wire requests, in JSONL or msgpack.

Theory of operation
-------------------
A flow is a sequence of records, each one request a client (or the operator) sent::

    {"ts": <ns since the Unix epoch, int>, "account": <int>, "op": <text>, "args": {...}}

``op`` and ``args`` are exactly the wire protocol's (gateway/wire/messages.py,
docs/protocol.md): ``order.place``, ``order.cancel``, ``order.amend``, ``order.cancelAll``
(``account`` is the trading account), and the operator's ``admin.setIndex`` {symbol, price},
``admin.deposit`` {accountId, amount} and ``admin.setStatus`` {symbol, status} (``account``
is not used: write 0). Time is implicit: a record's ``ts`` is when it happened, ``ts`` never
decreases, and the applier moves the venue's clock to it before the request runs.

Two encodings carry the same records: JSONL (one JSON object per line, UTF-8, ``\\n``) and
msgpack (a stream of maps, no framing: one map follows the next). Either may be gzip-compressed
(by the ``.gz`` suffix). The writers emit the keys in the order above and ``args`` as given, so
JSONL -> msgpack -> JSONL reproduces the bytes.

Reading is strict, like the gateway's decoder: integers only (no floats anywhere), no unknown
keys, an op's arguments checked by the wire's own mapping; any fault is an ``OrderFlowError``
naming the line (JSONL) or the record number and byte offset (msgpack).

``apply(records, venue)`` feeds a ``risk.Venue`` in process: ``AdvanceTime(ts)`` when the
clock moves, then the request's command (``gaemi.gateway.commands.order_command`` for order
ops, the admin mapping below for the rest), and returns the events of every record.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import msgpack
import orjson

from gaemi.gateway.commands import admin_command, order_command
from gaemi.gateway.wire.codec import ProtocolError
from gaemi.risk import commands as C

__all__ = [
    "ADMIN_OPS",
    "ORDER_OPS",
    "Applied",
    "FlowRecord",
    "OrderFlowError",
    "apply",
    "read",
    "read_jsonl",
    "read_msgpack",
    "write_jsonl",
    "write_msgpack",
]

ORDER_OPS = ("order.place", "order.cancel", "order.amend", "order.cancelAll")
ADMIN_OPS = ("admin.setIndex", "admin.deposit", "admin.setStatus")
_KEYS = ("ts", "account", "op", "args")
_MAX_DEPTH = 6
_INT64 = 2**63


class OrderFlowError(ValueError):
    """A record that is not valid order flow. ``line`` is the 1-based line (JSONL) or record
    number (msgpack); ``offset`` the record's byte offset in a msgpack stream."""

    def __init__(self, line: int, msg: str, *, offset: int | None = None) -> None:
        where = f"line {line}" if offset is None else f"record {line} (byte {offset})"
        super().__init__(f"{where}: {msg}")
        self.line = line
        self.offset = offset
        self.msg = msg


@dataclass(frozen=True, slots=True)
class FlowRecord:
    """One request of a flow (module docstring)."""

    ts: int
    account: int
    op: str
    args: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"ts": self.ts, "account": self.account, "op": self.op, "args": self.args}

    def command(self) -> Any:
        """The venue command; ``ProtocolError`` for arguments the wire would refuse."""
        if self.op in ORDER_OPS:
            return order_command(self.op, self.args, self.account)
        return admin_command(self.op, self.args)


def _plain(value: Any, depth: int = 0) -> str | None:
    """Why ``value`` is not plain flow data (ints, text, bools, null, lists, maps), or None."""
    if depth > _MAX_DEPTH:
        return "nested too deeply"
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return None
    if isinstance(value, int):
        return None if -_INT64 <= value < _INT64 else "integer out of int64 range"
    if isinstance(value, float):
        return "numbers are integers (ticks, lots, micro-dollars, nanoseconds)"
    if isinstance(value, list):
        return next((w for w in (_plain(v, depth + 1) for v in value) if w), None)
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            return "map keys are text"
        return next((w for w in (_plain(v, depth + 1) for v in value.values()) if w), None)
    return f"unsupported value {type(value).__name__}"


def _record(obj: Any, previous_ts: int | None) -> FlowRecord:
    """Validate one decoded object; ValueError/ProtocolError with the reason."""
    if not isinstance(obj, dict):
        raise ValueError("a record is a map")
    missing = [k for k in _KEYS if k not in obj]
    if missing:
        raise ValueError(f"missing {missing[0]!r}")
    extra = sorted(set(obj) - set(_KEYS))
    if extra:
        raise ValueError(f"unknown key {str(extra[0])[:40]!r}")
    why = _plain(obj)
    if why:
        raise ValueError(why)
    ts, account, op, args = (obj[k] for k in _KEYS)
    if isinstance(ts, bool) or not isinstance(ts, int) or ts < 0:
        raise ValueError("ts: a non-negative integer of nanoseconds")
    if previous_ts is not None and ts < previous_ts:
        raise ValueError(f"ts {ts} is before the previous record's {previous_ts}")
    if isinstance(account, bool) or not isinstance(account, int) or account < 0:
        raise ValueError("account: a non-negative integer")
    if not isinstance(op, str) or op not in ORDER_OPS + ADMIN_OPS:
        raise ValueError(f"op: one of {', '.join(ORDER_OPS + ADMIN_OPS)}")
    if not isinstance(args, dict):
        raise ValueError("args: a map")
    record = FlowRecord(ts, account, op, args)
    record.command()  # the wire's own argument check
    return record


def _checked(n: int, obj: Any, previous: int | None, offset: int | None = None) -> FlowRecord:
    try:
        return _record(obj, previous)
    except ProtocolError as exc:
        raise OrderFlowError(n, f"{obj.get('op')}: {exc.msg}", offset=offset) from None
    except ValueError as exc:
        raise OrderFlowError(n, str(exc), offset=offset) from None


def _open(path: Path, mode: str) -> IO[bytes]:
    if path.suffix == ".gz":
        return gzip.open(path, mode)  # type: ignore[return-value]
    return open(path, mode)


# -- JSONL ---------------------------------------------------------------------------------------


def read_jsonl(source: Path | str | IO[bytes]) -> Iterator[FlowRecord]:
    """Records of a JSONL flow (a path, ``.gz`` allowed, or a binary file); blank lines are
    skipped. ``OrderFlowError`` names the first bad line."""
    if isinstance(source, (str, Path)):
        with _open(Path(source), "rb") as f:
            yield from read_jsonl(f)
        return
    previous = None
    for n, line in enumerate(source, 1):
        if not line.strip():
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise OrderFlowError(n, f"not JSON: {exc}") from None
        record = _checked(n, obj, previous)
        previous = record.ts
        yield record


def write_jsonl(records: Iterable[FlowRecord], target: Path | str | IO[bytes]) -> int:
    """Write records as JSONL; returns how many."""
    if isinstance(target, (str, Path)):
        with _open(Path(target), "wb") as f:
            return write_jsonl(records, f)
    n = 0
    for record in records:
        target.write(orjson.dumps(record.as_dict()) + b"\n")
        n += 1
    return n


# -- msgpack -------------------------------------------------------------------------------------


def read_msgpack(source: Path | str | IO[bytes]) -> Iterator[FlowRecord]:
    """Records of a msgpack flow (a stream of maps). ``OrderFlowError`` names the first bad
    record by number and byte offset."""
    if isinstance(source, (str, Path)):
        with _open(Path(source), "rb") as f:
            yield from read_msgpack(f)
        return
    unpacker = msgpack.Unpacker(source, raw=False, strict_map_key=True, max_bin_len=0,
                                max_ext_len=0, use_list=True)
    previous = None
    n = 0
    while True:
        offset = unpacker.tell()
        n += 1
        try:
            obj = unpacker.unpack()
        except msgpack.OutOfData:
            try:
                unpacker.read_bytes(1)  # b"" at a clean end of the stream
            except ValueError:  # the unpacker holds an incomplete object
                raise OrderFlowError(n, "truncated record", offset=offset) from None
            return
        except Exception as exc:  # any decoder failure is a malformed record
            raise OrderFlowError(n, f"not msgpack: {type(exc).__name__}: {exc}",
                                 offset=offset) from None
        record = _checked(n, obj, previous, offset)
        previous = record.ts
        yield record


def write_msgpack(records: Iterable[FlowRecord], target: Path | str | IO[bytes]) -> int:
    """Write records as a msgpack stream; returns how many."""
    if isinstance(target, (str, Path)):
        with _open(Path(target), "wb") as f:
            return write_msgpack(records, f)
    packer = msgpack.Packer(use_bin_type=True)
    n = 0
    for record in records:
        target.write(packer.pack(record.as_dict()))
        n += 1
    return n


def read(path: Path | str) -> Iterator[FlowRecord]:
    """Read a flow by its suffix: ``.jsonl`` or ``.msgpack`` (either + ``.gz``)."""
    path = Path(path)
    name = path.name.removesuffix(".gz")
    if name.endswith(".jsonl"):
        return read_jsonl(path)
    if name.endswith((".msgpack", ".mpk")):
        return read_msgpack(path)
    raise ValueError(f"{path}: a flow file ends in .jsonl or .msgpack (optionally .gz)")


# -- applying a flow to a venue ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Applied:
    """One record and the events the venue returned for it (time advance first, if any)."""

    record: FlowRecord
    events: list[Any]


def apply(records: Iterable[FlowRecord], venue: Any) -> list[Applied]:
    """Feed a ``risk.Venue``: ``AdvanceTime(ts)`` whenever a record is later than the venue's
    clock, then the record's command. A record before the venue's clock is an
    ``OrderFlowError`` (the venue never goes back in time)."""
    out = []
    for n, record in enumerate(records, 1):
        events: list[Any] = []
        if record.ts > venue.time:
            events.extend(venue.submit(C.AdvanceTime(record.ts)))
        elif record.ts < venue.time:
            raise OrderFlowError(n, f"ts {record.ts} is before the venue's time {venue.time}")
        try:
            command = record.command()
        except ProtocolError as exc:
            raise OrderFlowError(n, f"{record.op}: {exc.msg}") from None
        events.extend(venue.submit(command))
        out.append(Applied(record, events))
    return out
