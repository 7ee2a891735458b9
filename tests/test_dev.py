"""`notifyd dev` as a new user runs it: no Redis URL, one command, a clean stop."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest
import redis

from tests.support.env import cli_env
from tests.support.events import incident_event
from tests.support.wait import wait_until


@pytest.mark.slow
def test_dev_runs_on_the_embedded_server_delivers_and_stops_cleanly(tmp_path, sink):
    env = cli_env(data_dir=tmp_path / "var", allow_private_targets=True, namespace="devtest")
    port = _free_port()
    dev = subprocess.Popen(
        [sys.executable, "-m", "notifyd", "dev", "--port", str(port), "--standins"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        while not any("Ctrl-C" in line for line in lines):
            line = dev.stdout.readline()
            assert line, "notifyd dev exited early:\n" + "".join(lines)
            lines.append(line)
        socket_path = tmp_path / "var" / "redis" / "redis.sock"
        assert socket_path.exists()
        to_dev = {**env, "NOTIFYD_REDIS_URL": f"unix://{socket_path}"}

        def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "notifyd", *args],
                input=stdin,
                env=to_dev,
                capture_output=True,
                text=True,
            )

        added = cli(
            "subscribers", "add", "--page", "acme", "--channel", "webhook", "--target", f"{sink.url}/dev"
        )
        assert added.returncode == 0, added.stderr
        mail = cli(
            "subscribers", "add", "--page", "acme", "--channel", "email", "--target", "sre@example.com"
        )
        assert mail.returncode == 0, mail.stderr
        event = incident_event()
        assert json.loads(cli("publish", "-", stdin=json.dumps(event)).stdout)["status"] == "accepted"
        assert sink.wait_for(lambda: len(sink.on("/dev")) == 1, timeout=15)
        status = cli("status", event["event_id"], "--json")
        assert wait_until(
            lambda: json.loads(cli("status", event["event_id"], "--json").stdout)["state"] == "done"
        ), cli("status", event["event_id"], "--json").stdout
        assert status.returncode == 0
    finally:
        dev.send_signal(signal.SIGTERM)
        out, _ = dev.communicate(timeout=60)
    assert dev.returncode == 0, "".join(lines) + out
    # --standins: the email went to the loopback SMTP stand-in, which says so.
    assert "email (SMTP) received: to sre@example.com: [acme] Database outage" in "".join(lines) + out
    assert not (tmp_path / "var" / "redis" / "redis.sock").exists()
    # The embedded server persisted what it was given: a restart sees the subscriber.
    from notifyd.runtime.embedded import EmbeddedRedis

    again = EmbeddedRedis(tmp_path / "var")
    client = redis.Redis.from_url(again.start())
    try:
        assert client.hlen("devtest:p:acme:targets") == 2
    finally:
        client.close()
        again.stop()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
