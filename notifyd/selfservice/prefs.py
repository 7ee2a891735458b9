"""What a subscriber chose beside the subscriber record: a language, and an incident to follow.

The subscriber record (``state/subscribers.py``) owns channel, target, components and the
delivery preferences (``event_types``, ``min_impact``, ``incident_phases``, ``quiet_hours``;
see ``notifyd/preferences.py``). Self-service adds two choices the pipeline reads only where
they matter: ``locale`` (the language a message renders in) and ``incident`` (a follower
receives only that incident's updates, until it resolves). One hash per page, one small JSON
value per subscriber id, read in one round trip per chunk or shard.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Annotated, Any

import redis
from pydantic import BaseModel, ConfigDict, StringConstraints

from notifyd.models import Event
from notifyd.selfservice.pages import Locale
from notifyd.state.keys import Keys

IncidentId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")]


class PersonalPrefs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    locale: Locale | None = None
    #: A follower receives only this incident's updates, until it resolves.
    incident: IncidentId | None = None

    def wants(self, event: Event) -> bool:
        """A follower hears only its incident; everyone else, everything (the record filters the rest)."""
        if self.incident is None:
            return True
        return event.incident is not None and event.incident.id == self.incident


class PrefsRepo:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.client = client
        self.keys = keys

    def _key(self, page_id: str) -> str:
        return self.keys.subscriber_prefs(page_id)

    def get(self, page_id: str, subscriber_id: str) -> PersonalPrefs:
        raw = self.client.hget(self._key(page_id), subscriber_id)
        return PersonalPrefs.model_validate_json(raw) if raw is not None else PersonalPrefs()

    def get_many(self, page_id: str, subscriber_ids: Iterable[str]) -> dict[str, PersonalPrefs]:
        ids = list(subscriber_ids)
        if not ids:
            return {}
        values = self.client.hmget(self._key(page_id), ids)
        return {
            i: PersonalPrefs.model_validate_json(v) for i, v in zip(ids, values, strict=True) if v is not None
        }

    def put(self, page_id: str, subscriber_id: str, prefs: PersonalPrefs) -> None:
        data = prefs.model_dump(mode="json", exclude_none=True)
        if data:
            self.client.hset(self._key(page_id), subscriber_id, json.dumps(data, separators=(",", ":")))
        else:
            self.client.hdel(self._key(page_id), subscriber_id)

    def update(self, page_id: str, subscriber_id: str, changes: dict[str, Any]) -> PersonalPrefs:
        current = self.get(page_id, subscriber_id).model_dump(mode="json", exclude_none=True)
        current.update(changes)
        prefs = PersonalPrefs.model_validate({k: v for k, v in current.items() if v is not None})
        self.put(page_id, subscriber_id, prefs)
        return prefs

    def delete(self, page_id: str, subscriber_id: str) -> None:
        self.client.hdel(self._key(page_id), subscriber_id)
