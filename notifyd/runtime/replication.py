"""Keeping the status-store replicas of a deployment in step.

Every notifyd process (API, each worker) holds a replica of the CRDT store
(``worker.open_store``). Two paths carry their deltas:

* **Within a region**, through the Redis the processes share: each replica
  announces itself in a members set and reads its own inbox list. Redis is
  only a mailbox here; a lost or trimmed message is resent at the next tick,
  because the store keeps sending what a peer has not acknowledged.
* **Between regions**, over the peers' ``POST /v1/sync`` (``NOTIFYD_PEERS``),
  from the API processes only. The answer is the peer's ack, which also tells
  us the node id of the replica behind the URL.

A replica forwards what it learns from one side to the other (the store never
echoes a delta to where it came from), so a worker's write reaches the peer
regions through the local API process, and theirs reach the workers.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time

import httpx
import msgpack
import redis
from prometheus_client import Counter

from channels.backoff import Backoff
from notifyd.runtime.settings import Settings
from notifyd.store import StatusStore
from notifyd.store.sync import KIND_DELTA, KIND_FULL, KIND_PART, unpack_message

log = logging.getLogger(__name__)

#: A member that has not announced itself for this long is not sent to.
MEMBER_LIVE_S = 15.0
#: Announce ourselves this often.
ANNOUNCE_EVERY_S = 2.0
#: An inbox holds at most this many messages; a replica that fell behind gets the full state later.
INBOX_CAP = 1000
INBOX_TTL_S = 120
PEER_TIMEOUT_S = 5.0
#: Longest pause between tries of a peer region that does not answer.
MAX_PEER_PAUSE_S = 30.0
#: A peer region that does not answer is tried again after 1 s, 2 s, 4 s, ... up to MAX_PEER_PAUSE_S.
PEER_BACKOFF = Backoff(first=1.0, cap=MAX_PEER_PAUSE_S)
#: Parts of a full state sent to one peer per tick (each about 1 MiB, see notifyd/store/codec.py).
PARTS_PER_TICK = 8

_KIND_LABEL = {KIND_DELTA: "delta", KIND_FULL: "full", KIND_PART: "part"}
#: The sender's side of notifyd_sync_refused_total (which a peer's API counts as it refuses).
REFUSED_BY_PEER = Counter(
    "notifyd_sync_refused_by_peer_total",
    "Sync payloads a peer region refused (reason: its HTTP status) or never answered (unreachable)",
    ["kind", "reason"],
)


def message_kind(payload: bytes) -> str:
    """``delta``, ``full`` or ``part``: the label of a payload in logs and metrics."""
    # Every message is a short msgpack array whose first element, the kind, is a fixint: read
    # the second byte rather than decode a part of a megabyte to label it.
    if len(payload) < 2 or payload[0] & 0xF0 != 0x90:
        return "other"
    return _KIND_LABEL.get(payload[1], "other")


def refused(kind: str, reason: str) -> None:
    REFUSED_BY_PEER.labels(kind=kind, reason=reason).inc()


class LocalMesh:
    """Messages between the replicas of one deployment, through Redis."""

    def __init__(self, client: redis.Redis, namespace: str, node_id: str) -> None:
        self.client = client
        self.node_id = node_id
        self.members_key = f"{namespace}:store:members"
        self._inbox_prefix = f"{namespace}:store:inbox:"

    def inbox(self, node: str) -> str:
        return self._inbox_prefix + node

    def announce(self) -> None:
        self.client.zadd(self.members_key, {self.node_id: time.time()})

    def leave(self) -> None:
        self.client.zrem(self.members_key, self.node_id)

    def live_members(self) -> list[str]:
        since = time.time() - MEMBER_LIVE_S
        members = self.client.zrangebyscore(self.members_key, since, "+inf")
        return [m.decode() for m in members if m.decode() != self.node_id]

    def send(self, peer: str, payload: bytes) -> None:
        key = self.inbox(peer)
        pipe = self.client.pipeline(transaction=False)
        pipe.rpush(key, msgpack.packb([self.node_id, payload], use_bin_type=True))
        pipe.ltrim(key, -INBOX_CAP, -1)
        pipe.expire(key, INBOX_TTL_S)
        pipe.execute()

    def receive(self, timeout_s: float) -> tuple[str, bytes] | None:
        got = self.client.blpop([self.inbox(self.node_id)], timeout=timeout_s)
        if got is None:
            return None
        sender, payload = msgpack.unpackb(got[1], raw=False)
        return str(sender), bytes(payload)


class PeerRegions:
    """``POST /v1/sync`` to each peer region's API; their acks come back as the answers."""

    def __init__(self, store: StatusStore, urls: dict[str, str], sync_key: str | None) -> None:
        self.store = store
        self.urls = urls
        #: The store node id behind each configured peer, learned from its first ack.
        self.learned: dict[str, str] = {}
        self._failing: set[str] = set()
        #: A failing peer is retried after a growing pause, not every interval.
        self._retry_at: dict[str, float] = {}
        self._pause: dict[str, float] = {}
        headers = {"Content-Type": "application/msgpack", "X-Notifyd-Peer": store.node_id}
        if sync_key:
            headers["Authorization"] = f"Bearer {sync_key}"
        self.http = httpx.Client(headers=headers, timeout=PEER_TIMEOUT_S, follow_redirects=False)

    def tick(self) -> None:
        now = time.monotonic()
        for name, url in self.urls.items():
            if now < self._retry_at.get(name, 0.0):
                continue
            sent = 0
            remote = None
            # A full state too big for one message goes in parts, several a tick.
            while sent < PARTS_PER_TICK:
                # Until a peer has answered once we do not know its replica's id: it gets the full state.
                payload = self.store.sync_payload_for(self.learned.get(name, name))
                if payload is None:
                    break
                kind = message_kind(payload)
                try:
                    answer = self.http.post(f"{url}/v1/sync", content=payload)
                    answer.raise_for_status()
                    ack = answer.content
                    remote = str(unpack_message(ack)[1])
                    self.store.handle_message(remote, ack)
                except Exception as exc:  # a peer region being down is routine; say so once
                    self._failed(name, url, kind, len(payload), exc)
                    remote = None
                    break
                if self.learned.get(name, name) != remote:
                    # What was sent under the configured name (a transfer in parts, say) is
                    # tracked under the replica's own id from now on.
                    self.store.forget_peer(self.learned.get(name, name))
                self.learned[name] = remote
                sent += 1
                if kind != "part":
                    break
            if remote is None:
                continue
            self._pause.pop(name, None)
            self._retry_at.pop(name, None)
            if name in self._failing:
                self._failing.discard(name)
                log.warning("sync with peer region %s (%s) recovered", name, url)

    def _failed(self, name: str, url: str, kind: str, size: int, exc: Exception) -> None:
        if isinstance(exc, httpx.HTTPStatusError):
            # The peer answered and refused it: that is not the peer being down. A refused part
            # is a full state the peer cannot take in; say so each time, with its size.
            refused(kind, str(exc.response.status_code))
            if kind == "part" or name not in self._failing:
                log.warning(
                    "sync with peer region %s (%s) failing: %s for a sync %s of %d bytes",
                    *(name, url, _describe(exc), kind, size),
                )
        else:
            refused(kind, "unreachable")
            if name not in self._failing:
                log.warning("sync with peer region %s (%s) failing: %s", name, url, _describe(exc))
        self._failing.add(name)
        pause = PEER_BACKOFF.next(self._pause.get(name))
        self._pause[name] = pause
        self._retry_at[name] = time.monotonic() + pause

    def close(self) -> None:
        self.http.close()


class Replication:
    """Runs a replica's sync: a receiver thread on its inbox and a ticker every interval."""

    def __init__(self, store: StatusStore, mesh: LocalMesh, regions: PeerRegions | None, interval_s: float):
        self.store = store
        self.mesh = mesh
        self.regions = regions
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> Replication:
        self.mesh.announce()
        loops = [("recv", self._receive_loop), ("tick", self._tick_loop)]
        if self.regions is not None:
            # Its own thread: a peer region that times out must not hold up the local replicas.
            loops.append(("regions", self._regions_loop))
        for name, target in loops:
            thread = threading.Thread(target=target, name=f"store-{name}-{self.store.node_id}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def tick_local(self) -> None:
        for peer in self.mesh.live_members():
            self.store.add_peer(peer)
            # A full state too big for one message goes in parts, several a tick.
            for payload in self.store.sync_payloads_for(peer, max_parts=PARTS_PER_TICK):
                self.mesh.send(peer, payload)
        # Closed incidents, tombstones and event ids past their retention go (every few minutes).
        self.store.maybe_compact()

    def _tick_loop(self) -> None:
        announced = time.monotonic()
        while not self._stop.wait(self.interval_s):
            try:
                if time.monotonic() - announced >= ANNOUNCE_EVERY_S:
                    self.mesh.announce()
                    announced = time.monotonic()
                self.tick_local()
            except redis.RedisError as exc:  # Redis away: the next tick tries again
                log.debug("store sync tick: %s", exc)
            except Exception:
                log.exception("store sync tick failed")

    def _regions_loop(self) -> None:
        assert self.regions is not None
        while not self._stop.wait(self.interval_s):
            try:
                self.regions.tick()
            except Exception:
                log.exception("peer region sync tick failed")

    def _receive_loop(self) -> None:
        while not self._stop.is_set():
            try:
                got = self.mesh.receive(timeout_s=1.0)
            except redis.RedisError:
                self._stop.wait(0.5)
                continue
            if got is None:
                continue
            sender, payload = got
            try:
                reply = self.store.handle_message(sender, payload)
                if reply is not None:
                    self.mesh.send(sender, reply)
            except redis.RedisError:
                continue
            except Exception as exc:  # one bad message must not stop replication
                log.warning("store sync %s from %s refused: %s", message_kind(payload), sender, exc)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        with contextlib.suppress(redis.RedisError):
            self.mesh.leave()
        if self.regions is not None:
            self.regions.close()
        self.mesh.client.close()


def start_replication(
    settings: Settings, redis_url: str, store: StatusStore, *, with_regions: bool
) -> Replication:
    """Sync ``store`` with the deployment's other replicas, and with the peer regions if asked."""
    # A client of its own: the receiver blocks on BLPOP.
    client = redis.Redis.from_url(redis_url, socket_timeout=10, health_check_interval=30)
    regions = None
    if with_regions and settings.peers:
        key = settings.sync_key.get_secret_value() if settings.sync_key else None
        regions = PeerRegions(store, settings.peer_urls(), key)
    mesh = LocalMesh(client, settings.namespace, store.node_id)
    return Replication(store, mesh, regions, settings.sync_interval_ms / 1000).start()


def _describe(exc: Exception) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    return type(exc).__name__ + (f": {exc}" if str(exc) else "")
