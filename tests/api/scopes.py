"""The route table: every route of the app, the scope it needs (or why it is open), how it names a
page, and a valid request for it.

It is the one matrix of the suite. tests/api/test_auth.py tries every key kind on every route
against :data:`ANSWERS`; tests/api/test_tenancy.py tries keys limited to one page on every route
by how the route names a page (:class:`Names`); the schemathesis runs with no key and a wrong-scope
key (tests/api/test_fuzz.py) read the scopes from here. ``test_the_route_table_is_exactly_the_app_s_routes``
walks the app's own routes and fails on any route missing here (or listed here and gone), so a
new route can escape none of them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any

import httpx
from starlette.routing import BaseRoute, Mount
from starlette.routing import Route as StarletteRoute

from notifyd.store import StatusStore
from tests.support.events import incident_event

#: A request: path and httpx keyword arguments (json, content, headers, params).
Request = tuple[str, dict[str, Any]]

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


class Names(Enum):
    """How a route names a page, which decides what a key limited to other pages gets."""

    #: The page is in the path or the body: another page is a 403 that names it.
    PAGE = "page"
    #: An event or subscriber id: one of another page is a 404, like an unknown id.
    ID = "id"
    #: No page: the answer holds only the key's pages.
    NOTHING = "nothing"
    #: Every page at once: only a key for all pages may hold the scope.
    ALL_PAGES = "all pages"


class Setup:
    """What a request builder may use: the server, and a client holding every scope and page."""

    def __init__(self, api: Any) -> None:
        self.api = api
        self.admin: httpx.Client = api.client("all")

    def close(self) -> None:
        self.admin.close()

    def event(self, page: str) -> str:
        event = incident_event(page=page)
        r = self.admin.post("/v1/events", json=event)
        assert r.status_code == 202, r.text
        return str(event["event_id"])

    def subscriber(self, page: str) -> str:
        target = f"https://{page}.example.com/{uuid.uuid4().hex}"  # a new subscriber each time
        r = self.admin.post(f"/v1/pages/{page}/subscribers", json={"channel": "webhook", "target": target})
        assert r.status_code in (200, 201), r.text
        return str(r.json()["id"])

    def templates(self, page: str, channel: str) -> str:
        """Give the page templates for ``channel``, so that deleting them can succeed; returns ""."""
        r = self.admin.put(f"/v1/pages/{page}/templates/{channel}", json=template_body(channel))
        assert r.status_code == 200, r.text
        return ""

    def sync_payload(self, peer: str = "peer-a") -> dict[str, Any]:
        sender = StatusStore.memory(peer)
        sender.add_peer(self.api.store.node_id)
        sender.apply_event(incident_event())
        payload = sender.sync_payload_for(self.api.store.node_id)
        assert payload is not None
        return {
            "content": payload,
            "headers": {"X-Notifyd-Peer": peer, "content-type": "application/msgpack"},
        }


def template_body(channel: str) -> dict[str, str]:
    return {
        "email": {"subject": "{{ title }}", "text": "{{ title }}", "html": "<p>{{ title }}</p>"},
        "slack": {"slack": '{"text": {{ title | tojson }}}'},
        "sms": {"sms": "{{ title }}"},
    }[channel]


#: Builds a valid request for a route that names ``page`` (routes that name none ignore it).
Builder = Callable[[Setup, str], Request]


@dataclass(frozen=True)
class Route:
    """A keyed route: the scope it needs, how it names a page, and a valid request for it."""

    scope: str
    names: Names
    build: Builder


#: (method, route path) -> the route. Keyed by the app's own path templates.
ROUTES: dict[tuple[str, str], Route] = {
    ("POST", "/v1/events"): Route(
        "publish", Names.PAGE, lambda s, p: ("/v1/events", {"json": incident_event(page=p)})
    ),
    ("GET", "/v1/events/{event_id}"): Route(
        "operate", Names.ID, lambda s, p: (f"/v1/events/{s.event(p)}", {})
    ),
    ("GET", "/v1/events/{event_id}/deliveries"): Route(
        "operate", Names.ID, lambda s, p: (f"/v1/events/{s.event(p)}/deliveries", {})
    ),
    ("POST", "/v1/events/{event_id}/redrive"): Route(
        "operate", Names.ID, lambda s, p: (f"/v1/events/{s.event(p)}/redrive", {})
    ),
    ("POST", "/v1/pages/{page_id}/subscribers"): Route(
        "admin",
        Names.PAGE,
        lambda s, p: (f"/v1/pages/{p}/subscribers", {"json": {"channel": "sms", "target": "+14155550100"}}),
    ),
    ("POST", "/v1/pages/{page_id}/subscribers:import"): Route(
        "admin",
        Names.PAGE,
        lambda s, p: (
            f"/v1/pages/{p}/subscribers:import",
            {"content": json.dumps({"channel": "sms", "target": "+14155550101"}) + "\n"},
        ),
    ),
    ("GET", "/v1/pages/{page_id}/subscribers"): Route(
        "admin", Names.PAGE, lambda s, p: (f"/v1/pages/{p}/subscribers", {})
    ),
    ("DELETE", "/v1/pages/{page_id}/subscribers/{subscriber_id}"): Route(
        "admin", Names.PAGE, lambda s, p: (f"/v1/pages/{p}/subscribers/{s.subscriber(p)}", {})
    ),
    ("POST", "/v1/pages/{page_id}/subscribers/{subscriber_id}/reactivate"): Route(
        "admin", Names.PAGE, lambda s, p: (f"/v1/pages/{p}/subscribers/{s.subscriber(p)}/reactivate", {})
    ),
    ("GET", "/v1/subscribers/{subscriber_id}/deliveries"): Route(
        "operate", Names.ID, lambda s, p: (f"/v1/subscribers/{s.subscriber(p)}/deliveries", {})
    ),
    ("GET", "/v1/pages/{page_id}/subscribers/{subscriber_id}/deliveries"): Route(
        "operate", Names.PAGE, lambda s, p: (f"/v1/pages/{p}/subscribers/{s.subscriber(p)}/deliveries", {})
    ),
    ("GET", "/v1/pages/{page_id}/status"): Route(
        "operate", Names.PAGE, lambda s, p: (f"/v1/pages/{p}/status", {})
    ),
    ("GET", "/v1/queues"): Route("operate", Names.NOTHING, lambda s, p: ("/v1/queues", {})),
    ("GET", "/v1/stats/throughput"): Route(
        "operate", Names.NOTHING, lambda s, p: ("/v1/stats/throughput", {})
    ),
    ("GET", "/v1/stats/retries"): Route("operate", Names.NOTHING, lambda s, p: ("/v1/stats/retries", {})),
    ("GET", "/v1/stats/endpoints"): Route("operate", Names.NOTHING, lambda s, p: ("/v1/stats/endpoints", {})),
    ("GET", "/dashboard"): Route("operate", Names.NOTHING, lambda s, p: ("/dashboard", {})),
    ("POST", "/v1/sync"): Route("sync", Names.ALL_PAGES, lambda s, p: ("/v1/sync", s.sync_payload())),
    ("GET", "/v1/pages/{page_id}/self-service"): Route(
        "admin", Names.PAGE, lambda s, p: (f"/v1/pages/{p}/self-service", {})
    ),
    ("PUT", "/v1/pages/{page_id}/self-service"): Route(
        "admin", Names.PAGE, lambda s, p: (f"/v1/pages/{p}/self-service", {"json": {"default_locale": "de"}})
    ),
    ("GET", "/v1/pages/{page_id}/audit"): Route(
        "admin", Names.PAGE, lambda s, p: (f"/v1/pages/{p}/audit", {})
    ),
}

#: Page templates: one route per channel that has templates.
for _channel in ("email", "slack", "sms"):
    _path = "/v1/pages/{page_id}/templates/" + _channel
    ROUTES[("GET", _path)] = Route(
        "admin", Names.PAGE, lambda s, p, c=_channel: (f"/v1/pages/{p}/templates/{c}", {})
    )
    ROUTES[("PUT", _path)] = Route(
        "admin",
        Names.PAGE,
        lambda s, p, c=_channel: (f"/v1/pages/{p}/templates/{c}", {"json": template_body(c)}),
    )
    ROUTES[("DELETE", _path)] = Route(
        "admin", Names.PAGE, lambda s, p, c=_channel: (f"/v1/pages/{p}/templates/{c}" + s.templates(p, c), {})
    )
    ROUTES[("POST", _path + ":preview")] = Route(
        "admin",
        Names.PAGE,
        lambda s, p, c=_channel: (f"/v1/pages/{p}/templates/{c}:preview", {"json": {"locale": "fr"}}),
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


def routes_naming(names: Names) -> list[tuple[str, str]]:
    return sorted(route for route, r in ROUTES.items() if r.names is names)


def app_routes(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, str]]:
    """Every (method, path) the app answers, mounted sub-apps included (HEAD is GET's twin)."""
    for route in routes:
        if hasattr(route, "effective_candidates"):
            # FastAPI's include_router() keeps the router: its routes, with the prefix applied.
            yield from app_routes(route.effective_candidates(), prefix)
        elif isinstance(route, StarletteRoute) or (
            type(route).__name__ == "_EffectiveRouteContext" and hasattr(route, "methods")
        ):
            for method in sorted((route.methods or {"GET"}) - {"HEAD"}):
                yield method, prefix + route.path
        elif isinstance(route, Mount):
            yield "MOUNT", prefix + route.path
        else:  # a websocket or an unknown kind of route: list it so it must be decided on
            yield type(route).__name__, prefix + getattr(route, "path", "?")
