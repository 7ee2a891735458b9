"""What /openapi.json says beyond what FastAPI derives: readable operation ids, the per-channel
subscriber schema, and an example for every operation.

Generated clients and fuzzers read this document, so it must say what the validators enforce
(a schema that is looser than the code makes schemathesis report valid requests as refused).
"""

from __future__ import annotations

import re
from typing import Any

from fastapi.routing import APIRoute

from notifyd.models import WEBHOOK_SECRET_PATTERN
from notifyd.targets import target_schemas

#: Route function name -> operation id, where the function's own name does not read as one.
#: Other routes get their function name in camelCase (``get_event`` -> ``getEvent``).
OPERATION_IDS = {
    "publish": "publishEvent",
    "list_deliveries": "listEventDeliveries",
    "redrive": "redriveEvent",
    "healthz": "getHealth",
    "readyz": "getReadiness",
    "metrics": "getMetrics",
    "queues": "getQueues",
    "dashboard": "getDashboard",
    "page_status": "getPageStatus",
    "unsubscribe_page": "showUnsubscribePage",
    "unsubscribe_now": "unsubscribe",
    "sync": "syncStore",
    "twilio_callback": "receiveTwilioStatus",
    "subscriber_deliveries": "listSubscriberDeliveries",
}


def operation_id(route: APIRoute) -> str:
    """FastAPI's ``generate_unique_id_function``: ``publishEvent``, not ``publish_v1_events_post``."""
    if route.name in OPERATION_IDS:
        return OPERATION_IDS[route.name]
    first, *rest = route.name.strip("_").split("_")
    return first + "".join(word.title() for word in rest)


CONTRACT_EVENT = {
    "event_id": "inc-42-update-3",
    "type": "incident_updated",
    "page_id": "acme",
    "occurred_at": "2026-11-28T13:00:00Z",
    "priority": "critical",
    "dedup_key": "db-primary-down",
    "notify": True,
    "incident": {
        "id": "inc-42",
        "title": "Database outage",
        "status": "identified",
        "impact": "critical",
        "message": "Failover in progress",
        "components": ["api", "db"],
    },
}
SUBSCRIBER = {
    "channel": "webhook",
    "target": "https://hooks.example.com/status",
    "components": ["api"],
    "min_impact": "major",
    "incident_phases": ["created", "resolved"],
    "quiet_hours": {"tz": "Europe/Berlin", "start": "22:00", "end": "07:00", "allow_critical": True},
}
SUBSCRIBER_OUT = {
    "id": "sub_48dd174066159319",
    "page_id": "acme",
    "channel": "webhook",
    "target": "https://hooks.example.com/status",
    "components": ["api"],
    "min_impact": "major",
    "incident_phases": ["created", "resolved"],
    "quiet_hours": {"tz": "Europe/Berlin", "start": "22:00", "end": "07:00", "allow_critical": True},
    "status": "active",
}
COUNTS = {
    "planned": 1200,
    "delivered": 1170,
    "retrying": 12,
    "failed": 3,
    "rate_limited": 0,
    "suppressed": 2,
    "deferred": 5,
    "digested": 6,
    "superseded": 2,
}
EVENT_SUMMARY = {
    "event_id": "inc-42-update-3",
    "page_id": "acme",
    "type": "incident_updated",
    "priority": "critical",
    "state": "delivering",
    "counts": COUNTS,
    "filtered": {"min_impact": 2},
    "accepted_at": "2026-11-28T13:00:00.120000Z",
    "started_at": "2026-11-28T13:00:00.135000Z",
    "finished_at": None,
}
DELIVERY = {
    "delivery_id": "dlv_47ang5tevg7ttld7os7l76c7",
    "subscriber_id": "sub_48dd174066159319",
    "channel": "webhook",
    "status": "failed",
    "attempts": 8,
    "last_error": "rejected: HTTP 400",
    "updated_at": "2026-11-28T14:02:11Z",
}

#: operation id -> {media type: example} for its request body.
REQUEST_EXAMPLES: dict[str, dict[str, Any]] = {
    "publishEvent": {"application/json": CONTRACT_EVENT},
    "addSubscriber": {"application/json": SUBSCRIBER},
    "importSubscribers": {
        "application/x-ndjson": '{"channel": "email", "target": "ops@example.com"}\n'
        '{"channel": "sms", "target": "+14155552671", "components": ["api"]}\n'
    },
}
#: operation id -> (status, media type, example) of its usual answer.
RESPONSE_EXAMPLES: dict[str, tuple[str, str, Any]] = {
    "publishEvent": ("202", "application/json", {"event_id": "inc-42-update-3", "status": "accepted"}),
    "getEvent": ("200", "application/json", EVENT_SUMMARY),
    "listEventDeliveries": ("200", "application/json", {"items": [DELIVERY], "next_cursor": "128"}),
    "redriveEvent": ("202", "application/json", {"event_id": "inc-42-update-3", "redriven": 3}),
    "addSubscriber": ("201", "application/json", SUBSCRIBER_OUT),
    "importSubscribers": (
        "200",
        "application/json",
        {
            "imported": 2,
            "updated": 0,
            "rejected": [{"line": 3, "error": "target: not an email"}],
            "rejected_total": 1,
        },
    ),
    "listSubscribers": ("200", "application/json", {"items": [SUBSCRIBER_OUT], "next_cursor": None}),
    "removeSubscriber": ("204", "", None),
    "reactivateSubscriber": ("200", "application/json", SUBSCRIBER_OUT),
    "listSubscriberDeliveries": (
        "200",
        "application/json",
        {
            "subscriber_id": "sub_48dd174066159319",
            "page_id": "acme",
            "items": [{**DELIVERY, "event_id": "inc-42"}],
        },
    ),
    "getPageStatus": (
        "200",
        "application/json",
        {"page_id": "acme", "components": {"api": {"status": "major_outage"}}, "open_incidents": ["inc-42"]},
    ),
    "showUnsubscribePage": ("200", "text/html", "<!doctype html><title>Unsubscribe</title>…"),
    "unsubscribe": (
        "200",
        "application/json",
        {"page_id": "acme", "subscriber_id": "sub_48dd174066159319", "status": "unsubscribed"},
    ),
    "syncStore": ("200", "application/msgpack", "(a msgpack ack: [kind, node, incarnation, seq])"),
    "receiveTwilioStatus": (
        "200",
        "application/json",
        {"delivery_id": "dlv_47ang5tevg7ttld7os7l76c7", "status": "received"},
    ),
    "getHealth": ("200", "application/json", {"status": "ok"}),
    "getReadiness": ("200", "application/json", {"status": "ready", "redis": True, "store": "loaded"}),
    "getMetrics": ("200", "text/plain", 'notifyd_queue_ready{lane="critical"} 0.0\n'),
    "getQueues": (
        "200",
        "application/json",
        {
            "lanes": [{"lane": "critical", "ready": 0, "in_flight": 2, "delayed": 1, "dead_messages": 0}],
            "dead_deliveries": 3,
            "workers": 2,
            "recent_events": [EVENT_SUMMARY],
            "at": 1764681305.2,
        },
    ),
    "getDashboard": ("200", "text/html", "<!doctype html><title>notifyd · operations</title>…"),
    "twilioInbound": (
        "200",
        "application/xml",
        "<Response><Message>Subscribed.</Message></Response>",
    ),
}
#: Path and query parameter examples, by name.
PARAMETER_EXAMPLES = {
    "event_id": "inc-42-update-3",
    "page_id": "acme",
    "subscriber_id": "sub_48dd174066159319",
    "delivery_id": "dlv_47ang5tevg7ttld7os7l76c7",
}


def describe_subscriber_channels(components: dict[str, Any], *, allow_private: bool) -> None:
    """Replace the Subscriber schema by one variant per channel, each with its target rule.

    ``secret`` exists only on webhooks and ``contact_email`` only on webhooks and Slack, as the
    model's validators say; the discriminator lets a client pick the variant by ``channel``.
    """
    base = components.pop("Subscriber")
    targets = target_schemas(allow_private=allow_private)
    secret = {
        "type": "string",
        "pattern": WEBHOOK_SECRET_PATTERN,
        "writeOnly": True,
        "description": "whsec_ and standard base64 (the Standard Webhooks format)",
    }
    contact = {"type": "string", "format": "email", "maxLength": 254}
    mapping = {}
    for channel, target in targets.items():
        name = f"{channel.title()}Subscriber"
        properties = {**base["properties"], "channel": {"type": "string", "const": channel}, "target": target}
        properties["secret"] = (
            {"anyOf": [secret, {"type": "null"}]} if channel == "webhook" else {"type": "null"}
        )
        has_contact = channel in ("webhook", "slack")
        properties["contact_email"] = (
            {"anyOf": [contact, {"type": "null"}]} if has_contact else {"type": "null"}
        )
        components[name] = {**base, "title": name, "properties": properties}
        mapping[channel] = f"#/components/schemas/{name}"
    components["Subscriber"] = {
        "title": "Subscriber",
        "description": base.get("description", "") + " The target's rule depends on the channel.",
        "oneOf": [{"$ref": ref} for ref in mapping.values()],
        "discriminator": {"propertyName": "channel", "mapping": mapping},
        "examples": [SUBSCRIBER],
    }


SIGNUP = {"channel": "email", "target": "ana@example.com", "components": ["api"], "locale": "de"}


def describe_signup(components: dict[str, Any]) -> None:
    """``SignUp``: a subscriber of each channel (no ``id``: notifyd chooses it), plus the
    preferences a person may choose, plus a CAPTCHA token. Call after the channel variants exist."""
    from notifyd.selfservice.prefs import PersonalPrefs
    from notifyd.selfservice.signup import CAPTCHA_TOKEN_MAX

    prefs = PersonalPrefs.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(prefs.pop("$defs", {}))
    captcha = {"anyOf": [{"type": "string", "maxLength": CAPTCHA_TOKEN_MAX}, {"type": "null"}]}
    mapping = {}
    for channel in ("email", "sms", "slack", "webhook"):
        variant = components[f"{channel.title()}Subscriber"]
        properties = {k: v for k, v in variant["properties"].items() if k != "id"}
        properties.update(prefs["properties"])
        properties["captcha_token"] = captcha
        name = f"{channel.title()}SignUp"
        components[name] = {**variant, "title": name, "properties": properties}
        mapping[channel] = f"#/components/schemas/{name}"
    components["SignUp"] = {
        "title": "SignUp",
        "description": "A public sign-up: a subscriber, the person's preferences, and a CAPTCHA token.",
        "oneOf": [{"$ref": ref} for ref in mapping.values()],
        "discriminator": {"propertyName": "channel", "mapping": mapping},
        "examples": [SIGNUP],
    }


def add_examples(schema: dict[str, Any]) -> None:
    for operations in schema["paths"].values():
        for operation in operations.values():
            op_id = operation.get("operationId", "")
            for parameter in operation.get("parameters", []):
                if parameter["name"] in PARAMETER_EXAMPLES and parameter.get("in") == "path":
                    parameter["example"] = PARAMETER_EXAMPLES[parameter["name"]]
            for media, example in REQUEST_EXAMPLES.get(op_id, {}).items():
                operation["requestBody"]["content"][media]["example"] = example
            if op_id in RESPONSE_EXAMPLES:
                status, media, example = RESPONSE_EXAMPLES[op_id]
                answer = operation["responses"].setdefault(status, {"description": "OK"})
                if media:
                    answer.setdefault("content", {}).setdefault(media, {})["example"] = example
                else:
                    answer["description"] = answer.get("description") or "No content"


def has_example(operation: dict[str, Any], components: dict[str, Any]) -> bool:
    """Whether an operation shows an example: of its body, a parameter, or an answer."""

    def shows(node: Any) -> bool:
        if isinstance(node, dict):
            if "example" in node or "examples" in node:
                return True
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
                target = components.get(ref.rsplit("/", 1)[1], {})
                return "example" in target or "examples" in target
            return any(
                shows(v) for k, v in node.items() if k in ("content", "schema") or re.match(r"^[a-z]+/", k)
            )
        return False

    bodies = [operation.get("requestBody", {})]
    answers = [r for status, r in operation.get("responses", {}).items() if status.startswith("2")]
    return any(shows(part) for part in [*bodies, *answers, *operation.get("parameters", [])])
