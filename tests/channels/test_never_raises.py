"""No adapter raises, whatever it is given: dead servers, garbage targets, odd content."""

from __future__ import annotations

import pytest

from channels import build
from channels.base import Adapter, OutcomeKind
from channels.email import EmailAdapter, EmailConfig
from channels.slack import SlackAdapter, SlackConfig
from channels.sms import SMSAdapter, SMSConfig
from channels.webhook import WebhookAdapter, WebhookConfig
from tests.channels.conftest import closed_port, message, notification, run

# Each test runs on asyncio's event loop and on uvloop's (the workers' default).
pytestmark = pytest.mark.usefixtures("each_loop")

GARBAGE_TARGETS = ["", " ", "not a target", "\r\n", "http://[::1", "https://:0/", "slack:", "💥" * 50]


def _adapters(port: int) -> list[Adapter]:
    url = f"http://127.0.0.1:{port}"
    return [
        EmailAdapter(EmailConfig(port=port, timeout_s=2)),
        SMSAdapter(SMSConfig(account_sid="AC1", auth_token="t", sender="+15005550006", base_url=url)),
        SlackAdapter(SlackConfig(bot_token="xoxb-1", base_url=url + "/api/", allow_private_targets=True)),
        WebhookAdapter(WebhookConfig(allow_private_targets=True, connect_timeout_s=1, timeout_s=2)),
    ]


@pytest.mark.parametrize("index", range(4), ids=["email", "sms", "slack", "webhook"])
def test_a_closed_port_gives_transient_outcomes_not_exceptions(index: int) -> None:
    port = closed_port()
    adapter = _adapters(port)[index]
    targets = {
        "email": "a@example.com",
        "sms": "+14155552671",
        "slack": "slack:C1",
        "webhook": f"http://127.0.0.1:{port}/hook",
    }

    async def go() -> list:
        async with adapter:
            return await adapter.send([message(targets[adapter.channel], i) for i in range(3)])

    outcomes = run(go())
    assert len(outcomes) == 3
    assert all(o.kind is OutcomeKind.transient for o in outcomes)


@pytest.mark.parametrize("index", range(4), ids=["email", "sms", "slack", "webhook"])
def test_garbage_targets_and_content_give_one_outcome_each(index: int) -> None:
    adapter = _adapters(closed_port())[index]
    odd = notification(title="\x00\r\nSubject: injected", message="\ud83d" * 0 + "ü" * 5000, components=())
    batch = [message(t, i, notification=odd) for i, t in enumerate(GARBAGE_TARGETS)]

    async def go() -> list:
        async with adapter:
            return await adapter.send(batch)

    outcomes = run(go())
    assert len(outcomes) == len(batch)
    assert all(o.kind in (OutcomeKind.permanent, OutcomeKind.transient) for o in outcomes)


def test_an_empty_batch_gives_no_outcomes() -> None:
    for adapter in _adapters(closed_port()):
        assert run(adapter.send([])) == []
        run(adapter.aclose())


@pytest.mark.parametrize(
    ("channel", "options"),
    [
        ("email", {"host": "127.0.0.1", "port": 25, "username": None, "password": None, "tls": "none",
                   "sender": "status@localhost", "future_option": 1}),
        ("sms", {"account_sid": None, "auth_token": None, "sender": None, "base_url": None}),
        ("slack", {"bot_token": None, "base_url": None, "allow_private_targets": False}),
        ("webhook", {"timeout_s": 10.0, "connect_timeout_s": 3.0, "concurrency": 64,
                     "allow_private_targets": False}),
    ],
)  # fmt: skip
def test_every_factory_accepts_the_pipelines_options_including_nones_and_unknown_keys(
    channel: str, options: dict
) -> None:
    adapter = build(channel, options)
    assert adapter.channel == channel


def test_an_unconfigured_sms_adapter_fails_permanently_instead_of_raising() -> None:
    adapter = build("sms", {"account_sid": None, "auth_token": None, "sender": None, "base_url": None})
    [outcome] = run(adapter.send([message("+14155552671")]))
    assert outcome.permanent_reason == "auth"
