"""Subscribers in Redis: idempotent adds, ordered walks, tombstones."""

from __future__ import annotations

import json

import pytest

from notifyd.state.subscribers import SubscriberError


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
    assert rt.subscribers.seq_of("acme", ids[5]) is None
    assert rt.subscribers.count("acme") == 299


def test_removed_target_can_subscribe_again_as_a_new_subscriber(runtime):
    rt = runtime()
    first = rt.subscribers.add("acme", {"channel": "sms", "target": "+14155552671"}).subscriber
    assert rt.subscribers.remove("acme", first.id)
    assert not rt.subscribers.remove("acme", first.id)
    again = rt.subscribers.add("acme", {"channel": "sms", "target": "+14155552671"})
    assert again.created and again.subscriber.seq != first.seq


def test_import_streams_rows_reports_rejections_by_line_and_updates_known_targets(runtime):
    rt = runtime()
    rt.subscribers.add("acme", {"channel": "email", "target": "known@example.com"})
    rows = [(n, {"channel": "email", "target": f"u{n}@example.com"}) for n in range(1, 2501)]
    rows[10] = (11, {"channel": "email", "target": "known@example.com", "components": ["api"]})
    rows[20] = (21, {"channel": "sms", "target": "12345"})
    rows[30] = (31, ValueError("not valid JSON"))
    rows[40] = (41, {"channel": "email", "target": "u1@example.com"})  # repeat within the file
    results = list(rt.subscribers.import_many("acme", rows))
    assert [line for line, _ in results] == list(range(1, 2501))
    errors = {line: str(r) for line, r in results if not hasattr(r, "created")}
    assert set(errors) == {21, 31} and "E.164" in errors[21]
    created = sum(1 for _, r in results if getattr(r, "created", False))
    assert created == 2500 - 2 - 2  # known target and the in-file repeat are updates
    assert rt.subscribers.count("acme") == 1 + created
    updated = results[10][1].subscriber
    assert rt.subscribers.get("acme", updated.id).components == frozenset({"api"})


def test_subscriber_ids_are_unique_per_page_so_two_pages_may_both_have_x1(runtime):
    rt = runtime()
    a = rt.subscribers.add("page-a", {"id": "x1", "channel": "email", "target": "a@example.com"})
    b = rt.subscribers.add("page-b", {"id": "x1", "channel": "email", "target": "b@example.com"})
    assert a.created and b.created
    assert rt.subscribers.get("page-a", "x1").stored_target == "a@example.com"
    assert rt.subscribers.get("page-b", "x1").stored_target == "b@example.com"
    assert rt.subscribers.pages_with("x1") == [("page-a", a.subscriber.seq), ("page-b", b.subscriber.seq)]
    with pytest.raises(SubscriberError, match="already used"):
        rt.subscribers.add("page-a", {"id": "x1", "channel": "email", "target": "c@example.com"})
    assert rt.subscribers.remove("page-b", "x1")
    assert rt.subscribers.get("page-a", "x1") is not None


def test_ids_in_the_old_global_index_move_to_their_pages_on_start(runtime):
    from notifyd.state.subscribers import migrate_ids

    rt = runtime()
    sub = rt.subscribers.add(
        "acme", {"id": "old-1", "channel": "email", "target": "a@example.com"}
    ).subscriber
    # The layout before ids were per page: one hash of id -> "page\x1fseq".
    rt.client.delete(rt.keys.subscriber_ids("acme"))
    rt.client.hset(rt.keys.legacy_subscriber_ids(), "old-1", f"acme\x1f{sub.seq}")
    assert rt.subscribers.get("acme", "old-1") is None
    again = runtime()  # a restart
    assert again.subscribers.get("acme", "old-1").stored_target == "a@example.com"
    assert not rt.client.exists(rt.keys.legacy_subscriber_ids())
    assert migrate_ids(rt.client, rt.keys) == 0


def test_an_update_replaces_what_the_line_owns_and_carries_other_record_fields_over(runtime):
    from notifyd.state.keys import bucket_of

    rt = runtime()
    line = {
        "channel": "webhook",
        "target": "https://example.com/h",
        "components": ["api"],
        "min_impact": "major",
    }
    sub = rt.subscribers.add("acme", line).subscriber
    key = rt.keys.subscribers("acme", bucket_of(sub.seq))
    record = json.loads(rt.client.hget(key, str(sub.seq)))
    record["zz"] = {"state": "kept by another feature", "list": []}
    record["tricky"] = ['a "}" b, \\', {"x": "]"}, [], None, 1.5]
    rt.client.hset(key, str(sub.seq), json.dumps(record))
    rt.subscribers.add("acme", {"channel": "webhook", "target": "https://example.com/h"})
    after = json.loads(rt.client.hget(key, str(sub.seq)))
    assert after["zz"] == {"state": "kept by another feature", "list": []}
    assert after["tricky"] == record["tricky"]
    assert "comp" not in after and "mi" not in after  # the line's own fields are replaced
    assert after["sec"] == sub.sealed_secret and after["id"] == sub.id


def test_every_field_a_line_can_set_is_one_an_update_replaces():
    from notifyd.models import Subscriber
    from notifyd.state.subscribers import LINE_FIELDS, _rest, line_of

    full = Subscriber.model_validate(
        {
            "channel": "webhook",
            "target": "https://example.com/h",
            "components": ["api"],
            "contact_email": "ops@example.com",
            "event_types": ["incident"],
            "min_impact": "major",
            "incident_phases": ["created"],
            "quiet_hours": {"tz": "Europe/Berlin", "start": "22:00", "end": "07:00"},
        }
    )
    line = line_of(full)
    # A sealed Slack hook's line also sets its digest (tk).
    assert set(json.loads(_rest(line, "nsec1:...", "digest"))) <= set(LINE_FIELDS.split(","))
