"""Bad input is answered with a message that says what is wrong, and nothing is enqueued."""

from __future__ import annotations

import json

import pytest

from notifyd.publish import EventError, parse_event
from notifyd.state.subscribers import SubscriberError
from tests.support.events import component_event, incident_event


def _queued(rt) -> int:
    return sum(
        rt.client.llen(rt.keys.queue(rt.keys.queue_name(lane)))
        for lane in ("critical", "high", "normal", "low")
    )


@pytest.mark.parametrize(
    ("mutate", "names"),
    [
        (lambda e: e.update(colour="red"), "colour"),
        (lambda e: e.update(type="incident_exploded"), "type"),
        (lambda e: e["incident"].update(status="panicking"), "incident.status"),
        (lambda e: e["incident"].update(impact="apocalyptic"), "incident.impact"),
        (lambda e: e.update(event_id=""), "event_id"),
        (lambda e: e.update(event_id="x" * 129), "event_id"),
        (lambda e: e.update(occurred_at="2026-11-28T13:00:00"), "occurred_at"),
        (lambda e: e.update(priority="urgent"), "priority"),
        (lambda e: e.update(dedup_key="k" * 256), "dedup_key"),
        (lambda e: e.pop("incident"), "incident"),
    ],
)
def test_malformed_event_is_refused_with_the_field_named_and_nothing_enqueued(runtime, mutate, names):
    rt = runtime()
    event = incident_event()
    mutate(event)
    with pytest.raises(EventError) as info:
        rt.publisher.publish(event)
    assert names in str(info.value)
    assert info.value.status == 422
    assert _queued(rt) == 0
    assert rt.tracker.summary(event.get("event_id") or "missing") is None


def test_component_event_without_component_names_what_is_missing():
    event = component_event()
    del event["component"]
    with pytest.raises(EventError, match="component"):
        parse_event(event)


def test_oversized_event_is_refused_as_too_large():
    event = incident_event()
    event["incident"]["message"] = "x" * 3900
    event["incident"]["components"] = [f"component-{i:05d}-" + "y" * 100 for i in range(700)]
    with pytest.raises(EventError) as info:
        parse_event(json.dumps(event))
    assert info.value.status == 413


def test_body_that_is_not_json_says_where_it_broke():
    with pytest.raises(EventError, match="line 1 column"):
        parse_event('{"event_id": ')


@pytest.mark.parametrize(
    ("channel", "target", "says"),
    [
        ("email", "not-an-address", "email"),
        ("sms", "5551234", "E.164"),
        ("sms", "+1", "phone"),
        ("webhook", "ftp://example.com/x", "https"),
        ("webhook", "https://user:pw@example.com/", "credentials"),
        ("slack", "https://example.com/not-slack", "hooks.slack.com"),
        ("slack", "slack:", "slack:<channel-id>"),
        ("pigeon", "coop-7", "channel"),
    ],
)
def test_bad_subscriber_target_is_refused_with_a_reason(runtime, channel, target, says):
    rt = runtime(allow_private_targets=False)
    with pytest.raises(SubscriberError) as info:
        rt.subscribers.add("acme", {"channel": channel, "target": target})
    assert says in str(info.value)
    assert rt.subscribers.count("acme") == 0


def test_http_webhook_target_needs_private_targets_allowed(runtime):
    strict = runtime(allow_private_targets=False)
    with pytest.raises(SubscriberError, match="https"):
        strict.subscribers.add("acme", {"channel": "webhook", "target": "http://hooks.example.com/x"})


def test_secret_is_for_webhooks_only_and_never_in_reprs(runtime):
    rt = runtime()
    with pytest.raises(SubscriberError, match="secret"):
        rt.subscribers.add(
            "acme", {"channel": "email", "target": "a@example.com", "secret": "whsec_abcdefghijklmnop"}
        )
    added = rt.subscribers.add("acme", {"channel": "webhook", "target": "https://hooks.example.com/a"})
    assert added.generated_secret.startswith("whsec_")
    assert added.generated_secret not in repr(added.subscriber)
    assert "secret" not in rt.subscribers.public(added.subscriber)
