"""The CAPTCHA hook of public sign-ups.

notifyd ships no CAPTCHA provider. ``NOTIFYD_CAPTCHA_HOOK = "package.module:callable"``
names a function ``(token: str | None, client_address: str) -> bool`` (a call to
hCaptcha's or Turnstile's siteverify, say) that public sign-ups must pass; the form
then shows a ``captcha_token`` field. Unset, every sign-up passes.
"""

from __future__ import annotations

import importlib
from typing import Protocol

from notifyd.runtime.settings import ConfigError


class CaptchaVerifier(Protocol):
    def __call__(self, token: str | None, client_address: str) -> bool: ...


def load_hook(spec: str | None) -> CaptchaVerifier | None:
    """The configured verifier, or None. A hook that cannot be imported is a start-up error."""
    if not spec:
        return None
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError("NOTIFYD_CAPTCHA_HOOK (captcha_hook): must be 'package.module:callable'")
    try:
        found: CaptchaVerifier = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"NOTIFYD_CAPTCHA_HOOK (captcha_hook): cannot load {spec!r}: {exc}") from None
    if not callable(found):
        raise ConfigError(f"NOTIFYD_CAPTCHA_HOOK (captcha_hook): {spec!r} is not callable")
    return found


def passes(verifier: CaptchaVerifier | None, token: str | None, client_address: str) -> bool:
    if verifier is None:
        return True
    try:
        return bool(verifier(token, client_address))
    except Exception:  # noqa: BLE001 - a broken verifier refuses; it never lets a bot through
        return False
