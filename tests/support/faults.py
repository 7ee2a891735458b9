"""A TCP proxy in front of Redis that drops or stalls connections at chosen points.

Point a runtime's ``redis_url`` at :attr:`FaultProxy.url`. A rule matches a
chunk the client sends (a RESP command, so a key or field name it carries is a
good marker) and then, ``times`` times over:

- ``drop``: closes the connection before the command reaches Redis;
- ``drop_after``: lets Redis run the command, then closes the connection before
  the reply gets back (the client cannot tell whether it ran);
- ``stall``: holds the command for ``seconds`` before passing it on.

``kill_all()`` closes every open connection, as a Redis restart would.
redis-py retries a failed command on a new connection, so a rule that must
surface as an error needs ``times`` above the client's retries.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from dataclasses import dataclass

ACTIONS = ("drop", "drop_after", "stall")


@dataclass
class Rule:
    marker: bytes
    action: str
    times: int
    seconds: float = 0.0
    hits: int = 0


class _Pair:
    def __init__(self, client: socket.socket, server: socket.socket) -> None:
        self.client = client
        self.server = server
        self.closed = False

    def close(self) -> None:
        self.closed = True
        for s in (self.client, self.server):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()


class FaultProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)  # so stop() is noticed
        self.port = self._listener.getsockname()[1]
        self.db = 0
        self._rules: list[Rule] = []
        self._pairs: list[_Pair] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="fault-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/{self.db}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        self.kill_all()
        self._thread.join(timeout=5)

    # -- faults --------------------------------------------------------------------------------

    def on(self, marker: bytes | str, action: str, *, times: int = 1, seconds: float = 0.0) -> Rule:
        if action not in ACTIONS:
            raise ValueError(f"action is one of {ACTIONS}")
        rule = Rule(marker.encode() if isinstance(marker, str) else marker, action, times, seconds)
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def kill_all(self) -> int:
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            pair.close()
        return len(pairs)

    def _match(self, chunk: bytes) -> Rule | None:
        with self._lock:
            for rule in self._rules:
                if rule.hits < rule.times and rule.marker in chunk:
                    rule.hits += 1
                    return rule
        return None

    # -- plumbing ------------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            pair = _Pair(client, server)
            with self._lock:
                self._pairs.append(pair)
            threading.Thread(target=self._pump, args=(pair,), daemon=True).start()

    def _pump(self, pair: _Pair) -> None:
        try:
            while not pair.closed:
                ready, _, _ = select.select([pair.client, pair.server], [], [], 0.5)
                for s in ready:
                    chunk = s.recv(65536)
                    if not chunk:
                        pair.close()
                        return
                    if s is pair.server:
                        pair.client.sendall(chunk)
                        continue
                    rule = self._match(chunk)
                    if rule is None:
                        pair.server.sendall(chunk)
                    elif rule.action == "drop":
                        pair.close()
                        return
                    elif rule.action == "drop_after":
                        pair.server.sendall(chunk)
                        time.sleep(0.05)  # Redis runs it; the reply never reaches the client
                        pair.close()
                        return
                    else:
                        time.sleep(rule.seconds)
                        pair.server.sendall(chunk)
        except (OSError, ValueError):
            pair.close()
        finally:
            with self._lock:
                if pair in self._pairs:
                    self._pairs.remove(pair)
