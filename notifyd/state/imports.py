"""An import's bookkeeping, shared by the CLI and the API: reading a line, its line cap and its
summary."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

from notifyd.state.subscriber_errors import SubscriberError
from notifyd.state.subscribers import COUNTED, AddResult, Row

#: json's C scanner and its whitespace rule: json.loads without its per-call Python layers.
_scan = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
_JSON_SPACE = re.compile(r"[ \t\n\r]*")


def scan_object(text: str) -> dict[str, Any] | None:
    """The object ``json.loads(text)`` returns, when ``text`` opens one at once (nearly every
    import line); None otherwise, or when the scan fails: then json.loads decides, and words
    any error. A million lines spend a third less in JSON this way."""
    if not text.startswith("{"):
        return None
    try:
        parsed, end = _scan(text, 0)
    except (StopIteration, json.JSONDecodeError, RecursionError):
        return None
    if _JSON_SPACE.match(text, end).end() != len(text):  # type: ignore[union-attr]
        return None
    return parsed  # type: ignore[no-any-return]


class ImportTooLong(SubscriberError):
    """An import past ``import_max_lines``; the lines before it were imported."""


class LineCap:
    """Counts an import's lines across batches; raises :class:`ImportTooLong` past the cap."""

    def __init__(self, max_lines: int) -> None:
        self.max_lines = max_lines
        self.seen = 0

    def __call__(self, rows: Iterable[Row]) -> Iterator[Row]:
        for row in rows:
            self.seen += 1
            if self.seen > self.max_lines:
                raise ImportTooLong(
                    f"the import has more than {self.max_lines} lines, the cap (NOTIFYD_IMPORT_MAX_LINES); "
                    f"the lines before line {row[0]} were imported, the rest were not: "
                    "split the file or raise the cap"
                )
            yield row


class ImportTally:
    """An import's summary, as the CLI prints it and the API answers it."""

    #: Rejected lines listed in the summary; the rest are only counted.
    LISTED = 1000

    def __init__(self) -> None:
        self.counts = dict.fromkeys(COUNTED.values(), 0)
        self.rejected: list[dict[str, Any]] = []
        self.rejected_total = 0
        #: Lines counted so far.
        self.lines = 0

    def add(self, line: int, result: AddResult | SubscriberError) -> None:
        self.lines += 1
        if isinstance(result, AddResult):
            self.counts[COUNTED[result.outcome]] += 1
            return
        self.rejected_total += 1
        if len(self.rejected) < self.LISTED:
            self.rejected.append({"line": line, "error": str(result)})

    def summary(self) -> dict[str, Any]:
        return {**self.counts, "rejected": self.rejected, "rejected_total": self.rejected_total}
