"""CRDT status store: HLC-stamped LWW registers, add-wins OR-Sets, delta-state replication.

Pure Python plus msgpack; imports nothing else from notifyd.
"""

from __future__ import annotations

from notifyd.store.errors import (
    ClockSkewError,
    CorruptFileError,
    InvalidEventError,
    StoreError,
    StoreLockedError,
    SyncProtocolError,
)
from notifyd.store.events import ApplyResult
from notifyd.store.hlc import HybridClock
from notifyd.store.network import LossyNetwork
from notifyd.store.state import StoreState
from notifyd.store.store import StatusStore
from notifyd.store.sync import Replicator, Transport

__all__ = [
    "ApplyResult",
    "ClockSkewError",
    "CorruptFileError",
    "HybridClock",
    "InvalidEventError",
    "LossyNetwork",
    "Replicator",
    "StatusStore",
    "StoreError",
    "StoreLockedError",
    "StoreState",
    "SyncProtocolError",
    "Transport",
]
