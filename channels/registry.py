"""Channel name -> adapter factory, like limits' storage scheme registry.

An adapter module registers a factory that builds the adapter from a plain
mapping of options (the pipeline turns its settings into that mapping, so
``channels`` never imports notifyd). Asking for an unknown channel is a
configuration error at start-up, not a surprise at send time.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from channels.base import Adapter

AdapterFactory = Callable[[Mapping[str, Any]], Adapter]

_FACTORIES: dict[str, AdapterFactory] = {}
_BUILTIN_MODULES = {
    "webhook": "channels.webhook",
    "email": "channels.email",
    "sms": "channels.sms",
    "slack": "channels.slack",
}


class UnknownChannelError(LookupError):
    pass


def register(channel: str) -> Callable[[AdapterFactory], AdapterFactory]:
    def decorate(factory: AdapterFactory) -> AdapterFactory:
        _FACTORIES[channel] = factory
        return factory

    return decorate


def override(channel: str, factory: AdapterFactory) -> None:
    """Replace a channel's factory (tests and benchmarks plug in instant sinks)."""
    _FACTORIES[channel] = factory


def factory_for(channel: str) -> AdapterFactory:
    if channel not in _FACTORIES and channel in _BUILTIN_MODULES:
        importlib.import_module(_BUILTIN_MODULES[channel])
    try:
        return _FACTORIES[channel]
    except KeyError:
        known = ", ".join(sorted(set(_FACTORIES) | set(_BUILTIN_MODULES)))
        raise UnknownChannelError(f"no adapter for channel {channel!r} (known: {known})") from None


def build(channel: str, options: Mapping[str, Any]) -> Adapter:
    return factory_for(channel)(options)
