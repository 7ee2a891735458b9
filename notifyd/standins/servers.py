"""Real loopback stand-ins for SMTP, Twilio, Slack and webhook receivers.

Tests and ``make demo`` aim the real adapters (and the real SDKs inside
them) at these instead of the internet. Each one listens on 127.0.0.1 on a
free port in a background thread: ``start()`` returns it, ``url``/``port``
say where it is, ``received`` records what arrived, ``fail_next(...)``
scripts the next replies, and ``stop()`` shuts it down. Nothing here
imports pytest.
"""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import json
import secrets
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

__all__ = ["HTTPReceiver", "Reply", "SMTPSink", "SlackServer", "TwilioServer"]

T = TypeVar("T")


# ---------------------------------------------------------------- SMTP


@dataclass
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    #: When the message was accepted (epoch seconds): tests of a relay's rate count per second.
    at: float = field(default_factory=time.time)

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


class _QuietSession(Session):
    """aiosmtpd sets the deprecated ``login_data`` itself after AUTH and warns about its own use."""

    @property  # type: ignore[override]
    def login_data(self) -> Any:
        return self._login_data

    @login_data.setter
    def login_data(self, value: Any) -> None:
        self._login_data = value


class _SMTP(SMTP):
    def _create_session(self) -> Session:
        return _QuietSession(self.loop)


class SMTPSink:
    """An aiosmtpd server that records every message; optionally STARTTLS, implicit TLS and AUTH.

    ``fail_next("rcpt", "450 4.2.0 Mailbox busy")`` makes the next RCPT get
    that reply; stages are ``mail``, ``rcpt`` and ``data``. Addresses in
    ``bad_mailboxes`` always get ``550 5.1.1``.
    """

    def __init__(
        self,
        *,
        tls_context: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
        require_starttls: bool = False,
        credentials: dict[str, str] | None = None,
    ) -> None:
        self.tls_context = tls_context
        self.implicit_tls = implicit_tls
        self.require_starttls = require_starttls
        self.credentials = credentials
        self.received: list[ReceivedMail] = []
        self.bad_mailboxes: set[str] = set()
        #: TCP connections accepted so far (to verify connection reuse).
        self.connections = 0
        self.logins: list[str] = []
        self._protocols: list[SMTP] = []
        self._scripts: dict[str, deque[str]] = {"mail": deque(), "rcpt": deque(), "data": deque()}
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.host = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    def fail_next(self, stage: str, reply: str, times: int = 1) -> None:
        with self._lock:
            self._scripts[stage].extend([reply] * times)

    def _scripted(self, stage: str) -> str | None:
        with self._lock:
            script = self._scripts[stage]
            return script.popleft() if script else None

    # aiosmtpd handler hooks -------------------------------------------------
    async def handle_MAIL(  # noqa: N802 - aiosmtpd's hook names
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = self._scripted("mail")
        if reply:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = self._scripted("rcpt")
        if reply:
            return reply
        if address.lower() in self.bad_mailboxes:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        reply = self._scripted("data")
        if reply:
            return reply
        content = envelope.original_content or b""
        with self._cond:
            self.received.append(ReceivedMail(envelope.mail_from or "", list(envelope.rcpt_tos), content))
            self._cond.notify_all()
        return "250 2.0.0 Message accepted"

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if isinstance(data, LoginPassword) and self.credentials is not None:
            user, password = data.login.decode(), data.password.decode()
            if self.credentials.get(user) == password:
                self.logins.append(user)
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    # lifecycle --------------------------------------------------------------
    def _protocol(self) -> SMTP:
        with self._lock:
            self.connections += 1
        protocol = _SMTP(
            self,
            hostname="loopback.smtp",  # avoids socket.getfqdn(), which can block on DNS
            tls_context=None if self.implicit_tls else self.tls_context,
            require_starttls=self.require_starttls,
            authenticator=self._authenticate if self.credentials is not None else None,
            # With credentials, mail needs AUTH first (over STARTTLS; aiosmtpd warns otherwise).
            auth_required=self.credentials is not None and not self.implicit_tls,
            auth_require_tls=not self.implicit_tls and self.tls_context is not None,
            loop=self._loop,
        )
        self._protocols.append(protocol)
        return protocol

    def drop_connections(self) -> None:
        """Close every open client connection from the server side, as an idle timeout would."""
        loop = self._loop
        if loop is None:
            return
        done = threading.Event()

        def close_all() -> None:
            for protocol in self._protocols:
                if protocol.transport is not None:
                    protocol.transport.close()
            self._protocols.clear()
            done.set()

        loop.call_soon_threadsafe(close_all)
        done.wait(5)

    def start(self) -> SMTPSink:
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                ssl_ctx = self.tls_context if self.implicit_tls else None
                server = loop.run_until_complete(
                    loop.create_server(self._protocol, self.host, 0, ssl=ssl_ctx)
                )
            except BaseException as exc:  # noqa: BLE001 - reported to start()
                errors.append(exc)
                ready.set()
                loop.close()
                return
            self._server = server
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            try:
                loop.run_forever()
            finally:
                server.close()
                loop.run_until_complete(server.wait_closed())
                pending = asyncio.all_tasks(loop)
                for task in pending:
                    task.cancel()
                if pending:
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.close()

        self._thread = threading.Thread(target=run, name="smtp-sink", daemon=True)
        self._thread.start()
        ready.wait(10)
        if errors:
            raise errors[0]
        return self

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedMail]:
        return _wait_for_count(self._cond, self.received, count, timeout)

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._thread = None


# ---------------------------------------------------------------- HTTP


@dataclass
class Reply:
    """One scripted HTTP reply."""

    status: int = 200
    body: bytes | str | dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))


class _HTTPStandIn:
    """A threaded HTTP/1.1 server on 127.0.0.1: subclasses implement :meth:`answer`."""

    def __init__(self, *, tls_context: ssl.SSLContext | None = None) -> None:
        self.received: list[ReceivedRequest] = []
        self._script: deque[Reply] = deque()
        # Re-entrant: answer() runs under it and subclasses take it again.
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self.tls_context = tls_context
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                request = ReceivedRequest(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                    time.time(),
                )
                reply = standin._reply_for(request)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                payload = reply.body
                if isinstance(payload, dict):
                    payload = json.dumps(payload).encode()
                    reply.headers.setdefault("content-type", "application/json")
                elif isinstance(payload, str):
                    payload = payload.encode()
                payload = payload or b""
                try:
                    self.send_response(reply.status)
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test); nothing to answer

            do_POST = _handle  # noqa: N815 - http.server's naming
            do_GET = _handle  # noqa: N815

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            # The default backlog of 5 drops bursts of connections and stalls them for seconds.
            request_queue_size = 1024

        self._httpd = Server(("127.0.0.1", 0), Handler)
        if tls_context is not None:
            self._httpd.socket = tls_context.wrap_socket(self._httpd.socket, server_side=True)
        # A short poll interval: stop() waits for the next poll, 0.5 s by default.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name=type(self).__name__, daemon=True
        )

    def _reply_for(self, request: ReceivedRequest) -> Reply:
        with self._cond:
            scripted = self._script.popleft() if self._script else None
            reply = scripted or self.answer(request)
            self.received.append(request)
            self._cond.notify_all()
        return reply

    def answer(self, request: ReceivedRequest) -> Reply:
        return Reply(200, b"ok")

    def fail_next(self, reply: Reply, times: int = 1) -> None:
        """Answer the next ``times`` requests with ``reply`` instead of the normal answer."""
        with self._lock:
            self._script.extend(
                Reply(reply.status, reply.body, dict(reply.headers), reply.delay_s) for _ in range(times)
            )

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        scheme = "https" if self.tls_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self) -> Any:
        self._thread.start()
        return self

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedRequest]:
        return _wait_for_count(self._cond, self.received, count, timeout)

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


class HTTPReceiver(_HTTPStandIn):
    """A webhook receiver: per-path replies, and an optional check run on every request.

    ``replies["/gone"] = Reply(410)`` answers that path; ``verify(request)``
    (e.g. a Standard Webhooks check) records its verdict in ``verified``.
    """

    def __init__(
        self,
        *,
        tls_context: ssl.SSLContext | None = None,
        verify: Callable[[ReceivedRequest], bool] | None = None,
    ) -> None:
        super().__init__(tls_context=tls_context)
        self.replies: dict[str, Reply] = {}
        self.verify = verify
        self.verified: list[bool] = []

    def answer(self, request: ReceivedRequest) -> Reply:
        if self.verify is not None:
            self.verified.append(self.verify(request))
        path = urlsplit(request.path).path
        reply = self.replies.get(path)
        if reply is None:
            return Reply(200, b"ok")
        return Reply(reply.status, reply.body, dict(reply.headers), reply.delay_s)


class TwilioServer(_HTTPStandIn):
    """``POST /2010-04-01/Accounts/{sid}/Messages.json`` with Basic auth, answering like Twilio.

    Numbers in ``invalid_numbers`` get that Twilio error code (e.g. 21211)
    in Twilio's error JSON; ``fail_next(TwilioServer.error(429, 20429))``
    scripts replies.
    """

    def __init__(self, account_sid: str | None = None, auth_token: str | None = None) -> None:
        super().__init__()
        self.account_sid = account_sid or "AC" + secrets.token_hex(16)
        self.auth_token = auth_token or secrets.token_hex(16)
        self.invalid_numbers: dict[str, int] = {}
        self._count = 0

    def __repr__(self) -> str:
        return f"TwilioServer(url={self.url!r}, account_sid={self.account_sid!r}, auth_token=***)"

    @staticmethod
    def error(status: int, code: int, message: str = "", headers: dict[str, str] | None = None) -> Reply:
        body = {
            "code": code,
            "message": message or f"Twilio error {code}",
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        }
        return Reply(status, body, dict(headers or {}))

    def inbound(self, url: str, from_: str, body: str, *, to: str = "+15005550006") -> tuple[str, str]:
        """An inbound SMS as Twilio would post it to ``url``: the form body and its X-Twilio-Signature."""
        from urllib.parse import urlencode

        from twilio.request_validator import RequestValidator

        params = {
            "MessageSid": "SM" + secrets.token_hex(16),
            "AccountSid": self.account_sid,
            "From": from_,
            "To": to,
            "Body": body,
            "NumMedia": "0",
        }
        return urlencode(params), RequestValidator(self.auth_token).compute_signature(url, params)

    def answer(self, request: ReceivedRequest) -> Reply:
        expected = "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if request.headers.get("authorization") != expected:
            return self.error(401, 20003, "Authenticate")
        path = urlsplit(request.path).path
        if request.method != "POST" or path != f"/2010-04-01/Accounts/{self.account_sid}/Messages.json":
            return self.error(404, 20404, "The requested resource was not found")
        form = request.form
        to = form.get("To", "")
        if to in self.invalid_numbers:
            code = self.invalid_numbers[to]
            return self.error(400, code, f"The 'To' number {to} cannot receive this message.")
        if not form.get("Body"):
            return self.error(400, 21602, "Message body is required.")
        with self._lock:
            self._count += 1
            sid = f"SM{self._count:032x}"
        now = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
        return Reply(
            201,
            {
                "sid": sid,
                "account_sid": self.account_sid,
                "to": to,
                "from": form.get("From"),
                "body": form.get("Body"),
                "status": "queued",
                "num_segments": "1",
                "num_media": "0",
                "direction": "outbound-api",
                "api_version": "2010-04-01",
                "date_created": now,
                "date_updated": now,
                "date_sent": None,
                "price": None,
                "error_code": None,
                "error_message": None,
                "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
            },
        )


class SlackServer(_HTTPStandIn):
    """Slack's ``chat.postMessage`` (Bearer token) under ``/api/`` and incoming webhooks elsewhere.

    Channel ids in ``missing_channels`` get ``channel_not_found``; webhook
    paths in ``gone_hooks`` get 404 ``no_service``. ``fail_next(
    SlackServer.ratelimited(7))`` scripts a 429 with ``Retry-After``.
    """

    def __init__(self, token: str | None = None) -> None:
        super().__init__()
        self.token = token or "xoxb-loopback-" + secrets.token_hex(8)
        self.missing_channels: set[str] = set()
        self.gone_hooks: set[str] = set()

    def __repr__(self) -> str:
        return f"SlackServer(url={self.url!r}, token=***)"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    @staticmethod
    def ratelimited(retry_after: int, *, webhook: bool = False) -> Reply:
        body: bytes | dict[str, Any] = b"rate_limited" if webhook else {"ok": False, "error": "ratelimited"}
        return Reply(429, body, {"Retry-After": str(retry_after)})

    @staticmethod
    def api_error(error: str, status: int = 200) -> Reply:
        return Reply(status, {"ok": False, "error": error})

    def answer(self, request: ReceivedRequest) -> Reply:
        path = urlsplit(request.path).path
        if path.startswith("/api/"):
            return self._api(path.removeprefix("/api/"), request)
        if path in self.gone_hooks:
            return Reply(404, b"no_service")
        try:
            body = request.json()
        except ValueError:
            return Reply(400, b"invalid_payload")
        if not isinstance(body, dict) or not (
            body.get("text") or body.get("blocks") or body.get("attachments")
        ):
            return Reply(400, b"no_text")
        return Reply(200, b"ok")

    def _api(self, method: str, request: ReceivedRequest) -> Reply:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return self.api_error("invalid_auth")
        if method != "chat.postMessage":
            return self.api_error("unknown_method", 404)
        try:
            body = request.json() if "json" in request.headers.get("content-type", "") else request.form
        except ValueError:
            return self.api_error("invalid_json")
        channel = str(body.get("channel") or "")
        if not channel or channel in self.missing_channels:
            return self.api_error("channel_not_found")
        return Reply(200, {"ok": True, "channel": channel, "ts": f"{time.time():.6f}", "message": {}})


def _wait_for_count(cond: threading.Condition, received: list[T], count: int, timeout: float) -> list[T]:
    """A copy of ``received`` once it holds ``count`` items, or whatever it holds at ``timeout``."""
    deadline = time.monotonic() + timeout
    with cond:
        while len(received) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            cond.wait(left)
        return list(received)
