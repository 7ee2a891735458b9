"""The chaos run: one fan-out while workers are SIGKILLed, Valkey crashes and restarts from its
AOF, and the fault proxy cuts every Redis connection, each at a point where progress was seen.

Shared by the slow test (tests/test_chaos.py, a few thousand subscribers) and the benchmark
(benchmarks/bench_chaos.py, 100k). Real processes throughout: a Valkey server on TCP with
``appendfsync always``, ``notifyd worker`` processes that reach it through the fault proxy, and
the webhook sink in a process of its own, which records every request's delivery id.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from notifyd.runtime.settings import Settings
from notifyd.runtime.wiring import Runtime
from tests.support.env import cli_env
from tests.support.events import incident_event, ref
from tests.support.faults import FaultProxy
from tests.support.servers import valkey
from tests.support.sink import SinkProcess
from tests.support.wait import wait_until


@dataclass
class ChaosReport:
    subscribers: int
    kills: int = 0
    drops: int = 0
    restarts: int = 0
    #: Deliveries final (delivered) when each fault landed: the progress it landed after.
    faults_at: list[tuple[str, int]] = field(default_factory=list)
    delivered: int = 0
    distinct: int = 0
    requests: int = 0
    seconds: float = 0.0
    #: Sends each worker process may have had in flight, and how many processes ran.
    window: int = 0
    workers: int = 0

    @property
    def duplicates(self) -> int:
        return self.requests - self.distinct

    @property
    def faults(self) -> int:
        return self.kills + self.restarts + self.drops

    @property
    def max_duplicates(self) -> int:
        """What the faults may resend: whatever was in flight, every worker's window, per fault."""
        return self.faults * self.workers * self.window


def run_chaos(
    tmp: Path,
    *,
    subscribers: int,
    kills: int = 5,
    drops: int = 20,
    restart: bool = True,
    workers: int = 2,
    threads: int = 2,
    shard_size: int = 500,
    dispatch_window: int = 256,
    timeout_s: float = 900,
    say: Callable[[str], None] = lambda _: None,
) -> ChaosReport:
    """``dispatch_window`` is what each worker process may have in flight: the fan-out is a
    ``normal`` event, whose dispatcher gets the window less ``dispatch_reserve``, so the reserve is
    0 here (with the default 256 a window of 256 or less left one send in flight per process)."""
    server = valkey(tmp / "valkey", "appendonly yes", "appendfsync always").start()
    proxy = FaultProxy("127.0.0.1", server.port).start()
    sink = SinkProcess()
    settings = Settings(
        redis_url=server.url,
        namespace=f"chaos{uuid.uuid4().hex[:8]}",
        data_dir=tmp / "data",
        allow_private_targets=True,
        durability="fsync",
        shard_size=shard_size,
        heartbeat_timeout_ms=2000,
        rate_limit="1000/hour",
        dispatch_window=dispatch_window,
        dispatch_reserve=0,
    )
    knobs = {
        "shard_size": shard_size,
        "heartbeat_timeout_ms": 2000,
        "rate_limit": "1000/hour",
        "dispatch_window": dispatch_window,
        "dispatch_reserve": 0,
    }
    env = cli_env(settings.model_copy(update={"redis_url": proxy.url}), **knobs)
    rt = Runtime.start(settings)
    procs: list[subprocess.Popen[bytes]] = []
    report = ChaosReport(subscribers, window=dispatch_window, workers=workers)

    def spawn() -> subprocess.Popen[bytes]:
        argv = [sys.executable, "-m", "notifyd", "worker", "--threads", str(threads)]
        return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    try:
        rows = ((i, {"channel": "webhook", "target": f"{sink.url}/c/{i}"}) for i in range(subscribers))
        bad = [r for _, r in rt.subscribers.import_many("acme", rows) if isinstance(r, Exception)]
        assert not bad, bad[:3]
        sink.answer_all(200, delay_s=0.005)
        procs.extend(spawn() for _ in range(workers))
        event = incident_event(priority="normal")
        started = time.monotonic()
        assert rt.publisher.publish(event).status == "accepted"

        def delivered() -> int:
            summary = rt.tracker.summary(ref(event)) or {"counts": {"delivered": 0}}
            return int(summary["counts"]["delivered"])

        # Each fault at its own point of progress, spread over the fan-out.
        plan = [("kill", k) for k in range(kills)] + [("drop", d) for d in range(drops)]
        if restart:
            plan.insert(len(plan) // 2, ("restart", 0))
        for step, (what, k) in enumerate(plan):
            target = subscribers * (step + 1) // (len(plan) + 2)
            assert wait_until(lambda t=target: delivered() >= t, timeout=timeout_s, interval=0.05), (
                f"no progress to {target} before fault {step} ({what}): {delivered()} delivered"
            )
            if what == "kill":
                victim = procs[k % workers]
                victim.send_signal(signal.SIGKILL)
                victim.wait(timeout=30)
                procs[k % workers] = spawn()
                report.kills += 1
            elif what == "drop":
                proxy.kill_all()
                report.drops += 1
            else:
                assert server._process is not None
                server._process.kill()  # a crash: what is not in the AOF is gone
                server._process.wait()
                server.start()
                report.restarts += 1
            report.faults_at.append((what, delivered()))
            say(f"{what} at {report.faults_at[-1][1]:,} delivered")
        assert wait_until(
            lambda: (rt.tracker.summary(ref(event)) or {}).get("state") == "done", timeout=timeout_s
        ), rt.tracker.summary(ref(event))
        report.seconds = time.monotonic() - started
        counts = rt.tracker.summary(ref(event))["counts"]  # type: ignore[index]
        assert counts["planned"] == subscribers, counts
        report.delivered = int(counts["delivered"])
        ids = Counter(i for _, i in sink.arrived())
        report.distinct = len(ids)
        report.requests = sum(ids.values())
        return report
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        rt.close()
        sink.stop()
        proxy.stop()
        server.stop()
