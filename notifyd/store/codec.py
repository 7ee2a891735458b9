"""Compact, columnar msgpack encoding of a :class:`StoreState` (deltas, log records, snapshots).

Why columnar: every string (page, component and node ids, names, statuses) is interned once
per message in a table and referenced by index; stamps are stored as milliseconds relative to
the smallest stamp in the message plus a counter.  Most numbers then fit msgpack's one-byte
fixints, and in snapshots like values sit next to each other where zlib squeezes them further.
"""

from __future__ import annotations

import gc
import struct
from typing import Any, cast

import msgpack

from notifyd.store.errors import StoreError
from notifyd.store.state import INCIDENT_FIELDS, IncidentState, PageState, StoreState
from notifyd.store.types import LWW, CausalContext, ORSet, VersionVector

FORMAT_VERSION = 1
_FIELD_CODE = {name: i for i, name in enumerate(INCIDENT_FIELDS)}
_COMPONENTS_FIELD = _FIELD_CODE["components"]


class _Strings:
    __slots__ = ("table", "index")

    def __init__(self) -> None:
        self.table: list[str] = []
        self.index: dict[str, int] = {}

    def __call__(self, value: str) -> int:
        idx = self.index.get(value)
        if idx is None:
            if not isinstance(value, str):
                raise StoreError(f"cannot encode {type(value).__name__} value {value!r}; expected a string")
            idx = self.index[value] = len(self.table)
            self.table.append(value)
        return idx


def _base_ms(state: StoreState) -> int:
    lowest: int | None = None
    for page in state.pages.values():
        for reg in page.components.values():
            if lowest is None or reg.hlc < lowest:
                lowest = reg.hlc
        for inc in page.incidents.values():
            for reg in inc.fields.values():
                if lowest is None or reg.hlc < lowest:
                    lowest = reg.hlc
    return 0 if lowest is None else lowest >> 16


def encode_state(state: StoreState) -> list[Any]:
    s = _Strings()
    base = _base_ms(state)
    runs: list[int] = []
    cids: list[int] = []
    names: list[int] = []
    statuses: list[int] = []
    dms: list[int] = []
    ctrs: list[int] = []
    nodes: list[int] = []
    incidents: list[Any] = []
    for pid in sorted(state.pages):
        page = state.pages[pid]
        pidx = s(pid)
        if page.components:
            runs += (pidx, len(page.components))
            for cid in sorted(page.components):
                hlc, node, (name, status) = page.components[cid]
                cids.append(s(cid))
                names.append(s(name))
                statuses.append(s(status))
                dms.append((hlc >> 16) - base)
                ctrs.append(hlc & 0xFFFF)
                nodes.append(s(node))
        for iid in sorted(page.incidents):
            inc = page.incidents[iid]
            row = [pidx, s(iid), *_encode_incident(inc, s, base)]
            if inc.tomb:
                # A compacted incident's tombstone: a fifth element, absent from older rows.
                row.append(inc.tomb)
            incidents.append(row)
    # Event ids expire in bursts (one TTL after a burst of events), so group them by expiry
    # and store each distinct expiry once: [expiry - base, how many keys, ...].
    by_expiry = sorted((e, k) for k, e in state.seen.items.items())
    seen_base = by_expiry[0][0] if by_expiry else 0
    seen_runs: list[int] = []
    last = None
    for expiry, _ in by_expiry:
        if expiry == last:
            seen_runs[-1] += 1
        else:
            seen_runs += (expiry - seen_base, 1)
            last = expiry
    return [
        FORMAT_VERSION,
        s.table,
        base,
        runs,
        _column(cids),
        _column(names),
        _column(statuses),
        _column(dms),
        _column(ctrs),
        _column(nodes),
        incidents,
        struct.pack(f">{len(by_expiry)}Q", *(k for _, k in by_expiry)),
        seen_base,
        seen_runs,
    ]


def _column(values: list[int]) -> list[int] | int:
    """A column whose values are all equal (one writer node, counters all 0) is sent as one int."""
    if values and values.count(values[0]) == len(values):
        return values[0]
    return values


def _expand(column: list[int] | int, n: int) -> list[int]:
    return [column] * n if isinstance(column, int) else column


def _encode_incident(inc: IncidentState, s: _Strings, base: int) -> list[Any]:
    fields: list[Any] = []
    for name, (hlc, node, value) in inc.fields.items():
        code = _FIELD_CODE[name]
        enc = [s(v) for v in value] if code == _COMPONENTS_FIELD else s(value)
        fields += (code, (hlc >> 16) - base, hlc & 0xFFFF, s(node), enc)
    tl = inc.timeline
    if tl.is_empty():
        return [fields, None]
    vv: list[int] = []
    for node, counter in sorted(tl.ctx.vv.counters.items()):
        vv += (s(node), counter)
    cloud: list[int] = []
    for node, counter in sorted(tl.ctx.cloud):
        cloud += (s(node), counter)
    entries: list[Any] = []
    for element, dots in sorted(tl.entries.items()):  # type: ignore[type-var]
        event_id, status, message, at = cast("tuple[str, str, str, int]", element)
        row: list[Any] = [s(event_id), s(status), s(message), at, len(dots)]
        for node, counter in sorted(dots):
            row += (s(node), counter)
        entries.append(row)
    return [fields, [vv, cloud, entries]]


def decode_state(data: Any) -> StoreState:
    # A load allocates tens of thousands of acyclic tuples; letting the cyclic GC run every
    # few hundred allocations roughly doubled the load time of a 20k-key snapshot.
    paused = gc.isenabled()
    gc.disable()
    try:
        return _decode(data)
    except StoreError:
        raise
    except (ValueError, TypeError, IndexError, KeyError, struct.error) as exc:
        raise StoreError(f"undecodable store state: {exc}") from exc
    finally:
        if paused:
            gc.enable()


def _decode(data: Any) -> StoreState:
    (version, strings, base, runs, cids, names, statuses, dms, ctrs, nodes, incidents, keys, sbase, exps) = (
        data
    )
    if version != FORMAT_VERSION:
        raise StoreError(f"unsupported store format version {version} (this build reads {FORMAT_VERSION})")
    state = StoreState()
    pages = state.pages
    n = sum(runs[1::2])
    cids, names, statuses, dms, ctrs, nodes = (
        _expand(c, n) for c in (cids, names, statuses, dms, ctrs, nodes)
    )
    if len(cids) != n or len(nodes) != n:
        raise StoreError(f"component columns hold {len(cids)} rows, page runs say {n}")
    # Whole-column transforms run in C (map/zip/list comprehensions); a per-row Python loop
    # was the bulk of load time for 20k keys.
    pairs = list(zip(names, statuses, strict=True))
    values = {pair: (strings[pair[0]], strings[pair[1]]) for pair in set(pairs)}
    regs = list(
        map(
            LWW._make,
            zip(
                [((base + d) << 16) | c for d, c in zip(dms, ctrs, strict=True)],
                [strings[n] for n in nodes],
                map(values.__getitem__, pairs),
                strict=True,
            ),
        )
    )
    cid_keys = [strings[c] for c in cids]
    i = 0
    for r in range(0, len(runs), 2):
        pid, count = strings[runs[r]], runs[r + 1]
        page = pages.get(pid)
        if page is None:
            page = pages[pid] = PageState()
        page.components.update(zip(cid_keys[i : i + count], regs[i : i + count], strict=True))
        i += count
    for row in incidents:
        pidx, iidx, fields, timeline = row[:4]
        page = pages.get(strings[pidx])
        if page is None:
            page = pages[strings[pidx]] = PageState()
        inc = page.incidents[strings[iidx]] = _decode_incident(fields, timeline, strings, base)
        if len(row) > 4:
            inc.tomb = int(row[4])
    if keys:
        expiries: list[int] = []
        for r in range(0, len(exps), 2):
            expiries += [sbase + exps[r]] * exps[r + 1]
        state.seen.items = dict(zip(struct.unpack(f">{len(keys) // 8}Q", keys), expiries, strict=True))
    return state


def _decode_incident(fields: list[Any], timeline: Any, strings: list[str], base: int) -> IncidentState:
    inc = IncidentState()
    for k in range(0, len(fields), 5):
        code, dm, ctr, node, enc = fields[k : k + 5]
        name = INCIDENT_FIELDS[code]
        value: Any = tuple(strings[v] for v in enc) if code == _COMPONENTS_FIELD else strings[enc]
        inc.fields[name] = LWW(((base + dm) << 16) | ctr, strings[node], value)
    if timeline is not None:
        vv, cloud, entries = timeline
        tl = ORSet()
        tl.ctx = CausalContext(
            VersionVector({strings[vv[k]]: vv[k + 1] for k in range(0, len(vv), 2)}),
            [(strings[cloud[k]], cloud[k + 1]) for k in range(0, len(cloud), 2)],
        )
        for row in entries:
            eid, status, message, at, ndots = row[:5]
            dots = frozenset((strings[row[5 + 2 * d]], row[6 + 2 * d]) for d in range(ndots))
            tl.entries[(strings[eid], strings[status], strings[message], at)] = dots
        inc.timeline = tl
    return inc


def pack_state(state: StoreState) -> bytes:
    return msgpack.packb(encode_state(state), use_bin_type=True)


def unpack_state(data: bytes) -> StoreState:
    try:
        obj = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise StoreError(f"undecodable store state: {exc}") from exc
    return decode_state(obj)


# -- a full state in parts ---------------------------------------------------------------------

#: A full state larger than this is sent in parts of about this size.
DEFAULT_PART_BYTES = 1024 * 1024
#: Bytes a seen event id takes in a message (its 8-byte hash, plus its share of the expiry runs).
_SEEN_ID_BYTES = 9
_KEY_SPACE = 1 << 64

#: One key range of a part: ("p", page) a whole page, ("c", page) its components,
#: ("i", page, incident) one incident, ("s", lo, hi) the seen ids hashed into [lo, hi).
PartItem = tuple[Any, ...]


def plan_parts(state: StoreState, part_bytes: int) -> list[list[PartItem]]:
    """Cut ``state`` into key ranges of at most about ``part_bytes`` encoded each.

    Sizes are estimated from the raw strings (the encoding interns them, so a part comes out
    smaller). A page too big for one part is cut into its components and single incidents; the
    seen-set into hash ranges that together cover every possible id, so an id that arrives
    while the parts go out still falls into one of them.
    """
    parts: list[list[PartItem]] = []
    current: list[PartItem] = []
    size = 0

    def add(item: PartItem, n: int) -> None:
        nonlocal current, size
        if current and size + n > part_bytes:
            parts.append(current)
            current, size = [], 0
        current.append(item)
        size += n

    for pid in sorted(state.pages):
        page = state.pages[pid]
        comps = sum(len(c) + len(r.node) + sum(map(len, r.value)) + 12 for c, r in page.components.items())
        incs = {iid: _incident_bytes(iid, inc) for iid, inc in page.incidents.items()}
        if len(pid) + comps + sum(incs.values()) <= part_bytes:
            add(("p", pid), len(pid) + comps + sum(incs.values()))
            continue
        add(("c", pid), len(pid) + comps)
        for iid in sorted(incs):
            add(("i", pid, iid), incs[iid])
    keys = sorted(state.seen.items)
    lo = 0
    per_part = max(1, part_bytes // _SEEN_ID_BYTES)
    start = 0
    while start < len(keys):
        room = max(1, (part_bytes - size) // _SEEN_ID_BYTES) if current else per_part
        end = min(len(keys), start + room)
        hi = keys[end] if end < len(keys) else _KEY_SPACE
        add(("s", lo, hi), (end - start) * _SEEN_ID_BYTES)
        lo, start = hi, end
    if lo < _KEY_SPACE:
        add(("s", lo, _KEY_SPACE), 0)
    if current or not parts:
        parts.append(current)
    return parts


def _incident_bytes(iid: str, inc: IncidentState) -> int:
    n = len(iid) + 24
    for reg in inc.fields.values():
        value = reg.value
        n += 16 + len(reg.node) + (sum(map(len, value)) if isinstance(value, tuple) else len(str(value)))
    for entry, dots in inc.timeline.entries.items():
        eid, status, message, _ = cast("tuple[str, str, str, int]", entry)
        n += 16 + len(eid) + len(status) + len(message) + 8 * len(dots)
    return n + 8 * len(inc.timeline.ctx.vv.counters) + 8 * len(inc.timeline.ctx.cloud)


def subset_state(state: StoreState, items: list[PartItem]) -> StoreState:
    """The part of ``state`` that ``items`` name, as it is now (shares its registers; read only)."""
    out = StoreState()
    for item in items:
        kind = item[0]
        if kind == "s":
            lo, hi = item[1], item[2]
            out.seen.items.update((k, e) for k, e in state.seen.items.items() if lo <= k < hi)
            continue
        page = state.pages.get(item[1])
        if page is None:
            continue
        mine = out.pages.get(item[1])
        if mine is None:
            mine = out.pages[item[1]] = PageState()
        if kind == "p":
            mine.components.update(page.components)
            mine.incidents.update(page.incidents)
        elif kind == "c":
            mine.components.update(page.components)
        elif (inc := page.incidents.get(item[2])) is not None:
            mine.incidents[item[2]] = inc
    return out
