"""``notifyd subscribers add|import|list|remove|reactivate``."""

from __future__ import annotations

import argparse
import contextlib
import csv
import functools
import gc
import getpass
import json
import os
import stat
import sys
import time
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, Any

from notifyd.cli.common import EXIT_INVALID, EXIT_OK, print_json
from notifyd.state.imports import ImportTally, ImportTooLong, LineCap, scan_object
from notifyd.state.subscribers import ConsentError, Row, SubscriberError

if TYPE_CHECKING:
    from rich.progress import Progress

CSV_LIST_COLUMNS = ("components",)


def _add(rt: Any, args: argparse.Namespace) -> int:
    data: dict[str, Any] = {"channel": args.channel, "target": args.target}
    for key in ("id", "secret", "components", "contact_email"):
        value = getattr(args, key)
        if value is not None:
            data[key] = value
    try:
        result = rt.subscribers.add(args.page, data)
    except SubscriberError as exc:
        print(f"notifyd: invalid subscriber: {exc}", file=sys.stderr)
        return EXIT_INVALID
    out = rt.subscribers.public(result.subscriber)
    for warning in result.warnings:
        print(f"notifyd: warning: {warning}", file=sys.stderr)
    if result.kept:
        print(
            f"notifyd: subscriber {out['id']} opted out ({result.subscriber.disabled}) and stays disabled; "
            "only `notifyd subscribers reactivate --force` overrides that",
            file=sys.stderr,
        )
    if result.generated_secret:
        out["secret"] = result.generated_secret  # shown once, at creation
    print_json(out)
    return EXIT_OK


def csv_rows(fh: IO[str]) -> Iterator[Row]:
    reader = csv.DictReader(fh)
    for number, row in enumerate(reader, 2):
        record: dict[str, Any] = {k: v for k, v in row.items() if k and v not in (None, "")}
        for column in CSV_LIST_COLUMNS:
            if column in record:
                record[column] = [c for c in record[column].replace(";", " ").split() if c]
        yield number, record


def ndjson_rows(fh: IO[bytes], progress: Callable[[int], None] | None = None) -> Iterator[Row]:
    """(line number, object or why not) per non-blank line; ``progress`` gets the bytes read."""
    for number, line in enumerate(fh, 1):
        if progress is not None:
            progress(len(line))
        if not line.strip():
            continue
        try:
            text = line.decode()  # str: json skips sniffing the encoding of bytes
        except UnicodeDecodeError:
            yield number, ValueError("not valid JSON: not UTF-8")
            continue
        quick = scan_object(text)
        if quick is not None:
            yield number, quick
            continue
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as exc:
            yield number, ValueError(f"not valid JSON: {exc.msg}")
            continue
        except RecursionError:  # a rejected line, not a traceback
            yield number, ValueError("not valid JSON: nested too deeply")
            continue
        yield number, parsed if isinstance(parsed, dict) else ValueError("each line is a JSON object")


def _size(fh: IO[Any]) -> int | None:
    try:
        st = os.fstat(fh.fileno())
    except (OSError, ValueError):
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


def _on_terminal() -> bool:
    """Whether rich would draw on stderr. Piped, with neither FORCE_COLOR nor TTY_COMPATIBLE set,
    it would not: then rich is not even imported (a twentieth of a 50k-line import's CPU)."""
    if not sys.stderr.isatty() and not os.environ.get("FORCE_COLOR") and not os.environ.get("TTY_COMPATIBLE"):
        return False
    from rich.console import Console

    return bool(Console(stderr=True).is_terminal)


def _progress_bar() -> Progress:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("importing"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[lines]:,} lines  {task.fields[rate]:,.0f} lines/s"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    )


def _import(rt: Any, args: argparse.Namespace) -> int:
    fmt = args.format or ("csv" if args.file.endswith(".csv") else "ndjson")
    binary = fmt == "ndjson"
    try:
        if args.file == "-":
            fh: IO[Any] = sys.stdin.buffer if binary else sys.stdin
        else:
            fh = open(args.file, "rb") if binary else open(args.file, encoding="utf-8", newline="")  # noqa: SIM115
    except OSError as exc:
        print(f"notifyd: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return EXIT_INVALID
    tally = ImportTally()
    # On a terminal: a bar with the rate and, when the size is known, an ETA. Piped: only the summary.
    progress = _progress_bar() if _on_terminal() else None
    started = time.monotonic()
    code = EXIT_OK
    with fh, progress if progress is not None else contextlib.nullcontext():
        advance: Callable[[int], None] | None = None
        if progress is not None:
            task = progress.add_task("import", total=_size(fh), lines=0, rate=0.0)
            advance = functools.partial(progress.advance, task)
        rows = ndjson_rows(fh, advance) if binary else csv_rows(fh)
        # What start-up loaded lives as long as the process: keep the collector from walking it
        # over and over while a million lines' short-lived objects come and go (~10% of the CPU).
        gc.freeze()
        try:
            for line, result in rt.subscribers.import_many(
                args.page, LineCap(rt.settings.import_max_lines)(rows)
            ):
                tally.add(line, result)
                if progress is not None and tally.lines % 5000 == 0:
                    rate = tally.lines / max(time.monotonic() - started, 1e-9)
                    progress.update(task, lines=tally.lines, rate=rate)
        except ImportTooLong as exc:
            print(f"notifyd: {exc}", file=sys.stderr)
            code = EXIT_INVALID
    summary = tally.summary()
    seconds = time.monotonic() - started
    summary["seconds"] = round(seconds, 3)
    summary["lines_per_second"] = round(tally.lines / seconds) if seconds > 0 else None
    print_json(summary)
    return code


def _list(rt: Any, args: argparse.Namespace) -> int:
    cursor: int | None = 0
    while cursor is not None:
        items, cursor = rt.subscribers.page(args.page, cursor=cursor, limit=1000)
        for sub in items:
            print_json(rt.subscribers.public(sub))
    return EXIT_OK


def _remove(rt: Any, args: argparse.Namespace) -> int:
    if not rt.subscribers.remove(args.page, args.id):
        print(f"notifyd: no subscriber {args.id!r} on page {args.page!r}", file=sys.stderr)
        return EXIT_INVALID
    return EXIT_OK


def _reactivate(rt: Any, args: argparse.Namespace) -> int:
    from notifyd.pipeline.endpoint_health import reactivate

    actor = f"cli:{args.actor or getpass.getuser()}"
    try:
        sub = reactivate(
            rt.client, rt.keys.ns, rt.subscribers, args.page, args.id, force=args.force, actor=actor
        )
    except ConsentError as exc:
        print(f"notifyd: {exc}", file=sys.stderr)
        return EXIT_INVALID
    if sub is None:
        print(f"notifyd: no subscriber {args.id!r} on page {args.page!r}", file=sys.stderr)
        return EXIT_INVALID
    print_json(rt.subscribers.public(sub))
    return EXIT_OK


def run(rt: Any, args: argparse.Namespace) -> int:
    actions = {"add": _add, "import": _import, "list": _list, "remove": _remove, "reactivate": _reactivate}
    return actions[args.action](rt, args)
