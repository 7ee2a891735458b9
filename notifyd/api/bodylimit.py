"""Refuse oversized bodies with a 413: by Content-Length up front, and by counting while reading.

A client can lie about Content-Length or stream a chunked body, so the
declared length is only the cheap first check; the byte count is the real one.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from notifyd.api.problems import ProblemError, problem_response

#: The event limit of CONTRACT.md, applied to every body unless a route says otherwise.
DEFAULT_LIMIT = 64 * 1024


class BodyTooLarge(ProblemError):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the body is larger than {limit} bytes", errors=[("body", "too large")])


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int | None]) -> None:
        self.app = app
        #: The limit of a path, or None for no limit (a streamed import).
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        if limit is None:
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > limit:
                    await self._refuse(scope, receive, send, limit)
                    return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # Routes read the body through this; the problem handler turns it into a 413.
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, counting_receive, send)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        exc = BodyTooLarge(limit)
        # Close the connection: the client may still be sending the body we will not read.
        response = problem_response(
            exc.status, exc.detail, errors=exc.errors, headers={"Connection": "close"}
        )
        await response(scope, receive, send)
