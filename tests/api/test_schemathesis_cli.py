"""`schemathesis run --checks all` against a running server: the API matches its own OpenAPI document.

This is the command an outsider would run (the CLI, every check, every phase: examples,
coverage, fuzzing and stateful), not the in-process fuzz loop of test_fuzz.py. The seed is
fixed so a red run replays the same cases.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from notifyd.store import StatusStore
from tests.api.conftest import KEYS, Api
from tests.support.browser import ARTIFACTS

REPO = Path(__file__).resolve().parents[2]
CONFIG = Path(__file__).with_name("schemathesis.toml")


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_schemathesis_with_every_check_finds_nothing_against_a_running_server(start_api: Callable[..., Api]):
    api = start_api(store=StatusStore.memory("api-node"), app_options={"publish_rate": "100000/second"})
    report = ARTIFACTS / "schemathesis"
    report.mkdir(parents=True, exist_ok=True)
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(CONFIG),
        "run",
        "--checks",
        "all",
        "--header",
        f"Authorization: Bearer {KEYS['all']}",
        "--max-examples",
        os.environ.get("NOTIFYD_SCHEMATHESIS_EXAMPLES", "20"),
        "--seed",
        "20261202",
        "--workers",
        "2",
        "--no-color",
        "--report",
        "junit",
        "--report-dir",
        str(report),
        f"{api.url}/openapi.json",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=840)
    output = done.stdout + done.stderr
    (report / "output.txt").write_text(output)
    assert done.returncode == 0, output[-6000:]
    # Every operation was reached: none left out for want of a serializer or an example.
    selected, total = map(int, re.search(r"Selected: (\d+)/(\d+)", output).groups())  # type: ignore[union-attr]
    tested = int(re.search(r"Tested: (\d+)", output).group(1))  # type: ignore[union-attr]
    assert tested == selected == total >= 20, output[-3000:]
