"""Subscriber filters: event_types, min_impact, incident_phases, and each channel's default."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from notifyd.models import Event
from notifyd.pipeline.filters import EventView, subscriber_reason
from notifyd.preferences import NO_PREFERENCES, Preferences
from notifyd.state.subscribers import SubscriberError
from tests.support.events import component_event, incident_event, ref
from tests.support.wait import summary_of, wait_until


def _view(event: dict) -> EventView:
    return EventView.of(Event.model_validate(event))


def _prefs(**fields) -> Preferences:
    return Preferences.from_fields(
        event_types=fields.get("event_types"),
        min_impact=fields.get("min_impact"),
        incident_phases=fields.get("incident_phases"),
        quiet_hours=None,
    )


CREATED = incident_event(type="incident_created")
UPDATED = incident_event(type="incident_updated")
RESOLVED = incident_event(type="incident_resolved")
COMPONENT = component_event(status="partial_outage")


@pytest.mark.parametrize(
    ("event", "expected"),
    [(CREATED, None), (UPDATED, "incident_phase"), (RESOLVED, None), (COMPONENT, "event_type")],
)
def test_sms_default_hears_incident_created_and_resolved_only(event, expected):
    assert subscriber_reason(_view(event), NO_PREFERENCES, "sms") == expected


@pytest.mark.parametrize("channel", ["webhook", "email", "slack"])
@pytest.mark.parametrize("event", [CREATED, UPDATED, RESOLVED, COMPONENT])
def test_other_channels_default_to_everything(channel, event):
    assert subscriber_reason(_view(event), NO_PREFERENCES, channel) is None


def test_event_types_keep_out_the_kinds_not_listed():
    only_components = _prefs(event_types=["component"])
    assert subscriber_reason(_view(CREATED), only_components, "webhook") == "event_type"
    assert subscriber_reason(_view(COMPONENT), only_components, "webhook") is None


def test_an_sms_subscriber_can_ask_for_component_alerts_too():
    prefs = _prefs(event_types=["incident", "component"])
    assert subscriber_reason(_view(COMPONENT), prefs, "sms") is None
    # ... and still hears only the default phases of incidents
    assert subscriber_reason(_view(UPDATED), prefs, "sms") == "incident_phase"


def test_incident_phases_replace_the_channel_default():
    assert subscriber_reason(_view(UPDATED), _prefs(incident_phases=["updated"]), "sms") is None
    assert subscriber_reason(_view(CREATED), _prefs(incident_phases=["updated"]), "sms") == "incident_phase"
    assert (
        subscriber_reason(_view(CREATED), _prefs(incident_phases=["resolved"]), "webhook") == "incident_phase"
    )


@pytest.mark.parametrize(
    ("impact", "minimum", "passes"),
    [
        ("minor", "major", False),
        ("major", "major", True),
        ("critical", "major", True),
        ("none", "minor", False),
    ],
)
def test_min_impact_compares_by_rank(impact, minimum, passes):
    event = incident_event(incident={**CREATED["incident"], "impact": impact})
    reason = subscriber_reason(_view(event), _prefs(min_impact=minimum), "webhook")
    assert (reason is None) is passes
    assert passes or reason == "min_impact"


def test_min_impact_reads_a_component_alert_by_its_status():
    prefs = _prefs(min_impact="critical")
    assert subscriber_reason(_view(component_event(status="major_outage")), prefs, "webhook") is None
    assert (
        subscriber_reason(_view(component_event(status="partial_outage")), prefs, "webhook") == "min_impact"
    )


def test_filter_fields_round_trip_through_the_stored_record(runtime):
    rt = runtime()
    added = rt.subscribers.add(
        "acme",
        {
            "channel": "sms",
            "target": "+14155550100",
            "event_types": ["incident"],
            "min_impact": "major",
            "incident_phases": ["created", "updated", "resolved"],
        },
    ).subscriber
    stored = rt.subscribers.get("acme", added.id)
    assert stored is not None
    assert stored.prefs == _prefs(
        event_types=["incident"], min_impact="major", incident_phases=["created", "updated", "resolved"]
    )
    public = rt.subscribers.public(stored)
    assert public["min_impact"] == "major" and public["event_types"] == ["incident"]
    # Adding the same target again without the fields goes back to the channel's defaults.
    again = rt.subscribers.add("acme", {"channel": "sms", "target": "+14155550100"}).subscriber
    assert again.prefs == NO_PREFERENCES


@pytest.mark.parametrize(
    "bad",
    [
        {"event_types": ["incidents"]},
        {"min_impact": "huge"},
        {"incident_phases": ["opened"]},
        {"event_types": []},
    ],
)
def test_unknown_filter_values_are_refused(runtime, bad):
    rt = runtime()
    with pytest.raises(SubscriberError):
        rt.subscribers.add("acme", {"channel": "webhook", "target": "https://example.com/h", **bad})


def _done(rt, event_id: str) -> bool:
    return (summary_of(rt, event_id) or {}).get("state") == "done"


def _metric(reason: str, channel: str) -> float:
    return (
        REGISTRY.get_sample_value("notifyd_deliveries_filtered_total", {"filter": reason, "channel": channel})
        or 0.0
    )


def test_shard_honours_filters_and_counts_each_reason(runtime, sink, recorder, start_worker):
    rt = runtime()
    rt.subscribers.add("acme", {"channel": "webhook", "target": f"{sink.url}/all"})
    rt.subscribers.add("acme", {"channel": "webhook", "target": f"{sink.url}/major", "min_impact": "major"})
    rt.subscribers.add("acme", {"channel": "sms", "target": "+14155550101"})
    start_worker(rt)
    before = {k: _metric(*k) for k in [("min_impact", "webhook"), ("incident_phase", "sms")]}

    update = incident_event(type="incident_updated", incident={**CREATED["incident"], "impact": "minor"})
    rt.publisher.publish(update)
    assert wait_until(lambda: _done(rt, update["event_id"]))
    summary = rt.tracker.summary(ref(update))
    assert summary["counts"]["delivered"] == 1
    assert summary["counts"]["suppressed"] == 2
    assert summary["filtered"] == {"min_impact": 1, "incident_phase": 1}
    assert [r.path for r in sink.received] == ["/all"]
    assert recorder.for_event(update["event_id"]) == []
    assert _metric("min_impact", "webhook") == before["min_impact", "webhook"] + 1
    assert _metric("incident_phase", "sms") == before["incident_phase", "sms"] + 1

    created = incident_event(type="incident_created", incident={**CREATED["incident"], "impact": "major"})
    rt.publisher.publish(created)
    assert wait_until(lambda: _done(rt, created["event_id"]))
    summary = rt.tracker.summary(ref(created))
    assert summary["counts"]["delivered"] == 3 and summary["filtered"] == {}
    assert [s.channel for s in recorder.for_event(created["event_id"])] == ["sms"]
