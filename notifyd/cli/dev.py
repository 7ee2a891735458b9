"""``notifyd dev``: the embedded server (when no URL is set), the workers and the API, in one process."""

from __future__ import annotations

import signal
import sys
import threading

from notifyd.api.server import start_in_thread
from notifyd.cli.common import CliError
from notifyd.runtime.connection import describe_url
from notifyd.runtime.replication import start_replication
from notifyd.runtime.settings import Settings
from notifyd.runtime.wiring import Runtime
from notifyd.runtime.worker import InProcessWorker, open_store


def run_dev(settings: Settings, *, host: str, port: int, threads: int, standins: bool = False) -> int:
    local = None
    if standins:
        try:
            from notifyd.standins import start_standins
        except ImportError as exc:  # StandinsUnavailable: its message is the install hint
            raise CliError(f"notifyd dev --standins: {exc}") from None

        local = start_standins(webhook_inbox=True)
        settings = settings.model_copy(update=local.settings)
    runtime = Runtime.start(settings)
    try:
        runtime.require_durability()
    except BaseException:
        runtime.close()
        raise
    store = open_store(settings, "dev")
    # Workers started separately (`notifyd worker`) and peer regions see this replica too.
    replication = start_replication(settings, runtime.url, store, with_regions=True)
    worker = InProcessWorker.start(runtime, threads=threads, store=store)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    where = "embedded server, data in " + str(settings.data_dir) if runtime.embedded else "external"
    print(f"notifyd dev: Redis {describe_url(runtime.url)} ({where})", file=sys.stderr)
    api = start_in_thread(runtime, store, host=host, port=port)
    if local is not None:
        assert local.webhook_inbox is not None
        print(
            "notifyd dev: stand-ins for email, SMS and Slack are receiving; "
            f"a webhook inbox takes any path under {local.webhook_inbox.url}/",
            file=sys.stderr,
        )
        local.echo(lambda line: print(f"notifyd dev: {line}", file=sys.stderr, flush=True))
    print("notifyd dev: Ctrl-C stops it cleanly", file=sys.stderr)
    try:
        stop.wait()
    finally:
        print("notifyd dev: stopping", file=sys.stderr)
        api.stop()
        worker.stop()
        replication.stop()
        store.close()
        runtime.close()
        if local is not None:
            local.stop()
    return 0
