"""Circuit breakers: a dead host stops costing network time, and a probe brings it back."""

from __future__ import annotations

from channels.base import OutcomeKind
from channels.circuit import CircuitBreaker, CircuitState
from channels.webhook import WebhookAdapter, WebhookConfig
from tests.channels.conftest import message, run
from tests.support.sink import Reply, Sink


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_consecutive_failures_open_the_circuit_and_deliveries_get_the_remaining_time() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=3, open_s=30, clock=clock)
    for _ in range(3):
        assert breaker.before("h") is None
        breaker.record("h", ok=False)
    assert breaker.state("h") is CircuitState.open
    clock.now += 10
    blocked = breaker.before("h")
    assert blocked is not None and blocked.kind is OutcomeKind.transient
    assert blocked.reason == "circuit open" and blocked.retry_after == 20.0


def test_a_success_resets_the_failure_count() -> None:
    breaker = CircuitBreaker(failure_threshold=3, clock=Clock())
    for ok in (False, False, True, False, False):
        breaker.record("h", ok=ok)
    assert breaker.state("h") is CircuitState.closed


def test_after_the_open_period_one_probe_goes_through_and_its_success_closes_the_circuit() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=1, open_s=30, clock=clock)
    breaker.record("h", ok=False)
    clock.now += 31
    assert breaker.state("h") is CircuitState.half_open
    assert breaker.before("h") is None  # the probe
    assert breaker.before("h") is not None  # everyone else waits for it
    breaker.record("h", ok=True)
    assert breaker.state("h") is CircuitState.closed and breaker.before("h") is None


def test_a_failed_probe_opens_the_circuit_again_for_longer() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=1, open_s=30, max_open_s=300, clock=clock)
    breaker.record("h", ok=False)
    clock.now += 31
    assert breaker.before("h") is None
    breaker.record("h", ok=False)
    blocked = breaker.before("h")
    assert blocked is not None and blocked.retry_after == 60.0


def test_circuits_are_per_host() -> None:
    breaker = CircuitBreaker(failure_threshold=1, clock=Clock())
    breaker.record("dead", ok=False)
    assert breaker.before("dead") is not None
    assert breaker.before("alive") is None


def test_a_webhook_host_that_times_out_opens_its_circuit_then_half_opens_and_closes(
    receiver: Sink,
) -> None:
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=3, open_s=30, clock=clock)
    receiver.replies["/hook"] = Reply(200, delay_s=1.0)
    target = f"{receiver.url}/hook"

    async def go() -> tuple[list, list, list]:
        config = WebhookConfig(allow_private_targets=True, concurrency=1, timeout_s=0.2)
        async with WebhookAdapter(config, circuit=breaker) as adapter:
            failing = await adapter.send([message(target, i) for i in range(5)])
            clock.now += 31
            receiver.replies["/hook"] = Reply(200)
            probe = await adapter.send([message(target, 10)])
            after = await adapter.send([message(target, 11)])
            return failing, probe, after

    failing, probe, after = run(go())
    assert [o.reason for o in failing] == ["timeout"] * 3 + ["circuit open"] * 2
    assert probe[0].kind is OutcomeKind.delivered and after[0].kind is OutcomeKind.delivered
    assert len(receiver.wait_for(5)) == 5  # 3 timed out, the probe, one more: none while open


def test_a_host_answering_5xx_keeps_its_circuit_closed(receiver: Sink) -> None:
    receiver.replies["/hook"] = Reply(500)

    async def go() -> list:
        config = WebhookConfig(allow_private_targets=True, concurrency=1)
        async with WebhookAdapter(config, circuit=CircuitBreaker(failure_threshold=2)) as adapter:
            return await adapter.send([message(f"{receiver.url}/hook", i) for i in range(4)])

    assert [o.reason for o in run(go())] == ["HTTP 500"] * 4


def test_not_closed_lists_open_and_half_open_circuits_with_the_time_to_the_next_probe() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=2, open_s=30, clock=clock)
    for key in ("dead", "later"):
        breaker.record(key, ok=False)
        breaker.record(key, ok=False)
    breaker.record("flaky", ok=False)  # one failure: still closed
    clock.now += 10
    assert sorted(breaker.not_closed()) == [
        ("dead", CircuitState.open, 20.0),
        ("later", CircuitState.open, 20.0),
    ]
    clock.now += 25
    assert breaker.not_closed()[0][1:] == (CircuitState.half_open, 0.0)


def test_a_request_that_hung_while_its_host_kept_answering_does_not_count_toward_opening() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=2, clock=clock)
    started = breaker.now()
    clock.now += 1
    breaker.record("h", ok=True)  # the host answered after the slow ones were sent
    clock.now += 10
    for _ in range(5):
        breaker.record("h", ok=False, started=started)  # their timeouts tell nothing new
    assert breaker.state("h") is CircuitState.closed
    for _ in range(2):
        breaker.record("h", ok=False, started=breaker.now())  # sent after the success: they count
    assert breaker.state("h") is CircuitState.open
