"""Prometheus metrics of the pipeline (queue depths are read from Redis by the API)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

EVENTS_INGESTED = Counter("notifyd_events_ingested_total", "Events taken by the ingest actor", ["priority"])
EVENTS_FILTERED = Counter(
    "notifyd_events_filtered_total",
    "Events that deliver nothing, by the filter that stopped them",
    ["filter"],
)
DELIVERIES_FILTERED = Counter(
    "notifyd_deliveries_filtered_total",
    "Deliveries a subscriber's preferences kept back, by filter",
    ["filter", "channel"],
)
#: The ``outcome`` of a delivery attempt that sent nothing: the subscriber's sealed parts (its
#: webhook secret, ...) did not open, because the key that sealed them is not configured or the
#: record was altered. Retried on the channel's schedule like a transient outcome.
UNOPENABLE = "unopenable"
#: ``outcome`` (here and in DIGESTS) is a closed set: an adapter's OutcomeKind (``delivered``,
#: ``transient``, ``permanent``) or ``unopenable``.
DELIVERIES = Counter("notifyd_deliveries_total", "Delivery attempts by outcome", ["channel", "outcome"])
RATE_LIMITED = Counter(
    "notifyd_rate_limited_total", "Deliveries the rate limit deferred to a digest", ["channel"]
)
DEFERRED = Counter(
    "notifyd_deliveries_deferred_total",
    "Deliveries deferred to a digest, by why (rate limit, quiet hours, waiting for digest, digest)",
    ["channel", "reason"],
)
SUPERSEDED = Counter(
    "notifyd_deliveries_superseded_total", "Deliveries a newer update of the same incident made moot"
)
DIGESTS = Counter("notifyd_digests_total", "Digests sent, by outcome", ["channel", "outcome"])
UNBACKED_SEEN = Counter(
    "notifyd_events_unbacked_seen_total",
    "Events delivered although their id was marked seen: nothing of the event was in the status "
    "store behind the mark (a peer pre-seeding ids)",
)
SHARDS = Counter("notifyd_shards_total", "Fanout shards run", ["priority"])
PUBLISH_TO_DELIVERY = Histogram(
    "notifyd_publish_to_delivery_seconds",
    "From acceptance to a delivered outcome",
    ["channel", "priority"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
)
