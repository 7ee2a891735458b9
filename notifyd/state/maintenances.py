"""Maintenance windows a page has announced, as the pipeline needs them: the one owner of their key.

One hash per page (``Keys.maintenances``): maintenance id -> a small JSON
record of its window, its components, whether it transitions on its own and
whether it is running. Ingest writes it; the suppression filter reads it.
The CRDT status store keeps the maintenance's history; this is the
pipeline's working copy.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import redis

from notifyd.state.keys import Keys


@dataclass(frozen=True, slots=True)
class Window:
    id: str
    title: str
    message: str
    starts_at: str
    ends_at: str
    components: list[str]
    auto_transition: bool
    running: bool = False


class MaintenanceRepo:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.client = client
        self.keys = keys

    def put(self, page_id: str, window: Window) -> None:
        self.client.hset(self.keys.maintenances(page_id), window.id, json.dumps(asdict(window)))

    def get(self, page_id: str, maintenance_id: str) -> Window | None:
        raw = self.client.hget(self.keys.maintenances(page_id), maintenance_id)
        return Window(**json.loads(raw)) if raw is not None else None

    def remove(self, page_id: str, maintenance_id: str) -> None:
        self.client.hdel(self.keys.maintenances(page_id), maintenance_id)

    def running_components(self, page_id: str) -> set[str]:
        found: set[str] = set()
        for raw in self.client.hvals(self.keys.maintenances(page_id)):
            window = Window(**json.loads(raw))
            if window.running:
                found.update(window.components)
        return found
