"""Crash safety of the log and the snapshot."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest

from notifyd.store import CorruptFileError, StatusStore, StoreError
from notifyd.store.store import LOG_FILE, SNAPSHOT_FILE
from tests.support.events import component_event, incident_event

from ._support import FakeClock


def _fill(path: Path, clock: FakeClock, events: int) -> list[object]:
    """Apply ``events`` events; return the exported state after each one."""
    states = []
    with StatusStore.open(path, "region-a", clock=clock, fsync=False) as store:
        for i in range(events):
            if i % 3 == 2:
                store.apply_event(incident_event(event_id=f"i{i}", status="identified", seconds=i))
            else:
                store.apply_event(
                    component_event(
                        event_id=f"e{i}", status=["operational", "major_outage"][i % 2], seconds=i
                    )
                )
            states.append(store.export_state())
    return states


def _record_starts(log: bytes) -> list[int]:
    starts, offset = [], 0
    while offset < len(log):
        starts.append(offset)
        (length,) = struct.unpack_from(">I", log, offset)
        offset += 8 + length
    return starts


def test_truncating_the_log_anywhere_in_its_last_record_loses_at_most_that_record(tmp_path: Path) -> None:
    clock = FakeClock()
    source = tmp_path / "source"
    states = _fill(source, clock, 6)
    log = (source / LOG_FILE).read_bytes()
    last = _record_starts(log)[-1]
    for cut in range(last, len(log) + 1):
        target = tmp_path / f"cut-{cut}"
        shutil.copytree(source, target)
        (target / LOG_FILE).write_bytes(log[:cut])
        with StatusStore.open(target, "region-a", clock=clock, fsync=False) as store:
            expected = states[-1] if cut == len(log) else states[-2]
            assert store.export_state() == expected, f"cut at byte {cut}"
            assert store.loaded_records == (6 if cut == len(log) else 5)
        # The torn tail was cut off, so a new record appends cleanly and survives the next load.
        with StatusStore.open(target, "region-a", clock=clock, fsync=False) as store:
            store.apply_event(
                component_event(event_id="after", status="under_maintenance", seconds=99, component="cdn")
            )
        with StatusStore.open(target, "region-a", clock=clock, fsync=False) as store:
            assert store.seen("acme", "after")
        shutil.rmtree(target)


def test_a_flipped_byte_in_the_last_record_is_detected_by_its_checksum(tmp_path: Path) -> None:
    clock = FakeClock()
    states = _fill(tmp_path / "s", clock, 3)
    log_path = tmp_path / "s" / LOG_FILE
    data = bytearray(log_path.read_bytes())
    data[-2] ^= 0xFF
    log_path.write_bytes(bytes(data))
    with StatusStore.open(tmp_path / "s", "region-a", clock=clock, fsync=False) as store:
        assert store.export_state() == states[-2]


def test_a_snapshot_truncates_the_log_and_reloads_to_the_same_state(tmp_path: Path) -> None:
    clock = FakeClock()
    states = _fill(tmp_path / "s", clock, 5)
    with StatusStore.open(tmp_path / "s", "region-a", clock=clock) as store:
        assert store.snapshot() > 0
    assert (tmp_path / "s" / LOG_FILE).stat().st_size == 0
    with StatusStore.open(tmp_path / "s", "region-a", clock=clock) as store:
        assert store.export_state() == states[-1]
        assert store.loaded_records == 0


def test_a_leftover_temp_snapshot_from_a_crash_is_ignored(tmp_path: Path) -> None:
    clock = FakeClock()
    states = _fill(tmp_path / "s", clock, 2)
    (tmp_path / "s" / (SNAPSHOT_FILE + ".tmp")).write_bytes(b"half-written")
    with StatusStore.open(tmp_path / "s", "region-a", clock=clock) as store:
        assert store.export_state() == states[-1]


def test_a_corrupt_snapshot_raises_a_store_error_naming_the_file(tmp_path: Path) -> None:
    clock = FakeClock()
    _fill(tmp_path / "s", clock, 2)
    with StatusStore.open(tmp_path / "s", "region-a", clock=clock) as store:
        store.snapshot()
    snap = tmp_path / "s" / SNAPSHOT_FILE
    data = bytearray(snap.read_bytes())
    data[-1] ^= 0x01
    snap.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match=str(snap)):
        StatusStore.open(tmp_path / "s", "region-a", clock=clock)
    snap.write_bytes(b"not a snapshot at all")
    with pytest.raises(StoreError, match="bad magic"):
        StatusStore.open(tmp_path / "s", "region-a", clock=clock)


def test_opening_another_nodes_directory_is_refused(tmp_path: Path) -> None:
    clock = FakeClock()
    _fill(tmp_path / "s", clock, 1)
    with StatusStore.open(tmp_path / "s", "region-a", clock=clock) as store:
        store.snapshot()
    with pytest.raises(StoreError, match="belongs to node 'region-a'"):
        StatusStore.open(tmp_path / "s", "region-b", clock=clock)


def test_a_directory_can_be_open_in_only_one_store_at_a_time(tmp_path: Path) -> None:
    with StatusStore.open(tmp_path, "region-a"), pytest.raises(StoreError, match="already open"):
        StatusStore.open(tmp_path, "region-a")


def test_a_closed_store_refuses_writes(tmp_path: Path) -> None:
    store = StatusStore.open(tmp_path, "region-a")
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.apply_event(component_event(event_id="e1", status="operational", seconds=0))
