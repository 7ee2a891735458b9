"""Pipeline benchmarks: capacity, idle latency, critical under load, tracking and worker memory.

    .venv/bin/python benchmarks/bench_pipeline.py            # default: 200k subscribers
    .venv/bin/python benchmarks/bench_pipeline.py --quick    # 20k, a smoke run
    .venv/bin/python benchmarks/bench_pipeline.py --full     # 1M, the figure of record
    .venv/bin/python benchmarks/bench_pipeline.py --only capacity,latency
    .venv/bin/python benchmarks/bench_pipeline.py --profile  # cProfile of the shard path, in-process

Needs Redis at NOTIFYD_BENCH_REDIS_URL (default ``redis://127.0.0.1:6379/10``). Every key is
under a fresh ``bench-<hex>`` namespace, and only those keys are deleted at the end.

Workers are real subprocesses (``benchmarks/_worker.py``) running ``notifyd.runtime.worker.run_forever``
with an instant adapter on every channel (the latency benchmark keeps the real webhook adapter).
Each figure is printed beside a baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import random
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import naive  # noqa: E402
import redis  # noqa: E402

from notifyd.runtime.settings import Settings  # noqa: E402
from notifyd.runtime.wiring import Runtime  # noqa: E402
from notifyd.state.keys import Keys, bucket_of  # noqa: E402
from notifyd.state.subscribers import StoredSubscriber  # noqa: E402

REDIS_URL = os.environ.get("NOTIFYD_BENCH_REDIS_URL", "redis://127.0.0.1:6379/10")
WORKER = HERE / "_worker.py"
BENCHES = ("capacity", "critical", "memory", "latency")


def wait_ready(procs: list[subprocess.Popen[bytes]], timeout_s: float = 90) -> bool:
    """Whether every process printed its READY line within ``timeout_s`` (False once one exits)."""
    deadline = time.monotonic() + timeout_s
    for p in procs:
        assert p.stdout is not None
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or p.poll() is not None:
                return False
            ready, _, _ = select.select([p.stdout], [], [], min(left, 1.0))
            if ready and p.stdout.readline().startswith(b"READY"):
                break
    return True


@dataclass(frozen=True)
class Size:
    n: int  # subscribers of the big page (capacity and the low-priority load)
    naive_n: int  # deliveries of the naive baseline run
    crit_n: int  # subscribers of the critical page
    crit_tries: int
    latency_events: int
    latency_baseline_events: int
    processes: int = 2
    threads: int = 8


SIZES = {
    "quick": Size(20_000, 5_000, 1_000, 2, 10, 4),
    "default": Size(200_000, 20_000, 1_000, 5, 100, 50),
    "full": Size(1_000_000, 50_000, 1_000, 5, 100, 50),
}

ROWS: list[dict[str, Any]] = []


def row(
    name: str,
    measured: str,
    baseline: str = "-",
    ratio: str = "-",
    target: str = "-",
    ok: bool | None = None,
) -> dict[str, Any]:
    r = {"name": name, "measured": measured, "baseline": baseline, "ratio": ratio, "target": target, "ok": ok}
    ROWS.append(r)
    verdict = "" if ok is None else ("PASS" if ok else "FAIL")
    print(f"  {name:<40} {measured:>14}  base {baseline:>14}  {ratio:>10}  target {target:<22} {verdict}")
    return r


def info(text: str) -> None:
    print(f"    · {text}", flush=True)


def pct(values: Sequence[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def incident(page: str, impact: str, event_id: str | None = None) -> dict[str, Any]:
    return {
        "event_id": event_id or f"bench-{uuid.uuid4().hex[:16]}",
        "type": "incident_created",
        "page_id": page,
        "occurred_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "incident": {
            "id": f"inc-{uuid.uuid4().hex[:8]}",
            "title": "Database outage",
            "status": "investigating",
            "impact": impact,
            "message": "We are looking into it",
            "components": ["api", "db"],
        },
    }


# -- process helpers ----------------------------------------------------------------------------


def proc_status(pid: int, field: str) -> int:
    """A /proc/<pid>/status value in bytes (VmHWM, VmRSS)."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def proc_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        parts = fh.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (all processes), from /proc/stat."""
    with open("/proc/stat") as fh:
        fields = [int(x) for x in fh.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def redis_cpu(client: redis.Redis) -> float:
    cpu = client.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


class Workers:
    """Worker subprocesses; started with READY handshakes, stopped with SIGTERM."""

    def __init__(self, bench: Bench, mode: str, count: int, threads: int, **opts: Any) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        env = bench.env(opts.pop("env", {}))
        argv = [sys.executable, str(WORKER), mode, "--threads", str(threads)]
        if opts.get("real"):
            argv += ["--real", opts["real"]]
        self.logs = []
        for i in range(count):
            log = open(bench.tmp / f"worker-{mode}-{len(bench.worker_logs)}-{i}.log", "wb")  # noqa: SIM115
            self.logs.append(log)
            self.procs.append(subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=log))
        bench.worker_logs.extend(log.name for log in self.logs)
        if not wait_ready(self.procs):
            self.stop()
            raise RuntimeError(f"worker did not start; see {self.logs[0].name}")

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=45)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for log in self.logs:
            log.close()


# -- the webhook sink for the latency benchmark -------------------------------------------------


class AioSink:
    """A loopback aiohttp receiver; records the arrival time of the first webhook per event."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.cond = threading.Condition()
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._started = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from aiohttp import web

        async def hook(request: web.Request) -> web.Response:
            body = await request.read()
            now = time.time()
            event_id = json.loads(body).get("event_id", "")
            with self.cond:
                self.arrived.setdefault(event_id, now)
                self.cond.notify_all()
            return web.Response(text="ok")

        async def start() -> web.AppRunner:
            app = web.Application()
            app.router.add_post("/hook", hook)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            return runner

        asyncio.set_event_loop(self.loop)
        self.runner = self.loop.run_until_complete(start())
        self._started.set()
        self.loop.run_forever()

    def start(self) -> AioSink:
        self.thread.start()
        self._started.wait(10)
        return self

    def stop(self) -> None:
        async def down() -> None:
            await self.runner.cleanup()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(down(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def wait(self, event_id: str, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while event_id not in self.arrived:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)
            return self.arrived[event_id]


# -- the benchmark ------------------------------------------------------------------------------


class Bench:
    def __init__(self, size: Size, *, seed: str = "import") -> None:
        self.size = size
        self.seed_mode = seed
        self.ns = f"bench-{uuid.uuid4().hex[:10]}"
        self.tmp = Path(tempfile.mkdtemp(prefix="notifyd-bench-"))
        self.worker_logs: list[str] = []
        self.base_env = {
            "NOTIFYD_REDIS_URL": REDIS_URL,
            "NOTIFYD_NAMESPACE": self.ns,
            "NOTIFYD_DATA_DIR": str(self.tmp / "data"),
            "NOTIFYD_ALLOW_PRIVATE_TARGETS": "true",
            # The machine's Redis (7.0) has no AOF or WAITAOF, and workers refuse a policy it can't
            # meet; this measures the pipeline, not durability, as bench_delivery does.
            "NOTIFYD_DURABILITY": "none",
        }
        self.settings = Settings(
            redis_url=REDIS_URL, namespace=self.ns, data_dir=self.tmp / "data", allow_private_targets=True,
            durability="none",
        )  # fmt: skip
        self.rt = Runtime.start(self.settings)
        self.client: redis.Redis = self.rt.client
        self.keys = Keys(self.ns)
        self.rt.broker.declare_queue(naive.queue_name(self.ns))
        self.first_key, self.last_key = f"{self.ns}:bench:first", f"{self.ns}:bench:last"
        self.seeded: dict[str, int] = {}
        self.capacity_event: str | None = None
        self.ours_rate: float | None = None
        self.naive_rate: float | None = None
        self.extras: dict[str, float] = {}
        self.before_bytes: tuple[int, dict[str, int]] | None = None
        self.after_bytes: tuple[int, dict[str, int]] | None = None

    def env(self, extra: dict[str, str]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFYD_")}
        env.update(self.base_env)
        env.update(extra)
        return env

    # -- seeding ----------------------------------------------------------------------------

    def seed(self, page: str, n: int, *, label: str = "") -> float:
        """Add ``n`` email subscribers to ``page``; returns the seconds it took."""
        t = time.perf_counter()
        if self.seed_mode == "direct":
            self._seed_direct(page, n)
        else:
            rows = ((i, {"channel": "email", "target": f"u{i}@{page}.example.com"}) for i in range(n))
            bad = 0
            for _, result in self.rt.subscribers.import_many(page, rows):
                if isinstance(result, Exception):
                    bad += 1
            if bad:
                raise RuntimeError(f"seeding {page}: {bad} rows rejected")
        took = time.perf_counter() - t
        self.seeded[page] = n
        if label:
            info(
                f"seeded {n:,} subscribers on {page!r} in {took:.1f} s ({n / took:,.0f}/s, {self.seed_mode})"
            )
        return took

    def _seed_direct(self, page: str, n: int) -> None:
        """The same records as import_many writes, in pipelines (fallback when it is slow)."""
        k = self.keys
        start = int(self.client.incrby(k.page_seq(page), n)) - n
        for first in range(start, start + n, 5000):
            pipe = self.client.pipeline(transaction=False)
            by_bucket: dict[int, dict[str, str]] = {}
            targets: dict[str, str] = {}
            ids: dict[str, str] = {}
            for seq in range(first, min(start + n, first + 5000)):
                sid = f"sub_{uuid.uuid4().hex[:16]}"
                target = f"u{seq}@{page}.example.com"
                rec = StoredSubscriber(page, seq, sid, "email", target, None, None, None).encode()
                by_bucket.setdefault(bucket_of(seq), {})[str(seq)] = rec
                targets[f"email\x1f{target}"] = str(seq)
                ids[sid] = str(seq)
            for bucket, mapping in by_bucket.items():
                pipe.hset(k.subscribers(page, bucket), mapping=mapping)
            pipe.hset(k.subscriber_targets(page), mapping=targets)
            pipe.hset(k.subscriber_ids(page), mapping=ids)
            pipe.sadd(k.pages(), page)
            pipe.execute()

    # -- events -----------------------------------------------------------------------------

    def publish(self, page: str, impact: str) -> tuple[str, float]:
        event = incident(page, impact)
        t0 = time.time()
        result = self.rt.publisher.publish(event)
        assert result.status == "accepted", result
        return event["event_id"], t0

    def state(self, event_id: str) -> dict[str, Any]:
        return self.rt.tracker.summary_by_id(event_id) or {"state": "missing", "counts": {}}

    def wait_done(self, event_id: str, timeout: float, poll: float = 0.05) -> tuple[float, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            s = self.state(event_id)
            if s["state"] == "done":
                return time.time(), s
            if time.monotonic() > deadline:
                raise TimeoutError(f"event {event_id} not done after {timeout:.0f} s: {s}")
            time.sleep(poll)

    def marks(self, event_id: str) -> tuple[float | None, float | None]:
        pipe = self.client.pipeline(transaction=False)
        pipe.zscore(self.first_key, event_id)
        pipe.zscore(self.last_key, event_id)
        first, last = pipe.execute()
        return first, last

    # -- cleanup ----------------------------------------------------------------------------

    def cleanup(self) -> int:
        deleted = 0
        batch: list[bytes] = []
        for key in self.client.scan_iter(match=f"{self.ns}*", count=5000):
            batch.append(key)
            if len(batch) >= 5000:
                deleted += self.client.unlink(*batch)
                batch = []
        if batch:
            deleted += self.client.unlink(*batch)
        self.rt.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
        return deleted


# -- 1. capacity, 5. worker memory, 4. tracking memory, 3. critical under load -------------------


def namespace_bytes(b: Bench) -> tuple[int, dict[str, int]]:
    """MEMORY USAGE of every key under the bench's namespace, and per key family (the part after
    the namespace up to the next colon). Summed per key, so other users of the server don't count."""
    keys = [k.decode() for k in b.client.scan_iter(match=f"{b.ns}*", count=5000)]
    total = 0
    families: dict[str, int] = {}
    for first in range(0, len(keys), 2000):
        chunk = keys[first : first + 2000]
        pipe = b.client.pipeline(transaction=False)
        for k in chunk:
            pipe.memory_usage(k, samples=0)
        for k, used in zip(chunk, pipe.execute(), strict=True):
            family = k[len(b.ns) + 1 :].split(":", 1)[0] or k
            families[family] = families.get(family, 0) + int(used or 0)
            total += int(used or 0)
    return total, families


def bench_capacity(b: Bench, workers: Workers) -> None:
    n = b.size.n
    b.before_bytes = namespace_bytes(b)
    print(
        f"\n[capacity] {n:,} subscribers, {b.size.processes} workers x {b.size.threads} threads,"
        " instant channel"
    )
    cpu0 = {pid: proc_cpu(pid) for pid in workers.pids}
    rcpu0 = redis_cpu(b.client)
    busy0 = machine_busy()
    event_id, t0 = b.publish("big", "minor")  # "minor" -> the normal lane
    t1, summary = b.wait_done(event_id, timeout=max(300, n / 2000))
    took = t1 - t0
    rcpu = redis_cpu(b.client) - rcpu0
    wcpu = sum(proc_cpu(pid) - cpu0[pid] for pid in workers.pids)
    other = machine_busy() - busy0 - wcpu - rcpu
    counts = summary["counts"]
    b.capacity_event = event_id
    b.ours_rate = counts.get("delivered", 0) / took
    info(f"counts {counts}")
    info(f"publish -> done {took:.2f} s")
    info(
        f"CPU during the run: workers {wcpu:.1f} s, redis {rcpu:.1f} s, everything else {other:.1f} s;"
        f" wall {took:.1f} s x {os.cpu_count()} cores"
    )
    b.extras = {"wcpu": wcpu, "rcpu": rcpu, "took": took}
    b.after_bytes = namespace_bytes(b)
    if counts.get("delivered") != n:
        info(f"WARNING: delivered {counts.get('delivered')} of {n}")


def bench_naive(b: Bench) -> None:
    n = min(b.size.naive_n, b.seeded["big"])
    print(f"\n[capacity baseline] naive one-message-per-delivery, {n:,} deliveries, same workers/threads")
    workers = Workers(b, "naive", b.size.processes, b.size.threads)
    try:
        cpu0 = {pid: proc_cpu(pid) for pid in workers.pids}
        rcpu0 = redis_cpu(b.client)
        event_id = f"naive-{uuid.uuid4().hex[:12]}"
        page = "naive"
        t0 = time.time()
        naive.start_fanout(b.rt, event_id, page)
        deadline = time.monotonic() + max(300, n / 200)
        while True:
            done, planned = naive.finished(b.client, b.ns, event_id)
            if planned >= 0 and done >= planned:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"naive run: {done}/{planned}")
            time.sleep(0.05)
        took = time.time() - t0
        rcpu = redis_cpu(b.client) - rcpu0
        wcpu = sum(proc_cpu(pid) - cpu0[pid] for pid in workers.pids)
        b.naive_rate = done / took
        info(
            f"{done:,} deliveries in {took:.2f} s = {b.naive_rate:,.0f}/s;"
            f" CPU workers {wcpu:.1f} s, redis {rcpu:.1f} s"
        )
        b.naive_event = event_id
    finally:
        workers.stop()


def report_capacity(b: Bench) -> None:
    ours, base = b.ours_rate, b.naive_rate
    if ours is None:
        return
    ratio = ours / base if base else float("nan")
    naive_n = min(b.size.naive_n, b.seeded.get("big", 0))
    row(
        f"capacity deliveries/s (N={b.size.n:,}; naive N={naive_n:,})",
        f"{ours:,.0f}/s",
        f"{base:,.0f}/s" if base else "-",
        f"{ratio:.1f}x",
        ">= 10x naive",
        bool(base) and ratio >= 10,
    )
    took = b.extras["took"]
    if b.size.n >= 1_000_000:
        row(
            "capacity 1M end to end",
            f"{took:.1f} s",
            f"{b.size.n / base:.0f} s" if base else "-",
            f"{(b.size.n / base) / took:.1f}x" if base else "-",
            "<= 60 s",
            took <= 60,
        )
    else:
        est = 1_000_000 / ours
        row(
            f"capacity 1M (extrapolated from {b.size.n // 1000}k)",
            f"{est:.1f} s",
            f"{1_000_000 / base:.0f} s" if base else "-",
            f"{ratio:.1f}x",
            "<= 60 s",
            est <= 60,
        )


def bench_worker_memory(b: Bench, workers: Workers, idle_rss: list[int]) -> None:
    peaks = [proc_status(pid, "VmHWM") for pid in workers.pids]
    mb = max(peaks) / 2**20
    base = max(idle_rss) / 2**20
    info(f"worker peak RSS (VmHWM) {', '.join(f'{p / 2**20:.0f} MB' for p in peaks)}; idle RSS {base:.0f} MB")
    row(
        f"worker peak RSS (N={b.size.n:,})",
        f"{mb:.0f} MB",
        f"{base:.0f} MB idle",
        f"{mb / base:.2f}x",
        "<= 250 MB",
        mb <= 250,
    )


def bench_tracking_memory(b: Bench) -> None:
    event_id = b.capacity_event
    if event_id is None:
        return
    print("\n[tracking memory]")
    ref = b.rt.tracker.find(event_id) or event_id
    keys = [b.keys.event(ref), b.keys.event_shards(ref)]
    keys += list(b.client.scan_iter(match=b.keys.deliveries(ref, 0)[:-1] + "*", count=5000))
    total = 0
    for first in range(0, len(keys), 2000):
        pipe = b.client.pipeline(transaction=False)
        for k in keys[first : first + 2000]:
            pipe.memory_usage(k, samples=0)
        total += sum(int(x or 0) for x in pipe.execute())
    records = int(b.state(event_id)["counts"].get("planned", 0))
    ours = total / max(1, records)
    encodings = {b.client.object("encoding", k) for k in keys[2:50]}
    info(f"{len(keys) - 2:,} bucket hashes ({encodings}), {records:,} records, {total / 2**20:.1f} MiB")
    # Baseline: a naive one-hash-per-delivery layout, 10k deliveries.
    n = 10_000
    ev = f"naivemem-{uuid.uuid4().hex[:8]}"
    pipe = b.client.pipeline(transaction=False)
    for seq in range(n):
        pipe.hset(
            naive.delivery_key(b.ns, ev, seq),
            mapping=naive.tracking_record(f"sub_{uuid.uuid4().hex[:16]}", "email", "delivered"),
        )
    pipe.execute()
    pipe = b.client.pipeline(transaction=False)
    for seq in range(n):
        pipe.memory_usage(naive.delivery_key(b.ns, ev, seq), samples=0)
    base = sum(int(x or 0) for x in pipe.execute()) / n
    b.client.unlink(*[naive.delivery_key(b.ns, ev, seq) for seq in range(n)])
    row(
        "tracking bytes per delivery",
        f"{ours:.1f} B",
        f"{base:.0f} B",
        f"{base / ours:.1f}x smaller",
        "<= 100 B",
        ours <= 100,
    )


def bench_redis_per_delivery(b: Bench) -> None:
    """Everything the fan-out left in Redis (tracking, the event, the rate limiter, digests,
    queues), per delivery: the growth of the namespace's keys across the capacity run."""
    if b.capacity_event is None or b.before_bytes is None or b.after_bytes is None:
        return
    print("\n[redis per delivery, everything included]")
    (before, fam0), (after, fam1) = b.before_bytes, b.after_bytes
    deliveries = max(1, int(b.state(b.capacity_event)["counts"].get("planned", 0)))
    growth = {f: fam1.get(f, 0) - fam0.get(f, 0) for f in set(fam0) | set(fam1)}
    shown = ", ".join(
        f"{f} {v / deliveries:.1f} B" for f, v in sorted(growth.items(), key=lambda x: -x[1]) if v
    )
    info(f"growth by key family per delivery: {shown}")
    limiter = growth.get("lim", 0) / deliveries
    # Baseline: one `limits` moving-window list per subscriber and channel, as the seed kept.
    from limits import parse

    from notifyd.pipeline.ratelimit import BatchRateLimiter

    probe = BatchRateLimiter(b.client, rate=b.settings.rate_limit, key_prefix=f"{b.ns}:probe")
    ids = [(f"sub_{uuid.uuid4().hex[:16]}", "email") for _ in range(2000)]
    probe.hit_many(ids)
    pipe = b.client.pipeline(transaction=False)
    for sub_id, channel in ids:
        pipe.memory_usage(probe.key(sub_id, channel), samples=0)
    seed_limiter = sum(int(x or 0) for x in pipe.execute()) / len(ids)
    b.client.unlink(*[probe.key(s, c) for s, c in ids])
    assert parse(b.settings.rate_limit)
    row(
        f"rate-limit state per delivery (N={b.size.n:,})",
        f"{limiter:.1f} B",
        f"{seed_limiter:.0f} B",
        f"{seed_limiter / max(limiter, 0.1):.0f}x smaller",
        "packed, one call/shard",
        None,
    )
    total = (after - before) / deliveries
    row(
        f"Redis per delivery, all included (N={b.size.n:,})",
        f"{total:.1f} B",
        f"{total - limiter + seed_limiter:.0f} B",
        f"{(total - limiter + seed_limiter) / max(total, 0.1):.1f}x smaller",
        "<= 100 B",
        total <= 100,
    )


def bench_critical(b: Bench) -> None:
    print(f"\n[critical under load] {b.size.crit_n:,}-subscriber page, low-priority fanout of {b.size.n:,}")

    def one_try() -> tuple[float, float, float]:
        event_id, t0 = b.publish("crit", "critical")
        _, s = b.wait_done(event_id, timeout=60, poll=0.01)
        first, last = b.marks(event_id)
        assert first is not None and last is not None, "no send marks"
        if s["counts"].get("delivered") != b.size.crit_n:
            info(f"WARNING critical counts {s['counts']}")
        return first - t0, last - t0, time.time()

    idle = [one_try() for _ in range(b.size.crit_tries)]
    for _ in range(3):
        time.sleep(0.2)
    low_id, low_t0 = b.publish("big", "none")  # "none" -> the low lane
    # Let the fanout get going: shards enqueued and deliveries flowing.
    deadline = time.monotonic() + 60
    while b.state(low_id)["counts"].get("delivered", 0) < min(20_000, b.size.n // 10):
        if time.monotonic() > deadline:
            break
        time.sleep(0.02)
    loaded: list[tuple[float, float]] = []
    discarded = 0
    for _ in range(b.size.crit_tries):
        if b.state(low_id)["state"] == "done":
            break
        first, all_, t_end = one_try()
        if b.state(low_id)["state"] == "done":
            discarded += 1  # the load ended during this try: it does not count as "under load"
            break
        loaded.append((first, all_))
        time.sleep(0.3)
    low_done_at, s = b.wait_done(low_id, timeout=max(300, b.size.n / 2000))
    info(
        f"low fanout: {s['counts'].get('delivered', 0):,} delivered in {low_done_at - low_t0:.1f} s "
        f"({s['counts'].get('delivered', 0) / (low_done_at - low_t0):,.0f}/s) while critical events ran"
    )
    info("idle  first/all ms: " + ", ".join(f"{f * 1000:.0f}/{a * 1000:.0f}" for f, a, _ in idle))
    info(
        "load  first/all ms: "
        + ", ".join(f"{f * 1000:.0f}/{a * 1000:.0f}" for f, a in loaded)
        + (f"  ({discarded} try dropped: load ended)" if discarded else "")
    )
    if not loaded:
        row("critical first delivery under load", "n/a", "-", "-", "<= 1 s", None)
        return
    tag = f"max of {len(loaded)}" if len(loaded) < 20 else "p99"
    f_load, a_load = max(f for f, _ in loaded), max(a for _, a in loaded)
    f_idle, a_idle = max(f for f, _, _ in idle), max(a for _, a, _ in idle)
    row(
        f"critical first delivery ({tag})",
        f"{f_load * 1000:.0f} ms",
        f"{f_idle * 1000:.0f} ms idle",
        f"{f_load / f_idle:.1f}x",
        "<= 1 s",
        f_load <= 1.0,
    )
    row(
        f"critical all {b.size.crit_n:,} delivered ({tag})",
        f"{a_load * 1000:.0f} ms",
        f"{a_idle * 1000:.0f} ms idle",
        f"{a_load / a_idle:.1f}x",
        "<= 5 s",
        a_load <= 5.0,
    )


# -- 2. idle latency ------------------------------------------------------------------------------


def bench_latency(b: Bench) -> None:
    print("\n[idle latency] publish -> first webhook at a local aiohttp sink, 1 worker x 8 threads")
    sink = AioSink().start()
    try:
        added = b.rt.subscribers.add("lat", {"channel": "webhook", "target": sink.url})
        assert added.created
        # Enough room in the rate limit for every event of this benchmark on one subscriber.
        extra = {"NOTIFYD_RATE_LIMIT": "100000/hour"}

        def run(events: int, poll_ms: int) -> list[float]:
            workers = Workers(
                b, "notifyd", 1, 8, real="webhook", env={**extra, "NOTIFYD_POLL_TIMEOUT_MS": str(poll_ms)}
            )
            try:
                out = []
                for i in range(events + 3):  # three warm-ups: engine, connection, status store
                    # Idle: long enough for dramatiq's consumer backoff to reach its cap (the poll timeout).
                    time.sleep(random.uniform(1.0, 1.5) * max(0.3, 2.5 * poll_ms / 1000))
                    event_id, t0 = b.publish("lat", "minor")
                    arrived = sink.wait(event_id, timeout=15)
                    if arrived is None:
                        raise TimeoutError(f"webhook for {event_id} never arrived")
                    if i >= 3:
                        out.append((arrived - t0) * 1000)
                return out
            finally:
                workers.stop()

        ours = run(b.size.latency_events, b.settings.poll_timeout_ms)
        base = run(b.size.latency_baseline_events, 1000)
    finally:
        sink.stop()
    info(
        f"poll {b.settings.poll_timeout_ms} ms: p50 {pct(ours, 0.5):.1f} ms, p90 {pct(ours, 0.9):.1f}, "
        f"p99 {pct(ours, 0.99):.1f}, max {max(ours):.1f} (n={len(ours)})"
    )
    info(
        f"poll 1000 ms: p50 {pct(base, 0.5):.1f} ms, p90 {pct(base, 0.9):.1f}, p99 {pct(base, 0.99):.1f}, "
        f"max {max(base):.1f} (n={len(base)})"
    )
    for q, target in ((0.5, 50), (0.99, 250)):
        m, bq = pct(ours, q), pct(base, q)
        row(
            f"idle latency p{int(q * 100)} (poll {b.settings.poll_timeout_ms} vs 1000 ms)",
            f"{m:.1f} ms",
            f"{bq:.1f} ms",
            f"{bq / m:.1f}x faster",
            f"<= {target} ms",
            m <= target,
        )


# -- the whole set ----------------------------------------------------------------------------------


def run(size: Size, only: set[str], seed: str = "import", skip_naive: bool = False) -> list[dict[str, Any]]:
    ROWS.clear()
    b = Bench(size, seed=seed)
    print(f"notifyd pipeline benchmarks: namespace {b.ns} on {REDIS_URL}, N={size.n:,}")
    try:
        if only & {"capacity", "critical", "memory"}:
            seed_s = b.seed("big", size.n, label="big")
            b.seed("crit", size.crit_n)
            b.seed("warm", 2000)
            if "capacity" in only and not skip_naive:
                b.seed("naive", min(size.naive_n, size.n))
            row(
                f"seeding {size.n:,} ({b.seed_mode}, untimed)",
                f"{size.n / seed_s:,.0f}/s",
                "-",
                "-",
                f"1M in {1_000_000 / (size.n / seed_s):.0f} s",
                None,
            )
            workers = Workers(b, "notifyd", size.processes, size.threads)
            try:
                for _ in range(3):  # warm-up: the engine is built lazily in each process
                    ev, _ = b.publish("warm", "minor")
                    b.wait_done(ev, 60)
                idle_rss = [proc_status(pid, "VmRSS") for pid in workers.pids]
                if only & {"capacity", "memory"}:
                    bench_capacity(b, workers)
                    bench_worker_memory(b, workers, idle_rss)
                    bench_tracking_memory(b)
                    bench_redis_per_delivery(b)
                if "critical" in only:
                    bench_critical(b)
            finally:
                workers.stop()
            if "capacity" in only:
                if not skip_naive:
                    bench_naive(b)
                report_capacity(b)
        if "latency" in only:
            bench_latency(b)
    except Exception:
        for log in b.worker_logs:
            with contextlib.suppress(OSError):
                tail = Path(log).read_text(errors="replace")[-2000:]
                if tail.strip():
                    print(f"--- {log}\n{tail}", file=sys.stderr)
        raise
    finally:
        deleted = b.cleanup()
        print(f"  (deleted {deleted:,} keys under {b.ns}*)")
    return list(ROWS)


def profile(n: int = 20_000) -> None:
    """cProfile of the shard path in this process (ingest + every shard, serially)."""
    import cProfile
    import pstats

    import _worker

    from notifyd.pipeline.adapters import AdapterPool
    from notifyd.pipeline.engine import Engine
    from notifyd.runtime.worker import open_store

    b = Bench(SIZES["quick"])
    try:
        b.seed("big", n, label="big")
        _worker.install_instant(b.ns, REDIS_URL, set())
        store = open_store(b.settings, "profile")
        engine = Engine(b.rt, AdapterPool(b.settings), store)  # type: ignore[arg-type]

        def all_shards(event_id: str) -> int:
            ref = b.rt.tracker.find(event_id) or event_id
            engine.ingest(ref)
            h = b.rt.tracker.event_hash(ref) or {}
            shards, top, size = int(h["shards_total"]), int(h["seq_top"]), b.settings.shard_size
            for shard in range(1, shards):
                engine.deliver_shard(ref, shard, shard * size, min(top, (shard + 1) * size))
            return shards

        # Unprofiled first: the real single-thread cost (also warms the engine up).
        event_id, _ = b.publish("big", "minor")
        t = time.perf_counter()
        all_shards(event_id)
        took = time.perf_counter() - t
        print(f"\nin-process, one thread, no profiler: {n:,} deliveries in {took:.2f} s = {n / took:,.0f}/s")
        stats0 = b.client.info("commandstats")
        event_id, _ = b.publish("big", "minor")
        prof = cProfile.Profile()
        t = time.perf_counter()
        prof.enable()
        shards = all_shards(event_id)
        prof.disable()
        took = time.perf_counter() - t
        stats1 = b.client.info("commandstats")
        size = b.settings.shard_size
        print(
            f"in-process, one thread, under cProfile: {n:,} deliveries in {took:.2f} s = {n / took:,.0f}/s "
            f"({took / shards * 1000:.1f} ms per {size}-shard); state {b.state(event_id)['state']}"
        )
        redis_us = {}
        for cmd, v in stats1.items():
            before = stats0.get(cmd, {"usec": 0, "calls": 0})
            redis_us[cmd] = (v["usec"] - before["usec"], v["calls"] - before["calls"])
        busy = sorted(redis_us.items(), key=lambda kv: -kv[1][0])[:8]
        print(
            "redis server time: "
            + ", ".join(f"{c.removeprefix('cmdstat_')} {us / 1e6:.2f}s/{calls}" for c, (us, calls) in busy)
        )
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        pstats.Stats(prof).sort_stats("cumulative").print_stats(30)
        engine.close()
        if store is not None:
            store.close()  # type: ignore[attr-defined]
    finally:
        b.cleanup()


def main(
    quick: bool = False,
    full: bool = False,
    only: str | None = None,
    seed: str = "import",
    skip_naive: bool = False,
    **overrides: int,
) -> list[dict[str, Any]]:
    size = SIZES["quick" if quick else "full" if full else "default"]
    if overrides:
        size = dataclasses.replace(size, **overrides)
    chosen = {s.strip() for s in (only or "").split(",") if s.strip()} or set(BENCHES)
    unknown = chosen - set(BENCHES)
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {sorted(unknown)}; choose from {', '.join(BENCHES)}")
    return run(size, chosen, seed, skip_naive)


def _cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true")
    group.add_argument("--full", action="store_true")
    parser.add_argument("--only", help=f"comma-separated subset of {', '.join(BENCHES)}")
    parser.add_argument(
        "--seed",
        choices=["import", "direct"],
        default="import",
        help="subscriber seeding: SubscriberRepo.import_many (default) or direct pipelined writes",
    )
    parser.add_argument("-N", type=int, help="override the number of subscribers of the big page")
    parser.add_argument("--processes", type=int, help="override worker processes (default 2)")
    parser.add_argument("--threads", type=int, help="override threads per worker (default 8)")
    parser.add_argument("--skip-naive", action="store_true", help="leave out the naive baseline run")
    parser.add_argument("--profile", action="store_true", help="cProfile the shard path in-process instead")
    parser.add_argument("-n", type=int, default=20_000, help="subscribers for --profile")
    args = parser.parse_args(argv)
    if args.profile:
        profile(args.n)
        return 0
    overrides = {
        k: v for k, v in (("n", args.N), ("processes", args.processes), ("threads", args.threads)) if v
    }
    rows = main(
        quick=args.quick,
        full=args.full,
        only=args.only,
        seed=args.seed,
        skip_naive=args.skip_naive,
        **overrides,
    )
    return 0 if all(r["ok"] is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(_cli())
