"""``notifyd secrets generate-key|rewrap|rotate-link-key``: the keys behind secrets at rest.

Rotating the secret key (``NOTIFYD_SECRET_KEY``): put a new key first in the list and
restart every process, so the new key seals and the old one still opens; run ``rewrap``,
which re-seals every stored secret (and any legacy clear one) with the new key; then drop
the old key. Rotating the link keys that sign unsubscribe and preference links:
``rotate-link-key``, after which links signed with the previous key keep working until the
next rotation.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def register(subparsers: Any) -> None:
    """Add ``secrets`` to the ``notifyd`` command's subparsers."""
    p = subparsers.add_parser(
        "secrets", help="secret keys: generate one, re-seal stored secrets, rotate link keys"
    )
    actions = p.add_subparsers(dest="secrets_action", required=True)
    actions.add_parser("generate-key", help="print a new key for NOTIFYD_SECRET_KEY")
    actions.add_parser(
        "rewrap",
        help="re-seal every stored secret with the newest key (after adding a key, or upgrading)",
    )
    actions.add_parser(
        "rotate-link-key",
        help="a new key signs unsubscribe and preference links; links signed before still work once",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from notifyd.runtime.settings import load_settings
    from notifyd.runtime.wiring import Runtime
    from notifyd.state.sealing import generate_key

    if args.secrets_action == "generate-key":
        print(generate_key())
        return 0
    runtime = Runtime.start(load_settings(getattr(args, "config", None)))
    try:
        if args.secrets_action == "rewrap":
            summary = rewrap(runtime)
            print(json.dumps(summary, separators=(",", ":")))
            return 0
        try:
            keys = runtime.link_keys.rotate()
        except ValueError as exc:
            print(f"notifyd: {exc}", file=sys.stderr)
            return 2
        previous = keys.keys[1].kid if len(keys.keys) > 1 else None
        print(
            f"notifyd: link key {keys.signing.kid} signs from now on"
            + (f"; links signed with {previous} still work until the next rotation" if previous else ""),
            file=sys.stderr,
        )
        return 0
    finally:
        runtime.close()


def rewrap(runtime: Any) -> dict[str, Any]:
    """Re-seal what is stored with the newest key: every page's webhook secrets, the secrets of
    sign-ups waiting for confirmation, the link keys and the target index key (which stays the
    same key, so every digest it made stays valid). Afterwards the old key opens nothing."""
    from notifyd.selfservice.wiring import optin_for

    repo = runtime.subscribers
    pages = {page: repo.rewrap(page) for page in repo.pages()}
    return {
        "key": runtime.keyring.newest_kid,
        "subscriber_secrets": sum(pages.values()),
        "pages": len(pages),
        "pending_signups": optin_for(runtime).rewrap(),
        "link_keys": runtime.link_keys.rewrap(),
        "target_index_key": runtime.target_digests.rewrap(),
    }
