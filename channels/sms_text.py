"""SMS text within a segment budget, GSM-7 aware.

A GSM-7 message holds 160 septets in one segment, or 153 per segment once
it is split (the user data header takes the rest); the extension characters
(``^{}\\[~]|€`` and form feed) take two septets. Any character outside
GSM-7 turns the whole message into UCS-2: 70 UTF-16 code units in one
segment, 67 per segment when split (an emoji is two code units).
"""

from __future__ import annotations

from dataclasses import dataclass

from channels._text import one_line, status_label
from channels.base import Notification

#: Segment rules, declared once.
GSM7_SINGLE, GSM7_MULTI = 160, 153
UCS2_SINGLE, UCS2_MULTI = 70, 67
MAX_SEGMENTS = 3
ELLIPSIS = "..."

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")


@dataclass(frozen=True, slots=True)
class Segments:
    encoding: str  # "GSM-7" or "UCS-2"
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2
    count: int


def is_gsm7(text: str) -> bool:
    return all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text)


def segments(text: str) -> Segments:
    if is_gsm7(text):
        units = sum(2 if c in GSM7_EXTENSION else 1 for c in text)
        single, multi, encoding = GSM7_SINGLE, GSM7_MULTI, "GSM-7"
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, multi, encoding = UCS2_SINGLE, UCS2_MULTI, "UCS-2"
    count = 1 if units <= single else -(-units // multi)
    return Segments(encoding, units, count)


def fits(text: str, max_segments: int = MAX_SEGMENTS) -> bool:
    return segments(text).count <= max_segments


def compose(
    notification: Notification, max_segments: int = MAX_SEGMENTS, *, manage_url: str | None = None
) -> str:
    """The SMS body: the whole update when it fits, else a cut one that ends with the status link.

    The "manage subscription" link is added when the message still fits with it.
    """
    body = _compose(notification, max_segments)
    if manage_url:
        extended = f"{body} Manage: {manage_url}"
        if fits(extended, max_segments):
            return extended
    return body


def _compose(notification: Notification, max_segments: int) -> str:
    n = notification
    # A plain hyphen, not an em dash: one non-GSM character would halve the budget.
    head = f"[{n.page_id}] {n.title} - {status_label(n.status)}"
    full = one_line(f"{head}: {n.message}" if n.message else head)
    link = n.link or ""
    if link and fits(f"{full} {link}", max_segments):
        return f"{full} {link}"
    if fits(full, max_segments):
        return full
    tail = f"{ELLIPSIS} {link}" if link else ELLIPSIS
    if not fits(tail, max_segments):
        tail = ELLIPSIS  # an absurdly long link: cut the text alone
    return _cut(full, tail, max_segments)


def _cut(text: str, tail: str, max_segments: int) -> str:
    """The longest prefix of ``text`` (cut at a word when one is near) that fits with ``tail``."""
    lo, hi = 0, len(text)
    while lo < hi:  # binary search on the prefix length; fits() is monotone in it
        mid = (lo + hi + 1) // 2
        if fits(text[:mid].rstrip() + tail, max_segments):
            lo = mid
        else:
            hi = mid - 1
    prefix = text[:lo]
    if 0 < lo < len(text) and not text[lo].isspace():
        space = prefix.rfind(" ")
        if space > lo * 0.75:
            prefix = prefix[:space]
    # Never split a surrogate pair in half.
    if prefix and "\ud800" <= prefix[-1] <= "\udbff":
        prefix = prefix[:-1]
    return prefix.rstrip() + tail
