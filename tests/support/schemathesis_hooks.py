"""schemathesis hooks for the `schemathesis run` test (named by ``hooks`` in tests/api/schemathesis.toml).

Two request bodies are not JSON: the subscriber import is NDJSON text and the store sync is
msgpack bytes. schemathesis cannot send a media type it has no serializer for, so without
these it never reaches those operations.
"""

from __future__ import annotations

from typing import Any

import schemathesis


@schemathesis.serializer("application/x-ndjson", "application/msgpack")
def raw_body(ctx: Any, value: Any) -> bytes | None:
    """Send a generated body as it is: bytes untouched, text as UTF-8.

    Both bodies are documented as a string (text, or bytes). A negative case may draw another
    type, such as a number or an object; neither medium can carry one (writing it as JSON text
    would turn it into a valid string body), so such a case goes out with no body at all.
    """
    if isinstance(value, bytes):
        return value
    return value.encode() if isinstance(value, str) else None
