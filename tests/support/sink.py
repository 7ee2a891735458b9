"""A loopback HTTP receiver that records requests and answers from a script per path."""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


class Gate:
    """Holds the replies to every request whose path starts with ``prefix`` until :meth:`open`.

    A test closes a gate to make an endpoint slow for as long as it needs, with
    no timing involved: what must not wait behind it is checked while it is shut.
    """

    #: A held request is answered anyway after this long, so a failing test cannot hang the sink.
    MAX_HOLD_S = 120.0

    def __init__(self, prefix: str, cond: threading.Condition) -> None:
        self.prefix = prefix
        self._cond = cond
        self._open = threading.Event()
        #: Requests waiting at the gate now.
        self.waiting = 0

    def open(self) -> None:
        self._open.set()

    def hold(self) -> None:
        with self._cond:
            self.waiting += 1
            self._cond.notify_all()
        self._open.wait(self.MAX_HOLD_S)
        with self._cond:
            self.waiting -= 1


class Sink:
    def __init__(self) -> None:
        self.gates: list[Gate] = []
        self.received: list[Received] = []
        #: Paths in the order requests came in (before any gate or delay), for ordering tests.
        self.arrivals: list[str] = []
        self.scripts: dict[str, deque[Reply]] = defaultdict(deque)
        self.defaults: dict[str, Reply] = {}
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("content-length", 0))
                body = self.rfile.read(length)
                with sink.lock:
                    sink.arrivals.append(self.path)
                    script = sink.scripts[self.path]
                    reply = script.popleft() if script else sink.defaults.get(self.path, Reply())
                gate = next((g for g in sink.gates if self.path.startswith(g.prefix)), None)
                if gate is not None:
                    gate.hold()
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                with sink.cond:
                    sink.received.append(
                        Received(
                            self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.time()
                        )
                    )
                    sink.cond.notify_all()
                self.send_response(reply.status)
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        class Server(ThreadingHTTPServer):
            # The default backlog of 5 drops bursts of connections and stalls them for seconds.
            request_queue_size = 1024

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> Sink:
        self.thread.start()
        return self

    def stop(self) -> None:
        for gate in self.gates:
            gate.open()
        self.server.shutdown()
        self.server.server_close()

    def gate(self, prefix: str) -> Gate:
        """A closed gate on every path under ``prefix``; ``open()`` it to let the replies go."""
        gate = Gate(prefix, self.cond)
        with self.lock:
            self.gates.append(gate)
        return gate

    def script(self, path: str, *replies: Reply) -> None:
        with self.lock:
            self.scripts[path].extend(replies)

    def on(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]

    def wait_for(self, predicate, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(min(left, 0.1))
            return True
