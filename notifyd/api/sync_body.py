"""Reading a peer's ``POST /v1/sync`` body: in chunks, into a bounded decoder, never past the limit.

A replication payload carries a whole store state when a peer is new, so its limit is larger
than other bodies' (``SYNC_LIMIT``). The body is not read into memory first and decoded
after: each chunk goes into msgpack's unpacker, whose buffer refuses to grow past the limit,
so the answer is a 413 as soon as the body passes it (before the rest is read), and no more
than the limit is ever held. A declared ``Content-Length`` over the limit is refused before
any of the body is read.
"""

from __future__ import annotations

from typing import Any

import msgpack
from starlette.requests import Request

from notifyd.api.bodylimit import BodyTooLarge
from notifyd.api.problems import ProblemError
from notifyd.store.errors import SyncProtocolError
from notifyd.store.sync import check_message, new_unpacker

#: The default largest sync body (create_app's ``sync_limit``).
SYNC_LIMIT = 64 * 1024 * 1024


class SyncBodyError(ProblemError):
    """400: the body is not one whole sync message."""

    def __init__(self, detail: str) -> None:
        super().__init__(400, detail, errors=[("body", detail)], kind="bad-payload")


def too_large(limit: int) -> BodyTooLarge:
    exc = BodyTooLarge(limit)
    # The client may still be sending what we will not read.
    exc.headers["Connection"] = "close"
    return exc


async def read_sync_message(request: Request, limit: int) -> list[Any]:
    """The body's one sync message, decoded and shape-checked; 413 past ``limit``, 400 otherwise."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    unpacker = new_unpacker(limit)
    async for chunk in request.stream():
        try:
            unpacker.feed(chunk)
        except msgpack.BufferFull:
            raise too_large(limit) from None
    try:
        msg = unpacker.unpack()
    except msgpack.OutOfData:
        raise SyncBodyError("the body ends inside a sync message") from None
    except (ValueError, msgpack.FormatError, msgpack.StackError) as exc:
        raise SyncBodyError(f"the body is not msgpack: {type(exc).__name__}") from None
    try:
        unpacker.unpack()
    except msgpack.OutOfData:
        pass
    except (ValueError, msgpack.FormatError, msgpack.StackError):
        raise SyncBodyError("the body has bytes after its sync message") from None
    else:
        raise SyncBodyError("the body has more than one sync message")
    try:
        return check_message(msg)
    except SyncProtocolError as exc:
        raise SyncBodyError(str(exc)) from None
