"""What the dashboard charts: throughput and latency, the retry backlog, and troubled endpoints.

Each route reads what the workers keep in Redis (see ``notifyd/state/throughput.py``,
``circuits.py`` and ``quarantine.py``, and the broker's delay queues); none of them scans
the keyspace, so polling them every few seconds stays cheap at any size.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from notifyd.api.auth import Principal, require
from notifyd.api.context import context_of
from notifyd.api.problems import documented
from notifyd.api.schemas import EndpointTrouble, RetryBacklog, Throughput
from notifyd.runtime.settings import PRIORITIES
from notifyd.state import circuits, quarantine, throughput
from notifyd.state.queues import retry_backlog

router = APIRouter(prefix="/v1/stats", tags=["operations"])
OPERATE = [Depends(require("operate", cookie=True))]


@router.get(
    "/throughput",
    response_model=Throughput,
    responses=documented(401, 403, 503),
    dependencies=OPERATE,
    summary="Delivered, retrying and failed per lane per 10 s over 15 minutes, with latency p50/p99",
)
def get_throughput(request: Request) -> dict[str, Any]:
    rt = context_of(request).runtime
    return throughput.read(rt.client, rt.keys, PRIORITIES, now=time.time())


@router.get(
    "/retries",
    response_model=RetryBacklog,
    responses=documented(401, 403, 503),
    dependencies=OPERATE,
    summary="The retry backlog per lane, by when it comes due",
)
def get_retry_backlog(request: Request) -> dict[str, Any]:
    rt = context_of(request).runtime
    return retry_backlog(rt.client, rt.keys, now=time.time())


@router.get(
    "/endpoints",
    response_model=EndpointTrouble,
    responses=documented(401, 403, 503),
    summary="Hosts with an open circuit (as the workers see them) and quarantined endpoints",
)
def get_endpoint_trouble(
    request: Request, principal: Annotated[Principal, Depends(require("operate", cookie=True))]
) -> dict[str, Any]:
    """Quarantined endpoints of the key's pages only. Circuits are per host, shared by every page
    that sends there, so a key limited to pages sees none (a host names other pages' receivers)."""
    rt = context_of(request).runtime
    now = time.time()
    open_circuits = circuits.read(rt.client, rt.keys, now=now)
    if principal.pages is not None:
        open_circuits = {**open_circuits, "circuits": []}
    quarantined = quarantine.read(rt.client, rt.keys, rt.subscribers)
    return {
        **open_circuits,
        "quarantined": [q for q in quarantined if principal.reaches(q["page_id"])],
    }
