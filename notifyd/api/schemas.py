"""Response models: they document the answers in /openapi.json and filter what leaves."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

DeliveryStatus = Literal["pending", "delivered", "retrying", "failed", "rate_limited", "suppressed"]
ChannelName = Literal["email", "sms", "slack", "webhook"]


class PublishAnswer(BaseModel):
    event_id: str
    status: Literal["accepted", "duplicate", "deduplicated"]


class Counts(BaseModel):
    planned: int
    delivered: int
    retrying: int
    failed: int
    rate_limited: int
    suppressed: int


class EventSummary(BaseModel):
    event_id: str
    page_id: str | None
    type: str | None
    priority: str | None
    state: Literal["accepted", "fanning_out", "delivering", "done", "deduplicated"]
    counts: Counts
    accepted_at: str | None = None
    started_at: str | None
    finished_at: str | None


class Delivery(BaseModel):
    delivery_id: str
    subscriber_id: str
    channel: str
    status: DeliveryStatus
    attempts: int
    last_error: str | None
    updated_at: str | None


class DeliveryPage(BaseModel):
    items: list[Delivery]
    next_cursor: str | None = Field(
        description="Pass it as `cursor` for the next page; null at the end. A page may hold fewer "
        "than `limit` items (a filter scans at most a bounded range per request) and still have one."
    )


class SubscriberDelivery(Delivery):
    event_id: str


class SubscriberDeliveries(BaseModel):
    subscriber_id: str
    page_id: str
    items: list[SubscriberDelivery]


class Redriven(BaseModel):
    event_id: str
    redriven: int


class SubscriberOut(BaseModel):
    id: str
    page_id: str
    channel: str
    target: str | None = None
    components: list[str] | None = None
    contact_email: str | None = None
    status: Literal["active", "disabled", "removed"]
    disabled_reason: str | None = None
    secret: str | None = Field(
        default=None, description="The generated webhook secret; present once, in the answer that created it."
    )


class SubscriberPage(BaseModel):
    items: list[SubscriberOut]
    next_cursor: str | None


class Rejection(BaseModel):
    line: int
    error: str


class ImportSummary(BaseModel):
    imported: int
    updated: int
    rejected: list[Rejection]
    rejected_total: int = Field(description="All rejected lines; `rejected` lists the first 1000.")


class Unsubscribed(BaseModel):
    page_id: str
    subscriber_id: str
    status: Literal["unsubscribed"]


class PageStatus(BaseModel):
    """The CRDT store's merged view of a page; its shape is the store's."""

    model_config = ConfigDict(extra="allow")


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "unready"]
    redis: bool
    store: Literal["loaded", "absent", "closed"]


class Lane(BaseModel):
    lane: str
    ready: int
    in_flight: int
    delayed: int
    dead_messages: int


class RecentEvent(EventSummary):
    pass


class QueueView(BaseModel):
    lanes: list[Lane]
    dead_deliveries: int
    workers: int
    recent_events: list[RecentEvent]
    at: float


def subscriber_out(public: dict[str, Any], secret: str | None = None) -> dict[str, Any]:
    out = dict(public)
    if secret is not None:
        out["secret"] = secret
    return out
