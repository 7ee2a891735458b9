"""A worker raises its soft limit on open files to what its dispatch windows need, and shrinks
the windows to what a lower hard limit allows."""

from __future__ import annotations

import resource
import subprocess
import sys

from notifyd.runtime.settings import Settings
from notifyd.runtime.worker import OPEN_FILES_HEADROOM, open_files_needed

PROBE = """
import logging, resource, sys
logging.basicConfig(level=logging.WARNING, format="%(message)s")
from notifyd.runtime.settings import Settings
from notifyd.runtime.worker import fit_open_files
fitted = fit_open_files(Settings(dispatch_window=int(sys.argv[1]), dispatch_reserve=int(sys.argv[2])))
print(resource.getrlimit(resource.RLIMIT_NOFILE)[0], fitted.dispatch_window, fitted.dispatch_reserve)
"""


def _probe(soft: int, hard: int, window: int, reserve: int = 256) -> tuple[list[int], str]:
    """Fit the windows in a process started with these limits: (soft limit after, window,
    reserve), stderr."""

    def limits() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(window), str(reserve)],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=limits,
    )
    assert done.returncode == 0, done.stderr
    return [int(v) for v in done.stdout.split()], done.stderr


def test_the_soft_limit_is_raised_to_what_the_windows_need():
    (soft, window, reserve), err = _probe(soft=512, hard=8192, window=2048)
    assert soft == 2048 + 1792 + OPEN_FILES_HEADROOM
    assert (window, reserve) == (2048, 256)
    assert "open files are limited" not in err


def test_under_a_lower_hard_limit_the_windows_shrink_to_fit_and_the_log_says_what_to_change():
    (soft, window, reserve), err = _probe(soft=512, hard=1024, window=2048)
    assert soft == 1024
    assert window + (window - reserve) + OPEN_FILES_HEADROOM <= 1024
    assert window >= 256 and 0 < reserve < window  # the bulk lanes keep most of it
    assert "open files are limited to 1024" in err and "LimitNOFILE" in err
    assert f"the window is {window} sends instead of 2048" in err


def test_a_soft_limit_already_high_enough_is_left_alone():
    (soft, window, _), err = _probe(soft=8000, hard=8192, window=2048)
    assert (soft, window) == (8000, 2048)
    assert "open files are limited" not in err


def test_the_need_counts_both_dispatchers_windows():
    settings = Settings(dispatch_window=2048, dispatch_reserve=256)
    assert open_files_needed(settings) == 2048 + 1792 + OPEN_FILES_HEADROOM
