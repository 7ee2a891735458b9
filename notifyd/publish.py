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
from notifyd.runtime.settings import Settings
from notifyd.state.keys import Keys
from notifyd.state.scripts import register
from notifyd.state.subscribers import describe_validation_error


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
        self._waitaof: bool | None = None

    def publish(self, data: bytes | str | dict[str, Any] | Event) -> PublishResult:
        event = parse_event(data)
        lane = event.lane
        queue_name = self.keys.queue_name(lane)
        redis_message_id = str(uuid.uuid4())
        message = step_message(self.keys, INGEST, lane, (event.event_id,), redis_message_id=redis_message_id)
        dedup = self.keys.dedup(event.page_id, event.dedup_key) if event.dedup_key else ""
        status = self._script(
            keys=[
                self.keys.event(event.event_id),
                dedup,
                self.keys.queue(queue_name),
                self.keys.queue_messages(queue_name),
            ],
            args=[
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
            ],
        )
        result = PublishResult(event.event_id, status.decode() if isinstance(status, bytes) else status)
        if result.status == "accepted":
            self._wait_for_fsync()
        return result

    def _wait_for_fsync(self) -> None:
        """Where the server keeps an AOF and knows WAITAOF, return only once it is on disk."""
        if self._waitaof is False:
            return
        try:
            self.client.execute_command("WAITAOF", 1, 0, 1000)
            self._waitaof = True
        except redis.ResponseError:
            # Redis < 7.2, or no AOF (then there is no disk to wait for).
            self._waitaof = False
