"""Publishing: validate an event, then accept it durably in one atomic Redis step."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import redis
from pydantic import ValidationError

from notifyd.models import MAX_EVENT_BYTES, Event
from notifyd.pipeline.steps import INGEST, step_message
from notifyd.runtime.durability import DurabilityPolicy, NotDurable
from notifyd.runtime.settings import Settings
from notifyd.state.keys import Keys, event_ref
from notifyd.state.scripts import register
from notifyd.state.subscribers import describe_validation_error

#: Latest events listed per page (keys.page_events), and for every page (keys.recent_events).
PAGE_EVENTS_KEPT = 1000
RECENT_EVENTS_KEPT = 100


class EventError(ValueError):
    """An event that is refused; the message names the offending field."""

    def __init__(self, message: str, *, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class PublishResult:
    event_id: str
    status: str  # accepted | duplicate | deduplicated

    def as_dict(self) -> dict[str, str]:
        return {"event_id": self.event_id, "status": self.status}


def parse_event(data: bytes | str | dict[str, Any] | Event) -> Event:
    if isinstance(data, Event):
        return data
    if isinstance(data, bytes | str):
        size = len(data.encode() if isinstance(data, str) else data)
        if size > MAX_EVENT_BYTES:
            raise EventError(f"event is {size} bytes; the limit is {MAX_EVENT_BYTES}", status=413)
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            raise EventError(
                f"body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
            ) from None
    if not isinstance(data, dict):
        raise EventError("an event is a JSON object")
    try:
        return Event.model_validate(data)
    except ValidationError as exc:
        raise EventError(describe_validation_error(exc)) from None


class Publisher:
    def __init__(self, client: redis.Redis, keys: Keys, settings: Settings) -> None:
        self.client = client
        self.keys = keys
        self.settings = settings
        self._script = register(client, "publish")
        self.durability = DurabilityPolicy(settings.durability, settings.durability_timeout_ms)

    def publish(self, data: bytes | str | dict[str, Any] | Event) -> PublishResult:
        event = parse_event(data)
        lane = event.lane
        queue_name = self.keys.queue_name(lane)
        redis_message_id = str(uuid.uuid4())
        ref = event_ref(event.page_id, event.event_id)
        message = step_message(self.keys, INGEST, lane, (ref,), redis_message_id=redis_message_id)
        dedup = self.keys.dedup(event.page_id, event.dedup_key) if event.dedup_key else ""
        keys = [
            self.keys.event(ref),
            dedup,
            self.keys.queue(queue_name),
            self.keys.queue_messages(queue_name),
            self.keys.event_pages(event.event_id),
            self.keys.event(event.event_id),  # a bare id is the ref of a record from before pages
            self.keys.page_events(event.page_id),
            self.keys.recent_events(),
        ]
        args = [
            self.settings.event_id_ttl_s,
            self.settings.dedup_window_s,
            f"{time.time():.3f}",
            json.dumps(event.wire(), separators=(",", ":")),
            event.page_id,
            event.type.value,
            lane,
            redis_message_id,
            message.encode(),
            event.event_id,
            ref,
            PAGE_EVENTS_KEPT,
            RECENT_EVENTS_KEPT,
        ]
        # Twice at most, with the same message id: if the first run got through and only its
        # answer was lost, publish.lua answers what it answered then, not "duplicate".
        sent = False  # whether a run may have reached Redis
        for attempt in (1, 2):
            try:
                answers = self._run(keys, args)
                break
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                sent = sent or "connecting to" not in str(exc)
                if attempt == 2:
                    raise NotDurable(
                        f"lost Redis while publishing ({str(exc).strip() or type(exc).__name__})",
                        written="unknown" if sent else "nothing",
                        event_id=event.event_id,
                    ) from exc
        status = answers[0]
        if isinstance(status, Exception):
            raise status  # the script failed (an OOM refusal, say): nothing was written
        result = PublishResult(event.event_id, status.decode() if isinstance(status, bytes) else status)
        if result.status != "duplicate":  # a duplicate wrote nothing to wait for
            self.durability.confirm(event.event_id, answers[1:])
        return result

    def _run(self, keys: list[str], args: list[Any]) -> list[Any]:
        """publish.lua and the durability waits in one round trip on one connection: WAITAOF and
        WAIT wait for the connection's own last write."""
        pipe = self.client.pipeline(transaction=False)
        self._script(keys=keys, args=args, client=pipe)
        for command in self.durability.commands():
            pipe.execute_command(*command)
        return list(pipe.execute(raise_on_error=False))
