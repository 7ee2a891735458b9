"""Log records as text lines or, with ``NOTIFYD_LOG_FORMAT=json``, one JSON object per line.

A JSON line carries ``ts``, ``level``, ``logger`` and ``message``, plus ``event_id``,
``delivery_id``, ``lane``, ``channel`` and ``step`` when the record has them: either
passed with ``extra=`` or set for a block of work with :func:`log_context` (the
pipeline's actors set the event id, step and lane of the message they run).
Nothing here adds a target or a secret; messages are written as the code logs them.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

#: The fields a JSON line carries when they are known.
FIELDS: tuple[str, ...] = ("event_id", "page_id", "delivery_id", "lane", "channel", "step")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_context: ContextVar[dict[str, Any] | None] = ContextVar("notifyd_log_context", default=None)


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Attach these fields (a subset of FIELDS) to every record logged inside the block."""
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise ValueError(f"unknown log field(s): {', '.join(sorted(unknown))}")
    token = _context.set({**(_context.get() or {}), **fields})
    try:
        yield
    finally:
        _context.reset(token)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in (_context.get() or {}).items():
            if value is not None:
                line[key] = value
        for key in FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, separators=(",", ":"))


def configure(log_format: str = "text", *, verbose: bool = False) -> None:
    """Send the root logger's records to stderr, as text lines or JSON lines; replaces earlier setup."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)
