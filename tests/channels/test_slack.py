"""The Slack adapter (the real slack_sdk clients) against a Slack-like server on loopback."""

from __future__ import annotations

import pytest

from channels.base import OutcomeKind
from channels.slack import SlackAdapter, SlackConfig
from notifyd.standins.servers import Reply, SlackServer
from tests.channels.conftest import message, notification, run

# Each test runs on asyncio's event loop and on uvloop's (the workers' default).
pytestmark = pytest.mark.usefixtures("each_loop")


def _adapter(server: SlackServer, **overrides: object) -> SlackAdapter:
    values: dict[str, object] = {
        "bot_token": server.token,
        "base_url": server.api_url,
        "allow_private_targets": True,
    }
    values.update(overrides)
    return SlackAdapter(SlackConfig(**values))  # type: ignore[arg-type]


def _send(adapter: SlackAdapter, *targets: str, **kwargs: object) -> list:
    async def go() -> list:
        async with adapter:
            return await adapter.send([message(t, i, **kwargs) for i, t in enumerate(targets)])

    return run(go())


def test_chat_post_message_sends_block_kit_with_impact_colour_status_components_and_link(
    slack: SlackServer,
) -> None:
    [outcome] = _send(_adapter(slack), "slack:C0INCIDENTS")
    assert outcome.kind is OutcomeKind.delivered
    [request] = slack.received
    assert request.path == "/api/chat.postMessage"
    assert request.headers["authorization"] == f"Bearer {slack.token}"
    body = request.json()
    assert body["channel"] == "C0INCIDENTS"
    assert body["text"] == "[acme] Database outage — identified"
    [attachment] = body["attachments"]
    assert attachment["color"] == "#d1242f"  # critical
    blocks = attachment["blocks"]
    assert blocks[0] == {"type": "header", "text": {"type": "plain_text", "text": "Database outage"}}
    fields = [f["text"] for f in blocks[1]["fields"]]
    assert fields == ["*Status*\nidentified", "*Impact*\ncritical"]
    texts = [b.get("text", {}).get("text", "") for b in blocks]
    assert "*Affected:* `api`, `db`" in texts
    button = blocks[-1]["elements"][0]
    assert button["url"] == "https://status.example.com/acme"


def test_a_resolved_incident_is_green_and_mrkdwn_control_characters_are_escaped(slack: SlackServer) -> None:
    n = notification(status="resolved", message="<!channel> fixed & done")
    _send(_adapter(slack), "slack:C1", notification=n)
    attachment = slack.received[0].json()["attachments"][0]
    assert attachment["color"] == "#1a7f37"
    assert any(
        b.get("text", {}).get("text") == "&lt;!channel&gt; fixed &amp; done" for b in attachment["blocks"]
    )


def test_an_incoming_webhook_target_gets_the_same_payload_without_the_bot_token(slack: SlackServer) -> None:
    [outcome] = _send(_adapter(slack), f"{slack.url}/services/T000/B000/secret")
    assert outcome.kind is OutcomeKind.delivered
    [request] = slack.received
    assert request.path == "/services/T000/B000/secret"
    assert "authorization" not in request.headers
    assert request.json()["attachments"][0]["blocks"][0]["type"] == "header"


def test_ratelimited_is_transient_and_honours_retry_after(slack: SlackServer) -> None:
    slack.fail_next(SlackServer.ratelimited(9))
    slack.fail_next(SlackServer.ratelimited(4, webhook=True))
    first = _send(_adapter(slack), "slack:C1")[0]
    second = _send(_adapter(slack), f"{slack.url}/services/T/B/x")[0]
    assert first.kind is OutcomeKind.transient and first.retry_after == 9.0
    assert second.kind is OutcomeKind.transient and second.retry_after == 4.0


def test_channel_not_found_is_a_permanent_invalid_target(slack: SlackServer) -> None:
    slack.missing_channels.add("CGONE")
    gone, ok = _send(_adapter(slack), "slack:CGONE", "slack:COK")
    assert gone.kind is OutcomeKind.permanent and gone.permanent_reason == "invalid_target"
    assert "channel_not_found" in gone.reason
    assert ok.kind is OutcomeKind.delivered


def test_a_bad_bot_token_is_a_permanent_auth_failure_that_never_shows_the_token(slack: SlackServer) -> None:
    adapter = _adapter(slack, bot_token="xoxb-wrong-token-123")
    [outcome] = _send(adapter, "slack:C1")
    assert outcome.kind is OutcomeKind.permanent and outcome.permanent_reason == "auth"
    assert "xoxb-wrong-token-123" not in outcome.reason and "xoxb-wrong-token-123" not in repr(adapter)


def test_a_revoked_incoming_webhook_is_endpoint_gone(slack: SlackServer) -> None:
    slack.gone_hooks.add("/services/T/B/revoked")
    [outcome] = _send(_adapter(slack), f"{slack.url}/services/T/B/revoked")
    assert outcome.kind is OutcomeKind.permanent and outcome.permanent_reason == "endpoint_gone"


def test_a_slack_5xx_is_transient(slack: SlackServer) -> None:
    slack.fail_next(Reply(500, b"internal_error"))
    [outcome] = _send(_adapter(slack), f"{slack.url}/services/T/B/x")
    assert outcome.kind is OutcomeKind.transient


def test_webhook_targets_on_private_addresses_are_refused_unless_allowed(slack: SlackServer) -> None:
    adapter = _adapter(slack, allow_private_targets=False)
    outcomes = _send(adapter, f"{slack.url}/services/T/B/x".replace("http:", "https:"), "https://localhost/x")
    assert [o.permanent_reason for o in outcomes] == ["blocked_target", "blocked_target"]
    assert slack.received == []


def test_a_target_that_is_neither_a_webhook_url_nor_a_channel_is_invalid(slack: SlackServer) -> None:
    outcomes = _send(_adapter(slack), "slack:", "slack:C1 x", "ftp://example.com/x", "#general")
    assert all(o.permanent_reason == "invalid_target" for o in outcomes)
