"""Worker subprocess for the pipeline benchmarks.

    python benchmarks/_worker.py notifyd --lanes critical,high,normal,low --threads 8 [--real webhook]
    python benchmarks/_worker.py naive --threads 8

Settings come from the ``NOTIFYD_*`` environment, as for ``notifyd worker``.

``notifyd`` mode installs an instant adapter for every channel (except those named
with ``--real``) through ``channels.registry.override`` and then runs
``notifyd.runtime.worker.run_forever``. ``naive`` mode runs the one-message-per-delivery
baseline of :mod:`naive` on the same broker, with the same number of threads.

The instant adapter answers "delivered" at once. Per batch it also marks, in one
pipelined round trip, the first and the last send time of the batch's event
(``<ns>:bench:first`` / ``<ns>:bench:last`` sorted sets), which is how the
benchmark sees the first delivery of an event.

Once the dramatiq worker has started, the process prints ``READY <pid>`` on stdout.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import redis  # noqa: E402

from channels import registry  # noqa: E402
from channels.base import Adapter, Message, Outcome  # noqa: E402
from notifyd.runtime.settings import CHANNELS, PRIORITIES, load_settings  # noqa: E402

#: Pages whose events get send marks (only the critical benchmark's page, so the
#: capacity run carries no benchmark-only round trips).
MARK_PAGES = frozenset(p for p in os.environ.get("NOTIFYD_BENCH_MARK_PAGES", "crit").split(",") if p)


def marks_keys(ns: str) -> tuple[str, str]:
    return f"{ns}:bench:first", f"{ns}:bench:last"


class InstantAdapter(Adapter):
    """Delivers everything at once; records the batch's send time per event."""

    channel = "instant"

    def __init__(self, client: redis.Redis | None, ns: str) -> None:
        self._client = client
        self._first, self._last = marks_keys(ns)

    async def send(self, batch: Sequence[Message]) -> list[Outcome]:
        if self._client is not None and batch and batch[0].notification.page_id in MARK_PAGES:
            now = time.time()
            event_id = batch[0].notification.event_id
            pipe = self._client.pipeline(transaction=False)
            pipe.zadd(self._first, {event_id: now}, lt=True)
            pipe.zadd(self._last, {event_id: now}, gt=True)
            pipe.execute()
        return [Outcome.delivered() for _ in batch]


def install_instant(ns: str, url: str | None, real: set[str], *, mark: bool = True) -> None:
    client = redis.Redis.from_url(url) if (mark and url) else None
    adapter = InstantAdapter(client, ns)

    def factory(options: Mapping[str, Any]) -> Adapter:
        return adapter

    for channel in CHANNELS:
        if channel not in real:
            registry.override(channel, factory)


def _announce_when_started() -> None:
    """Wrap InProcessWorker.start so the parent learns when the worker is consuming."""
    from notifyd.runtime import worker as worker_mod

    original = worker_mod.InProcessWorker.start.__func__  # type: ignore[attr-defined]

    def start(cls: Any, *args: Any, **kwargs: Any) -> Any:
        started = original(cls, *args, **kwargs)
        print(f"READY {os.getpid()}", flush=True)
        return started

    worker_mod.InProcessWorker.start = classmethod(start)  # type: ignore[method-assign,assignment]


def run_naive(threads: int) -> int:
    import dramatiq
    import naive

    from notifyd.runtime.wiring import Runtime

    settings = load_settings()
    runtime = Runtime.start(settings)
    naive.declare_actors(runtime)
    worker = dramatiq.Worker(
        runtime.broker,
        queues={naive.queue_name(settings.namespace)},
        worker_timeout=settings.poll_timeout_ms,
        worker_threads=threads,
    )
    worker.start()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(f"READY {os.getpid()}", flush=True)
    stop.wait()
    worker.stop(timeout=30_000)
    runtime.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["notifyd", "naive"])
    parser.add_argument("--lanes", default=",".join(PRIORITIES))
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--real", default="", help="channels that keep their real adapter (e.g. webhook)")
    parser.add_argument("--no-marks", action="store_true", help="the instant adapter writes no send marks")
    args = parser.parse_args(argv)
    if args.mode == "naive":
        return run_naive(args.threads)
    if os.environ.get("NOTIFYD_BENCH_SWITCH_INTERVAL_MS"):  # an experiment knob, off by default
        sys.setswitchinterval(float(os.environ["NOTIFYD_BENCH_SWITCH_INTERVAL_MS"]) / 1000)
    settings = load_settings()
    real = {c.strip() for c in args.real.split(",") if c.strip()}
    install_instant(settings.namespace, settings.redis_url, real, mark=not args.no_marks)
    _announce_when_started()
    from notifyd.runtime.worker import parse_queues, run_forever

    return run_forever(settings, lanes=parse_queues(args.lanes), threads=args.threads)


if __name__ == "__main__":
    sys.exit(main())
