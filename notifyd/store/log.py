"""Durability: an append-only record log with per-record CRC32, and atomic snapshots.

Log record: ``>II`` header (payload length, crc32 of payload) + payload.  A record whose header
or checksum does not hold marks a torn tail (a crash mid-append): it and everything after it
are dropped and the file is cut back, so later appends never land behind garbage.

Snapshot: magic + crc32 + zlib(msgpack([meta, state])), written to a temp file, fsynced and
renamed over the old one, then the directory is fsynced.  A crash at any point leaves either
the old or the new snapshot; replaying the log over either is harmless because merges are
idempotent.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack

from notifyd.store.codec import decode_state, encode_state
from notifyd.store.errors import CorruptFileError, StoreError
from notifyd.store.files import atomic_write
from notifyd.store.state import StoreState

_HEADER = struct.Struct(">II")
#: A record larger than this is taken as a corrupt length field, not as a 4 GiB allocation.
MAX_RECORD_BYTES = 64 * 1024 * 1024
SNAPSHOT_MAGIC = b"NTFYSNP1"


class DurableLog:
    def __init__(self, path: Path, *, fsync: bool = True) -> None:
        self.path = path
        self._fsync = fsync
        self._fd: int | None = None
        self.size = 0
        self.dropped_tail_bytes = 0

    def replay(self) -> Iterator[bytes]:
        """Yield every intact record, then cut off a torn tail.  Call once, before appending."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            data = b""
        offset = 0
        end = len(data)
        while offset + _HEADER.size <= end:
            length, crc = _HEADER.unpack_from(data, offset)
            start = offset + _HEADER.size
            if length > MAX_RECORD_BYTES or start + length > end:
                break
            payload = data[start : start + length]
            if zlib.crc32(payload) != crc:
                break
            yield payload
            offset = start + length
        self.dropped_tail_bytes = end - offset
        self._open()
        if self.dropped_tail_bytes:
            assert self._fd is not None
            os.ftruncate(self._fd, offset)
            os.fsync(self._fd)
        self.size = offset

    def _open(self) -> None:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def append(self, payload: bytes) -> None:
        self._open()
        assert self._fd is not None
        record = _HEADER.pack(len(payload), zlib.crc32(payload)) + payload
        # One write per record: a process crash leaves whole records, a power cut at worst a torn tail.
        os.write(self._fd, record)
        if self._fsync:
            os.fsync(self._fd)
        self.size += len(record)

    def sync(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)

    def truncate(self) -> None:
        self._open()
        assert self._fd is not None
        os.ftruncate(self._fd, 0)
        os.fsync(self._fd)
        self.size = 0

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def encode_snapshot(state: StoreState, meta: dict[str, Any]) -> bytes:
    body = zlib.compress(msgpack.packb([meta, encode_state(state)], use_bin_type=True), 9)
    return SNAPSHOT_MAGIC + struct.pack(">I", zlib.crc32(body)) + body


def write_snapshot(path: Path, state: StoreState, meta: dict[str, Any], *, fsync: bool = True) -> int:
    data = encode_snapshot(state, meta)
    atomic_write(path, data, fsync=fsync)
    return len(data)


def read_snapshot(path: Path) -> tuple[dict[str, Any], StoreState] | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    head = len(SNAPSHOT_MAGIC) + 4
    if len(data) < head or not data.startswith(SNAPSHOT_MAGIC):
        raise CorruptFileError(path, "not a notifyd store snapshot (bad magic)")
    (crc,) = struct.unpack_from(">I", data, len(SNAPSHOT_MAGIC))
    body = data[head:]
    if zlib.crc32(body) != crc:
        raise CorruptFileError(path, "checksum mismatch")
    try:
        meta, encoded = msgpack.unpackb(zlib.decompress(body), raw=False, strict_map_key=False)
        return meta, decode_state(encoded)
    except (zlib.error, ValueError, TypeError, StoreError, msgpack.ExtraData) as exc:
        raise CorruptFileError(path, str(exc)) from exc
