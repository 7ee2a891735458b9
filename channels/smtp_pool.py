"""A small pool of reused SMTP connections.

Opening an SMTP connection costs a TCP (and often TLS) handshake, the
greeting, EHLO, maybe STARTTLS and a second EHLO, and AUTH: several round
trips before the first MAIL FROM. Reusing a connection for the next message
skips all of them. Idle connections older than ``max_idle_s`` are dropped
rather than trusted, since servers close idle clients after a while.

A pool belongs to one event loop; :class:`channels.email.EmailAdapter` makes
a new one if it is used from another loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

import aiosmtplib

#: How long an idle connection is trusted before it is closed instead of reused.
DEFAULT_MAX_IDLE_S = 60.0


class SMTPPool:
    def __init__(
        self,
        factory: Callable[[], aiosmtplib.SMTP],
        *,
        size: int,
        max_idle_s: float = DEFAULT_MAX_IDLE_S,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self._factory = factory
        # AUTH runs here rather than inside aiosmtplib's connect(): when it fails there, the
        # client closes a TLS socket politely and may leave it open; here it can be aborted.
        self._credentials = credentials
        self._slots = asyncio.Semaphore(max(1, size))
        self._idle: list[tuple[aiosmtplib.SMTP, float]] = []
        self.max_idle_s = max_idle_s
        #: Connections opened so far (tests and the benchmark read it).
        self.opened = 0

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """At most ``size`` messages in flight, so at most ``size`` connections open."""
        async with self._slots:
            yield

    async def acquire(self) -> tuple[aiosmtplib.SMTP, bool]:
        """An open connection, and whether it was reused (a reused one may have gone stale)."""
        now = time.monotonic()
        while self._idle:
            conn, since = self._idle.pop()
            if conn.is_connected and now - since < self.max_idle_s:
                return conn, True
            await _close(conn)
        conn = self._factory()
        try:
            await conn.connect()
            if self._credentials is not None:
                await conn.login(*self._credentials)
        except BaseException:
            _abort(conn)
            raise
        self.opened += 1
        return conn, False

    def release(self, conn: aiosmtplib.SMTP) -> None:
        if conn.is_connected:
            self._idle.append((conn, time.monotonic()))

    async def discard(self, conn: aiosmtplib.SMTP) -> None:
        await _close(conn)

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        await asyncio.gather(*(_close(conn, polite=True) for conn, _ in idle), return_exceptions=True)


async def _close(conn: aiosmtplib.SMTP, *, polite: bool = False) -> None:
    # Taken before QUIT: aiosmtplib's quit() closes the transport and forgets it. Over TLS that
    # close() only starts the close_notify exchange, which outlives the loop if the adapter is
    # closed as its loop ends, and leaves the socket to the garbage collector ("unclosed
    # transport"). After QUIT's reply nothing is left to say, so the socket is aborted here.
    transport = conn.transport
    if polite and conn.is_connected:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(conn.quit(), timeout=2.0)
    _abort(conn, transport)
    # One turn of the loop runs the transport's connection_lost, which closes the socket now.
    await asyncio.sleep(0)


def _abort(conn: aiosmtplib.SMTP, transport: asyncio.BaseTransport | None = None) -> None:
    # abort(), not close(): a TLS transport's close() waits for the peer's close_notify, and a
    # failed or dropped connection may never send it, leaving the socket open behind it.
    transport = transport or conn.transport
    # Duck-typed: uvloop's transports have abort() without subclassing asyncio.WriteTransport.
    abort = getattr(transport, "abort", None)
    if abort is not None:
        abort()
    conn.close()
