"""Targets that resolve to loopback, private, link-local or metadata addresses are refused."""

from __future__ import annotations

import pytest

from channels.base import OutcomeKind
from channels.ssrf import BlockedTargetError, is_public_address, resolve_checked
from channels.webhook import WebhookAdapter, WebhookConfig
from notifyd.standins.servers import HTTPReceiver
from tests.channels.conftest import message, run


@pytest.mark.parametrize(
    "target",
    [
        "https://127.0.0.1/hook",
        "https://10.0.0.1/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://localhost/hook",
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://192.168.1.10:8443/hook",
        "https://0.0.0.0/hook",
    ],
)
def test_webhook_targets_on_non_public_addresses_are_refused_when_private_targets_are_off(
    target: str,
) -> None:
    async def go() -> list:
        async with WebhookAdapter(WebhookConfig(allow_private_targets=False)) as adapter:
            return await adapter.send([message(target)])

    [outcome] = run(go())
    assert outcome.kind is OutcomeKind.permanent and outcome.permanent_reason == "blocked_target"


def test_a_loopback_receiver_is_never_contacted_when_private_targets_are_off(receiver: HTTPReceiver) -> None:
    target = receiver.url.replace("http://", "https://") + "/hook"

    async def go() -> list:
        async with WebhookAdapter(WebhookConfig(allow_private_targets=False)) as adapter:
            return await adapter.send([message(target), message(f"{receiver.url}/plain-http", 1)])

    blocked, plain_http = run(go())
    assert blocked.permanent_reason == "blocked_target"
    assert plain_http.permanent_reason == "invalid_target"  # http only when private targets are allowed
    assert receiver.received == []


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.215.14", True),
        ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.0.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("::ffff:10.0.0.1", False),
        ("64:ff9b::7f00:1", False),
        ("2002:7f00:1::", False),
        ("not-an-ip", False),
    ],
)
def test_only_globally_routable_unicast_addresses_count_as_public(address: str, public: bool) -> None:
    assert is_public_address(address) is public


def test_a_name_that_resolves_to_loopback_is_refused_and_allowed_only_when_private_targets_are_on() -> None:
    with pytest.raises(BlockedTargetError):
        run(resolve_checked("localhost", 443, allow_private=False))
    assert run(resolve_checked("localhost", 443, allow_private=True)) in ("127.0.0.1", "::1")
