"""What an admin add or import says about consent: ``"confirmed": true`` on a line.

An admin may vouch that a subscriber confirmed elsewhere (a CRM's own double opt-in):
``confirmed: true`` adds it active and writes an audit entry saying who vouched.
``confirmed: false`` sends the line through double opt-in instead: it is not added
until its owner confirms. Lines without the field are added as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from notifyd.models import Subscriber, SubscriberLine
from notifyd.selfservice import signup
from notifyd.selfservice.optin import OptIn
from notifyd.state.subscribers import AddResult, SubscriberError

Row = tuple[int, dict[str, Any] | Subscriber | SubscriberLine | Exception]


class ImportConsent:
    def __init__(
        self, optin: OptIn, page_id: str, *, allow_private: bool = False, actor: str = "admin"
    ) -> None:
        self.actor = actor
        self.optin = optin
        self.page_id = page_id
        self.allow_private = allow_private
        self.confirmed_lines: set[int] = set()
        self.entries: list[dict[str, str]] = []

    def rows(self, rows: Iterable[Row]) -> Iterator[Row]:
        """The rows to add, ``confirmed`` taken out; ``confirmed: false`` rows start an opt-in."""
        for line, row in rows:
            if isinstance(row, (Exception, Subscriber, SubscriberLine)) or "confirmed" not in row:
                yield line, row
                continue
            row = dict(row)
            confirmed = row.pop("confirmed")
            if confirmed is True:
                self.confirmed_lines.add(line)
                yield line, row
            elif confirmed is False:
                try:
                    checked = signup.check(
                        {k: v for k, v in row.items() if k in signup.SUBSCRIBER_FIELDS},
                        allow_private=self.allow_private,
                    )
                except signup.SignupError as exc:
                    yield line, SubscriberError(str(exc))
                    continue
                self.optin.start(self.page_id, checked.subscriber, source="admin-import")
            else:
                yield line, SubscriberError("confirmed: must be true or false")

    def added(self, line: int, result: AddResult) -> None:
        if line in self.confirmed_lines:
            self.record_confirmed(result, "admin-import")

    def record_confirmed(self, result: AddResult, via: str) -> None:
        sub = result.subscriber
        self.optin.record(
            self.page_id,
            "imported_confirmed",
            subscriber=sub.id,
            channel=sub.channel,
            via=via,
            confirmed="by-admin",
            actor=self.actor,
        )
