"""The environment of every process a test starts, and of the test itself.

notifyd reads ``NOTIFYD_*`` from the environment and refuses unknown ones, so a variable
left in the developer's shell (or the CI's) must never reach a test: ``cli_env()`` starts
from the environment without any ``NOTIFYD_*`` and adds only what the test names, and the
autouse fixture in tests/conftest.py clears them for in-process settings. The tests' own
knob lives outside the app's prefix: ``TEST_REDIS_URL``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from notifyd.runtime.settings import Settings

PREFIX = "NOTIFYD_"
#: What every test and every process a test starts runs with, unless the test says otherwise.
#: The suite shares one Redis that need not keep an AOF (the machine's usually does not), so
#: it accepts without waiting for an fsync; tests/test_durability.py sets its own policy.
SUITE_DEFAULTS = {"NOTIFYD_DURABILITY": "none"}
#: The repository's root: a child process imports ``notifyd`` and ``tests`` from here.
REPO = Path(__file__).resolve().parents[2]


def scrubbed_environ() -> dict[str, str]:
    """os.environ without any ``NOTIFYD_*`` variable, plus the suite's defaults."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}, **SUITE_DEFAULTS}


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def cli_env(settings: Settings | None = None, **overrides: Any) -> dict[str, str]:
    """The environment for a ``notifyd`` process: nothing inherited under ``NOTIFYD_*``.

    ``settings`` carries over the Redis URL, namespace, data directory, private targets, poll
    timeout and durability of a test's own settings (else :data:`SUITE_DEFAULTS` apply); each
    keyword adds ``NOTIFYD_<NAME>`` (``None`` removes it). Other variables (``PATH``, ``HOME``)
    pass through; ``PYTHONPATH`` gains the repository, so a child can import ``tests.support``.
    """
    env = scrubbed_environ()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    values: dict[str, Any] = {}
    if settings is not None:
        values.update(
            redis_url=settings.redis_url,
            namespace=settings.namespace,
            data_dir=settings.data_dir,
            allow_private_targets=settings.allow_private_targets,
            poll_timeout_ms=settings.poll_timeout_ms,
            durability=settings.durability,
        )
    values.update(overrides)
    for name, value in values.items():
        key = PREFIX + name.upper()
        if value is None:
            env.pop(key, None)
        else:
            env[key] = _value(value)
    return env
