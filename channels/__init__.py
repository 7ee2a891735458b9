"""Channel adapters: email, SMS, Slack and signed webhooks.

This package knows only its own SDKs, never the notifyd pipeline.
"""

from __future__ import annotations

from channels.base import Adapter, Message, Notification, Outcome, OutcomeKind
from channels.registry import UnknownChannelError, build, register

__all__ = [
    "Adapter",
    "Message",
    "Notification",
    "Outcome",
    "OutcomeKind",
    "UnknownChannelError",
    "build",
    "register",
]
