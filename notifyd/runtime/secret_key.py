"""Where the keys that seal secrets at rest come from (see notifyd/state/sealing.py).

In order: ``NOTIFYD_SECRET_KEY`` (comma-separated, newest first), or the file named by
``NOTIFYD_SECRET_KEY_FILE`` (one key a line, newest first; ``#`` lines are comments), or,
when neither is set, a key generated once in ``<data_dir>/secret-key`` (the directory
0700, the file 0600). The generated key is what lets ``notifyd dev`` and ``make demo`` run
with no configuration; every process that shares one Redis must hold the same keys, so a
deployment whose processes do not share a data directory sets ``NOTIFYD_SECRET_KEY``.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from notifyd.runtime.settings import ConfigError, Settings, split_keys
from notifyd.state.sealing import Keyring, generate_key

#: The generated key's file, under NOTIFYD_DATA_DIR.
GENERATED_KEY_FILE = "secret-key"

log = logging.getLogger("notifyd.secret_key")


def keyring_for(settings: Settings) -> Keyring:
    """The deployment's keyring; raises ConfigError (naming the setting, never a key)."""
    if settings.secret_key is not None and settings.secret_key.get_secret_value().strip():
        return Keyring(split_keys(settings.secret_key.get_secret_value()), source="NOTIFYD_SECRET_KEY")
    if settings.secret_key_file is not None:
        path = settings.secret_key_file
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError(f"NOTIFYD_SECRET_KEY_FILE: cannot read {path}: {exc.strerror}") from None
        try:
            return Keyring(split_keys(text), source=str(path))
        except ValueError as exc:
            raise ConfigError(f"NOTIFYD_SECRET_KEY_FILE ({path}): {exc}") from None
    path = generated_key_path(settings.data_dir)
    return Keyring(_read_or_create(path), source=str(path))


def warn_if_unshared(settings: Settings, keyring: Keyring) -> None:
    """A long-running process (``serve``, ``worker``) on a Redis of its own, with the generated
    key: say that the other processes need that key (one line, at start-up)."""
    if settings.redis_url is not None and keyring.source == str(generated_key_path(settings.data_dir)):
        log.warning(
            "NOTIFYD_SECRET_KEY is unset: secrets are sealed with the key generated in %s; "
            "every process sharing this Redis needs that same key, so set NOTIFYD_SECRET_KEY",
            keyring.source,
        )


def generated_key_path(data_dir: Path) -> Path:
    return (data_dir / GENERATED_KEY_FILE).resolve()


def _read_or_create(path: Path) -> list[str]:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        # Written whole before anyone can read it: a racing process waits below for the line.
        try:
            os.write(fd, (generate_key() + "\n").encode())
        finally:
            os.close(fd)
    for _ in range(100):
        if path.read_text().strip():
            try:
                return split_keys(path.read_text())
            except ValueError as exc:
                raise ConfigError(f"{path}: {exc}") from None
        time.sleep(0.01)
    raise ConfigError(f"{path} holds no key; remove it to have one generated, or set NOTIFYD_SECRET_KEY")
