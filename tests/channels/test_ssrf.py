"""Targets that resolve to loopback, private, link-local or metadata addresses are refused."""

from __future__ import annotations

import pytest

from channels.base import OutcomeKind
from channels.ssrf import BlockedTargetError, is_public_address, resolve_checked
from channels.webhook import WebhookAdapter, WebhookConfig
from tests.channels.conftest import message, run
from tests.support.sink import Sink


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


def test_a_loopback_receiver_is_never_contacted_when_private_targets_are_off(receiver: Sink) -> None:
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


class RebindingName:
    """A DNS name under the test's control: each lookup gets the next answer (the last one repeats).

    Answering a public address first and loopback next is DNS rebinding: the name passes a check
    made at subscribe time, then points at the inside of the network when the webhook is sent.
    """

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.lookups = 0

    async def __call__(self, host: str, port: int) -> list[str]:
        self.lookups += 1
        return [self.answers[min(self.lookups, len(self.answers)) - 1]]


def _send_with(resolver: RebindingName, target: str, *, allow_private: bool) -> list:
    async def go() -> list:
        config = WebhookConfig(allow_private_targets=allow_private, resolver=resolver)
        async with WebhookAdapter(config) as adapter:
            return await adapter.send([message(target)])

    return run(go())


def test_a_name_that_answered_public_and_then_rebinds_to_loopback_is_refused_at_send_time(
    receiver: Sink,
) -> None:
    name = RebindingName("93.184.215.14", "127.0.0.1")
    # Subscribe time: the name answers a public address, so the target passes the check...
    subscribed = run(resolve_checked("rebind.example", receiver.port, allow_private=False, resolver=name))
    assert subscribed == "93.184.215.14"
    # ...send time: the same name now answers loopback, where a receiver listens.
    [outcome] = _send_with(name, f"https://rebind.example:{receiver.port}/hook", allow_private=False)
    assert outcome.kind is OutcomeKind.permanent and outcome.permanent_reason == "blocked_target"
    assert "non-public" in outcome.reason
    assert name.lookups == 2  # the check ran on the answer given at send time
    assert receiver.arrived == []  # the receiver was never contacted


def test_the_injected_resolver_is_the_one_the_webhook_connects_by() -> None:
    """The control for the test above: with private targets allowed, the same loopback answer
    reaches the receiver, so the refusal there came from the check and not from a failed lookup."""
    with Sink() as receiver:
        name = RebindingName("127.0.0.1")
        [outcome] = _send_with(name, f"http://rebind.example:{receiver.port}/hook", allow_private=True)
        assert outcome.kind is OutcomeKind.delivered
        (request,) = receiver.received
        assert request.headers["host"] == f"rebind.example:{receiver.port}"
