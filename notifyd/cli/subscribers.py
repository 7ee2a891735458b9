"""``notifyd subscribers add|import|list|remove|reactivate``."""

from __future__ import annotations

import argparse
import csv
import getpass
import json
import sys
from collections.abc import Iterator
from typing import IO, Any

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn

from notifyd.cli.common import EXIT_INVALID, EXIT_OK, print_json
from notifyd.state.subscribers import COUNTED, AddResult, ConsentError, SubscriberError

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
    out = result.subscriber.public()
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


def rows_from(fh: IO[str], fmt: str) -> Iterator[tuple[int, dict[str, Any] | Exception]]:
    if fmt == "csv":
        reader = csv.DictReader(fh)
        for number, row in enumerate(reader, 2):
            record: dict[str, Any] = {k: v for k, v in row.items() if k and v not in (None, "")}
            for column in CSV_LIST_COLUMNS:
                if column in record:
                    record[column] = [c for c in record[column].replace(";", " ").split() if c]
            yield number, record
        return
    for number, line in enumerate(fh, 1):
        if not line.strip():
            continue
        try:
            parsed = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, ValueError(f"not valid JSON: {exc.msg}")
            continue
        yield number, parsed if isinstance(parsed, dict) else ValueError("each line is a JSON object")


def _import(rt: Any, args: argparse.Namespace) -> int:
    fmt = args.format or ("csv" if args.file.endswith(".csv") else "ndjson")
    try:
        fh = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8", newline="")  # noqa: SIM115
    except OSError as exc:
        print(f"notifyd: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return EXIT_INVALID
    summary: dict[str, Any] = {"imported": 0, "updated": 0, "kept_unsubscribed": 0, "rejected": []}
    with (
        fh,
        Progress(SpinnerColumn(), TextColumn("{task.description}"), console=Console(stderr=True)) as progress,
    ):
        task = progress.add_task("importing", total=None)
        for line, result in rt.subscribers.import_many(args.page, rows_from(fh, fmt)):
            if isinstance(result, AddResult):
                summary[COUNTED[result.outcome]] += 1
            else:
                summary["rejected"].append({"line": line, "error": str(result)})
            done = (
                summary["imported"]
                + summary["updated"]
                + summary["kept_unsubscribed"]
                + len(summary["rejected"])
            )
            if done % 500 == 0:
                progress.update(task, description=f"importing: {done} lines")
        progress.update(task, description="imported")
    print_json(summary)
    return EXIT_OK


def _list(rt: Any, args: argparse.Namespace) -> int:
    cursor: int | None = 0
    while cursor is not None:
        items, cursor = rt.subscribers.page(args.page, cursor=cursor, limit=1000)
        for sub in items:
            print_json(sub.public())
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
    print_json(sub.public())
    return EXIT_OK


def run(rt: Any, args: argparse.Namespace) -> int:
    actions = {"add": _add, "import": _import, "list": _list, "remove": _remove, "reactivate": _reactivate}
    return actions[args.action](rt, args)
