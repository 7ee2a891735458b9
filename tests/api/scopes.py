"""The auth matrix: every route of the app, the scope it needs, and a valid request for it.

tests/api/test_auth.py walks the app's own routes and fails on any route that is neither in
:data:`MATRIX` nor in :data:`OPEN`, so a new route cannot escape the matrix. Each route in the
matrix is tried with every key kind in :data:`KINDS`, against :data:`ANSWERS`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
from starlette.routing import BaseRoute, Mount, Route

from notifyd.store import StatusStore
from tests.support.events import incident_event

#: A request: path and httpx keyword arguments (json, content, headers, params).
Request = tuple[str, dict[str, Any]]
#: Builds a valid request for a route, using a client that holds every scope for set-up.
Builder = Callable[[Any, httpx.Client], Request]

#: Every kind of key a request may carry: none, one nobody issued, one per scope, and all scopes.
KINDS = ("none", "unknown", "publish", "operate", "admin", "sync", "all")

OK = "2xx"
#: What each key kind gets on a route that needs each scope. ``admin`` implies ``operate``.
ANSWERS: dict[str, dict[str, int | str]] = {
    #           none  unknown  publish  operate  admin  sync  all
    "publish": dict(zip(KINDS, (401, 401, OK, 403, 403, 403, OK), strict=True)),
    "operate": dict(zip(KINDS, (401, 401, 403, OK, OK, 403, OK), strict=True)),
    "admin": dict(zip(KINDS, (401, 401, 403, 403, OK, 403, OK), strict=True)),
    "sync": dict(zip(KINDS, (401, 401, 403, 403, 403, OK, OK), strict=True)),
}


def _event(http: httpx.Client) -> str:
    event = incident_event()
    assert http.post("/v1/events", json=event).status_code == 202
    return str(event["event_id"])


def _subscriber(http: httpx.Client) -> str:
    r = http.post(
        "/v1/pages/acme/subscribers", json={"channel": "webhook", "target": "https://example.com/h"}
    )
    assert r.status_code in (200, 201), r.text
    return str(r.json()["id"])


def _template_body(channel: str) -> dict[str, str]:
    return {
        "email": {"subject": "{{ title }}", "text": "{{ title }}", "html": "<p>{{ title }}</p>"},
        "slack": {"slack": '{"text": {{ title | tojson }}}'},
        "sms": {"sms": "{{ title }}"},
    }[channel]


def _put_template(http: httpx.Client, channel: str) -> str:
    """Give the page templates for ``channel``, so that deleting them can succeed; returns ""."""
    r = http.put(f"/v1/pages/acme/templates/{channel}", json=_template_body(channel))
    assert r.status_code == 200, r.text
    return ""


def _sync_payload(api: Any) -> dict[str, Any]:
    peer = StatusStore.memory("peer-a")
    peer.add_peer(api.store.node_id)
    peer.apply_event(incident_event())
    payload = peer.sync_payload_for(api.store.node_id)
    assert payload is not None
    headers = {"X-Notifyd-Peer": "peer-a", "content-type": "application/msgpack"}
    return {"content": payload, "headers": headers}


#: (method, route path) -> (scope, a valid request). Keyed by the app's own path templates.
MATRIX: dict[tuple[str, str], tuple[str, Builder]] = {
    ("POST", "/v1/events"): ("publish", lambda api, h: ("/v1/events", {"json": incident_event()})),
    ("GET", "/v1/events/{event_id}"): ("operate", lambda api, h: (f"/v1/events/{_event(h)}", {})),
    ("GET", "/v1/events/{event_id}/deliveries"): (
        "operate",
        lambda api, h: (f"/v1/events/{_event(h)}/deliveries", {}),
    ),
    ("POST", "/v1/events/{event_id}/redrive"): (
        "operate",
        lambda api, h: (f"/v1/events/{_event(h)}/redrive", {}),
    ),
    ("POST", "/v1/pages/{page_id}/subscribers"): (
        "admin",
        lambda api, h: ("/v1/pages/acme/subscribers", {"json": {"channel": "sms", "target": "+14155550100"}}),
    ),
    ("POST", "/v1/pages/{page_id}/subscribers:import"): (
        "admin",
        lambda api, h: (
            "/v1/pages/acme/subscribers:import",
            {"content": json.dumps({"channel": "sms", "target": "+14155550101"}) + "\n"},
        ),
    ),
    ("GET", "/v1/pages/{page_id}/subscribers"): ("admin", lambda api, h: ("/v1/pages/acme/subscribers", {})),
    ("DELETE", "/v1/pages/{page_id}/subscribers/{subscriber_id}"): (
        "admin",
        lambda api, h: (f"/v1/pages/acme/subscribers/{_subscriber(h)}", {}),
    ),
    ("POST", "/v1/pages/{page_id}/subscribers/{subscriber_id}/reactivate"): (
        "admin",
        lambda api, h: (f"/v1/pages/acme/subscribers/{_subscriber(h)}/reactivate", {}),
    ),
    ("GET", "/v1/subscribers/{subscriber_id}/deliveries"): (
        "operate",
        lambda api, h: (f"/v1/subscribers/{_subscriber(h)}/deliveries", {}),
    ),
    ("GET", "/v1/pages/{page_id}/subscribers/{subscriber_id}/deliveries"): (
        "operate",
        lambda api, h: (f"/v1/pages/acme/subscribers/{_subscriber(h)}/deliveries", {}),
    ),
    ("GET", "/v1/pages/{page_id}/status"): ("operate", lambda api, h: ("/v1/pages/acme/status", {})),
    ("GET", "/v1/queues"): ("operate", lambda api, h: ("/v1/queues", {})),
    ("GET", "/v1/stats/throughput"): ("operate", lambda api, h: ("/v1/stats/throughput", {})),
    ("GET", "/v1/stats/retries"): ("operate", lambda api, h: ("/v1/stats/retries", {})),
    ("GET", "/v1/stats/endpoints"): ("operate", lambda api, h: ("/v1/stats/endpoints", {})),
    ("GET", "/dashboard"): ("operate", lambda api, h: ("/dashboard", {})),
    ("POST", "/v1/sync"): ("sync", lambda api, h: ("/v1/sync", _sync_payload(api))),
    ("GET", "/v1/pages/{page_id}/self-service"): (
        "admin",
        lambda api, h: ("/v1/pages/acme/self-service", {}),
    ),
    ("PUT", "/v1/pages/{page_id}/self-service"): (
        "admin",
        lambda api, h: ("/v1/pages/acme/self-service", {"json": {"default_locale": "de"}}),
    ),
    ("GET", "/v1/pages/{page_id}/audit"): ("admin", lambda api, h: ("/v1/pages/acme/audit", {})),
}

#: Page templates: one route per channel that has templates.
for _channel in ("email", "slack", "sms"):
    _base = f"/v1/pages/acme/templates/{_channel}"
    MATRIX[("GET", "/v1/pages/{page_id}/templates/" + _channel)] = ("admin", lambda api, h, b=_base: (b, {}))
    MATRIX[("PUT", "/v1/pages/{page_id}/templates/" + _channel)] = (
        "admin",
        lambda api, h, b=_base, c=_channel: (b, {"json": _template_body(c)}),
    )
    MATRIX[("DELETE", "/v1/pages/{page_id}/templates/" + _channel)] = (
        "admin",
        lambda api, h, b=_base, c=_channel: (b + _put_template(h, c), {}),
    )
    MATRIX[("POST", "/v1/pages/{page_id}/templates/" + _channel + ":preview")] = (
        "admin",
        lambda api, h, b=_base: (b + ":preview", {"json": {"locale": "fr"}}),
    )

#: Routes that take no API key, each with the reason.
OPEN: dict[tuple[str, str], str] = {
    ("GET", "/healthz"): "liveness, for load balancers",
    ("GET", "/status/{page_id}"): "the public status page that notifications link to",
    ("GET", "/readyz"): "readiness, for load balancers",
    ("GET", "/metrics"): "Prometheus scrapes without a key; no key or secret is exported",
    ("GET", "/openapi.json"): "the public API description",
    ("GET", "/docs"): "Swagger UI over the API description",
    ("GET", "/docs/assets/{name}"): "the docs pages' scripts and styles, from the package",
    ("GET", "/redoc"): "ReDoc over the API description",
    ("GET", "/v1/pages/{page_id}/unsubscribe"): "a subscriber's signed one-click link is its own key",
    ("POST", "/v1/pages/{page_id}/unsubscribe"): "a subscriber's signed one-click link is its own key",
    ("POST", "/v1/callbacks/twilio/{delivery_id}"): "Twilio signs its callbacks (X-Twilio-Signature)",
    ("POST", "/v1/inbound/twilio/sms"): "Twilio signs its inbound webhooks (X-Twilio-Signature)",
    ("POST", "/v1/pages/{page_id}/subscribe"): "self-service sign-up (rate-limited, double opt-in)",
    ("GET", "/status/{page_id}/subscribe"): "the self-service sign-up form",
    ("POST", "/status/{page_id}/subscribe"): "the self-service sign-up form",
    ("GET", "/v1/pages/{page_id}/confirm"): "a signed confirmation link is its own key",
    ("POST", "/v1/pages/{page_id}/confirm"): "a signed confirmation link is its own key",
    ("GET", "/status/{page_id}/preferences"): "a signed preference link is its own key",
    ("POST", "/status/{page_id}/preferences"): "a signed preference link is its own key",
    ("POST", "/status/{page_id}/preferences/unsubscribe"): "a signed preference link is its own key",
}


def app_routes(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, str]]:
    """Every (method, path) the app answers, mounted sub-apps included (HEAD is GET's twin)."""
    for route in routes:
        if hasattr(route, "effective_candidates"):
            # FastAPI's include_router() keeps the router: its routes, with the prefix applied.
            yield from app_routes(route.effective_candidates(), prefix)
        elif isinstance(route, Route) or (
            type(route).__name__ == "_EffectiveRouteContext" and hasattr(route, "methods")
        ):
            for method in sorted((route.methods or {"GET"}) - {"HEAD"}):
                yield method, prefix + route.path
        elif isinstance(route, Mount):
            yield "MOUNT", prefix + route.path
        else:  # a websocket or an unknown kind of route: list it so it must be decided on
            yield type(route).__name__, prefix + getattr(route, "path", "?")
