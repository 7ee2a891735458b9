"""``notifyd keys create|list|revoke``: API keys kept as SHA-256 hashes in Redis.

The key is printed once, by ``create``; Redis holds only its hash (under
``<namespace>:apikeys``), so a lost key is revoked and replaced, never recovered.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def register(subparsers: Any) -> None:
    """Add ``keys`` to the ``notifyd`` command's subparsers."""
    p = subparsers.add_parser("keys", help="create, list and revoke API keys")
    actions = p.add_subparsers(dest="keys_action", required=True)
    create = actions.add_parser("create", help="create a key; it is printed once")
    create.add_argument(
        "--scope",
        required=True,
        help="scopes joined by '+': publish, operate, admin (implies operate), sync",
    )
    create.add_argument(
        "--page",
        action="append",
        dest="pages",
        metavar="PAGE",
        help="limit the key to this page (repeat for several); without it, the key reaches every page",
    )
    create.add_argument(
        "--max-priority",
        choices=("critical", "high", "normal", "low"),
        help="the highest lane the key may publish to (default: normal; incidents need high or critical)",
    )
    create.add_argument(
        "--peer",
        help="for a sync key: the one peer region (its NOTIFYD_NODE_ID) whose payloads it may carry",
    )
    create.add_argument("--name", default="", help="a label shown by `keys list`")
    actions.add_parser("list", help="list stored keys (ids, names, scopes; never the keys)")
    revoke = actions.add_parser("revoke", help="revoke a stored key by its id (from `keys list`)")
    revoke.add_argument("id")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from notifyd.api.keystore import Grant, KeySpecError, KeyStore, parse_pages, parse_scopes
    from notifyd.runtime.settings import load_settings
    from notifyd.runtime.wiring import Runtime

    try:
        if args.keys_action == "create":
            grant = Grant(parse_scopes(args.scope), parse_pages(args.pages), args.max_priority, args.peer)
    except KeySpecError as exc:
        print(f"notifyd: {exc}", file=sys.stderr)
        return 2
    runtime = Runtime.start(load_settings(getattr(args, "config", None)))
    try:
        store = KeyStore(runtime.client, runtime.settings.namespace)
        if args.keys_action == "create":
            key = store.create(
                grant.scopes,
                name=args.name,
                pages=grant.pages,
                max_priority=grant.max_priority,
                peer=grant.peer,
            )
            print(key)
            reach = "every page" if grant.pages is None else "page(s) " + ", ".join(sorted(grant.pages))
            lanes = grant.lane_cap if "publish" in grant.scopes else None
            print(
                f"notifyd: created a key with scopes {'+'.join(sorted(grant.scopes))} for {reach}"
                + (f", publishing up to priority {lanes}" if lanes else "")
                + "; it is shown only this once",
                file=sys.stderr,
            )
        elif args.keys_action == "list":
            for stored in store.stored():
                print(json.dumps(stored.public(), separators=(",", ":")))
        else:
            try:
                removed = store.revoke(args.id)
            except KeySpecError as exc:
                print(f"notifyd: {exc}", file=sys.stderr)
                return 2
            if removed == 0:
                print(f"notifyd: no stored key has id {args.id!r}", file=sys.stderr)
                return 2
            print(f"notifyd: revoked {removed} key(s)", file=sys.stderr)
        return 0
    finally:
        runtime.close()
