"""``notifyd status EVENT_ID [--json] [--watch]``."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from notifyd.cli.common import EXIT_INVALID, EXIT_OK, print_json

FINAL_STATES = ("done", "deduplicated")


def _line(summary: dict[str, Any]) -> str:
    c = summary["counts"]
    return (
        f"{summary['event_id']} [{summary['priority']}] {summary['state']}: "
        f"planned {c['planned']}, delivered {c['delivered']}, retrying {c['retrying']}, "
        f"failed {c['failed']}, suppressed {c['suppressed']}, deferred {c.get('deferred', 0)}, "
        f"digested {c.get('digested', 0)}, superseded {c.get('superseded', 0)}"
    )


def settled(summary: dict[str, Any]) -> int:
    c = summary["counts"]
    final = ("delivered", "failed", "rate_limited", "suppressed", "digested", "superseded")
    return sum(c.get(name, 0) for name in final)


def show_status(
    lookup: Callable[[str], dict[str, Any] | None], event_id: str, *, as_json: bool, watch: bool
) -> int:
    """``lookup`` is the tracker's summary, or the API's event summary (None when there is none)."""
    summary = lookup(event_id)
    if summary is None:
        print(f"notifyd: no event {event_id!r} (never accepted, or expired)", file=sys.stderr)
        return EXIT_INVALID
    if not watch:
        if as_json:
            print_json(summary)
        else:
            print(_line(summary))
        return EXIT_OK
    console = Console(stderr=as_json)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task(summary["state"], total=max(1, summary["counts"]["planned"]))
        while True:
            summary = lookup(event_id) or summary
            progress.update(
                task,
                total=max(1, summary["counts"]["planned"]),
                completed=settled(summary),
                description=f"{event_id} {summary['state']}",
            )
            if summary["state"] in FINAL_STATES:
                break
            time.sleep(0.2)
    if as_json:
        print_json(summary)
    else:
        print(_line(summary))
    return EXIT_OK
