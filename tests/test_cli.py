"""The command line as a user runs it: real processes, real Redis."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.env import cli_env
from tests.support.events import incident_event, ref


@pytest.fixture
def cli(make_settings, runtimes):  # runtimes: deletes the namespace afterwards
    settings = make_settings()
    env = cli_env(settings)

    def run(*args: str, stdin: str | None = None, extra_env: dict[str, str] | None = None):
        return subprocess.run(
            [sys.executable, "-m", "notifyd", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env={**env, **(extra_env or {})},
            timeout=60,
        )

    return run


def test_publish_accepts_then_reports_a_duplicate_with_exit_zero(cli):
    event = json.dumps(incident_event())
    first = cli("publish", "-", stdin=event)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["status"] == "accepted"
    again = cli("publish", "-", stdin=event)
    assert again.returncode == 0
    assert json.loads(again.stdout)["status"] == "duplicate"


def test_publish_of_an_invalid_event_exits_2_naming_the_field(cli, runtime):
    event = incident_event()
    event["incident"]["status"] = "on-fire"
    result = cli("publish", "-", stdin=json.dumps(event))
    assert result.returncode == 2
    assert "incident.status" in result.stderr
    rt = runtime()
    assert rt.tracker.summary(ref(event)) is None


def test_publish_streams_ndjson_and_reports_each_bad_line(cli):
    good, bad = incident_event(), incident_event(surprise=True)
    result = cli("publish", "-", stdin=json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    assert result.returncode == 2
    assert json.loads(result.stdout.splitlines()[0])["status"] == "accepted"
    assert "line 2" in result.stderr and "surprise" in result.stderr


def test_subscribers_add_list_and_remove(cli):
    added = cli(
        "subscribers",
        "add",
        "--page",
        "acme",
        "--channel",
        "webhook",
        "--target",
        "https://hooks.example.com/x",
    )
    assert added.returncode == 0, added.stderr
    sub = json.loads(added.stdout)
    assert sub["secret"].startswith("whsec_")
    listed = [json.loads(line) for line in cli("subscribers", "list", "--page", "acme").stdout.splitlines()]
    assert [s["id"] for s in listed] == [sub["id"]]
    assert "secret" not in listed[0]
    reactivated = cli("subscribers", "reactivate", "--page", "acme", sub["id"])
    assert reactivated.returncode == 0 and json.loads(reactivated.stdout)["status"] == "active"
    assert cli("subscribers", "remove", "--page", "acme", sub["id"]).returncode == 0
    assert cli("subscribers", "remove", "--page", "acme", sub["id"]).returncode == 2
    assert cli("subscribers", "reactivate", "--page", "acme", sub["id"]).returncode == 2


def test_subscribers_import_reads_csv_with_component_lists(cli, tmp_path):
    path = tmp_path / "subs.csv"
    path.write_text(
        "channel,target,components\nemail,a@example.com,api;db\nsms,+14155552671,\nsms,not-a-number,\n"
    )
    result = cli("subscribers", "import", "--page", "acme", str(path))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.splitlines()[-1])
    assert (summary["imported"], summary["updated"]) == (2, 0)
    assert summary["rejected"][0]["line"] == 4
    listed = [json.loads(line) for line in cli("subscribers", "list", "--page", "acme").stdout.splitlines()]
    assert listed[0]["components"] == ["api", "db"]


def test_status_of_an_unknown_event_exits_2(cli):
    result = cli("status", "no-such-event", "--json")
    assert result.returncode == 2
    assert "no event" in result.stderr


def test_broken_config_file_stops_the_command_with_a_message(cli, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("shard_sise = 10\n")
    result = cli("--config", str(path), "queues", "--once")
    assert result.returncode == 2
    assert "shard_sise" in result.stderr and "Traceback" not in result.stderr


def test_queues_once_reports_every_lane_as_json(cli):
    result = cli("queues", "--once", "--json")
    assert result.returncode == 0, result.stderr
    lanes = [lane["lane"] for lane in json.loads(result.stdout)["lanes"]]
    assert lanes == ["critical", "high", "normal", "low"]
