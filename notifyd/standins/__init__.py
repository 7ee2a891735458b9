"""Loopback stand-ins for SMTP, Twilio and Slack, plus a webhook inbox.

With them every channel delivers on a laptop with no accounts anywhere:
``make demo`` uses them, and so does ``notifyd dev --standins``, which
prints one line per message received.

They need the ``standins`` extra (``aiosmtpd``); without it importing this
package raises :class:`StandinsUnavailable`, whose message is the install hint
(the guard httpx puts around its ``[cli]`` extra).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class StandinsUnavailable(ImportError):
    """The ``notifyd[standins]`` extra is not installed."""


try:
    from notifyd.standins import servers as loopback
except ImportError as exc:  # pragma: no cover - exercised by tests/test_packaging.py in a subprocess
    raise StandinsUnavailable(
        f"the stand-ins need the standins extra ({exc.name or 'aiosmtpd'} is missing): "
        "pip install 'notifyd[standins]'"
    ) from None


@dataclass
class StandIns:
    #: Settings that aim the adapters at the stand-ins.
    settings: dict[str, Any]
    #: (label, server) pairs; every server has ``received`` and ``stop()``.
    servers: list[tuple[str, Any]]
    #: A few (channel, target) subscribers that land on them.
    sample_subscribers: list[tuple[str, str]]
    webhook_inbox: loopback.HTTPReceiver | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def echo(self, write: Callable[[str], None]) -> None:
        """Write one line per message the stand-ins receive, from a daemon thread."""

        def run() -> None:
            seen = {label: 0 for label, _ in self.servers}
            while not self._stop.wait(0.2):
                for label, server in self.servers:
                    received = list(server.received)
                    for item in received[seen[label] :]:
                        write(f"{label} received: {describe(item)}")
                    seen[label] = len(received)

        threading.Thread(target=run, name="standin-echo", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        for _, server in self.servers:
            server.stop()


def start_standins(*, webhook_inbox: bool = False) -> StandIns:
    smtp = loopback.SMTPSink().start()
    twilio = loopback.TwilioServer().start()
    slack = loopback.SlackServer().start()
    servers: list[tuple[str, Any]] = [
        ("email (SMTP)", smtp),
        ("sms (Twilio API)", twilio),
        ("slack", slack),
    ]
    settings: dict[str, Any] = {
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp.port,
        "smtp_tls": "none",
        "twilio_account_sid": twilio.account_sid,
        "twilio_auth_token": twilio.auth_token,
        "twilio_from": "+15005550006",
        "twilio_base_url": twilio.url,
        "slack_bot_token": slack.token,
        "slack_base_url": slack.api_url,
    }
    subscribers = [("email", f"oncall{i}@example.com") for i in range(5)]
    subscribers += [("sms", f"+1415555{2670 + i:04d}") for i in range(3)]
    subscribers += [("slack", "slack:C0INCIDENTS"), ("slack", f"{slack.url}/services/T000/B000/demo")]
    inbox = None
    if webhook_inbox:
        inbox = loopback.HTTPReceiver().start()
        servers.append(("webhook inbox", inbox))
        settings["allow_private_targets"] = True
    return StandIns(settings, servers, subscribers, inbox)


def describe(item: Any) -> str:
    """One line for a received mail or HTTP request; bodies are shortened."""
    if isinstance(item, loopback.ReceivedMail):
        return f"to {', '.join(item.rcpt_tos)}: {item.message['Subject']}"
    path = item.path.split("?")[0]
    if "Messages.json" in path:
        form = item.form
        return f"to {form.get('To')}: {form.get('Body', '')[:80]!r}"
    if item.headers.get("webhook-id"):
        return f"POST {path} webhook-id={item.headers['webhook-id']}"
    try:
        body = json.loads(item.body)
    except ValueError:
        return f"{item.method} {path}"
    return f"{item.method} {path} {str(body.get('channel', ''))} {str(body.get('text', ''))[:80]!r}".strip()
