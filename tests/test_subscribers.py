"""Subscribers in Redis: idempotent adds, ordered walks, tombstones."""

from __future__ import annotations

import pytest

from notifyd.subscribers import SubscriberError


def test_adding_the_same_page_channel_and_target_twice_updates_one_subscriber(runtime):
    rt = runtime()
    first = rt.subscribers.add("acme", {"channel": "email", "target": "Ops@Example.com"})
    again = rt.subscribers.add(
        "acme", {"channel": "email", "target": "ops@example.com", "components": ["api"]}
    )
    assert first.created and not again.created
    assert again.subscriber.id == first.subscriber.id
    assert again.subscriber.components == frozenset({"api"})
    assert rt.subscribers.count("acme") == 1


def test_an_id_already_used_by_another_target_is_refused(runtime):
    rt = runtime()
    rt.subscribers.add("acme", {"id": "sub-1", "channel": "email", "target": "a@example.com"})
    with pytest.raises(SubscriberError, match="already used"):
        rt.subscribers.add("acme", {"id": "sub-1", "channel": "email", "target": "b@example.com"})


def test_subscribers_are_walked_in_order_across_buckets_without_removed_ones(runtime):
    rt = runtime()
    ids = [
        rt.subscribers.add("acme", {"channel": "email", "target": f"u{i}@example.com"}).subscriber.id
        for i in range(300)
    ]
    rt.subscribers.remove("acme", ids[5])
    seen, cursor = [], 0
    while cursor is not None:
        items, cursor = rt.subscribers.page("acme", cursor=cursor, limit=70)
        seen.extend(s.id for s in items)
    assert seen == ids[:5] + ids[6:]
    assert rt.subscribers.locate(ids[5]) is None
    assert rt.subscribers.count("acme") == 299


def test_removed_target_can_subscribe_again_as_a_new_subscriber(runtime):
    rt = runtime()
    first = rt.subscribers.add("acme", {"channel": "sms", "target": "+14155552671"}).subscriber
    assert rt.subscribers.remove("acme", first.id)
    assert not rt.subscribers.remove("acme", first.id)
    again = rt.subscribers.add("acme", {"channel": "sms", "target": "+14155552671"})
    assert again.created and again.subscriber.seq != first.seq
