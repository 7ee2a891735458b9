"""A page's self-service settings: double opt-in per channel, languages and branding.

Stored as one JSON document per page; absent means the defaults below.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

import redis
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints, field_validator

from notifyd.state.keys import Keys

#: Languages with a shipped catalogue (notifyd/i18n/).
LOCALES: tuple[str, ...] = ("en", "de", "fr", "es", "ja")
Locale = Literal["en", "de", "fr", "es", "ja"]
ChannelName = Literal["email", "sms", "slack", "webhook"]


def _all_on() -> dict[ChannelName, bool]:
    return {"email": True, "sms": True, "slack": True, "webhook": True}


def _all_channels() -> list[ChannelName]:
    return ["email", "sms", "slack", "webhook"]


_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}\Z")


class Branding(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, StringConstraints(max_length=200)] | None = None
    logo_url: Annotated[str, StringConstraints(max_length=2048, pattern=r"^https?://")] | None = None
    primary_colour: Annotated[str, StringConstraints(pattern=r"^#[0-9a-fA-F]{6}$")] = "#1f6feb"
    text_colour: Annotated[str, StringConstraints(pattern=r"^#[0-9a-fA-F]{6}$")] = "#1f2328"
    footer: Annotated[str, StringConstraints(max_length=1000)] = ""

    @field_validator("primary_colour", "text_colour")
    @classmethod
    def _hex(cls, value: str) -> str:
        if not _COLOUR.match(value):
            raise ValueError("a colour is #rrggbb")
        return value


class PageConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Channels whose public sign-ups must confirm before they receive anything.
    double_opt_in: dict[ChannelName, StrictBool] = Field(default_factory=_all_on)
    #: Channels the public form and endpoint accept.
    public_channels: list[ChannelName] = Field(default_factory=_all_channels)
    default_locale: Locale = "en"
    branding: Branding = Field(default_factory=Branding)

    def needs_confirmation(self, channel: str) -> bool:
        return self.double_opt_in.get(channel, True)  # type: ignore[call-overload]

    def display_name(self, page_id: str) -> str:
        return self.branding.name or page_id


class PageConfigRepo:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.client = client
        self.keys = keys

    def get(self, page_id: str) -> PageConfig:
        raw = self.client.hget(self.keys.page_selfservice(page_id), "config")
        return PageConfig.model_validate_json(raw) if raw is not None else PageConfig()

    def put(self, page_id: str, config: PageConfig) -> None:
        self.client.hset(self.keys.page_selfservice(page_id), "config", config.model_dump_json())
