"""The email adapter against a real aiosmtpd server on loopback."""

from __future__ import annotations

import gc

import pytest

from channels.base import OutcomeKind
from channels.email import EmailAdapter, EmailConfig
from notifyd.standins.servers import SMTPSink
from tests.channels.conftest import message, notification, run

# Each test runs on asyncio's event loop and on uvloop's (the workers' default).
pytestmark = pytest.mark.usefixtures("each_loop")


def _adapter(sink: SMTPSink, **overrides: object) -> EmailAdapter:
    values: dict[str, object] = {"port": sink.port, "sender": "Acme Status <status@acme.example>"}
    values.update(overrides)
    return EmailAdapter(EmailConfig(**values))  # type: ignore[arg-type]


def test_delivered_mail_is_multipart_alternative_with_unsubscribe_headers_and_stable_message_id(
    smtp_sink: SMTPSink,
) -> None:
    n = notification(title="DB <script>alert(1)</script> outage")
    msg = message("oncall@example.com", notification=n, unsubscribe_url="https://status.example.com/u/tok")

    async def go() -> list:
        async with _adapter(smtp_sink) as adapter:
            return await adapter.send([msg])

    assert run(go())[0].kind is OutcomeKind.delivered
    [mail] = smtp_sink.wait_for(1)
    assert mail.mail_from == "status@acme.example"
    assert mail.rcpt_tos == ["oncall@example.com"]
    email = mail.message
    assert email.get_content_type() == "multipart/alternative"
    assert email["Subject"] == "[acme] DB <script>alert(1)</script> outage — identified"
    assert email["Message-ID"] == "<dlv_test0000@notifyd>"
    assert email["List-Unsubscribe"] == "<https://status.example.com/u/tok>"
    assert email["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = email.get_body(("plain",)).get_content()
    html = email.get_body(("html",)).get_content()
    assert "Failover in progress" in text and "api, db" in text
    assert "https://status.example.com/u/tok" in text
    assert "&lt;script&gt;" in html and "<script>" not in html
    assert "<li>db</li>" in html


def test_mail_without_unsubscribe_url_has_no_list_unsubscribe_headers(smtp_sink: SMTPSink) -> None:
    async def go() -> list:
        async with _adapter(smtp_sink) as adapter:
            return await adapter.send([message("a@example.com")])

    assert run(go())[0].kind is OutcomeKind.delivered
    email = smtp_sink.wait_for(1)[0].message
    assert email["List-Unsubscribe"] is None and email["List-Unsubscribe-Post"] is None


def test_starttls_with_auth_delivers_over_a_verified_trustme_certificate(
    starttls_sink: SMTPSink, ca_file: str
) -> None:
    adapter = _adapter(
        starttls_sink, tls="starttls", username="notifyd", password="s3cret-smtp-password", ca_file=ca_file
    )

    async def go() -> list:
        async with adapter:
            return await adapter.send([message("a@example.com")])

    assert run(go())[0].kind is OutcomeKind.delivered
    assert starttls_sink.logins == ["notifyd"]
    assert len(starttls_sink.wait_for(1)) == 1
    # The adapter closed its TLS connection for good before its loop ended: nothing is left to the
    # collector (an unclosed transport would warn here, and the suite's warnings are errors).
    gc.collect()


def test_starttls_refuses_a_certificate_from_an_untrusted_ca(starttls_sink: SMTPSink) -> None:
    adapter = _adapter(starttls_sink, tls="starttls", username="notifyd", password="s3cret-smtp-password")

    async def go() -> list:
        async with adapter:
            return await adapter.send([message("a@example.com")])

    outcome = run(go())[0]
    gc.collect()  # the failed handshake left no socket behind either
    assert outcome.kind is OutcomeKind.transient
    assert starttls_sink.received == []


def test_wrong_smtp_password_is_a_permanent_auth_failure_that_never_shows_the_password(
    starttls_sink: SMTPSink, ca_file: str
) -> None:
    adapter = _adapter(
        starttls_sink, tls="starttls", username="notifyd", password="wrong-pw", ca_file=ca_file
    )

    async def go() -> list:
        async with adapter:
            return await adapter.send([message("a@example.com")])

    outcome = run(go())[0]
    assert outcome.kind is OutcomeKind.permanent and outcome.permanent_reason == "auth"
    assert "wrong-pw" not in repr(adapter) and "wrong-pw" not in outcome.reason


def test_a_4xx_is_transient_and_the_retry_succeeds(smtp_sink: SMTPSink) -> None:
    smtp_sink.fail_next("rcpt", "451 4.7.1 Greylisted, try again later")

    async def go() -> tuple[list, list]:
        async with _adapter(smtp_sink) as adapter:
            first = await adapter.send([message("a@example.com")])
            second = await adapter.send([message("a@example.com")])
            return first, second

    first, second = run(go())
    assert first[0].kind is OutcomeKind.transient and "451" in first[0].reason
    assert second[0].kind is OutcomeKind.delivered
    assert len(smtp_sink.wait_for(1)) == 1


def test_a_5xx_on_rcpt_is_a_permanent_invalid_target(smtp_sink: SMTPSink) -> None:
    smtp_sink.bad_mailboxes.add("gone@example.com")

    async def go() -> list:
        async with _adapter(smtp_sink) as adapter:
            return await adapter.send([message("gone@example.com"), message("ok@example.com", 1)])

    gone, ok = run(go())
    assert gone.kind is OutcomeKind.permanent and gone.permanent_reason == "invalid_target"
    assert ok.kind is OutcomeKind.delivered


def test_a_5xx_on_data_is_a_permanent_rejection(smtp_sink: SMTPSink) -> None:
    smtp_sink.fail_next("data", "554 5.7.1 Message rejected as spam")

    async def go() -> list:
        async with _adapter(smtp_sink) as adapter:
            return await adapter.send([message("a@example.com")])

    outcome = run(go())[0]
    assert outcome.kind is OutcomeKind.permanent and outcome.permanent_reason == "rejected"


def test_connections_are_pooled_and_reused_across_batches(smtp_sink: SMTPSink) -> None:
    async def go() -> tuple[list, int]:
        async with _adapter(smtp_sink, pool_size=2) as adapter:
            outcomes = []
            for batch in range(3):
                outcomes += await adapter.send(
                    [message(f"u{i}@example.com", batch * 10 + i) for i in range(5)]
                )
            return outcomes, adapter.pool.opened

    outcomes, opened = run(go())
    assert all(o.kind is OutcomeKind.delivered for o in outcomes)
    assert len(smtp_sink.wait_for(15)) == 15
    assert opened == 2
    assert smtp_sink.connections == 2


def test_a_pooled_connection_the_server_dropped_is_replaced_without_failing_the_mail(
    smtp_sink: SMTPSink,
) -> None:
    async def go() -> tuple[list, list, int]:
        async with _adapter(smtp_sink, pool_size=1) as adapter:
            first = await adapter.send([message("a@example.com")])
            smtp_sink.drop_connections()
            second = await adapter.send([message("b@example.com", 1)])
            return first, second, adapter.pool.opened

    first, second, opened = run(go())
    assert first[0].kind is OutcomeKind.delivered
    assert second[0].kind is OutcomeKind.delivered
    assert opened == 2
    assert [m.rcpt_tos for m in smtp_sink.wait_for(2)] == [["a@example.com"], ["b@example.com"]]


def test_an_unusable_address_is_a_permanent_invalid_target_without_touching_the_server(
    smtp_sink: SMTPSink,
) -> None:
    async def go() -> list:
        async with _adapter(smtp_sink) as adapter:
            return await adapter.send(
                [message("no-at-sign"), message("a@example.com\r\nBcc: x@evil.example", 1)]
            )

    outcomes = run(go())
    assert [o.permanent_reason for o in outcomes] == ["invalid_target", "invalid_target"]
    assert smtp_sink.connections == 0


def test_the_smtp_password_never_appears_in_the_adapters_repr() -> None:
    adapter = EmailAdapter(EmailConfig(username="u", password="hunter2-smtp"))
    assert "hunter2-smtp" not in repr(adapter)
    assert "***" in repr(adapter)
