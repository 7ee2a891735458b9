"""The store's one error tree; callers catch :class:`StoreError` and need nothing else."""

from __future__ import annotations

from pathlib import Path


class StoreError(Exception):
    """Base of every error the CRDT store raises."""


class StoreLockedError(StoreError):
    """The store directory is held by another open StatusStore (in this process or another)."""


class CorruptFileError(StoreError):
    """A snapshot or clock file failed its checksum or could not be decoded."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"corrupt store file {self.path}: {reason}")


class ClockSkewError(StoreError):
    """A remote HLC stamp is further ahead of local physical time than the allowed offset."""

    def __init__(self, remote_ms: int, local_ms: int, max_offset_ms: int) -> None:
        self.remote_ms = remote_ms
        self.local_ms = local_ms
        self.max_offset_ms = max_offset_ms
        super().__init__(
            f"remote clock is {remote_ms - local_ms} ms ahead of local physical time "
            f"(allowed: {max_offset_ms} ms); refusing to advance the hybrid clock"
        )


class InvalidEventError(StoreError, ValueError):
    """An event handed to the store lacks a field the store needs."""


class SyncProtocolError(StoreError):
    """A sync payload or ack could not be decoded, or came from a removed member."""
