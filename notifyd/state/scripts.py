"""Lua scripts kept as package data (``notifyd/lua/*.lua``), registered on a client."""

from __future__ import annotations

from functools import cache
from importlib import resources

import redis
from redis.commands.core import Script


@cache
def source(name: str) -> str:
    return resources.files("notifyd.state").joinpath("lua", f"{name}.lua").read_text()


def register(client: redis.Redis, name: str) -> Script:
    return client.register_script(source(name))
