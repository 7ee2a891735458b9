"""An opt-out is final: no add or import re-enables a subscriber who said stop.

Only a forced reactivation by an operator does, and it is written to the audit trail.
Quarantine and invalid-target states are not consent: ``reactivate`` clears them, a
re-import does not.
"""

from __future__ import annotations

import json

import httpx
import pytest

from notifyd import unsubscribe
from notifyd.state import audit
from notifyd.state.subscribers import ConsentError
from tests.api.conftest import Api
from tests.support.events import incident_event
from tests.support.wait import wait_until
from tests.test_cli import cli  # noqa: F401 - the fixture

OPT_OUTS = ["unsubscribed", "endpoint_gone"]


def _disabled(rt, sub_id: str, reason: str) -> None:
    sub = rt.subscribers.get("acme", sub_id)
    rt.subscribers.disable("acme", sub.seq, reason)


@pytest.mark.parametrize("reason", OPT_OUTS)
def test_an_opted_out_subscriber_is_kept_as_it_is_by_add_and_import(runtime, reason):
    rt = runtime()
    line = {"channel": "webhook", "target": "https://example.com/hook", "components": ["api"]}
    sub = rt.subscribers.add("acme", line).subscriber
    _disabled(rt, sub.id, reason)

    again = rt.subscribers.add("acme", {**line, "components": ["db"], "secret": "whsec_" + "B" * 32})
    assert again.outcome == "kept_unsubscribed" and not again.created
    assert again.subscriber.disabled == reason
    results = list(rt.subscribers.import_many("acme", [(1, line), (2, {**line, "id": sub.id})]))
    assert [r.outcome for _, r in results] == ["kept_unsubscribed", "kept_unsubscribed"]

    stored = rt.subscribers.get("acme", sub.id)
    assert stored.disabled == reason
    assert stored.components == frozenset({"api"})  # nothing about it changed
    assert rt.subscribers.secret_of(stored) == rt.subscribers.secret_of(sub)


@pytest.mark.parametrize("reason", ["quarantined", "invalid_target"])
def test_a_quarantined_subscriber_is_updated_by_a_reimport_but_stays_disabled(runtime, reason):
    rt = runtime()
    line = {"channel": "webhook", "target": "https://example.com/hook"}
    sub = rt.subscribers.add("acme", line).subscriber
    _disabled(rt, sub.id, reason)
    ((_, result),) = rt.subscribers.import_many("acme", [(1, {**line, "components": ["db"]})])
    assert result.outcome == "updated"
    stored = rt.subscribers.get("acme", sub.id)
    assert stored.disabled == reason and stored.components == frozenset({"db"})
    # reactivate clears it, no force needed, and says who did it
    assert rt.subscribers.reactivate("acme", sub.id, actor="cli:ops").disabled is None
    assert audit.recent(rt.client, rt.keys, "acme")[0]["cleared"] == reason


def test_reactivating_an_opt_out_needs_force_and_is_audited_with_who_and_when(runtime):
    rt = runtime()
    sub = rt.subscribers.add("acme", {"channel": "sms", "target": "+14155552671"}).subscriber
    _disabled(rt, sub.id, "unsubscribed")
    with pytest.raises(ConsentError, match="opted out"):
        rt.subscribers.reactivate("acme", sub.id, actor="cli:ops")
    assert rt.subscribers.get("acme", sub.id).disabled == "unsubscribed"
    assert audit.recent(rt.client, rt.keys, "acme") == []

    back = rt.subscribers.reactivate("acme", sub.id, force=True, actor="cli:alice")
    assert back.disabled is None
    (entry,) = audit.recent(rt.client, rt.keys, "acme")
    assert entry["actor"] == "cli:alice" and entry["forced"] is True
    assert entry["action"] == "reactivate" and entry["subscriber_id"] == sub.id
    assert entry["cleared"] == "unsubscribed" and entry["at"].endswith("Z")


def test_an_opt_out_replaces_a_quarantine_and_nothing_replaces_an_opt_out(runtime):
    rt = runtime()
    sub = rt.subscribers.add("acme", {"channel": "webhook", "target": "https://example.com/q"}).subscriber
    rt.subscribers.disable("acme", sub.seq, "quarantined")
    rt.subscribers.disable("acme", sub.seq, "unsubscribed")
    assert rt.subscribers.get("acme", sub.id).disabled == "unsubscribed"
    rt.subscribers.disable("acme", sub.seq, "quarantined")
    rt.subscribers.disable("acme", sub.seq, "endpoint_gone")
    assert rt.subscribers.get("acme", sub.id).disabled == "unsubscribed"
    with pytest.raises(ConsentError):
        rt.subscribers.reactivate("acme", sub.id)


def test_after_a_one_click_unsubscribe_every_route_back_in_keeps_it_and_nothing_is_delivered(
    api: Api,
    http: httpx.Client,
    cli,  # noqa: F811
    recorder,
    start_worker,
):
    rt = api.runtime
    reader = {"channel": "email", "target": "reader@example.com"}
    other = {"channel": "email", "target": "other@example.com"}
    sub_id = http.post("/v1/pages/acme/subscribers", json=reader).json()["id"]
    http.post("/v1/pages/acme/subscribers", json=other)
    link = unsubscribe.url(
        api.url, rt.link_keys.current().signing, "acme", sub_id, reader["target"], 86400 * 30
    )
    with httpx.Client() as mail_provider:
        assert mail_provider.post(link, content=b"List-Unsubscribe=One-Click").status_code == 200

    # The API import, the API add, the CLI import and the CLI add.
    body = (json.dumps(reader) + "\n" + json.dumps(other) + "\n").encode()
    summary = http.post("/v1/pages/acme/subscribers:import", content=body).json()
    assert (summary["kept_unsubscribed"], summary["updated"], summary["imported"]) == (1, 1, 0)
    added = http.post("/v1/pages/acme/subscribers", json=reader)
    assert added.status_code == 200
    assert (added.json()["status"], added.json()["disabled_reason"]) == ("disabled", "unsubscribed")
    imported = cli("subscribers", "import", "--page", "acme", "-", stdin=json.dumps(reader) + "\n")
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout)["kept_unsubscribed"] == 1
    cli_add = cli("subscribers", "add", "--page", "acme", "--channel", "email", "--target", reader["target"])
    assert cli_add.returncode == 0 and json.loads(cli_add.stdout)["status"] == "disabled"
    assert "reactivate --force" in cli_add.stderr
    refused = http.post(f"/v1/pages/acme/subscribers/{sub_id}/reactivate")
    assert refused.status_code == 409 and "opted out" in refused.json()["detail"]
    assert cli("subscribers", "reactivate", "--page", "acme", sub_id).returncode == 2

    start_worker(rt)
    event = incident_event()
    assert http.post("/v1/events", json=event).status_code == 202
    assert wait_until(lambda: http.get(f"/v1/events/{event['event_id']}").json()["state"] == "done")
    assert {s.target for s in recorder.for_event(event["event_id"])} == {"other@example.com"}
    listed = {s["id"]: s for s in http.get("/v1/pages/acme/subscribers").json()["items"]}
    assert listed[sub_id]["disabled_reason"] == "unsubscribed"


def test_a_forced_reactivation_through_the_api_names_the_key_in_the_audit_trail(api: Api, http: httpx.Client):
    rt = api.runtime
    sub = http.post("/v1/pages/acme/subscribers", json={"channel": "sms", "target": "+14155552671"}).json()
    _disabled(rt, sub["id"], "unsubscribed")
    r = http.post(f"/v1/pages/acme/subscribers/{sub['id']}/reactivate", params={"force": "true"})
    assert r.status_code == 200 and r.json()["status"] == "active"
    (entry,) = audit.recent(rt.client, rt.keys, "acme")
    assert entry["actor"].startswith("key:") and entry["forced"] is True
    assert "test-all-key" not in json.dumps(entry)


def test_a_forced_reactivation_from_the_cli_names_the_actor(runtime, cli):  # noqa: F811
    rt = runtime()
    sub = rt.subscribers.add("acme", {"channel": "sms", "target": "+14155552671"}).subscriber
    _disabled(rt, sub.id, "endpoint_gone")
    done = cli("subscribers", "reactivate", "--page", "acme", sub.id, "--force", "--actor", "alice")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "active"
    assert audit.recent(rt.client, rt.keys, "acme")[0]["actor"] == "cli:alice"


def test_a_webhook_that_answered_410_stays_disabled_through_a_reimport_and_gets_nothing(
    api: Api, http: httpx.Client, sink, start_worker
):
    from tests.support.sink import Reply

    sink.replies["/gone"] = Reply(410)
    line = {"channel": "webhook", "target": f"{sink.url}/gone"}
    sub_id = http.post("/v1/pages/acme/subscribers", json=line).json()["id"]
    start_worker(api.runtime)
    first = incident_event()
    http.post("/v1/events", json=first)
    assert wait_until(lambda: http.get(f"/v1/events/{first['event_id']}").json()["state"] == "done")
    assert api.runtime.subscribers.get("acme", sub_id).disabled == "endpoint_gone"

    sink.replies["/gone"] = Reply(200)  # the endpoint is back, but its owner said it was gone
    summary = http.post("/v1/pages/acme/subscribers:import", content=json.dumps(line).encode()).json()
    assert summary["kept_unsubscribed"] == 1
    hits = len([r for r in sink.received if r.path == "/gone"])
    second = incident_event()
    http.post("/v1/events", json=second)
    assert wait_until(lambda: http.get(f"/v1/events/{second['event_id']}").json()["state"] == "done")
    assert len([r for r in sink.received if r.path == "/gone"]) == hits
    assert api.runtime.subscribers.get("acme", sub_id).disabled == "endpoint_gone"
