"""The webhook adapter against real loopback receivers that verify Standard Webhooks signatures."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Iterator

import httpx
import pytest
import trustme

from channels.base import OutcomeKind
from channels.webhook import WebhookAdapter, WebhookConfig
from tests.channels.conftest import SECRET, closed_port, message, notification, run, server_context
from tests.support.sink import Reply, Sink

# Each test runs on asyncio's event loop and on uvloop's (the workers' default).
pytestmark = pytest.mark.usefixtures("each_loop")


def _adapter(**overrides: object) -> WebhookAdapter:
    transport = overrides.pop("transport", None)
    values: dict[str, object] = {"allow_private_targets": True, "timeout_s": 5.0}
    values.update(overrides)
    return WebhookAdapter(WebhookConfig(**values), transport=transport)  # type: ignore[arg-type]


def _send(adapter: WebhookAdapter, *targets: str) -> list:
    async def go() -> list:
        async with adapter:
            return await adapter.send([message(t, i, secret=SECRET) for i, t in enumerate(targets)])

    return run(go())


def test_a_delivery_is_signed_per_standard_webhooks_and_carries_the_delivery_id(
    receiver: Sink,
) -> None:
    [outcome] = _send(_adapter(), f"{receiver.url}/hook")
    assert outcome.kind is OutcomeKind.delivered
    [request] = receiver.received
    assert receiver.verified == [True]
    assert request.headers["webhook-id"] == "dlv_test0000"
    assert request.headers["idempotency-key"] == "dlv_test0000"
    assert request.headers["webhook-signature"].startswith("v1,")
    assert request.headers["host"] == receiver.url.removeprefix("http://")
    assert json.loads(request.body) == dict(notification().payload)


def test_every_message_of_a_batch_is_signed_with_its_own_id(receiver: Sink) -> None:
    outcomes = _send(_adapter(), *(f"{receiver.url}/hook/{i}" for i in range(20)))
    assert all(o.kind is OutcomeKind.delivered for o in outcomes)
    assert receiver.verified == [True] * 20
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 20


def test_a_410_is_a_permanent_endpoint_gone(receiver: Sink) -> None:
    receiver.replies["/gone"] = Reply(410)
    [outcome] = _send(_adapter(), f"{receiver.url}/gone")
    assert outcome.kind is OutcomeKind.permanent and outcome.permanent_reason == "endpoint_gone"


@pytest.mark.parametrize("status", [429, 503])
def test_429_and_503_are_transient_and_honour_retry_after(receiver: Sink, status: int) -> None:
    receiver.replies["/busy"] = Reply(status, headers={"Retry-After": "120"})
    [outcome] = _send(_adapter(), f"{receiver.url}/busy")
    assert outcome.kind is OutcomeKind.transient and outcome.retry_after == 120.0


def test_other_4xx_are_permanent_and_5xx_transient(receiver: Sink) -> None:
    receiver.replies["/bad"] = Reply(400)
    receiver.replies["/auth"] = Reply(401)
    receiver.replies["/err"] = Reply(500)
    bad, auth, err = _send(_adapter(), f"{receiver.url}/bad", f"{receiver.url}/auth", f"{receiver.url}/err")
    assert bad.kind is OutcomeKind.permanent and bad.permanent_reason == "rejected"
    assert auth.kind is OutcomeKind.permanent and auth.permanent_reason == "auth"
    assert err.kind is OutcomeKind.transient


def test_a_redirect_is_not_followed(receiver: Sink) -> None:
    receiver.replies["/moved"] = Reply(302, headers={"Location": f"{receiver.url}/elsewhere"})
    [outcome] = _send(_adapter(), f"{receiver.url}/moved")
    assert outcome.kind is OutcomeKind.permanent and "redirect" in outcome.reason
    time.sleep(0.1)
    assert [r.path for r in receiver.received] == ["/moved"]


def test_a_huge_response_body_is_not_read_in_full(receiver: Sink) -> None:
    receiver.replies["/chatty"] = Reply(200, b"x" * 5_000_000)
    [outcome] = _send(_adapter(), f"{receiver.url}/chatty")
    assert outcome.kind is OutcomeKind.delivered


def test_a_slow_endpoint_times_out_without_holding_the_rest_of_the_batch(receiver: Sink) -> None:
    slow = receiver.gate("/slow")  # answers nothing until opened: slower than any timeout
    targets = [f"{receiver.url}/slow"] + [f"{receiver.url}/fast/{i}" for i in range(10)]
    # The timeout is only what ends the gated request: 2 s, not less, so that the ten fast ones
    # are not timed out too on a loaded machine (at 0.5 s they were, now and then).
    outcomes = _send(_adapter(timeout_s=2.0), *targets)
    assert outcomes[0].kind is OutcomeKind.transient and outcomes[0].reason == "timeout"
    assert all(o.kind is OutcomeKind.delivered for o in outcomes[1:])
    # Every fast endpoint was answered while the slow request was still held at its gate.
    assert slow.waiting == 1 and len(receiver.received) == 10
    slow.open()


@pytest.fixture
def slow_host() -> Iterator[Sink]:
    server = Sink().start()
    server.gate("/")  # a host that never answers while the test runs
    yield server
    server.stop()


def test_a_dead_slow_host_cannot_take_every_slot_from_other_hosts(slow_host: Sink, receiver: Sink) -> None:
    targets = [f"{slow_host.url}/" for _ in range(12)] + [f"{receiver.url}/ok/{i}" for i in range(6)]
    outcomes = _send(_adapter(timeout_s=0.5, concurrency=4), *targets)
    assert all(o.kind is OutcomeKind.delivered for o in outcomes[12:])
    assert all(o.kind is OutcomeKind.transient for o in outcomes[:12])
    # The healthy host was served while the slow one held its share of slots (2 of 4): its
    # requests are still held at the gate, none was ever answered...
    (gate,) = slow_host.gates
    assert gate.waiting >= 1 and slow_host.received == []
    # ...and after 5 timeouts the slow host's circuit opened: the rest never touched the network.
    assert sum(o.reason == "circuit open" for o in outcomes[:12]) >= 5
    assert len(slow_host.arrived) <= 12 - 5


@pytest.fixture
def tls_receiver(ca: trustme.CA) -> Iterator[Sink]:
    server = Sink(tls_context=server_context(ca, "localhost")).start()
    yield server
    server.stop()


def _httpx_transport(ca_file: str) -> httpx.AsyncBaseTransport:
    return httpx.AsyncHTTPTransport(verify=ssl.create_default_context(cafile=ca_file))


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
def test_https_to_a_pinned_address_still_verifies_the_certificate_for_the_host_name(
    tls_receiver: Sink, ca_file: str, transport: str
) -> None:
    # The certificate names only "localhost": the adapter connects to 127.0.0.1 (the address it
    # checked), so this works only if SNI and verification use the name, and Host keeps it.
    async def go() -> list:
        chosen = _httpx_transport(ca_file) if transport == "httpx" else None
        async with _adapter(ca_file=ca_file, transport=chosen) as adapter:
            outcomes = await adapter.send([message(f"https://localhost:{tls_receiver.port}/secure")])
        if chosen is not None:
            await chosen.aclose()
        return outcomes

    [outcome] = run(go())
    assert outcome.kind is OutcomeKind.delivered
    assert tls_receiver.received[0].headers["host"] == f"localhost:{tls_receiver.port}"


def test_https_to_a_host_the_certificate_does_not_name_fails(tls_receiver: Sink, ca_file: str) -> None:
    [outcome] = _send(_adapter(ca_file=ca_file), f"https://127.0.0.1:{tls_receiver.port}/secure")
    assert outcome.kind is OutcomeKind.transient and "connection error" in outcome.reason
    assert tls_receiver.received == []


def test_https_with_an_untrusted_ca_fails(tls_receiver: Sink) -> None:
    [outcome] = _send(_adapter(), f"https://localhost:{tls_receiver.port}/secure")
    assert outcome.kind is OutcomeKind.transient
    assert tls_receiver.received == []


def test_a_mock_transport_plugs_in_through_the_httpx_interface() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    [outcome] = _send(
        _adapter(allow_private_targets=False, transport=httpx.MockTransport(handler)),
        "https://93.184.215.14/hook",
    )
    assert outcome.kind is OutcomeKind.delivered
    assert seen[0].url.host == "93.184.215.14" and seen[0].headers["webhook-id"] == "dlv_test0000"


def _through(transport: str, *messages: object, **config: object) -> list:
    """Send through the default (aiohttp) transport or httpx's own: both paths classify alike."""

    async def go() -> list:
        chosen = httpx.AsyncHTTPTransport() if transport == "httpx" else None
        async with _adapter(transport=chosen, **config) as adapter:
            outcomes = await adapter.send(list(messages))  # type: ignore[arg-type]
        if chosen is not None:
            await chosen.aclose()
        return outcomes

    return run(go())


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
def test_a_confirmation_challenge_counts_only_when_the_answer_echoes_it(
    receiver: Sink, transport: str
) -> None:
    # The challenge sits past the first few KiB of nothing, but within what is read of the answer.
    receiver.replies["/echo"] = Reply(200, b" " * 3000 + b"challenge-123")
    receiver.replies["/deaf"] = Reply(200, b"ok")
    echoed, deaf = _through(
        transport,
        message(f"{receiver.url}/echo", 0, secret=SECRET, expect_echo="challenge-123"),
        message(f"{receiver.url}/deaf", 1, secret=SECRET, expect_echo="challenge-123"),
    )
    assert echoed.kind is OutcomeKind.delivered
    assert deaf.kind is OutcomeKind.permanent and "echo" in deaf.reason
    assert receiver.verified == [True, True]


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
def test_a_refused_connection_is_a_transient_connection_error(transport: str) -> None:
    [outcome] = _through(transport, message(f"http://127.0.0.1:{closed_port()}/hook", secret=SECRET))
    assert outcome.kind is OutcomeKind.transient and outcome.reason.startswith("connection error")


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
def test_retry_after_is_read_only_from_429_and_503(receiver: Sink, transport: str) -> None:
    receiver.replies["/busy"] = Reply(429, headers={"Retry-After": "7"})
    receiver.replies["/err"] = Reply(500, headers={"Retry-After": "7"})
    busy, err = _through(transport, message(f"{receiver.url}/busy", 0), message(f"{receiver.url}/err", 1))
    assert busy.kind is OutcomeKind.transient and busy.retry_after == 7.0
    assert err.kind is OutcomeKind.transient and err.retry_after is None


def test_a_hosts_cap_holds_across_concurrent_batches(slow_host: Sink, receiver: Sink) -> None:
    async def go() -> tuple[int, list]:
        async with _adapter(timeout_s=30, concurrency=4, per_host_concurrency=2) as adapter:
            first = asyncio.ensure_future(
                adapter.send([message(f"{slow_host.url}/a/{i}", i) for i in range(3)])
            )
            second = asyncio.ensure_future(
                adapter.send(
                    [message(f"{slow_host.url}/b/{i}", 10 + i) for i in range(3)]
                    + [message(f"{receiver.url}/ok/{i}", 20 + i) for i in range(4)]
                )
            )
            # The other host is served while the slow one holds its places...
            while len(receiver.received) < 4:
                await asyncio.sleep(0.01)
            (gate,) = slow_host.gates
            # ...and the slow one holds two places in all, not two per batch.
            held = gate.waiting
            gate.open()
            return held, await first + await second

    held, outcomes = run(go())
    assert held == 2
    assert all(o.kind is OutcomeKind.delivered for o in outcomes)
    assert len(slow_host.received) == 6
