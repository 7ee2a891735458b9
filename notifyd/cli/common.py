"""What every command shares: exit codes, the refusal type, and one JSON line per result."""

from __future__ import annotations

import json
import sys
from typing import Any

EXIT_OK = 0
EXIT_INVALID = 2
#: Redis (or another service the command needs) cannot be reached.
EXIT_UNAVAILABLE = 1
#: A publish refused by NOTIFYD_DURABILITY: Redis did not confirm it durable (it may be written).
EXIT_NOT_DURABLE = 3


class CliError(Exception):
    """A refused command; printed without a traceback, exit code 2."""


class RemoteError(Exception):
    """The API could not be used (unreachable, bad key, server error); printed, exit 2.

    Defined here, not in ``remote`` (which re-exports it), so that commands that never talk to
    the API do not load httpx at start-up just to name this error."""


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
