"""StatusStore: the public face of the CRDT store (events in, page status out, sync in and out)."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from notifyd.store.codec import decode_state, encode_state, pack_state, unpack_state
from notifyd.store.errors import ClockSkewError, StoreError, StoreLockedError, SyncProtocolError
from notifyd.store.events import ApplyResult, event_key, plan_event
from notifyd.store.hlc import DEFAULT_MAX_OFFSET_MS, HybridClock, physical_ms
from notifyd.store.log import DurableLog, read_snapshot, write_snapshot
from notifyd.store.state import PageState, StoreState, render_page
from notifyd.store.sync import KIND_ACK, DeltaBuffer, pack_ack, pack_message, unpack_message

#: How long a seen event id is remembered (7 days), matching NOTIFYD_EVENT_ID_TTL_S's default.
DEFAULT_EVENT_ID_TTL_S = 604_800
#: The log is folded into a new snapshot once it grows past this.
DEFAULT_SNAPSHOT_LOG_BYTES = 32 * 1024 * 1024

SNAPSHOT_FILE = "snapshot.bin"
LOG_FILE = "log.bin"
CLOCK_FILE = "hlc.bound"
LOCK_FILE = "LOCK"

Listener = Callable[[StoreState, "str | None"], None]


class StatusStore:
    """Replicated status of every page.  Thread-safe: every public method takes one lock.

    Build it with :meth:`open` (persisted in a directory) or :meth:`memory` (tests, tools).
    """

    def __init__(
        self,
        node_id: str,
        *,
        data_dir: Path | None = None,
        max_clock_offset_ms: int = DEFAULT_MAX_OFFSET_MS,
        event_id_ttl_s: int = DEFAULT_EVENT_ID_TTL_S,
        clock: Callable[[], float] = time.time,
        fsync: bool = True,
        snapshot_log_bytes: int = DEFAULT_SNAPSHOT_LOG_BYTES,
    ) -> None:
        if not node_id or not isinstance(node_id, str):
            raise StoreError(f"node_id must be a non-empty string, got {node_id!r}")
        self.node_id = node_id
        self.data_dir = data_dir
        self.max_clock_offset_ms = max_clock_offset_ms
        self.event_id_ttl_s = event_id_ttl_s
        self.snapshot_log_bytes = snapshot_log_bytes
        self._fsync = fsync
        self._lock = threading.RLock()
        self._state = StoreState()
        self._buffer = DeltaBuffer()
        self._listeners: list[Listener] = []
        self._log: DurableLog | None = None
        self._lock_fd: int | None = None
        self._closed = False
        self.loaded_records = 0
        bound = None
        if data_dir is not None:
            data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._acquire_dir_lock(data_dir)
            bound = data_dir / CLOCK_FILE
        self.clock = HybridClock(
            clock=clock, max_offset_ms=max_clock_offset_ms, bound_path=bound, fsync=fsync
        )
        if data_dir is not None:
            try:
                self._load(data_dir)
            except BaseException:
                if self._log is not None:
                    self._log.close()
                self._release_dir_lock()
                raise

    # -- construction and files ----------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        data_dir: Path | str,
        node_id: str,
        *,
        max_clock_offset_ms: int = DEFAULT_MAX_OFFSET_MS,
        event_id_ttl_s: int = DEFAULT_EVENT_ID_TTL_S,
        clock: Callable[[], float] = time.time,
        fsync: bool = True,
        snapshot_log_bytes: int = DEFAULT_SNAPSHOT_LOG_BYTES,
    ) -> StatusStore:
        """Open (creating if needed) the store in ``data_dir``: load the snapshot, replay the log."""
        return cls(
            node_id,
            data_dir=Path(data_dir),
            max_clock_offset_ms=max_clock_offset_ms,
            event_id_ttl_s=event_id_ttl_s,
            clock=clock,
            fsync=fsync,
            snapshot_log_bytes=snapshot_log_bytes,
        )

    @classmethod
    def memory(
        cls,
        node_id: str,
        *,
        max_clock_offset_ms: int = DEFAULT_MAX_OFFSET_MS,
        event_id_ttl_s: int = DEFAULT_EVENT_ID_TTL_S,
        clock: Callable[[], float] = time.time,
    ) -> StatusStore:
        """A store that keeps nothing on disk."""
        return cls(
            node_id, max_clock_offset_ms=max_clock_offset_ms, event_id_ttl_s=event_id_ttl_s, clock=clock
        )

    def _acquire_dir_lock(self, data_dir: Path) -> None:
        fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreLockedError(
                f"store directory {data_dir} is already open in another StatusStore"
            ) from None
        self._lock_fd = fd

    def _load(self, data_dir: Path) -> None:
        loaded = read_snapshot(data_dir / SNAPSHOT_FILE)
        if loaded is not None:
            meta, state = loaded
            if meta.get("node") != self.node_id:
                raise StoreError(
                    f"{data_dir / SNAPSHOT_FILE} belongs to node {meta.get('node')!r}, not {self.node_id!r}"
                )
            self._state = state
            for peer in meta.get("removed", ()):
                self._buffer.removed.add(peer)
        self._log = DurableLog(data_dir / LOG_FILE, fsync=self._fsync)
        for record in self._log.replay():
            # Merges are idempotent, so records already folded into the snapshot do no harm.
            self._state.merge_in(unpack_state(record))
            self.loaded_records += 1

    def _release_dir_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- the pipeline's API -------------------------------------------------------------------------------

    def apply_event(self, event: Mapping[str, Any]) -> ApplyResult:
        """Record one validated event; see :class:`ApplyResult` for what the flags mean."""
        with self._lock:
            self._check_open()
            plan = plan_event(
                self._state,
                event,
                node=self.node_id,
                now_ms=self.clock.physical_now_ms(),
                max_offset_ms=self.max_clock_offset_ms,
                ttl_s=self.event_id_ttl_s,
            )
            if not plan.result.duplicate:
                self._commit(plan.delta, origin=None)
                self.clock.observe(plan.result.hlc)
            return plan.result

    def seen(self, page_id: str, event_id: str) -> bool:
        """Whether this page's event id was taken here or by a peer, within the event-id TTL."""
        with self._lock:
            return self._state.seen.contains(event_key(page_id, event_id), self._now_s())

    def page_status(self, page_id: str) -> dict[str, Any]:
        with self._lock:
            return render_page(page_id, self._state.pages.get(page_id))

    def page_ids(self) -> list[str]:
        with self._lock:
            return sorted(self._state.pages)

    def remove_timeline_entry(self, page_id: str, incident_id: str, event_id: str) -> bool:
        """Observed-remove of an incident's timeline entry; a concurrent re-add elsewhere wins."""
        with self._lock:
            self._check_open()
            page = self._state.pages.get(page_id)
            inc = page.incidents.get(incident_id) if page is not None else None
            if inc is None:
                return False
            doomed = [e for e in inc.timeline.entries if e[0] == event_id]  # type: ignore[index]
            if not doomed:
                return False
            dpage = PageState()
            dinc = inc.__class__()
            for element in doomed:
                dinc.timeline.merge_in(inc.timeline.remove_delta(element))
            dpage.incidents[incident_id] = dinc
            delta = StoreState()
            delta.pages[page_id] = dpage
            self._commit(delta, origin=None)
            return True

    def export_state(self) -> StoreState:
        """A deep copy of the whole replicated state (tests compare replicas with it)."""
        with self._lock:
            return self._state.copy()

    def add_listener(self, callback: Listener) -> None:
        """``callback(effective_delta, origin)`` runs, under the store lock, after every change."""
        with self._lock:
            self._listeners.append(callback)

    # -- durability -----------------------------------------------------------------------------------------

    def snapshot(self) -> int:
        """Compact (drop expired event ids), write the snapshot atomically, truncate the log.
        Returns the snapshot's size in bytes (0 for an in-memory store)."""
        with self._lock:
            self._check_open()
            self._state.seen.expire(self._now_s())
            if self.data_dir is None or self._log is None:
                return 0
            meta = {"node": self.node_id, "removed": sorted(self._buffer.removed)}
            size = write_snapshot(self.data_dir / SNAPSHOT_FILE, self._state, meta, fsync=self._fsync)
            self._log.truncate()
            return size

    compact = snapshot

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._log is not None:
                self._log.sync()
                self._log.close()
            self._release_dir_lock()

    def __enter__(self) -> StatusStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- replication --------------------------------------------------------------------------------

    def peers(self) -> list[str]:
        with self._lock:
            return sorted(self._buffer.acks)

    def add_peer(self, peer: str) -> None:
        with self._lock:
            if peer != self.node_id:
                self._buffer.add_peer(peer)

    def remove_member(self, node_id: str) -> None:
        """Forget a replica for good: it no longer holds back delta GC, and its messages are refused."""
        with self._lock:
            self._buffer.remove_member(node_id)
            if self.data_dir is not None and not self._closed:
                self.snapshot()

    def sync_payload_for(self, peer: str) -> bytes | None:
        """What ``peer`` has not acknowledged yet (a delta group, or the full state), or None."""
        with self._lock:
            self._check_open()
            pending = self._buffer.pending_for(peer)
            if pending is None:
                return None
            kind, seq, group = pending
            body = encode_state(self._state if group is None else group)
            return pack_message(kind, self.node_id, self._buffer.incarnation, seq, self.clock.now(), body)

    def receive_sync(self, from_peer: str, payload: bytes) -> bytes:
        """Merge a peer's payload; returns the ack to send back.  Raises ``ClockSkewError`` (no
        ack, the peer will resend) if the peer's clock is too far ahead of ours."""
        return self.receive_sync_message(from_peer, unpack_message(payload))

    def receive_sync_message(self, from_peer: str, msg: list[Any]) -> bytes:
        """:meth:`receive_sync` of a payload already decoded (``sync.check_message``'s answer), as
        the API decodes it while it reads the body."""
        if msg[0] == KIND_ACK:
            raise SyncProtocolError(f"expected a sync payload from {from_peer}, got an ack")
        return self._receive(from_peer, msg)

    def receive_ack(self, from_peer: str, ack: bytes) -> None:
        msg = unpack_message(ack)
        if msg[0] != KIND_ACK:
            raise SyncProtocolError(f"expected an ack from {from_peer}, got a payload")
        with self._lock:
            self._buffer.ack(msg[1], msg[2], msg[3])

    def handle_message(self, from_peer: str, data: bytes) -> bytes | None:
        """Transport entry point: a payload gets an ack back, an ack gets nothing."""
        msg = unpack_message(data)
        if msg[0] == KIND_ACK:
            with self._lock:
                self._buffer.ack(msg[1], msg[2], msg[3])
            return None
        return self._receive(from_peer, msg)

    def _receive(self, from_peer: str, msg: list[Any]) -> bytes:
        kind, sender, incarnation, seq, clock_stamp, body = msg
        if sender != from_peer:
            raise SyncProtocolError(f"payload says it is from {sender!r} but arrived from {from_peer!r}")
        with self._lock:
            self._check_open()
            if sender in self._buffer.removed:
                raise SyncProtocolError(f"{sender!r} was removed from the membership; refusing its payload")
            if sender == self.node_id:
                raise SyncProtocolError("refusing a sync payload from this node itself")
            delta = decode_state(body)
            self._check_payload_stamps(delta)
            self.clock.update(clock_stamp)
            self._buffer.add_peer(sender)
            self._commit(delta, origin=sender)
            return pack_ack(self.node_id, incarnation, seq)

    # -- internals ----------------------------------------------------------------------------------

    def _commit(self, delta: StoreState, *, origin: str | None) -> None:
        effective = StoreState()
        if not self._state.merge_in(delta, now_s=self._now_s(), effective=effective):
            return
        if self._log is not None:
            self._log.append(pack_state(effective))
        self._buffer.push(origin, effective)
        for listener in self._listeners:
            listener(effective, origin)
        if self._log is not None and self._log.size > self.snapshot_log_bytes:
            self.snapshot()

    def _check_payload_stamps(self, delta: StoreState) -> None:
        """Refuse a payload that carries a register stamp, or a seen-id expiry, beyond our bounds.

        The envelope's clock stamp is checked by the clock; the registers inside are the peer's
        claims too. A stamp far in the future would pin a component's status until then (no real
        update could beat it), and a seen-id expiring beyond the event-id TTL would outlive every
        real record of that id. Raises ClockSkewError, changing nothing.
        """
        now_ms = self.clock.physical_now_ms()
        bound = now_ms + self.clock.max_offset_ms
        for page in delta.pages.values():
            registers = list(page.components.values())
            for incident in page.incidents.values():
                registers.extend(incident.fields.values())
            for reg in registers:
                if physical_ms(reg.hlc) > bound:
                    raise ClockSkewError(physical_ms(reg.hlc), now_ms, self.clock.max_offset_ms)
        seen_bound_s = (bound // 1000) + self.event_id_ttl_s
        for expiry in delta.seen.items.values():
            if expiry > seen_bound_s:
                raise ClockSkewError(expiry * 1000, now_ms, self.clock.max_offset_ms)

    def _now_s(self) -> int:
        return self.clock.physical_now_ms() // 1000

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"store {self.node_id!r} is closed")

    @property
    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "pages": len(self._state.pages),
                "live_keys": self._state.live_keys(),
                "seen_ids": len(self._state.seen),
                "delta_buffer": len(self._buffer.entries),
                "log_bytes": self._log.size if self._log is not None else 0,
            }
