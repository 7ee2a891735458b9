"""The pipeline's hooks into self-service: who wants an event, and how their message reads.

- :func:`audience_filter` drops subscribers whose preferences exclude the event (one
  ``HMGET`` per shard, only for the ids of that shard);
- :func:`personalizer` renders messages with the page's templates and each subscriber's
  language, when either differs from the built-in English (otherwise the adapters'
  own rendering stands and costs nothing more).
"""

from __future__ import annotations

from collections.abc import Callable

from channels.base import Message
from notifyd.models import Event
from notifyd.runtime.wiring import Runtime
from notifyd.selfservice.prefs import PrefsRepo
from notifyd.state.subscribers import StoredSubscriber

Filter = Callable[[Event, list[StoredSubscriber]], list[StoredSubscriber]]


#: How long the "incident resolved" marker stays (followers of it are removed on sight until then).
RESOLVED_MARK_TTL_S = 30 * 86400
RESOLVING = ("incident_resolved",)


def audience_filter(runtime: Runtime) -> Filter:
    prefs = PrefsRepo(runtime.client, runtime.keys)
    client, keys, subscribers = runtime.client, runtime.keys, runtime.subscribers

    def resolved_by(event: Event, incident_id: str) -> str | None:
        """The event that resolved the incident; this event marks it when it is the one."""
        key = keys.incident_resolved(event.page_id, incident_id)
        if event.type.value in RESOLVING and event.incident is not None and event.incident.id == incident_id:
            client.set(key, event.event_id, nx=True, ex=RESOLVED_MARK_TTL_S)
        raw = client.get(key)
        return raw.decode() if raw is not None else None

    def keep(event: Event, members: list[StoredSubscriber]) -> list[StoredSubscriber]:
        if not members:
            return members
        chosen = prefs.get_many(event.page_id, [s.id for s in members])
        if not chosen:
            return members
        kept = []
        ended: dict[str, str | None] = {}
        for sub in members:
            p = chosen.get(sub.id)
            if p is None:
                kept.append(sub)
                continue
            if p.incident is not None:
                if p.incident not in ended:
                    ended[p.incident] = resolved_by(event, p.incident)
                resolver = ended[p.incident]
                if resolver is not None and resolver != event.event_id:
                    # The followed incident resolved in an earlier event, which this follower got.
                    subscribers.remove(event.page_id, sub.id)
                    prefs.delete(event.page_id, sub.id)
                    continue
            if p.wants(event):
                kept.append(sub)
        return kept

    return keep


def personalizer(runtime: Runtime, events: object) -> Callable[[str, str, list[Message]], list[Message]]:
    from notifyd.templates.personalize import Personalizer

    return Personalizer(runtime)
