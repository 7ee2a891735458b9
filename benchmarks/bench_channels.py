"""Channel adapter benchmarks. Standalone: run

    .venv/bin/python benchmarks/bench_channels.py [--seconds 4]

1. Webhook adapter req/s at concurrency 64 against a local aiohttp sink (in a
   subprocess, so the sink does not compete with the client for the GIL),
   as a ratio to a raw aiohttp client on the same sink in the same run.
   Target: >= 0.5x. httpx's default transport and httpx-aiohttp's transport
   are measured too, for the record of why the transport was chosen.
2. Email adapter with pooled SMTP connections vs one connection per mail,
   against aiosmtpd in a subprocess. Target: >= 2x.

Bounded: each measurement runs for a fixed time (default 3 s); about 45 s in all.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import socket
import ssl
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CONCURRENCY = 64
ROUNDS = 5
SMTP_CONCURRENCY = 4
BATCH = 512
SECRET = "whsec_" + base64.b64encode(b"b" * 24).decode()


# ------------------------------------------------------------------ sinks (run in a subprocess)


def _serve_http(port_file: str) -> None:
    from aiohttp import web

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="ok")

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", hook)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        port = runner.addresses[0][1]
        Path(port_file).write_text(str(port))
        await asyncio.Event().wait()

    asyncio.run(main())


def _serve_smtp(port_file: str, tls: bool = False) -> None:
    from notifyd.standins.servers import SMTPSink

    context = None
    if tls:
        import trustme

        ca = trustme.CA()
        ca.cert_pem.write_to_path(port_file + ".ca.pem")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    sink = SMTPSink(tls_context=context, require_starttls=tls, credentials={"bench": "pw"} if tls else None)
    sink.start()
    Path(port_file).write_text(str(sink.port))
    while True:
        time.sleep(3600)


def _spawn(kind: str) -> tuple[subprocess.Popen[bytes], int, str | None]:
    port_file = ROOT / "var" / f"bench-{kind}-{os.getpid()}.port"
    port_file.parent.mkdir(parents=True, exist_ok=True)
    port_file.unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, __file__, "--serve", kind, str(port_file)])
    ca_file = Path(str(port_file) + ".ca.pem")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if port_file.exists() and port_file.read_text().strip():
            port = int(port_file.read_text())
            port_file.unlink()
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                pass
            return proc, port, str(ca_file) if ca_file.exists() else None
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{kind} sink did not start")


# ------------------------------------------------------------------ measurements


def _notification() -> Any:
    from channels.base import Notification

    return Notification(
        event_id="bench",
        event_type="incident_updated",
        page_id="acme",
        occurred_at="2026-11-28T13:00:00Z",
        title="Database outage",
        status="identified",
        impact="critical",
        message="Failover in progress",
        components=("db",),
        payload={"type": "incident_updated", "event_id": "bench"},
        link="https://status.example/acme",
    )


CPU_US: dict[str, list[float]] = {}


async def _for(seconds: float, step: Callable[[], Awaitable[int]], label: str = "") -> float:
    """Run ``step`` (which returns how many requests it made) repeatedly; requests per second.

    Also records the client's CPU microseconds per request under ``label``:
    unlike req/s, that figure hardly moves when other work shares the machine.
    """
    await step()  # warm-up: connections, caches
    done, start, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        done += await step()
    if label:
        CPU_US.setdefault(label, []).append((time.process_time() - cpu) / done * 1e6)
    return done / (time.perf_counter() - start)


async def raw_aiohttp(url: str, seconds: float) -> float:
    import aiohttp

    body = json.dumps({"type": "incident_updated", "event_id": "bench"}).encode()
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker(n: int) -> None:
            for _ in range(n):
                async with session.post(url, data=body, headers={"content-type": "application/json"}) as r:
                    await r.read()

        async def step() -> int:
            await asyncio.gather(*(worker(BATCH // CONCURRENCY) for _ in range(CONCURRENCY)))
            return BATCH

        return await _for(seconds, step, "raw")


async def webhook_adapter(url: str, seconds: float, transport_factory: Any = None, label: str = "") -> float:
    from channels.base import Message
    from channels.webhook import WebhookAdapter, WebhookConfig

    notification = _notification()
    batch = [
        Message(f"dlv_{i}", f"sub_{i}", f"{url}/hooks/{i}", notification, secret=SECRET) for i in range(BATCH)
    ]
    config = WebhookConfig(
        concurrency=CONCURRENCY, per_host_concurrency=CONCURRENCY, allow_private_targets=True
    )
    transport = transport_factory() if transport_factory is not None else None
    adapter = WebhookAdapter(config, transport=transport)
    async with adapter:

        async def step() -> int:
            outcomes = await adapter.send(batch)
            bad = [o for o in outcomes if o.kind != "delivered"]
            if bad:
                raise RuntimeError(f"{len(bad)} failed deliveries, e.g. {bad[0]}")
            return len(batch)

        try:
            return await _for(seconds, step, label)
        finally:
            if transport is not None:
                await transport.aclose()


def _messages(count: int) -> list[Any]:
    from channels.base import Message

    n = _notification()
    return [
        Message(
            f"dlv_{i}", f"s{i}", f"user{i}@example.com", n, unsubscribe_url=f"https://status.example/u/{i}"
        )
        for i in range(count)
    ]


def _email_config(port: int, ca_file: str | None) -> Any:
    from channels.email import EmailConfig

    if ca_file is None:
        return EmailConfig(port=port, pool_size=SMTP_CONCURRENCY, sender="status@example.com")
    return EmailConfig(
        port=port, pool_size=SMTP_CONCURRENCY, sender="status@example.com",
        tls="starttls", username="bench", password="pw", ca_file=ca_file,
    )  # fmt: skip


async def smtp_pooled(port: int, seconds: float, ca_file: str | None) -> float:
    """The email adapter as the pipeline uses it: a batch over its pool of connections."""
    from channels.email import EmailAdapter

    batch = _messages(64)
    async with EmailAdapter(_email_config(port, ca_file)) as adapter:

        async def step() -> int:
            outcomes = await adapter.send(batch)
            if any(o.kind != "delivered" for o in outcomes):
                raise RuntimeError(f"failed mails: {outcomes[0]}")
            return len(batch)

        return await _for(seconds, step)


async def smtp_per_mail(port: int, seconds: float, ca_file: str | None) -> float:
    """The same rendering and the same aiosmtplib client, but a new connection (and QUIT) per mail."""
    from channels.email import EmailAdapter
    from channels.email_render import build_email

    batch = _messages(64)
    factory = EmailAdapter(_email_config(port, ca_file))._connection  # same TLS and AUTH settings
    semaphore = asyncio.Semaphore(SMTP_CONCURRENCY)

    async def one(message: Any) -> None:
        async with semaphore:
            raw = build_email(message, "status@example.com")
            conn = factory()
            await conn.connect()
            if ca_file is not None:
                await conn.login("bench", "pw")
            try:
                await conn.sendmail("status@example.com", [message.target], raw)
            finally:
                await conn.quit()

    async def step() -> int:
        await asyncio.gather(*(one(m) for m in batch))
        return len(batch)

    return await _for(seconds, step)


# ------------------------------------------------------------------ main


def _runs(values: list[float]) -> str:
    return ", ".join(f"{v:.0f}" for v in values)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--serve", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        kind, port_file = args.serve
        if kind == "http":
            _serve_http(port_file)
        else:
            _serve_smtp(port_file, tls=kind == "smtp-tls")
        return 0

    import httpx
    import httpx_aiohttp

    seconds = args.seconds
    print(f"channel benchmarks ({seconds:.0f} s per measurement, concurrency {CONCURRENCY})", flush=True)
    http_proc, http_port, _ = _spawn("http")
    smtp_proc, smtp_port, _ = _spawn("smtp")
    tls_proc, tls_port, ca_file = _spawn("smtp-tls")
    ok = True
    try:
        url = f"http://127.0.0.1:{http_port}"
        # Alternate the clients over several short rounds and compare medians: the machine is shared.
        raws, ours_runs, hx_runs = [], [], []
        per = seconds / ROUNDS * 2
        for _ in range(ROUNDS):
            raws.append(asyncio.run(raw_aiohttp(url + "/raw", per)))
            ours_runs.append(asyncio.run(webhook_adapter(url, per, label="ours")))
            hx_runs.append(
                asyncio.run(webhook_adapter(url, per, httpx_aiohttp.AiohttpTransport, "httpx-aiohttp"))
            )
        baseline, ours, hx_aio = (statistics.median(v) for v in (raws, ours_runs, hx_runs))
        default = asyncio.run(
            webhook_adapter(
                url,
                seconds / 2,
                lambda: httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=64)),
                "httpx",
            )
        )
        ratio = ours / baseline
        ok &= ratio >= 0.5
        print(f"  raw aiohttp client                    {baseline:>8.0f} req/s  (runs: {_runs(raws)})")
        print(f"  webhook adapter (its Http1Client)     {ours:>8.0f} req/s  (runs: {_runs(ours_runs)})")
        print(f"    ratio {ratio:.2f}x  target >= 0.5x")
        cpu = {k: statistics.median(v) for k, v in CPU_US.items()}
        print(
            "  client CPU per request: "
            + ", ".join(f"{k} {v:.0f} us" for k, v in cpu.items())
            + f"  (CPU ratio raw/ours {cpu['raw'] / cpu['ours']:.2f}x)"
        )
        print(
            f"  webhook adapter, httpx default        {default:>8.0f} req/s  ratio {default / baseline:.2f}x"
        )
        print(f"  webhook adapter, httpx-aiohttp        {hx_aio:>8.0f} req/s  ratio {hx_aio / baseline:.2f}x")

        # Real relays (SES, SendGrid, Postmark, Gmail) all require STARTTLS and AUTH, which is where a
        # new connection costs most; the target is judged there. Plain loopback SMTP is shown too.
        for label, port, ca, judged in (
            ("plain SMTP", smtp_port, None, False),
            ("STARTTLS + AUTH", tls_port, ca_file, True),
        ):
            pooled = asyncio.run(smtp_pooled(port, seconds, ca))
            single = asyncio.run(smtp_per_mail(port, seconds, ca))
            smtp_ratio = pooled / single
            if judged:
                ok &= smtp_ratio >= 2.0
            print(
                f"  email {label:<16} per-mail connection {single:>6.0f} mails/s, "
                f"pooled ({SMTP_CONCURRENCY} conns) {pooled:>6.0f} mails/s  ratio {smtp_ratio:.2f}x"
                + ("  target >= 2x" if judged else "  (for reference)")
            )
    finally:
        for proc in (http_proc, smtp_proc, tls_proc):
            proc.kill()
            proc.wait()
        if ca_file:
            Path(ca_file).unlink(missing_ok=True)
    print("PASS" if ok else "BELOW TARGET", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
