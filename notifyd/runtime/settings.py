"""Typed, frozen settings read once at start-up.

Environment variables (``NOTIFYD_*``) win over the TOML file named by
``NOTIFYD_CONFIG`` (or ``--config``). A bad value stops start-up with a
message that names the key; an unknown key in the file is an error too,
because a typo that passes silently is how an outage starts.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

PRIORITIES: tuple[str, ...] = ("critical", "high", "normal", "low")
#: Lanes with worker threads (``urgent_threads``) and a dispatcher of their own in each process.
URGENT_LANES = frozenset({"critical", "high"})
CHANNELS: tuple[str, ...] = ("email", "sms", "slack", "webhook")

#: Retry schedules in seconds, per channel; each delay gets ±jitter.
DEFAULT_RETRY_SCHEDULES: dict[str, tuple[float, ...]] = {
    "webhook": (30, 60, 120, 240, 480, 960, 1920, 3600),
    "email": (60, 300, 900, 1800, 3600),
    "sms": (30, 120, 600),
    "slack": (30, 60, 300, 900, 1800),
}


#: ``NOTIFYD_*`` variables that are not settings, each named on purpose: a start-up refuses every
#: other ``NOTIFYD_*`` name that is not a field of :class:`Settings`, so a typo cannot pass in silence.
OTHER_VARIABLES: frozenset[str] = frozenset(
    {
        "NOTIFYD_CONFIG",  # the TOML settings file
        "NOTIFYD_API_URL",  # `notifyd publish/status --api`: a running server ...
        "NOTIFYD_API_KEY",  # ... and the key for it
        "NOTIFYD_WORKER_INDEX",  # set by `notifyd worker --processes N` for each child
        # The test suite and CI (tests/conftest.py, tests/api/test_fuzz.py).
        "NOTIFYD_TEST_REDIS_URL",
        "NOTIFYD_SCHEMATHESIS_EXAMPLES",
        # The benchmarks (benchmarks/).
        "NOTIFYD_BENCH_REDIS_URL",
        "NOTIFYD_BENCH_QUICK",
        "NOTIFYD_BENCH_FULL",
        "NOTIFYD_BENCH_MARK_PAGES",
        "NOTIFYD_BENCH_SWITCH_INTERVAL_MS",
    }
)


class ConfigError(Exception):
    """Configuration that notifyd refuses to start with. The message names the key."""


#: Which event loop the workers' runners use (``Settings.event_loop``; notifyd/pipeline/asyncrunner.py).
LoopChoice = Literal["auto", "uvloop", "asyncio"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="NOTIFYD_",
        frozen=True,
        extra="forbid",
        case_sensitive=False,
    )

    redis_url: str | None = None
    data_dir: Path = Path("./var")
    #: The embedded server's maxmemory (a Redis size: "512mb", "2gb"); it never evicts.
    embedded_maxmemory: str = Field(default="1gb", pattern=r"^[0-9]+(?:[kmg]b?)?$")
    namespace: str = Field(default="notifyd", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    api_keys: SecretStr | None = None
    #: Failed authentications (a wrong key) per client address before it gets 429s.
    auth_failure_limit: str = "30/minute"
    allow_private_targets: bool = False
    dedup_window_s: int = Field(default=300, ge=1)
    event_id_ttl_s: int = Field(default=604800, ge=1)
    #: The status store forgets a closed incident (or maintenance) this long after its last
    #: update, keeping a tombstone so that a peer that missed the close cannot bring it back ...
    incident_retention_s: int = Field(default=604800, ge=60)
    #: ... and drops the tombstone this long after that. A peer region cut off for longer must
    #: rejoin with an empty store (see notifyd/store/compaction.py).
    tombstone_retention_s: int = Field(default=1209600, ge=60)
    rate_limit: str = "10/hour"
    #: Events at or above this impact pass the rate limit (as every incident_resolved does).
    digest_bypass_impact: Literal["none", "minor", "major", "critical"] = "critical"
    #: How long before a maintenance starts its reminder goes out (0: no reminder) ...
    maintenance_reminder_s: int = Field(default=3600, ge=0)
    #: ... and per page, as "page=seconds,...": "acme=1800,globex=0".
    maintenance_reminder_pages: str = ""
    #: How often each worker looks for due digests and maintenance reminders.
    schedule_poll_ms: int = Field(default=250, ge=10, le=60000)
    shard_size: int = Field(default=500, ge=1, le=10000)
    #: Shard messages of one event waiting in its lane's queue at once: ingest enqueues this many,
    #: and each shard, as it starts, enqueues the one this many after it, so other events' ingest
    #: and shard messages interleave with a large fan-out instead of queueing behind all of it.
    shard_queue_window: int = Field(default=8, ge=1)
    retry_jitter: float = Field(default=0.5, ge=0.0, le=1.0)
    retry_schedule_webhook: str | None = None
    retry_schedule_email: str | None = None
    retry_schedule_sms: str | None = None
    retry_schedule_slack: str | None = None
    #: How long a broker may go without a heartbeat before its unacked messages are requeued.
    heartbeat_timeout_ms: int = Field(default=15000, ge=1000)
    #: Idle poll of the consumers; dramatiq's 1 s default costs ~390 ms p50 idle latency.
    poll_timeout_ms: int = Field(default=50, ge=10, le=5000)
    #: What "accepted" waits for: ``fsync`` (the AOF on disk), ``replica`` (that, and WAIT 1) or
    #: ``none``; see notifyd/runtime/durability.py. A Redis that cannot meet it is refused at start-up.
    durability: Literal["fsync", "replica", "none"] = "fsync"
    #: How long a publish waits for the fsync (and the replica) before it is refused with a 503.
    durability_timeout_ms: int = Field(default=2000, ge=1, le=60_000)
    node_id: str = Field(default="local", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    #: Peer regions as "node_id=https://their-api,..."; names are the peers' own NOTIFYD_NODE_ID.
    peers: str = ""
    #: A key with the ``sync`` scope on the peers' APIs.
    sync_key: SecretStr | None = None
    sync_interval_ms: int = Field(default=100, ge=10)
    public_url: str = "http://127.0.0.1:8080"
    #: How long subscribe-time DNS may take per host; a name that does not answer is accepted with
    #: a warning (the send-time check still runs).
    subscribe_dns_timeout_s: float = Field(default=1.0, gt=0, le=30)
    #: Lines one import may hold (CLI or API); a longer import stops there with an error.
    import_max_lines: int = Field(default=2_000_000, ge=1)
    #: Live subscribers one page may have; adds past it are refused. 0: no cap.
    page_max_subscribers: int = Field(default=5_000_000, ge=0)
    #: Keys that seal secrets kept in Redis (webhook secrets, link keys): comma-separated, newest
    #: first; the newest seals, all open. Unset (and no file): a key generated in ``data_dir``.
    #: See notifyd/runtime/secret_key.py and the README's security section for rotation.
    secret_key: SecretStr | None = None
    #: ... or a file holding them, one a line, newest first (a mounted secret, say).
    secret_key_file: Path | None = None
    #: The keys that sign unsubscribe, preference and confirmation links, comma-separated, newest
    #: first (at most two: links are accepted for one rotation back). Unset: kept in Redis, sealed.
    unsubscribe_secret: SecretStr | None = None
    #: How long a one-click unsubscribe link keeps working (CAN-SPAM asks for 30 days at least).
    unsubscribe_link_ttl_s: int = Field(default=180 * 86400, ge=30 * 86400)
    #: Self-service: how long an unconfirmed sign-up waits for its confirmation before it expires.
    confirm_ttl_s: int = Field(default=172800, ge=1)
    #: Public sign-ups per client address (POST /v1/pages/{page}/subscribe and the HTML form).
    subscribe_rate: str = "5/minute"
    #: "package.module:callable" taking (token, client_address) and returning True for a human;
    #: unset means no CAPTCHA. See notifyd/selfservice/captcha.py.
    captcha_hook: str | None = None
    #: How long a signed "manage subscription" link stays valid.
    manage_link_ttl_s: int = Field(default=90 * 86400, ge=60)

    webhook_timeout_s: float = Field(default=10.0, gt=0)
    webhook_connect_timeout_s: float = Field(default=3.0, gt=0)
    webhook_concurrency: int = Field(default=64, ge=1)

    #: The per-process dispatchers (notifyd/pipeline/dispatcher.py): sends in flight at once, for
    #: the critical and high lanes' dispatcher ...
    dispatch_window: int = Field(default=4096, ge=1)
    #: ... and for the normal and low lanes' dispatcher, the window less this many.
    dispatch_reserve: int = Field(default=256, ge=0)
    #: Sends in flight to one host (or provider) at once, process-wide; a slow host gets fewer.
    host_concurrency: int = Field(default=256, ge=1)
    #: Worker threads of each process that serve only the critical and high lanes.
    urgent_threads: int = Field(default=4, ge=1)
    #: A step's time slice: it waits this long for its sends, then hands what is left on (durably)
    #: and frees its worker thread for other steps.
    handoff_after_ms: int = Field(default=1000, ge=0)
    #: A worker whose event loop does not answer for this long exits (status 70) so that another
    #: worker takes its messages over; see notifyd/pipeline/asyncrunner.py.
    loop_stall_timeout_ms: int = Field(default=30_000, ge=100, le=240_000)
    #: The workers' event loops: uvloop's where it is installed ("auto", as uvicorn chooses), or
    #: asyncio's own. See notifyd/pipeline/asyncrunner.py.
    event_loop: LoopChoice = "auto"
    #: Outcomes are recorded in batches of this many, or after this long.
    record_batch: int = Field(default=256, ge=1)
    record_flush_ms: int = Field(default=25, ge=1)
    #: Outcomes that call for a retry are held up to this long, so that one retry message carries
    #: those of every step of the event (and attempt) in this process; 0: written as the others.
    retry_gather_ms: int = Field(default=250, ge=0, le=10_000)
    #: Provider send rates, process-wide across workers; sends over the rate wait their turn.
    #: Twilio: messages per second of the sender (or Messaging Service); unset = no shaping.
    twilio_mps: float | None = Field(default=None, gt=0)
    #: The SMTP relay's accepted mails per second; unset = no shaping.
    smtp_rate_per_s: float | None = Field(default=None, gt=0)
    #: Slack: messages per second to one incoming webhook or channel (Slack allows 1).
    slack_rate_per_s: float | None = Field(default=1.0, gt=0)

    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_tls: Literal["none", "starttls", "implicit"] = "none"
    smtp_from: str = "status@localhost"

    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_from: str | None = None
    twilio_base_url: str | None = None

    slack_bot_token: SecretStr | None = None
    slack_base_url: str | None = None

    #: ``text`` (one human line per record) or ``json`` (one JSON object per line, see runtime/logs.py).
    log_format: Literal["text", "json"] = "text"

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("api_keys")
    @classmethod
    def _api_keys_parse(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value().strip():
            from notifyd.api.keystore import parse_env_keys  # it imports this module

            parse_env_keys(value.get_secret_value())  # KeySpecError names the entry, never the key
        return value

    @field_validator("secret_key")
    @classmethod
    def _secret_keys_parse(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value().strip():
            split_keys(value.get_secret_value(), what="key")  # the message never shows a key
        return value

    @field_validator("unsubscribe_secret")
    @classmethod
    def _link_keys_parse(cls, value: SecretStr | None) -> SecretStr | None:
        raw = value.get_secret_value() if value is not None else ""
        if raw.strip() and len(split_keys(raw, what="link key", min_length=1)) > 2:
            raise ValueError("at most two link keys: the one that signs, and the one before it")
        return value

    @model_validator(mode="after")
    def _one_source_of_secret_keys(self) -> Settings:
        if self.secret_key is not None and self.secret_key_file is not None:
            raise ValueError("set NOTIFYD_SECRET_KEY or NOTIFYD_SECRET_KEY_FILE, not both")
        return self

    @field_validator("peers")
    @classmethod
    def _peers_parse(cls, value: str) -> str:
        _parse_peers(value)
        return value

    @field_validator("maintenance_reminder_pages")
    @classmethod
    def _page_seconds_parse(cls, value: str) -> str:
        _parse_page_seconds(value)
        return value

    @field_validator("rate_limit", "auth_failure_limit", "subscribe_rate")
    @classmethod
    def _rate_limit_parses(cls, value: str) -> str:
        from limits import parse

        try:
            parse(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a rate such as '10/hour' or '3/10 seconds'") from exc
        return value

    @field_validator(
        "retry_schedule_webhook", "retry_schedule_email", "retry_schedule_sms", "retry_schedule_slack"
    )
    @classmethod
    def _schedule_parses(cls, value: str | None) -> str | None:
        if value is not None:
            _parse_schedule(value)
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment first: it wins over the TOML values passed as init kwargs.
        return (env_settings, init_settings)

    def retry_schedule(self, channel: str) -> tuple[float, ...]:
        raw = getattr(self, f"retry_schedule_{channel}", None)
        if raw is not None:
            return _parse_schedule(raw)
        return DEFAULT_RETRY_SCHEDULES[channel]

    def bulk_dispatch_window(self) -> int:
        """Sends the normal and low lanes' dispatcher keeps in flight: the window less the reserve."""
        return max(1, self.dispatch_window - self.dispatch_reserve)

    def maintenance_reminder(self, page_id: str) -> int:
        """Seconds before a maintenance on this page starts that its reminder goes out (0: none)."""
        return _parse_page_seconds(self.maintenance_reminder_pages).get(page_id, self.maintenance_reminder_s)

    def peer_urls(self) -> dict[str, str]:
        """Peer regions by node id: the base URL of each one's API."""
        return _parse_peers(self.peers)


#: A secret key shorter than this is refused (it is a password, not a key).
MIN_SECRET_KEY_LENGTH = 32


def split_keys(raw: str, *, what: str = "key", min_length: int = MIN_SECRET_KEY_LENGTH) -> list[str]:
    """Comma- or newline-separated keys, newest first; a short or repeated one is refused by
    its position, never shown."""
    keys = [k.strip() for k in raw.replace("\n", ",").split(",")]
    keys = [k for k in keys if k and not k.startswith("#")]
    if not keys:
        raise ValueError(f"no {what} given")
    for n, key in enumerate(keys, 1):
        if len(key) < min_length:
            raise ValueError(
                f"{what} {n} has fewer than {min_length} characters; generate one with "
                "`notifyd secrets generate-key`"
            )
    if len(set(keys)) != len(keys):
        raise ValueError(f"the same {what} is listed twice")
    return keys


def _parse_peers(raw: str) -> dict[str, str]:
    peers: dict[str, str] = {}
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        name, sep, url = part.partition("=")
        name, url = name.strip(), url.strip().rstrip("/")
        if not sep or not name or not url.startswith(("http://", "https://")):
            raise ValueError(f"{part!r} is not name=http(s)://host[:port]")
        if name in peers:
            raise ValueError(f"peer {name!r} is listed twice")
        peers[name] = url
    return peers


def _parse_page_seconds(raw: str) -> dict[str, int]:
    found: dict[str, int] = {}
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        page, sep, seconds = part.partition("=")
        if not sep or not page.strip() or not seconds.strip().isdigit():
            raise ValueError(f"{part!r} is not page=seconds")
        found[page.strip()] = int(seconds)
    return found


def _parse_schedule(raw: str) -> tuple[float, ...]:
    try:
        delays = tuple(float(part) for part in raw.split(",") if part.strip())
    except ValueError as exc:
        raise ValueError(f"{raw!r} is not a comma-separated list of seconds") from exc
    if any(d < 0 for d in delays):
        raise ValueError("retry delays must not be negative")
    return delays


def _flatten_toml(data: dict[str, Any], path: str) -> dict[str, Any]:
    """Accept both flat keys and one level of tables: ``[smtp] host = ..`` is ``smtp_host``."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            for sub, subvalue in value.items():
                flat[f"{key}_{sub}"] = subvalue
        else:
            flat[key] = value
    known = set(Settings.model_fields)
    unknown = sorted(k for k in flat if k not in known)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s): {', '.join(unknown)}")
    return flat


def known_variables() -> frozenset[str]:
    """Every ``NOTIFYD_*`` name notifyd, its tests or its benchmarks read."""
    return frozenset(f"NOTIFYD_{name.upper()}" for name in Settings.model_fields) | OTHER_VARIABLES


def check_environment(environ: Mapping[str, str] | None = None) -> None:
    """Refuse ``NOTIFYD_*`` variables that nothing reads, suggesting the name that was meant."""
    environ = os.environ if environ is None else environ
    known = known_variables()
    problems = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith("NOTIFYD_") or upper in known:
            continue
        close = difflib.get_close_matches(upper, sorted(known), n=1, cutoff=0.75)
        problems.append(f"{name}" + (f" (did you mean {close[0]}?)" if close else ""))
    if problems:
        raise ConfigError(
            "unknown environment variable"
            + ("s " if len(problems) > 1 else " ")
            + ", ".join(problems)
            + "; config/notifyd.example.toml lists every setting"
        )


def load_settings(config_path: str | os.PathLike[str] | None = None) -> Settings:
    """Read the settings once. Raises ConfigError naming the key that is wrong.

    Unknown ``NOTIFYD_*`` environment variables are refused (:func:`check_environment`), and a
    ``NOTIFYD_REDIS_URL`` that is set must name a server: only an unset one means "embedded".
    """
    check_environment()
    if "NOTIFYD_REDIS_URL" in os.environ and not os.environ["NOTIFYD_REDIS_URL"].strip():
        raise ConfigError(
            "NOTIFYD_REDIS_URL is set but empty; unset it to run the embedded server, or name your Redis"
        )
    path = config_path or os.environ.get("NOTIFYD_CONFIG") or None
    file_values: dict[str, Any] = {}
    if path:
        try:
            with open(path, "rb") as fh:
                file_values = _flatten_toml(tomllib.load(fh), str(path))
        except FileNotFoundError as exc:
            raise ConfigError(f"config file {path} does not exist") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    try:
        return Settings(**file_values)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "settings"
        # Never echo the rejected value: it may be a credential.
        lines.append(f"NOTIFYD_{key.upper()} ({key}): {err['msg']}")
    return "invalid configuration: " + "; ".join(lines)
