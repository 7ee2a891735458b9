"""The import's fast path (``quick_line``) proves what the Subscriber model proves, or defers.

For any line: when ``quick_line`` gives an answer, the model accepts the line and means the
same subscriber; when the model refuses a line, ``quick_line`` gives no answer (so the error
a bad line gets is always the model's own wording).
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from notifyd.models import Subscriber, SubscriberLine, quick_line
from notifyd.state.subscribers import line_of
from notifyd.state.target_hosts import host_of

SECRET = "whsec_" + base64.b64encode(b"quick-line-test-secret!!").decode()


def _model_line(data: dict[str, Any], allow_private: bool) -> SubscriberLine | None:
    try:
        sub = Subscriber.model_validate(data, context={"allow_private": allow_private})
    except ValidationError:
        return None
    return line_of(sub)


def _same(a: SubscriberLine, b: SubscriberLine) -> bool:
    fields = ("channel", "target", "id", "secret", "components", "contact_email", "prefs")
    return all(getattr(a, f) == getattr(b, f) for f in fields)


COMMON_LINES = [
    {"id": "w-1", "channel": "webhook", "target": "https://hooks.example.com/status/1", "secret": SECRET},
    {"channel": "webhook", "target": "https://hooks.example.com/a?b=c#d", "contact_email": "Ops@Example.com"},
    {"channel": "email", "target": "Some.One@Example.COM", "components": ["api", "db"]},
    {"id": "e-2", "channel": "email", "target": "user+tag@example.org", "components": []},
    {"channel": "sms", "target": "+14155552671"},
    {"channel": "slack", "target": "slack:C0123456789"},
    {"channel": "slack", "target": "https://hooks.slack.com/services/T0/B0/x"},
    {"id": None, "channel": "webhook", "target": "https://hooks.example.com:8443/x", "secret": None},
]


@pytest.mark.parametrize("line", COMMON_LINES, ids=lambda d: f"{d['channel']}:{sorted(d)}")
def test_the_common_line_shapes_take_the_fast_path_and_mean_what_the_model_means(line):
    quick = quick_line(line, allow_private=False)
    assert quick is not None
    model = _model_line(line, allow_private=False)
    assert model is not None and _same(quick, model)
    assert quick.host == host_of(model) or (quick.host is None and quick.channel != "webhook")


BAD_LINES = [
    {"channel": "webhook", "target": "https://127.0.0.1/hook"},
    {"channel": "webhook", "target": "https://169.254.169.254/latest/meta-data"},
    {"channel": "webhook", "target": "https://localhost/x"},
    {"channel": "webhook", "target": "http://hooks.example.com/x"},
    {"channel": "webhook", "target": "https://h.example.com/x", "secret": "whsec_!!"},
    {"channel": "webhook", "target": "https://h.example.com/x", "secret": "whsec_c2hvcnQ="},
    {"channel": "email", "target": "https://h.example.com/x", "secret": SECRET},
    {"channel": "email", "target": "a@example.com", "contact_email": "b@example.com"},
    {"channel": "sms", "target": "not-a-number"},
    {"channel": "pigeon", "target": "roof"},
    {"channel": "email", "target": "a@example.com", "extra": 1},
    {"channel": "email", "target": "a@example.com", "id": "has space"},
    {"channel": "email", "target": "a@example.com", "components": ["ok", 3]},
    {"channel": "email", "target": ""},
    {"channel": ["email"], "target": "a@example.com"},
]


@pytest.mark.parametrize("line", BAD_LINES, ids=str)
def test_a_line_the_model_refuses_gets_no_answer_from_the_fast_path(line):
    assert _model_line(line, allow_private=False) is None
    assert quick_line(line, allow_private=False) is None


def test_private_targets_take_the_fast_path_when_they_are_allowed():
    line = {"channel": "webhook", "target": "http://127.0.0.1:9000/hook"}
    quick = quick_line(line, allow_private=True)
    model = _model_line(line, allow_private=True)
    assert quick is not None and model is not None and _same(quick, model)


_PADS = ["", " ", "\t", "\n", "\x1c", "\u00a0", "\u2003"]
_TARGETS = {
    "webhook": ["https://hooks.example.com/status/1", "https://HOOKS.example.com/x?a=b", "https://10.0.0.1/x",
                "https://[::1]/x", "https://user:pw@hooks.example.com/x", "https://hooks.example.com/a%20b",
                "https://hooks.example.com/a%zz", "https://hooks.example.com/" + "a" * 2100,
                "http://hooks.example.com/x", "https://h.example.com/é"],
    "slack": ["https://hooks.slack.com/services/T/B/x", "slack:C0123456789", "slack:x",
              "https://hooks.example.com/x"],
    "email": ["User@Example.com", "user@localhost", "üser@example.com", "a.b+c@example.org",
              "a..b@example.com"],
    "sms": ["+14155552671", "+1415", "14155552671"],
}  # fmt: skip
_VALUES = {
    "id": [None, 7, "", "w-1", "x" * 128, "x" * 129, "é", "a b"],
    "secret": [None, SECRET, "whsec_!!", "whsec_c2hvcnQ=", SECRET + "\n", "x", 5],
    "components": [None, [], ["api", "db"], [" api"], [""], ["x" * 129], [3], "api", ["a"] * 1001],
    "contact_email": [None, "ops@example.com", "Ops@Example.com", "bad", "a@localhost", 5],
    "channel": ["Email", None, 1, ["email"], "pigeon"],
    "min_impact": ["major"],
    "bogus": [1],
}


@st.composite
def _lines(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly lines the model accepts, each with a few changes that may or may not break it."""
    channel = draw(st.sampled_from(sorted(_TARGETS)))
    line: dict[str, Any] = {"channel": channel, "target": draw(st.sampled_from(_TARGETS[channel]))}
    if channel == "webhook" and draw(st.booleans()):
        line["secret"] = SECRET
    if draw(st.booleans()):
        line["id"] = draw(st.sampled_from(["w-1", "sub_2", "x" * 128]))
    for _ in range(draw(st.integers(0, 2))):
        name = draw(st.sampled_from([*sorted(_VALUES), "target", "drop"]))
        if name == "drop":
            line.pop(draw(st.sampled_from(sorted(line))))
        elif name == "target" or draw(st.booleans()) and isinstance(line.get(name), str):
            field = name if name in line else "target"
            if isinstance(line.get(field), str):
                line[field] = draw(st.sampled_from(_PADS)) + line[field] + draw(st.sampled_from(_PADS))
        else:
            line[name] = draw(st.sampled_from(_VALUES[name]))
    return line


@settings(max_examples=1500, deadline=None)
@given(line=_lines(), allow_private=st.booleans())
def test_the_fast_path_never_accepts_what_the_model_refuses_nor_means_another_subscriber(line, allow_private):
    quick = quick_line(line, allow_private=allow_private)
    if quick is None:
        return  # not proven: the model decides, as without the fast path
    model = _model_line(line, allow_private)
    assert model is not None, f"fast path accepted a line the model refuses: {line!r}"
    assert _same(quick, model)
    assert quick.host is None or quick.host == host_of(model)
