"""Imports: every shape of line through the one batched path, checked against a model of the
expected final state; caps on lines and on subscribers per page; the streamed line reader."""

from __future__ import annotations

import asyncio
import base64
import json
import random
from collections.abc import Callable
from typing import Any

import pytest

from notifyd.api.routes_subscribers import MAX_LINE_BYTES, _lines
from notifyd.state.imports import ImportTally
from tests.api.conftest import Api
from tests.test_cli import cli  # noqa: F401 - the fixture

SECRET = "whsec_" + base64.b64encode(b"import-test-secret-24byte").decode()


def _mixed_lines(n: int, rng: random.Random) -> tuple[list[str], list[dict[str, Any]]]:
    """NDJSON lines of every shape, and the pre-existing subscribers they meet."""
    existing = [
        {"id": f"old-{i}", "channel": "email", "target": f"old{i}@example.com"} for i in range(n // 50)
    ]
    lines: list[str] = []
    for i in range(n):
        kind = rng.random()
        if kind < 0.35:
            line: Any = {"id": f"w{i}", "channel": "webhook", "target": f"https://h{i % 7}.example.com/{i}",
                         "secret": SECRET}  # fmt: skip
        elif kind < 0.55:
            comps = ["api", "db"][: i % 3]
            line = {"channel": "email", "target": f"user{i}@example.com", "components": comps}
        elif kind < 0.65:
            line = {"channel": "sms", "target": f"+1415555{i % 10000:04d}"}  # repeats: updates
        elif kind < 0.75 and existing:
            old = rng.choice(existing)
            line = {"channel": "email", "target": old["target"], "components": ["api"]}
        elif kind < 0.8:
            line = {"channel": "webhook", "target": f"https://h.example.com/dup{i % 97}"}  # repeats in-file
        elif kind < 0.85:
            clash = f"w{rng.randrange(max(i, 1))}"  # an id another target may hold
            line = {"id": clash, "channel": "email", "target": f"clash{i}@example.com"}
        elif kind < 0.9:
            line = {"channel": "sms", "target": "not-a-number"}
        elif kind < 0.93:
            lines.append("{broken json")
            continue
        else:
            line = {"channel": "webhook", "target": f"https://h{i % 7}.example.com/{i}", "secret": "whsec_!!"}
        lines.append(json.dumps(line))
    return lines, existing


def _model(lines: list[str], existing: list[dict[str, Any]], opted_out: set[str]) -> dict[str, Any]:
    """What the import must do, computed without notifyd: counts and the final targets."""
    by_target: dict[tuple[str, str], dict[str, Any]] = {
        ("email", e["target"]): {"id": e["id"], "components": None} for e in existing
    }
    ids = {e["id"] for e in existing}
    counts = {"imported": 0, "updated": 0, "kept_unsubscribed": 0, "rejected_total": 0}
    for raw in lines:
        try:
            line = json.loads(raw)
        except json.JSONDecodeError:
            counts["rejected_total"] += 1
            continue
        if line["target"] == "not-a-number" or line.get("secret") == "whsec_!!":
            counts["rejected_total"] += 1
            continue
        key = (line["channel"], line["target"])
        current = by_target.get(key)
        if current is not None:
            if line.get("id") not in (None, current["id"]):
                counts["rejected_total"] += 1
            elif current["id"] in opted_out:
                counts["kept_unsubscribed"] += 1
            else:
                current["components"] = line.get("components")
                counts["updated"] += 1
            continue
        if line.get("id") in ids:
            counts["rejected_total"] += 1
            continue
        by_target[key] = {"id": line.get("id"), "components": line.get("components")}
        if line.get("id"):
            ids.add(line["id"])
        counts["imported"] += 1
    return {"counts": counts, "targets": by_target}


def _check_mixed_import(rt: Any, n: int) -> None:
    rng = random.Random(n)
    lines, existing = _mixed_lines(n, rng)
    for sub in existing:
        rt.subscribers.add("acme", sub)
    opted_out = {e["id"] for e in existing[::3]}
    for sub_id in opted_out:
        rt.subscribers.disable("acme", rt.subscribers.get("acme", sub_id).seq, "unsubscribed")
    expected = _model(lines, existing, opted_out)

    tally = ImportTally()
    rows = ((k, json.loads(raw) if raw[0:2] != "{b" else ValueError("not valid JSON")) for k, raw in
            enumerate(lines, 1))  # fmt: skip
    for line, result in rt.subscribers.import_many("acme", rows):
        tally.add(line, result)
    summary = tally.summary()
    assert {k: summary[k] for k in expected["counts"]} == expected["counts"]

    stored: dict[tuple[str, str], Any] = {}
    cursor: int | None = 0
    while cursor is not None:
        items, cursor = rt.subscribers.page("acme", cursor=cursor, limit=1000)
        stored.update({(s.channel, rt.subscribers.target_of(s)): s for s in items})
    assert set(stored) == set(expected["targets"])
    for key, want in expected["targets"].items():
        got = stored[key]
        if want["id"] is not None:
            assert got.id == want["id"]
        comps = want["components"]
        assert got.components == (frozenset(comps) if comps is not None else None), key
        assert (got.disabled == "unsubscribed") == (got.id in opted_out)
        if key[0] == "webhook":
            secret = rt.subscribers.secret_of(got)
            assert secret is not None and secret.startswith("whsec_")


def test_an_import_of_mixed_lines_ends_in_the_state_a_model_predicts(runtime):
    _check_mixed_import(runtime(), 10_000)


@pytest.mark.slow
def test_an_import_of_70k_mixed_lines_ends_in_the_state_a_model_predicts(runtime):
    # Past 2**16 lines and seqs (70 batches of IMPORT_BATCH, ~550 buckets): what only size can
    # show. 200k proved no more and took ~27 s; the rates are benchmarks/run.py --only subscribers.
    _check_mixed_import(runtime(), 70_000)


def test_a_page_at_its_subscriber_cap_refuses_new_ones_and_still_takes_updates(runtime):
    rt = runtime(page_max_subscribers=5)
    rows = [(n, {"channel": "sms", "target": f"+1415555{n:04d}"}) for n in range(1, 9)]
    results = dict(rt.subscribers.import_many("acme", rows))
    assert [n for n, r in results.items() if getattr(r, "created", False)] == [1, 2, 3, 4, 5]
    assert all("NOTIFYD_PAGE_MAX_SUBSCRIBERS" in str(results[n]) for n in (6, 7, 8))
    again = rt.subscribers.add("acme", {"channel": "sms", "target": "+14155550001", "components": ["api"]})
    assert again.outcome == "updated"
    assert rt.subscribers.count("acme") == 5
    assert rt.subscribers.add("other", {"channel": "sms", "target": "+14155550001"}).created


def test_the_cli_stops_an_import_past_its_line_cap_with_a_clear_error(cli):  # noqa: F811
    lines = "".join(json.dumps({"channel": "sms", "target": f"+1415555{n:04d}"}) + "\n" for n in range(15))
    done = cli("subscribers", "import", "--page", "acme", "-", stdin=lines,
               extra_env={"NOTIFYD_IMPORT_MAX_LINES": "10"})  # fmt: skip
    assert done.returncode == 2
    assert "NOTIFYD_IMPORT_MAX_LINES" in done.stderr and "line 11" in done.stderr
    assert json.loads(done.stdout)["imported"] == 10


def test_the_cli_draws_its_progress_bar_only_where_rich_sees_a_terminal(cli, tmp_path):  # noqa: F811
    path = tmp_path / "subscribers.ndjson"
    path.write_text(
        "".join(json.dumps({"channel": "sms", "target": f"+1415555{n:04d}"}) + "\n" for n in range(50))
    )
    plain = {"FORCE_COLOR": "", "TTY_COMPATIBLE": ""}
    piped = cli("subscribers", "import", "--page", "acme", str(path), extra_env=plain)
    assert piped.returncode == 0 and "importing" not in piped.stderr
    colour = {**plain, "FORCE_COLOR": "1"}
    forced = cli("subscribers", "import", "--page", "acme", str(path), extra_env=colour)
    assert forced.returncode == 0, forced.stderr
    assert "importing" in forced.stderr and "lines/s" in forced.stderr
    assert json.loads(forced.stdout)["updated"] == 50


def test_the_api_answers_413_past_the_line_cap_and_keeps_the_lines_before(start_api: Callable[..., Api]):
    api = start_api(import_max_lines=2500)
    body = "".join(json.dumps({"channel": "sms", "target": f"+1415555{n:04d}"}) + "\n" for n in range(6000))
    with api.client() as http:
        r = http.post("/v1/pages/acme/subscribers:import", content=body.encode())
    assert r.status_code == 413 and "NOTIFYD_IMPORT_MAX_LINES" in r.json()["detail"]
    assert api.runtime.subscribers.count("acme") == 2500


class _ChunkedRequest:
    def __init__(self, body: bytes, size: int) -> None:
        self.body, self.size = body, size

    async def stream(self):  # type: ignore[no-untyped-def]
        for i in range(0, len(self.body), self.size):
            yield self.body[i : i + self.size]


@pytest.mark.parametrize("chunk", [1, 3, 7, 4096])
def test_the_line_reader_gives_the_same_lines_however_the_body_is_chunked(chunk):
    long_ok = b'{"x": "' + b"a" * 30_000 + b'"}'
    too_long = b"b" * (MAX_LINE_BYTES + 10)
    body = b"\n".join([b"one", long_ok, b"", too_long, b"after", b"last-without-newline"])

    async def read() -> list[tuple[int, bytes | None]]:
        return [item async for item in _lines(_ChunkedRequest(body, chunk))]  # type: ignore[arg-type]

    # A too-long line is either cut short (None) or handed whole, for the row parser to refuse.
    got = [
        (n, None if line is None or len(line) > MAX_LINE_BYTES else line) for n, line in asyncio.run(read())
    ]
    assert got == [
        (1, b"one"),
        (2, long_ok),
        (3, b""),
        (4, None),
        (5, b"after"),
        (6, b"last-without-newline"),
    ]


def test_the_api_refuses_a_new_subscriber_on_a_full_page_with_409_naming_the_cap(
    start_api: Callable[..., Api],
):
    api = start_api(page_max_subscribers=1)
    with api.client() as http:
        assert http.post(
            "/v1/pages/acme/subscribers", json={"channel": "sms", "target": "+14155550100"}
        ).is_success
        r = http.post("/v1/pages/acme/subscribers", json={"channel": "sms", "target": "+14155550101"})
    assert r.status_code == 409 and "NOTIFYD_PAGE_MAX_SUBSCRIBERS" in r.json()["detail"]
    assert r.json()["type"].endswith("page-full")
