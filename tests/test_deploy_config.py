"""docker-compose.yml, Prometheus' config and alert rules, and Grafana's provisioning hold together.

`make compose-check` runs this file, then `docker compose config` and `promtool check rules`
where those are installed. This test needs neither: it parses the files, and checks every metric
and label that an alert or a dashboard panel names against what notifyd actually exports.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from notifyd.api.metrics import QueueCollector, exposition
from notifyd.runtime.wiring import Runtime

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
NOTIFYD_SERVICES = [name for name, svc in SERVICES.items() if svc.get("build")]
PROMETHEUS = yaml.safe_load((ROOT / "config/prometheus.yml").read_text())
ALERTS = yaml.safe_load((ROOT / "config/alerts.yml").read_text())
DASHBOARD_DIR = ROOT / "config/grafana/dashboards"

#: Series Prometheus makes itself, with the labels it gives them.
PROMETHEUS_SERIES = {"up": {"job", "instance"}}
#: Labels every scraped series gets from the scrape config.
TARGET_LABELS = {"job", "instance", "component", "pool"}


def _mounts(service: str) -> dict[str, Path]:
    """Container path -> host path of a service's bind mounts."""
    found = {}
    for volume in SERVICES[service].get("volumes", []):
        host, container = volume.split(":")[:2]
        if host.startswith("./"):
            found[container] = ROOT / host
    return found


def _option(command: list[str], flag: str) -> str | None:
    return command[command.index(flag) + 1] if flag in command else None


# -- compose ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_service_has_a_healthcheck_and_a_restart_policy(name):
    service = SERVICES[name]
    assert service.get("restart") in ("unless-stopped", "always", "on-failure"), name
    test = service.get("healthcheck", {}).get("test")
    assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name


@pytest.mark.parametrize("name", NOTIFYD_SERVICES)
def test_notifyd_services_wait_for_a_healthy_redis(name):
    assert SERVICES[name]["depends_on"] == {"redis": {"condition": "service_healthy"}}
    assert SERVICES[name]["environment"]["NOTIFYD_REDIS_URL"].startswith("redis://redis:")


def test_every_depends_on_names_a_service_and_a_condition():
    for name, service in SERVICES.items():
        for dependency, how in service.get("depends_on", {}).items():
            assert dependency in SERVICES, (name, dependency)
            assert how["condition"] in ("service_healthy", "service_started"), (name, dependency)
            if how["condition"] == "service_healthy":
                assert "healthcheck" in SERVICES[dependency], dependency


def test_the_api_key_hint_asks_for_strong_keys():
    hint = SERVICES["api"]["environment"]["NOTIFYD_API_KEYS"]
    assert hint.startswith("${NOTIFYD_API_KEYS:?")  # no default: compose refuses to start without keys
    assert "rand" in hint and not re.search(r"\b\w{1,8}:(publish|operate)", hint)


@pytest.mark.parametrize("name", NOTIFYD_SERVICES)
def test_every_notifyd_service_needs_the_same_secret_key_and_has_no_default(name):
    # The API seals webhook secrets that the workers open: one key for all, never a default.
    assert SERVICES[name]["environment"]["NOTIFYD_SECRET_KEY"].startswith("${NOTIFYD_SECRET_KEY:?")


# -- Prometheus -------------------------------------------------------------------------------


def _metrics_ports(service: str) -> set[int]:
    command = SERVICES[service]["command"]
    if command[0] == "serve":
        return {int(_option(command, "--port") or 8080)}
    first = int(_option(command, "--metrics-port") or 0)
    assert first, f"{service} exports no metrics"
    assert _option(command, "--metrics-host") == "0.0.0.0", f"{service}'s metrics are unreachable"
    return {first + i for i in range(int(_option(command, "--processes") or 1))}


def test_prometheus_scrapes_every_notifyd_process_by_service_name():
    targets = {
        target
        for job in PROMETHEUS["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }
    expected = {f"{name}:{port}" for name in NOTIFYD_SERVICES for port in _metrics_ports(name)}
    assert targets == expected


def test_prometheus_loads_the_alert_rules_that_compose_mounts():
    mounts = _mounts("prometheus")
    assert mounts["/etc/prometheus/prometheus.yml"] == ROOT / "config/prometheus.yml"
    for rule_file in PROMETHEUS["rule_files"]:
        assert mounts[rule_file].is_file(), rule_file


def test_every_alert_has_an_expression_a_duration_a_severity_and_a_summary():
    rules = [rule for group in ALERTS["groups"] for rule in group["rules"]]
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        assert rule["expr"] and re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in ("page", "ticket") and rule["annotations"]["summary"]
    watched = " ".join(rule["expr"] for rule in rules)
    for metric in (
        "notifyd_queue_oldest_age_seconds",
        "notifyd_deliveries_total",
        "notifyd_dead_deliveries",
        "notifyd_circuits_open",
        "notifyd_workers",
    ):
        assert metric in watched, metric


def test_every_paging_alert_has_a_promtool_unit_test():
    tests = yaml.safe_load((ROOT / "config/alerts.test.yml").read_text())
    assert tests["rule_files"] == ["alerts.yml"]
    tested = {case["alertname"] for test in tests["tests"] for case in test["alert_rule_test"]}
    rules = [rule for group in ALERTS["groups"] for rule in group["rules"]]
    paging = {rule["alert"] for rule in rules if rule["labels"]["severity"] == "page"}
    assert paging <= tested, paging - tested
    assert tested <= {rule["alert"] for rule in rules}


# -- Grafana ----------------------------------------------------------------------------------


def test_grafana_is_provisioned_with_the_prometheus_service_and_the_dashboards():
    mounts = _mounts("grafana")
    provisioning = mounts["/etc/grafana/provisioning"]
    datasources = yaml.safe_load((provisioning / "datasources/prometheus.yml").read_text())["datasources"]
    assert [(d["type"], d["url"], d.get("isDefault")) for d in datasources] == [
        ("prometheus", "http://prometheus:9090", True)
    ]
    providers = yaml.safe_load((provisioning / "dashboards/notifyd.yml").read_text())["providers"]
    for provider in providers:
        assert mounts[provider["options"]["path"]] == DASHBOARD_DIR
    dashboards = sorted(DASHBOARD_DIR.glob("*.json"))
    assert dashboards
    for path in dashboards:
        dashboard = json.loads(path.read_text())
        assert dashboard["uid"] and dashboard["panels"]


# -- every metric and label an alert or a panel names is exported ------------------------------


def _queries() -> Iterator[tuple[str, str, str]]:
    """(where, PromQL, legend) of every alert rule and dashboard panel target."""
    for group in ALERTS["groups"]:
        for rule in group["rules"]:
            yield f"alert {rule['alert']}", rule["expr"], " ".join(rule["annotations"].values())
    for path in sorted(DASHBOARD_DIR.glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                yield f"{path.name}: {panel['title']}", target["expr"], target.get("legendFormat", "")


@pytest.fixture
def exported(runtime: Callable[..., Runtime]) -> dict[str, set[str]]:
    """Every series name /metrics serves (the API's and the pipeline's), with its label names."""
    text = exposition(QueueCollector(runtime())).decode()
    series: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        names = {family.name}
        if family.type == "counter":
            names = {f"{family.name}_total", f"{family.name}_created"}
        elif family.type == "histogram":
            names = {f"{family.name}_{suffix}" for suffix in ("bucket", "sum", "count", "created")}
        labels = {label for sample in family.samples for label in sample.labels} - {"le"}
        for name in names:
            series.setdefault(name, set()).update(labels)
    # A labelled counter with no children yet has no samples: take its label names from the registry.
    for collector in list(REGISTRY._collector_to_names):  # noqa: SLF001
        labelnames = getattr(collector, "_labelnames", ())
        for name in REGISTRY._collector_to_names[collector]:  # noqa: SLF001
            if name in series:
                series[name].update(labelnames)
    return series


def test_every_metric_an_alert_or_a_panel_names_is_exported_with_those_labels(exported):
    known = {**exported, **PROMETHEUS_SERIES}
    problems = []
    for where, expr, legend in _queries():
        referenced = set()
        for name, matchers in re.findall(r"\b(notifyd_[a-z0-9_]+|up)\b(\{[^}]*\})?", expr):
            if name not in known:
                problems.append(f"{where}: {name} is not exported")
                continue
            referenced.add(name)
            for label in re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", matchers):
                if label not in known[name] | TARGET_LABELS:
                    problems.append(f"{where}: {name} has no label {label!r}")
        available = set().union(*(known[n] for n in referenced)) | TARGET_LABELS | {"le"}
        grouped = re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr)
        used = {label.strip() for group in grouped for label in group.split(",") if label.strip()}
        used |= set(re.findall(r"\{\{\s*\$?(?:labels\.)?([a-z_]+)\s*\}\}", legend)) - {"value"}
        for label in sorted(used - available):
            problems.append(f"{where}: no metric it reads has the label {label!r}")
    assert not problems, "\n".join(problems)
