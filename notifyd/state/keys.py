"""Every Redis key notifyd writes, in one place, under ``NOTIFYD_NAMESPACE``.

Tracking and subscriber records live in buckets of :data:`BUCKET` entries so
that each bucket stays a listpack-encoded hash (Redis' compact encoding):
that is what keeps a tracked delivery under 100 bytes of Redis memory.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Entries per bucket hash; Redis keeps hashes of up to 128 small entries as listpacks.
BUCKET = 128


@dataclass(frozen=True, slots=True)
class Keys:
    ns: str

    # events
    def event(self, event_id: str) -> str:
        return f"{self.ns}:ev:{event_id}"

    def event_shards(self, event_id: str) -> str:
        return f"{self.ns}:ev:{event_id}:shards"

    def deliveries(self, event_id: str, bucket: int) -> str:
        return f"{self.ns}:dl:{event_id}:{bucket}"

    def dedup(self, page_id: str, dedup_key: str) -> str:
        return f"{self.ns}:dk:{page_id}:{dedup_key}"

    def page_events(self, page_id: str) -> str:
        return f"{self.ns}:p:{page_id}:events"

    def dead_letters(self) -> str:
        return f"{self.ns}:dead"

    # subscribers
    def pages(self) -> str:
        return f"{self.ns}:pages"

    def page_seq(self, page_id: str) -> str:
        return f"{self.ns}:p:{page_id}:seq"

    def subscribers(self, page_id: str, bucket: int) -> str:
        return f"{self.subscriber_buckets(page_id)}{bucket}"

    def subscriber_buckets(self, page_id: str) -> str:
        """The prefix of a page's record buckets; a bucket's number follows it."""
        return f"{self.ns}:p:{page_id}:s:"

    def subscriber_targets(self, page_id: str) -> str:
        return f"{self.ns}:p:{page_id}:targets"

    def subscriber_ids(self, page_id: str) -> str:
        """A page's subscriber ids (id -> seq): ids are unique per page."""
        return f"{self.ns}:p:{page_id}:ids"

    def legacy_subscriber_ids(self) -> str:
        """Before ids were per page: one hash of id -> "page\x1fseq" (migrated on start)."""
        return f"{self.ns}:sid"

    def audit(self, page_id: str) -> str:
        return f"{self.ns}:p:{page_id}:audit"

    def rate_limit_prefix(self) -> str:
        return f"{self.ns}:rl"

    # what the dashboard charts (see notifyd/state/throughput.py, circuits.py, quarantine.py)
    def throughput(self, bucket_start: int) -> str:
        return f"{self.ns}:tp:{bucket_start}"

    def circuits(self) -> str:
        return f"{self.ns}:circuits"

    def quarantined(self) -> str:
        return f"{self.ns}:endpoints:quarantined"

    # queues (dramatiq's own layout: <namespace>:<queue> and <namespace>:<queue>.msgs)
    def queue_name(self, priority: str) -> str:
        return f"{self.ns}.{priority}"

    def queue(self, queue_name: str) -> str:
        return f"{self.ns}:{queue_name}"

    def queue_messages(self, queue_name: str) -> str:
        return f"{self.ns}:{queue_name}.msgs"

    def delayed_queue_name(self, priority: str) -> str:
        """dramatiq's delay queue of a lane (its ``dq_name``): retries wait there until their eta."""
        return f"{self.queue_name(priority)}.DQ"


def bucket_of(seq: int) -> int:
    return seq // BUCKET
