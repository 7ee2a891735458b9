"""The 100k chaos run: a fan-out to 100,000 webhook subscribers while 5 workers are SIGKILLed,
Valkey crashes and restarts from its AOF (``appendfsync always``), and the fault proxy cuts every
Redis connection 20 times, each fault after progress was seen. Not in ``make bench``'s default
set: the 100k run took about 45 minutes when each worker had one send in flight (see
docs/benchmarks.md); with its window it did 431/s at 5k (2026-12-05). Run it as

    .venv/bin/python benchmarks/run.py --only chaos          # 100k
    .venv/bin/python benchmarks/run.py --only chaos --quick  # 5k

It passes when every delivery ends delivered, every subscriber got its delivery id, and what was
sent twice stays within every worker's dispatch window per fault (what can be in flight when
one lands).
The orchestration is tests/support/chaos.py, which the slow test runs small.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.chaos import run_chaos  # noqa: E402

WORKERS = 2
#: Sends each worker may have in flight (tests/support/chaos.py gives the fan-out's lane all of it).
WINDOW = 256


def main(quick: bool = False, full: bool = False) -> list[dict[str, Any]]:
    n = 5_000 if quick else 100_000
    with tempfile.TemporaryDirectory() as d:
        report = run_chaos(
            Path(d),
            subscribers=n,
            kills=5,
            drops=20,
            workers=WORKERS,
            shard_size=500,
            dispatch_window=WINDOW,
            timeout_s=1800,
            say=lambda line: print(f"  {line}", flush=True),
        )
    bound = report.max_duplicates
    ok = report.delivered == n and report.distinct == n and report.duplicates <= bound
    return [
        {
            "name": f"chaos: {n:,} webhooks, {report.kills} SIGKILLs, {report.restarts} Valkey crash, "
            f"{report.drops} cut connections",
            "measured": f"{report.delivered:,} delivered, {report.duplicates:,} sent twice",
            "baseline": f"{report.faults} faults x {WORKERS} workers x {WINDOW} in flight = {bound:,}",
            "ratio": f"{report.seconds:.0f} s, {report.delivered / report.seconds:,.0f}/s",
            "target": "all delivered, duplicates <= bound",
            "ok": ok,
        }
    ]


if __name__ == "__main__":
    for row in main(quick="--quick" in sys.argv):
        print(row)
