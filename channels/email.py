"""Email over SMTP (aiosmtplib), with pooled connections.

Classification: a 5xx on RCPT is a bad mailbox, permanent ``invalid_target``
(the pipeline disables the subscriber); 535 and other AUTH failures are
permanent ``auth``; any other 5xx is permanent ``rejected``; every 4xx is
transient (greylisting, a full mailbox, a busy server); connection errors and
timeouts are transient and count against the SMTP server's circuit.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import aiosmtplib

from channels._config import from_options
from channels.base import Adapter, Message, Outcome
from channels.circuit import CircuitBreaker
from channels.email_render import build_email, envelope_sender
from channels.registry import register
from channels.smtp_pool import DEFAULT_MAX_IDLE_S, SMTPPool

#: Connections per adapter (per worker process); SMTP servers limit clients per IP, so keep it modest.
DEFAULT_POOL_SIZE = 4


@dataclass(frozen=True, slots=True)
class EmailConfig:
    host: str = "127.0.0.1"
    port: int = 25
    username: str | None = None
    password: str | None = None
    tls: Literal["none", "starttls", "implicit"] = "none"
    sender: str = "status@localhost"
    #: Optional extras (not yet pipeline settings): pool size, per-command timeout,
    #: certificate checks and a CA bundle (tests use a trustme CA).
    pool_size: int = DEFAULT_POOL_SIZE
    timeout_s: float = 30.0
    validate_certs: bool = True
    ca_file: str | None = None
    max_idle_s: float = DEFAULT_MAX_IDLE_S

    def __repr__(self) -> str:
        password = "***" if self.password else None
        return (
            f"EmailConfig(host={self.host!r}, port={self.port}, username={self.username!r}, "
            f"password={password}, tls={self.tls!r}, sender={self.sender!r}, pool_size={self.pool_size})"
        )


class EmailAdapter(Adapter):
    channel = "email"

    def __init__(self, config: EmailConfig | None = None, *, circuit: CircuitBreaker | None = None) -> None:
        self.config = config or EmailConfig()
        if self.config.tls not in ("none", "starttls", "implicit"):
            raise ValueError(f"smtp tls must be none, starttls or implicit, not {self.config.tls!r}")
        self.circuit = circuit or CircuitBreaker()
        self._provider = f"smtp:{self.config.host}:{self.config.port}"
        self._envelope_sender = envelope_sender(self.config.sender)
        self._local_hostname = socket.gethostname() or "notifyd"
        self._tls_context = self._make_tls_context()
        self._pool: SMTPPool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _make_tls_context(self) -> ssl.SSLContext | None:
        if self.config.tls == "none":
            return None
        context = ssl.create_default_context(cafile=self.config.ca_file)
        if not self.config.validate_certs:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _connection(self) -> aiosmtplib.SMTP:
        cfg = self.config
        return aiosmtplib.SMTP(
            hostname=cfg.host,
            port=cfg.port,
            use_tls=cfg.tls == "implicit",
            start_tls=cfg.tls == "starttls",
            validate_certs=cfg.validate_certs,
            tls_context=self._tls_context,
            timeout=cfg.timeout_s,
            # socket.getfqdn() may block on DNS; the host name is enough for EHLO.
            local_hostname=self._local_hostname,
        )

    @property
    def pool(self) -> SMTPPool:
        loop = asyncio.get_running_loop()
        if self._pool is None or self._loop is not loop:
            # Connections belong to the loop that opened them; a new loop starts a new pool.
            cfg = self.config
            credentials = (cfg.username, cfg.password or "") if cfg.username else None
            self._pool = SMTPPool(
                self._connection, size=cfg.pool_size, max_idle_s=cfg.max_idle_s, credentials=credentials
            )
            self._loop = loop
        return self._pool

    async def deliver(self, message: Message) -> Outcome:
        """One mail, on a pooled connection (the pool's size is this adapter's concurrency)."""
        pool = self.pool
        try:
            raw = build_email(message, self.config.sender)
        except (ValueError, TypeError) as exc:
            return Outcome.permanent("invalid_target", type(exc).__name__)
        async with pool.slot():
            blocked = self.circuit.before(self._provider)
            if blocked is not None:
                return blocked
            outcome, host_ok = await self._deliver(pool, message, raw)
            self.circuit.record(self._provider, ok=host_ok)
            return outcome

    async def _deliver(self, pool: SMTPPool, message: Message, raw: bytes) -> tuple[Outcome, bool]:
        """The outcome, and whether the server itself looked healthy (for the circuit)."""
        options = [] if message.target.isascii() else ["SMTPUTF8"]
        for attempt in (1, 2):
            try:
                conn, reused = await pool.acquire()
            except aiosmtplib.SMTPAuthenticationError as exc:
                return Outcome.permanent("auth", f"SMTP {exc.code}"), True
            except aiosmtplib.SMTPResponseException as exc:
                return _classify_response(exc), exc.code != 421
            except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
                return Outcome.transient(f"smtp connection error: {type(exc).__name__}"), False
            try:
                await conn.sendmail(self._envelope_sender, [message.target], raw, mail_options=options)
            except aiosmtplib.SMTPRecipientsRefused as exc:
                pool.release(conn)
                code = exc.recipients[0].code if exc.recipients else 550
                if 500 <= code < 600:
                    return Outcome.permanent("invalid_target", f"SMTP {code} on RCPT"), True
                return Outcome.transient(f"SMTP {code} on RCPT"), True
            except aiosmtplib.SMTPResponseException as exc:
                if exc.code == 421:
                    # 421: the server is closing this connection; another connection may do.
                    await pool.discard(conn)
                    if reused and attempt == 1:
                        continue
                    return Outcome.transient("SMTP 421"), False
                pool.release(conn)
                return _classify_response(exc), True
            except (aiosmtplib.SMTPServerDisconnected, ConnectionError) as exc:
                await pool.discard(conn)
                if reused and attempt == 1:
                    # The server dropped an idle pooled connection; that says nothing about the message.
                    continue
                return Outcome.transient(f"smtp connection error: {type(exc).__name__}"), False
            except (TimeoutError, aiosmtplib.SMTPTimeoutError):
                await pool.discard(conn)
                return Outcome.transient("smtp timeout"), False
            except aiosmtplib.SMTPNotSupported as exc:
                pool.release(conn)
                return Outcome.permanent(
                    "rejected", f"not supported by the server: {type(exc).__name__}"
                ), True
            except ValueError as exc:
                # aiosmtplib refuses an address it cannot send safely before sending anything.
                pool.release(conn)
                return Outcome.permanent("invalid_target", type(exc).__name__), True
            except (aiosmtplib.SMTPException, OSError) as exc:
                await pool.discard(conn)
                return Outcome.transient(f"smtp error: {type(exc).__name__}"), False
            pool.release(conn)
            return Outcome.delivered(), True
        return Outcome.transient("smtp connection error"), False  # pragma: no cover - loop always returns

    async def aclose(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            with contextlib.suppress(Exception):  # closing must not raise
                await pool.aclose()


def _classify_response(exc: aiosmtplib.SMTPResponseException) -> Outcome:
    code = exc.code
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError) or code in (530, 534, 535, 538):
        return Outcome.permanent("auth", f"SMTP {code}")
    if 400 <= code < 500:
        return Outcome.transient(f"SMTP {code}")
    if isinstance(exc, aiosmtplib.SMTPSenderRefused):
        return Outcome.permanent("rejected", f"SMTP {code} on MAIL FROM")
    if 500 <= code < 600:
        return Outcome.permanent("rejected", f"SMTP {code}")
    return Outcome.transient(f"SMTP {code}")


@register("email")
def _factory(options: Mapping[str, Any]) -> Adapter:
    return EmailAdapter(from_options(EmailConfig, options))
