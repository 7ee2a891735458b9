"""Health, readiness, Prometheus metrics and the queue view behind the dashboard."""

from __future__ import annotations

import time
from typing import Annotated, Any

import redis
from fastapi import APIRouter, Depends, Request
from starlette.responses import JSONResponse, Response

from notifyd.api.auth import Principal, require
from notifyd.api.context import context_of
from notifyd.api.metrics import exposition
from notifyd.api.problems import ProblemError, documented
from notifyd.api.schemas import Health, QueueView, Readiness
from notifyd.runtime.durability import DurabilityUnavailable
from notifyd.runtime.wiring import Runtime
from notifyd.state.keys import split_ref
from notifyd.state.queues import snapshot
from notifyd.state.tracking import summarize

router = APIRouter(tags=["operations"])

#: Recent events shown by the queue view; a page-scoped key's are read from at most this many pages.
RECENT_EVENTS = 20
MAX_PAGES_SCANNED = 100


@router.get("/healthz", response_model=Health, summary="Liveness")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Redis unreachable or the store is closed"}},
    summary="Readiness: Redis answers and the status store (when there is one) is loaded",
)
def readyz(request: Request) -> Response:
    ctx = context_of(request)
    pressure: float | None = None
    try:
        redis_ok = bool(ctx.runtime.client.ping())
        memory = ctx.runtime.client.info("memory")
        if int(memory.get("maxmemory", 0)):
            pressure = round(int(memory["used_memory"]) / int(memory["maxmemory"]), 4)
    except (redis.RedisError, OSError):
        redis_ok = False
    store = ctx.store
    # StatusStore marks itself closed on close(); a closed replica can no longer serve page status.
    store_state = "absent" if store is None else ("closed" if getattr(store, "_closed", False) else "loaded")
    durability = _durability(ctx.runtime) if redis_ok else {"policy": ctx.runtime.settings.durability}
    ready = redis_ok and store_state != "closed" and durability.get("met") is not False
    body = {
        "status": "ready" if ready else "unready",
        "redis": redis_ok,
        "store": store_state,
        "memory_pressure": pressure,
        "durability": durability,
    }
    return JSONResponse(body, status_code=200 if ready else 503)


def _durability(runtime: Runtime) -> dict[str, Any]:
    """The policy in force, and whether Redis can meet it now (AOF or a replica can go away)."""
    policy = runtime.publisher.durability
    try:
        return {"policy": policy.mode, "met": True, "how": policy.check(runtime.client)}
    except DurabilityUnavailable as exc:
        return {"policy": policy.mode, "met": False, "how": str(exc)}
    except redis.RedisError:
        return {"policy": policy.mode}


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    summary="Prometheus exposition",
)
def metrics(request: Request) -> Response:
    return Response(exposition(request.app.state.queue_collector), media_type="text/plain; version=0.0.4")


def queue_view(rt: Runtime, pages_seen: frozenset[str] | None = None) -> dict[str, Any]:
    """Queue depths (lane totals, no page in them) and the latest accepted events of
    ``pages_seen`` (None: every page), queued ones included, subscribers or not."""
    snap = snapshot(rt.client, rt.keys)
    return {**snap, "recent_events": _recent_events(rt, pages_seen), "at": time.time()}


def _recent_events(rt: Runtime, pages_seen: frozenset[str] | None) -> list[dict[str, Any]]:
    pipe = rt.client.pipeline(transaction=False)
    if pages_seen is None:
        pipe.zrevrange(rt.keys.recent_events(), 0, RECENT_EVENTS - 1, withscores=True)
    else:
        for page_id in sorted(pages_seen)[:MAX_PAGES_SCANNED]:
            pipe.zrevrange(rt.keys.page_events(page_id), 0, RECENT_EVENTS - 1, withscores=True)
    latest: list[tuple[float, str]] = []
    for found in pipe.execute():
        latest.extend((score, e.decode() if isinstance(e, bytes) else e) for e, score in found)
    latest.sort(reverse=True)
    refs = [e for _, e in latest[:RECENT_EVENTS]]  # events are listed by ref
    pipe = rt.client.pipeline(transaction=False)
    for ref in refs:
        pipe.hgetall(rt.keys.event(ref))
    recent = []
    for ref, raw in zip(refs, pipe.execute() if refs else [], strict=True):
        if raw:
            recent.append(summarize(split_ref(ref)[1], {k.decode(): v.decode() for k, v in raw.items()}))
    return recent


@router.get(
    "/v1/queues",
    response_model=QueueView,
    responses=documented(401, 403, 503),
    summary="Queue depths, retries, dead letters, workers and recent events (of the key's pages)",
)
def queues(
    request: Request, principal: Annotated[Principal, Depends(require("operate", cookie=True))]
) -> dict[str, Any]:
    try:
        return queue_view(context_of(request).runtime, principal.pages)
    except redis.RedisError:
        raise ProblemError(503, "Redis is unreachable", kind="unavailable") from None
