"""Subscriber import: lines per second, every line a webhook with an id and a secret.

    .venv/bin/python benchmarks/run.py --only subscribers          # 200k lines (and 50k from spawn)
    .venv/bin/python benchmarks/run.py --only subscribers --quick  # 10k lines
    .venv/bin/python benchmarks/run.py --only subscribers --full   # 1M lines through the CLI and API

The rows of record import 200k lines: the CLI's start-up (imports, settings, connecting: about
0.3 CPU seconds) is a fixed cost that a rate over a 50k file (one second at the target) would
mostly measure. The 50k file, wall clock from spawn, is printed beside them as context.

Rows, each against a baseline measured in the same run: the one-by-one ``SubscriberRepo.add()``
path (one validation, one script call and one round trip per line; before the batched path,
every line with an id or a secret went this way, at 823-1,204 lines/s):

- ``cli``: ``notifyd subscribers import --page P -`` in its own process, the NDJSON file on
  stdin, wall clock from spawn to exit (interpreter start-up included);
- ``api``: ``POST /v1/pages/P/subscribers:import`` to ``notifyd serve`` in its own process,
  the body streamed in 64 KiB chunks;
- ``in-process``: ``SubscriberRepo.import_many`` on parsed rows (the floor of the two above).

Private targets are off, as in production: each of the few target hosts is resolved once.
Needs Redis at NOTIFYD_BENCH_REDIS_URL (default ``redis://127.0.0.1:6379/10``); every key is
under a fresh ``bench-<hex>`` namespace, deleted at the end.
"""

from __future__ import annotations

import base64
import json
import os
import resource
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psutil
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from notifyd.runtime.settings import Settings  # noqa: E402
from notifyd.runtime.wiring import Runtime  # noqa: E402

REDIS_URL = os.environ.get("NOTIFYD_BENCH_REDIS_URL", "redis://127.0.0.1:6379/10")
TARGET = 50_000  # lines/s, the goal
HOSTS = 5  # distinct webhook hosts in the file
RESULTS: list[dict[str, Any]] = []


def lines(n: int, tag: str, *, mixed: bool = False) -> bytes:
    """Webhook lines with an id and a secret; ``mixed``: every other line is an email subscriber
    with components (and every tenth webhook names a contact_email)."""
    out = []
    for i in range(n):
        if mixed and i % 2:
            line: dict[str, Any] = {
                "channel": "email",
                "target": f"Person.{i}@customer{i % 50}.example.com",
                "components": ["api", "db", "web"][: 1 + i % 3],
            }
            if i % 3 == 0:
                line["id"] = f"{tag}-{i}"
            out.append(json.dumps(line))
            continue
        secret = "whsec_" + base64.b64encode(i.to_bytes(4, "big") + b"notifyd-bench-secret").decode()
        line = {
            "id": f"{tag}-{i}",
            "channel": "webhook",
            "target": f"https://hooks{i % HOSTS}.example.com/status/{i}",
            "secret": secret,
        }
        if mixed and i % 10 == 0:
            line["contact_email"] = f"ops@customer{i % 50}.example.com"
        out.append(json.dumps(line))
    return ("\n".join(out) + "\n").encode()


def _peak_rss(pid: int) -> int:
    """A process' peak resident set so far, in bytes (VmHWM; its current RSS where that is
    unavailable). Not ru_maxrss of the children: a forked child counts its parent's pages."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for row in status:
                if row.startswith("VmHWM:"):
                    return int(row.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(psutil.Process(pid).memory_info().rss)
    except psutil.Error:
        return 0


def _redis_cpu(client: redis.Redis) -> float:
    """CPU seconds the Redis server has used (all its clients: the machine is shared)."""
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(ns: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFYD_")}
    env.update(
        NOTIFYD_REDIS_URL=REDIS_URL,
        NOTIFYD_NAMESPACE=ns,
        NOTIFYD_ALLOW_PRIVATE_TARGETS="false",
        NOTIFYD_IMPORT_MAX_LINES="5000000",
        # `notifyd serve` refuses a Redis that cannot meet the default "fsync" (the machine's has
        # no AOF); this measures imports, not durability.
        NOTIFYD_DURABILITY="none",
        **extra,
    )
    return env


def bench_baseline(rt: Runtime, n: int) -> float:
    rows = [json.loads(line) for line in lines(n, "base").splitlines()]
    t = time.perf_counter()
    for row in rows:
        rt.subscribers.add("base", row)
    return n / (time.perf_counter() - t)


def bench_in_process(rt: Runtime, n: int) -> tuple[float, float]:
    """Lines per wall second, and per CPU second of this process (what one idle core would give
    the Python side; on a shared machine the wall figure is what the others left over)."""
    rows = [(k, json.loads(line)) for k, line in enumerate(lines(n, "inproc").splitlines(), 1)]
    t, cpu = time.perf_counter(), time.process_time()
    bad = sum(1 for _, r in rt.subscribers.import_many("inproc", rows) if isinstance(r, Exception))
    took, cpu_took = time.perf_counter() - t, time.process_time() - cpu
    if bad:
        raise RuntimeError(f"in-process import rejected {bad} lines")
    return n / took, n / cpu_took


def bench_cli(
    ns: str, n: int, tmp: Path, *, tag: str = "cli", mixed: bool = False, again: bool = False
) -> dict[str, float]:
    """Wall clock from spawn to exit; the rate the CLI reports (after start-up); the CLI
    process' CPU seconds (start-up included) and peak RSS. ``again``: import the file that the
    last call with this tag imported, a second time (every line an update: a nightly sync)."""
    path = tmp / f"subscribers-{tag}.ndjson"
    if not again:
        path.write_bytes(lines(n, tag, mixed=mixed))
    with path.open("rb") as stdin, tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "notifyd", "subscribers", "import", "--page", tag, "-"],
            stdin=stdin,
            stdout=out,
            stderr=err,
            env=_env(ns),
        )
        peak = 0
        while proc.poll() is None:
            peak = max(peak, _peak_rss(proc.pid))
            time.sleep(0.05)
        wall = time.perf_counter() - t
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        out.seek(0)
        err.seek(0)
        done = subprocess.CompletedProcess(proc.args, proc.returncode, out.read(), err.read())
    if done.returncode != 0:
        raise RuntimeError(
            f"notifyd subscribers import exited {done.returncode}: {done.stderr.decode()[-500:]}"
        )
    summary = json.loads(done.stdout)
    if summary["updated" if again else "imported"] != n:
        raise RuntimeError(f"cli import of {n}: {summary}"[:500])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "wall": n / wall,
        "own": float(summary["lines_per_second"]),
        "cpu": n / cpu,
        "rss_mb": peak / 2**20,
    }


def bench_api(ns: str, n: int) -> tuple[float, float, float]:
    """Lines per wall second, per CPU second of the server process during the request, and the
    server's peak RSS in MB."""
    key = secrets.token_urlsafe(32)
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "notifyd", "serve", "--port", str(port)],
        env=_env(ns, NOTIFYD_API_KEYS=f"{key}:admin"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("notifyd serve did not start: " + (server.stderr.read().decode()[-500:] if
                                   server.poll() is not None and server.stderr else "timeout"))  # fmt: skip
            time.sleep(0.1)
        body = lines(n, "api")

        def chunks():  # type: ignore[no-untyped-def]
            for i in range(0, len(body), 65536):
                yield body[i : i + 65536]

        proc = psutil.Process(server.pid)
        cpu = sum(proc.cpu_times()[:2])
        t = time.perf_counter()
        r = httpx.post(
            f"{url}/v1/pages/api/subscribers:import",
            content=chunks(),
            headers={"Authorization": f"Bearer {key}", "content-type": "application/x-ndjson"},
            timeout=600,
        )
        took = time.perf_counter() - t
        cpu_took = sum(proc.cpu_times()[:2]) - cpu
        if r.status_code != 200 or r.json()["imported"] != n:
            raise RuntimeError(f"API import answered {r.status_code}: {r.text[:300]}")
        return n / took, n / cpu_took, _peak_rss(server.pid) / 2**20
    finally:
        server.terminate()
        server.wait(timeout=30)


def bench_slack(rt: Runtime, n: int) -> tuple[float, float]:
    """Slack incoming-webhook subscribers, whose URL is a credential (sealed at rest): lines per
    second imported in-process, and subscribers per second read back as a fan-out shard reads
    them (``range``) with each target opened for its message (``target_of``)."""
    rows = [
        (k, {"channel": "slack", "target": f"https://hooks.slack.com/services/T{k:08d}/B{k:08d}/{k:024d}"})
        for k in range(1, n + 1)
    ]
    t = time.perf_counter()
    bad = sum(1 for _, r in rt.subscribers.import_many("slack", rows) if isinstance(r, Exception))
    imported = n / (time.perf_counter() - t)
    if bad:
        raise RuntimeError(f"slack import rejected {bad} lines")
    repo = rt.subscribers
    t = time.perf_counter()
    opened = 0
    for start in range(0, n, 1000):
        for sub in repo.range("slack", start, start + 1000):
            opened += repo.target_of(sub).startswith("https://")
    read = n / (time.perf_counter() - t)
    if opened != n:
        raise RuntimeError(f"read back {opened} of {n} slack targets")
    return imported, read


def _row(name: str, rate: float, base: float, note: str = "") -> dict[str, Any]:
    return {
        "name": name,
        "measured": f"{rate:,.0f} lines/s{note}",
        "baseline": f"{base:,.0f} lines/s (add() one by one)",
        "ratio": f"{rate / base:.1f}x",
        "target": f">= {TARGET:,} lines/s",
        "ok": rate >= TARGET,
    }


def main(quick: bool = False, full: bool = False) -> list[dict[str, Any]]:
    n = 10_000 if quick else 1_000_000 if full else 200_000
    n_base = 2_000 if quick else 5_000
    ns = f"bench-{uuid.uuid4().hex[:10]}"
    client = redis.Redis.from_url(REDIS_URL)
    rt = Runtime.start(Settings(redis_url=REDIS_URL, namespace=ns, allow_private_targets=False))
    RESULTS.clear()
    print(f"notifyd subscriber import: {n:,} webhook lines with id and secret, namespace {ns} on {REDIS_URL}")
    print(f"  load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
    try:
        base = bench_baseline(rt, n_base)
        print(f"  baseline, add() one by one ({n_base:,} lines): {base:,.0f} lines/s", flush=True)
        redis_cpu = _redis_cpu(client)
        inproc, inproc_cpu = bench_in_process(rt, min(n, 200_000))
        inproc_redis = min(n, 200_000) / max(_redis_cpu(client) - redis_cpu, 1e-9)
        print(
            f"  in-process import_many: {inproc:,.0f} lines/s ({inproc_cpu:,.0f} per CPU second; "
            f"Redis: {inproc_redis:,.0f} per CPU second of the whole server)",
            flush=True,
        )
        n_slack = min(n, 100_000)
        slack_import, slack_read = bench_slack(rt, n_slack)
        print(
            f"  Slack hook lines ({n_slack:,}), in-process: imported {slack_import:,.0f} lines/s; "
            f"read back as a shard does, each target opened: {slack_read:,.0f} subscribers/s",
            flush=True,
        )
        with tempfile.TemporaryDirectory() as tmp:
            cli = bench_cli(ns, n, Path(tmp))
            print(
                f"  CLI: {cli['wall']:,.0f} lines/s wall clock ({cli['own']:,.0f} lines/s after start-up, "
                f"as it reports; {cli['cpu']:,.0f} per CPU second of the CLI process, start-up included; "
                f"peak RSS {cli['rss_mb']:,.0f} MB)",
                flush=True,
            )
            small = bench_cli(ns, min(n, 50_000), Path(tmp), tag="small")
            print(
                f"  CLI, {min(n, 50_000):,} lines: {small['wall']:,.0f} lines/s wall clock from spawn "
                f"({small['own']:,.0f} after start-up; {small['cpu']:,.0f} per CPU second, "
                "start-up included)",
                flush=True,
            )
            sync = bench_cli(ns, n, Path(tmp), again=True)
            print(
                f"  CLI, the same file again (every line an update): {sync['wall']:,.0f} lines/s wall clock "
                f"({sync['own']:,.0f} after start-up; {sync['cpu']:,.0f} per CPU second)",
                flush=True,
            )
            n_mixed = min(n, 200_000)
            mixed = bench_cli(ns, n_mixed, Path(tmp), tag="mixed", mixed=True)
            print(
                f"  CLI, mixed webhook and email lines ({n_mixed:,}): "
                f"{mixed['wall']:,.0f} lines/s wall clock "
                f"({mixed['own']:,.0f} after start-up; {mixed['cpu']:,.0f} per CPU second)",
                flush=True,
            )
        api, api_cpu, api_rss = bench_api(ns, n)
        print(
            f"  API: {api:,.0f} lines/s ({api_cpu:,.0f} per CPU second of the server process; "
            f"server peak RSS {api_rss:,.0f} MB)",
            flush=True,
        )
        print(f"  load average {os.getloadavg()[0]:.1f} at the end", flush=True)
        RESULTS.extend(
            [
                _row(
                    f"import {n // 1000}k via CLI (wall)",
                    cli["wall"],
                    base,
                    f", {cli['own']:,.0f} excl. start-up, {cli['cpu']:,.0f}/CPU-s",
                ),
                _row(f"import {n // 1000}k via API", api, base, f", {api_cpu:,.0f}/CPU-s of the server"),
                _row(f"import {min(n, 200_000) // 1000}k in-process", inproc, base),
                {
                    "name": f"import {n_slack // 1000}k Slack hook lines in-process",
                    "measured": f"{slack_import:,.0f} lines/s",
                    "target": "context: each hook sealed and digested on the way in",
                    "ok": None,
                },
                {
                    "name": f"read {n_slack // 1000}k Slack subscribers as a shard does, targets opened",
                    "measured": f"{slack_read:,.0f} subscribers/s",
                    "target": "context: the fan-out's cost of opening sealed hooks",
                    "ok": None,
                },
                {
                    "name": "in-process, per CPU second of the importer",
                    "measured": f"{inproc_cpu:,.0f} lines/CPU-s",
                    "target": "context: the rate one idle core would allow the Python side",
                    "ok": None,
                },
                {
                    "name": f"import {min(n, 50_000) // 1000}k via CLI (wall from spawn)",
                    "measured": f"{small['wall']:,.0f} lines/s, {small['own']:,.0f} excl. start-up",
                    "target": "context: start-up's share on a small file",
                    "ok": None,
                },
                {
                    "name": f"re-import of the same {n // 1000}k via CLI (wall), every line an update",
                    "measured": f"{sync['wall']:,.0f} lines/s, {sync['cpu']:,.0f}/CPU-s",
                    "target": "context: a nightly sync",
                    "ok": None,
                },
                {
                    "name": f"import {n_mixed // 1000}k mixed webhook/email lines via CLI (wall)",
                    "measured": f"{mixed['wall']:,.0f} lines/s, {mixed['cpu']:,.0f}/CPU-s",
                    "target": "context: the realistic mix",
                    "ok": None,
                },
            ]
        )
    finally:
        rt.close()
        for key in client.scan_iter(match=f"{ns}*", count=1000):
            client.delete(key)
        client.close()
    return RESULTS


if __name__ == "__main__":
    for r in main(quick="--quick" in sys.argv, full="--full" in sys.argv):
        print(r)
