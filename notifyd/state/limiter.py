"""The compact per-subscriber-per-channel rate limiter: N per moving window, 4 bytes per hit.

Same semantics as the ``limits`` moving window that it replaces in the shard,
but the state is packed: one field per subscriber seq in a per-bucket hash
(``Keys.limiter``), holding the last N hit times as 4-byte deciseconds. A
whole shard is one script call (``lua/limiter.lua``). Where the window is
full, the answer says when the next slot opens, which is when the
subscriber's digest is due.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import redis
from limits import parse

from notifyd.state import scripts
from notifyd.state.keys import Keys, bucket_of

#: Deciseconds are counted from here, so that four bytes last until 2037.
EPOCH_S = 1_704_067_200  # 2024-01-01T00:00:00Z
#: Up to this N the packed values stay under 64 bytes and the bucket hash a listpack; above, it
#: still works, at the memory cost of a hashtable.
COMPACT_LIMIT = 16

Op = Literal["h", "f", "p"]


@dataclass(frozen=True, slots=True)
class Rate:
    amount: int
    window_s: float

    @classmethod
    def parse(cls, text: str) -> Rate:
        item = parse(text)
        return cls(int(item.amount), float(item.get_expiry()))


class PackedLimiter:
    def __init__(
        self, client: redis.Redis, keys: Keys, *, rate: str, clock: Callable[[], float] = time.time
    ) -> None:
        self.client = client
        self.keys = keys
        self.rate = Rate.parse(rate)
        self.clock = clock
        self._script = scripts.register(client, "limiter")

    def _run(self, page_id: str, seqs: Sequence[int], op: Op | Sequence[Op]) -> list[float | None]:
        if not seqs:
            return []
        ops = [op] * len(seqs) if isinstance(op, str) else list(op)
        now_ds = int((self.clock() - EPOCH_S) * 10)
        window_ds = max(1, int(self.rate.window_s * 10))
        keys = [self.keys.limiter(page_id, bucket_of(seq)) for seq in seqs]
        args: list[object] = [now_ds, self.rate.amount, window_ds, math.ceil(self.rate.window_s) + 1]
        args.extend(f"{o}{seq}" for o, seq in zip(ops, seqs, strict=True))
        answers = self._script(keys=keys, args=args)
        return [None if int(a) == 0 else EPOCH_S + int(a) / 10 for a in answers]

    def hit_many(self, page_id: str, seqs: Sequence[int]) -> list[float | None]:
        """Take a slot for each subscriber seq: None where allowed, else when a slot opens (epoch s)."""
        return self._run(page_id, seqs, "h")

    def force(self, page_id: str, seqs: Sequence[int]) -> None:
        """Count hits that go out whatever the window says (a digest, a resolve)."""
        self._run(page_id, seqs, "f")

    def opens_at(self, page_id: str, seqs: Sequence[int]) -> list[float | None]:
        """None where a slot is free now, else when one opens; takes nothing."""
        return self._run(page_id, seqs, "p")
