from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from notifyd.store import ClockSkewError, CorruptFileError
from notifyd.store.hlc import COUNTER_MASK, HybridClock, iso_from_ms, ms_from_datetime, pack, unpack

from ._support import FakeClock


def test_stamps_pack_48_bit_milliseconds_and_a_16_bit_counter() -> None:
    stamp = pack(1_795_914_000_123, 7)
    assert unpack(stamp) == (1_795_914_000_123, 7)
    assert stamp < pack(1_795_914_000_123, 8) < pack(1_795_914_000_124, 0)


def test_stamps_keep_increasing_when_the_wall_clock_steps_back() -> None:
    clock = FakeClock()
    hlc = HybridClock(clock=clock)
    first = hlc.now()
    clock.advance(-30)
    later = [hlc.now() for _ in range(5)]
    assert later == sorted(later)
    assert later[0] > first
    assert unpack(later[0])[0] == unpack(first)[0]


def test_a_full_counter_borrows_the_next_millisecond() -> None:
    clock = FakeClock()
    hlc = HybridClock(clock=clock)
    hlc.observe(pack(int(clock() * 1000), COUNTER_MASK))
    ms, counter = unpack(hlc.now())
    assert (ms, counter) == (int(clock() * 1000) + 1, 0)


def test_receive_rule_moves_past_a_remote_stamp_within_the_offset() -> None:
    clock = FakeClock()
    hlc = HybridClock(clock=clock, max_offset_ms=500)
    now_ms = int(clock() * 1000)
    remote = pack(now_ms + 400, 3)
    assert hlc.update(remote) == pack(now_ms + 400, 4)
    assert hlc.now() > remote


def test_remote_stamp_beyond_the_offset_is_refused_and_the_clock_is_unchanged() -> None:
    clock = FakeClock()
    hlc = HybridClock(clock=clock, max_offset_ms=500)
    before = hlc.now()
    with pytest.raises(ClockSkewError, match="ahead of local physical time"):
        hlc.update(pack(int(clock() * 1000) + 501, 0))
    assert hlc.last == before


def test_a_restart_never_reissues_a_stamp_even_after_the_clock_went_back(tmp_path) -> None:
    clock = FakeClock()
    bound = tmp_path / "hlc.bound"
    first = HybridClock(clock=clock, bound_path=bound)
    issued = [first.now() for _ in range(100)]
    clock.advance(-3600)
    second = HybridClock(clock=clock, bound_path=bound)
    assert second.now() > max(issued)


def test_a_corrupt_clock_file_raises_an_error_naming_the_file(tmp_path) -> None:
    bound = tmp_path / "hlc.bound"
    bound.write_bytes(b"garbage")
    with pytest.raises(CorruptFileError, match=str(bound)):
        HybridClock(clock=FakeClock(), bound_path=bound)


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-28T13:00:00.250Z",
        "2026-11-28T14:00:00.250+01:00",
        datetime(2026, 11, 28, 13, 0, 0, 250_000, tzinfo=UTC),
        datetime(2026, 11, 28, 8, 0, 0, 250_000, tzinfo=timezone(timedelta(hours=-5))),
    ],
)
def test_occurred_at_is_read_from_iso_strings_and_datetimes(value: object) -> None:
    ms = ms_from_datetime(value)  # type: ignore[arg-type]
    assert iso_from_ms(ms) == "2026-11-28T13:00:00.250Z"
