"""A person subscribes, confirms, manages and leaves, in headless Chromium, with no operator.

Screenshots of every page land in var/test-artifacts/<test name>/.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from notifyd.store import StatusStore
from tests.selfservice.support import links_in, local
from tests.support.browser import Screenshots
from tests.support.events import incident_event, ref
from tests.support.wait import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

UNLABELLED = """() => [...document.querySelectorAll('input:not([type=hidden]), select, button')]
  .filter(el => el.tagName === 'BUTTON' ? !el.textContent.trim() : el.labels.length === 0)
  .map(el => el.outerHTML)"""


def component_event(component: str) -> dict[str, Any]:
    event = incident_event("acme")
    event["incident"]["components"] = [component]
    return event


def test_a_person_subscribes_confirms_manages_and_leaves_in_a_browser(
    stack: Callable[..., Any], page: Any, screenshots: Screenshots
) -> None:
    store = StatusStore.memory("browser-node")
    s = stack(store=store)
    rt = s.rt
    for component, name in (("api", "API"), ("db", "Database")):
        rt.publisher.publish(
            {
                "event_id": f"seed-{component}",
                "type": "component_status_changed",
                "page_id": "acme",
                "occurred_at": "2026-12-01T00:00:00Z",
                "notify": False,
                "component": {"id": component, "name": name, "status": "operational"},
            }
        )
    assert wait_until(lambda: len(store.page_status("acme").get("components", [])) == 2)

    # 1. Subscribe through the form, choosing the API component, with the keyboard.
    page.goto(f"{s.api.url}/status/acme/subscribe")
    assert page.evaluate(UNLABELLED) == []
    page.get_by_label("Address").fill("pat@example.com")
    page.get_by_label("API").check()
    screenshots.take(page, "subscribe-form")
    page.get_by_label("Address").press("Enter")
    page.wait_for_selector("text=Check your inbox")
    screenshots.take(page, "check-your-inbox")
    assert rt.subscribers.count("acme") == 0

    # 2. Confirm through the link the SMTP stand-in caught.
    (mail,) = s.smtp.wait_for(1)
    (confirm,) = [u for u in links_in(mail) if "/confirm?" in u]
    page.goto(local(confirm, s.api.url))
    screenshots.take(page, "confirm")
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_selector("text=You will now receive status updates.")
    screenshots.take(page, "confirmed")
    (sub,) = rt.subscribers.page("acme")[0]
    assert sub.components == frozenset({"api"}) and not sub.disabled

    # 3. The preference page: from the API component to the database.
    manage = page.get_by_role("link", name="Manage your subscription").get_attribute("href")
    page.goto(local(manage, s.api.url))
    assert page.evaluate(UNLABELLED) == []
    screenshots.take(page, "preferences")
    page.get_by_label("API").uncheck()
    page.get_by_label("Database").check()
    assert not page.is_visible("#quiet_start"), "quiet-hour fields open only when asked for"
    page.get_by_label("Hold notifications during quiet hours").check()
    assert page.is_visible("#quiet_start")
    page.get_by_label("Hold notifications during quiet hours").uncheck()
    page.get_by_role("button", name="Save preferences").click()
    page.wait_for_selector("#status >> text=Your preferences are saved.")
    screenshots.take(page, "preferences-saved")
    assert wait_until(lambda: rt.subscribers.get("acme", sub.id).components == frozenset({"db"}))

    # 4. The next events respect the change: API news no longer comes, database news does.
    api_event, db_event = component_event("api"), component_event("db")
    rt.publisher.publish(api_event)
    assert wait_until(lambda: (rt.tracker.summary(ref(api_event)) or {}).get("state") == "done")
    rt.publisher.publish(db_event)
    (_, delivered) = s.smtp.wait_for(2)
    assert delivered.rcpt_tos == ["pat@example.com"]
    assert db_event["incident"]["title"] in delivered.message["Subject"]
    assert any("/status/acme/preferences?token=" in u for u in links_in(delivered)), "every email links it"
    assert rt.tracker.summary(ref(api_event))["counts"]["planned"] == 0

    # 5. Unsubscribe from the same page.
    page.goto(local(manage, s.api.url))
    page.get_by_role("button", name="Unsubscribe from everything").click()
    page.wait_for_selector("h1:has-text('Unsubscribed')")
    screenshots.take(page, "unsubscribed")
    assert rt.subscribers.get("acme", sub.id).disabled == "unsubscribed"
    assert len(screenshots.taken) == 7
