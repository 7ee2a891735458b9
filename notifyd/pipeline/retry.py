"""Trying again: the jittered exponential schedule per channel, the retry step, and redrive.

A retry message names an event, the seqs of its subscribers due again, and
the attempt number. The step sends only records still ``retrying`` at the
previous attempt, so a message delivered twice sends nothing twice.
Redrive moves failed records back to ``retrying`` and enqueues retry
messages; it runs in the API process and never sends from there.
"""

from __future__ import annotations

import math
import random
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING

from notifyd.pipeline.steps import RETRY, StepQueue
from notifyd.state.keys import BUCKET
from notifyd.state.tracking import Record, Tracker, Update

if TYPE_CHECKING:
    from notifyd.pipeline.events import EventCache
    from notifyd.pipeline.pacing import Pacer
    from notifyd.pipeline.send import Sender
    from notifyd.state.subscribers import SubscriberRepo

#: The longest wait a Retry-After can impose; dramatiq refuses delays of 7 days or more.
MAX_RETRY_AFTER_S = 24 * 3600


def next_delay(
    schedule: Sequence[float],
    attempt: int,
    *,
    jitter: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float | None:
    """Seconds until attempt ``attempt + 1``, or None when the schedule is exhausted.

    ``attempt`` is the number of the attempt that just failed (1 for the first).
    The target's Retry-After is honoured: we never come back sooner than it asks.
    """
    if attempt < 1 or attempt > len(schedule):
        return None
    base = schedule[attempt - 1]
    spread = base * jitter
    delay = (rng or random).uniform(base - spread, base + spread)
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER_S))
    return max(0.0, delay)


#: Retries that come due within the same whole second share a queue message, and a second with
#: fewer than this many joins the next second's message, as long as that is at most twice as far
#: off as the message's first (or one second more). Each message comes due when the last of its
#: deliveries may go: none goes sooner than its own jittered delay, nor waits twice as long (a
#: Retry-After of an hour does not hold back retries due in a second). Grouped per second alone,
#: a write of a few failures was a message per second its jittered delays spread over (with the
#: default ±50% of 30 s, a message per failure), and each message a whole step to run: load the
#: event and its subscribers, build, submit, hand on. A wave of failures (an endpoint down for
#: everyone) still spreads its retries over the jitter's seconds.
RETRY_GROUP_MIN = 64


def group_retries(
    delays: Sequence[tuple[float, int]], *, min_group: int = RETRY_GROUP_MIN
) -> list[tuple[int, list[int]]]:
    """(seconds until its retry, seq) per delivery -> (due in ms, seqs) per retry message."""
    by_second: dict[int, list[int]] = defaultdict(list)
    due_ms: dict[int, int] = {}
    for delay, seq in delays:
        second = math.ceil(delay)
        by_second[second].append(seq)
        due_ms[second] = max(due_ms.get(second, 0), math.ceil(delay * 1000))
    groups: list[tuple[int, list[int]]] = []
    seqs: list[int] = []
    first = last = 0
    for second in sorted(by_second):
        if seqs and second > max(2 * first, first + 1):
            groups.append((due_ms[last], seqs))
            seqs = []
        if not seqs:
            first = second
        seqs.extend(by_second[second])
        last = second
        if len(seqs) >= min_group:
            groups.append((due_ms[second], seqs))
            seqs = []
    if seqs:
        groups.append((due_ms[last], seqs))
    return groups


class RetryStep:
    def __init__(
        self,
        *,
        events: EventCache,
        tracker: Tracker,
        subscribers: SubscriberRepo,
        sender: Sender,
        pacer: Pacer,
    ) -> None:
        self.events = events
        self.tracker = tracker
        self.subscribers = subscribers
        self.sender = sender
        self.pacer = pacer

    def __call__(self, ref: str, seqs: Sequence[int], attempt: int, shaped: bool = False) -> None:
        loaded = self.events.load(ref)
        if loaded is None:
            return
        records = self.tracker.records(ref, seqs)
        due = [
            s
            for s in seqs
            if (r := records.get(s)) is not None and r.status == "retrying" and r.attempts == attempt - 1
        ]
        if not due:
            # A continuation (send.py) whose deliveries were recorded meanwhile, or a message run twice.
            return
        subs = self.subscribers.range_many(loaded.event.page_id, due)
        live = [s for s in subs if not s.removed and not s.disabled]
        gone = [s for s in subs if s.removed or s.disabled]
        if gone:
            offset = loaded.offset()
            self.tracker.record(
                ref,
                [
                    Update(s.seq, Record("suppressed", attempt - 1, offset, "subscriber disabled"))
                    for s in gone
                ],
            )
        # A newer update of the same incident already went to (or waits for) the subscriber.
        live = self.pacer.supersede(loaded, live, attempts=attempt - 1, by_resolution_only=False)
        self.sender.send_and_record(
            loaded,
            live,
            attempt=attempt,
            continuation=lambda rest, paced: (RETRY, (ref, rest, attempt, paced)),
            shaped=shaped,
        )


def redrive(tracker: Tracker, queue: StepQueue, ref: str, *, batch: int) -> int:
    """Send the event's failed deliveries again, keeping their delivery ids; returns how many."""
    h = tracker.event_hash(ref)
    if h is None or "priority" not in h or "body" not in h:
        return 0  # unknown, or done with nothing failed (its body was dropped; see track.lua)
    lane = h["priority"]
    top = int(h.get("seq_top", 0))
    accepted_at = float(h.get("accepted_at", 0))
    offset = max(0, int(time.time() - accepted_at))
    moved: list[int] = []
    for bucket in range(0, math.ceil(top / BUCKET) if top else 0):
        failed = [seq for seq, r in tracker.bucket_records(ref, bucket).items() if r.status == "failed"]
        if not failed:
            continue
        prev = tracker.redrive(ref, [Update(s, Record("retrying", 0, offset, "redrive")) for s in failed])
        moved.extend(s for s, p in zip(failed, prev, strict=True) if p is not None and p.status == "failed")
    for first in range(0, len(moved), batch):
        queue.enqueue(RETRY, lane, (ref, moved[first : first + batch], 1))
    return len(moved)
