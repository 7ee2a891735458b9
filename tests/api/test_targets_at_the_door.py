"""Webhook and Slack targets in a non-public range are refused when subscribing, by every
route in (add, import, the API, the CLI), unless private targets are allowed."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from channels.addresses import is_public_address
from notifyd.state.subscribers import SubscriberError, TargetRefused
from tests.api.conftest import Api
from tests.test_cli import cli  # noqa: F401 - the fixture

#: target -> the range its refusal must name
PRIVATE = {
    "https://127.0.0.1/hook": "127.0.0.0/8",
    "https://169.254.169.254/latest/meta-data": "169.254.0.0/16",
    "https://10.0.0.1/x": "10.0.0.0/8",
    "https://localhost/x": "loopback",
    "https://LOCALHOST./x": "loopback",
    "https://api.localhost/x": "loopback",
    "https://[::1]/x": "::1/128",
    "https://[fec0::1]/x": "fec0::/10",
    "https://[fd12:3456::1]/x": "fc00::/7",
    "https://[::ffff:192.168.1.1]/x": "192.168.0.0/16",
    "https://100.64.0.1/x": "100.64.0.0/10",
}


def test_fec0_site_local_is_not_public_at_send_time_either():
    assert not is_public_address("fec0::1")
    assert not is_public_address("fec0:1234::abcd")
    assert is_public_address("2606:4700::1111")


@pytest.mark.parametrize(("target", "named"), PRIVATE.items())
def test_a_private_webhook_target_is_refused_at_add_and_per_line_at_import(runtime, target, named):
    rt = runtime(allow_private_targets=False)
    with pytest.raises(SubscriberError, match="non-public") as refused:
        rt.subscribers.add("acme", {"channel": "webhook", "target": target})
    assert named in str(refused.value)
    good = {"channel": "webhook", "target": "https://93.184.215.14/ok"}
    results = list(
        rt.subscribers.import_many("acme", [(1, good), (2, {"channel": "webhook", "target": target})])
    )
    assert results[0][1].created
    assert isinstance(results[1][1], SubscriberError) and named in str(results[1][1])
    assert rt.subscribers.count("acme") == 1


@pytest.mark.parametrize("target", list(PRIVATE))
def test_the_same_targets_are_accepted_when_private_targets_are_allowed(runtime, target):
    rt = runtime(allow_private_targets=True)
    assert rt.subscribers.add("acme", {"channel": "webhook", "target": target}).created


def test_a_name_that_resolves_only_to_private_addresses_is_refused_naming_the_range(runtime):
    rt = runtime(allow_private_targets=False)
    answers = {
        "internal.example.com": ["10.1.2.3", "fd00::5"],
        "metadata.example.com": ["169.254.169.254"],
        "mixed.example.com": ["10.1.2.3", "93.184.215.14"],
        "hooks.slack.com": ["192.168.7.7"],
    }
    asked: list[str] = []

    def resolver(host: str) -> list[str] | None:
        asked.append(host)
        return answers.get(host)

    rt.subscribers.hosts.resolver = resolver
    with pytest.raises(TargetRefused, match=r"10\.0\.0\.0/8 \(private\)"):
        rt.subscribers.add("acme", {"channel": "webhook", "target": "https://internal.example.com/h"})
    with pytest.raises(TargetRefused, match="169.254.0.0/16"):
        rt.subscribers.add("acme", {"channel": "webhook", "target": "https://metadata.example.com/"})
    with pytest.raises(TargetRefused, match="192.168.0.0/16"):
        rt.subscribers.add("acme", {"channel": "slack", "target": "https://hooks.slack.com/services/T/B/x"})
    assert rt.subscribers.add("acme", {"channel": "webhook", "target": "https://mixed.example.com/h"}).created
    unknown = rt.subscribers.add("acme", {"channel": "webhook", "target": "https://nowhere.example.com/h"})
    assert unknown.created and "does not resolve" in unknown.warnings[0]
    rows = [(n, {"channel": "webhook", "target": f"https://internal.example.com/{n}"}) for n in range(50)]
    assert all(isinstance(r, TargetRefused) for _, r in rt.subscribers.import_many("acme", rows))
    assert asked.count("internal.example.com") == 1  # an import asks DNS once per host


def test_a_whsec_secret_that_is_not_base64_is_refused_without_echoing_it(runtime):
    rt = runtime()
    bad = "whsec_not*base64*at-all!!"
    with pytest.raises(SubscriberError, match="base64") as refused:
        rt.subscribers.add("acme", {"channel": "webhook", "target": "https://example.com/h", "secret": bad})
    assert bad not in str(refused.value)
    with pytest.raises(SubscriberError, match="base64"):  # base64 but unpadded
        rt.subscribers.add(
            "acme",
            {"channel": "webhook", "target": "https://example.com/h", "secret": "whsec_QUJDREVGR0hJSks"},
        )
    ok = rt.subscribers.add(
        "acme", {"channel": "webhook", "target": "https://example.com/h", "secret": "whsec_QUJDREVGR0hJSktM"}
    )
    assert ok.created


def test_the_api_answers_422_naming_the_target_and_the_range(start_api: Callable[..., Api]):
    api = start_api(allow_private_targets=False)
    with api.client() as http:
        for target, named in PRIVATE.items():
            r = http.post("/v1/pages/acme/subscribers", json={"channel": "webhook", "target": target})
            assert r.status_code == 422, (target, r.text)
            assert r.headers["content-type"] == "application/problem+json"
            assert "target" in [e["field"] for e in r.json()["errors"]] and named in r.text
        api.runtime.subscribers.hosts.resolver = lambda host: ["10.9.9.9"]
        r = http.post(
            "/v1/pages/acme/subscribers", json={"channel": "webhook", "target": "https://in.example/h"}
        )
        assert r.status_code == 422 and "10.0.0.0/8" in r.text
        body = "".join(json.dumps({"channel": "webhook", "target": t}) + "\n" for t in PRIVATE).encode()
        summary = http.post("/v1/pages/acme/subscribers:import", content=body).json()
        assert summary["rejected_total"] == len(PRIVATE) and summary["imported"] == 0
    assert api.runtime.subscribers.count("acme") == 0


def test_the_api_accepts_them_when_private_targets_are_allowed(start_api: Callable[..., Api]):
    api = start_api(allow_private_targets=True)
    with api.client() as http:
        for target in PRIVATE:
            r = http.post("/v1/pages/acme/subscribers", json={"channel": "webhook", "target": target})
            assert r.status_code == 201, (target, r.text)


def test_the_cli_refuses_them_at_add_and_import_with_a_clear_error(cli):  # noqa: F811
    off = {"NOTIFYD_ALLOW_PRIVATE_TARGETS": "false"}
    for target in (
        "https://127.0.0.1/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://localhost/x",
    ):
        added = cli(
            "subscribers", "add", "--page", "acme", "--channel", "webhook", "--target", target, extra_env=off
        )
        assert added.returncode == 2 and "non-public" in added.stderr, added.stderr
    lines = "".join(json.dumps({"channel": "webhook", "target": t}) + "\n" for t in PRIVATE)
    imported = cli("subscribers", "import", "--page", "acme", "-", stdin=lines, extra_env=off)
    summary = json.loads(imported.stdout)
    assert len(summary["rejected"]) == len(PRIVATE) and summary["imported"] == 0
    assert "10.0.0.0/8" in json.dumps(summary["rejected"])
    on = cli(
        "subscribers", "add", "--page", "acme", "--channel", "webhook", "--target", "https://127.0.0.1/hook"
    )
    assert on.returncode == 0, on.stderr
