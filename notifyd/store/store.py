"""StatusStore: the public face of the CRDT store (events in, page status out, sync in and out)."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from notifyd.store.codec import (
    DEFAULT_PART_BYTES,
    decode_state,
    encode_state,
    pack_state,
    plan_parts,
    subset_state,
    unpack_state,
)
from notifyd.store.compaction import (
    DEFAULT_INCIDENT_RETENTION_S,
    DEFAULT_TOMBSTONE_RETENTION_S,
    CompactionPlan,
    drop_expired,
    plan_compaction,
)
from notifyd.store.errors import ClockSkewError, StoreError, StoreLockedError, SyncProtocolError
from notifyd.store.events import ApplyResult, event_key, plan_event, taken
from notifyd.store.hlc import DEFAULT_MAX_OFFSET_MS, HybridClock, physical_ms
from notifyd.store.log import DurableLog, read_snapshot, write_snapshot
from notifyd.store.state import PageState, StoreState, render_page
from notifyd.store.sync import (
    ACK_KINDS,
    KIND_FULL,
    KIND_PART,
    KIND_PART_ACK,
    DeltaBuffer,
    Transfer,
    pack_ack,
    pack_message,
    pack_part,
    pack_part_ack,
    unpack_message,
)

#: How long a seen event id is remembered (7 days), matching NOTIFYD_EVENT_ID_TTL_S's default.
DEFAULT_EVENT_ID_TTL_S = 604_800
#: The log is folded into a new snapshot once it grows past this.
DEFAULT_SNAPSHOT_LOG_BYTES = 32 * 1024 * 1024
#: How often :meth:`StatusStore.maybe_compact` compacts (and snapshots).
DEFAULT_COMPACT_EVERY_S = 600

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
        incident_retention_s: int = DEFAULT_INCIDENT_RETENTION_S,
        tombstone_retention_s: int = DEFAULT_TOMBSTONE_RETENTION_S,
        compact_every_s: int = DEFAULT_COMPACT_EVERY_S,
        sync_part_bytes: int = DEFAULT_PART_BYTES,
    ) -> None:
        if not node_id or not isinstance(node_id, str):
            raise StoreError(f"node_id must be a non-empty string, got {node_id!r}")
        self.node_id = node_id
        self.data_dir = data_dir
        self.max_clock_offset_ms = max_clock_offset_ms
        self.event_id_ttl_s = event_id_ttl_s
        self.snapshot_log_bytes = snapshot_log_bytes
        self.incident_retention_s = incident_retention_s
        self.tombstone_retention_s = tombstone_retention_s
        self.compact_every_s = compact_every_s
        #: A full state bigger than this goes to a peer in parts of about this size.
        self.sync_part_bytes = sync_part_bytes
        self._next_compaction_s = 0
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
        incident_retention_s: int = DEFAULT_INCIDENT_RETENTION_S,
        tombstone_retention_s: int = DEFAULT_TOMBSTONE_RETENTION_S,
        compact_every_s: int = DEFAULT_COMPACT_EVERY_S,
        sync_part_bytes: int = DEFAULT_PART_BYTES,
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
            incident_retention_s=incident_retention_s,
            tombstone_retention_s=tombstone_retention_s,
            compact_every_s=compact_every_s,
            sync_part_bytes=sync_part_bytes,
        )

    @classmethod
    def memory(
        cls,
        node_id: str,
        *,
        max_clock_offset_ms: int = DEFAULT_MAX_OFFSET_MS,
        event_id_ttl_s: int = DEFAULT_EVENT_ID_TTL_S,
        clock: Callable[[], float] = time.time,
        incident_retention_s: int = DEFAULT_INCIDENT_RETENTION_S,
        tombstone_retention_s: int = DEFAULT_TOMBSTONE_RETENTION_S,
        sync_part_bytes: int = DEFAULT_PART_BYTES,
    ) -> StatusStore:
        """A store that keeps nothing on disk."""
        return cls(
            node_id,
            max_clock_offset_ms=max_clock_offset_ms,
            event_id_ttl_s=event_id_ttl_s,
            clock=clock,
            incident_retention_s=incident_retention_s,
            tombstone_retention_s=tombstone_retention_s,
            sync_part_bytes=sync_part_bytes,
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
        now_s = self._now_s()
        for record in self._log.replay():
            # Merges are idempotent, so records already folded into the snapshot do no harm.
            # Event ids that expired since are skipped, as a live merge skips them.
            self._state.merge_in(unpack_state(record), now_s=now_s)
            self.loaded_records += 1
        # The log may also hold what a compaction dropped without a delta: expired tombstones.
        drop_expired(self._state, self._plan_compaction().expired)

    def _release_dir_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- the pipeline's API -------------------------------------------------------------------------------

    def apply_event(self, event: Mapping[str, Any], *, require_effect: bool = False) -> ApplyResult:
        """Record one validated event; see :class:`ApplyResult` for what the flags mean.

        ``require_effect``: a seen mark makes the event a duplicate only when the state shows
        the event too (``events.shows_event``); the pipeline's ingest asks for this."""
        with self._lock:
            self._check_open()
            plan = plan_event(
                self._state,
                event,
                node=self.node_id,
                now_ms=self.clock.physical_now_ms(),
                max_offset_ms=self.max_clock_offset_ms,
                ttl_s=self.event_id_ttl_s,
                require_effect=require_effect,
            )
            if not plan.result.duplicate:
                self._commit(plan.delta, origin=None)
                self.clock.observe(plan.result.hlc)
            return plan.result

    def seen(self, page_id: str, event_id: str) -> bool:
        """Whether this page's event id is marked seen (here or by a peer) within the event-id TTL."""
        with self._lock:
            return self._state.seen.contains(event_key(page_id, event_id), self._now_s())

    def taken(self, event: Mapping[str, Any]) -> bool:
        """Whether ``event`` was taken, here or by a peer: its id is marked seen *and* the state
        shows its effect (``events.shows_event``). A mark with nothing behind it does not count."""
        with self._lock:
            return taken(
                self._state,
                event,
                now_ms=self.clock.physical_now_ms(),
                max_offset_ms=self.max_clock_offset_ms,
            )

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

    def compact(self) -> dict[str, int]:
        """Drop what the retentions let go (see :mod:`notifyd.store.compaction`): closed incidents
        become tombstones (a delta, logged and replicated), expired tombstones and event ids go.
        Returns how many of each."""
        with self._lock:
            self._check_open()
            now_ms = self.clock.physical_now_ms()
            plan = self._plan_compaction()
            if plan.compacted:
                self._commit(plan.delta, origin=None)
            drop_expired(self._state, plan.expired)
            expired_ids = self._state.seen.expire(now_ms // 1000)
            return {"incidents": plan.compacted, "tombstones": len(plan.expired), "event_ids": expired_ids}

    def _plan_compaction(self) -> CompactionPlan:
        return plan_compaction(
            self._state,
            now_ms=self.clock.physical_now_ms(),
            incident_retention_ms=self.incident_retention_s * 1000,
            tombstone_retention_ms=self.tombstone_retention_s * 1000,
        )

    def maybe_compact(self) -> bool:
        """Compact (and, on disk, snapshot) when ``compact_every_s`` has passed since the last
        time; the runtime calls this from its sync loop. True if it ran."""
        with self._lock:
            if self._closed or self._now_s() < self._next_compaction_s:
                return False
            self._next_compaction_s = self._now_s() + self.compact_every_s
            if self.data_dir is not None:
                self.snapshot()
            else:
                self.compact()
            return True

    def snapshot(self) -> int:
        """Compact, write the snapshot atomically, truncate the log.
        Returns the snapshot's size in bytes (0 for an in-memory store)."""
        with self._lock:
            self._check_open()
            self.compact()
            if self.data_dir is None or self._log is None:
                return 0
            meta = {"node": self.node_id, "removed": sorted(self._buffer.removed)}
            size = write_snapshot(self.data_dir / SNAPSHOT_FILE, self._state, meta, fsync=self._fsync)
            self._log.truncate()
            return size

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

    def forget_peer(self, peer: str) -> None:
        """Stop tracking ``peer`` without refusing it (unlike :meth:`remove_member`): for a name a
        transport used until it learned the id of the replica behind it."""
        with self._lock:
            self._buffer.forget(peer)

    def remove_member(self, node_id: str) -> None:
        """Forget a replica for good: it no longer holds back delta GC, and its messages are refused."""
        with self._lock:
            self._buffer.remove_member(node_id)
            if self.data_dir is not None and not self._closed:
                self.snapshot()

    def sync_payload_for(self, peer: str) -> bytes | None:
        """What ``peer`` has not acknowledged yet (a delta group, the full state, or the next part
        of a full state larger than ``sync_part_bytes``), or None."""
        with self._lock:
            self._check_open()
            pending = self._buffer.pending_for(peer)
            if pending is None:
                return None
            kind, seq, group = pending
            if group is not None:
                body = encode_state(group)
                return pack_message(kind, self.node_id, self._buffer.incarnation, seq, self.clock.now(), body)
            transfer = self._buffer.transfer_for(peer)
            if transfer is None:
                parts = plan_parts(self._state, self.sync_part_bytes)
                if len(parts) == 1:
                    body = encode_state(self._state)
                    return pack_message(
                        KIND_FULL, self.node_id, self._buffer.incarnation, seq, self.clock.now(), body
                    )
                transfer = self._buffer.start_transfer(peer, parts)
            return self._pack_part(transfer, transfer.next_index())

    def sync_payloads_for(self, peer: str, *, max_parts: int = 8) -> list[bytes]:
        """Like :meth:`sync_payload_for`, for a transport that sends without waiting for the
        acks: up to ``max_parts`` different parts of a full state in transfer, else one payload."""
        with self._lock:
            first = self.sync_payload_for(peer)
            if first is None:
                return []
            payloads = [first]
            transfer = self._buffer.transfers.get(peer)
            if transfer is None:
                return payloads
            sent = {(transfer.cursor - 1) % len(transfer.parts)}
            while len(payloads) < max_parts:
                index = transfer.next_index()
                if index in sent:
                    transfer.cursor = index  # it comes round first next time
                    break
                sent.add(index)
                payloads.append(self._pack_part(transfer, index))
            return payloads

    def _pack_part(self, transfer: Transfer, index: int) -> bytes:
        body = encode_state(subset_state(self._state, transfer.parts[index]))
        return pack_part(
            self.node_id,
            self._buffer.incarnation,
            transfer.seq,
            self.clock.now(),
            body,
            index,
            len(transfer.parts),
        )

    def receive_sync(self, from_peer: str, payload: bytes) -> bytes:
        """Merge a peer's payload; returns the ack to send back.  Raises ``ClockSkewError`` (no
        ack, the peer will resend) if the peer's clock is too far ahead of ours."""
        return self.receive_sync_message(from_peer, unpack_message(payload))

    def receive_sync_message(self, from_peer: str, msg: list[Any]) -> bytes:
        """:meth:`receive_sync` of a payload already decoded (``sync.check_message``'s answer), as
        the API decodes it while it reads the body."""
        if msg[0] in ACK_KINDS:
            raise SyncProtocolError(f"expected a sync payload from {from_peer}, got an ack")
        return self._receive(from_peer, msg)

    def receive_ack(self, from_peer: str, ack: bytes) -> None:
        msg = unpack_message(ack)
        if msg[0] not in ACK_KINDS:
            raise SyncProtocolError(f"expected an ack from {from_peer}, got a payload")
        self._take_ack(msg)

    def handle_message(self, from_peer: str, data: bytes) -> bytes | None:
        """Transport entry point: a payload gets an ack back, an ack gets nothing."""
        msg = unpack_message(data)
        if msg[0] in ACK_KINDS:
            self._take_ack(msg)
            return None
        return self._receive(from_peer, msg)

    def _take_ack(self, msg: list[Any]) -> None:
        with self._lock:
            if msg[0] == KIND_PART_ACK:
                self._buffer.ack_part(msg[1], msg[2], msg[3], msg[4])
            else:
                self._buffer.ack(msg[1], msg[2], msg[3])

    def _receive(self, from_peer: str, msg: list[Any]) -> bytes:
        kind, sender, incarnation, seq, clock_stamp, body = msg[:6]
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
            # A part is a delta like any other: what it holds joins the state at once.
            self._commit(delta, origin=sender)
            if kind == KIND_PART:
                return pack_part_ack(self.node_id, incarnation, seq, msg[6])
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
        """Refuse a payload that carries a register stamp, a tombstone or a seen-id expiry beyond our bounds.

        The envelope's clock stamp is checked by the clock; the registers inside are the peer's
        claims too. A stamp far in the future would pin a component's status until then (no real
        update could beat it), and a seen-id expiring beyond the event-id TTL would outlive every
        real record of that id. Raises ClockSkewError, changing nothing.
        """
        now_ms = self.clock.physical_now_ms()
        bound = now_ms + self.clock.max_offset_ms
        for page in delta.pages.values():
            stamps = [reg.hlc for reg in page.components.values()]
            for incident in page.incidents.values():
                stamps.extend(reg.hlc for reg in incident.fields.values())
                # A tombstone ahead of time would bury every update of the incident until then.
                stamps.append(incident.tomb)
            for stamp in stamps:
                if physical_ms(stamp) > bound:
                    raise ClockSkewError(physical_ms(stamp), now_ms, self.clock.max_offset_ms)
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
                "incidents": sum(len(p.incidents) for p in self._state.pages.values()),
                "tombstones": sum(
                    1 for p in self._state.pages.values() for i in p.incidents.values() if i.tomb
                ),
                "delta_buffer": len(self._buffer.entries),
                "log_bytes": self._log.size if self._log is not None else 0,
            }
