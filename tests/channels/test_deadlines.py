"""Deadlines kept in ticks: a send past its deadline times out, and only that send."""

from __future__ import annotations

import asyncio

import pytest

from channels.deadlines import Deadlines


def _run(body):
    return asyncio.run(body())


def test_a_send_past_its_deadline_times_out_and_one_within_it_returns():
    async def body():
        deadlines = Deadlines(asyncio.get_running_loop(), tick_s=0.05)
        never = asyncio.get_running_loop().create_future()

        async def slow():
            await never
            return "answered"

        async def quick():
            await asyncio.sleep(0.01)
            return "answered"

        results = await asyncio.gather(
            deadlines.within(0.1, slow()), deadlines.within(0.1, quick()), return_exceptions=True
        )
        assert isinstance(results[0], TimeoutError)
        assert results[1] == "answered"
        assert not deadlines._ticks  # each tick's timer emptied it
        assert not deadlines._expired

    _run(body)


def test_a_deadline_never_fires_early():
    async def body():
        loop = asyncio.get_running_loop()
        deadlines = Deadlines(loop, tick_s=0.05)
        started = loop.time()
        with pytest.raises(TimeoutError):
            await deadlines.within(0.12, asyncio.sleep(10))
        took = loop.time() - started
        assert took >= 0.12

    _run(body)


def test_a_cancel_from_elsewhere_is_a_cancel_not_a_timeout():
    async def body():
        deadlines = Deadlines(asyncio.get_running_loop(), tick_s=0.05)
        task = asyncio.ensure_future(deadlines.within(5, asyncio.sleep(10)))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    _run(body)


def test_many_sends_share_one_timer_per_tick():
    async def body():
        loop = asyncio.get_running_loop()
        deadlines = Deadlines(loop, tick_s=0.05)
        armed = []
        call_at = loop.call_at

        def counting_call_at(when, callback, *args, **kwargs):
            if callback == deadlines._expire:
                armed.append(when)
            return call_at(when, callback, *args, **kwargs)

        loop.call_at = counting_call_at  # type: ignore[method-assign]
        try:
            results = await asyncio.gather(
                *(deadlines.within(0.05, asyncio.sleep(1)) for _ in range(500)), return_exceptions=True
            )
        finally:
            del loop.call_at
        assert all(isinstance(r, TimeoutError) for r in results)
        assert 1 <= len(armed) <= 2  # the 500 deadlines fall in one tick, or straddle two

    _run(body)
