"""The refusals of subscriber requests: a leaf module, so every subscriber module can raise them."""

from __future__ import annotations


class SubscriberError(ValueError):
    """A subscriber request that cannot be honoured; the message says why."""


class TargetRefused(SubscriberError):
    """A target notifyd must not deliver to: its host is not public. The API answers 422."""


class PageFull(SubscriberError):
    """A page at ``page_max_subscribers`` refuses new subscribers; the API answers 409."""
