"""`make demo` as a new user runs it: embedded server, every channel, a summary per event."""

from __future__ import annotations

import re
import secrets
import subprocess
import sys

import pytest

from tests.support.env import cli_env


@pytest.mark.slow
def test_the_demo_delivers_on_every_channel_and_verifies_every_signature(tmp_path):
    env = {**cli_env(), "COLUMNS": "120"}
    demo = subprocess.run(
        [sys.executable, "-m", "notifyd.demo"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    out = demo.stdout
    assert demo.returncode == 0, out + demo.stderr

    # The preference-page link works against the store `notifyd dev` uses in that directory.
    pattern = r"Preference page: (http://127\.0\.0\.1:8080/status/acme/preferences\?token=\S+)"
    (link,) = re.findall(pattern, out)
    from notifyd.api.server import start_in_thread
    from notifyd.runtime.settings import Settings
    from notifyd.runtime.wiring import Runtime

    rt = Runtime.start(Settings(data_dir=tmp_path / "var", api_keys=secrets.token_hex(24) + ":admin"))
    api = start_in_thread(rt, None, host="127.0.0.1", port=0, announce=False)
    try:
        import httpx

        page = httpx.get(link.replace("http://127.0.0.1:8080", api.url), timeout=15)
        assert page.status_code == 200 and "demo-reader@example.com" in page.text
    finally:
        api.stop()
        rt.close()

    assert "embedded Valkey" in out
    rows = re.findall(r"(created|updated|resolved)\s*│\s*done\s*│\s*(\d+)\s*│\s*(\d+)", out)
    assert [kind for kind, _, _ in rows] == ["created", "updated", "resolved"]
    # SMS subscribers hear only that an incident opened and resolved (their channel's default filter).
    assert [(planned, delivered) for _, planned, delivered in rows] == [
        ("310", "310"),
        ("310", "307"),
        ("310", "310"),
    ]
    assert "900 requests, 900 distinct webhook-ids, 0 bad signatures" in out
    for channel, count in (("email", 15), ("sms", 6), ("slack", 6)):
        assert re.search(rf"{channel}.*stand-in received {count} message", out), channel
    assert "duplicate (delivers nothing)" in out
    # Defer and coalesce: three sends, then one digest that carries the resolve.
    assert out.count("-> delivered") == 3 and out.count("-> deferred") == 3
    assert "4 updates on Checkout errors; now: resolved" in out
    # A maintenance lifecycle, with the component alert inside the window kept quiet.
    phases = re.findall(r"(maintenance_\w+): (Reminder)?", out)
    assert phases == [
        ("maintenance_scheduled", ""),
        ("maintenance_scheduled", "Reminder"),
        ("maintenance_started", ""),
        ("maintenance_completed", ""),
    ]
    assert "suppressed_by=maintenance" in out
