"""A lean HTTP/1.1 client for the webhook adapter's POSTs, on asyncio protocols.

A webhook delivery is one small POST and a status to read. Through aiohttp's
client session, building and parsing the request and response objects took
about 150 us of CPU per delivery, more than the rest of the pipeline; on this
machine's two cores, which the endpoints share, that CPU decides the rate.
This client writes the request as one buffer and parses the answer's head and
up to ``read_limit`` bytes of its body, nothing else:

- keep-alive connections pooled per (scheme, address, port, TLS server name),
  at most ``limit`` open at once (an idle one elsewhere is closed to make room,
  else the request waits for one), an idle one reused for ``keepalive_s``;
- TLS through the loop's own transport (``server_hostname`` names the host the
  certificate must name, while the connection goes to the pinned address);
- bodies by ``Content-Length``, chunked, or until the close; 1xx heads skipped;
  a connection is reused only when its answer was read to the end and neither
  side asked to close it;
- errors are httpx's (``ConnectTimeout``, ``ConnectError``, ``ReadError``,
  ``RemoteProtocolError``), so the adapter classifies this client's failures as
  it classifies any httpx transport's. The caller bounds each request with one
  deadline; a request that does not finish (cancelled, timed out) closes its
  connection.

What it does not do, since webhooks need none of it: redirects, proxies,
cookies, decompression, pipelining, HTTP/2.
"""

from __future__ import annotations

import asyncio
import itertools
import ssl
from collections import deque
from dataclasses import dataclass
from typing import cast

import httpx

#: A response head (status line and headers) larger than this is refused.
MAX_HEAD_BYTES = 65536
DEFAULT_LIMIT = 1024
DEFAULT_KEEPALIVE_S = 15.0

_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILER, _UNTIL_CLOSE = range(7)


@dataclass(frozen=True, slots=True)
class Answer:
    """The status, the one header the caller asked for, and the body's first ``keep`` bytes."""

    status: int
    header: str | None
    body: bytes


class _Connection(asyncio.Protocol):
    """One connection; at most one request on it at a time."""

    def __init__(self, pool: Http1Client, key: tuple[str, str, int, str | None]) -> None:
        self.pool = pool
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.counted = True  # in the pool's open count until closed
        self.closed = False
        self.idle_since = 0.0
        self.idle = False  # in the pool's idle lists
        self._buf = bytearray()
        self._waiter: asyncio.Future[Answer] | None = None
        self._eof = False

    # -- protocol callbacks ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A TCP transport (uvloop's is one without subclassing asyncio.Transport).
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            self.close()  # nothing asked for it: the connection is out of step
            return
        self._buf += data
        self._parse()

    def eof_received(self) -> bool:
        self._eof = True
        if self._waiter is not None:
            self._parse()
        return False  # let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        if self._waiter is not None and not self._waiter.done():
            self._parse()
        self._closed()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            reason = type(exc).__name__ if exc is not None else "server disconnected"
            waiter.set_exception(httpx.ReadError(reason))

    # -- the request -------------------------------------------------------------------------

    def request(
        self, data: bytes, *, header: bytes | None, read_limit: int, keep: int
    ) -> asyncio.Future[Answer]:
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        self._want = header
        self._read_limit = read_limit
        self._keep = keep
        self._state = _HEAD
        self._status = 0
        self._found: str | None = None
        self._reusable = True
        self._read = 0
        self._left = 0
        self._kept: list[bytes] = []
        assert self.transport is not None
        self.transport.write(data)
        return self._waiter

    def _parse(self) -> None:
        try:
            self._step()
        except httpx.RemoteProtocolError as exc:
            self._fail(exc)

    def _step(self) -> None:
        buf = self._buf
        while True:
            state = self._state
            if state == _HEAD:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(buf) > MAX_HEAD_BYTES:
                        raise httpx.RemoteProtocolError("response head too large")
                    if self._eof:
                        raise httpx.RemoteProtocolError("server disconnected before answering")
                    return
                head = bytes(buf[:end])
                del buf[: end + 4]
                self._head(head)
                if self._waiter is None or self._waiter.done():
                    return
            elif state in (_LENGTH, _CHUNK_DATA):
                if not buf:
                    if self._eof:
                        raise httpx.RemoteProtocolError("server disconnected within the body")
                    return
                take = min(self._left, len(buf))
                self._body(buf[:take])
                del buf[:take]
                self._left -= take
                if state == _LENGTH and self._left == 0:
                    return self._done()
                if self._read >= self._read_limit:
                    self._reusable = False
                    return self._done()
                if self._left == 0:  # a chunk's data read: its CRLF follows
                    self._state = _CHUNK_END
            elif state in (_CHUNK_SIZE, _CHUNK_END, _TRAILER):
                end = buf.find(b"\r\n")
                if end < 0:
                    if len(buf) > MAX_HEAD_BYTES:
                        raise httpx.RemoteProtocolError("chunk line too long")
                    if self._eof:
                        raise httpx.RemoteProtocolError("server disconnected within the body")
                    return
                line = bytes(buf[:end])
                del buf[: end + 2]
                if state == _CHUNK_END:
                    if line:
                        raise httpx.RemoteProtocolError("chunk not followed by CRLF")
                    self._state = _CHUNK_SIZE
                elif state == _TRAILER:
                    if not line:
                        return self._done()
                else:
                    try:
                        size = int(line.split(b";", 1)[0].strip(), 16)
                    except ValueError:
                        raise httpx.RemoteProtocolError("bad chunk size") from None
                    if size < 0:
                        raise httpx.RemoteProtocolError("bad chunk size")
                    if size == 0:
                        self._state = _TRAILER
                    else:
                        self._left = size
                        self._state = _CHUNK_DATA
            else:  # _UNTIL_CLOSE
                if buf:
                    self._body(buf)
                    buf.clear()
                if self._eof or self._read >= self._read_limit:
                    return self._done()
                return

    def _head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or len(parts[1]) != 3:
            raise httpx.RemoteProtocolError("not an HTTP/1.x answer")
        try:
            status = int(parts[1])
        except ValueError:
            raise httpx.RemoteProtocolError("bad status") from None
        if 100 <= status < 200 and status != 101:
            return  # an informational head; the answer follows (state stays _HEAD)
        length: int | None = None
        chunked = False
        close = parts[0] == b"HTTP/1.0"
        want = self._want
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                raise httpx.RemoteProtocolError("bad header line")
            name = name.strip().lower()
            if name == b"content-length":
                try:
                    length = int(value.strip())
                except ValueError:
                    raise httpx.RemoteProtocolError("bad content-length") from None
                if length < 0:
                    raise httpx.RemoteProtocolError("bad content-length")
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                token = value.strip().lower()
                if token == b"close":
                    close = True
                elif token == b"keep-alive":
                    close = False
            elif want is not None and name == want:
                self._found = value.strip().decode("latin-1")
        self._status = status
        if close:
            self._reusable = False
        if status in (204, 304) or status == 101:
            self._reusable = self._reusable and status != 101
            self._done()  # no body
        elif chunked:
            self._state = _CHUNK_SIZE
        elif length is not None:
            self._left = length
            self._state = _LENGTH
            if length == 0:
                self._done()
        else:
            self._reusable = False
            self._state = _UNTIL_CLOSE

    def _body(self, chunk: bytearray) -> None:
        if self._read < self._keep:
            self._kept.append(bytes(chunk[: self._keep - self._read]))
        self._read += len(chunk)

    def _done(self) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        answer = Answer(self._status, self._found, b"".join(self._kept))
        self._state = _HEAD
        waiter.set_result(answer)

    def _fail(self, exc: Exception) -> None:
        self._reusable = False
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self.close()

    # -- lifecycle ---------------------------------------------------------------------------

    def reusable(self) -> bool:
        return self._reusable and not self.closed and not self._eof and not self._buf

    def finish(self) -> None:
        """The request is over (answered): keep the connection if it can serve another."""
        self._waiter = None
        if self.reusable():
            self.pool._idle_again(self)
        else:
            self.close()

    def close(self, *, abort: bool = False) -> None:
        if self.transport is not None and not self.closed:
            if abort:
                self.transport.abort()
            else:
                self.transport.close()
        self._closed()

    def _closed(self) -> None:
        self.closed = True
        self.pool._gone(self)


class Http1Client:
    """Keep-alive HTTP/1.1 connections shared by every request on one event loop."""

    def __init__(
        self,
        *,
        limit: int = DEFAULT_LIMIT,
        ssl_context: ssl.SSLContext | None = None,
        keepalive_s: float = DEFAULT_KEEPALIVE_S,
    ) -> None:
        self.limit = max(1, limit)
        self.ssl_context = ssl_context or ssl.create_default_context()
        self.keepalive_s = keepalive_s
        self.open = 0
        #: Idle connections per key (the last one the most recently used), and all of them in the
        #: order they became idle (the oldest first), for expiry and for making room.
        self._idle: dict[tuple[str, str, int, str | None], list[_Connection]] = {}
        self._by_age: dict[_Connection, None] = {}
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def idle(self) -> int:
        """Connections kept open for reuse now."""
        return len(self._by_age)

    async def post(
        self,
        scheme: str,
        address: str,
        port: int,
        head: bytes,
        body: bytes,
        *,
        sni: str | None = None,
        connect_timeout: float | None = None,
        header: bytes | None = None,
        read_limit: int,
        keep: int = 0,
    ) -> Answer:
        """Send ``head`` (the request line and headers, ending in a blank line) and ``body`` to
        ``address``; read at most ``read_limit`` bytes of the answer's body and keep the first
        ``keep``. ``header`` (lower case) names the one response header to return."""
        conn = await self._acquire(
            (scheme, address, port, sni if scheme == "https" else None), connect_timeout
        )
        finished = False
        try:
            answer = await conn.request(head + body, header=header, read_limit=read_limit, keep=keep)
            finished = True
        finally:
            if finished:
                conn.finish()
            else:
                conn._waiter = None
                conn.close()  # cancelled or failed mid-request: its state is unknown
        return answer

    async def _acquire(
        self, key: tuple[str, str, int, str | None], connect_timeout: float | None
    ) -> _Connection:
        loop = asyncio.get_running_loop()
        while True:
            idle = self._idle.get(key)
            now = loop.time()
            while idle:
                conn = idle[-1]  # the most recently used: the warmest
                self._unidle(conn)
                if conn.reusable() and now - conn.idle_since < self.keepalive_s:
                    return conn
                conn.close()
                idle = self._idle.get(key)
            if self.open < self.limit:
                return await self._connect(key, connect_timeout)
            if not self._close_oldest_idle():
                waiter = loop.create_future()
                self._waiters.append(waiter)
                try:
                    await waiter
                except BaseException:
                    if waiter in self._waiters:
                        self._waiters.remove(waiter)
                    elif waiter.done() and not waiter.cancelled():
                        self._wake()  # pass the wake-up on
                    raise

    async def _connect(
        self, key: tuple[str, str, int, str | None], connect_timeout: float | None
    ) -> _Connection:
        scheme, address, port, sni = key
        loop = asyncio.get_running_loop()
        conn = _Connection(self, key)
        self.open += 1
        try:
            async with asyncio.timeout(connect_timeout):
                if scheme == "https":
                    await loop.create_connection(
                        lambda: conn, address, port, ssl=self.ssl_context, server_hostname=sni or address
                    )
                else:
                    await loop.create_connection(lambda: conn, address, port)
        except TimeoutError as exc:
            conn.close()
            raise httpx.ConnectTimeout("connect timeout") from exc
        except ssl.SSLError as exc:  # certificate errors included (also ValueErrors)
            conn.close()
            raise httpx.ConnectError(f"TLS error: {type(exc).__name__}") from exc
        except OSError as exc:
            conn.close()
            raise httpx.ConnectError(type(exc).__name__) from exc
        except BaseException:
            conn.close()
            raise
        return conn

    def _close_oldest_idle(self) -> bool:
        oldest = next(iter(self._by_age), None)
        if oldest is None:
            return False
        oldest.close()
        return True

    def _idle_again(self, conn: _Connection) -> None:
        conn.idle_since = now = asyncio.get_running_loop().time()
        conn.idle = True
        self._idle.setdefault(conn.key, []).append(conn)
        self._by_age[conn] = None
        # Those idle too long (the oldest, whatever their host) are closed as others come back.
        for old in list(itertools.islice(self._by_age, 8)):
            if now - old.idle_since < self.keepalive_s:
                break
            old.close()
        self._wake()

    def _unidle(self, conn: _Connection) -> None:
        if not conn.idle:
            return
        conn.idle = False
        del self._by_age[conn]
        conns = self._idle[conn.key]
        if conns[-1] is conn:
            conns.pop()
        else:
            conns.remove(conn)
        if not conns:
            del self._idle[conn.key]

    def _gone(self, conn: _Connection) -> None:
        self._unidle(conn)  # closed by either side while idle: out of the pool
        if conn.counted:
            conn.counted = False
            self.open -= 1
            self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def aclose(self) -> None:
        # abort(), not close(): a TLS transport's close() waits for the peer's close_notify, which
        # a loop about to close (uvloop refuses to close with it pending) may never see.
        for conn in list(self._by_age):
            conn.close(abort=True)
        await asyncio.sleep(0)  # one turn: the transports' connection_lost close the sockets
