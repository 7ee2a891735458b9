"""The preference page without JavaScript, the signed link, and the filters it sets."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from notifyd.models import Event
from notifyd.selfservice import signing
from notifyd.selfservice.prefs import PersonalPrefs
from tests.support.events import incident_event, ref
from tests.support.wait import wait_until


def event(etype: str, **incident: Any) -> Event:
    body = incident_event("acme", type=etype)
    body["incident"].update(incident)
    return Event.model_validate(body)


@pytest.mark.parametrize(
    ("prefs", "incident", "etype", "wanted"),
    [
        ({"incident": "inc-7"}, {"id": "inc-8"}, "incident_updated", False),
        ({"incident": "inc-7"}, {"id": "inc-7"}, "incident_updated", True),
        ({"incident": "inc-7"}, {"id": "inc-7"}, "incident_resolved", True),
        ({"locale": "de"}, {"id": "inc-8"}, "incident_created", True),
        ({}, {}, "incident_created", True),
    ],
)
def test_a_follower_hears_only_its_incident(prefs, incident, etype, wanted) -> None:
    assert PersonalPrefs.model_validate(prefs).wants(event(etype, **incident)) is wanted


def test_a_manage_token_is_bound_to_its_purpose_page_and_lifetime() -> None:
    key = b"k" * 32
    token = signing.sign(key, signing.MANAGE, "acme", "sub-1", 60, now=1000)
    assert signing.verify(key, token, signing.MANAGE, "acme", now=1001).subject == "sub-1"
    for purpose, page, now in (
        (signing.CONFIRM, "acme", 1001),
        (signing.MANAGE, "other", 1001),
        (signing.MANAGE, "acme", 1061),
    ):
        with pytest.raises(signing.BadToken):
            signing.verify(key, token, purpose, page, now=now)
    with pytest.raises(signing.BadToken):
        signing.verify(b"x" * 32, token, signing.MANAGE, "acme", now=1001)


# Quiet hours that start two hours from now: this test's events fall outside them.
_now = datetime.now(ZoneInfo("Europe/Berlin"))
QUIET_START = (_now + timedelta(hours=2)).strftime("%H:00")
QUIET_END = (_now + timedelta(hours=3)).strftime("%H:00")


def test_the_preference_page_works_without_javascript_and_its_choices_filter_the_next_event(stack) -> None:
    s = stack()
    rt = s.rt
    added = rt.subscribers.add("acme", {"channel": "email", "target": "nojs@example.com"}).subscriber
    from notifyd.selfservice.wiring import links_for

    manage = links_for(rt).manage_url("acme", added.id).replace("https://status.example.com", s.api.url)
    with httpx.Client() as http:
        page = http.get(manage)
        assert page.status_code == 200 and 'name="min_impact"' in page.text
        token = manage.split("token=")[1]
        form = {
            "token": token,
            "min_impact": "major",
            "event_types": "incident",
            "locale": "de",
            "quiet": "on",
            "quiet_start": QUIET_START,
            "quiet_end": QUIET_END,
            "quiet_tz": "Europe/Berlin",
        }
        saved = http.post(f"{s.api.url}/status/acme/preferences", data=form)
        assert saved.status_code == 200 and 'lang="de"' in saved.text
        bad = http.post(f"{s.api.url}/status/acme/preferences", data={**form, "quiet_tz": "Mars/Olympus"})
        assert bad.status_code == 422
        assert http.get(manage[:-4] + "AAAA").status_code == 403
    prefs = s.api.runtime.subscribers  # the record keeps its channel and target
    assert prefs.get("acme", added.id).stored_target == "nojs@example.com"
    from notifyd.selfservice.prefs import PrefsRepo

    assert PrefsRepo(rt.client, rt.keys).get("acme", added.id).locale == "de"
    chosen = rt.subscribers.get("acme", added.id).prefs  # the record's own delivery preferences
    assert chosen.min_impact == "major" and chosen.event_types == frozenset({"incident"})
    assert chosen.quiet_hours is not None and chosen.quiet_hours.tz == "Europe/Berlin"

    minor = incident_event("acme")
    minor["incident"]["impact"] = "minor"
    rt.publisher.publish(minor)
    assert wait_until(lambda: (rt.tracker.summary(ref(minor)) or {}).get("state") == "done")
    assert rt.tracker.summary(ref(minor))["counts"]["delivered"] == 0
    major = incident_event("acme")
    major["incident"]["impact"] = "major"
    rt.publisher.publish(major)
    (mail,) = s.smtp.wait_for(1)
    assert mail.rcpt_tos == ["nojs@example.com"]
