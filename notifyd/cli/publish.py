"""``notifyd publish FILE|-``: one JSON event, or an NDJSON stream of them."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import IO, Any

from notifyd.cli.common import EXIT_INVALID, EXIT_NOT_DURABLE, EXIT_OK, print_json
from notifyd.publish import EventError
from notifyd.runtime.durability import NotDurable


def _open(path: str) -> IO[str]:
    if path == "-":
        return sys.stdin
    try:
        return open(path, encoding="utf-8")  # noqa: SIM115 - closed by the caller
    except OSError as exc:
        raise EventError(f"cannot read {path}: {exc.strerror}") from None


def local_publisher(rt: Any) -> Callable[[str], dict[str, Any]]:
    return lambda line: dict(rt.publisher.publish(line).as_dict())


def publish_stream(publish: Callable[[str], dict[str, Any]], path: str) -> int:
    """Exit 0 when every event was accepted or a duplicate; 2 when any was invalid; 3 when any was
    refused because Redis did not confirm it durable (its line says what was written).

    ``publish`` takes one JSON text and raises EventError when it is invalid.
    """
    try:
        fh = _open(path)
    except EventError as exc:
        print(f"notifyd: {exc}", file=sys.stderr)
        return EXIT_INVALID
    with fh:
        text = fh.read()
    stripped = text.strip()
    if not stripped:
        print("notifyd: no event in input", file=sys.stderr)
        return EXIT_INVALID
    # A single (possibly pretty-printed) JSON object, or one object per line.
    lines: list[tuple[int, str]]
    if stripped.startswith("{") and "\n{" not in stripped:
        lines = [(1, stripped)]
    else:
        lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    code = EXIT_OK
    for number, line in lines:
        try:
            result = publish(line)
        except EventError as exc:
            where = f"line {number}: " if len(lines) > 1 else ""
            print(f"notifyd: invalid event: {where}{exc}", file=sys.stderr)
            code = max(code, EXIT_INVALID)
            continue
        except NotDurable as exc:
            where = f"line {number}: " if len(lines) > 1 else ""
            print(f"notifyd: not durable: {where}{exc} (written: {exc.written})", file=sys.stderr)
            code = EXIT_NOT_DURABLE
            continue
        print_json(result)
    return code
