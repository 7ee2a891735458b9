"""The API's own counters, and queue gauges read from Redis at scrape time.

Queue depths live in Redis, shared by every process, so they are not kept in
this process's memory: a custom collector reads them when Prometheus scrapes.
Only counts and lane names are exported, never a key, target or secret.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import redis
from prometheus_client import REGISTRY, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

import notifyd.pipeline.metrics  # noqa: F401 - registers the pipeline families, so /metrics always lists them
from notifyd.runtime.settings import CHANNELS
from notifyd.runtime.wiring import Runtime
from notifyd.state import circuits
from notifyd.state.queues import snapshot

PUBLISHED = Counter("notifyd_api_published_total", "Events published through the API, by answer", ["status"])
#: Peer payloads refused on POST /v1/sync. Reasons (a closed set): ``too_large`` (over the sync
#: body limit), ``bad_payload`` (not one well-formed sync message), ``wrong_peer`` (the sync key
#: speaks for another peer) and ``clock_skew`` (a stamp, or a seen event id's expiry, beyond
#: what this region's clock and the event-id TTL allow: a peer pre-seeding ids or pinning a
#: status). Nothing of a refused payload is merged.
SYNC_REFUSED = Counter("notifyd_sync_refused_total", "Peer sync payloads refused, by reason", ["reason"])
REQUESTS = Counter(
    "notifyd_api_requests_total", "HTTP requests answered by the API", ["method", "route", "status"]
)


class QueueCollector(Collector):
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("notifyd_redis_up", "Whether the API could read Redis at this scrape")
        try:
            snap = snapshot(self.runtime.client, self.runtime.keys)
        except redis.RedisError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        families = {
            "ready": GaugeMetricFamily("notifyd_queue_ready", "Messages waiting in a lane", labels=["lane"]),
            "delayed": GaugeMetricFamily(
                "notifyd_queue_delayed", "Delayed messages (retries) of a lane", labels=["lane"]
            ),
            "in_flight": GaugeMetricFamily(
                "notifyd_queue_in_flight", "Messages a worker took and has not acked", labels=["lane"]
            ),
            "dead_messages": GaugeMetricFamily(
                "notifyd_queue_dead_messages", "Messages dramatiq dead-lettered in a lane", labels=["lane"]
            ),
            "oldest_age_s": GaugeMetricFamily(
                "notifyd_queue_oldest_age_seconds",
                "How long the longest-waiting ready message of a lane has waited (0 when the lane is empty)",
                labels=["lane"],
            ),
        }
        for lane in snap["lanes"]:
            for field, family in families.items():
                family.add_metric([lane["lane"]], lane[field])
        yield from families.values()
        yield GaugeMetricFamily(
            "notifyd_dead_deliveries",
            "Deliveries that failed for good (dead-letter index)",
            value=snap["dead_deliveries"],
        )
        yield GaugeMetricFamily(
            "notifyd_workers", "Worker processes with a live heartbeat", value=snap["workers"]
        )
        try:
            yield _circuits_open(circuits.read(self.runtime.client, self.runtime.keys, now=time.time()))
        except redis.RedisError:
            return


def _circuits_open(view: dict[str, Any]) -> GaugeMetricFamily:
    """Hosts and providers whose circuit is open or half-open in at least one worker, per channel."""
    family = GaugeMetricFamily(
        "notifyd_circuits_open",
        "Hosts or providers with an open (or half-open) circuit in at least one worker",
        labels=["channel"],
    )
    counts = dict.fromkeys(CHANNELS, 0)
    for circuit in view["circuits"]:
        counts[circuit["channel"]] = counts.get(circuit["channel"], 0) + 1
    for channel, n in sorted(counts.items()):
        family.add_metric([channel], n)
    return family


class _Combined:
    """The process registry (pipeline and API counters) plus this app's scrape-time gauges."""

    def __init__(self, *collectors: object) -> None:
        self.collectors = collectors

    def collect(self) -> Iterator[Metric]:
        for collector in self.collectors:
            yield from collector.collect()  # type: ignore[attr-defined]


def exposition(runtime_collector: QueueCollector) -> bytes:
    # Each app has its own collector (tests run several apps in one process), so it is not
    # registered globally; it is merged in at scrape time instead.
    return generate_latest(_Combined(REGISTRY, runtime_collector))  # type: ignore[arg-type]
