"""Follow one incident: its updates reach the follower until it resolves, then nothing more."""

from __future__ import annotations

import httpx

from tests.selfservice.support import PUBLIC, links_in, local
from tests.support.events import incident_event, ref
from tests.support.wait import wait_until


def update(incident_id: str, etype: str = "incident_updated", status: str = "identified") -> dict:
    event = incident_event("acme", type=etype)
    event["incident"].update({"id": incident_id, "status": status, "title": f"Outage {incident_id}"})
    return event


def done(rt, event) -> bool:
    return (rt.tracker.summary(ref(event)) or {}).get("state") == "done"


def test_a_follower_gets_that_incidents_updates_until_it_resolves(stack) -> None:
    s = stack()
    rt = s.rt
    rt.subscribers.add("acme", {"channel": "email", "target": "all@example.com"})
    first = update("inc-9", "incident_created", "investigating")
    rt.publisher.publish(first)
    (mail,) = s.smtp.wait_for(1)
    follow = next(u for u in links_in(mail) if "incident=inc-9" in u)
    assert follow == f"{PUBLIC}/status/acme/subscribe?incident=inc-9"

    with httpx.Client() as http:
        form = http.get(local(follow, s.api.url))
        assert form.status_code == 200 and "Follow this incident" in form.text
        assert 'name="incident" value="inc-9"' in form.text
        sent = http.post(
            f"{s.api.url}/status/acme/subscribe",
            data={"channel": "email", "target": "fan@example.com", "incident": "inc-9"},
        )
        assert sent.status_code == 202
        (_, confirmation) = s.smtp.wait_for(2)
        (confirm,) = [u for u in links_in(confirmation) if "/confirm?" in u]
        assert http.post(local(confirm, s.api.url)).status_code == 200

    other, mine = update("inc-10"), update("inc-9")
    rt.publisher.publish(other)
    assert wait_until(lambda: done(rt, other))
    rt.publisher.publish(mine)
    assert wait_until(lambda: done(rt, mine))
    recipients = [m.rcpt_tos[0] for m in s.smtp.wait_for(5)[2:]]
    assert sorted(recipients) == ["all@example.com", "all@example.com", "fan@example.com"]

    resolved = update("inc-9", "incident_resolved", "resolved")
    rt.publisher.publish(resolved)
    assert wait_until(lambda: done(rt, resolved))
    after = s.smtp.wait_for(7)[5:]
    assert sorted(m.rcpt_tos[0] for m in after) == ["all@example.com", "fan@example.com"]
    assert not any("incident=inc-9" in u for u in links_in(after[0])), "a resolved incident offers no follow"

    later = update("inc-9", "incident_updated", "postmortem")
    rt.publisher.publish(later)
    assert wait_until(lambda: done(rt, later))
    assert [m.rcpt_tos[0] for m in s.smtp.wait_for(8)[7:]] == ["all@example.com"]
    assert {sub.stored_target for sub in rt.subscribers.page("acme")[0]} == {"all@example.com"}


def test_following_an_incident_never_narrows_a_whole_page_subscription(stack) -> None:
    s = stack(worker=False)
    rt = s.rt
    whole = rt.subscribers.add("acme", {"channel": "email", "target": "both@example.com"}).subscriber
    from notifyd.selfservice.wiring import optin_for

    optin = optin_for(rt)
    started = optin.start(
        "acme", {"channel": "email", "target": "both@example.com"}, {"incident": "inc-1"}, source="test"
    )
    optin.confirm(started.pending_id, via="test")
    from notifyd.selfservice.prefs import PrefsRepo

    assert PrefsRepo(rt.client, rt.keys).get("acme", whole.id).incident is None
