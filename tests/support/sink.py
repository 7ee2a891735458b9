"""The one loopback HTTP sink of the tests: scripted replies, gates, and a copy in another process.

``Sink`` is the stand-ins' webhook receiver (:class:`notifyd.standins.servers.HTTPReceiver`,
whose :class:`Reply` is ``Reply(status, body, headers, delay_s)``) with what tests add:

- ``replies[path]`` answers a path every time, ``script(path, *replies)`` answers its next
  requests, ``fallback`` answers every other path;
- ``gate(prefix)`` holds every request under ``prefix`` until the test opens it: a test shows
  order and progress with no timing involved (what must not wait is checked while it is shut);
- ``arrived`` records each request as it comes in, ``received`` once it has been answered.

``SinkProcess`` runs the same sink in its own process (``python -m tests.support.sink``), so
chaos tests send real HTTP to a receiver that shares nothing with the test or the workers; the
test drives its gates and reads what arrived through control routes under ``/_sink/``.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from notifyd.standins.servers import HTTPReceiver, ReceivedRequest, Reply

__all__ = ["Gate", "ReceivedRequest", "Reply", "Sink", "SinkProcess"]

CONTROL = "/_sink/"


class Gate:
    """Holds every request whose path starts with ``prefix`` until :meth:`open`.

    ``close()`` shuts it again. ``waiting`` counts the requests held now.
    """

    #: A held request is answered anyway after this long, so a failing test cannot hang the sink.
    MAX_HOLD_S = 120.0

    def __init__(self, prefix: str, cond: threading.Condition) -> None:
        self.prefix = prefix
        self._cond = cond
        self._open = threading.Event()
        self.waiting = 0

    def open(self) -> None:
        self._open.set()

    def close(self) -> None:
        self._open.clear()

    def hold(self) -> None:
        with self._cond:
            self.waiting += 1
            self._cond.notify_all()
        try:
            self._open.wait(self.MAX_HOLD_S)
        finally:
            with self._cond:
                self.waiting -= 1
                self._cond.notify_all()


class Sink(HTTPReceiver):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gates: list[Gate] = []
        self.scripts: dict[str, deque[Reply]] = defaultdict(deque)
        #: The answer for a path with neither a script nor an entry in ``replies``.
        self.fallback = Reply(200, b"ok")
        #: Every request, recorded as it arrives (before any gate or delay).
        self.arrived: list[ReceivedRequest] = []

    @property
    def defaults(self) -> dict[str, Reply]:
        """The old name of ``replies`` (tests of branches in flight still use it)."""
        return self.replies

    @property
    def arrivals(self) -> list[str]:
        """The paths of ``arrived``, in the order the requests came in."""
        with self._lock:
            return [r.path for r in self.arrived]

    @property
    def cond(self) -> threading.Condition:
        return self._cond

    @property
    def lock(self) -> threading.RLock:
        return self._lock  # type: ignore[return-value]

    def _reply_for(self, request: ReceivedRequest) -> Reply:
        path = urlsplit(request.path).path
        if path.startswith(CONTROL):
            return self._control(path[len(CONTROL) :], request)
        with self._cond:
            self.arrived.append(request)
            self._cond.notify_all()
            scripted = self.scripts[path].popleft() if self.scripts.get(path) else None
            if self._script:
                scripted = self._script.popleft()
            reply = scripted or self.answer(request)
        gate = next((g for g in self.gates if path.startswith(g.prefix)), None)
        if gate is not None:
            gate.hold()
        if reply.delay_s:
            time.sleep(reply.delay_s)
            reply = replace(reply, delay_s=0.0)
        with self._cond:
            self.received.append(request)
            self._cond.notify_all()
        return reply

    def answer(self, request: ReceivedRequest) -> Reply:
        if self.verify is not None:
            self.verified.append(self.verify(request))
        reply = self.replies.get(urlsplit(request.path).path, self.fallback)
        return replace(reply, headers=dict(reply.headers))

    def stop(self) -> None:
        for gate in self.gates:
            gate.open()
        super().stop()

    def __enter__(self) -> Sink:
        return self.start()  # type: ignore[no-any-return]

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def gate(self, prefix: str) -> Gate:
        """A closed gate on every path under ``prefix``; ``open()`` it to let the replies go."""
        gate = Gate(prefix, self._cond)
        with self._lock:
            self.gates.insert(0, gate)
        return gate

    def script(self, path: str, *replies: Reply) -> None:
        """Answer the next requests to ``path`` with ``replies``, in order."""
        with self._lock:
            self.scripts[path].extend(replies)

    def on(self, path: str) -> list[ReceivedRequest]:
        """The answered requests to exactly ``path``."""
        with self._lock:
            return [r for r in self.received if urlsplit(r.path).path == path]

    def on_prefix(self, prefix: str) -> list[ReceivedRequest]:
        """The answered requests to every path under ``prefix``."""
        with self._lock:
            return [r for r in self.received if urlsplit(r.path).path.startswith(prefix)]

    def wait_for(  # type: ignore[override]
        self, what: int | Callable[[], bool], timeout: float = 10.0
    ) -> Any:
        """Wait until ``what()`` holds (a bool), or until ``what`` requests were answered (a list).

        The predicate runs under the sink's lock: it may read ``received`` and the gates.
        """
        if isinstance(what, int):
            return super().wait_for(what, timeout)
        deadline = time.monotonic() + timeout
        with self._cond:
            while not what():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.1))
            return True

    # -- control routes, for SinkProcess -----------------------------------------------------

    def _control(self, command: str, request: ReceivedRequest) -> Reply:
        args = dict(parse_qsl(urlsplit(request.path).query))
        if command == "gate":
            self.gate(args["prefix"])
        elif command == "open":
            for gate in [g for g in self.gates if g.prefix == args["prefix"]]:
                gate.open()
                self.gates.remove(gate)
        elif command == "fallback":
            self.fallback = Reply(int(args["status"]), b"ok", delay_s=float(args.get("delay_s", 0)))
        elif command == "state":
            with self._lock:
                return Reply(
                    200,
                    {
                        "waiting": sum(g.waiting for g in self.gates),
                        "arrived": [_brief(r) for r in self.arrived],
                        "received": [_brief(r) for r in self.received],
                    },
                )
        else:
            return Reply(404, b"no such control route")
        return Reply(200, {"ok": True})


def _brief(request: ReceivedRequest) -> list[str]:
    return [request.path, request.headers.get("webhook-id", "")]


class SinkProcess:
    """A :class:`Sink` in a process of its own, driven over its control routes.

    ``arrived()`` and ``received()`` give ``(path, webhook-id)`` pairs. The process exits when
    the test's end of its stdin closes, so a crashed test leaves nothing behind.
    """

    def __init__(self) -> None:
        root = Path(__file__).resolve().parents[2]
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.sink"],
            cwd=root,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        self.url = self._process.stdout.readline().strip()
        if not self.url.startswith("http://"):
            self.stop()
            raise RuntimeError(f"the sink process did not start: {self.url!r}")
        self._http = httpx.Client(base_url=self.url + CONTROL, timeout=30)

    def _call(self, command: str, **params: Any) -> Any:
        response = self._http.post(command, params=params)
        response.raise_for_status()
        return response.json()

    def gate(self, prefix: str) -> None:
        """Hold every request under ``prefix`` from now on, until :meth:`open`."""
        self._call("gate", prefix=prefix)

    def open(self, prefix: str) -> None:
        self._call("open", prefix=prefix)

    def answer_all(self, status: int = 200, delay_s: float = 0.0) -> None:
        self._call("fallback", status=status, delay_s=delay_s)

    def state(self) -> dict[str, Any]:
        return dict(self._call("state"))

    def waiting(self) -> int:
        return int(self.state()["waiting"])

    def arrived(self) -> list[tuple[str, str]]:
        return [(p, i) for p, i in self.state()["arrived"]]

    def received(self) -> list[tuple[str, str]]:
        return [(p, i) for p, i in self.state()["received"]]

    def stop(self) -> None:
        if self._process.poll() is None:
            assert self._process.stdin is not None
            self._process.stdin.close()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(10)
        if self._process.stdout is not None:
            self._process.stdout.close()
        if hasattr(self, "_http"):
            self._http.close()

    def __enter__(self) -> SinkProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:  # pragma: no cover - runs in the child process
    sink = Sink().start()
    print(sink.url, flush=True)
    try:
        sys.stdin.read()  # until the parent closes our stdin, or dies
    finally:
        sink.stop()


if __name__ == "__main__":
    main()
