"""Clear failures: a Redis that does not answer, a misspelt variable, and JSON logs."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from notifyd.runtime import logs
from notifyd.runtime.settings import ConfigError, check_environment, load_settings

ROOT = Path(__file__).resolve().parents[1]
#: Nothing listens on port 1 of the loopback.
UNREACHABLE = "redis://:pw-not-shown@127.0.0.1:1/0"


def _notifyd(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFYD_")}
    return subprocess.run(
        [sys.executable, "-m", "notifyd", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


@pytest.mark.parametrize(
    "command",
    [
        ["subscribers", "list", "--page", "acme"],
        ["status", "inc-1"],
        ["serve", "--port", "0"],
        ["worker"],
        ["worker", "--processes", "2"],
    ],
    ids=lambda c: " ".join(c),
)
def test_an_unreachable_redis_is_one_line_naming_the_url_and_exit_1(command, tmp_path):
    result = _notifyd(*command, env={"NOTIFYD_REDIS_URL": UNREACHABLE, "NOTIFYD_DATA_DIR": str(tmp_path)})
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("notifyd: cannot reach Redis at redis://:***@127.0.0.1:1/0: ")
    assert "refused" in lines[0].lower()
    assert "pw-not-shown" not in result.stderr
    assert not (tmp_path / "embedded").exists() and not any(tmp_path.iterdir())  # no fall-back


def test_a_misspelt_variable_is_refused_with_a_suggestion():
    with pytest.raises(ConfigError, match=r"NOTIFYD_REDIS_ULR \(did you mean NOTIFYD_REDIS_URL\?\)"):
        check_environment({"NOTIFYD_REDIS_ULR": "redis://x", "PATH": "/bin"})


def test_the_cli_refuses_a_misspelt_variable_before_doing_anything():
    result = _notifyd("status", "inc-1", env={"NOTIFYD_REDIS_ULR": "redis://127.0.0.1:6379/0"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "notifyd: unknown environment variable NOTIFYD_REDIS_ULR (did you mean NOTIFYD_REDIS_URL?); "
        "config/notifyd.example.toml lists every setting"
    ]


def test_variables_of_the_tests_ci_and_the_cli_are_allowed_by_name():
    check_environment(
        {
            "NOTIFYD_TEST_REDIS_URL": "redis://127.0.0.1:6379/9",
            "NOTIFYD_API_URL": "http://127.0.0.1:8080",
            "NOTIFYD_API_KEY": "k",
            "NOTIFYD_CONFIG": "notifyd.toml",
            "NOTIFYD_WORKER_INDEX": "0",
            "notifyd_shard_size": "10",  # settings are read case-insensitively
        }
    )
    with pytest.raises(ConfigError, match="NOTIFYD_TEST_REDIS_ULR"):
        check_environment({"NOTIFYD_TEST_REDIS_ULR": "redis://127.0.0.1:6379/9"})


def test_an_empty_redis_url_is_refused_rather_than_read_as_embedded(monkeypatch):
    monkeypatch.setenv("NOTIFYD_REDIS_URL", "")
    with pytest.raises(ConfigError, match="NOTIFYD_REDIS_URL is set but empty"):
        load_settings()


def test_json_logs_are_one_object_per_line_with_the_event_lane_and_channel(capsys):
    logs.configure("json")
    try:
        log = logging.getLogger("notifyd.test")
        with logs.log_context(event_id="inc-42", lane="critical", step="ingest"):
            log.warning("shard %d: event has expired", 3, extra={"channel": "webhook", "delivery_id": "d-1"})
        log.warning("outside any event")
    finally:
        logs.configure("text")
    first, second = (json.loads(line) for line in capsys.readouterr().err.strip().splitlines())
    assert first["message"] == "shard 3: event has expired" and first["level"] == "warning"
    assert (first["event_id"], first["lane"], first["channel"], first["delivery_id"], first["step"]) == (
        "inc-42",
        "critical",
        "webhook",
        "d-1",
        "ingest",
    )
    assert "event_id" not in second and second["logger"] == "notifyd.test"


def test_log_format_json_is_a_setting(monkeypatch):
    monkeypatch.setenv("NOTIFYD_LOG_FORMAT", "json")
    assert load_settings().log_format == "json"
    monkeypatch.setenv("NOTIFYD_LOG_FORMAT", "yaml")
    with pytest.raises(ConfigError, match="NOTIFYD_LOG_FORMAT"):
        load_settings()


def test_a_misspelt_variable_is_refused_by_commands_that_talk_to_a_remote_api_too():
    result = _notifyd("status", "inc-1", "--api", "http://127.0.0.1:1", env={"NOTIFYD_API_KEI": "k"})
    assert result.returncode == 2
    assert "NOTIFYD_API_KEI (did you mean NOTIFYD_API_KEY?)" in result.stderr
