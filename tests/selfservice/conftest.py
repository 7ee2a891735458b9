"""An API server and a worker wired to SMTP, Twilio and webhook stand-ins."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from notifyd.standins.servers import SMTPSink, TwilioServer
from tests.api.conftest import Api, start_api  # noqa: F401 - the API tests' server fixture
from tests.selfservice.support import PUBLIC


@dataclass
class Stack:
    api: Api
    smtp: SMTPSink
    twilio: TwilioServer

    @property
    def rt(self) -> Any:
        return self.api.runtime


@pytest.fixture
def stack(start_api: Callable[..., Api], start_worker: Any) -> Iterator[Callable[..., Stack]]:  # noqa: F811
    started: list[Stack] = []

    def make(*, worker: bool = True, store: Any | None = None, **settings: Any) -> Stack:
        smtp = SMTPSink().start()
        twilio = TwilioServer().start()
        settings.setdefault("public_url", PUBLIC)
        api = start_api(
            store=store,
            smtp_host=smtp.host,
            smtp_port=smtp.port,
            twilio_account_sid=twilio.account_sid,
            twilio_auth_token=twilio.auth_token,
            twilio_from="+15005550006",
            twilio_base_url=twilio.url,
            **settings,
        )
        s = Stack(api, smtp, twilio)
        started.append(s)
        if worker:
            start_worker(api.runtime, store=store)
        return s

    yield make
    for s in started:
        s.smtp.stop()
        s.twilio.stop()
