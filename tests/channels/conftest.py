"""Fixtures for the channel adapter tests: real loopback servers, started per test."""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trustme

from channels.base import Message, Notification
from notifyd.pipeline.asyncrunner import loop_factory
from notifyd.runtime.settings import LoopChoice
from notifyd.standins.servers import SlackServer, SMTPSink, TwilioServer
from tests.support.sink import ReceivedRequest, Sink

T = TypeVar("T")

SECRET = "whsec_" + base64.b64encode(b"channel-tests-secret-0123456789").decode()


#: The event loops the adapters must work on: the standard library's, and uvloop's (the
#: workers' default where it is installed, see notifyd/pipeline/asyncrunner.py).
LOOPS: tuple[LoopChoice, ...] = ("asyncio", "uvloop")
_loop: list[LoopChoice] = ["asyncio"]


@pytest.fixture(params=LOOPS)
def each_loop(request: pytest.FixtureRequest) -> Iterator[LoopChoice]:
    """Runs a test once on each event loop: :func:`run` uses the one chosen."""
    _loop[0] = request.param
    yield request.param
    _loop[0] = "asyncio"


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run one coroutine on a fresh loop (the adapters are built inside it)."""
    with asyncio.Runner(loop_factory=loop_factory(_loop[0])) as runner:
        return runner.run(coro)


def notification(**overrides: Any) -> Notification:
    values: dict[str, Any] = {
        "event_id": "inc-42-update-3",
        "event_type": "incident_updated",
        "page_id": "acme",
        "occurred_at": "2026-11-28T13:00:00Z",
        "title": "Database outage",
        "status": "identified",
        "impact": "critical",
        "message": "Failover in progress",
        "components": ("api", "db"),
        "payload": {"type": "incident_updated", "event_id": "inc-42-update-3", "page_id": "acme"},
        "link": "https://status.example.com/acme",
    }
    values.update(overrides)
    return Notification(**values)


def message(target: str, n: int = 0, **overrides: Any) -> Message:
    values: dict[str, Any] = {
        "delivery_id": f"dlv_test{n:04d}",
        "subscriber_id": f"sub_{n}",
        "target": target,
        "notification": overrides.pop("notification", None) or notification(),
    }
    values.update(overrides)
    return Message(**values)


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def server_context(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)
    return context


@pytest.fixture
def smtp_sink() -> Iterator[SMTPSink]:
    sink = SMTPSink().start()
    yield sink
    sink.stop()


@pytest.fixture
def starttls_sink(ca: trustme.CA) -> Iterator[SMTPSink]:
    sink = SMTPSink(
        tls_context=server_context(ca, "127.0.0.1", "localhost"),
        require_starttls=True,
        credentials={"notifyd": "s3cret-smtp-password"},
    ).start()
    yield sink
    sink.stop()


@pytest.fixture
def twilio() -> Iterator[TwilioServer]:
    server = TwilioServer().start()
    yield server
    server.stop()


@pytest.fixture
def slack() -> Iterator[SlackServer]:
    server = SlackServer().start()
    yield server
    server.stop()


def standard_webhooks_check(request: ReceivedRequest) -> bool:
    from standardwebhooks.webhooks import Webhook

    try:
        Webhook(SECRET).verify(request.body, request.headers)
    except Exception:  # noqa: BLE001 - any failure is a bad signature
        return False
    return True


@pytest.fixture
def receiver() -> Iterator[Sink]:
    server = Sink(verify=standard_webhooks_check).start()
    yield server
    server.stop()


@pytest.fixture
def tmp_ca_dir(tmp_path: Path) -> Path:
    return tmp_path
