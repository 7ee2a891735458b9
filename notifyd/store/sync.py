"""Delta-state anti-entropy (Almeida, Shoker & Baquero, "Delta state replicated data types").

Every effective delta (local write or new information received from a peer) gets the next
sequence number in a buffer.  Each interval a peer is sent the join of the buffered deltas it
has not acknowledged, minus those that came from it (no echo).  A peer whose acknowledgement
is older than the trimmed buffer, or that belongs to an earlier incarnation of this process
(the buffer is not persisted), gets the full state instead.  Buffer entries are dropped once
every live member has acknowledged them, or when the buffer exceeds its cap.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import msgpack

from notifyd.store.errors import SyncProtocolError
from notifyd.store.state import StoreState

if TYPE_CHECKING:
    from notifyd.store.store import StatusStore

log = logging.getLogger(__name__)

KIND_DELTA = 0
KIND_FULL = 1
KIND_ACK = 2
#: One part of a full state too big for one message: ``[..., body, index, count]``.
KIND_PART = 3
#: The ack of one part: ``[KIND_PART_ACK, sender, incarnation, seq, index]``.
KIND_PART_ACK = 4
ACK_KINDS = frozenset({KIND_ACK, KIND_PART_ACK})
_FIELDS = {KIND_DELTA: 6, KIND_FULL: 6, KIND_ACK: 4, KIND_PART: 8, KIND_PART_ACK: 5}
#: Default anti-entropy period.
DEFAULT_INTERVAL_S = 0.1
#: Unacknowledged delta groups kept per replica before laggards are switched to full state.
DEFAULT_MAX_BUFFERED = 8192


def pack_message(kind: int, sender: str, incarnation: int, seq: int, clock: int, body: Any) -> bytes:
    return msgpack.packb([kind, sender, incarnation, seq, clock, body], use_bin_type=True)


def pack_ack(sender: str, incarnation: int, seq: int) -> bytes:
    return msgpack.packb([KIND_ACK, sender, incarnation, seq], use_bin_type=True)


#: How a sync message is decoded, whole (unpack_message) or fed in chunks (new_unpacker).
UNPACK_OPTIONS: dict[str, Any] = {"raw": False, "strict_map_key": False}


def new_unpacker(max_bytes: int) -> msgpack.Unpacker:
    """An unpacker to feed a sync message chunk by chunk; ``feed`` raises ``msgpack.BufferFull``
    past ``max_bytes``. Check what it yields with :func:`check_message`."""
    return msgpack.Unpacker(max_buffer_size=max_bytes, **UNPACK_OPTIONS)


def pack_part(
    sender: str, incarnation: int, seq: int, clock: int, body: Any, index: int, count: int
) -> bytes:
    return msgpack.packb([KIND_PART, sender, incarnation, seq, clock, body, index, count], use_bin_type=True)


def pack_part_ack(sender: str, incarnation: int, seq: int, index: int) -> bytes:
    return msgpack.packb([KIND_PART_ACK, sender, incarnation, seq, index], use_bin_type=True)


def unpack_message(data: bytes) -> list[Any]:
    try:
        msg = msgpack.unpackb(data, **UNPACK_OPTIONS)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise SyncProtocolError(f"undecodable sync message ({len(data)} bytes): {exc}") from exc
    return check_message(msg)


def check_message(msg: Any) -> list[Any]:
    """``msg`` if it has the shape of a sync message (a payload or an ack); raises otherwise."""
    if not isinstance(msg, list) or not msg or msg[0] not in _FIELDS:
        raise SyncProtocolError("sync message is not a [kind, ...] array with a known kind")
    if len(msg) != _FIELDS[msg[0]]:
        raise SyncProtocolError(f"sync message of kind {msg[0]} has {len(msg)} fields")
    return msg


class Transfer:
    """A full state sent in parts: the plan taken at ``seq`` and the parts acknowledged so far.

    Each part is a set of keys (see :func:`notifyd.store.codec.plan_parts`), encoded from the live
    state when it is sent, so it holds at least what those keys held at ``seq``; what changed
    after ``seq`` is in the delta buffer, which this transfer holds back from trimming.
    """

    __slots__ = ("seq", "parts", "acked", "cursor")

    def __init__(self, seq: int, parts: list[Any]) -> None:
        self.seq = seq
        self.parts = parts
        self.acked: set[int] = set()
        self.cursor = 0

    def next_index(self) -> int:
        """The next part not acknowledged yet, round robin: a lost part comes round again."""
        count = len(self.parts)
        for step in range(count):
            index = (self.cursor + step) % count
            if index not in self.acked:
                self.cursor = index + 1
                return index
        raise SyncProtocolError("every part of this transfer is acknowledged")


class DeltaBuffer:
    """Sequenced effective deltas plus what each peer has acknowledged.  Not thread-safe: the store locks."""

    def __init__(self, *, max_buffered: int = DEFAULT_MAX_BUFFERED) -> None:
        # A fresh random incarnation per process: acks for a previous run's buffer are void.
        self.incarnation = int.from_bytes(os.urandom(4), "big")
        self.seq = 0
        self.trimmed = 0
        self.entries: deque[tuple[str | None, StoreState]] = deque()  # seqs trimmed+1 .. seq
        self.acks: dict[str, int | None] = {}
        self.removed: set[str] = set()
        self.max_buffered = max_buffered
        #: Full states being sent in parts, by peer.
        self.transfers: dict[str, Transfer] = {}

    def add_peer(self, peer: str) -> None:
        self.removed.discard(peer)
        self.acks.setdefault(peer, None)

    def remove_member(self, peer: str) -> None:
        self.acks.pop(peer, None)
        self.transfers.pop(peer, None)
        self.removed.add(peer)
        self.gc()

    def forget(self, peer: str) -> None:
        """Drop what is tracked for ``peer`` (a name used before its replica's id was known)."""
        self.acks.pop(peer, None)
        self.transfers.pop(peer, None)
        self.gc()

    def transfer_for(self, peer: str) -> Transfer | None:
        """The transfer in progress to ``peer``, unless the buffer was trimmed past its start
        (what changed since is lost from the buffer: the transfer starts over)."""
        transfer = self.transfers.get(peer)
        if transfer is not None and transfer.seq < self.trimmed:
            del self.transfers[peer]
            return None
        return transfer

    def start_transfer(self, peer: str, parts: list[Any]) -> Transfer:
        transfer = self.transfers[peer] = Transfer(self.seq, parts)
        return transfer

    def ack_part(self, peer: str, incarnation: int, seq: int, index: int) -> None:
        transfer = self.transfers.get(peer)
        if incarnation != self.incarnation or transfer is None or transfer.seq != seq:
            return
        if 0 <= index < len(transfer.parts):
            transfer.acked.add(index)
        if len(transfer.acked) == len(transfer.parts):
            del self.transfers[peer]
            self.ack(peer, incarnation, seq)

    def push(self, origin: str | None, delta: StoreState) -> int:
        self.seq += 1
        self.entries.append((origin, delta))
        if len(self.entries) > self.max_buffered:
            self.entries.popleft()
            self.trimmed += 1
        return self.seq

    def pending_for(self, peer: str) -> tuple[int, int, StoreState | None] | None:
        """``(kind, seq, group)`` to send ``peer``, or None when it is up to date.  ``group`` is
        None for a full-state send, which the caller encodes from the live state."""
        ack = self.acks.get(peer)
        if ack is None or ack < self.trimmed:
            return KIND_FULL, self.seq, None
        if ack >= self.seq:
            return None
        group = StoreState()
        found = False
        for k in range(ack - self.trimmed, len(self.entries)):
            origin, delta = self.entries[k]
            if origin != peer:
                group.merge_in(delta)
                found = True
        if not found:
            # Everything it lacks came from it: count it as acknowledged.
            self.acks[peer] = self.seq
            self.gc()
            return None
        return KIND_DELTA, self.seq, group

    def ack(self, peer: str, incarnation: int, seq: int) -> None:
        if incarnation != self.incarnation or peer in self.removed or seq > self.seq:
            return
        current = self.acks.get(peer)
        if current is None or seq > current:
            self.acks[peer] = seq
            self.gc()

    def gc(self) -> None:
        """Drop entries every live member has acknowledged.  A peer that never acked holds
        nothing back: it will be sent the full state anyway."""
        known = [a for a in self.acks.values() if a is not None]
        # A full state in transfer needs every delta since it started.
        known += [t.seq for t in self.transfers.values()]
        floor = min(known) if known else self.seq
        while self.trimmed < floor and self.entries:
            self.entries.popleft()
            self.trimmed += 1


class Transport(Protocol):
    """Moves opaque sync messages between replicas.  ``send`` must not block for long."""

    def send(self, peer: str, payload: bytes) -> None: ...

    def set_receiver(self, callback: Callable[[str, bytes], None]) -> None: ...


class Replicator:
    """Drives anti-entropy for one store over a :class:`Transport`, on a daemon thread.

    ``tick()`` can also be called by hand (tests, or a host with its own scheduler).
    """

    def __init__(
        self,
        store: StatusStore,
        transport: Transport,
        *,
        peers: list[str] | tuple[str, ...] = (),
        interval_s: float = DEFAULT_INTERVAL_S,
    ) -> None:
        self.store = store
        self.transport = transport
        self.interval_s = interval_s
        self.errors = 0
        for peer in peers:
            store.add_peer(peer)
        transport.set_receiver(self.on_message)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> int:
        sent = 0
        for peer in self.store.peers():
            payload = self.store.sync_payload_for(peer)
            if payload is not None:
                self.transport.send(peer, payload)
                sent += 1
        return sent

    def on_message(self, from_peer: str, data: bytes) -> None:
        try:
            reply = self.store.handle_message(from_peer, data)
        except Exception as exc:  # one bad message must not stop replication
            self.errors += 1
            log.warning("sync message from %s rejected: %s", from_peer, exc)
            return
        if reply is not None:
            self.transport.send(from_peer, reply)

    def start(self) -> Replicator:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, name=f"replicator-{self.store.node_id}", daemon=True
            )
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.tick()
            except Exception:  # keep the loop alive; the next tick retries
                self.errors += 1
                log.exception("replication tick failed")

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> Replicator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
