"""Small text helpers the channel renderers share."""

from __future__ import annotations

from channels.base import Notification

#: Impact -> colour, used by the email accent bar and the Slack attachment bar.
IMPACT_COLOURS = {
    "critical": "#d1242f",
    "major": "#e16f24",
    "minor": "#d4a72c",
    "none": "#57606a",
}
RESOLVED_COLOUR = "#1a7f37"


def status_label(status: str) -> str:
    """``major_outage`` -> ``major outage``; incident statuses stay as they are."""
    return status.replace("_", " ")


def impact_colour(notification: Notification) -> str:
    if notification.status in ("resolved", "operational", "postmortem"):
        return RESOLVED_COLOUR
    return IMPACT_COLOURS.get(notification.impact, IMPACT_COLOURS["none"])


def one_line(text: str) -> str:
    """Collapse every run of whitespace (newlines included) into one space: header-safe text."""
    return " ".join(text.split())
