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
or a last record whose checksum does not match. ``read_records`` stops there and reports the
byte offset of the end of the last good record, so the writer can truncate and append again.
A bad checksum *followed by more data*, or a length that runs past the end of the file while a
good record follows it, is not a torn tail but corruption, and raises ``JournalCorrupt``: a
journal is never silently misread or cut short.

Durability: ``append`` writes into the file object (the OS has it after ``flush``);
``sync`` flushes and fsyncs. The gateway syncs once per batch of requests before it
acknowledges them.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import msgpack


__all__ = ["MAGIC", "JournalCorrupt", "JournalWriter", "read_records"]

MAGIC = b"GAEMIJ1\n"
_FRAME = struct.Struct("<II")
MAX_RECORD = 16 * 1024 * 1024


class JournalCorrupt(Exception):
    """The journal is damaged somewhere other than its tail."""


def _frame(obj: Any) -> bytes:
    payload = msgpack.packb(obj, use_bin_type=True)
    return _FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def read_records(path: str | os.PathLike[str]) -> tuple[list[Any], int, bool]:
    """All good records, the byte offset where they end, and whether a torn tail was dropped.

    Raises ``JournalCorrupt`` for a wrong magic or damage before the tail.
    """
    data = Path(path).read_bytes()
    if not data.startswith(MAGIC):
        if MAGIC.startswith(data):  # torn inside the magic itself: an empty journal
            return [], 0, bool(data)
        raise JournalCorrupt(f"{path}: not a Gaemi journal")
    records = []
    offset = len(MAGIC)
    for record, end in _walk(data, offset, path):
        records.append(record)
        offset = end
    return records, offset, offset != len(data)


def _walk(data: bytes, offset: int, path: object) -> Iterator[tuple[Any, int]]:
    total = len(data)
    while offset < total:
        if offset + _FRAME.size > total:
            return  # torn frame header
        length, crc = _FRAME.unpack_from(data, offset)
        start, end = offset + _FRAME.size, offset + _FRAME.size + length
        if end > total:
            # a torn append, unless a whole good record follows: then this length is damaged
            if _good_frame_after(data, offset + 1):
                raise JournalCorrupt(f"{path}: damaged record length at byte {offset}")
            return
        if length > MAX_RECORD:
            raise JournalCorrupt(f"{path}: impossible record length at byte {offset}")
        payload = data[start:end]
        if zlib.crc32(payload) != crc:
            if end == total:
                return  # the last record is torn
            raise JournalCorrupt(f"{path}: checksum mismatch at byte {offset}, data follows")
        try:
            record = msgpack.unpackb(payload, raw=False, strict_map_key=False)
        except (ValueError, msgpack.ExtraData) as exc:
            raise JournalCorrupt(f"{path}: undecodable record at byte {offset}: {exc}") from None
        yield record, end
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


class JournalWriter:
    """Appends framed records to a journal file, creating it (with its magic) if needed.

    ``truncate_at``: drop everything after this byte offset first (a torn tail found by
    ``read_records``).
    """

    def __init__(self, path: str | os.PathLike[str], *, truncate_at: int | None = None) -> None:
        self.path = Path(path)
        new = not self.path.exists() or self.path.stat().st_size == 0 or truncate_at == 0
        self._file: BinaryIO = open(self.path, "r+b" if not new else "wb")  # noqa: SIM115
        if new:
            self._file.write(MAGIC)
        else:
            if truncate_at is not None:
                self._file.truncate(truncate_at)
            self._file.seek(0, os.SEEK_END)
        self.records_written = 0

    def append(self, record: Any) -> None:
        self._file.write(_frame(record))
        self.records_written += 1

    def flush(self) -> None:
        self._file.flush()

    def sync(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if not self._file.closed:
            self._file.flush()
            self._file.close()

    @property
    def closed(self) -> bool:
        return self._file.closed
