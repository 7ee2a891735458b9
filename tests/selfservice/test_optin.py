"""Double opt-in: nothing is delivered to a sign-up until its owner confirms it."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from notifyd.standins.servers import HTTPReceiver, ReceivedRequest, Reply
from tests.selfservice.support import PUBLIC, links_in, local
from tests.support.events import incident_event, ref
from tests.support.wait import wait_until


def subscribe(stack: Any, page: str, body: dict[str, Any]) -> httpx.Response:
    with stack.api.client(None) as http:
        return http.post(f"/v1/pages/{page}/subscribe", json=body)


def audit(stack: Any, page: str) -> list[dict[str, str]]:
    with stack.api.client("admin") as http:
        return http.get(f"/v1/pages/{page}/audit").json()["items"]


def test_email_sign_up_receives_nothing_until_the_emailed_link_is_confirmed(stack) -> None:
    s = stack()
    answer = subscribe(s, "acme", {"channel": "email", "target": "ana@example.com", "components": ["api"]})
    assert answer.status_code == 202 and answer.json()["status"] == "pending"
    (mail,) = s.smtp.wait_for(1)
    assert mail.rcpt_tos == ["ana@example.com"]
    (link,) = [u for u in links_in(mail) if "/confirm?" in u]
    assert link.startswith(f"{PUBLIC}/v1/pages/acme/confirm?token=")
    assert s.rt.subscribers.count("acme") == 0

    # An event before confirming reaches nobody.
    event = incident_event("acme")
    s.rt.publisher.publish(event)
    assert wait_until(lambda: (s.rt.tracker.summary(ref(event)) or {}).get("state") == "done")
    assert s.rt.tracker.summary(ref(event))["counts"]["planned"] == 0

    with httpx.Client() as http:
        shown = http.get(local(link, s.api.url))
        assert shown.status_code == 200 and '<form method="post"' in shown.text
        assert s.rt.subscribers.count("acme") == 0, "a GET (a mail scanner) must never confirm"
        confirmed = http.post(local(link, s.api.url))
        assert confirmed.status_code == 200 and confirmed.json()["status"] == "active"
        sub_id = confirmed.json()["subscriber_id"]
        assert http.post(local(link, s.api.url)).status_code == 410, "a link confirms once"
        forged = local(link, s.api.url)[:-3] + "AAA"
        assert http.post(forged).status_code == 403
    sub = s.rt.subscribers.get("acme", sub_id)
    assert sub is not None and sub.disabled is None and sub.components == frozenset({"api"})
    entry = next(e for e in audit(s, "acme") if e["action"] == "confirmed")
    assert (entry["subscriber"], entry["via"]) == (sub_id, "email-link")

    after = incident_event("acme")
    s.rt.publisher.publish(after)
    assert wait_until(lambda: len(s.smtp.received) == 2)
    assert s.smtp.received[1].rcpt_tos == ["ana@example.com"]


def test_the_answer_never_says_whether_an_address_was_subscribed(stack) -> None:
    s = stack(worker=False)
    s.rt.subscribers.add("acme", {"channel": "email", "target": "known@example.com"})
    known = subscribe(s, "acme", {"channel": "email", "target": "known@example.com"})
    unknown = subscribe(s, "acme", {"channel": "email", "target": "new@example.com"})
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    assert known.headers.get("content-length") == unknown.headers.get("content-length")


def test_sms_sign_up_is_confirmed_by_a_signed_yes_through_the_twilio_inbound_webhook(stack) -> None:
    s = stack()
    assert subscribe(s, "acme", {"channel": "sms", "target": "+14155550100"}).status_code == 202
    (sent,) = s.twilio.wait_for(1)
    assert sent.form["To"] == "+14155550100" and "YES" in sent.form["Body"]
    url = f"{PUBLIC}/v1/inbound/twilio/sms"
    path = url.removeprefix(PUBLIC)
    form = "application/x-www-form-urlencoded"
    with httpx.Client(base_url=s.api.url) as http:
        body, signature = s.twilio.inbound(url, "+14155550100", "YES")
        forged = http.post(
            path, content=body, headers={"content-type": form, "X-Twilio-Signature": "x" + signature}
        )
        assert forged.status_code == 403
        assert s.rt.subscribers.count("acme") == 0
        # Something other than YES confirms nothing.
        body_no, sig_no = s.twilio.inbound(url, "+14155550100", "what is this?")
        http.post(path, content=body_no, headers={"content-type": form, "X-Twilio-Signature": sig_no})
        assert s.rt.subscribers.count("acme") == 0
        ok = http.post(path, content=body, headers={"content-type": form, "X-Twilio-Signature": signature})
    assert ok.status_code == 200 and "<Message>" in ok.text
    assert s.rt.subscribers.count("acme") == 1
    assert any(e["via"] == "sms-reply" for e in audit(s, "acme") if e["action"] == "confirmed")


class Echoing(HTTPReceiver):
    """A webhook endpoint that answers a subscription_confirmation with its challenge."""

    def __init__(self, echo: bool) -> None:
        super().__init__()
        self.echo = echo

    def answer(self, request: ReceivedRequest) -> Reply:
        body = request.json()
        if self.echo and body.get("type") == "subscription_confirmation":
            return Reply(200, {"challenge": body["challenge"]})
        return Reply(200, b"ok")


def test_webhook_sign_up_is_active_only_when_the_endpoint_echoes_the_signed_challenge(stack) -> None:
    from standardwebhooks import Webhook

    s = stack()
    good, deaf = Echoing(echo=True).start(), Echoing(echo=False).start()
    try:
        answer = subscribe(s, "acme", {"channel": "webhook", "target": good.url + "/hook"})
        assert answer.status_code == 202
        secret = answer.json()["secret"]
        assert subscribe(s, "acme", {"channel": "webhook", "target": deaf.url + "/hook"}).status_code == 202
        assert wait_until(lambda: s.rt.subscribers.count("acme") == 1)
        (challenge,) = good.wait_for(1)
        # The challenge is signed with the secret the requester was given.
        verified = Webhook(secret).verify(challenge.body, challenge.headers)
        assert verified["type"] == "subscription_confirmation" and verified["challenge"]
        deaf.wait_for(1)
        time.sleep(0.3)
        (sub,) = s.rt.subscribers.page("acme")[0]
        assert sub.stored_target == good.url + "/hook"
        failed = [e for e in audit(s, "acme") if e["action"] == "confirmation_failed"]
        assert failed and "echo" in failed[0]["reason"]
    finally:
        good.stop()
        deaf.stop()


def test_an_unconfirmed_sign_up_expires(stack) -> None:
    s = stack(confirm_ttl_s=1)
    subscribe(s, "acme", {"channel": "email", "target": "late@example.com"})
    (mail,) = s.smtp.wait_for(1)
    (link,) = [u for u in links_in(mail) if "/confirm?" in u]
    time.sleep(1.3)
    with httpx.Client() as http:
        answer = http.post(local(link, s.api.url))
    assert answer.status_code in (403, 410)  # the link and the sign-up both expired
    assert s.rt.subscribers.count("acme") == 0


def test_public_sign_ups_are_rate_limited_per_client_address(stack) -> None:
    s = stack(worker=False, subscribe_rate="2/minute")
    codes = [
        subscribe(s, "acme", {"channel": "email", "target": f"r{i}@example.com"}).status_code
        for i in range(3)
    ]
    assert codes == [202, 202, 429]


def test_the_captcha_hook_must_pass(stack) -> None:
    s = stack(worker=False, captcha_hook="tests.selfservice.support:human")
    bot = subscribe(s, "acme", {"channel": "email", "target": "b@example.com", "captcha_token": "robot"})
    assert bot.status_code == 400
    ok = subscribe(s, "acme", {"channel": "email", "target": "h@example.com", "captcha_token": "human"})
    assert ok.status_code == 202


def test_invalid_sign_ups_are_refused_with_the_field_named(stack) -> None:
    s = stack(worker=False)
    bad = subscribe(s, "acme", {"channel": "email", "target": "not-an-address"})
    assert bad.status_code == 422 and "target" in bad.text
    assert (
        subscribe(s, "acme", {"channel": "email", "target": "a@example.com", "admin": True}).status_code
        == 422
    )
    too_long = {"channel": "email", "target": "a@example.com", "captcha_token": "x" * 2049}
    answer = subscribe(s, "acme", too_long)
    assert answer.status_code == 422 and "captcha_token" in answer.text
    empty_incident = {"channel": "email", "target": "a@example.com", "incident": ""}
    answer = subscribe(s, "acme", empty_incident)
    assert answer.status_code == 422 and "incident" in answer.text
    # An empty list is refused as the document says (minItems), not dropped (schemathesis' coverage phase).
    for field in ("incident_phases", "event_types"):
        answer = subscribe(s, "acme", {"channel": "email", "target": "a@example.com", field: []})
        assert answer.status_code == 422 and field in answer.text, (field, answer.text)


def test_a_page_may_turn_double_opt_in_off_per_channel(stack) -> None:
    s = stack(worker=False)
    with s.api.client("admin") as http:
        put = http.put("/v1/pages/acme/self-service", json={"double_opt_in": {"email": False}})
        assert put.status_code == 200
    assert subscribe(s, "acme", {"channel": "email", "target": "direct@example.com"}).status_code == 202
    assert s.rt.subscribers.count("acme") == 1
    assert subscribe(s, "acme", {"channel": "sms", "target": "+14155550101"}).status_code == 202
    assert s.rt.subscribers.count("acme") == 1, "SMS still confirms"


def test_admin_import_may_vouch_for_consent_and_the_audit_says_so(stack) -> None:
    s = stack()
    lines = [
        {"channel": "email", "target": "crm@example.com", "confirmed": True},
        {"channel": "email", "target": "ask@example.com", "confirmed": False},
        {"channel": "email", "target": "plain@example.com"},
    ]
    with s.api.client("admin") as http:
        answer = http.post(
            "/v1/pages/acme/subscribers:import",
            content="\n".join(json.dumps(line) for line in lines),
            headers={"content-type": "application/x-ndjson"},
        )
    assert answer.status_code == 200 and answer.json()["imported"] == 2
    targets = {sub.stored_target for sub in s.rt.subscribers.page("acme")[0]}
    assert targets == {"crm@example.com", "plain@example.com"}
    vouched = [e for e in audit(s, "acme") if e["action"] == "imported_confirmed"]
    assert len(vouched) == 1 and vouched[0]["via"] == "admin-import" and vouched[0]["confirmed"] == "by-admin"
    (mail,) = s.smtp.wait_for(1)
    assert mail.rcpt_tos == ["ask@example.com"], "confirmed: false goes through double opt-in"
