"""Running the API on uvicorn: ``serve`` (``notifyd serve``) and ``start_in_thread`` (dev, tests)."""

from __future__ import annotations

import logging
import os
import re
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from notifyd.api.app import create_app
from notifyd.api.keystore import SCOPES, Grant, generate_key
from notifyd.runtime.secret_key import warn_if_unshared
from notifyd.runtime.settings import Settings
from notifyd.runtime.wiring import Runtime

#: Query parameters that carry credentials (the dashboard's key, an unsubscribe token).
_SECRET_QUERY = re.compile(r"((?:^|[?&])(?:key|token)=)[^&\s]*", re.IGNORECASE)


class RedactQuery(logging.Filter):
    """Masks credential query parameters in uvicorn's access log lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and len(record.args) >= 3 and isinstance(record.args[2], str):
            args = list(record.args)
            args[2] = _SECRET_QUERY.sub(r"\1***", str(args[2]))
            record.args = tuple(args)
        return True


log = logging.getLogger("notifyd.api.server")


def redact_access_log() -> None:
    """Install RedactQuery on uvicorn's access logger, once per process."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactQuery) for f in access.filters):
        access.addFilter(RedactQuery())


def generated_keys(settings: Settings) -> dict[str, tuple[str, Grant]]:
    """When NOTIFYD_API_KEYS is unset: an operator key (every scope) and a publish-only key,
    both for every page and every lane (the person who started it is the one who holds them)."""
    if settings.api_keys is not None and settings.api_keys.get_secret_value().strip():
        return {}
    return {
        "operator key (all scopes)": (generate_key(), Grant(frozenset(SCOPES), None, "critical")),
        "publish key": (generate_key(), Grant(frozenset({"publish"}), None, "critical")),
    }


#: Where ``notifyd serve`` writes the keys it generated, under NOTIFYD_DATA_DIR.
KEY_FILE = "generated-api-keys"


def write_key_file(data_dir: Path, keys: dict[str, tuple[str, Grant]]) -> Path:
    """Write generated keys to a file only the owner can read, and return its path.

    ``serve`` runs in containers, where stderr is the log: the keys go to this file instead.
    """
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = (data_dir / KEY_FILE).resolve()
    text = "".join(f"{label}: {key}\n" for label, (key, _) in keys.items())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an older file may have had another mode
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    return path


def _announce(url: str, keys: dict[str, tuple[str, Grant]], key_file: Path | None = None) -> None:
    # Printed to the terminal once, for the person who started it; never logged.
    print(f"notifyd api: {url} (docs {url}/docs, dashboard {url}/dashboard)", file=sys.stderr)
    if key_file is not None:
        print(
            f"notifyd api: no NOTIFYD_API_KEYS configured; generated keys are in {key_file} "
            "(readable by this user only). Configure strong keys for production.",
            file=sys.stderr,
        )
    else:
        for label, (key, _) in keys.items():
            print(f"notifyd api: {label}: {key}", file=sys.stderr)
    sys.stderr.flush()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not the default 0: accepted connections inherit it, and asyncio sets
    # TCP_NODELAY only on sockets that say TCP. Without it a keep-alive client waits ~40 ms per
    # answer (Nagle holds the body behind the headers until the client's delayed ACK).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else (f"[{host}]" if ":" in host else host)
    return f"http://{shown}:{port}"


@dataclass
class ApiHandle:
    """A running API; ``stop()`` shuts it down (it leaves the runtime and store to their owner)."""

    url: str
    app: FastAPI
    server: uvicorn.Server
    thread: threading.Thread
    #: Generated keys by label ({label: key}); empty when keys were configured.
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def operator_key(self) -> str | None:
        return next((k for label, k in self.keys.items() if label.startswith("operator")), None)

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)


def start_in_thread(
    runtime: Runtime,
    store: Any | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    announce: bool = True,
    **app_options: Any,
) -> ApiHandle:
    """Serve the API from a background thread; returns once it accepts connections. Port 0 picks one."""
    keys = generated_keys(runtime.settings)
    app = create_app(runtime, store, extra_keys={k: s for k, s in keys.values()}, **app_options)
    sock = _bind(host, port)
    config = uvicorn.Config(
        app, log_config=None, access_log=False, lifespan="off", timeout_graceful_shutdown=5
    )
    # uvicorn logs access lines whenever its logger has handlers (the host app's, say), whatever
    # access_log says; the filter keeps dashboard keys and unsubscribe tokens out of them.
    redact_access_log()
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="notifyd-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError(f"the API did not start on {host}:{port}")
        time.sleep(0.01)
    url = _url(host, sock.getsockname()[1])
    if announce:
        _announce(url, keys)
    return ApiHandle(url, app, server, thread, {label: key for label, (key, _) in keys.items()})


def serve(settings: Settings, *, host: str = "127.0.0.1", port: int = 8080) -> int:
    """``notifyd serve``: the API in the foreground until SIGINT or SIGTERM."""
    from notifyd.runtime.replication import start_replication
    from notifyd.runtime.worker import open_store

    runtime = Runtime.start(settings)
    try:
        log.info("durability %s", runtime.require_durability())
    except BaseException:
        runtime.close()
        raise
    warn_if_unshared(settings, runtime.keyring)
    store = open_store(settings, "api")
    replication = start_replication(settings, runtime.url, store, with_regions=True)
    keys = generated_keys(settings)
    app = create_app(runtime, store, extra_keys={k: s for k, s in keys.values()})
    try:
        sock = _bind(host, port)
        if settings.log_format == "json":
            # uvicorn's own config would write its lines as text: hand them to the root's JSON handler.
            config = uvicorn.Config(app, lifespan="off", timeout_graceful_shutdown=10, log_config=None)
            for name in ("uvicorn.error", "uvicorn.access"):
                logging.getLogger(name).setLevel(logging.INFO)
        else:
            config = uvicorn.Config(app, lifespan="off", timeout_graceful_shutdown=10)
        server = uvicorn.Server(config)
        redact_access_log()  # after Config, which (re)configures uvicorn's loggers
        key_file = write_key_file(settings.data_dir, keys) if keys else None
        _announce(_url(host, sock.getsockname()[1]), keys, key_file)
        server.run(sockets=[sock])
    finally:
        replication.stop()
        store.close()
        runtime.close()
    return 0
