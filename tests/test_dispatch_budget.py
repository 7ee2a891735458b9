"""A bulk step's ticket is sized to what its dispatcher can start within one time slice."""

from __future__ import annotations

from notifyd.pipeline.asyncrunner import AsyncRunner
from notifyd.pipeline.dispatcher import MIN_BUDGET, Dispatcher


def _dispatcher(*, bulk: bool) -> Dispatcher:
    return Dispatcher(
        AsyncRunner(),
        adapter_for=lambda channel: None,  # type: ignore[arg-type,return-value]
        recorder=None,  # type: ignore[arg-type]
        window=64,
        reserve=0,
        host_concurrency=8,
        yield_to=(lambda: False) if bulk else None,
    )


def test_a_bulk_dispatcher_with_a_backlog_budgets_what_starts_within_the_slice_beside_it():
    d = _dispatcher(bulk=True)
    d.start_rate, d.waiting = 1000.0, 300
    assert d.budget(1.0) == 700
    d.waiting = 950  # the backlog alone fills the slice: a ticket still gets a share to start
    assert d.budget(1.0) == MIN_BUDGET


def test_no_budget_while_the_dispatcher_keeps_up_or_has_not_measured_its_rate():
    d = _dispatcher(bulk=True)
    d.waiting = 500
    assert d.budget(1.0) is None  # no rate measured yet
    d.start_rate, d.waiting = 1000.0, 0
    assert d.budget(1.0) is None  # nothing waits: it keeps up


def test_the_urgent_dispatcher_never_sizes_a_ticket():
    d = _dispatcher(bulk=False)
    d.start_rate, d.waiting = 10.0, 5000
    assert d.budget(1.0) is None
