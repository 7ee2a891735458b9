"""`notifyd serve` with no keys configured: the generated keys go to a 0600 file, not the log."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx


def test_serve_without_keys_writes_them_to_an_owner_only_file_and_prints_only_its_path(
    redis_url, namespace, tmp_path, runtimes
):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFYD_")}
    env.update(
        NOTIFYD_REDIS_URL=redis_url,
        NOTIFYD_NAMESPACE=namespace,
        NOTIFYD_DATA_DIR=str(tmp_path / "var"),
        NOTIFYD_DURABILITY="none",  # the test Redis may run without an AOF; durability is not tested here
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "notifyd", "serve", "--port", "0"],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 60
        assert proc.stderr is not None
        while time.monotonic() < deadline and not any("generated keys are in" in line for line in lines):
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
        output = "".join(lines)
        found = re.search(r"generated keys are in (\S+)", output)
        assert found, output
        key_file = found.group(1)
        assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
        keys = dict(line.split(": ", 1) for line in Path(key_file).read_text().splitlines())
        operator = keys["operator key (all scopes)"]
        assert operator.startswith("nk_") and all(k not in output for k in keys.values())
        url = re.search(r"notifyd api: (http://\S+)", output).group(1)
        answer = httpx.get(f"{url}/v1/queues", headers={"Authorization": f"Bearer {operator}"}, timeout=15)
        assert answer.status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
