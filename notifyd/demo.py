"""``make demo``: the engine on its embedded defaults, delivering to local stand-ins.

No Redis, no accounts: an embedded Valkey in ./var/demo, a webhook receiver
that checks every signature, and loopback stand-ins for SMTP, Twilio and
Slack when the channel package provides them. A page with a few hundred
subscribers hears an incident being created, updated and resolved.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shutil
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from notifyd.runtime.settings import Settings
from notifyd.runtime.wiring import Runtime
from notifyd.runtime.worker import InProcessWorker, open_store
from notifyd.state.keys import event_ref

PAGE = "acme"
WEBHOOK_SUBSCRIBERS = 300
console = Console()


class WebhookReceiver:
    """Counts deliveries per webhook-id and checks each Standard Webhooks signature."""

    def __init__(self, secrets: dict[str, str]) -> None:
        self.secrets = secrets  # path -> whsec_ secret
        self.by_id: Counter[str] = Counter()
        self.bodies: list[dict[str, Any]] = []
        self.bad_signatures = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                ok = receiver.verify(self.path, self.headers, body)
                with receiver.lock:
                    receiver.by_id[self.headers.get("webhook-id", "")] += 1
                    receiver.bad_signatures += 0 if ok else 1
                    receiver.bodies.append(json.loads(body or b"{}"))
                self.send_response(204 if ok else 401)
                self.send_header("content-length", "0")
                self.end_headers()

        class Server(ThreadingHTTPServer):
            request_queue_size = 1024
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def verify(self, path: str, headers: Any, body: bytes) -> bool:
        secret = self.secrets.get(path)
        if secret is None:
            return False
        key = base64.b64decode(secret.removeprefix("whsec_"))
        signed = f"{headers.get('webhook-id')}.{headers.get('webhook-timestamp')}.".encode() + body
        expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        offered = [s.split(",", 1)[-1] for s in headers.get("webhook-signature", "").split()]
        return any(hmac.compare_digest(expected, s) for s in offered)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def lifecycle() -> list[dict[str, Any]]:
    incident = {"id": "inc-42", "title": "Database outage", "impact": "critical", "components": ["api", "db"]}
    stamp = int(time.time())
    return [
        {
            "event_id": f"inc-42-created-{stamp}",
            "type": "incident_created",
            "page_id": PAGE,
            "occurred_at": _now(),
            "incident": {**incident, "status": "investigating", "message": "Elevated errors on the API."},
        },
        {
            "event_id": f"inc-42-update-1-{stamp}",
            "type": "incident_updated",
            "page_id": PAGE,
            "occurred_at": _now(),
            "incident": {
                **incident,
                "status": "identified",
                "message": "Primary database failed; failover in progress.",
            },
        },
        {
            "event_id": f"inc-42-resolved-{stamp}",
            "type": "incident_resolved",
            "page_id": PAGE,
            "occurred_at": _now(),
            "incident": {
                **incident,
                "status": "resolved",
                "impact": "critical",
                "message": "Failover complete.",
            },
        },
    ]


def main() -> int:
    try:
        from notifyd.standins import start_standins
    except ImportError as exc:  # StandinsUnavailable: its message is the install hint
        print(f"notifyd demo: {exc}", file=sys.stderr)
        return 2
    data_dir = Path("var/demo")
    shutil.rmtree(data_dir, ignore_errors=True)
    standins = start_standins()
    extra_subscribers = standins.sample_subscribers
    settings = Settings(
        data_dir=data_dir,
        namespace="demo",
        allow_private_targets=True,
        shard_size=100,
        # Compressed so the demo shows a digest and a maintenance lifecycle in seconds.
        rate_limit="3/5 seconds",
        maintenance_reminder_s=3,
        schedule_poll_ms=50,
        **standins.settings,
    )
    console.rule("[bold]notifyd demo")
    runtime = Runtime.start(settings)
    where = "embedded Valkey (AOF in var/demo/redis)" if runtime.embedded else runtime.url
    console.print(f"Redis: {where}")

    secrets: dict[str, str] = {}
    receiver = WebhookReceiver(secrets)
    for i in range(WEBHOOK_SUBSCRIBERS):
        path = f"/hooks/{i}"
        added = runtime.subscribers.add(PAGE, {"channel": "webhook", "target": receiver.url + path})
        secrets[path] = added.generated_secret or ""
    for channel, target in extra_subscribers:
        runtime.subscribers.add(PAGE, {"channel": channel, "target": target})
    console.print(
        f"Page [bold]{PAGE}[/]: {runtime.subscribers.count(PAGE)} subscribers "
        f"({WEBHOOK_SUBSCRIBERS} signed webhooks to {receiver.url}"
        + (
            f", plus {len(extra_subscribers)} on email, SMS and Slack stand-ins)"
            if extra_subscribers
            else ")"
        )
    )

    store = open_store(settings, "demo")
    worker = InProcessWorker.start(runtime, threads=8, store=store)
    summaries = []
    bad_ops = 1
    try:
        for event in lifecycle():
            result = runtime.publisher.publish(event)
            console.print(f"published [cyan]{event['type']}[/] {event['event_id']}: {result.status}")
            summaries.append(_follow(runtime, event["event_id"]))
        duplicate = runtime.publisher.publish(lifecycle()[0] | {"event_id": summaries[0]["event_id"]})
        console.print(
            f"re-published {summaries[0]['event_id']}: [yellow]{duplicate.status}[/] (delivers nothing)"
        )
        ops = WebhookReceiver({})
        for page, path in ((OPS_PAGE, "/ops"), (MAINTENANCE_PAGE, "/maint")):
            added = runtime.subscribers.add(page, {"channel": "webhook", "target": ops.url + path})
            ops.secrets[path] = added.generated_secret or ""
        show_digest(runtime, ops)
        show_maintenance(runtime, ops)
        ops.stop()
        bad_ops = ops.bad_signatures
    finally:
        worker.stop()
    _report(summaries, receiver, standins.servers)
    console.print(f"Page [bold]{PAGE}[/] in the CRDT status store (GET /v1/pages/{PAGE}/status):")
    console.print_json(data=store.page_status(PAGE))
    store.close()
    receiver.stop()
    standins.stop()
    runtime.close()
    _self_service_links()
    console.print(
        "Done. Run it yourself: [bold].venv/bin/notifyd dev --standins[/] "
        "(README: HTTP API, with curl alone)."
    )
    return 0 if receiver.bad_signatures == 0 and bad_ops == 0 else 1


OPS_PAGE = "acme-ops"
MAINTENANCE_PAGE = "acme-db"


def _wait(predicate: Any, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def show_digest(runtime: Runtime, ops: WebhookReceiver) -> None:
    """Six updates and a resolve against a limit of 3 per 5 s: three sends, then one digest."""
    console.rule("[bold]Defer and coalesce (NOTIFYD_RATE_LIMIT=3/5 seconds)")
    incident = {"id": "inc-7", "title": "Checkout errors", "impact": "major", "components": ["api"]}
    base = time.time()
    stamp = int(base)
    statuses = [
        "investigating",
        "identified",
        "identified",
        "monitoring",
        "monitoring",
        "monitoring",
        "resolved",
    ]
    for n, status in enumerate(statuses, 1):
        kind = "incident_resolved" if status == "resolved" else "incident_updated"
        event_id = f"inc-7-{n}-{stamp}"
        event: dict[str, Any] = {
            "event_id": event_id,
            "type": kind,
            "page_id": OPS_PAGE,
            "occurred_at": datetime.fromtimestamp(base + n, UTC).isoformat().replace("+00:00", "Z"),
            "incident": {**incident, "status": status, "message": f"update {n}"},
        }
        runtime.publisher.publish(event)
        _wait(lambda e=event_id: _settled(runtime, e))
        record = next(iter(runtime.tracker.bucket_records(event_ref(OPS_PAGE, event_id), 0).values()), None)
        console.print(f"  {kind:<18} {status:<13} -> {record.status if record else '?'}")
    _wait(lambda: any(b.get("type") == "digest" for b in ops.bodies))
    for body in ops.bodies:
        if body.get("type") == "digest":
            console.print(f"  [green]digest[/] {body['event_id']}: {'; '.join(body['summary'])}")
        else:
            console.print(
                f"  sent {body['type']}: {body['incident']['status']} ({body['incident']['message']})"
            )
    ops.bodies.clear()


def _settled(runtime: Runtime, event_id: str) -> bool:
    summary = runtime.tracker.summary_by_id(event_id)
    if summary is None or summary["state"] in ("accepted", "fanning_out"):
        return False
    c = summary["counts"]
    return (
        c["planned"] > 0 and c["pending"] == 0
        if "pending" in c
        else c["retrying"] == 0
        and (
            sum(c[k] for k in ("delivered", "deferred", "digested", "superseded", "failed", "suppressed"))
            == c["planned"]
        )
    )


def show_maintenance(runtime: Runtime, ops: WebhookReceiver) -> None:
    """Announce, remind, start and complete a maintenance, with a component alert kept quiet inside."""
    console.rule("[bold]Scheduled maintenance (reminder 3 s before, auto_transition)")
    now = time.time()

    def at(offset: float) -> str:
        return datetime.fromtimestamp(now + offset, UTC).isoformat().replace("+00:00", "Z")

    window = {
        "id": f"mw-{int(now)}",
        "title": "Database upgrade",
        "message": "Postgres 17; writes pause for a minute.",
        "starts_at": at(5),
        "ends_at": at(8),
        "components": ["db"],
        "auto_transition": True,
    }
    scheduled: dict[str, Any] = {
        "event_id": f"{window['id']}-scheduled",
        "type": "maintenance_scheduled",
        "page_id": MAINTENANCE_PAGE,
        "occurred_at": at(0),
        "maintenance": window,
    }
    runtime.publisher.publish(scheduled)
    seen = 0
    alert_sent = False
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        while seen < len(ops.bodies):
            body = ops.bodies[seen]
            seen += 1
            m = body.get("maintenance") or {}
            console.print(f"  {datetime.now(UTC):%H:%M:%S} {body['type']}: {m.get('message', '')}")
            if body["type"] == "maintenance_started" and not alert_sent:
                alert_sent = True
                verdict = _alert_inside(runtime, f"{window['id']}-db-alert", at(6))
                console.print(f"  a db component alert inside the window: suppressed_by={verdict}")
            if body["type"] == "maintenance_completed":
                console.print("  maintenance lifecycle complete")
                return
        time.sleep(0.05)


def _alert_inside(runtime: Runtime, event_id: str, occurred_at: str) -> str | None:
    alert: dict[str, Any] = {
        "event_id": event_id,
        "type": "component_status_changed",
        "page_id": MAINTENANCE_PAGE,
        "occurred_at": occurred_at,
        "component": {"id": "db", "name": "Database", "status": "degraded_performance"},
    }
    runtime.publisher.publish(alert)
    _wait(lambda: (runtime.tracker.summary_by_id(event_id) or {}).get("state") == "done")
    return (runtime.tracker.summary_by_id(event_id) or {}).get("suppressed_by")


def _self_service_links() -> None:
    """A reader subscribed in the store `notifyd dev` uses (its settings, its Redis, its link key),
    and the signed link to their preference page, which works while `notifyd dev` runs."""
    from notifyd.runtime.settings import ConfigError, load_settings
    from notifyd.selfservice.wiring import links_for

    try:
        settings = load_settings()
        runtime = Runtime.start(settings)
    except (ConfigError, OSError, RuntimeError) as exc:
        console.print(f"[yellow]No preference-page link: notifyd dev's store is not reachable ({exc})[/]")
        return
    try:
        reader = runtime.subscribers.add(
            PAGE, {"channel": "email", "target": "demo-reader@example.com", "components": ["api"]}
        ).subscriber
        links = links_for(runtime)
        base = settings.public_url.rstrip("/")
        console.print("Self-service, with [bold].venv/bin/notifyd dev[/] running, open in a browser:")
        console.print(f"  Preference page: {links.manage_url(PAGE, reader.id)}", soft_wrap=True)
        console.print(f"  Sign-up form:    {base}/status/{PAGE}/subscribe", soft_wrap=True)
    finally:
        runtime.close()


def _follow(runtime: Runtime, event_id: str) -> dict[str, Any]:
    with Progress(
        TextColumn("  {task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("accepted", total=1)
        deadline = time.monotonic() + 120
        while True:
            summary = runtime.tracker.summary_by_id(event_id)
            assert summary is not None
            c = summary["counts"]
            settled = sum(
                c[k] for k in ("delivered", "failed", "rate_limited", "suppressed", "digested", "superseded")
            )
            progress.update(task, total=max(1, c["planned"]), completed=settled, description=summary["state"])
            if summary["state"] in ("done", "deduplicated") or time.monotonic() > deadline:
                return summary
            time.sleep(0.05)


def _report(summaries: list[dict[str, Any]], receiver: WebhookReceiver, standins: list[Any]) -> None:
    table = Table(title="Deliveries per event", expand=False)
    for column in ("event", "state", "planned", "delivered", "retrying", "failed", "limited", "took"):
        table.add_column(column, justify="right")
    for s in summaries:
        c = s["counts"]
        took = "-"
        if s["finished_at"] and s["accepted_at"]:
            start = datetime.fromisoformat(s["accepted_at"].replace("Z", "+00:00"))
            end = datetime.fromisoformat(s["finished_at"].replace("Z", "+00:00"))
            took = f"{max(0.0, (end - start).total_seconds()):.2f}s"
        table.add_row(
            s["type"].removeprefix("incident_"),
            s["state"],
            *(str(c[k]) for k in ("planned", "delivered", "retrying", "failed", "rate_limited")),
            took,
        )
    console.print(table)
    total = sum(receiver.by_id.values())
    console.print(
        f"Webhook receiver: {total} requests, {len(receiver.by_id)} distinct webhook-ids, "
        f"{receiver.bad_signatures} bad signatures"
    )
    for name, server in standins:
        console.print(f"{name} stand-in received {len(server.received)} message(s)")


if __name__ == "__main__":
    sys.exit(main())
