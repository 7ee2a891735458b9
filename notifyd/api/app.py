"""create_app(runtime, store): the ASGI application, every route of CONTRACT.md."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from notifyd import __version__
from notifyd.api import (
    apidocs,
    dashboard,
    openapi,
    problems,
    routes_events,
    routes_ops,
    routes_pages,
    routes_preferences,
    routes_selfservice,
    routes_stats,
    routes_subscribers,
    routes_templates,
    status_page,
)
from notifyd.api.bodylimit import DEFAULT_LIMIT, BodyLimitMiddleware
from notifyd.api.context import ApiContext
from notifyd.api.headers import SecurityHeaders
from notifyd.api.keystore import DashboardSessions, Grant, KeySpecError, KeyStore, parse_env_keys
from notifyd.api.metrics import REQUESTS, QueueCollector
from notifyd.api.ratelimit import DEFAULT_PUBLISH_RATE, AuthThrottle, PublishLimiter
from notifyd.api.sync_body import SYNC_LIMIT
from notifyd.models import Event, Subscriber
from notifyd.runtime.settings import ConfigError
from notifyd.runtime.wiring import Runtime


def body_limit_for(path: str) -> int | None:
    if path.endswith("/subscribers:import"):
        return None  # streamed line by line; each line has its own limit
    if path == "/v1/sync":
        return None  # decoded as it is read, within the app's sync_limit (notifyd/api/sync_body.py)
    return DEFAULT_LIMIT


#: The method label's values; any other method a client makes up is counted as "other".
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestMetrics:
    """Counts answers by route template (never the raw path: ids would explode the label set).

    Every label comes from a closed set, because anyone can send requests: the method is one
    of KNOWN_METHODS or "other", the route is a template or "unmatched", the status a code.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"] if scope["method"] in KNOWN_METHODS else "other"
            REQUESTS.labels(method, route, str(status)).inc()


def create_app(
    runtime: Runtime,
    store: Any | None = None,
    *,
    extra_keys: Mapping[str, Grant | Iterable[str]] | None = None,
    publish_rate: str = DEFAULT_PUBLISH_RATE,
    sync_limit: int = SYNC_LIMIT,
) -> FastAPI:
    """The API over ``runtime``. ``extra_keys`` ({key: grant or scopes}) adds keys held only in memory,
    such as the ones ``notifyd dev`` generates; they are hashed at once like the others."""
    configured = runtime.settings.api_keys
    try:
        static = parse_env_keys(configured.get_secret_value()) if configured else {}
    except KeySpecError as exc:
        raise ConfigError(str(exc)) from None  # names the entry by position, never the key
    keystore = KeyStore(runtime.client, runtime.settings.namespace, static)
    for key, grant in (extra_keys or {}).items():
        keystore.add_static(key, grant)
    app = FastAPI(
        title="notifyd",
        version=__version__,
        description="Notification delivery for status pages. Errors are `application/problem+json`.",
        # A trailing slash is a 404 problem, not an undocumented 307 to another method's route.
        redirect_slashes=False,
        generate_unique_id_function=openapi.operation_id,
        # /docs and /redoc come from notifyd/api/apidocs.py: the same UIs, from the package.
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    app.state.ctx = ApiContext(
        runtime,
        store,
        keystore,
        PublishLimiter(runtime.client, runtime.keys.ns, publish_rate),
        AuthThrottle(runtime.client, runtime.keys.ns, runtime.settings.auth_failure_limit),
        DashboardSessions(runtime.client, runtime.keys.ns),
    )
    from notifyd.selfservice.wiring import selfservice_for

    app.state.ctx.selfservice = selfservice_for(runtime)
    app.state.queue_collector = QueueCollector(runtime)
    #: The largest peer payload POST /v1/sync reads.
    app.state.sync_limit = sync_limit
    problems.install(app)

    async def on_redis_error(request: Request, exc: Exception) -> Response:
        if isinstance(exc, redis.exceptions.OutOfMemoryError):
            # maxmemory with noeviction: the server refused the write, so nothing was written.
            return problems.problem_response(
                503, "Redis is full (maxmemory); nothing was accepted, try again later", kind="unavailable"
            )
        return problems.problem_response(503, "Redis is unreachable; try again", kind="unavailable")

    app.add_exception_handler(redis.RedisError, on_redis_error)
    routers = (routes_events, routes_subscribers, routes_pages, routes_selfservice, routes_preferences)
    for module in (*routers, routes_templates, routes_ops, routes_stats, dashboard, status_page, apidocs):
        app.include_router(module.router)
    app.add_middleware(BodyLimitMiddleware, limit_for=body_limit_for)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(RequestMetrics)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["Problem"] = problems.Problem.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        components.update(
            problems.Problem.model_json_schema(ref_template="#/components/schemas/{model}").pop("$defs", {})
        )
        for model in (Event, Subscriber):
            model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(model_schema.pop("$defs", {}))
            components[model.__name__] = model_schema
        _describe_event_variants(components)
        allow_private = app.state.ctx.runtime.settings.allow_private_targets
        openapi.describe_subscriber_channels(components, allow_private=allow_private)
        openapi.describe_signup(components)
        openapi.add_examples(schema)
        # FastAPI's own validation error shapes are never answered: every 422 is a Problem.
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        for operations in schema["paths"].values():
            for operation in operations.values():
                if "422" in operation.get("responses", {}):
                    operation["responses"]["422"] = problems.documented(422)[422]
                if "401" in operation.get("responses", {}):
                    # Too many wrong keys from one address (see AuthThrottle).
                    operation["responses"].setdefault("429", problems.documented(429)[429])
        app.openapi_schema = schema
    return app.openapi_schema


def _describe_event_variants(components: dict[str, Any]) -> None:
    """Say in the schema what Event's validators enforce, so generated clients (and fuzzers) agree.

    The incident types carry ``incident``, ``component_status_changed`` carries ``component`` and
    the maintenance types carry ``maintenance``;
    text fields are stripped before their length is checked, so they need a non-blank character.
    """
    event = components.pop("Event")
    for name in ("dedup_key",):
        for option in event["properties"][name].get("anyOf", [event["properties"][name]]):
            if option.get("type") == "string":
                option["pattern"] = r"\S"
    components["Incident"]["properties"]["title"]["pattern"] = r"\S"
    components["Maintenance"]["properties"]["title"]["pattern"] = r"\S"
    every_type = components["EventType"]["enum"]
    incident_types = [t for t in every_type if t.startswith("incident_")]
    maintenance_types = [t for t in every_type if t.startswith("maintenance_")]
    variants = {
        "IncidentEvent": (incident_types, "incident"),
        "ComponentEvent": (["component_status_changed"], "component"),
        "MaintenanceEvent": (maintenance_types, "maintenance"),
    }
    for name, (types, payload) in variants.items():
        variant = {**event, "title": name, "required": [*event["required"], payload]}
        variant["properties"] = {
            **event["properties"],
            "type": {"type": "string", "enum": types},
            payload: {"$ref": f"#/components/schemas/{payload.title()}"},  # required, and not null
        }
        components[name] = variant
    components["Event"] = {
        "title": "Event",
        "oneOf": [{"$ref": f"#/components/schemas/{name}"} for name in variants],
    }
