"""``notifyd queues``: a live terminal view of queue depths, rates, retries and dead letters."""

from __future__ import annotations

import time
from typing import Any

from rich.live import Live
from rich.table import Table

from notifyd.cli.common import EXIT_OK, print_json
from notifyd.state.queues import snapshot


def _table(snap: dict[str, Any], rates: dict[str, float]) -> Table:
    table = Table(
        title=f"notifyd queues — {snap['workers']} worker process(es), "
        f"{snap['dead_deliveries']} dead-lettered deliveries"
    )
    for column in ("lane", "ready", "in flight", "delayed (retries)", "dead messages", "drain/s"):
        table.add_column(column, justify="right")
    for lane in snap["lanes"]:
        table.add_row(
            lane["lane"],
            str(lane["ready"]),
            str(lane["in_flight"]),
            str(lane["delayed"]),
            str(lane["dead_messages"]),
            f"{rates.get(lane['lane'], 0.0):.1f}",
        )
    return table


def watch_queues(rt: Any, *, once: bool, as_json: bool) -> int:
    snap = snapshot(rt.client, rt.keys)
    if once:
        if as_json:
            print_json(snap)
        else:
            from rich.console import Console

            Console().print(_table(snap, {}))
        return EXIT_OK
    previous, at = snap, time.monotonic()
    with Live(_table(snap, {}), refresh_per_second=2) as live:
        while True:
            time.sleep(1.0)
            snap, now = snapshot(rt.client, rt.keys), time.monotonic()
            rates = {
                new["lane"]: max(0.0, (old["ready"] - new["ready"]) / (now - at))
                for old, new in zip(previous["lanes"], snap["lanes"], strict=True)
            }
            live.update(_table(snap, rates))
            previous, at = snap, now
