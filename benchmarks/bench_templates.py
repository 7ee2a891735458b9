"""What personal messages cost: an email in a subscriber's language from the built-in Jinja2
templates, against the adapters' own English rendering of the same notification.

    .venv/bin/python benchmarks/bench_templates.py

No Redis: it times the rendering alone (notifyd/templates/), per message. A chunk of 100
messages (the Sender's) renders once per language and puts each subscriber's links in after.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from channels.base import Message
from channels.email_render import build_email
from notifyd.selfservice.pages import PageConfig
from notifyd.templates.engine import builtin_source, render
from notifyd.templates.personalize import Personalizer, personal
from notifyd.templates.sample import SAMPLE, message_context

RESULTS: list[dict[str, Any]] = []
CHUNK = 100


def _per_call(fn: Any, n: int) -> float:
    fn()
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) / n


def main(quick: bool = False) -> list[dict[str, Any]]:
    n = 300 if quick else 3000
    config = PageConfig()
    message = Message(
        delivery_id="d1",
        subscriber_id="s1",
        target="a@example.com",
        notification=SAMPLE,
        manage_url="https://status.example.com/status/acme/preferences?token=abc",
        unsubscribe_url="https://status.example.com/v1/pages/acme/unsubscribe?subscriber=s1&token=abc",
    )
    renderer = Personalizer.__new__(Personalizer)  # render_parts needs no Redis

    def english_adapter() -> None:
        build_email(message, "status@example.com")

    def german_one_by_one() -> None:
        context = message_context(
            SAMPLE, "de", config, manage_url="https://x/m", unsubscribe_url="https://x/u"
        )
        for part in ("subject", "text", "html"):
            render(part, builtin_source(part), context, "de")
        build_email(message, "status@example.com")

    def german_chunk() -> None:
        parts = renderer.render_parts("acme", "email", message, "de", config, {})
        for _ in range(CHUNK):
            build_email(replace(message, rendered=personal(parts, message)), "status@example.com")

    base = _per_call(english_adapter, n)
    one_by_one = _per_call(german_one_by_one, n)
    chunked = _per_call(german_chunk, max(5, n // CHUNK)) / CHUNK
    rows = [
        {
            "name": "templates: German email per message in a 100-message chunk, vs the English adapter",
            "measured": f"{chunked * 1e6:.0f} us",
            "baseline": f"{base * 1e6:.0f} us",
            "ratio": round(base / chunked, 3),
            "target": ">= 0.5x the English adapter",
            "ok": base / chunked >= 0.5,
        },
        {
            "name": "templates: German email rendered message by message (no shared render)",
            "measured": f"{one_by_one * 1e6:.0f} us",
            "baseline": f"{base * 1e6:.0f} us",
            "ratio": round(base / one_by_one, 3),
            "target": "informative: why a chunk renders once per language",
            "ok": True,
        },
    ]
    RESULTS.extend(rows)
    for row in rows:
        print(row)
    return rows


if __name__ == "__main__":
    main()
