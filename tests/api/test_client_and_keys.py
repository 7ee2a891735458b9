"""The Python client against a real server, and `notifyd keys create`."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import httpx
import pytest

from notifyd.api.keystore import parse_env_keys
from notifyd.cli import keys as cli_keys
from notifyd.client import ApiError, Client
from tests.api.conftest import KEYS, Api
from tests.support.env import cli_env
from tests.support.events import incident_event
from tests.support.sink import Sink
from tests.support.wait import wait_done, wait_until


def test_the_client_publishes_reads_and_manages_subscribers(api: Api, sink: Sink, start_worker):
    with Client(api.url, KEYS["all"]) as client:
        assert KEYS["all"] not in repr(client)
        sub = client.add_subscriber("acme", {"channel": "webhook", "target": f"{sink.url}/c"})
        assert sub["secret"].startswith("whsec_")
        summary = client.import_subscribers(
            "acme", ({"channel": "sms", "target": f"+1415555{i:04d}"} for i in range(5))
        )
        assert summary["imported"] == 5
        assert len(list(client.list_subscribers("acme", limit=2))) == 6
        client.remove_subscriber("acme", sub["id"])
        assert len(list(client.list_subscribers("acme"))) == 5

        event = incident_event()
        assert client.publish(event) == {"event_id": event["event_id"], "status": "accepted"}
        assert client.publish(json.dumps(event))["status"] == "duplicate"
        assert client.event(event["event_id"])["page_id"] == "acme"
        assert client.redrive(event["event_id"]) == 0
        assert client.queues()["lanes"]


def test_the_client_pages_through_all_deliveries(api: Api, sink: Sink, start_worker):
    with Client(api.url, KEYS["all"]) as client:
        subs = [
            client.add_subscriber("acme", {"channel": "webhook", "target": f"{sink.url}/{i}"})
            for i in range(5)
        ]
        start_worker(api.runtime)
        event = incident_event()
        client.publish(event)
        wait_done(client, event["event_id"])
        deliveries = list(client.deliveries(event["event_id"], limit=2))
        assert sorted(d["subscriber_id"] for d in deliveries) == sorted(s["id"] for s in subs)
        assert client.subscriber_deliveries(subs[0]["id"])[0]["event_id"] == event["event_id"]


def test_client_errors_carry_the_problem_fields(api: Api):
    with Client(api.url, KEYS["publish"]) as client:
        with pytest.raises(ApiError) as invalid:
            client.publish(incident_event(colour="red"))
        assert invalid.value.status == 422 and invalid.value.errors[0][0] == "colour"
        with pytest.raises(ApiError) as forbidden:
            client.event("x")
        assert forbidden.value.status == 403
    with Client("http://127.0.0.1:9", KEYS["publish"], timeout=1) as client, pytest.raises(ApiError) as down:
        client.event("x")
    assert down.value.status == 0


def test_keys_create_prints_a_key_once_and_stores_only_its_hash(api: Api):
    parser = argparse.ArgumentParser()
    cli_keys.register(parser.add_subparsers())
    assert parser.parse_args(["keys", "create", "--scope", "publish+operate"]).func is cli_keys.run
    env = cli_env(redis_url=api.runtime.url, namespace=api.runtime.settings.namespace)
    code = (
        "import sys, argparse\n"
        "from notifyd.cli import keys as cli_keys\n"
        "p = argparse.ArgumentParser(); cli_keys.register(p.add_subparsers())\n"
        "a = p.parse_args(sys.argv[1:]); sys.exit(a.func(a))\n"
    )
    made = subprocess.run(
        [sys.executable, "-c", code, "keys", "create", "--scope", "operate", "--name", "grafana"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    key = made.stdout.strip()
    assert key.startswith("nk_") and key not in made.stderr
    stored = api.runtime.client.hgetall(f"{api.runtime.settings.namespace}:apikeys")
    assert key.encode() not in b"".join(k + v for k, v in stored.items())
    with httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {key}"}) as http:
        assert http.get("/v1/queues").status_code == 200
    listed = subprocess.run(
        [sys.executable, "-c", code, "keys", "list"], env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(listed.stdout)["name"] == "grafana" and key not in listed.stdout
    bad = subprocess.run(
        [sys.executable, "-c", code, "keys", "create", "--scope", "root"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "root" in bad.stderr


def test_env_keys_parse_scopes_and_refuse_unknown_ones_without_echoing_the_key():
    alpha, beta = (
        "alpha-" + "0123456789abcdefghijklmnopqrstuvwxyz",
        "beta-" + "9876543210zyxwvutsrqponmlkjihgfedcba",
    )
    parsed = parse_env_keys(f"{alpha}:publish, {beta}:operate+admin")
    assert sorted(sorted(g.scopes) for g in parsed.values()) == [["admin", "operate"], ["publish"]]
    with pytest.raises(ValueError) as bad:
        parse_env_keys("supersecret-0123456789abcdefghijklmnop:god")
    assert "supersecret" not in str(bad.value)


def _cli(*args: str, key: str | None, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = cli_env(api_key=key)
    return subprocess.run(
        [sys.executable, "-m", "notifyd", *args], input=stdin, env=env, capture_output=True, text=True
    )


def test_cli_publish_and_status_talk_to_a_running_server_with_api(api: Api, sink: Sink, start_worker):
    api.runtime.subscribers.add("acme", {"channel": "webhook", "target": f"{sink.url}/remote"})
    start_worker(api.runtime)
    event = incident_event()
    published = _cli("publish", "--api", api.url, "-", key=KEYS["publish"], stdin=json.dumps(event))
    assert published.returncode == 0, published.stderr
    assert json.loads(published.stdout) == {"event_id": event["event_id"], "status": "accepted"}
    assert KEYS["publish"] not in published.stdout + published.stderr

    def done() -> bool:
        shown = _cli("status", "--api", api.url, event["event_id"], "--json", key=KEYS["operate"])
        assert shown.returncode == 0, shown.stderr
        return bool(json.loads(shown.stdout)["state"] == "done")

    assert wait_until(done, timeout=20)
    assert len(sink.on("/remote")) == 1

    bad = dict(event, event_id="ev-bad", type="incident_exploded")
    refused = _cli("publish", "--api", api.url, "-", key=KEYS["publish"], stdin=json.dumps(bad))
    assert refused.returncode == 2 and "type" in refused.stderr

    missing = _cli("status", "--api", api.url, "ev-never", key=KEYS["operate"])
    assert missing.returncode == 2 and "ev-never" in missing.stderr

    wrong_scope = _cli("publish", "--api", api.url, "-", key=KEYS["operate"], stdin=json.dumps(event))
    assert wrong_scope.returncode == 2 and "HTTP 403" in wrong_scope.stderr

    no_key = _cli("publish", "--api", api.url, "-", key=None, stdin=json.dumps(event))
    assert no_key.returncode == 2 and "NOTIFYD_API_KEY" in no_key.stderr
