"""Run dramatiq workers for notifyd's queues, in this process or a few children."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import dramatiq
import redis

from notifyd.pipeline.actors import EngineHolder, declare_actors
from notifyd.pipeline.adapters import AdapterPool
from notifyd.pipeline.engine import Engine
from notifyd.runtime.replication import start_replication
from notifyd.runtime.scheduler import SchedulerLoop
from notifyd.runtime.secret_key import warn_if_unshared
from notifyd.runtime.settings import PRIORITIES, URGENT_LANES, Settings
from notifyd.runtime.wiring import Runtime
from notifyd.state import circuits
from notifyd.store import StatusStore, StoreLockedError

log = logging.getLogger("notifyd.runtime.worker")

#: A worker's garbage collector runs when this many container objects were allocated (and not
#: freed) since its last run, and the older generations after 20 runs of the younger (the
#: standard library's: 700, 10, 10). See :func:`settle_gc`.
GC_THRESHOLDS = (20_000, 20, 20)


def parse_queues(raw: str | None) -> list[str]:
    if not raw:
        return list(PRIORITIES)
    lanes = [q.strip() for q in raw.split(",") if q.strip()]
    unknown = [q for q in lanes if q not in PRIORITIES]
    if unknown:
        raise ValueError(f"unknown queue(s) {', '.join(unknown)}; choose from {', '.join(PRIORITIES)}")
    return lanes


def open_store(settings: Settings, role: str) -> StatusStore:
    """This process's replica of the CRDT status store.

    Each process keeps its own replica in ``data_dir/store/<node>-<role><n>``,
    with the first ``n`` that no other live process holds open (the store locks
    its directory): ids stay stable across restarts and two processes never
    write the same files.
    """
    root = settings.data_dir / "store"
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    for n in range(1024):
        node = f"{settings.node_id}-{role}{n}"
        try:
            return StatusStore.open(
                root / node,
                node_id=node,
                event_id_ttl_s=settings.event_id_ttl_s,
                incident_retention_s=settings.incident_retention_s,
                tombstone_retention_s=settings.tombstone_retention_s,
            )
        except StoreLockedError:
            continue
    raise RuntimeError(f"no free status-store slot under {root}")


class CircuitReporter:
    """Publishes this worker's open circuits to Redis every few seconds, for the dashboard."""

    def __init__(self, runtime: Runtime, pool: AdapterPool) -> None:
        self.runtime = runtime
        self.pool = pool
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="notifyd-circuits", daemon=True)

    def start(self) -> CircuitReporter:
        self._thread.start()
        return self

    def publish_now(self) -> None:
        found = [circuits.OpenCircuit(*c) for c in self.pool.open_circuits()]
        circuits.publish(self.runtime.client, self.runtime.keys, self.worker_id, found, at=time.time())

    def _run(self) -> None:
        while not self._stop.wait(circuits.PUBLISH_EVERY_S):
            try:
                self.publish_now()
            except redis.RedisError:
                log.debug("could not publish the circuit snapshot; trying again in a while")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        with contextlib.suppress(redis.RedisError):
            circuits.withdraw(self.runtime.client, self.runtime.keys, self.worker_id)


@dataclass
class InProcessWorker:
    """A dramatiq worker bound to a runtime; used by ``notifyd worker``, the demo and the tests."""

    runtime: Runtime
    workers: list[dramatiq.Worker]
    holder: EngineHolder
    reporter: CircuitReporter | None = None
    scheduler: SchedulerLoop | None = None

    @classmethod
    def start(
        cls,
        runtime: Runtime,
        *,
        lanes: Sequence[str] = PRIORITIES,
        threads: int = 8,
        adapters: AdapterPool | None = None,
        store: object | None = None,
        clock: Callable[[], float] = time.time,
    ) -> InProcessWorker:
        settings = runtime.settings
        pool = adapters or AdapterPool(settings)
        pool.check()
        holder = EngineHolder(lambda: Engine(runtime, pool, store, clock=clock))  # type: ignore[arg-type]
        declare_actors(runtime.broker, holder, runtime.keys)
        _expect_one_worker_middleware_per_pool(runtime.broker)
        # Two thread pools: the urgent lanes have threads of their own, so a critical step
        # never waits for a thread held by normal or low work.
        workers = []
        for group, count in (
            ([lane for lane in lanes if lane in URGENT_LANES], settings.urgent_threads),
            ([lane for lane in lanes if lane not in URGENT_LANES], threads),
        ):
            if not group:
                continue
            worker = dramatiq.Worker(
                runtime.broker,
                queues={runtime.keys.queue_name(lane) for lane in group},
                worker_timeout=settings.poll_timeout_ms,
                worker_threads=count,
            )
            worker.start()
            workers.append(worker)
        scheduler = SchedulerLoop(holder, poll_s=settings.schedule_poll_ms / 1000).start()
        return cls(runtime, workers, holder, CircuitReporter(runtime, pool).start(), scheduler)

    def stop(self, timeout_ms: int = 30_000) -> None:
        # dramatiq requeues what it prefetched but did not start; running shards finish first.
        if self.scheduler is not None:
            self.scheduler.stop()
        for worker in self.workers:
            worker.stop(timeout=timeout_ms)
        if self.reporter is not None:
            self.reporter.stop()
        self.holder.close()


class _OneWorkerMiddlewarePerPool(logging.Filter):
    """Drops dramatiq's "same type twice" warning for a worker's own middleware: each
    ``dramatiq.Worker`` adds one ``_WorkerMiddleware`` (which adds its consumers), and a
    process here runs two workers, one per thread pool, by design. Any other duplicate
    still warns."""

    def filter(self, record: logging.LogRecord) -> bool:
        duplicate = record.args[0] if isinstance(record.args, tuple) and record.args else None
        return not isinstance(duplicate, dramatiq.worker._WorkerMiddleware)


def _expect_one_worker_middleware_per_pool(broker: dramatiq.Broker) -> None:
    logger = broker.logger
    if not any(isinstance(f, _OneWorkerMiddlewarePerPool) for f in logger.filters):
        logger.addFilter(_OneWorkerMiddlewarePerPool())


def settle_gc() -> None:
    """Freeze what start-up built and collect the young generation less often.

    Each send allocates a few dozen container objects (its task, frames, futures, message,
    answer). At the default threshold of 700 the collector ran every few deliveries, scanned the
    sends in flight each time and promoted them (a 500 ms endpoint keeps them alive across many
    runs), and every full collection scanned the imported modules too: 2.5-3.5 s of CPU per worker
    process over 30k deliveries, full collections of 100-220 ms with the GIL held (measured in
    the end-to-end benchmark, docs/benchmarks.md). Frozen objects are never collected; those of
    start-up live as long as the process anyway. Cyclic garbage waits at most 20k allocations.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


#: Open files a worker needs beside its sends' connections: Redis, SMTP, logs, the store.
OPEN_FILES_HEADROOM = 256


def open_files_needed(settings: Settings) -> int:
    """A connection per send in flight, in both dispatchers' windows, and the headroom."""
    return settings.dispatch_window + settings.bulk_dispatch_window() + OPEN_FILES_HEADROOM


def raise_open_files_limit(needed: int) -> int | None:
    """Raise this process's soft limit on open files towards ``needed``, up to the hard limit;
    returns the soft limit now in force (None where the platform has none).

    A full window holds thousands of connections, and the soft limit many systems start a
    service with is 1,024 (systemd's default, ``ulimit -n``): past it every connect fails
    (EMFILE) and a fan-out turns into retries. The hard limit is the administrator's; only
    the soft one is raised, as a server is expected to. Under a hard limit below ``needed``
    the windows shrink to fit (:func:`windows_within`).
    """
    try:
        import resource
    except ImportError:  # not on this platform (Windows): nothing to raise
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return soft
    target = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        target = soft
    return target


#: A window is never fitted below this many sends (a process that cannot open this many files
#: cannot run a worker anyway).
MIN_FITTED_WINDOW = 64


def windows_within(settings: Settings, limit: int | None) -> Settings:
    """The settings with a dispatch window that fits ``limit`` open files, and one warning
    naming both numbers and what to change when it had to shrink.

    Past the limit every connect fails (EMFILE) and a full window turns into retries; a
    smaller window only sends more slowly.
    """
    needed = open_files_needed(settings)
    if limit is None or limit >= needed:
        return settings
    # window + (window - reserve) + headroom <= limit, with a reserve that leaves the bulk lanes most
    window = max(MIN_FITTED_WINDOW, (limit - OPEN_FILES_HEADROOM) // 2)
    reserve = min(settings.dispatch_reserve, window // 8)
    log.warning(
        "open files are limited to %d; the dispatch windows need about %d: the window is %d "
        "sends instead of %d. Raise the limit (LimitNOFILE= in a systemd unit, ulimit -n) or set "
        "NOTIFYD_DISPATCH_WINDOW",
        limit,
        needed,
        window,
        settings.dispatch_window,
    )
    return settings.model_copy(update={"dispatch_window": window, "dispatch_reserve": reserve})


def fit_open_files(settings: Settings) -> Settings:
    """Raise the open-files limit to what the windows need; shrink them to what it allows."""
    return windows_within(settings, raise_open_files_limit(open_files_needed(settings)))


def run_forever(settings: Settings, *, lanes: Sequence[str], threads: int) -> int:
    """Run one worker process until SIGINT or SIGTERM."""
    # Before anything attaches: a SIGTERM during start-up still ends in a clean stop, which
    # leaves the embedded server properly (the last user to leave shuts it down).
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    settings = fit_open_files(settings)
    runtime = Runtime.start(settings)
    try:
        log.info("durability %s", runtime.require_durability())
    except BaseException:
        runtime.close()
        raise
    warn_if_unshared(settings, runtime.keyring)
    store = open_store(settings, "worker")
    replication = start_replication(settings, runtime.url, store, with_regions=False)
    worker = InProcessWorker.start(runtime, lanes=lanes, threads=threads, store=store)
    settle_gc()
    log.info(
        "worker %d serving %s with %d threads (+%d for critical and high)",
        os.getpid(),
        ",".join(lanes),
        threads,
        settings.urgent_threads,
    )
    stop.wait()
    worker.stop()
    replication.stop()
    store.close()
    runtime.close()
    return 0


def supervise(
    argv_for_child: list[str],
    processes: int,
    env: dict[str, str],
    stop: threading.Event,
    *,
    metrics_ports: list[int] | None = None,
) -> int:
    """Run ``processes`` worker children; restart any that die until ``stop`` is set."""

    def spawn(index: int) -> subprocess.Popen[bytes]:
        extra = ["--metrics-port", str(metrics_ports[index])] if metrics_ports else []
        child_env = {**env, "NOTIFYD_WORKER_INDEX": str(index)}
        return subprocess.Popen([sys.executable, "-m", "notifyd", *argv_for_child, *extra], env=child_env)

    children = [spawn(i) for i in range(processes)]
    try:
        while not stop.wait(0.5):
            for i, child in enumerate(children):
                if child.poll() is not None:
                    log.warning("worker %d exited with %s; restarting it", child.pid, child.returncode)
                    time.sleep(0.5)
                    children[i] = spawn(i)
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=60)
            except subprocess.TimeoutExpired:
                child.kill()
    return 0
