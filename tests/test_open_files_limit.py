"""A worker raises its soft limit on open files to what its dispatch windows need."""

from __future__ import annotations

import resource
import subprocess
import sys

from notifyd.runtime.settings import Settings
from notifyd.runtime.worker import OPEN_FILES_HEADROOM, open_files_needed

PROBE = """
import logging, resource, sys
logging.basicConfig(level=logging.WARNING, format="%(message)s")
from notifyd.runtime.worker import raise_open_files_limit
print(raise_open_files_limit(int(sys.argv[1])), resource.getrlimit(resource.RLIMIT_NOFILE)[0])
"""


def _probe(soft: int, hard: int, needed: int) -> tuple[list[int], str]:
    """Run the raise in a process started with these limits: (returned, soft after), stderr."""

    def limits() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(needed)],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=limits,
    )
    assert done.returncode == 0, done.stderr
    return [int(v) for v in done.stdout.split()], done.stderr


def test_the_soft_limit_is_raised_to_what_the_windows_need():
    (returned, soft), err = _probe(soft=512, hard=4096, needed=3000)
    assert returned == soft == 3000
    assert "open files are limited" not in err


def test_a_hard_limit_below_the_need_raises_the_soft_one_to_it_and_says_what_to_change():
    (returned, soft), err = _probe(soft=512, hard=1024, needed=3000)
    assert returned == soft == 1024
    assert "open files are limited to 1024" in err and "LimitNOFILE" in err


def test_a_soft_limit_already_high_enough_is_left_alone():
    (returned, soft), _ = _probe(soft=4000, hard=4096, needed=3000)
    assert returned == soft == 4000


def test_the_need_counts_both_dispatchers_windows():
    settings = Settings(dispatch_window=2048, dispatch_reserve=256)
    assert open_files_needed(settings) == 2048 + 1792 + OPEN_FILES_HEADROOM
