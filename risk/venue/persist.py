"""Persistence of a venue: the journal's header, snapshots, and recovery (the newest valid
snapshot, then the journal after it).

Nothing here imports the ``Venue`` class: ``recover`` is given it (``venue_class``, any class
with the ``Restorable`` methods), so the venue's own ``Venue.recover`` and the public
``gaemi.risk.recovery`` both build on this module without a cycle, and ``Recovered[Venue]``
still types its venue.

Snapshots
---------
A snapshot is the venue's whole state at one journal position, written beside the journal
as ``<journal>.snap-<seq>`` (12 digits). It is a cache of the journal, never the record: the
journal alone always recovers the same state, only slower, and a snapshot that cannot be used
for any reason is skipped (with a WARNING) in favour of an older one or of the full journal.

Layout: the magic ``b"GAEMIS1\\n"``, then two parts, each ``u64 length, u32 CRC-32, bytes``
(little-endian): the metadata (msgpack) and the state (a pickle of the ``Venue``, whose books
are stored as their resting order ids in priority order and rebuilt on load). The metadata
names what the snapshot covers: ``seq``, the journal ``offset`` where the covered records end,
the CRC-32 of the journal's first ``offset`` bytes (so a snapshot is never applied to another
journal, nor to one whose covered part was damaged since), the start and CRC of the last
covered record (where appending resumes), the ``state_hash`` the loaded venue must have,
the ``code`` fingerprint of the ``risk`` sources that wrote it (a snapshot is only read by the
code that wrote it: a pickle of another version could load and then misbehave), and ``owner``:
whatever state the venue's owner keeps beside it (the gateway's session guards).

Writing is atomic: the journal is made durable up to the snapshot's position first, the
snapshot goes to a temporary file that is fsynced and renamed, then the directory is fsynced.
The pickle is the venue's own data, written by this process to a directory it owns; like
the journal, a snapshot file must not come from anyone else.

Torn tails
----------
A torn tail of the journal (see risk/journal.py) is cut off so that appends continue after
the last good record. The bytes dropped are kept in ``<journal>.torn-<offset>`` and a WARNING
names the offset, their count and the last good sequence number.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import struct
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, Self, TypeVar

import msgpack

from gaemi.risk.calendar import Session
from gaemi.risk.journal import JournalWriter, prefix_crc, scan
from gaemi.risk.markets import MarginTier, MarketSpec

__all__ = ["KEEP", "Recovered", "Restorable", "SnapshotInvalid", "TornTail", "code_fingerprint",
           "recover", "snapshot_paths", "spec_from_dict", "spec_to_dict", "write_snapshot"]

log = logging.getLogger("gaemi.recovery")

SNAPSHOT_MAGIC = b"GAEMIS1\n"
FORMAT = 1
KEEP = 3  # snapshots kept beside a journal: the newest and two to fall back on
_PART = struct.Struct("<QI")


class Restorable(Protocol):
    """What recovery needs of a venue class (``risk.venue.core.Venue`` has it)."""

    @property
    def seq(self) -> int: ...
    @property
    def time(self) -> int: ...
    @property
    def journal(self) -> JournalWriter | None: ...
    def state_hash(self) -> str: ...
    def replay(self, row: Any) -> None: ...
    def attach_journal(self, writer: JournalWriter | None) -> None: ...
    def _attach_books(self, book: str) -> None: ...
    @classmethod
    def from_header(cls, header: dict[str, Any], *, book: str = ...) -> Self: ...


V = TypeVar("V", bound=Restorable)


class SnapshotInvalid(Exception):
    """A snapshot that cannot be used (damaged, of another journal or another version)."""


@dataclass(frozen=True, slots=True)
class TornTail:
    offset: int  # where the good records end (the journal is cut here)
    size: int  # bytes dropped
    saved_to: Path  # where they were kept
    last_seq: int  # the sequence number of the last good command


@dataclass(slots=True)
class Recovered(Generic[V]):
    """What ``recover`` found: the venue (appending to its journal again), the notes journaled
    after the snapshot it started from, the owner's state stored in that snapshot (None
    without one), the snapshot used, how many commands were replayed, a torn tail dropped,
    and the snapshots that could not be used and why."""

    venue: V
    notes: list[Any] = field(default_factory=list)
    owner: Any = None
    snapshot: Path | None = None
    replayed: int = 0
    torn: TornTail | None = None
    skipped: list[tuple[Path, str]] = field(default_factory=list)


_FINGERPRINT: str | None = None


def code_fingerprint() -> str:
    """A digest of the ``risk`` package's source: the code a snapshot's pickle belongs to."""
    global _FINGERPRINT
    if _FINGERPRINT is None:
        h = hashlib.blake2b(digest_size=8)
        root = Path(__file__).resolve().parents[1]
        for path in sorted(root.rglob("*.py")):
            h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
        _FINGERPRINT = h.hexdigest()
    return _FINGERPRINT


def snapshot_paths(journal: str | os.PathLike[str]) -> list[Path]:
    """The snapshots of a journal, newest first."""
    journal = Path(journal)
    prefix = journal.name + ".snap-"
    found = [p for p in journal.parent.glob(prefix + "*")
             if p.name[len(prefix):].isdigit() and len(p.name) - len(prefix) == 12]
    return sorted(found, key=lambda p: p.name, reverse=True)


def write_snapshot(venue: Restorable, owner: Any = None, *, keep: int = KEEP) -> Path:
    """Write a snapshot of ``venue`` at its journal's current position (made durable first)
    and keep the newest ``keep``. ``owner``: msgpack-able state stored beside it."""
    writer = venue.journal
    if writer is None:
        raise ValueError("a venue without a journal has nothing to anchor a snapshot to")
    writer.sync()
    offset, last_start, last_crc, crc = writer.position
    if last_start is None:
        raise ValueError("the journal has no header record")
    meta = {"format": FORMAT, "code": code_fingerprint(), "seq": venue.seq, "offset": offset,
            "last_start": last_start, "last_crc": last_crc, "prefix_crc": crc,
            "state_hash": venue.state_hash(), "time": venue.time, "owner": owner}
    meta_bytes = msgpack.packb(meta, use_bin_type=True)
    body = pickle.dumps(venue, protocol=pickle.HIGHEST_PROTOCOL)
    path = writer.path.with_name(f"{writer.path.name}.snap-{venue.seq:012d}")
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(SNAPSHOT_MAGIC)
        for part in (meta_bytes, body):
            f.write(_PART.pack(len(part), zlib.crc32(part)))
            f.write(part)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    for old in snapshot_paths(writer.path)[keep:]:
        old.unlink(missing_ok=True)
    return path


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_parts(path: Path) -> tuple[dict[str, Any], bytes]:
    data = path.read_bytes()
    if not data.startswith(SNAPSHOT_MAGIC):
        raise SnapshotInvalid("not a Gaemi snapshot")
    offset = len(SNAPSHOT_MAGIC)
    parts = []
    for _ in range(2):
        if offset + _PART.size > len(data):
            raise SnapshotInvalid("truncated")
        length, crc = _PART.unpack_from(data, offset)
        start, end = offset + _PART.size, offset + _PART.size + length
        if end > len(data) or zlib.crc32(data[start:end]) != crc:
            raise SnapshotInvalid(f"damaged part at byte {offset}")
        parts.append(data[start:end])
        offset = end
    if offset != len(data):
        raise SnapshotInvalid("trailing bytes")
    try:
        meta = msgpack.unpackb(parts[0], raw=False)
    except Exception as exc:
        raise SnapshotInvalid(f"undecodable metadata: {exc}") from None
    if not isinstance(meta, dict):
        raise SnapshotInvalid("undecodable metadata")
    return meta, parts[1]


def _load(path: Path, journal: Path, book: str,
          venue_class: type[V]) -> tuple[V, dict[str, Any]]:
    """The venue a snapshot holds, checked against its journal and its own state hash."""
    meta, body = _read_parts(path)
    if meta.get("format") != FORMAT:
        raise SnapshotInvalid(f"format {meta.get('format')!r}, this code reads {FORMAT}")
    if meta.get("code") != code_fingerprint():
        raise SnapshotInvalid("written by other code (the journal will be replayed instead)")
    try:
        offset = meta["offset"]
        crc = prefix_crc(journal, offset)
        if crc is None:
            raise SnapshotInvalid(f"the journal ends before byte {offset}, which it covers")
        if crc != meta["prefix_crc"]:
            raise SnapshotInvalid(f"the journal's first {offset} bytes are not the ones it "
                                  "covers (another journal, or damaged since)")
        venue = pickle.loads(body)
        if not isinstance(venue, venue_class) or venue.seq != meta["seq"]:
            raise SnapshotInvalid("the state is not the venue it names")
        venue._attach_books(book)
        if venue.state_hash() != meta["state_hash"]:
            raise SnapshotInvalid(f"state hash {venue.state_hash()} != {meta['state_hash']}")
    except SnapshotInvalid:
        raise
    except Exception as exc:  # anything else wrong with it makes it unusable, not fatal
        raise SnapshotInvalid(f"{type(exc).__name__}: {exc}") from None
    return venue, meta


def recover(path: str | os.PathLike[str], *, venue_class: type[V], book: str = "auto",
            snapshots: bool = True) -> Recovered[V]:
    """Rebuild the venue of a journal and reattach the journal for appending.

    Starts from the newest snapshot that passes every check (``snapshots=False``: from the
    header), replays the journal's commands after it, collects its notes, and cuts a torn
    tail off (keeping the bytes aside). Raises ``JournalCorrupt`` for damage before the tail
    and ValueError for a journal without a header."""
    path = Path(path)
    venue: V | None = None
    snapshot: Path | None = None
    owner: Any = None
    skipped: list[tuple[Path, str]] = []
    start: int | None = None
    crc: int | None = None
    last: tuple[int | None, int] = (None, 0)
    if snapshots:
        for snap in snapshot_paths(path):
            try:
                venue, meta = _load(snap, path, book, venue_class)
            except SnapshotInvalid as exc:
                log.warning("snapshot %s not used: %s", snap, exc)
                skipped.append((snap, str(exc)))
                continue
            snapshot, owner = snap, meta["owner"]
            start, crc = meta["offset"], meta["prefix_crc"]
            last = (meta["last_start"], meta["last_crc"])
            break
    part = scan(path, start, crc)
    rows = part.records
    if venue is None:
        if not rows:
            raise ValueError(f"{path}: the journal has no header")
        venue = venue_class.from_header(rows[0], book=book)
        rows = rows[1:]
    result = Recovered(venue, owner=owner, snapshot=snapshot, skipped=skipped)
    for row in rows:
        if isinstance(row, dict):
            if "note" not in row:
                raise ValueError(f"{path}: a record that is neither a command nor a note")
            result.notes.append(row["note"])
        else:
            venue.replay(row)
            result.replayed += 1
    if part.last_start is not None:
        last = (part.last_start, part.last_crc)
    if part.torn:
        result.torn = _keep_torn_tail(path, part.end, part.size, venue.seq)
    assert part.prefix_crc is not None
    venue.attach_journal(JournalWriter(path, truncate_at=part.end, last=last,
                                       crc=part.prefix_crc))
    return result


def _keep_torn_tail(path: Path, end: int, size: int, last_seq: int) -> TornTail:
    with open(path, "rb") as f:
        f.seek(end)
        dropped = f.read(size - end)
    saved = path.with_name(f"{path.name}.torn-{end}")
    n = 1
    while saved.exists():
        n += 1
        saved = path.with_name(f"{path.name}.torn-{end}-{n}")
    with open(saved, "wb") as f:
        f.write(dropped)
        f.flush()
        os.fsync(f.fileno())
    log.warning("journal %s: dropped a torn tail of %d bytes at byte %d (kept in %s); the "
                "last good command is seq %d", path, len(dropped), end, saved.name, last_seq)
    return TornTail(end, len(dropped), saved, last_seq)


# -- the journal's header: market specs as plain values ---------------------------------------

def spec_to_dict(spec: MarketSpec) -> dict[str, Any]:
    data = asdict(spec)
    data.pop("cums", None)
    return data


def spec_from_dict(data: dict[str, Any]) -> MarketSpec:
    data = dict(data)
    data["tiers"] = tuple(MarginTier(**t) for t in data["tiers"])
    if data.get("session") is not None:
        session = dict(data["session"])
        session["weekdays"] = tuple(session["weekdays"])
        data["session"] = Session(**session)
    return MarketSpec(**data)
