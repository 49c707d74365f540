"""The command journal: append-only, framed, checksummed records of msgpack.

File format
-----------
The file starts with the 8-byte magic ``b"GAEMIJ1\\n"``. Then records follow, each::

    u32 little-endian  payload length n
    u32 little-endian  CRC-32 (zlib) of the payload
    n bytes            payload: msgpack

The first record is the header (the venue's configuration: the market specs); every later
record is one command as ``[code, *fields]`` (``risk.commands.encode``). Nothing is ever
rewritten; recovery only truncates a torn tail.

A torn tail is what a crash while appending leaves: a frame header or a payload cut short,
a last record whose checksum does not match, or a run of zero bytes to the end of the file
(what a power loss often leaves when the file's size reached the disk before its data).
``scan`` stops there and reports the byte offset of the end of the last good record, so the
writer can truncate and append again; the recovery keeps the dropped bytes in a file beside
the journal (``risk/recovery.py``). A bad checksum *followed by more data*, or a length that
runs past the end of the file while a good record follows it, is not a torn tail but
corruption, and raises ``JournalCorrupt`` naming the byte offset: a journal is never silently
misread or cut short.

Records after the header are commands (``[code, *fields]``) or notes (``{"note": ...}``: what
the gateway must remember across a crash, such as which accounts asked for
cancel-on-disconnect). The venue replays commands and hands notes back to its owner.

Durability: ``append`` writes into the file object (the OS has it after ``flush``);
``sync`` flushes and fsyncs. The gateway syncs once per batch of requests before it
acknowledges them.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import msgpack

__all__ = ["MAGIC", "JournalCorrupt", "JournalScan", "JournalWriter", "frame_at", "prefix_crc",
           "read_records", "scan"]

MAGIC = b"GAEMIJ1\n"
_FRAME = struct.Struct("<II")
MAX_RECORD = 16 * 1024 * 1024


class JournalCorrupt(Exception):
    """The journal is damaged somewhere other than its tail."""


def _frame(obj: Any) -> bytes:
    payload: bytes = msgpack.packb(obj, use_bin_type=True)
    return _FRAME.pack(len(payload), zlib.crc32(payload)) + payload


@dataclass(slots=True)
class JournalScan:
    """What ``scan`` read: the good ``records`` from ``start``, the byte offset where they
    end, the start and CRC of the last good record (``last_start`` is None when none was read),
    the file's size (``end < size``: a torn tail follows), and the CRC-32 of the whole file
    up to ``end`` (``prefix_crc``, when the scan started at the beginning or was given the
    CRC up to its start)."""

    records: list[Any]
    start: int
    end: int
    size: int
    last_start: int | None
    last_crc: int
    prefix_crc: int | None = None

    @property
    def torn(self) -> bool:
        return self.end != self.size


def scan(path: str | os.PathLike[str], start: int | None = None,
         crc: int | None = None) -> JournalScan:
    """The good records from byte offset ``start`` (default: the first record after the
    magic) to the torn tail or the end of the file.

    Raises ``JournalCorrupt`` for a wrong magic or damage before the tail. ``start`` must be
    the offset of a record boundary (the ``end`` of an earlier scan, or a snapshot's);
    ``crc``: the CRC-32 of the file up to ``start``, to get ``prefix_crc`` at the end."""
    with open(path, "rb") as f:
        head = f.read(len(MAGIC))
        if head != MAGIC:
            rest = f.read(1)
            if not rest and MAGIC.startswith(head):  # torn inside the magic: an empty journal
                return JournalScan([], 0, 0, len(head), None, 0)
            raise JournalCorrupt(f"{path}: not a Gaemi journal")
        offset = len(MAGIC) if start is None else start
        if start is None:
            crc = zlib.crc32(MAGIC)
        f.seek(offset)
        data = f.read()
    records: list[Any] = []
    last_start: int | None = None
    last_crc = 0
    end = offset
    for record, rec_start, rec_crc, rec_end in _walk(data, offset, path):
        records.append(record)
        last_start, last_crc, end = rec_start, rec_crc, rec_end
    prefix = None if crc is None else zlib.crc32(memoryview(data)[:end - offset], crc)
    return JournalScan(records, offset, end, offset + len(data), last_start, last_crc, prefix)


def prefix_crc(path: str | os.PathLike[str], length: int) -> int | None:
    """The CRC-32 of the file's first ``length`` bytes (None if it is shorter)."""
    crc = 0
    left = length
    with open(path, "rb") as f:
        while left:
            chunk = f.read(min(left, 1 << 22))
            if not chunk:
                return None
            crc = zlib.crc32(chunk, crc)
            left -= len(chunk)
    return crc


def read_records(path: str | os.PathLike[str]) -> tuple[list[Any], int, bool]:
    """All good records, the byte offset where they end, and whether a torn tail was dropped.

    Raises ``JournalCorrupt`` for a wrong magic or damage before the tail.
    """
    result = scan(path)
    return result.records, result.end, result.torn


def _walk(data: bytes, base: int, path: object) -> Iterator[tuple[Any, int, int, int]]:
    """(record, start, crc, end) of each good record of ``data``, which starts at file offset
    ``base``; offsets in messages and results are file offsets."""
    total = len(data)
    offset = 0
    while offset < total:
        if offset + _FRAME.size > total:
            return  # torn frame header
        length, crc = _FRAME.unpack_from(data, offset)
        if length == 0 and data.count(0, offset) == total - offset:
            return  # zeros to the end of the file: a torn tail (space allocated, never written)
        start, end = offset + _FRAME.size, offset + _FRAME.size + length
        if end > total:
            # a torn append, unless a whole good record follows: then this length is damaged
            if _good_frame_after(data, offset + 1):
                raise JournalCorrupt(f"{path}: damaged record length at byte {base + offset}")
            return
        if length > MAX_RECORD or length == 0:
            raise JournalCorrupt(f"{path}: impossible record length {length} at byte "
                                 f"{base + offset}")
        payload = data[start:end]
        if zlib.crc32(payload) != crc:
            if end == total:
                return  # the last record is torn
            raise JournalCorrupt(f"{path}: checksum mismatch at byte {base + offset}, "
                                 "data follows")
        try:
            record = msgpack.unpackb(payload, raw=False, strict_map_key=False)
        except (ValueError, msgpack.ExtraData) as exc:
            raise JournalCorrupt(f"{path}: undecodable record at byte {base + offset}: "
                                 f"{exc}") from None
        yield record, base + offset, crc, base + end
        offset = end


def _good_frame_after(data: bytes, start: int) -> bool:
    """Whether a complete frame with a matching checksum starts anywhere at or after
    ``start`` (a torn tail has none: it is the last thing written)."""
    total = len(data)
    for offset in range(start, total - _FRAME.size + 1):
        length, crc = _FRAME.unpack_from(data, offset)
        end = offset + _FRAME.size + length
        if 0 < length <= MAX_RECORD and end <= total \
                and zlib.crc32(data[offset + _FRAME.size:end]) == crc:
            return True
    return False


def frame_at(path: str | os.PathLike[str], offset: int) -> tuple[int, int] | None:
    """(payload length, CRC) of the frame header at ``offset``, or None past the end."""
    with open(path, "rb") as f:
        f.seek(offset)
        head = f.read(_FRAME.size)
    if len(head) < _FRAME.size:
        return None
    length, crc = _FRAME.unpack(head)
    return length, crc


class JournalWriter:
    """Appends framed records to a journal file, creating it (with its magic) if needed.

    ``truncate_at``: drop everything after this byte offset first (a torn tail found by
    ``scan``). ``last``: the (start, CRC) of the last record already in the file, and
    ``crc``: the CRC-32 of the file up to ``truncate_at``, so that ``position`` names where a
    snapshot taken now sits.
    """

    def __init__(self, path: str | os.PathLike[str], *, truncate_at: int | None = None,
                 last: tuple[int | None, int] = (None, 0), crc: int = 0) -> None:
        self.path = Path(path)
        new = not self.path.exists() or self.path.stat().st_size == 0 or truncate_at == 0
        self._file: BinaryIO = open(self.path, "r+b" if not new else "wb")  # noqa: SIM115
        if new:
            self._file.write(MAGIC)
            self.last_start: int | None = None
            self.last_crc = 0
            self.crc = zlib.crc32(MAGIC)
        else:
            if truncate_at is not None:
                self._file.truncate(truncate_at)
            self._file.seek(0, os.SEEK_END)
            self.last_start, self.last_crc = last
            self.crc = crc
        self.offset = self._file.tell()
        self.synced = -1  # the offset the last sync made durable (-1: none yet)
        self.records_written = 0

    def append(self, record: Any) -> None:
        frame = _frame(record)
        self._file.write(frame)
        self.last_start = self.offset
        self.last_crc = _FRAME.unpack_from(frame)[1]
        self.offset += len(frame)
        self.crc = zlib.crc32(frame, self.crc)
        self.records_written += 1

    @property
    def position(self) -> tuple[int, int | None, int, int]:
        """(end offset, start of the last record, its CRC, CRC-32 of the whole file so far):
        where a snapshot taken now sits."""
        return self.offset, self.last_start, self.last_crc, self.crc

    def rollback(self, position: tuple[int, int | None, int, int]) -> None:
        """Remove every record appended after ``position`` (an earlier ``position``): they
        belong to a command that failed and must not be replayed."""
        self._file.flush()
        self._file.truncate(position[0])
        self._file.seek(position[0])
        self.offset, self.last_start, self.last_crc, self.crc = position
        self.synced = -1

    def flush(self) -> None:
        self._file.flush()

    def sync(self) -> None:
        """Flush and fsync; nothing to do when nothing was appended since the last sync."""
        if self.offset == self.synced:
            return
        self._file.flush()
        os.fsync(self._file.fileno())
        self.synced = self.offset

    def close(self) -> None:
        if not self._file.closed:
            self._file.flush()
            self._file.close()

    @property
    def closed(self) -> bool:
        return self._file.closed
