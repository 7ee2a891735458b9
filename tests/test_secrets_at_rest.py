"""Secrets at rest: webhook secrets, Slack incoming-webhook URLs, pending sign-ups' secrets and
hooks, and the link keys are sealed in Redis.

The scan test writes secrets every way notifyd takes them (add, import, self-service sign-up,
generated and given), delivers with them, then reads every key of every type in the test's
Redis database and finds none of them, nor their base64 bodies, nor the link key, nor any
part of a Slack hook's URL past its host.
"""

from __future__ import annotations

import base64
import json
import os
import stat

import pytest
import redis
from standardwebhooks.webhooks import Webhook

from notifyd.runtime.secret_key import GENERATED_KEY_FILE, keyring_for
from notifyd.runtime.settings import ConfigError, Settings, load_settings
from notifyd.state.keys import Keys, bucket_of
from notifyd.state.sealing import Keyring, SealError, generate_key, sealed_key_id, webhook_secret_context
from notifyd.state.subscribers import StoredSubscriber
from notifyd.state.target_digests import TargetDigests
from tests.support.events import incident_event
from tests.support.wait import wait_done
from tests.test_cli import cli  # noqa: F401 - the fixture

OLD_KEY = "old-secret-key-" + "k" * 17 + "0123456789"
NEW_KEY = "new-secret-key-" + "n" * 17 + "9876543210"


def _secret(fill: str) -> str:
    return "whsec_" + base64.b64encode(fill.encode() * 24).decode()


def _every_value(client: redis.Redis) -> bytes:
    """Every key name and every value of every key in the database, strings to streams."""
    out: list[bytes] = []
    for key in client.scan_iter(count=1000):
        out.append(key)
        kind = client.type(key).decode()
        if kind == "string":
            out.append(client.get(key) or b"")
        elif kind == "hash":
            for field, value in client.hgetall(key).items():
                out += [field, value]
        elif kind == "set":
            out += list(client.smembers(key))
        elif kind == "zset":
            out += [member for member, _ in client.zrange(key, 0, -1, withscores=True)]
        elif kind == "list":
            out += client.lrange(key, 0, -1)
        elif kind == "stream":
            for entry_id, fields in client.xrange(key):
                out.append(entry_id)
                for field, value in fields.items():
                    out += [field, value]
        else:  # pragma: no cover - notifyd writes no other type
            raise AssertionError(f"key {key!r} has type {kind}, which this scan does not read")
    return b"\n".join(out)


def _forms(secret: str) -> list[bytes]:
    """A secret as it could leak: itself, its base64 body, and the raw key that body encodes."""
    body = secret.removeprefix("whsec_")
    forms = [secret.encode(), body.encode()]
    if body != secret:
        forms.append(base64.b64decode(body))
    return forms


def test_no_secret_is_in_clear_anywhere_in_redis_after_subscribers_signups_and_deliveries(
    runtime, sink, start_worker, redis_url
):
    from notifyd.selfservice.wiring import optin_for

    rt = runtime()
    given = _secret("given-by-add")
    added_given = rt.subscribers.add(
        "acme", {"channel": "webhook", "target": f"{sink.url}/given", "secret": given}
    )
    generated = rt.subscribers.add("acme", {"channel": "webhook", "target": f"{sink.url}/generated"})
    assert generated.generated_secret is not None
    updated_secret = _secret("given-by-update")
    rt.subscribers.add(
        "acme", {"channel": "webhook", "target": f"{sink.url}/given", "secret": updated_secret}
    )
    imported_given = [_secret(f"import-{i}-") for i in range(3)]
    lines = [
        (i, {"channel": "webhook", "target": f"{sink.url}/imp{i}", "secret": s})
        for i, s in enumerate(imported_given)
    ] + [(10 + i, {"channel": "webhook", "target": f"{sink.url}/impgen{i}"}) for i in range(3)]
    results = [r for _, r in rt.subscribers.import_many("beta", lines)]
    assert all(r.created for r in results)
    # The import answers no generated secret; the sealed ones it stored are what they are.
    imported_generated = [
        rt.subscribers.secret_of(rt.subscribers.get("beta", r.subscriber.id)) for r in results[3:]
    ]
    pending_secret = _secret("pending-signup")
    optin = optin_for(rt)
    optin.start(
        "acme",
        {"channel": "webhook", "target": f"{sink.url}/pending", "secret": pending_secret},
        source="api",
    )
    # Slack incoming-webhook URLs, credentials themselves, taken every way a target is.
    hooks = {way: f"/services/T0SCAN/B0{way.upper()}/{way}hooksecret0123456789" for way in _HOOK_WAYS}
    rt.subscribers.add("acme", {"channel": "slack", "target": sink.url + hooks["add"]})
    imported = rt.subscribers.import_many(
        "acme", [(1, {"channel": "slack", "target": sink.url + hooks["import"]})]
    )
    assert [r.created for _, r in imported] == [True]
    optin.start("acme", {"channel": "slack", "target": sink.url + hooks["signup"]}, source="api")
    confirmed = optin.start(
        "acme", {"channel": "slack", "target": sink.url + hooks["confirmed"]}, source="api"
    )
    optin.confirm(confirmed.pending_id, via="email-link")
    link_key = rt.link_keys.current().signing.key

    # The sealed secrets still sign: a delivery verifies with each subscriber's secret.
    start_worker(rt)
    event = incident_event()
    rt.publisher.publish(event)
    wait_done(rt, event["event_id"])
    (got,) = sink.on("/generated")
    assert Webhook(generated.generated_secret).verify(got.body, got.headers)["event_id"] == event["event_id"]
    (got,) = sink.on("/given")
    assert Webhook(updated_secret).verify(got.body, got.headers)["event_id"] == event["event_id"]
    assert rt.subscribers.secret_of(rt.subscribers.get("acme", added_given.subscriber.id)) == updated_secret
    for way in ("add", "import", "confirmed"):  # each hook got the event, opened from its sealed record
        assert len(sink.on(hooks[way])) == 1, way
    assert sink.wait_for(lambda: any(r.path == hooks["signup"] for r in sink.received))  # its confirmation

    secrets = [given, updated_secret, generated.generated_secret, pending_secret]
    secrets += imported_given + [s for s in imported_generated if s is not None]
    assert len(secrets) == 10
    dump = _every_value(redis.Redis.from_url(redis_url))
    assert rt.keys.ns.encode() in dump and b"nsec1:" in dump  # the scan read this test's sealed keys
    for secret in secrets:
        for form in _forms(secret):
            assert form not in dump
    assert link_key not in dump and link_key.hex().encode() not in dump
    assert b"/services/" not in dump and b"hooksecret" not in dump and b"T0SCAN" not in dump


_HOOK_WAYS = ("add", "import", "signup", "confirmed")


HOOK = "https://hooks.slack.com/services/T0ACME/B0ACME/hooksecretpart0123456789"


def _record(rt, sub: StoredSubscriber) -> tuple[str, dict]:
    key = rt.keys.subscribers(sub.page_id, bucket_of(sub.seq))
    return key, json.loads(rt.client.hget(key, str(sub.seq)))


def _as_legacy(rt, sub: StoredSubscriber, hook: str, **fields: str) -> None:
    """Rewrite a Slack subscriber as notifyd wrote it before hooks were sealed: the URL in the
    record and in the targets index (and any ``fields`` in clear, such as a secret)."""
    key, record = _record(rt, sub)
    record.pop("tk")
    record.update(t=hook, **fields)
    rt.client.hset(key, str(sub.seq), json.dumps(record))
    targets = rt.keys.subscriber_targets(sub.page_id)
    rt.client.hdel(targets, f"slack\x1f{sub.target_digest}")
    rt.client.hset(targets, f"slack\x1f{hook}", sub.seq)


def test_a_slack_hook_is_stored_sealed_indexed_by_digest_and_shown_masked(runtime):
    rt = runtime()
    sub = rt.subscribers.add("acme", {"channel": "slack", "target": HOOK}).subscriber
    _, record = _record(rt, sub)
    assert record["t"].startswith("nsec1:") and "hooksecretpart" not in json.dumps(record)
    assert record["tk"] == sub.target_digest == rt.target_digests.digest("slack", HOOK)
    assert rt.client.hkeys(rt.keys.subscriber_targets("acme")) == [f"slack\x1f{sub.target_digest}".encode()]
    assert rt.subscribers.target_of(rt.subscribers.get("acme", sub.id)) == HOOK
    # Shown by host and last four characters; a Slack channel id and other targets as they are.
    assert rt.subscribers.public(sub)["target"] == "https://hooks.slack.com/...6789"
    channel = rt.subscribers.add("acme", {"channel": "slack", "target": "slack:C0123ABCD"}).subscriber
    assert rt.subscribers.public(channel)["target"] == "slack:C0123ABCD" == channel.stored_target
    assert channel.target_digest is None
    # A sealed hook copied onto another record does not open there.
    other = rt.subscribers.add("acme", {"channel": "slack", "target": HOOK + "x"}).subscriber
    key, moved = _record(rt, other)
    moved["t"] = record["t"]
    rt.client.hset(key, str(other.seq), json.dumps(moved))
    with pytest.raises(SealError, match="copied from another record"):
        rt.subscribers.target_of(rt.subscribers.get("acme", other.id))
    assert rt.subscribers.public(rt.subscribers.get("acme", other.id))["target"].startswith("(sealed")


def test_the_same_slack_hook_is_one_subscriber_on_add_import_and_signup(runtime):
    from notifyd.selfservice.wiring import optin_for

    rt = runtime()
    first = rt.subscribers.add("acme", {"channel": "slack", "target": HOOK})
    again = rt.subscribers.add("acme", {"channel": "slack", "target": HOOK, "components": ["api"]})
    assert (first.created, again.created, again.subscriber.id) == (True, False, first.subscriber.id)
    rows = [(1, {"channel": "slack", "target": HOOK}), (2, {"channel": "slack", "target": HOOK})]
    assert [r.outcome for _, r in rt.subscribers.import_many("acme", rows)] == ["updated", "updated"]
    optin = optin_for(rt)
    started = optin.start("acme", {"channel": "slack", "target": HOOK}, source="api")
    assert (
        optin.start("acme", {"channel": "slack", "target": HOOK}, source="api").pending_id
        == started.pending_id
    )
    assert optin.get(started.pending_id).target == HOOK
    assert optin.confirm(started.pending_id, via="email-link").id == first.subscriber.id
    assert rt.subscribers.count("acme") == 1
    (listed,), _ = rt.subscribers.page("acme")
    assert listed.id == first.subscriber.id and listed.components is None  # the last line's fields
    # Another page's same hook is another subscriber, sealed for that page.
    assert rt.subscribers.add("beta", {"channel": "slack", "target": HOOK}).created


def test_a_slack_subscriber_removed_or_opted_out_leaves_no_index_entry_and_stays_out(runtime):
    rt = runtime()
    targets = rt.keys.subscriber_targets("acme")
    sub = rt.subscribers.add("acme", {"channel": "slack", "target": HOOK}).subscriber
    assert rt.subscribers.remove("acme", sub.id)
    assert rt.client.hlen(targets) == 0 and rt.subscribers.count("acme") == 0
    back = rt.subscribers.add("acme", {"channel": "slack", "target": HOOK})
    assert back.created and back.subscriber.id != sub.id
    # A legacy record (indexed by its URL) removed before it was sealed: its entry goes too.
    _as_legacy(rt, back.subscriber, HOOK)
    assert rt.subscribers.remove("acme", back.subscriber.id) and rt.client.hlen(targets) == 0
    # An opt-out is found by the digest: the same hook added again stays unsubscribed.
    out = rt.subscribers.add("acme", {"channel": "slack", "target": HOOK}).subscriber
    rt.subscribers.disable("acme", out.seq, "unsubscribed")
    kept = rt.subscribers.add("acme", {"channel": "slack", "target": HOOK})
    assert kept.kept and kept.subscriber.id == out.id


def test_legacy_clear_hooks_and_secrets_are_sealed_and_reindexed_at_start_up_and_by_rewrap(runtime):
    rt = runtime()
    hook = rt.subscribers.add("acme", {"channel": "slack", "target": HOOK}).subscriber
    made = rt.subscribers.add("acme", {"channel": "webhook", "target": "https://a.example/h"})
    legacy_secret = _secret("kept-clear-by-a-batched-update")
    _as_legacy(rt, hook, HOOK)
    key, record = _record(rt, made.subscriber)
    rt.client.hset(key, str(made.subscriber.seq), json.dumps({**record, "sec": legacy_secret}))
    targets = rt.keys.subscriber_targets("acme")

    def sealed() -> None:
        dump = _every_value(rt.client)
        assert b"hooksecretpart" not in dump and legacy_secret.encode() not in dump
        assert rt.client.hget(targets, f"slack\x1f{hook.target_digest}") == str(hook.seq).encode()
        assert rt.client.hlen(targets) == 2
        stored = rt.subscribers.get("acme", hook.id)
        assert stored.target_digest == hook.target_digest and rt.subscribers.target_of(stored) == HOOK
        assert rt.subscribers.secret_of(rt.subscribers.get("acme", made.subscriber.id)) == legacy_secret
        again = rt.subscribers.add("acme", {"channel": "slack", "target": HOOK})
        assert (again.created, again.subscriber.id) == (False, hook.id)

    # The start-up migration runs once per namespace ...
    assert runtime().subscribers.seal_legacy() == 0 and b"hooksecretpart" in _every_value(rt.client)
    rt.client.delete(rt.keys.migrated("sealed-targets"))
    runtime()
    sealed()
    # ... and rewrap seals what was written in clear since.
    _as_legacy(rt, rt.subscribers.get("acme", hook.id), HOOK, sec=legacy_secret)
    rt.client.hset(key, str(made.subscriber.seq), json.dumps({**record, "sec": legacy_secret}))
    assert rt.subscribers.rewrap("acme") == 2
    sealed()
    assert rt.subscribers.rewrap("acme") == 0


def test_a_legacy_clear_hook_waiting_for_confirmation_is_sealed_and_renamed_by_rewrap(runtime):
    from notifyd.selfservice.optin import Pending
    from notifyd.selfservice.wiring import optin_for

    rt = runtime()
    optin = optin_for(rt)
    started = optin.start("acme", {"channel": "slack", "target": HOOK}, source="api")
    key = rt.keys.pending(started.pending_id)
    digest_named = rt.keys.pending_target("acme", "slack", rt.target_digests.digest("slack", HOOK))
    stored = Pending.decode(started.pending_id, rt.client.get(key))
    assert stored.target.startswith("nsec1:") and rt.client.get(digest_named) is not None
    # As an older notifyd wrote it: the hook in the record and in the index key's name.
    legacy = Pending(
        **{
            **{f: getattr(stored, f) for f in Pending.__slots__},
            "subscriber": {"channel": "slack", "target": HOOK},
        }
    )
    rt.client.set(key, legacy.encode(), keepttl=True)
    rt.client.rename(digest_named, rt.keys.pending_target("acme", "slack", HOOK))
    assert optin.get(started.pending_id).target == HOOK  # read as it is
    assert optin.rewrap() == 1 and optin.rewrap() == 0
    assert b"hooksecretpart" not in _every_value(rt.client)
    assert rt.client.ttl(key) > 0 and rt.client.ttl(digest_named) > 0
    assert (
        optin.start("acme", {"channel": "slack", "target": HOOK}, source="api").pending_id
        == started.pending_id
    )
    assert optin.confirm(started.pending_id, via="email-link").stored_target.startswith("nsec1:")


def test_a_sealed_secret_opens_only_on_its_own_record(runtime):
    rt = runtime()
    a = rt.subscribers.add("acme", {"channel": "webhook", "target": "https://a.example/h"}).subscriber
    b = rt.subscribers.add("acme", {"channel": "webhook", "target": "https://b.example/h"}).subscriber
    key_a = rt.keys.subscribers("acme", bucket_of(a.seq))
    record_a = json.loads(rt.client.hget(key_a, str(a.seq)))
    key_b = rt.keys.subscribers("acme", bucket_of(b.seq))
    record_b = json.loads(rt.client.hget(key_b, str(b.seq)))
    record_b["sec"] = record_a["sec"]  # someone with Redis access moves a's secret to b
    rt.client.hset(key_b, str(b.seq), json.dumps(record_b))
    with pytest.raises(SealError) as refused:
        rt.subscribers.secret_of(rt.subscribers.get("acme", b.id))
    assert "copied from another record" in str(refused.value)
    assert rt.subscribers.secret_of(rt.subscribers.get("acme", a.id)).startswith("whsec_")


def test_secrets_sealed_with_the_old_key_open_after_a_new_key_is_added_and_rewrap_moves_them(runtime):
    old = runtime(secret_key=OLD_KEY)
    made = old.subscribers.add("acme", {"channel": "webhook", "target": "https://a.example/h"})
    secret = made.generated_secret
    old_kid = Keyring([OLD_KEY]).newest_kid
    assert sealed_key_id(made.subscriber.sealed_secret) == old_kid

    both = runtime(secret_key=f"{NEW_KEY},{OLD_KEY}")
    assert both.subscribers.secret_of(both.subscribers.get("acme", made.subscriber.id)) == secret
    # Any write of the record re-seals it with the newest key ...
    both.subscribers.update_choices(
        "acme", made.subscriber.id, components=["api"], prefs=made.subscriber.prefs
    )
    stored = both.subscribers.get("acme", made.subscriber.id)
    assert sealed_key_id(stored.sealed_secret) == both.keyring.newest_kid != old_kid
    # ... and rewrap re-seals what was not written since.
    other = old.subscribers.add("acme", {"channel": "webhook", "target": "https://b.example/h"})
    assert both.subscribers.rewrap("acme") == 1
    assert both.subscribers.rewrap("acme") == 0

    new_only = runtime(secret_key=NEW_KEY)
    for sub_id, clear in ((made.subscriber.id, secret), (other.subscriber.id, other.generated_secret)):
        assert new_only.subscribers.secret_of(new_only.subscribers.get("acme", sub_id)) == clear
    old_only = runtime(secret_key=OLD_KEY)
    with pytest.raises(SealError) as missing:
        old_only.subscribers.secret_of(old_only.subscribers.get("acme", made.subscriber.id))
    assert both.keyring.newest_kid in str(missing.value) and NEW_KEY not in str(missing.value)


def test_a_legacy_clear_secret_is_read_as_it_is_and_sealed_by_rewrap(runtime):
    rt = runtime()
    sub = rt.subscribers.add("acme", {"channel": "webhook", "target": "https://a.example/h"}).subscriber
    key = rt.keys.subscribers("acme", bucket_of(sub.seq))
    record = json.loads(rt.client.hget(key, str(sub.seq)))
    legacy = _secret("written-before-sealing")
    record["sec"] = legacy  # as notifyd wrote it before secrets were sealed
    rt.client.hset(key, str(sub.seq), json.dumps(record))
    assert rt.subscribers.secret_of(rt.subscribers.get("acme", sub.id)) == legacy
    assert rt.subscribers.rewrap("acme") == 1
    raw = rt.client.hget(key, str(sub.seq))
    assert legacy.encode() not in raw
    assert rt.subscribers.secret_of(rt.subscribers.get("acme", sub.id)) == legacy


def test_the_secrets_rewrap_command_reseals_every_page_pending_signups_and_the_link_keys(runtime):
    from notifyd.cli.secrets import rewrap
    from notifyd.selfservice.wiring import optin_for

    old = runtime(secret_key=OLD_KEY)
    for page in ("acme", "beta"):
        old.subscribers.add(page, {"channel": "webhook", "target": f"https://{page}.example/h"})
    old.link_keys.current()
    hook = "https://hooks.slack.example/services/T0/B0/rewrap"
    digest = old.target_digests.digest("slack", hook)
    pending_secret = _secret("waiting-for-confirmation")
    started = optin_for(old).start(
        "acme",
        {"channel": "webhook", "target": "https://c.example/h", "secret": pending_secret},
        source="api",
    )
    new = runtime(secret_key=f"{NEW_KEY},{OLD_KEY}")
    summary = rewrap(new)
    assert summary == {
        "key": new.keyring.newest_kid,
        "subscriber_secrets": 2,
        "pages": 2,
        "pending_signups": 1,
        "link_keys": True,
        "target_index_key": True,
    }
    assert rewrap(new) == {
        **summary,
        "subscriber_secrets": 0,
        "pending_signups": 0,
        "link_keys": False,
        "target_index_key": False,
    }
    assert sealed_key_id(new.client.get(new.keys.link_keys()).decode()) == new.keyring.newest_kid
    assert sealed_key_id(new.client.get(new.keys.target_index_key()).decode()) == new.keyring.newest_kid
    # After rewrap the old key opens nothing: the new key alone reads every secret.
    new_only = runtime(secret_key=NEW_KEY)
    assert optin_for(new_only).get(started.pending_id).subscriber["secret"] == pending_secret
    assert new_only.client.ttl(new_only.keys.pending(started.pending_id)) > 0
    for page in ("acme", "beta"):
        (sub,), _ = new_only.subscribers.page(page)
        assert new_only.subscribers.secret_of(sub).startswith("whsec_")
    # The index key was re-sealed, not replaced: a digest names the same target after rotation.
    assert new_only.target_digests.digest("slack", hook) == digest


def test_a_slack_hooks_send_schedule_is_named_by_a_keyed_digest_never_by_its_url(
    runtime, sink, start_worker, redis_url
):
    rt = runtime(slack_rate_per_s=5.0)
    hook = f"{sink.url}/services/T0ACME/B0ACME/hooksecretpart0123456789"
    rt.subscribers.add("acme", {"channel": "slack", "target": hook})
    start_worker(rt)
    event = incident_event()
    rt.publisher.publish(event)
    wait_done(rt, event["event_id"])
    assert len(sink.on("/services/T0ACME/B0ACME/hooksecretpart0123456789")) == 1
    client = redis.Redis.from_url(redis_url)
    names = list(client.scan_iter(match=f"{rt.keys.ns}*", count=1000))
    schedule = rt.keys.send_rate(f"slack:{rt.target_digests.digest('slack', hook)}").encode()
    assert schedule in names  # the hook was paced, on a schedule its URL cannot be read from
    assert not [n for n in names if b"hooksecretpart" in n or b"/services/" in n]
    # The index key is sealed; the digest is keyed (another namespace's key makes another one).
    stored = client.get(rt.keys.target_index_key())
    assert stored is not None and stored.startswith(b"nsec1:")
    other = TargetDigests(client, Keys(rt.keys.ns + "-other"), rt.keyring)
    try:
        assert other.digest("slack", hook) != rt.target_digests.digest("slack", hook)
        assert rt.target_digests.digest("slack", hook) == rt.target_digests.digest("slack", hook)
        assert rt.target_digests.digest("slack", hook) != rt.target_digests.digest("webhook", hook)
        assert "hooksecretpart" not in repr(rt.target_digests)
    finally:
        client.delete(other.redis_key)


def test_without_a_configured_key_one_is_generated_in_the_data_dir_owner_only_and_kept(make_settings):
    settings = make_settings()
    first = keyring_for(settings)
    path = settings.data_dir / GENERATED_KEY_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(settings.data_dir).st_mode) == 0o700
    assert keyring_for(settings).newest_kid == first.newest_kid
    assert path.read_text().strip() not in repr(first)


def test_key_settings_refuse_short_keys_and_two_sources_without_showing_a_key(monkeypatch, tmp_path):
    short = "short-key-1234"
    monkeypatch.setenv("NOTIFYD_SECRET_KEY", f"{NEW_KEY},{short}")
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert "key 2 has fewer than 32 characters" in str(refused.value) and short not in str(refused.value)
    monkeypatch.setenv("NOTIFYD_SECRET_KEY", NEW_KEY)
    key_file = tmp_path / "keys"
    key_file.write_text(f"# newest first\n{NEW_KEY}\n{OLD_KEY}\n")
    monkeypatch.setenv("NOTIFYD_SECRET_KEY_FILE", str(key_file))
    with pytest.raises(ConfigError, match="not both"):
        load_settings()
    monkeypatch.delenv("NOTIFYD_SECRET_KEY")
    ring = keyring_for(load_settings())
    assert ring.kids == [Keyring([NEW_KEY]).newest_kid, Keyring([OLD_KEY]).newest_kid]
    assert NEW_KEY not in repr(ring) and OLD_KEY not in repr(ring)
    sealed_elsewhere = Keyring([generate_key()]).seal("whsec_abc", "ctx")
    with pytest.raises(SealError, match=f"add that key back to {key_file}$"):
        ring.open(sealed_elsewhere, "ctx")


def test_the_keyring_seals_for_a_context_and_never_shows_a_key():
    ring = Keyring([generate_key()])
    context = webhook_secret_context("acme", "webhook", "https://a.example/h")
    sealed = ring.seal("whsec_abc", context)
    assert sealed.startswith(f"nsec1:{ring.newest_kid}:") and "whsec_abc" not in sealed
    assert ring.open(sealed, context) == "whsec_abc"
    assert ring.seal("whsec_abc", context) != sealed  # a fresh nonce every time
    with pytest.raises(SealError):
        ring.open(sealed, webhook_secret_context("acme", "webhook", "https://b.example/h"))
    assert ring.open("whsec_legacy", context) == "whsec_legacy"
    assert ring.reseal(sealed, context) is None
    with pytest.raises(ValueError, match="at least 32"):
        Keyring(["too-short"])


def test_settings_repr_and_errors_never_show_the_secret_key():
    settings = Settings(secret_key=NEW_KEY)
    assert NEW_KEY not in repr(settings) and NEW_KEY not in str(settings.model_dump())


def test_the_secrets_commands_generate_a_key_rewrap_and_rotate_the_link_key(cli, runtime):  # noqa: F811
    key = cli("secrets", "generate-key")
    assert key.returncode == 0 and len(key.stdout.strip()) >= 32
    old = cli(
        "subscribers",
        "add",
        "--page",
        "acme",
        "--channel",
        "webhook",
        "--target",
        "https://a.example/h",
        extra_env={"NOTIFYD_SECRET_KEY": OLD_KEY},
    )
    assert old.returncode == 0, old.stderr
    secret = json.loads(old.stdout)["secret"]
    both = {"NOTIFYD_SECRET_KEY": f"{NEW_KEY},{OLD_KEY}"}
    rewrapped = cli("secrets", "rewrap", extra_env=both)
    assert rewrapped.returncode == 0, rewrapped.stderr
    summary = json.loads(rewrapped.stdout)
    assert (summary["subscriber_secrets"], summary["link_keys"]) == (1, False)
    assert secret not in rewrapped.stdout + rewrapped.stderr
    rotated = cli("secrets", "rotate-link-key", extra_env=both)
    assert rotated.returncode == 0 and "signs from now on" in rotated.stderr
    rt = runtime(secret_key=NEW_KEY)
    (sub,), _ = rt.subscribers.page("acme")
    assert rt.subscribers.secret_of(sub) == secret
    assert len(rt.link_keys.current().keys) == 2
    wrong = cli("secrets", "rewrap", extra_env={"NOTIFYD_SECRET_KEY": OLD_KEY})
    assert wrong.returncode == 2 and "not among the configured keys" in wrong.stderr
    assert "add that key back to NOTIFYD_SECRET_KEY" in wrong.stderr
    assert NEW_KEY not in wrong.stderr and OLD_KEY not in wrong.stderr


def test_serve_and_worker_on_a_shared_redis_warn_when_the_key_is_the_generated_one(make_settings, caplog):
    from notifyd.runtime.secret_key import warn_if_unshared

    generated = make_settings()
    warn_if_unshared(generated, keyring_for(generated))
    assert "every process sharing this Redis needs that same key" in caplog.text
    caplog.clear()
    configured = make_settings(secret_key=NEW_KEY)
    warn_if_unshared(configured, keyring_for(configured))
    assert caplog.text == ""


def test_an_unreadable_key_file_stops_a_command_with_one_line(cli, tmp_path):  # noqa: F811
    missing = tmp_path / "no-such-key-file"
    result = cli("subscribers", "list", "--page", "acme", extra_env={"NOTIFYD_SECRET_KEY_FILE": str(missing)})
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"notifyd: NOTIFYD_SECRET_KEY_FILE: cannot read {missing}: No such file or directory"
    )
