"""The CLI's NDJSON reader and the API's row parser read each line exactly as json.loads did
before they scanned lines themselves, error wording included."""

from __future__ import annotations

import io
import json

import pytest

from notifyd.api.routes_subscribers import _rows
from notifyd.cli.subscribers import ndjson_rows

LINES = [
    b'{"a":1}\n',
    b'{"a":1}  \r\n',
    b'{"a": {"b": [1, 2.5, null, true]}, "c": "\\u00e9"}\n',
    b'{"a":1} x\n',
    b'{"a":\n',
    b'{"a":1}{"b":2}\n',
    b' {"a":1}\n',
    b"[1]\n",
    b'"text"\n',
    b'\x0b{"a":1}\n',
    b'{"a":1}\x0b\n',
    b'{"a":NaN}\n',
    b'{"a":"\\ud800"}\n',
    b'{"a":1,"a":2}\n',
    b"{\n",
    b"{",
    b"{}",
]


def _reference(raw: bytes) -> object:
    """What the reader did before it scanned lines itself: json.loads of the decoded line."""
    try:
        parsed = json.loads(raw.decode())
    except json.JSONDecodeError as exc:
        return f"not valid JSON: {exc.msg}"
    return parsed if isinstance(parsed, dict) else "each line is a JSON object"


@pytest.mark.parametrize("raw", LINES, ids=repr)
def test_a_line_reads_as_json_loads_reads_it(raw):
    ((number, got),) = list(ndjson_rows(io.BytesIO(raw)))
    want = _reference(raw)
    assert number == 1
    if isinstance(want, str):
        assert isinstance(got, ValueError) and str(got) == want
    else:
        assert got == want or json.dumps(got) == json.dumps(want)  # NaN != NaN


def test_a_line_nested_past_the_recursion_limit_is_rejected_and_the_next_one_read():
    deep = b'{"a":' + b"[" * 5000 + b"]" * 5000 + b"}\n"
    rows = list(ndjson_rows(io.BytesIO(deep + b'{"b":2}\n')))
    assert str(rows[0][1]) == "not valid JSON: nested too deeply"
    assert rows[1] == (2, {"b": 2})


def test_blank_lines_are_skipped_and_numbering_counts_them():
    rows = list(ndjson_rows(io.BytesIO(b'{"a":1}\n\n  \n{"b":2}\n\xff\n')))
    assert [(n, r) for n, r in rows[:2]] == [(1, {"a": 1}), (4, {"b": 2})]
    assert rows[2][0] == 5 and str(rows[2][1]) == "not valid JSON: not UTF-8"


API_LINES = [
    *LINES,
    '{"a": "é"}'.encode("utf-16-le"),
    '{"a": "é"}'.encode("utf-16"),
    '{"a": 1}'.encode("utf-8-sig"),
    b'{"a":"\xed\xa0\x80"}',  # an encoded surrogate: json.loads(bytes) decodes with surrogatepass
    b'{"a":"\xff"}',
    b'{"a":' + b"[" * 5000 + b"]" * 5000 + b"}",  # deeper than Python's recursion limit
]


def _api_reference(raw: bytes) -> object:
    """What the API's row parser did before it scanned lines itself: json.loads of the bytes."""
    try:
        parsed = json.loads(raw)
    except (UnicodeDecodeError, RecursionError):
        return "not valid JSON"
    except json.JSONDecodeError as exc:
        return f"not valid JSON: {exc.msg}"
    return parsed if isinstance(parsed, dict) else "each line is a JSON object"


@pytest.mark.parametrize("raw", API_LINES, ids=lambda raw: repr(raw[:40]))
def test_an_api_line_reads_as_json_loads_of_its_bytes_reads_it(raw):
    ((number, got),) = list(_rows([(7, raw)]))
    want = _api_reference(raw)
    assert number == 7
    if isinstance(want, str):
        assert isinstance(got, ValueError) and str(got) == want
    else:
        assert got == want or json.dumps(got) == json.dumps(want)
