"""The event and subscriber models, exactly as ../shared/CONTRACT.md describes them."""

from __future__ import annotations

import base64
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal
from zoneinfo import available_timezones

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StrictBool,
    StringConstraints,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)

from notifyd.preferences import NO_PREFERENCES, Preferences
from notifyd.targets import TargetError, normalize_target, webhook_url

MAX_EVENT_BYTES = 64 * 1024
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)\Z")

EventId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")]
PageId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]
ObjectId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")]
Text = Annotated[str, StringConstraints(max_length=4000)]


class EventType(StrEnum):
    incident_created = "incident_created"
    incident_updated = "incident_updated"
    incident_resolved = "incident_resolved"
    component_status_changed = "component_status_changed"
    maintenance_scheduled = "maintenance_scheduled"
    maintenance_updated = "maintenance_updated"
    maintenance_started = "maintenance_started"
    maintenance_completed = "maintenance_completed"
    maintenance_cancelled = "maintenance_cancelled"


MAINTENANCE_TYPES = frozenset(t for t in EventType if t.value.startswith("maintenance_"))


class Priority(StrEnum):
    critical = "critical"
    high = "high"
    normal = "normal"
    low = "low"


IncidentStatus = Literal["investigating", "identified", "monitoring", "resolved", "postmortem"]
Impact = Literal["none", "minor", "major", "critical"]
ComponentStatus = Literal[
    "operational", "degraded_performance", "partial_outage", "major_outage", "under_maintenance"
]
Channel = Literal["email", "sms", "slack", "webhook"]

IMPACT_PRIORITY = {"critical": "critical", "major": "high", "minor": "normal", "none": "low"}
COMPONENT_PRIORITY = {
    "major_outage": "critical",
    "partial_outage": "high",
    "degraded_performance": "normal",
    "under_maintenance": "low",
    "operational": "normal",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


EventKind = Literal["incident", "maintenance", "component"]
IncidentPhase = Literal["created", "updated", "resolved"]
ClockTime = Annotated[str, StringConstraints(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]


#: The IANA zones this machine's tz database knows: what ``tz`` accepts, and the schema's enum.
TIME_ZONES: frozenset[str] = frozenset(available_timezones())


class QuietHours(_Strict):
    """Local hours in which notifications wait for the window's end and go out as one digest."""

    tz: Annotated[
        str,
        StringConstraints(min_length=1, max_length=64),
        Field(json_schema_extra={"enum": sorted(TIME_ZONES)}, examples=["Europe/Berlin"]),
    ]
    start: ClockTime
    end: ClockTime
    allow_critical: StrictBool = True

    @field_validator("tz")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if value not in TIME_ZONES:
            raise ValueError(f"{value!r} is not an IANA time zone such as Europe/Berlin")
        return value


class Incident(_Strict):
    id: ObjectId
    title: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    status: IncidentStatus
    impact: Impact = "none"
    message: Text = ""
    components: list[ObjectId] = Field(default_factory=list, max_length=500)


class Component(_Strict):
    id: ObjectId
    name: Annotated[str, StringConstraints(max_length=500)] = ""
    status: ComponentStatus


def _rfc3339(value: Any) -> Any:
    # pydantic's lax datetime also reads numbers (and digit strings) as Unix time, and takes a
    # space for the T; the contract, and the schema's date-time format, say RFC 3339.
    if isinstance(value, datetime) or (isinstance(value, str) and RFC3339.match(value)):
        return value
    raise ValueError("must be an RFC 3339 date-time string, such as 2026-11-28T13:00:00Z")


class Maintenance(_Strict):
    """A planned window: announced, reminded, started and completed (on time when auto_transition)."""

    id: ObjectId
    title: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    message: Text = ""
    starts_at: datetime
    ends_at: datetime
    components: list[ObjectId] = Field(default_factory=list, max_length=500)
    auto_transition: StrictBool = False

    @field_validator("starts_at", "ends_at", mode="before")
    @classmethod
    def _text_or_datetime(cls, value: Any) -> Any:
        return _rfc3339(value)

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("must include a timezone, such as 2026-11-28T13:00:00Z")
        return value


class Event(_Strict):
    event_id: EventId
    type: EventType
    page_id: PageId
    occurred_at: datetime
    priority: Priority | None = None
    dedup_key: Annotated[str, StringConstraints(min_length=1, max_length=255)] | None = None
    # Strict: the contract says boolean, and a lax 0 or "no" meaning false is how an outage goes quiet.
    notify: StrictBool = True
    incident: Incident | None = None
    component: Component | None = None
    maintenance: Maintenance | None = None

    @field_validator("occurred_at", mode="before")
    @classmethod
    def _text_or_datetime(cls, value: Any) -> Any:
        # pydantic's lax datetime also reads numbers (and digit strings) as Unix time, and takes a
        # space for the T; the contract, and the schema's date-time format, say RFC 3339.
        if isinstance(value, datetime) or (isinstance(value, str) and RFC3339.match(value)):
            return value
        raise ValueError("occurred_at must be an RFC 3339 date-time string, such as 2026-11-28T13:00:00Z")

    @field_validator("occurred_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("occurred_at must include a timezone, such as 2026-11-28T13:00:00Z")
        return value

    @model_validator(mode="after")
    def _payload_matches_type(self) -> Event:
        if self.type is EventType.component_status_changed:
            if self.component is None:
                raise ValueError("component_status_changed events carry a 'component' object")
        elif self.type in MAINTENANCE_TYPES:
            if self.maintenance is None:
                raise ValueError(f"{self.type.value} events carry a 'maintenance' object")
        elif self.incident is None:
            raise ValueError(f"{self.type.value} events carry an 'incident' object")
        if self.priority is None:
            if self.maintenance is not None and self.incident is None:
                self.priority = Priority.normal
            elif self.incident is not None:
                self.priority = Priority(IMPACT_PRIORITY[self.incident.impact])
            else:
                assert self.component is not None
                self.priority = Priority(COMPONENT_PRIORITY[self.component.status])
        return self

    @property
    def lane(self) -> str:
        assert self.priority is not None
        return self.priority.value

    def components_touched(self) -> set[str]:
        touched: set[str] = set()
        if self.incident is not None:
            touched.update(self.incident.components)
        if self.component is not None:
            touched.add(self.component.id)
        if self.maintenance is not None:
            touched.update(self.maintenance.components)
        return touched

    def wire(self) -> dict[str, Any]:
        """The JSON-ready form that travels in queue messages and to the status store."""
        return self.model_dump(mode="json", exclude_none=True)


#: whsec_ and standard base64 of at least 9 bytes: what the webhook adapter decodes to sign.
WEBHOOK_SECRET_PATTERN = r"^whsec_(?:[A-Za-z0-9+/]{4}){3,}(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
WEBHOOK_SECRET_RE = re.compile(WEBHOOK_SECRET_PATTERN)


def generate_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


class Subscriber(_Strict):
    id: ObjectId | None = None
    channel: Channel
    target: Annotated[str, StringConstraints(min_length=1, max_length=2048)]
    secret: SecretStr | None = None
    components: list[ObjectId] | None = Field(default=None, max_length=1000)
    contact_email: str | None = None
    #: Kinds of event this subscriber hears; absent means the channel's default.
    event_types: list[EventKind] | None = Field(default=None, min_length=1, max_length=3)
    #: Incidents and component changes below this impact are filtered out.
    min_impact: Impact | None = None
    #: Incident phases this subscriber hears; absent means the channel's default.
    incident_phases: list[IncidentPhase] | None = Field(default=None, min_length=1, max_length=3)
    quiet_hours: QuietHours | None = None

    @field_validator("target")
    @classmethod
    def _valid_target(cls, value: str, info: ValidationInfo) -> str:
        channel = info.data.get("channel")
        if channel is None:
            return value  # the channel error is reported on its own
        allow_private = bool((info.context or {}).get("allow_private", False))
        try:
            return normalize_target(channel, value, allow_private=allow_private)
        except TargetError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("contact_email")
    @classmethod
    def _valid_contact(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        allow_private = bool((info.context or {}).get("allow_private", False))
        try:
            return normalize_target("email", value, allow_private=allow_private)
        except TargetError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _secret_only_for_webhooks(self) -> Subscriber:
        if self.secret is not None:
            if self.channel != "webhook":
                raise ValueError("'secret' applies to webhook subscribers only")
            raw = self.secret.get_secret_value()
            if not raw.startswith("whsec_") or len(raw) < 16:
                raise ValueError("'secret' must be a whsec_ secret of at least 10 characters")
            if not WEBHOOK_SECRET_RE.match(raw):
                # Never echo it: say only what shape it must have.
                raise ValueError(
                    "'secret' must be whsec_ followed by standard base64 (A-Z a-z 0-9 + /, padded with =): "
                    "the Standard Webhooks format, whose decoded bytes are the signing key"
                )
        if self.contact_email is not None and self.channel not in ("webhook", "slack"):
            raise ValueError("'contact_email' applies to webhook and Slack subscribers only")
        return self

    @field_serializer("secret", when_used="json")
    def _dump_secret(self, value: SecretStr | None) -> str | None:
        # JSON dumps are for storage; API answers strip the secret explicitly.
        return value.get_secret_value() if value is not None else None

    def public(self, *, reveal_secret: bool = False) -> dict[str, Any]:
        data = self.model_dump(mode="json", exclude_none=True)
        if not reveal_secret:
            data.pop("secret", None)
        return data


@dataclass(slots=True, repr=False)
class SubscriberLine:
    """A subscriber that :class:`Subscriber` accepts, as plain values: what the write path takes.

    An import builds a million of these; building the pydantic model costs more than the rest
    of a line's work, so :func:`quick_line` makes one directly for the common line shapes.
    """

    channel: str
    #: Normalised, as Subscriber's validator returns it.
    target: str
    id: str | None = None
    #: The webhook secret as given, in clear: never shown (see __repr__).
    secret: str | None = None
    components: list[str] | None = None
    contact_email: str | None = None
    prefs: Preferences = NO_PREFERENCES
    #: The URL's host, when the target check already found it (else ``host_of`` parses it).
    host: str | None = None

    def __repr__(self) -> str:
        hidden = "***" if self.secret else None
        return f"SubscriberLine(channel={self.channel!r}, id={self.id!r}, secret={hidden})"


_QUICK_FIELDS = frozenset({"id", "channel", "target", "secret", "components", "contact_email"})
_CHANNELS = frozenset({"email", "sms", "slack", "webhook"})
#: ObjectId: its length and pattern; no whitespace, so the model's stripping changes nothing.
_OBJECT_ID_RE = re.compile(r"[\x21-\x7e]{1,128}")
_MAX_COMPONENTS = 1000
_MAX_TARGET = 2048


def _bare(value: object) -> bool:
    """A non-empty str that starts and ends with printable ASCII: one the model's whitespace
    stripping (Unicode White_Space) and normalize_target's (str.strip) both leave as it is."""
    return type(value) is str and value != "" and "!" <= value[0] <= "~" and "!" <= value[-1] <= "~"


def quick_line(data: dict[str, Any], *, allow_private: bool) -> SubscriberLine | None:
    """The line :class:`Subscriber` would accept, checked without pydantic, or None.

    A fast path for the common line shapes (the contract's fields, strings without padding):
    it proves the same constraints with the same checks (normalize_target, WEBHOOK_SECRET_RE,
    ObjectId's pattern). None means "not proven": the model decides, and words any error, so
    a bad line gets exactly the model's message. tests/test_quick_line.py holds the two equal.
    """
    if not data.keys() <= _QUICK_FIELDS:
        return None  # preferences, unknown fields: the model's job
    channel = data.get("channel")
    target = data.get("target")
    if type(channel) is not str or channel not in _CHANNELS or not _bare(target) or len(target) > _MAX_TARGET:  # type: ignore[arg-type]
        return None
    sub_id = data.get("id")
    if sub_id is not None and (type(sub_id) is not str or not _OBJECT_ID_RE.fullmatch(sub_id)):
        return None
    secret = data.get("secret")
    if secret is not None and (
        channel != "webhook" or not _bare(secret) or not WEBHOOK_SECRET_RE.match(secret)
    ):
        return None
    components = data.get("components")
    if components is not None:
        if type(components) is not list or len(components) > _MAX_COMPONENTS:
            return None
        for component in components:
            if type(component) is not str or not _OBJECT_ID_RE.fullmatch(component):
                return None
    contact = data.get("contact_email")
    try:
        if contact is not None:
            if channel not in ("webhook", "slack") or not _bare(contact):
                return None
            contact = normalize_target("email", contact, allow_private=allow_private)
        if channel == "webhook":
            target, host = webhook_url(target, allow_private=allow_private)  # type: ignore[arg-type]
        else:
            target, host = normalize_target(channel, target, allow_private=allow_private), None  # type: ignore[arg-type]
    except TargetError:
        return None
    return SubscriberLine(channel, target, sub_id, secret, components, contact, host=host)  # type: ignore[arg-type]
