"""An index of quarantined endpoints: subscribers the pipeline disabled with reason ``quarantined``.

Subscribers live in per-page bucket hashes, so "which ones are quarantined" has no
answer short of walking every page. The quarantine decision adds each subscriber
to a capped sorted set instead; the reader checks every entry against the
subscriber's own record and drops the ones reactivated (or removed) since, so the
record stays the one source of truth and the index is only a pointer to it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import redis

from notifyd.state.keys import Keys
from notifyd.state.subscribers import StoredSubscriber, SubscriberRepo

#: Entries kept; the oldest go first.
CAP = 1000
REASON = "quarantined"


def _member(page_id: str, seq: int) -> str:
    return f"{page_id}\x1f{seq}"


def note(client: redis.Redis, keys: Keys, subs: Iterable[StoredSubscriber], *, at: float) -> None:
    members = {_member(s.page_id, s.seq): at for s in subs}
    if not members:
        return
    pipe = client.pipeline(transaction=False)
    pipe.zadd(keys.quarantined(), members)
    pipe.zremrangebyrank(keys.quarantined(), 0, -CAP - 1)
    pipe.execute()


def forget(client: redis.Redis, keys: Keys, page_id: str, seq: int) -> None:
    client.zrem(keys.quarantined(), _member(page_id, seq))


def read(
    client: redis.Redis, keys: Keys, subscribers: SubscriberRepo, *, limit: int = 50
) -> list[dict[str, Any]]:
    """The latest quarantined endpoints that are still quarantined, newest first."""
    entries = client.zrevrange(keys.quarantined(), 0, limit - 1, withscores=True)
    by_page: dict[str, list[int]] = defaultdict(list)
    since: dict[tuple[str, int], float] = {}
    for member, score in entries:
        page_id, _, seq = member.decode().rpartition("\x1f")
        by_page[page_id].append(int(seq))
        since[page_id, int(seq)] = score
    found: dict[tuple[str, int], StoredSubscriber] = {}
    for page_id, seqs in by_page.items():
        for sub in subscribers.range_many(page_id, seqs):
            if sub.disabled == REASON and not sub.removed:
                found[page_id, sub.seq] = sub
    gone = [_member(page, seq) for page, seq in since if (page, seq) not in found]
    if gone:
        client.zrem(keys.quarantined(), *gone)
    return [
        {
            "page_id": sub.page_id,
            "subscriber_id": sub.id,
            "channel": sub.channel,
            "endpoint": subscribers.endpoint(sub),
            "since": datetime.fromtimestamp(since[where], UTC).isoformat().replace("+00:00", "Z"),
        }
        for where, sub in sorted(found.items(), key=lambda item: -since[item[0]])
    ]
