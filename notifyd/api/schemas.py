"""Response models: they document the answers in /openapi.json and filter what leaves."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from notifyd.state.tracking import DeliveryStatus

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
    deferred: int = Field(
        0, description="Held by the rate limit or quiet hours; a digest carries them later."
    )
    digested: int = Field(0, description="Delivered inside a digest.")
    superseded: int = Field(0, description="A newer update of the same incident made them moot.")


class EventSummary(BaseModel):
    event_id: str
    page_id: str | None
    type: str | None
    priority: str | None
    state: Literal["accepted", "fanning_out", "delivering", "done", "deduplicated"]
    counts: Counts
    filtered: dict[str, int] = Field(
        default_factory=dict,
        description="Deliveries a subscriber filter stopped, by filter: event_type, incident_phase, "
        "maintenance_phase, min_impact, maintenance. They are counted in `suppressed` too.",
    )
    suppressed_by: str | None = Field(
        default=None,
        description="The ingest filter that kept the whole event from subscribers: replicated_duplicate, "
        "stale, notify_false, or maintenance (a component alert inside a running maintenance window).",
    )
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
    digest_id: str | None = Field(
        default=None, description="For a digested delivery: the delivery id of the digest that carried it."
    )


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


class QuietHoursOut(BaseModel):
    tz: str
    start: str
    end: str
    allow_critical: bool


class SubscriberOut(BaseModel):
    id: str
    page_id: str
    channel: str
    target: str | None = Field(
        default=None,
        description="As given, except a Slack incoming-webhook URL (a credential, stored sealed): its "
        "scheme, host and last four characters, https://hooks.slack.com/...Xy12",
    )
    components: list[str] | None = None
    contact_email: str | None = None
    event_types: list[Literal["incident", "maintenance", "component"]] | None = None
    min_impact: Literal["none", "minor", "major", "critical"] | None = None
    incident_phases: list[Literal["created", "updated", "resolved"]] | None = None
    quiet_hours: QuietHoursOut | None = None
    status: Literal["active", "disabled", "removed"]
    disabled_reason: str | None = None
    secret: str | None = Field(
        default=None, description="The generated webhook secret; present once, in the answer that created it."
    )
    warnings: list[str] | None = Field(
        default=None, description="Accepted, but worth knowing: a target host that does not resolve now."
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
    kept_unsubscribed: int = Field(
        description="Lines whose subscriber had opted out (unsubscribed, SMS STOP, 410 Gone): left disabled."
    )
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


class DurabilityState(BaseModel):
    policy: Literal["fsync", "replica", "none"] = Field(description="NOTIFYD_DURABILITY in force")
    met: bool | None = Field(
        default=None, description="Whether Redis can meet it now (null: Redis unreachable)"
    )
    how: str | None = Field(default=None, description="How Redis meets it, or why it cannot")


class Readiness(BaseModel):
    status: Literal["ready", "unready"]
    redis: bool
    store: Literal["loaded", "absent", "closed"]
    memory_pressure: float | None = Field(
        default=None,
        description="Redis used_memory / maxmemory (null: no limit set, or Redis unreachable). "
        "At 1.0 a noeviction server refuses writes, and publishing answers 503.",
    )
    durability: DurabilityState


class Lane(BaseModel):
    lane: str
    ready: int
    in_flight: int
    delayed: int
    dead_messages: int
    oldest_age_s: float = Field(
        description="Seconds the longest-waiting ready message has waited (0 when none is ready)"
    )


class RecentEvent(EventSummary):
    pass


class QueueView(BaseModel):
    lanes: list[Lane]
    dead_deliveries: int
    workers: int
    recent_events: list[RecentEvent]
    at: float


class Percentiles(BaseModel):
    p50: float | None = Field(description="Milliseconds; null without deliveries")
    p99: float | None


class LaneThroughput(BaseModel):
    lane: str
    delivered: list[int] = Field(description="Deliveries per bucket, oldest first; the last is still filling")
    retrying: list[int]
    failed: list[int]
    latency_ms: Percentiles = Field(description="Publish-to-delivery latency over the whole window")


class BucketLatency(BaseModel):
    p50: list[float | None]
    p99: list[float | None]


class Throughput(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "bucket_s": 10,
                    "start": 1764680400,
                    "at": 1764681305.2,
                    "delivered_per_s": 118.4,
                    "lanes": [
                        {
                            "lane": "critical",
                            "delivered": [0, 1200, 40],
                            "retrying": [0, 3, 0],
                            "failed": [0, 1, 0],
                            "latency_ms": {"p50": 45.3, "p99": 861.1},
                        }
                    ],
                    "latency_ms": {"p50": [None, 45.3, 38.1], "p99": [None, 861.1, 90.5]},
                    "window_latency_ms": {"p50": 45.3, "p99": 861.1},
                }
            ]
        }
    )

    bucket_s: int
    start: int = Field(description="Unix time of the first bucket's start")
    at: float
    delivered_per_s: float = Field(description="Over the last ten seconds or so, every lane")
    lanes: list[LaneThroughput]
    latency_ms: BucketLatency = Field(description="Per bucket, every lane together")
    window_latency_ms: Percentiles = Field(description="Over the whole window, every lane together")


class RetryLane(BaseModel):
    lane: str
    messages: list[int] = Field(description="Delayed messages per due-time bucket")
    deliveries: list[int] = Field(description="Deliveries those retry messages carry")


class RetryBacklog(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "buckets": ["overdue", "< 1 min", "1-5 min", "5-15 min", "15-60 min", "> 1 h"],
                    "lanes": [
                        {"lane": "normal", "messages": [0, 2, 1, 0, 0, 0], "deliveries": [0, 180, 7, 0, 0, 0]}
                    ],
                    "truncated": False,
                    "at": 1764681305.2,
                }
            ]
        }
    )

    buckets: list[str]
    lanes: list[RetryLane]
    truncated: bool = Field(description="A lane held more delayed messages than one read covers")
    at: float


class CircuitView(BaseModel):
    channel: str
    key: str = Field(description="The host or provider, never a path")
    state: Literal["open", "half_open"]
    retry_in_s: float
    workers: int = Field(description="Worker processes that see it open")


class QuarantinedEndpoint(BaseModel):
    page_id: str
    subscriber_id: str
    channel: str
    endpoint: str = Field(description="Scheme, host and port only: a URL's path may be its secret")
    since: str


class EndpointTrouble(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "workers_reporting": 2,
                    "circuits": [
                        {
                            "channel": "webhook",
                            "key": "https://hooks.example.com:443",
                            "state": "open",
                            "retry_in_s": 21.5,
                            "workers": 2,
                        }
                    ],
                    "quarantined": [
                        {
                            "page_id": "acme",
                            "subscriber_id": "sub-1",
                            "channel": "webhook",
                            "endpoint": "https://hooks.example.com",
                            "since": "2026-12-02T13:00:00Z",
                        }
                    ],
                }
            ]
        }
    )

    workers_reporting: int
    circuits: list[CircuitView]
    quarantined: list[QuarantinedEndpoint]


def subscriber_out(public: dict[str, Any], secret: str | None = None) -> dict[str, Any]:
    out = dict(public)
    if secret is not None:
        out["secret"] = secret
    return out
