"""Syntax checks for subscriber targets, one function per channel.

These are the checks done when a subscriber is added, without DNS: a webhook or
Slack URL whose host is an IP literal in a non-public range, or ``localhost``, is
refused here. :meth:`notifyd.state.subscribers.SubscriberRepo.add` then resolves
host names; the webhook adapter checks the *resolved* address again at send time
(DNS can change).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from phonenumbers.phonemetadata import PhoneMetadata

from channels.addresses import host_refusal

SLACK_CHANNEL_PATTERN = r"^slack:[A-Za-z0-9][A-Za-z0-9_-]{1,79}$"
SLACK_CHANNEL_RE = re.compile(SLACK_CHANNEL_PATTERN)
SLACK_WEBHOOK_HOSTS = ("hooks.slack.com", "hooks.slack-gov.com")
MAX_EMAIL_CHARS = 254
MAX_URL_CHARS = 2048
#: RFC 3986's characters, with every % starting an escape: what the schema's "uri" format allows.
URI_CHARS = re.compile(r"^(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})+$")


#: What every refusal of a non-public target ends with.
PRIVATE_HINT = "non-public targets are refused unless NOTIFYD_ALLOW_PRIVATE_TARGETS is on"


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


def _length_ranges(lengths: list[int]) -> str:
    """``[7, 9, 10]`` as ``[0-9]{7}|[0-9]{9,10}``."""
    runs: list[list[int]] = []
    for n in lengths:
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return "|".join(f"[0-9]{{{a}}}" if a == b else f"[0-9]{{{a},{b}}}" for a, b in runs)


@lru_cache(maxsize=1)
def e164_pattern() -> str:
    """E.164 as a regular expression: ``+``, a country calling code, and a national number of a
    length that country uses (phonenumbers' metadata: the test of ``is_possible_number``).

    One pattern, so that the OpenAPI document and the check below are the same rule.
    """
    by_lengths: dict[str, list[str]] = {}
    for code, regions in sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items()):
        lengths: set[int] = set()
        for region in regions:
            metadata = PhoneMetadata.metadata_for_region_or_calling_code(code, region)
            if metadata is not None and metadata.general_desc is not None:
                lengths.update(n for n in metadata.general_desc.possible_length or () if n > 0)
        if lengths:
            by_lengths.setdefault(_length_ranges(sorted(lengths)), []).append(str(code))
    groups = [f"(?:{'|'.join(codes)})(?:{spec})" for spec, codes in by_lengths.items()]
    return r"^\+(?:" + "|".join(groups) + ")$"


@lru_cache(maxsize=1)
def _e164() -> re.Pattern[str]:
    return re.compile(e164_pattern())


def _sms(target: str, allow_private: bool) -> str:
    if not target.startswith("+"):
        raise TargetError("an SMS target must be an E.164 number such as +14155552671")
    if not _e164().match(target):
        raise TargetError(
            "not a possible E.164 phone number: + then the country code and a national number "
            "of a length that country uses, digits only, such as +14155552671"
        )
    return target


def target_schemas(*, allow_private: bool) -> dict[str, dict[str, Any]]:
    """Each channel's target as JSON Schema, for the OpenAPI document: the checks above, as far
    as a schema can say them (it cannot resolve a webhook's host to see whether it is private)."""
    scheme = "^https?://" if allow_private else "^https://"
    url = {"type": "string", "format": "uri", "pattern": scheme, "maxLength": MAX_URL_CHARS}
    slack_hook = url if allow_private else {**url, "pattern": r"^https://hooks\.slack(-gov)?\.com[/:]"}
    return {
        "email": {
            "type": "string",
            "format": "email",
            "maxLength": MAX_EMAIL_CHARS,
            "description": "An email address",
        },
        "sms": {
            "type": "string",
            "pattern": e164_pattern(),
            "description": "An E.164 phone number (+, country code, national number), such as +14155552671",
        },
        "webhook": {
            **url,
            "description": "An https URL"
            + (" (http too: private targets are allowed here)" if allow_private else ""),
        },
        "slack": {
            "anyOf": [
                {"type": "string", "pattern": SLACK_CHANNEL_PATTERN, "description": "slack:<channel-id>"},
                {**slack_hook, "description": "An incoming-webhook URL"},
            ],
        },
    }


#: The common URL shape, parsed without urlsplit (an import checks a million): scheme, a host
#: name or IPv4 literal (no credentials, no brackets), an optional port, then path/query.
_PLAIN_URL = re.compile(r"([a-z]+)://([A-Za-z0-9.-]+)(?::[0-9]{1,5})?(?:[/?#]|\Z)")
#: URI characters without checking escapes; URI_CHARS is the full rule when a % is present.
_URI_CLASS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")


def url_host(target: str) -> str | None:
    """The lower-cased host of an http(s) URL, or None."""
    plain = _PLAIN_URL.match(target)
    if plain is not None:
        return plain.group(2).lower()
    try:
        return urlsplit(target).hostname
    except ValueError:
        return None


def _url(target: str, allow_private: bool, *, what: str) -> str:
    return _url_and_host(target, allow_private, what=what)[0]


def webhook_url(target: str, *, allow_private: bool) -> tuple[str, str]:
    """A webhook target as ``normalize_target("webhook", ...)`` returns it, and its lower-cased
    host (what :func:`url_host` gives): an import line's URL is parsed once, not twice."""
    return _url_and_host(target.strip(), allow_private, what="webhook")


def _url_and_host(target: str, allow_private: bool, *, what: str) -> tuple[str, str]:
    if len(target) > MAX_URL_CHARS:
        raise TargetError(f"{what} URL is longer than {MAX_URL_CHARS} characters")
    if not _URI_CLASS.fullmatch(target) or ("%" in target and not URI_CHARS.match(target)):
        raise TargetError(
            f"{what} URL may hold only URI characters: percent-encode spaces and non-ASCII (%20, %C3%A9)"
        )
    allowed = ("https", "http") if allow_private else ("https",)
    plain = _PLAIN_URL.match(target)
    if plain is not None:
        scheme, host = plain.group(1), plain.group(2).lower()
    else:
        parts = urlsplit(target)
        scheme, host = parts.scheme, parts.hostname or ""
        if (parts.username or parts.password) and scheme in allowed and host:
            raise TargetError(f"{what} URL must not carry credentials")
    if scheme not in allowed:
        raise TargetError(
            f"{what} URL must use https"
            + ("" if allow_private else " (http only when NOTIFYD_ALLOW_PRIVATE_TARGETS is on)")
        )
    if not host:
        raise TargetError(f"{what} URL has no host")
    if not allow_private:
        refusal = host_refusal(host)
        if refusal is not None:
            raise TargetError(f"{what} URL's host {refusal}: {PRIVATE_HINT}")
    return target, host


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
