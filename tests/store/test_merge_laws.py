"""The join of every type is commutative, associative and idempotent, and deltas act like states;
tombstones (compaction deltas) included."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from notifyd.store.compaction import plan_compaction
from notifyd.store.events import plan_event
from notifyd.store.state import StoreState
from notifyd.store.types import (
    LWW,
    CausalContext,
    ExpiringSet,
    ORSet,
    VersionVector,
    lww_merge,
    value_key,
)
from tests.support.events import component_event, incident_event

NODES = ("a", "b", "c")

lww = st.builds(
    LWW,
    hlc=st.integers(0, 4),
    node=st.sampled_from(NODES),
    value=st.sampled_from([("API", "operational"), ("API", "major_outage"), ("Api", "operational")]),
)
vv = st.dictionaries(st.sampled_from(NODES), st.integers(0, 6)).map(VersionVector)
expiring = st.dictionaries(st.integers(0, 5), st.integers(0, 9)).map(ExpiringSet)


@st.composite
def orsets(draw: st.DrawFn, count: int = 3) -> list[ORSet]:
    """Reachable OR-Set states: replicas that added, removed and merged in a random order."""
    replicas = {n: ORSet() for n in NODES}
    ops = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["add", "remove", "merge"]), st.sampled_from(NODES), st.sampled_from(NODES)
            ),
            max_size=25,
        )
    )
    elements = ["x", "y", "z"]
    for op, node, other in ops:
        if op == "add":
            replicas[node].add(elements[NODES.index(other)], node)
        elif op == "remove":
            replicas[node].remove(elements[NODES.index(other)])
        else:
            replicas[node].merge_in(replicas[other])
    return [replicas[draw(st.sampled_from(NODES))].copy() for _ in range(count)]


@st.composite
def store_states(draw: st.DrawFn) -> list[StoreState]:
    """Reachable store states: events applied on three replicas with random merges in between."""
    replicas = {n: StoreState() for n in NODES}
    steps = draw(
        st.lists(st.tuples(st.integers(0, 6), st.sampled_from(NODES), st.sampled_from(NODES)), max_size=20)
    )
    for i, (kind, node, other) in enumerate(steps):
        seconds = draw(st.integers(0, 3))
        event: dict[str, Any]
        if kind == 0:
            replicas[node].merge_in(replicas[other])
            continue
        if kind == 6:
            # A compaction: every closed incident becomes a tombstone (a delta, merged like any other).
            plan = plan_compaction(
                replicas[node], now_ms=10**13, incident_retention_ms=0, tombstone_retention_ms=10**15
            )
            replicas[node].merge_in(plan.delta)
            continue
        if kind in (1, 2):
            event = component_event(
                event_id=f"e{i}", status=["operational", "major_outage"][kind - 1], seconds=seconds
            )
        else:
            event = incident_event(
                event_id=f"e{i}",
                status=["investigating", "identified", "resolved"][kind - 3],
                seconds=seconds,
                message=f"m{i}",
            )
        plan = plan_event(replicas[node], event, node=node, now_ms=10**13, max_offset_ms=500, ttl_s=60)
        replicas[node].merge_in(plan.delta)
    return [replicas[draw(st.sampled_from(NODES))].copy() for _ in range(3)]


def _join(a: Any, b: Any) -> Any:
    if isinstance(a, LWW):
        return lww_merge(a, b)
    if isinstance(a, StoreState):
        out = a.copy()
        out.merge_in(b)
        return out
    return a.merge(b)


@given(st.one_of(st.tuples(lww, lww, lww), st.tuples(vv, vv, vv), st.tuples(expiring, expiring, expiring)))
def test_lww_version_vector_and_expiring_set_joins_obey_the_merge_laws(abc: tuple[Any, Any, Any]) -> None:
    _check_laws(*abc)


@settings(max_examples=150)
@given(orsets())
def test_or_set_join_obeys_the_merge_laws(abc: list[ORSet]) -> None:
    _check_laws(*abc)


@settings(max_examples=100)
@given(store_states())
def test_page_state_join_obeys_the_merge_laws(abc: list[StoreState]) -> None:
    _check_laws(*abc)


@settings(max_examples=150)
@given(orsets(count=2))
def test_an_or_set_merge_says_it_changed_something_exactly_when_it_did(pair: list[ORSet]) -> None:
    a, b = pair
    joined = a.copy()
    assert joined.merge_in(b) == (joined != a)


@settings(max_examples=100)
@given(store_states())
def test_a_store_merge_says_it_changed_something_exactly_when_it_did(abc: list[StoreState]) -> None:
    a, b, _ = abc
    joined = a.copy()
    assert joined.merge_in(b) == (joined != a)


def test_merging_dots_a_causal_context_already_covers_is_no_change() -> None:
    # A compaction's tombstone delta names the dots of the entries left, here with a gap
    # (a:1 was removed by hand), so a:2 and a:3 stay in its cloud; a peer that has seen all
    # three must not call that a change, or it relays the no-op on and on.
    ctx = CausalContext(VersionVector({"a": 3}))
    assert not ctx.merge_in(CausalContext(cloud=[("a", 2), ("a", 3)]))
    assert ctx == CausalContext(VersionVector({"a": 3}))
    assert ctx.merge_in(CausalContext(cloud=[("a", 3), ("a", 5)]))
    assert ctx == CausalContext(VersionVector({"a": 3}), cloud=[("a", 5)])


def _check_laws(a: Any, b: Any, c: Any) -> None:
    assert _join(a, b) == _join(b, a), "commutative"
    assert _join(_join(a, b), c) == _join(a, _join(b, c)), "associative"
    assert _join(a, a) == a, "idempotent"


@given(orsets(count=2), st.sampled_from(["x", "y", "z"]), st.booleans())
def test_an_or_set_delta_has_the_same_effect_as_shipping_the_whole_state(
    pair: list[ORSet], element: str, add: bool
) -> None:
    origin, other = pair
    other.merge_in(origin)
    before = origin.copy()
    delta = origin.add(element, "a") if add else origin.remove(element)
    via_delta = other.merge(delta)
    via_state = other.merge(origin)
    assert via_delta == via_state
    assert before.merge(delta) == origin


def test_a_concurrent_add_wins_over_a_remove() -> None:
    a, b = ORSet(), ORSet()
    a.add("x", "a")
    b.merge_in(a)
    b.remove("x")
    a.add("x", "a")
    assert "x" in a.merge(b)
    assert "x" in b.merge(a)


def test_removed_elements_leave_no_tombstone_behind() -> None:
    s = ORSet()
    for i in range(50):
        s.add(i, "a")
        s.remove(i)
    assert not s.entries
    assert s.ctx.vv.counters == {"a": 50}
    assert not s.ctx.cloud


def test_lww_ties_on_stamp_and_node_are_broken_by_the_value_bytes() -> None:
    x = LWW(5, "a", ("API", "major_outage"))
    y = LWW(5, "a", ("API", "operational"))
    winner = x if value_key(x.value) > value_key(y.value) else y
    assert lww_merge(x, y) == lww_merge(y, x) == winner
