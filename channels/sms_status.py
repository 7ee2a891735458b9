"""Twilio's side of SMS delivery: error codes, and the signed status callbacks.

The API mounts :func:`verify_status_callback` and :func:`callback_outcome` on
the URL given as ``status_callback_url``: Twilio posts the message's status
there, signed with the account's auth token.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from twilio.request_validator import RequestValidator

from channels.base import Outcome

#: Twilio error codes that no retry can fix, and the permanent reason each one means.
PERMANENT_ERROR_CODES: dict[int, str] = {
    20003: "auth",  # authentication failed
    20404: "rejected",  # resource not found (wrong account SID)
    21211: "invalid_target",  # invalid 'To' number
    21214: "invalid_target",  # 'To' number cannot be reached
    21217: "invalid_target",  # phone number does not appear to be valid
    21401: "invalid_target",  # invalid phone number
    21407: "invalid_target",  # this phone number type does not support SMS
    21408: "invalid_target",  # permission to send to this region is not enabled
    21421: "invalid_target",  # phone number is invalid
    21610: "unsubscribed",  # the recipient replied STOP
    21612: "invalid_target",  # cannot route to this number
    21614: "invalid_target",  # 'To' is not a valid mobile number
    21606: "rejected",  # our 'From' number cannot send SMS
    21659: "rejected",  # 'From' is not a Twilio number
    21617: "rejected",  # body too long
    30003: "invalid_target",  # unreachable destination handset
    30004: "unsubscribed",  # message blocked by the recipient
    30005: "invalid_target",  # unknown destination handset
    30006: "invalid_target",  # landline or unreachable carrier
    30007: "rejected",  # filtered by the carrier as spam
}

#: MessageStatus values that are final.
DELIVERED_STATUSES = frozenset({"delivered", "read"})
FAILED_STATUSES = frozenset({"failed", "undelivered", "canceled"})


def verify_status_callback(url: str, params: Mapping[str, str], signature: str, auth_token: str) -> bool:
    """Whether a status callback really came from Twilio (``X-Twilio-Signature`` over URL and form)."""
    if not signature or not auth_token:
        return False
    try:
        return bool(RequestValidator(auth_token).validate(url, dict(params), signature))
    except Exception:  # noqa: BLE001 - a malformed callback is simply not valid
        return False


def message_state(message_status: str) -> Literal["delivered", "failed"] | None:
    """Twilio's MessageStatus as a final state, or ``None`` while it is still on its way."""
    status = (message_status or "").strip().lower()
    if status in DELIVERED_STATUSES:
        return "delivered"
    if status in FAILED_STATUSES:
        return "failed"
    return None


def callback_outcome(params: Mapping[str, str]) -> Outcome | None:
    """The outcome a (verified) status callback reports, or ``None`` for a non-final status."""
    state = message_state(params.get("MessageStatus", ""))
    if state is None:
        return None
    if state == "delivered":
        return Outcome.delivered()
    raw = params.get("ErrorCode") or ""
    code = int(raw) if raw.isdigit() else None
    if code is not None and code in PERMANENT_ERROR_CODES:
        return Outcome.permanent(PERMANENT_ERROR_CODES[code], f"Twilio {code}")
    return Outcome.permanent("rejected", f"Twilio {code}" if code else "undelivered")
