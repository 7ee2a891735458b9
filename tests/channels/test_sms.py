"""The SMS adapter (the real twilio client) against a Twilio-like server on loopback."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlsplit

import pytest
from twilio.request_validator import RequestValidator

from channels.base import OutcomeKind
from channels.sms import SMSAdapter, SMSConfig
from channels.sms_status import callback_outcome, message_state, verify_status_callback
from channels.sms_text import compose, segments
from notifyd.standins.servers import TwilioServer
from tests.channels.conftest import message, notification, run

# Each test runs on asyncio's event loop and on uvloop's (the workers' default).
pytestmark = pytest.mark.usefixtures("each_loop")

SENDER = "+15005550006"


def _adapter(server: TwilioServer, **overrides: object) -> SMSAdapter:
    values: dict[str, object] = {
        "account_sid": server.account_sid,
        "auth_token": server.auth_token,
        "sender": SENDER,
        "base_url": server.url,
    }
    values.update(overrides)
    return SMSAdapter(SMSConfig(**values))  # type: ignore[arg-type]


def _send(adapter: SMSAdapter, *targets: str) -> list:
    async def go() -> list:
        async with adapter:
            return await adapter.send([message(t, i) for i, t in enumerate(targets)])

    return run(go())


def test_the_request_is_a_form_post_to_the_messages_resource_with_basic_auth(twilio: TwilioServer) -> None:
    [outcome] = _send(_adapter(twilio), "+14155552671")
    assert outcome.kind is OutcomeKind.delivered
    [request] = twilio.received
    assert request.method == "POST"
    assert request.path == f"/2010-04-01/Accounts/{twilio.account_sid}/Messages.json"
    assert request.headers["content-type"].startswith("application/x-www-form-urlencoded")
    expected = base64.b64encode(f"{twilio.account_sid}:{twilio.auth_token}".encode()).decode()
    assert request.headers["authorization"] == f"Basic {expected}"
    form = request.form
    assert form["To"] == "+14155552671" and form["From"] == SENDER
    assert form["Body"].startswith("[acme] Database outage - identified: Failover in progress")


def test_a_status_callback_url_carries_the_delivery_event_and_subscriber(twilio: TwilioServer) -> None:
    _send(_adapter(twilio, status_callback_url="https://notifyd.example/v1/callbacks/twilio"), "+14155552671")
    callback = urlsplit(twilio.received[0].form["StatusCallback"])
    assert callback.path == "/v1/callbacks/twilio/dlv_test0000"
    assert set(parse_qs(callback.query)) == {"event", "subscriber"}


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (21211, "invalid_target"),
        (21614, "invalid_target"),
        (21408, "invalid_target"),
        (21610, "unsubscribed"),
    ],
)
def test_twilio_error_codes_for_bad_or_opted_out_numbers_are_permanent(
    twilio: TwilioServer, code: int, reason: str
) -> None:
    twilio.invalid_numbers["+15005550001"] = code
    [outcome] = _send(_adapter(twilio), "+15005550001")
    assert outcome.kind is OutcomeKind.permanent
    assert outcome.permanent_reason == reason and str(code) in outcome.reason


def test_429_is_transient_and_honours_retry_after(twilio: TwilioServer) -> None:
    twilio.fail_next(TwilioServer.error(429, 20429, "Too Many Requests", {"Retry-After": "7"}))
    [outcome] = _send(_adapter(twilio), "+14155552671")
    assert outcome.kind is OutcomeKind.transient and outcome.retry_after == 7.0


def test_a_5xx_is_transient(twilio: TwilioServer) -> None:
    twilio.fail_next(TwilioServer.error(503, 20503, "Service unavailable"))
    [outcome] = _send(_adapter(twilio), "+14155552671")
    assert outcome.kind is OutcomeKind.transient


def test_a_wrong_auth_token_is_a_permanent_auth_failure_that_never_shows_the_token(
    twilio: TwilioServer,
) -> None:
    adapter = _adapter(twilio, auth_token="not-the-token-xyz")
    [outcome] = _send(adapter, "+14155552671")
    assert outcome.kind is OutcomeKind.permanent and outcome.permanent_reason == "auth"
    assert "not-the-token-xyz" not in outcome.reason and "not-the-token-xyz" not in repr(adapter)


def test_a_gsm7_text_fits_160_characters_in_one_segment_and_153_per_segment_beyond() -> None:
    assert segments("a" * 160).count == 1
    assert segments("a" * 161).count == 2
    assert segments("a" * 306).count == 2
    assert segments("a" * 307).count == 3
    assert segments("a" * 459).count == 3 and segments("a" * 460).count == 4


def test_gsm7_extension_characters_take_two_septets() -> None:
    assert segments("€" * 80) == segments("a" * 160)
    assert segments("€" * 81).count == 2


def test_one_non_gsm_character_switches_to_ucs2_with_70_and_67_per_segment() -> None:
    assert segments("ж" * 70).encoding == "UCS-2" and segments("ж" * 70).count == 1
    assert segments("ж" * 71).count == 2
    assert segments("ж" * 201).count == 3 and segments("ж" * 202).count == 4
    assert segments("a" * 69 + "😀").count == 2  # an emoji is two UTF-16 code units


def test_a_short_update_is_sent_whole_with_its_link() -> None:
    text = compose(notification())
    assert text == "[acme] Database outage - identified: Failover in progress https://status.example.com/acme"
    assert segments(text).encoding == "GSM-7"


@pytest.mark.parametrize("filler", ["word ", "слово "])
def test_a_long_update_is_cut_to_three_segments_and_ends_with_the_link(filler: str) -> None:
    link = "https://status.example.com/acme"
    text = compose(notification(message=filler * 400, link=link))
    assert segments(text).count <= 3
    assert text.endswith("... " + link)
    assert len(text) > (120 if segments(text).encoding == "UCS-2" else 400)  # it used the budget


def test_twilio_signed_status_callbacks_are_accepted_and_forged_ones_rejected() -> None:
    token = "callback-auth-token"
    url = "https://notifyd.example/v1/twilio/status?delivery_id=dlv_1"
    params = {"MessageSid": "SM123", "MessageStatus": "delivered", "To": "+14155552671"}
    signature = RequestValidator(token).compute_signature(url, params)
    assert verify_status_callback(url, params, signature, token)
    assert not verify_status_callback(url, params, signature, "another-token")
    assert not verify_status_callback(url, params | {"MessageStatus": "failed"}, signature, token)
    assert not verify_status_callback(url, params, "forged", token)
    assert not verify_status_callback(url, params, "", token)


def test_message_status_maps_to_delivered_failed_or_still_pending() -> None:
    assert message_state("delivered") == "delivered"
    assert message_state("undelivered") == "failed" and message_state("failed") == "failed"
    assert message_state("sent") is None and message_state("queued") is None
    unreachable = callback_outcome({"MessageStatus": "undelivered", "ErrorCode": "30003"})
    assert unreachable is not None and unreachable.permanent_reason == "invalid_target"
    assert callback_outcome({"MessageStatus": "sending"}) is None
