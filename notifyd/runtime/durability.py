"""What "accepted" waits for (``NOTIFYD_DURABILITY``), checked at start-up and after every publish.

- ``fsync`` (default): the event is in Redis' append-only file, fsynced. ``WAITAOF 1 0 <timeout>``
  must answer at least one local fsync. A server without WAITAOF (Redis before 7.2) meets it only
  with ``appendfsync always``, where Redis fsyncs before it answers.
- ``replica``: ``fsync``, and at least one replica has the write (``WAIT 1 <timeout>``).
- ``none``: Redis' answer is enough; a crash of Redis may lose the last second of events.

The waits run in the same pipeline (one connection, one round trip) as the publish script,
because WAITAOF and WAIT wait for the *connection's* last write. An answer that falls short, or a
server that refuses the command (AOF turned off, the command renamed), refuses the publish with
:class:`NotDurable`: never a silent downgrade. :meth:`DurabilityPolicy.check` runs at start-up
(``notifyd serve``, ``worker``, ``dev``) and in ``/readyz``, and says in one line why a server
cannot meet the policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import redis
from prometheus_client import Counter, Gauge

MODES: tuple[str, ...] = ("fsync", "replica", "none")
Mode = Literal["fsync", "replica", "none"]
#: What a refused publish left in Redis: nothing, the event (queued, so it will be delivered, but
#: not confirmed durable), or no way to know (the connection broke while the script ran).
Written = Literal["nothing", "event", "unknown"]

POLICY = Gauge("notifyd_durability_policy", "The durability policy in force (1 for the policy)", ["policy"])
NOT_DURABLE = Counter(
    "notifyd_publish_not_durable_total",
    "Publishes refused because Redis did not confirm them durable as the policy asks",
    ["policy", "reason"],
)


class DurabilityUnavailable(Exception):
    """This Redis cannot meet the policy; the message is one line saying why and what to change."""


class NotDurable(Exception):
    """A publish that the policy refuses. ``written`` says what Redis kept (see :data:`Written`)."""

    def __init__(self, message: str, *, written: Written, event_id: str = "") -> None:
        super().__init__(message)
        self.written: Written = written
        self.event_id = event_id


@dataclass(frozen=True, slots=True)
class ServerDurability:
    """What the server can do, read from INFO (and whether it knows WAITAOF)."""

    aof: bool
    appendfsync: str | None  # None when CONFIG GET is refused (managed Redis)
    waitaof: bool
    replicas: int  # online (in sync), not merely connected


class DurabilityPolicy:
    def __init__(self, mode: str, timeout_ms: int) -> None:
        if mode not in MODES:
            raise ValueError(f"durability is one of {', '.join(MODES)}, not {mode!r}")
        self.mode = mode
        self.timeout_ms = timeout_ms
        #: Learned by :meth:`check`; until then WAITAOF is assumed (and a refusal says so).
        self._waitaof = True
        for m in MODES:
            POLICY.labels(m).set(1 if m == mode else 0)

    # -- start-up and readiness ------------------------------------------------------------------

    @staticmethod
    def inspect(client: redis.Redis) -> ServerDurability:
        persistence = client.info("persistence")
        replication = client.info("replication")
        try:
            answer = client.config_get("appendfsync")
            appendfsync: str | None = str(answer.get("appendfsync") or "") or None
        except redis.ResponseError:
            appendfsync = None
        try:
            client.execute_command("WAITAOF", 0, 0, 1)
            waitaof = True
        except redis.ResponseError:
            waitaof = False
        return ServerDurability(
            aof=bool(int(persistence.get("aof_enabled", 0))),
            appendfsync=appendfsync,
            waitaof=waitaof,
            replicas=sum(
                1
                for key, value in replication.items()
                if key.startswith("slave") and isinstance(value, dict) and value.get("state") == "online"
            ),
        )

    def check(self, client: redis.Redis) -> str:
        """How this server meets the policy (one line), or DurabilityUnavailable saying why not."""
        if self.mode == "none":
            return "none: an event is accepted once Redis has it in memory"
        server = self.inspect(client)
        head = f"NOTIFYD_DURABILITY={self.mode}"
        if not server.aof:
            raise DurabilityUnavailable(
                f"{head} needs Redis' append-only file, and this Redis has appendonly off; "
                "turn it on (appendonly yes) or set NOTIFYD_DURABILITY=none"
            )
        if server.appendfsync == "no":
            raise DurabilityUnavailable(
                f"{head} needs Redis to fsync its append-only file, and this Redis has appendfsync no; "
                "set appendfsync everysec or always"
            )
        if server.waitaof:
            how = "WAITAOF confirms each publish fsynced"
        elif server.appendfsync == "always":
            how = "appendfsync always fsyncs each write before Redis answers"
        else:
            raise DurabilityUnavailable(
                f"{head} needs WAITAOF (Redis 7.2 or newer, or Valkey) or appendfsync always; "
                f"this Redis has neither (appendfsync {server.appendfsync or 'unknown'})"
            )
        self._waitaof = server.waitaof
        if self.mode == "replica":
            if server.replicas < 1:
                raise DurabilityUnavailable(
                    f"{head} needs at least one connected replica, and this Redis has none online"
                )
            how += f"; WAIT 1 confirms a replica ({server.replicas} connected)"
        return f"{self.mode}: {how}"

    # -- each publish ------------------------------------------------------------------------------

    def commands(self) -> list[tuple[Any, ...]]:
        """What to run after the publish script, on the same connection."""
        out: list[tuple[Any, ...]] = []
        if self.mode == "none":
            return out
        if self._waitaof:
            out.append(("WAITAOF", 1, 0, self.timeout_ms))
        if self.mode == "replica":
            out.append(("WAIT", 1, self.timeout_ms))
        return out

    def confirm(self, event_id: str, answers: Sequence[Any]) -> None:
        """Raise NotDurable unless every wait in ``answers`` (from :meth:`commands`) was met."""
        for command, answer in zip(self.commands(), answers, strict=True):
            if isinstance(answer, Exception):
                self._refuse(
                    event_id,
                    "refused",
                    f"Redis refused {command[0]} ({str(answer).strip()[:200]}), so it cannot confirm "
                    f"the event durable as NOTIFYD_DURABILITY={self.mode} asks",
                )
            if command[0] == "WAITAOF" and int(answer[0]) < 1:
                self._refuse(
                    event_id,
                    "no_fsync",
                    f"Redis did not confirm the event fsynced within {self.timeout_ms} ms "
                    f"(WAITAOF answered {list(answer)})",
                )
            if command[0] == "WAIT" and int(answer) < 1:
                self._refuse(
                    event_id,
                    "no_replica",
                    f"no replica confirmed the event within {self.timeout_ms} ms (WAIT answered {answer})",
                )

    def _refuse(self, event_id: str, reason: str, message: str) -> None:
        NOT_DURABLE.labels(self.mode, reason).inc()
        raise NotDurable(
            f"{message}. The event is in Redis and queued, so it may still be delivered; "
            "publishing it again with the same event_id is safe",
            written="event",
            event_id=event_id,
        )
