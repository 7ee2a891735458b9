"""Hybrid logical clock (Kulkarni et al., 2014): 48-bit milliseconds and a 16-bit counter in one int.

Packing both halves into one int keeps stamps cheap to compare and to encode as varints, and
keeps the order of stamps the order of ints.
"""

from __future__ import annotations

import struct
import threading
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from notifyd.store.errors import ClockSkewError, CorruptFileError, StoreError
from notifyd.store.files import atomic_write

COUNTER_BITS = 16
COUNTER_MASK = (1 << COUNTER_BITS) - 1
MAX_MS = (1 << 48) - 1

#: Remote stamps further ahead of local physical time than this are refused.
DEFAULT_MAX_OFFSET_MS = 500
#: How far ahead of issued stamps the persisted upper bound is reserved.  A restart resumes from
#: the bound, so this is also the most a restarted node's stamps can run ahead of its wall clock;
#: it stays below DEFAULT_MAX_OFFSET_MS so peers never refuse a freshly restarted node.
DEFAULT_RESERVE_MS = 200

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_BOUND = struct.Struct(">QI")


def pack(ms: int, counter: int = 0) -> int:
    if not 0 <= ms <= MAX_MS:
        raise StoreError(f"HLC milliseconds out of range: {ms}")
    if not 0 <= counter <= COUNTER_MASK:
        raise StoreError(f"HLC counter out of range: {counter}")
    return (ms << COUNTER_BITS) | counter


def unpack(stamp: int) -> tuple[int, int]:
    return stamp >> COUNTER_BITS, stamp & COUNTER_MASK


def physical_ms(stamp: int) -> int:
    return stamp >> COUNTER_BITS


def ms_from_datetime(value: datetime | str) -> int:
    """Milliseconds since the epoch; ISO-8601 with ``Z`` or an offset.  Naive times are read as UTC."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as exc:
            raise StoreError(f"occurred_at is not an ISO-8601 time: {value!r}") from exc
    if not isinstance(value, datetime):
        raise StoreError(f"occurred_at must be an ISO-8601 string or a datetime, got {type(value).__name__}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    # Integer division of timedeltas avoids float rounding on the last millisecond.
    return (value - _EPOCH) // timedelta(milliseconds=1)


def iso_from_ms(ms: int) -> str:
    dt = _EPOCH + timedelta(milliseconds=ms)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


class HybridClock:
    """Kulkarni's send (:meth:`now`) and receive (:meth:`update`) rules over an injectable clock.

    ``clock`` returns seconds as a float (``time.time`` by default), so tests can step it back.
    With ``bound_path`` set, an upper bound of issued wall time is reserved ahead in that file
    before any stamp beyond it is handed out; a restart resumes at the bound, so no stamp is ever
    issued twice even when the wall clock has gone backwards across the restart.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        max_offset_ms: int = DEFAULT_MAX_OFFSET_MS,
        bound_path: Path | None = None,
        reserve_ms: int = DEFAULT_RESERVE_MS,
        fsync: bool = True,
    ) -> None:
        self._clock = clock
        self.max_offset_ms = max_offset_ms
        self._bound_path = bound_path
        self._reserve_ms = reserve_ms
        self._fsync = fsync
        self._lock = threading.Lock()
        self._last = 0
        self._bound_ms = 0
        if bound_path is not None:
            self._bound_ms = _read_bound(bound_path)
            # Resume at the reserved bound: everything below it may already have been issued.
            self._last = pack(self._bound_ms, 0)

    def physical_now_ms(self) -> int:
        return int(self._clock() * 1000)

    @property
    def last(self) -> int:
        return self._last

    def now(self) -> int:
        """Send rule: a stamp greater than every stamp issued or observed so far."""
        with self._lock:
            pt = self.physical_now_ms()
            last_ms, last_c = unpack(self._last)
            stamp = pack(pt, 0) if pt > last_ms else _bump(last_ms, last_c)
            self._commit(stamp)
            return stamp

    def update(self, remote: int) -> int:
        """Receive rule.  Raises :class:`ClockSkewError`, changing nothing, if ``remote`` is too far ahead."""
        with self._lock:
            pt = self.physical_now_ms()
            remote_ms, remote_c = unpack(remote)
            if remote_ms - pt > self.max_offset_ms:
                raise ClockSkewError(remote_ms, pt, self.max_offset_ms)
            last_ms, last_c = unpack(self._last)
            new_ms = max(last_ms, remote_ms, pt)
            if new_ms == last_ms == remote_ms:
                stamp = _bump(new_ms, max(last_c, remote_c))
            elif new_ms == last_ms:
                stamp = _bump(new_ms, last_c)
            elif new_ms == remote_ms:
                stamp = _bump(new_ms, remote_c)
            else:
                stamp = pack(new_ms, 0)
            self._commit(stamp)
            return stamp

    def observe(self, stamp: int) -> None:
        """Fold a stamp made elsewhere (e.g. from an event's time) in, so later stamps sort after it."""
        with self._lock:
            if stamp > self._last:
                self._commit(stamp)

    def _commit(self, stamp: int) -> None:
        self._last = stamp
        ms = stamp >> COUNTER_BITS
        if self._bound_path is not None and ms >= self._bound_ms:
            # Reserve before handing the stamp out; a crash after this point resumes past it.
            self._bound_ms = ms + self._reserve_ms
            _write_bound(self._bound_path, self._bound_ms, fsync=self._fsync)


def _bump(ms: int, counter: int) -> int:
    # A full counter borrows the next millisecond rather than wrapping, so order is kept.
    if counter >= COUNTER_MASK:
        return pack(ms + 1, 0)
    return pack(ms, counter + 1)


def _read_bound(path: Path) -> int:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return 0
    if len(data) != _BOUND.size:
        raise CorruptFileError(path, f"expected {_BOUND.size} bytes, found {len(data)}")
    ms, crc = _BOUND.unpack(data)
    if zlib.crc32(data[:8]) != crc:
        raise CorruptFileError(path, "checksum mismatch")
    return int(ms)


def _write_bound(path: Path, ms: int, *, fsync: bool) -> None:
    head = struct.pack(">Q", ms)
    data = head + struct.pack(">I", zlib.crc32(head))
    atomic_write(path, data, fsync=fsync)
