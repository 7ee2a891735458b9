"""State-based CRDTs with delta mutators: LWW register, version vector, add-wins OR-Set, expiring set.

Every type has a pure ``merge`` (a join: commutative, associative, idempotent) and, where the
store needs speed, an in-place ``merge_in`` that reports whether anything changed.  Mutators
never touch the state; they return a small delta that is merged like any other state, so the
same path applies local writes, replicated deltas and full states.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator, Mapping
from typing import Any, NamedTuple

import msgpack

Dot = tuple[str, int]


# -- LWW register --------------------------------------------------------------------------------


def _canonical(value: Any) -> Any:
    if isinstance(value, Mapping):
        return [[_canonical(k), _canonical(v)] for k, v in sorted(value.items())]
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def value_key(value: Any) -> bytes:
    """Canonical bytes of a value: the last tiebreak, so replicas agree even on identical stamps."""
    return msgpack.packb(_canonical(value))


class LWW(NamedTuple):
    """A last-writer-wins register, ordered by ``(hlc, node, value bytes)``."""

    hlc: int
    node: str
    value: Any


def lww_beats(new: LWW, old: LWW | None) -> bool:
    """True if ``new`` strictly wins over ``old`` (a missing register loses to anything)."""
    if old is None:
        return True
    if new.hlc != old.hlc:
        return new.hlc > old.hlc
    if new.node != old.node:
        return new.node > old.node
    if new.value == old.value:
        return False
    return value_key(new.value) > value_key(old.value)


def lww_merge(a: LWW | None, b: LWW | None) -> LWW | None:
    if a is None:
        return b
    return b if b is not None and lww_beats(b, a) else a


def lww_set(value: Any, hlc: int, node: str) -> LWW:
    """Delta mutator: the delta of a register write is the register itself."""
    return LWW(hlc, node, value)


# -- version vector and causal context -------------------------------------------------------------


class VersionVector:
    """node -> highest contiguous counter seen from that node."""

    __slots__ = ("counters",)

    def __init__(self, counters: Mapping[str, int] | None = None) -> None:
        self.counters: dict[str, int] = {k: v for k, v in (counters or {}).items() if v > 0}

    def get(self, node: str) -> int:
        return self.counters.get(node, 0)

    def covers(self, node: str, counter: int) -> bool:
        return counter <= self.counters.get(node, 0)

    def increment(self, node: str) -> int:
        """Delta mutator: returns the new counter (the delta is ``{node: counter}``)."""
        value = self.counters.get(node, 0) + 1
        self.counters[node] = value
        return value

    def merge_in(self, other: VersionVector) -> bool:
        changed = False
        mine = self.counters
        for node, counter in other.counters.items():
            if counter > mine.get(node, 0):
                mine[node] = counter
                changed = True
        return changed

    def merge(self, other: VersionVector) -> VersionVector:
        out = self.copy()
        out.merge_in(other)
        return out

    def copy(self) -> VersionVector:
        vv = VersionVector()
        vv.counters = dict(self.counters)
        return vv

    def __le__(self, other: VersionVector) -> bool:
        return all(c <= other.get(n) for n, c in self.counters.items())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VersionVector) and self.counters == other.counters

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"VersionVector({self.counters!r})"


class CausalContext:
    """A compact version vector plus a cloud of dots seen out of order (Almeida et al.)."""

    __slots__ = ("vv", "cloud")

    def __init__(self, vv: VersionVector | None = None, cloud: Iterable[Dot] = ()) -> None:
        self.vv = vv if vv is not None else VersionVector()
        self.cloud: set[Dot] = set(cloud)
        if self.cloud:
            self._compact()

    def contains(self, dot: Dot) -> bool:
        return dot[1] <= self.vv.counters.get(dot[0], 0) or dot in self.cloud

    def next_dot(self, node: str) -> Dot:
        top = self.vv.get(node)
        for n, c in self.cloud:
            if n == node and c > top:
                top = c
        return (node, top + 1)

    def merge_in(self, other: CausalContext) -> bool:
        """Join ``other`` in; True only if the set of dots grew. A cloud dot this context
        already covers (by its version vector or its own cloud) is no change: reporting one
        made a no-op delta look effective, so replicas relayed it to each other for ever."""
        changed = self.vv.merge_in(other.vv)
        if other.cloud:
            counters, cloud = self.vv.counters, self.cloud
            new = [d for d in other.cloud if d[1] > counters.get(d[0], 0) and d not in cloud]
            if new:
                cloud.update(new)
                changed = True
        if self.cloud:
            self._compact()
        return changed

    def _compact(self) -> None:
        counters = self.vv.counters
        for node, counter in sorted(self.cloud):
            top = counters.get(node, 0)
            if counter == top + 1:
                counters[node] = counter
        self.cloud = {d for d in self.cloud if d[1] > counters.get(d[0], 0)}

    def dots(self) -> set[Dot]:
        return set(self.cloud)

    def copy(self) -> CausalContext:
        ctx = CausalContext(self.vv.copy())
        ctx.cloud = set(self.cloud)
        return ctx

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CausalContext) and self.vv == other.vv and self.cloud == other.cloud

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"CausalContext({self.vv.counters!r}, cloud={sorted(self.cloud)!r})"


# -- add-wins OR-Set without tombstones (ORSWOT) -------------------------------------------------------


class ORSet:
    """Add-wins observed-remove set: each element carries the dots of the adds that made it live.

    A remove deletes the element and leaves only its dots in the causal context, so nothing like a
    tombstone accumulates; a concurrent add has a dot the remover never saw, and therefore wins.
    """

    __slots__ = ("entries", "ctx")

    def __init__(self) -> None:
        self.entries: dict[Hashable, frozenset[Dot]] = {}
        self.ctx = CausalContext()

    def __contains__(self, element: object) -> bool:
        return element in self.entries

    def __iter__(self) -> Iterator[Hashable]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def elements(self) -> set[Hashable]:
        return set(self.entries)

    def add_delta(self, element: Hashable, node: str) -> ORSet:
        """Delta of adding ``element`` at ``node``: one new dot, and the old dots it supersedes."""
        dot = self.ctx.next_dot(node)
        delta = ORSet()
        delta.entries[element] = frozenset((dot,))
        delta.ctx = CausalContext(cloud=self.entries.get(element, frozenset()) | {dot})
        return delta

    def remove_delta(self, element: Hashable) -> ORSet:
        """Delta of removing ``element``: just the dots observed, so concurrent adds survive."""
        delta = ORSet()
        delta.ctx = CausalContext(cloud=self.entries.get(element, frozenset()))
        return delta

    def add(self, element: Hashable, node: str) -> ORSet:
        delta = self.add_delta(element, node)
        self.merge_in(delta)
        return delta

    def remove(self, element: Hashable) -> ORSet:
        delta = self.remove_delta(element)
        self.merge_in(delta)
        return delta

    def merge_in(self, other: ORSet) -> bool:
        mine, theirs = self.entries, other.entries
        my_ctx, their_ctx = self.ctx, other.ctx
        changed = False
        for element, dots in theirs.items():
            current = mine.get(element)
            if current is None:
                keep = frozenset(d for d in dots if not my_ctx.contains(d))
            else:
                keep = frozenset(d for d in current if d in dots or not their_ctx.contains(d)) | frozenset(
                    d for d in dots if not my_ctx.contains(d)
                )
            if current is None:
                if keep:
                    mine[element] = keep
                    changed = True
            elif keep != current:
                changed = True
                if keep:
                    mine[element] = keep
                else:
                    del mine[element]
        # Dots the other side has seen but no longer carries were removed there.
        if their_ctx.vv.counters or their_ctx.cloud:
            for element in [e for e in mine if e not in theirs]:
                keep = frozenset(d for d in mine[element] if not their_ctx.contains(d))
                if keep != mine[element]:
                    changed = True
                    if keep:
                        mine[element] = keep
                    else:
                        del mine[element]
        return my_ctx.merge_in(their_ctx) or changed

    def merge(self, other: ORSet) -> ORSet:
        out = self.copy()
        out.merge_in(other)
        return out

    def copy(self) -> ORSet:
        out = ORSet()
        out.entries = dict(self.entries)
        out.ctx = self.ctx.copy()
        return out

    def is_empty(self) -> bool:
        return not self.entries and not self.ctx.vv.counters and not self.ctx.cloud

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ORSet) and self.entries == other.entries and self.ctx == other.ctx

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ORSet({sorted(self.entries, key=repr)!r}, {self.ctx!r})"


# -- expiring grow-only set ------------------------------------------------------------------------------


class ExpiringSet:
    """Grow-only set whose members carry an expiry; the join keeps the later expiry.

    Expired members are dropped by :meth:`expire` (compaction), and a merge ignores members
    already expired here, so an old replica cannot bring them back.
    """

    __slots__ = ("items",)

    def __init__(self, items: Mapping[int, int] | None = None) -> None:
        self.items: dict[int, int] = dict(items or {})

    def add_delta(self, key: int, expires_at: int) -> ExpiringSet:
        return ExpiringSet({key: expires_at})

    def contains(self, key: int, now: int) -> bool:
        expiry = self.items.get(key)
        return expiry is not None and expiry > now

    def merge_in(
        self, other: ExpiringSet, now: int | None = None, effective: ExpiringSet | None = None
    ) -> bool:
        mine = self.items
        changed = False
        for key, expiry in other.items.items():
            if now is not None and expiry <= now:
                continue
            if expiry > mine.get(key, -1):
                mine[key] = expiry
                changed = True
                if effective is not None:
                    effective.items[key] = expiry
        return changed

    def merge(self, other: ExpiringSet) -> ExpiringSet:
        out = ExpiringSet(self.items)
        out.merge_in(other)
        return out

    def expire(self, now: int) -> int:
        dead = [k for k, e in self.items.items() if e <= now]
        for key in dead:
            del self.items[key]
        return len(dead)

    def __len__(self) -> int:
        return len(self.items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ExpiringSet) and self.items == other.items

    __hash__ = None  # type: ignore[assignment]
