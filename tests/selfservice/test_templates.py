"""Page templates: validated at upload, previewed, rendered in the subscriber's language, and a
template that fails at render falls back to the built-in one (counted), never failing a delivery."""

from __future__ import annotations

import pytest

from tests.support.events import incident_event, ref
from tests.support.wait import wait_until

EVIL = {
    "a loop that never ends": "{% for i in range(100000) %}{% for j in range(100000) %}x"
    "{% endfor %}{% endfor %}",
    "nested loops": "{% for a in components %}{% for b in components %}{% for c in components %}"
    "{% endfor %}{% endfor %}{% endfor %}",
    "huge output": "{{ 'x' * 9999 }}{% for i in range(100) %}{{ 'y' * 9999 }}{% endfor %}",
    "an undefined variable": "{{ customer.name }}",
    "a syntax error": "{% if title %}no end",
    "an include": "{% include 'secrets.txt' %}",
    "a recursive loop": "{% for c in components recursive %}{{ loop(components) }}{% endfor %}",
    "a big power": "{{ 9 ** 9999999 }}",
    "attribute escape": "{{ title.__class__.__mro__ }}",
}


@pytest.mark.parametrize("name", EVIL)
def test_an_evil_template_is_refused_at_upload_with_a_reason(stack, name: str) -> None:
    s = stack(worker=False)
    with s.api.client("admin") as http:
        answer = http.put("/v1/pages/acme/templates/email", json={"text": EVIL[name]})
        assert answer.status_code == 400, answer.text
        assert answer.json()["errors"][0]["field"] == "text"
        assert http.get("/v1/pages/acme/templates/email").json()["templates"] == {}


def test_an_upload_without_parts_goes_back_to_the_builtin_templates(stack) -> None:
    s = stack(worker=False)
    with s.api.client("admin") as http:
        assert http.put("/v1/pages/acme/templates/sms", json={"sms": "{{ title }}"}).status_code == 200
        assert http.put("/v1/pages/acme/templates/sms", json={}).status_code == 200
        assert http.get("/v1/pages/acme/templates/sms").json()["templates"] == {}


def test_a_syntax_error_names_its_line(stack) -> None:
    s = stack(worker=False)
    with s.api.client("admin") as http:
        answer = http.put("/v1/pages/acme/templates/sms", json={"sms": "ok\n{{ title }\n"})
    assert answer.status_code == 400 and "line 2" in answer.json()["detail"]


def test_a_part_of_another_channel_is_refused(stack) -> None:
    s = stack(worker=False)
    with s.api.client("admin") as http:
        assert http.put("/v1/pages/acme/templates/sms", json={"subject": "x"}).status_code == 422
        assert http.put("/v1/pages/acme/templates/slack", json={"slack": "not json"}).status_code == 400


def test_preview_renders_the_sample_with_the_override_and_in_the_asked_language(stack) -> None:
    s = stack(worker=False)
    with s.api.client("admin") as http:
        saved = http.put(
            "/v1/pages/acme/templates/email",
            json={
                "subject": "{{ page_name }} :: {{ title }} :: {{ status_label }}",
                "html": "<p>{{ message }}</p>",
            },
        )
        assert saved.status_code == 200
        preview = http.post("/v1/pages/acme/templates/email:preview", json={"locale": "de"}).json()
        assert preview["rendered"]["subject"] == "acme :: Database outage :: Ursache gefunden"
        assert "Betroffene Komponenten" in preview["rendered"]["text"], "the built-in text, in German"
        trial = http.post(
            "/v1/pages/acme/templates/email:preview",
            json={"templates": {"html": "<b>{{ title }}</b>{{ '<script>' }}"}, "locale": "en"},
        ).json()
        assert trial["rendered"]["html"] == "<b>Database outage</b>&lt;script&gt;", "HTML autoescapes"


def test_a_subscriber_gets_the_pages_template_in_their_language(stack) -> None:
    s = stack()
    rt = s.rt
    sub = rt.subscribers.add("acme", {"channel": "email", "target": "de@example.com"}).subscriber
    rt.subscribers.add("acme", {"channel": "email", "target": "en@example.com"})
    from notifyd.selfservice.prefs import PrefsRepo

    PrefsRepo(rt.client, rt.keys).update("acme", sub.id, {"locale": "de"})
    with s.api.client("admin") as http:
        http.put(
            "/v1/pages/acme/self-service", json={"branding": {"name": "Acme Cloud", "footer": "Acme Inc."}}
        )
        assert (
            http.put(
                "/v1/pages/acme/templates/email",
                json={"subject": "{{ page_name }}: {{ title }} ({{ status_label }})"},
            ).status_code
            == 200
        )
    rt.publisher.publish(incident_event("acme"))
    mails = {m.rcpt_tos[0]: m.message for m in s.smtp.wait_for(2)}
    assert mails["de@example.com"]["Subject"] == "Acme Cloud: Database outage (Untersuchung läuft)"
    assert mails["en@example.com"]["Subject"] == "Acme Cloud: Database outage (investigating)"
    german = mails["de@example.com"].get_body(("plain",)).get_content()
    assert "Betroffene Komponenten: api, db" in german and "Abonnement verwalten" in german
    assert "Acme Inc." in german
    from notifyd.selfservice import signing
    from notifyd.selfservice.wiring import links_for

    (manage,) = [w for w in german.split() if "/preferences?token=" in w]
    token = manage.split("token=")[1]
    assert links_for(rt).verify(token, signing.MANAGE, "acme").subject == sub.id, "each has its own link"
    html_part = mails["de@example.com"].get_body(("html",)).get_content()
    assert f"token={token}" in html_part


def test_a_template_that_fails_at_render_falls_back_and_is_counted_never_a_failed_delivery(stack) -> None:
    s = stack()
    rt = s.rt
    rt.subscribers.add("acme", {"channel": "email", "target": "x@example.com"})
    # Fine with the sample's two components; a division by zero with one.
    fragile = "{{ title }} {{ 10 // (components | length - 1) }}"
    with s.api.client("admin") as http:
        assert http.put("/v1/pages/acme/templates/email", json={"subject": fragile}).status_code == 200
    event = incident_event("acme")
    event["incident"]["components"] = ["api"]
    rt.publisher.publish(event)
    (mail,) = s.smtp.wait_for(1)
    assert mail.message["Subject"] == "[acme] Database outage — investigating", "the built-in subject"
    assert wait_until(lambda: (rt.tracker.summary(ref(event)) or {}).get("state") == "done")
    assert rt.tracker.summary(ref(event))["counts"]["delivered"] == 1
    with s.api.client("admin") as http:
        assert http.get("/v1/pages/acme/templates/email").json()["fallbacks"] == {"subject": 1}
