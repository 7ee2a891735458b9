"""Fuzzing: hypothesis over event bodies, schemathesis over every operation of /openapi.json,
as the `schemathesis run --checks all` command and in process with no key and a wrong-scope key."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable

from notifyd.store import StatusStore
from tests.api.conftest import KEYS, Api
from tests.support.browser import ARTIFACTS
from tests.support.env import cli_env

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

ids = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40)
incident = st.fixed_dictionaries(
    {
        "id": ids,
        "title": st.text(min_size=1, max_size=60).filter(str.strip),
        "status": st.sampled_from(["investigating", "identified", "monitoring", "resolved", "postmortem"]),
    },
    optional={
        "impact": st.sampled_from(["none", "minor", "major", "critical"]),
        "message": st.text(max_size=200),
        "components": st.lists(ids, max_size=5),
    },
)
component = st.fixed_dictionaries(
    {
        "id": ids,
        "status": st.sampled_from(
            ["operational", "degraded_performance", "partial_outage", "major_outage", "under_maintenance"]
        ),
    },
    optional={"name": st.text(max_size=40)},
)
common = {
    "event_id": st.builds(lambda: f"fz-{uuid.uuid4().hex}"),
    "page_id": st.from_regex(r"\A[A-Za-z0-9_.:-]{1,30}\Z"),
    "occurred_at": st.sampled_from(["2026-11-28T13:00:00Z", "2026-01-01T00:00:00+02:00"]),
}
optional = {
    "priority": st.sampled_from(["critical", "high", "normal", "low"]),
    "dedup_key": st.builds(lambda: uuid.uuid4().hex),
    "notify": st.booleans(),
}
valid_events = st.one_of(
    st.fixed_dictionaries(
        {
            **common,
            "type": st.sampled_from(["incident_created", "incident_updated", "incident_resolved"]),
            "incident": incident,
        },
        optional=optional,
    ),
    st.fixed_dictionaries(
        {**common, "type": st.just("component_status_changed"), "component": component}, optional=optional
    ),
)


def _break(event: dict[str, Any], how: str, junk: Any) -> dict[str, Any]:
    broken = dict(event)
    if how == "unknown field":
        broken["surprise"] = junk
    elif how == "bad type":
        broken["type"] = "incident_exploded"
    elif how == "bad priority":
        broken["priority"] = "urgent"
    elif how == "missing field":
        broken.pop("page_id")
    elif how == "wrong json type":
        broken["notify"] = [junk]
    elif how == "number as a boolean":
        broken["notify"] = 0  # strict: pydantic's lax bool would read 0 as false
    elif how == "number as a timestamp":
        broken["occurred_at"] = 1764680400  # strict: pydantic's lax datetime would read Unix time
    elif how == "long event id":
        broken["event_id"] = "e" * 129
    elif how == "naive timestamp":
        broken["occurred_at"] = "2026-11-28T13:00:00"
    elif how == "payload of the other type":
        broken.pop("incident", None) or broken.pop("component", None)
    return broken


invalid_events = st.builds(
    _break,
    valid_events,
    st.sampled_from(
        [
            "unknown field",
            "bad type",
            "bad priority",
            "missing field",
            "wrong json type",
            "number as a boolean",
            "number as a timestamp",
            "long event id",
            "naive timestamp",
            "payload of the other type",
        ]
    ),
    st.one_of(st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=2), st.none()),
)


@pytest.fixture
def fuzz_api(start_api: Callable[..., Api]) -> Api:
    return start_api(store=StatusStore.memory("api-node"), app_options={"publish_rate": "100000/second"})


@FAST
@given(event=invalid_events)
def test_an_invalid_event_is_a_422_and_enqueues_nothing(fuzz_api: Api, event: dict[str, Any]):
    before = fuzz_api.queue_length()
    with fuzz_api.client("publish") as http:
        r = http.post("/v1/events", json=event)
    assert r.status_code == 422, (event, r.text)
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["errors"], r.text
    assert fuzz_api.queue_length() == before


@FAST
@given(event=valid_events)
def test_a_valid_event_is_a_202(fuzz_api: Api, event: dict[str, Any]):
    with fuzz_api.client("publish") as http:
        r = http.post("/v1/events", json=event)
    assert r.status_code == 202, (event, r.text)


@FAST
@given(body=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)))
def test_arbitrary_bytes_as_an_event_never_get_a_5xx_nor_enqueue(fuzz_api: Api, body: bytes):
    before = fuzz_api.queue_length()
    with fuzz_api.client("publish") as http:
        r = http.post("/v1/events", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert fuzz_api.queue_length() == before


# -- schemathesis ----------------------------------------------------------------------------
# The whole document is fuzzed by the `schemathesis run --checks all` test at the end of this file
# (every check, every phase); it replaced an in-process loop that ran a lenient subset of checks.


def test_the_openapi_document_describes_every_contract_route(fuzz_api: Api):
    paths = httpx.get(f"{fuzz_api.url}/openapi.json").json()["paths"]
    contract = {
        ("post", "/v1/events"),
        ("get", "/v1/events/{event_id}"),
        ("get", "/v1/events/{event_id}/deliveries"),
        ("post", "/v1/events/{event_id}/redrive"),
        ("post", "/v1/pages/{page_id}/subscribers"),
        ("post", "/v1/pages/{page_id}/subscribers:import"),
        ("get", "/v1/pages/{page_id}/subscribers"),
        ("delete", "/v1/pages/{page_id}/subscribers/{subscriber_id}"),
        ("get", "/v1/pages/{page_id}/status"),
        ("get", "/v1/subscribers/{subscriber_id}/deliveries"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
        ("get", "/dashboard"),
    }
    assert contract <= {(m, p) for p, ops in paths.items() for m in ops}
    assert httpx.get(f"{fuzz_api.url}/docs").status_code == 200


# -- the CLI, as an outsider runs it -----------------------------------------------------------
# `schemathesis run --checks all` (every check, every phase: examples, coverage, fuzzing and
# stateful) against a running server, not the in-process loop above. TEST_SCHEMATHESIS_PHASES
# picks fewer phases for a quick local run. One worker: two threads in one interpreter can trip
# CPython 3.11's ast.parse (hypothesis describing a filter lambda: "AST constructor recursion
# depth mismatch"), a schemathesis error, not a finding. The seed is fixed so a red run replays
# the same cases; the JUnit report and the output land in var/test-artifacts/.

REPO = Path(__file__).resolve().parents[2]
CONFIG = Path(__file__).with_name("schemathesis.toml")
#: Every phase, unless TEST_SCHEMATHESIS_PHASES names fewer (comma-separated).
ALL_PHASES = "examples,coverage,fuzzing,stateful"


def _phases() -> str:
    return os.environ.get("TEST_SCHEMATHESIS_PHASES") or ALL_PHASES


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_schemathesis_with_every_check_finds_nothing_against_a_running_server(start_api: Callable[..., Api]):
    api = start_api(
        store=StatusStore.memory("api-node"),
        app_options={"publish_rate": "100000/second"},
        subscribe_rate="100000/second",
        # The ignored_auth check sends wrong keys on purpose: no throttling of this address here
        # (tests/api/test_auth.py tests the throttle on a server of its own).
        auth_failure_limit="100000/minute",
    )
    report = ARTIFACTS / "schemathesis"
    report.mkdir(parents=True, exist_ok=True)
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(CONFIG),
        "run",
        "--checks",
        "all",
        "--phases",
        _phases(),
        "--header",
        f"Authorization: Bearer {KEYS['all']}",
        "--max-examples",
        os.environ.get("TEST_SCHEMATHESIS_EXAMPLES", "10"),
        "--seed",
        "20261202",
        "--workers",
        "1",
        "--no-color",
        "--report",
        "junit",
        "--report-dir",
        str(report),
        f"{api.url}/openapi.json",
    ]
    env = cli_env()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=840)
    output = done.stdout + done.stderr
    (report / "output.txt").write_text(output)
    assert done.returncode == 0, output[-6000:]
    # Every operation was reached: none left out for want of a serializer or an example.
    selected, total = map(int, re.search(r"Selected: (\d+)/(\d+)", output).groups())  # type: ignore[union-attr]
    tested = int(re.search(r"Tested: (\d+)", output).group(1))  # type: ignore[union-attr]
    assert tested == selected == total >= 20, output[-3000:]


# -- schemathesis with no key and with a wrong-scope key ------------------------------------------
# schemathesis' Python API in this process, against the module's loopback server: a few generated
# cases per operation and mode (positive and negative data), each sent with no key and with a key
# of another scope. Every keyed route (tests/api/scopes.py) answers a 401 problem with no key and
# a 403 problem with the wrong key, whatever the rest of the request holds, and no operation ever
# answers a 5xx. (~20 s; the CLI run above covers the same operations with every check.)

#: Cases per operation and key kind: enough to send odd bodies, paths and queries past the check.
AUTH_EXAMPLES = int(os.environ.get("TEST_SCHEMATHESIS_AUTH_EXAMPLES", "5"))


#: uvicorn's answer to a request its HTTP parser refuses (a negative case may put a control
#: character in a header or the path), before any application code runs.
UNPARSEABLE = "Invalid HTTP request received."


def _body_refused_before_the_key_check(r: Any) -> bool:
    """FastAPI reads and decodes a request body before any dependency (the key check) runs: a
    body that is not JSON is a 422 "JSON decode error", one it cannot parse a 400. Either says
    only that the caller's own body is malformed, nothing of the route or its data."""
    if r.headers.get("content-type", [""])[0] != "application/problem+json":
        return False
    problem = r.json()
    if r.status_code == 400:
        return bool(problem["detail"] == "There was an error parsing the body")
    errors = problem.get("errors") or []
    return r.status_code == 422 and bool(errors) and all(e["message"] == "JSON decode error" for e in errors)


def _wrong_key(scope: str) -> str:
    return KEYS["operate" if scope == "publish" else "publish"]


def _check_auth(case: Any) -> None:
    from tests.api.scopes import OPEN, ROUTES

    route = (case.method.upper(), case.operation.path)
    assert route in ROUTES or route in OPEN, route  # the route table covers the document
    headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
    # The dashboard takes a key in ?key= (once, then a session cookie): both are credentials of
    # their own, so a made-up one is a 401 whatever the header holds. This test is about the header.
    case.cookies = {}
    if isinstance(case.query, dict):
        case.query = {k: v for k, v in case.query.items() if k != "key"}
    tries: list[tuple[str | None, int]] = [(None, 401)]
    if route in ROUTES:
        tries.append((_wrong_key(ROUTES[route].scope), 403))
    for key, expected in tries:
        case.headers = {**headers, **({"Authorization": f"Bearer {key}"} if key else {})}
        r = case.call(timeout=15)
        assert r.status_code < 500, (route, key is not None, r.status_code, r.text[:300])
        if r.status_code == 400 and r.text == UNPARSEABLE:
            continue  # a negative case the HTTP parser refused: it never reached the app
        if _body_refused_before_the_key_check(r):
            continue
        if route in ROUTES:
            assert r.status_code == expected, (route, key is not None, r.status_code, r.text[:300])
            assert r.headers["content-type"][0] == "application/problem+json"


@pytest.mark.slow
def test_schemathesis_with_no_key_and_a_wrong_scope_key_gets_401_and_403_problems_and_never_a_5xx(
    shared_api: Api,
):
    import schemathesis
    from schemathesis import GenerationMode

    import tests.support.schemathesis_hooks  # noqa: F401 - the NDJSON and msgpack serializers

    schema = schemathesis.openapi.from_url(f"{shared_api.url}/openapi.json")
    tried = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        bare = not list(operation.iter_parameters()) and not len(operation.body)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            check = given(case=operation.as_strategy(generation_mode=mode))(_check_auth)
            run = settings(
                max_examples=AUTH_EXAMPLES,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )(check)
            try:
                run()
            except Unsatisfiable:
                # Nothing to make invalid: only an operation with no parameters and no body.
                assert mode is GenerationMode.NEGATIVE and bare, (operation.label, mode)
        tried += 1
    assert tried >= 40
