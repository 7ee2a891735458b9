"""Every Redis key notifyd writes, in one place, under ``NOTIFYD_NAMESPACE``.

Ids that users choose (event ids, page ids, dedup keys) go into keys through
:func:`escape`, so no id can reach into another's keys: ``:`` joins the parts of
a key, and event ``X:shards`` must not be event ``X``'s shard bitmap. Ids stay
as written everywhere else (API, event bodies, the status store).

An event is stored under its **ref**, :func:`event_ref`: the page and the event id
together, because event ids are the publisher's and only unique within a page (a
key for page A must not take page B's id first and turn B's event into a
duplicate). A ref without a page (a bare event id) is an event accepted before
refs existed: its keys are the old global ones, so events in flight at an
upgrade finish where they were written.

Tracking and subscriber records live in buckets of :data:`BUCKET` entries so
that each bucket stays a listpack-encoded hash (Redis' compact encoding):
that is what keeps a tracked delivery under 100 bytes of Redis memory.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Entries per bucket hash; Redis keeps hashes of up to 128 small entries as listpacks.
BUCKET = 128


def escape(part: str) -> str:
    """One key part that cannot contain the separator: ``%`` -> ``%25``, then ``:`` -> ``%3A``.

    Ids without either character are unchanged, so keys written before escaping still match.
    """
    if "%" in part:
        part = part.replace("%", "%25")
    if ":" in part:
        part = part.replace(":", "%3A")
    return part


#: Joins the page and the event id in an event ref. Neither page ids nor event ids (printable
#: ASCII without spaces, see notifyd/models.py) contain it, so a ref splits one way only.
REF_SEP = " "


def event_ref(page_id: str, event_id: str) -> str:
    """The handle every pipeline step, queue message and index uses for one page's event."""
    return f"{page_id}{REF_SEP}{event_id}"


def split_ref(ref: str) -> tuple[str | None, str]:
    """``(page_id, event_id)`` of a ref; the page is None for a ref written before refs had one."""
    page_id, sep, event_id = ref.partition(REF_SEP)
    return (page_id, event_id) if sep else (None, ref)


@dataclass(frozen=True, slots=True)
class Keys:
    ns: str

    # events, by ref (see event_ref): a page's events under its prefix, legacy ones global
    def _event_base(self, ref: str) -> str:
        page_id, event_id = split_ref(ref)
        if page_id is None:
            return f"{self.ns}:ev:{escape(event_id)}"
        return f"{self.ns}:p:{escape(page_id)}:ev:{escape(event_id)}"

    def event(self, ref: str) -> str:
        return self._event_base(ref)

    def event_shards(self, ref: str) -> str:
        return f"{self._event_base(ref)}:shards"

    def event_shards_enqueued(self, ref: str) -> str:
        """Bitmap of the event's shards whose message was enqueued (``pipeline/ingest.py``)."""
        return f"{self._event_base(ref)}:shards_enq"

    def deliveries(self, ref: str, bucket: int) -> str:
        page_id, event_id = split_ref(ref)
        if page_id is None:
            return f"{self.ns}:dl:{escape(event_id)}:{bucket}"
        return f"{self.ns}:p:{escape(page_id)}:dl:{escape(event_id)}:{bucket}"

    def event_pages(self, event_id: str) -> str:
        """The pages that accepted an event id (a set): how ``GET /v1/events/{id}`` finds it.

        An index only: it decides nothing about duplicates, which are per page."""
        return f"{self.ns}:evp:{escape(event_id)}"

    def event_record_patterns(self) -> tuple[str, str]:
        """SCAN patterns of every event record (and its shard bitmaps), legacy and per page."""
        return f"{self.ns}:ev:*", f"{self.ns}:p:*:ev:*"

    def dedup(self, page_id: str, dedup_key: str) -> str:
        return f"{self.ns}:dk:{escape(page_id)}:{escape(dedup_key)}"

    def page_events(self, page_id: str) -> str:
        """A page's latest accepted events: refs by acceptance time (publish.lua lists them)."""
        return f"{self.ns}:p:{escape(page_id)}:events"

    def recent_events(self) -> str:
        """Every page's latest accepted events, refs by acceptance time: the queue view's list."""
        return f"{self.ns}:recent"

    def dead_letters(self) -> str:
        """Failed deliveries (a sorted set by time): members are ``<event ref>\x1f<seq>``."""
        return f"{self.ns}:dead"

    # subscribers
    def pages(self) -> str:
        return f"{self.ns}:pages"

    def page_seq(self, page_id: str) -> str:
        return f"{self.ns}:p:{escape(page_id)}:seq"

    def subscribers(self, page_id: str, bucket: int) -> str:
        return f"{self.subscriber_buckets(page_id)}{bucket}"

    def subscriber_buckets(self, page_id: str) -> str:
        """The prefix of a page's record buckets; a bucket's number follows it."""
        return f"{self.ns}:p:{escape(page_id)}:s:"

    def subscriber_targets(self, page_id: str) -> str:
        return f"{self.ns}:p:{escape(page_id)}:targets"

    def subscriber_ids(self, page_id: str) -> str:
        """A page's subscriber ids (id -> seq): ids are unique per page."""
        return f"{self.ns}:p:{escape(page_id)}:ids"

    def migrated(self, name: str) -> str:
        """Set once a one-time start-up migration of that name has run to the end."""
        return f"{self.ns}:migrated:{name}"

    def legacy_subscriber_ids(self) -> str:
        """Before ids were per page: one hash of id -> "page\x1fseq" (migrated on start)."""
        return f"{self.ns}:sid"

    def audit(self, page_id: str) -> str:
        return f"{self.ns}:p:{escape(page_id)}:audit"

    # self-service (see notifyd/selfservice/): page settings, pending sign-ups
    def page_selfservice(self, page_id: str) -> str:
        return f"{self.ns}:p:{escape(page_id)}:selfservice"

    def subscriber_prefs(self, page_id: str) -> str:
        return f"{self.ns}:p:{escape(page_id)}:prefs"

    def page_templates(self, page_id: str) -> str:
        return f"{self.ns}:p:{escape(page_id)}:templates"

    def link_keys(self) -> str:
        """The generated link keys (notifyd/unsubscribe.py), sealed; the name predates rotation."""
        return f"{self.ns}:unsubscribe-key"

    def target_index_key(self) -> str:
        """The key of the keyed digests that stand for targets in key names
        (notifyd/state/target_digests.py), sealed."""
        return f"{self.ns}:target-index-key"

    def pending(self, pending_id: str) -> str:
        return f"{self.ns}:pend:{pending_id}"

    def pending_target(self, page_id: str, channel: str, target: str) -> str:
        """A sign-up waiting for that target; a Slack hook is named by its digest
        (``SubscriberRepo.indexed_target``), never by its URL."""
        return f"{self.ns}:p:{escape(page_id)}:pend:{channel}:{escape(target)}"

    def pending_by_phone(self, phone: str) -> str:
        return f"{self.ns}:pend-sms:{escape(phone)}"

    def incident_resolved(self, page_id: str, incident_id: str) -> str:
        """The event id that resolved an incident: its followers get that one, then leave."""
        return f"{self.ns}:p:{escape(page_id)}:resolved:{escape(incident_id)}"

    def subscribe_rate_prefix(self) -> str:
        return f"{self.ns}:subrl"

    def template_failures(self) -> str:
        return f"{self.ns}:tplfail"

    def rate_limit_prefix(self) -> str:
        return f"{self.ns}:rl"

    def send_rate(self, provider: str) -> str:
        """A provider's send schedule (``lua/shape.lua``): a Twilio sender, an SMTP relay, a Slack hook."""
        return f"{self.ns}:shape:{provider}"

    def limiter(self, page_id: str, bucket: int) -> str:
        """The compact limiter's packed hit times of a bucket of subscriber seqs (state/limiter.py)."""
        return f"{self.ns}:lim:{escape(page_id)}:{bucket}"

    # digests and scheduled work (state/schedule.py, state/digests.py)
    def schedule(self) -> str:
        """Due jobs (digests, maintenance reminders and transitions) scored by when they are due."""
        return f"{self.ns}:sched"

    def schedule_jobs(self) -> str:
        """The payload of each scheduled job, by job id."""
        return f"{self.ns}:sched:jobs"

    def digest_pending(self, page_id: str, seq: int) -> str:
        """Deliveries deferred for one subscriber: event id -> what it is about (an incident, ...)."""
        return f"{self.ns}:dg:{escape(page_id)}:{seq}"

    def maintenances(self, page_id: str) -> str:
        """The page's announced maintenance windows (state/maintenances.py)."""
        return f"{self.ns}:p:{escape(page_id)}:maint"

    def incident_events(self, page_id: str, incident_key: str) -> str:
        """The events of one incident (or maintenance, or component), scored by occurred_at."""
        return f"{self.ns}:p:{escape(page_id)}:about:{escape(incident_key)}"

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
