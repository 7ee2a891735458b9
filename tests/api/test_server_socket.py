"""The API's listening socket: every connection it accepts answers without Nagle's delay."""

from __future__ import annotations

import asyncio
import socket

from notifyd.api.server import _bind


def test_connections_the_api_accepts_have_tcp_nodelay():
    """asyncio sets TCP_NODELAY only on sockets whose protocol says TCP, and an accepted socket
    inherits the listener's: with the default protocol 0, a keep-alive client waited ~40 ms for
    every answer (the body held behind the headers until its delayed ACK)."""
    listener = _bind("127.0.0.1", 0)

    async def accepted_nodelay() -> int:
        loop = asyncio.get_running_loop()
        made: asyncio.Future[asyncio.BaseTransport] = loop.create_future()

        class Accept(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                made.set_result(transport)

        server = await loop.create_server(Accept, sock=listener)
        try:
            _, writer = await asyncio.open_connection(*listener.getsockname()[:2])
            transport = await asyncio.wait_for(made, 10)
            value = transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            transport.close()
            writer.close()
            await writer.wait_closed()
            return int(value)
        finally:
            server.close()
            await server.wait_closed()

    assert asyncio.run(accepted_nodelay()) != 0
