"""Syntax checks for subscriber targets, one function per channel.

These are the checks done when a subscriber is added. The webhook adapter
checks the *resolved* address again at send time (DNS can change).
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import urlsplit

import phonenumbers
from email_validator import EmailNotValidError, validate_email

SLACK_CHANNEL_RE = re.compile(r"^slack:[A-Z0-9][A-Z0-9_-]{1,79}$", re.IGNORECASE)
SLACK_WEBHOOK_HOSTS = ("hooks.slack.com", "hooks.slack-gov.com")


class TargetError(ValueError):
    """A subscriber target that cannot be delivered to."""


def normalize_target(channel: str, target: str, *, allow_private: bool) -> str:
    checker = _CHECKERS.get(channel)
    if checker is None:
        raise TargetError(f"unknown channel {channel!r}")
    return checker(target.strip(), allow_private)


#: A dot-atom local part (RFC 5322) in plain ASCII: the shape of nearly every real address.
_SIMPLE_LOCAL_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")


@lru_cache(maxsize=4096)
def _domain_ok(domain: str, allow_private: bool) -> bool:
    try:
        validate_email(f"probe@{domain}", check_deliverability=False, test_environment=allow_private)
    except EmailNotValidError:
        return False
    return True


def _email(target: str, allow_private: bool) -> str:
    # Imports of a million subscribers share a few thousand domains: check each domain
    # once and the common local-part shape with a regex; anything unusual gets the full check.
    local, _, domain = target.rpartition("@")
    simple = bool(local) and len(local) <= 64 and _SIMPLE_LOCAL_RE.match(local) and domain.isascii()
    if simple and _domain_ok(domain.lower(), allow_private):
        return f"{local}@{domain}".lower()
    try:
        # test_environment accepts reserved names such as example.com / localhost in tests.
        result = validate_email(target, check_deliverability=False, test_environment=allow_private)
    except EmailNotValidError as exc:
        raise TargetError(f"not a valid email address: {exc}") from None
    # Mail systems treat local parts case-insensitively in practice; one inbox, one subscriber.
    return str(result.normalized).lower()


def _sms(target: str, allow_private: bool) -> str:
    if not target.startswith("+"):
        raise TargetError("an SMS target must be an E.164 number such as +14155552671")
    try:
        number = phonenumbers.parse(target, None)
    except phonenumbers.NumberParseException as exc:
        raise TargetError(f"not an E.164 phone number: {exc}") from None
    if not phonenumbers.is_possible_number(number):
        raise TargetError("not a possible phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _url(target: str, allow_private: bool, *, what: str) -> str:
    if len(target) > 2048:
        raise TargetError(f"{what} URL is longer than 2048 characters")
    parts = urlsplit(target)
    allowed = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in allowed:
        raise TargetError(
            f"{what} URL must use https"
            + ("" if allow_private else " (http only when NOTIFYD_ALLOW_PRIVATE_TARGETS is on)")
        )
    if not parts.hostname:
        raise TargetError(f"{what} URL has no host")
    if parts.username or parts.password:
        raise TargetError(f"{what} URL must not carry credentials")
    return target


def _webhook(target: str, allow_private: bool) -> str:
    return _url(target, allow_private, what="webhook")


def _slack(target: str, allow_private: bool) -> str:
    if target.startswith("slack:"):
        if not SLACK_CHANNEL_RE.match(target):
            raise TargetError("a Slack channel target is slack:<channel-id>, such as slack:C0123456789")
        return target
    url = _url(target, allow_private, what="Slack incoming-webhook")
    host = urlsplit(url).hostname or ""
    if not allow_private and host not in SLACK_WEBHOOK_HOSTS:
        raise TargetError(
            "a Slack target is an incoming-webhook URL on hooks.slack.com, or slack:<channel-id>"
        )
    return url


_CHECKERS = {"email": _email, "sms": _sms, "webhook": _webhook, "slack": _slack}
