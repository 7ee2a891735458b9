"""How many sends the bulk dispatcher keeps in flight: per host, and for the whole window.

A host is slow only beside the others: when every host answers slowly (500 ms endpoints, or the
loop's own lag slowing every answer down) their caps stay whole, and the window keeps the sends
that the endpoints' own latency needs at the rate achieved, however much the loop lags.
"""

from __future__ import annotations

from channels import registry
from channels.base import Adapter, Message, Outcome
from notifyd.pipeline.adapters import channel_options
from notifyd.pipeline.asyncrunner import AsyncRunner
from notifyd.pipeline.dispatcher import (
    LATENCY_HEADROOM,
    MIN_HOST_SLOTS,
    RANK,
    SLOW_HOST_S,
    Dispatcher,
    _Host,
)
from notifyd.runtime.settings import Settings

NORMAL = RANK["normal"]


def _dispatcher(window: int = 2048, host_concurrency: int = 256) -> Dispatcher:
    return Dispatcher(
        AsyncRunner(),
        adapter_for=lambda channel: None,  # type: ignore[arg-type,return-value]
        recorder=None,  # type: ignore[arg-type]
        window=window,
        reserve=0,
        host_concurrency=host_concurrency,
        yield_to=lambda: False,
    )


def _hosts(d: Dispatcher, latencies: dict[str, float]) -> None:
    d._hosts = {key: _Host(latency=latency) for key, latency in latencies.items()}
    d._measure_latencies(base=False)


def test_one_host_slower_than_the_others_gets_fewer_slots():
    d = _dispatcher()
    _hosts(d, {"a": 0.05, "b": 0.05, "c": 0.06, "slow": 4.0})
    assert d._cap(d._hosts["slow"], NORMAL) < d.host_concurrency
    assert d._cap(d._hosts["slow"], NORMAL) >= MIN_HOST_SLOTS
    assert d._cap(d._hosts["a"], NORMAL) == d.host_concurrency


def test_a_host_that_hangs_keeps_only_the_fewest_slots():
    d = _dispatcher()
    _hosts(d, {"a": 0.05, "b": 0.05, "hung": 1000.0})
    assert d._cap(d._hosts["hung"], NORMAL) == MIN_HOST_SLOTS


def test_one_hang_among_quick_answers_does_not_make_a_host_slow():
    host = _Host()
    for took in [0.1] * 20 + [10.0] + [0.1] * 3 + [10.0]:  # a 1%-hang endpoint's unlucky stretch
        host.observe(took)
        assert host.latency <= SLOW_HOST_S


def test_a_host_that_turns_slow_is_seen_within_a_dozen_answers():
    host = _Host()
    for _ in range(20):
        host.observe(0.1)
    slow_after = None
    for answers in range(1, 50):
        host.observe(5.0)
        if host.latency > SLOW_HOST_S:
            slow_after = answers
            break
    assert slow_after is not None and slow_after <= 12


def test_when_every_host_is_slow_none_loses_slots():
    d = _dispatcher()
    _hosts(d, {f"h{i}": 1.3 + i / 100 for i in range(8)})
    assert all(d._cap(host, NORMAL) == d.host_concurrency for host in d._hosts.values())


def test_the_loop_keeps_the_sends_slow_endpoints_need_however_much_it_lags():
    d = _dispatcher()
    d.base_latency = 0.5  # the endpoints' own latency, measured at the last probes
    d.start_rate, d.waiting = 1000.0, 4000
    assert d._need(lag=0.3) == int(1000 * 0.5 * LATENCY_HEADROOM)
    assert d._need(lag=0.3) <= d.low_window


def test_sends_that_wait_for_the_loop_rather_than_their_endpoints_are_not_kept():
    d = _dispatcher()
    d.base_latency = 0.004  # instant endpoints: the lag is what the sends wait for
    d.start_rate, d.waiting = 2000.0, 4000
    assert d._need(lag=0.2) == 0


def test_nothing_is_kept_without_a_backlog_or_a_measured_rate():
    d = _dispatcher()
    d.base_latency = 0.5
    d.waiting = 100
    assert d._need(lag=0.1) == 0  # no rate yet
    d.start_rate, d.waiting = 1000.0, 0
    assert d._need(lag=0.1) == 0  # nothing waits for a slot


def test_a_wait_for_urgent_work_is_not_taken_for_the_loop_s_lag():
    import asyncio
    import threading
    import time

    urgent_until = [0.0]
    d = _dispatcher()
    d.yield_to = lambda: time.monotonic() < urgent_until[0]
    loop = d.runner.loop
    d._loop = loop
    d.low_limit = 1000
    watching = asyncio.run_coroutine_threadsafe(d._watch_lag(), loop)
    try:
        time.sleep(0.2)  # a few quiet probes
        # An urgent step starts and lasts 0.15 s: shorter than one wait (YIELD_MAX_S), so the
        # probe the wait delayed runs once it is over, and sees a 0.15 s "lag" (> LAG_HIGH_S).
        urgent_until[0] = time.monotonic() + 0.15
        d.yield_now()
        done = threading.Event()
        loop.call_soon_threadsafe(done.set)  # the loop is free again once the wait is over
        assert done.wait(5)
        time.sleep(0.2)  # the probe that the wait delayed has run, and a few more
        assert d._loop_pauses == 1
        assert d.low_limit == 1000  # taken for the loop's lag, the wait shrinks it by a quarter
    finally:
        loop.call_soon_threadsafe(watching.cancel)


class _Limited(Adapter):
    channel = "webhook"

    def __init__(self, concurrency: int | None, slot_concurrency: int | None) -> None:
        self.concurrency = concurrency
        self.slot_concurrency = slot_concurrency

    async def deliver(self, message: Message) -> Outcome:
        return Outcome.delivered()


def test_an_adapter_s_limits_are_held_only_where_they_bind_below_the_dispatcher_s_own():
    d = _dispatcher(window=2048, host_concurrency=256)
    assert d._holds_limits(_Limited(16, None))  # an SMS provider's connections
    assert d._holds_limits(_Limited(4096, 100))  # a host cap below the dispatcher's
    assert not d._holds_limits(_Limited(4096, 4096))
    assert not d._holds_limits(_Limited(None, None))
    # The webhook adapter, as the pipeline builds it: its limits are the window's.
    settings = Settings()
    webhook = registry.build("webhook", channel_options(settings, "webhook"))
    d = _dispatcher(window=settings.dispatch_window, host_concurrency=settings.host_concurrency)
    assert not d._holds_limits(webhook)
