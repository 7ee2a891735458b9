"""A public sign-up, checked: the subscriber fields, the preferences, and what the answer may say."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from notifyd.models import Subscriber, generate_webhook_secret
from notifyd.selfservice.prefs import PersonalPrefs
from notifyd.state.subscribers import describe_validation_error

#: Fields of the subscriber record (notifyd/models.py), delivery preferences included.
SUBSCRIBER_FIELDS = (
    "channel",
    "target",
    "components",
    "secret",
    "contact_email",
    "event_types",
    "min_impact",
    "incident_phases",
    "quiet_hours",
)
#: Self-service's own choices (notifyd/selfservice/prefs.py).
PREF_FIELDS = ("locale", "incident")
#: Fields a sign-up may carry beside those (read by the route, never stored).
ROUTE_FIELDS = ("captcha_token",)
#: The longest CAPTCHA token a sign-up may carry (the OpenAPI document says the same).
CAPTCHA_TOKEN_MAX = 2048


class SignupError(ValueError):
    """The sign-up is not valid; the message names the field."""


@dataclass(frozen=True, slots=True)
class Signup:
    subscriber: dict[str, Any]
    prefs: dict[str, Any]
    #: The webhook secret notifyd made for this sign-up; the requester needs it to verify signatures.
    generated_secret: str | None

    def __repr__(self) -> str:
        return f"Signup(channel={self.subscriber.get('channel')!r})"


def check(data: dict[str, Any], *, allow_private: bool) -> Signup:
    unknown = sorted(set(data) - set(SUBSCRIBER_FIELDS) - set(PREF_FIELDS) - set(ROUTE_FIELDS))
    if unknown:
        raise SignupError(f"{unknown[0]}: not a sign-up field")
    token = data.get("captcha_token")
    if token is not None and not (isinstance(token, str) and len(token) <= CAPTCHA_TOKEN_MAX):
        raise SignupError(f"captcha_token: a string of at most {CAPTCHA_TOKEN_MAX} characters")
    # Only an absent (null) field is left out: an empty string or list is refused as the document
    # says (minLength, minItems), not dropped. The HTML form leaves its blank fields out itself.
    sub_data = {k: data[k] for k in SUBSCRIBER_FIELDS if data.get(k) is not None}
    try:
        sub = Subscriber.model_validate(sub_data, context={"allow_private": allow_private})
        prefs = PersonalPrefs.model_validate(
            {k: data[k] for k in PREF_FIELDS if data.get(k) not in (None, "")}
        )
    except ValidationError as exc:
        raise SignupError(describe_validation_error(exc)) from None
    generated = None
    stored = sub.model_dump(mode="json", exclude_none=True)
    if sub.channel == "webhook" and sub.secret is None:
        generated = stored["secret"] = generate_webhook_secret()
    return Signup(stored, prefs.model_dump(mode="json", exclude_none=True), generated)
