"""The webhook adapter's HTTP/1.1 client against a loopback server that answers scripted bytes."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable

import httpx
import pytest

from channels.http1 import Http1Client
from tests.channels.conftest import run

# Each test runs on asyncio's event loop and on uvloop's (the workers' default).
pytestmark = pytest.mark.usefixtures("each_loop")


class Closing(bytes):
    """Bytes the server writes, then closes the connection."""


Answer = bytes | Callable[[], Awaitable[bytes]] | None  # None: close without answering


class Scripted:
    """Answers each request with the next scripted bytes; counts connections and requests."""

    def __init__(self, *answers: Answer) -> None:
        self.answers: deque[Answer] = deque(answers)
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> Scripted:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self._writers:
            writer.close()  # the handlers see the end of their connections and return
        await asyncio.gather(*self._handlers, return_exceptions=True)

    def hang_up(self) -> None:
        """Close every connection from the server's side."""
        for writer in self._writers:
            writer.close()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                self.requests.append(head + await reader.readexactly(length))
                answer = self.answers.popleft()
                if answer is None:
                    break
                writer.write(answer if isinstance(answer, bytes) else await answer())
                await writer.drain()
                if isinstance(answer, Closing):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


def _post(client: Http1Client, port: int, body: bytes = b"{}", **options: object) -> Awaitable[object]:
    head = f"POST /hook HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    values: dict[str, object] = {"read_limit": 4096}
    values.update(options)
    return client.post("http", "127.0.0.1", port, head, body, **values)  # type: ignore[arg-type]


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def test_answers_on_one_keep_alive_connection_reuse_it() -> None:
    async def go() -> tuple[list[int], int]:
        async with Scripted(OK, b"HTTP/1.1 204 No Content\r\n\r\n", OK) as server:
            client = Http1Client()
            statuses = [(await _post(client, server.port)).status for _ in range(3)]  # type: ignore[attr-defined]
            await client.aclose()
            return statuses, server.connections

    statuses, connections = run(go())
    assert statuses == [200, 204, 200] and connections == 1


@pytest.mark.parametrize(
    "first",
    [
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
        # Read only in part: more than arrives before the client has read its limit.
        b"HTTP/1.1 200 OK\r\nContent-Length: 5000000\r\n\r\n" + b"x" * 5_000_000,
    ],
    ids=["connection-close", "http-1.0", "body-past-the-read-limit"],
)
def test_a_connection_whose_answer_ends_it_is_not_reused(first: bytes) -> None:
    async def go() -> tuple[list[int], int]:
        async with Scripted(first, OK) as server:
            client = Http1Client()
            statuses = [(await _post(client, server.port)).status for _ in range(2)]  # type: ignore[attr-defined]
            await client.aclose()
            return statuses, server.connections

    statuses, connections = run(go())
    assert statuses == [200, 200] and connections == 2


def test_a_chunked_body_is_read_across_chunks_and_kept_up_to_keep() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nRetry-After: 5\r\n\r\n"
        b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n"
    )

    async def go() -> tuple[object, object, int]:
        async with Scripted(chunked, OK) as server:
            client = Http1Client()
            first = await _post(client, server.port, header=b"retry-after", keep=9)
            second = await _post(client, server.port)
            await client.aclose()
            return first, second, server.connections

    first, second, connections = run(go())
    assert first.status == 200 and first.body == b"hello, wo" and first.header == "5"  # type: ignore[attr-defined]
    assert second.status == 200 and connections == 1  # type: ignore[attr-defined]


def test_an_informational_head_is_skipped_and_a_body_without_length_is_read_until_the_close() -> None:
    answer = Closing(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\n\r\nall of it")

    async def go() -> tuple[object, object, int]:
        async with Scripted(answer, OK) as server:
            client = Http1Client()
            first = await _post(client, server.port, keep=100)
            second = await _post(client, server.port)  # on a new connection: that one ended
            await client.aclose()
            return first, second, server.connections

    first, second, connections = run(go())
    assert first.status == 201 and first.body == b"all of it"  # type: ignore[attr-defined]
    assert second.status == 200 and connections == 2  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "answer",
    [None, Closing(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort")],
    ids=["no-answer", "short-body"],
)
def test_a_server_that_goes_away_mid_answer_is_a_transport_error(answer: bytes | None) -> None:
    async def go() -> BaseException:
        async with Scripted(answer, None) as server:
            client = Http1Client()
            with pytest.raises(httpx.TransportError) as caught:
                await _post(client, server.port)
            await client.aclose()
            return caught.value

    assert isinstance(run(go()), httpx.TransportError)


def test_a_garbled_answer_is_a_protocol_error_and_the_connection_is_dropped() -> None:
    async def go() -> int:
        async with Scripted(b"SMTP ready\r\n\r\n", OK) as server:
            client = Http1Client()
            with pytest.raises(httpx.RemoteProtocolError):
                await _post(client, server.port)
            assert (await _post(client, server.port)).status == 200  # type: ignore[attr-defined]
            await client.aclose()
            return server.connections

    assert run(go()) == 2


def test_requests_past_the_connection_limit_wait_for_a_connection_to_come_back() -> None:
    async def go() -> tuple[list[int], int]:
        gate = asyncio.Event()

        async def held() -> bytes:
            await gate.wait()
            return OK

        async with Scripted(held, held, OK) as server:
            client = Http1Client(limit=2)
            first = asyncio.ensure_future(_post(client, server.port))
            second = asyncio.ensure_future(_post(client, server.port))
            third = asyncio.ensure_future(_post(client, server.port))
            while len(server.requests) < 2:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.1)
            # Two connections are busy at the gate: the third request has not been sent.
            assert len(server.requests) == 2 and not third.done() and client.open == 2
            gate.set()
            statuses = [r.status for r in await asyncio.gather(first, second, third)]  # type: ignore[attr-defined]
            await client.aclose()
            return statuses, server.connections

    statuses, connections = run(go())
    assert statuses == [200, 200, 200] and connections == 2


def test_a_cancelled_request_closes_its_connection_and_frees_its_place() -> None:
    async def go() -> tuple[int, int]:
        never = asyncio.Event()

        async def hang() -> bytes:
            await never.wait()
            return OK

        async with Scripted(hang, OK) as server:
            client = Http1Client(limit=1)
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.2):
                    await _post(client, server.port)
            status = (await _post(client, server.port)).status  # type: ignore[attr-defined]
            await client.aclose()
            never.set()
            return status, server.connections

    assert run(go()) == (200, 2)


def test_a_connection_the_server_closes_while_idle_leaves_the_pool() -> None:
    async def go() -> tuple[int, int, int, int]:
        async with Scripted(OK, OK) as server:
            client = Http1Client()
            await _post(client, server.port)
            pooled = client.idle  # a length and no "close": kept for the next request
            server.hang_up()  # then the server closes it, with no request on it
            while client.open:
                await asyncio.sleep(0.01)
            kept = client.idle
            status = (await _post(client, server.port)).status  # type: ignore[attr-defined]
            await client.aclose()
            return pooled, kept, status, server.connections

    assert run(go()) == (1, 0, 200, 2)


def test_an_idle_connection_past_the_keep_alive_time_is_not_reused() -> None:
    async def go() -> int:
        async with Scripted(OK, OK) as server:
            client = Http1Client(keepalive_s=0.0)  # every idle connection has expired at once
            for _ in range(2):
                await _post(client, server.port)
            await client.aclose()
            return server.connections

    assert run(go()) == 2


def test_at_the_limit_an_idle_connection_to_another_host_is_closed_to_make_room() -> None:
    async def go() -> tuple[int, int]:
        async with Scripted(OK) as one, Scripted(OK) as other:
            client = Http1Client(limit=1)
            await _post(client, one.port)  # idle now, and the only one allowed
            status = (await _post(client, other.port)).status  # type: ignore[attr-defined]
            await client.aclose()
            return status, client.open

    assert run(go()) == (200, 0)
