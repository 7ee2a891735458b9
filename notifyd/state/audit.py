"""Who changed what on a page, and when: the audit trail of operator actions.

An operator's override of someone's consent (reactivating a subscriber who
opted out) must be answerable later: each record names the actor (an API
key's id, or the CLI's user), the time, the action and its subject. Records
are kept newest first, up to :data:`AUDIT_CAP` per page.
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from notifyd.state.keys import Keys

#: Records kept per page; older ones are dropped.
AUDIT_CAP = 10_000


def record(
    client: redis.Redis, keys: Keys, page_id: str, action: str, *, actor: str, **details: Any
) -> dict[str, Any]:
    """Append one record and return it. ``details`` must hold no secrets."""
    entry: dict[str, Any] = {
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "actor": actor,
        "action": action,
        "page_id": page_id,
        **details,
    }
    pipe = client.pipeline(transaction=True)
    pipe.lpush(keys.audit(page_id), json.dumps(entry, separators=(",", ":")))
    pipe.ltrim(keys.audit(page_id), 0, AUDIT_CAP - 1)
    pipe.execute()
    return entry


def recent(client: redis.Redis, keys: Keys, page_id: str, *, limit: int = 100) -> list[dict[str, Any]]:
    """The page's latest records, newest first."""
    return [json.loads(raw) for raw in client.lrange(keys.audit(page_id), 0, limit - 1)]


__all__ = ["AUDIT_CAP", "recent", "record"]
