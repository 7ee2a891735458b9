"""One-click unsubscribe links carry a key id, expire, bind to the target, and survive one rotation."""

from __future__ import annotations

import time

import httpx
import pytest

from notifyd import unsubscribe
from notifyd.runtime.settings import ConfigError, load_settings
from notifyd.selfservice import signing
from notifyd.selfservice.wiring import links_for
from notifyd.state.sealing import is_sealed
from tests.api.conftest import Api

READER = {"channel": "email", "target": "reader@example.com"}


def _add(http: httpx.Client, target: str = READER["target"], **extra: str) -> str:
    r = http.post("/v1/pages/acme/subscribers", json={"channel": "email", "target": target, **extra})
    assert r.status_code in (200, 201), r.text
    return str(r.json()["id"])


def _click(api: Api, sub_id: str, token: str) -> httpx.Response:
    with httpx.Client(base_url=api.url) as mail_provider:  # no API key: the token is the credential
        return mail_provider.post(
            "/v1/pages/acme/unsubscribe",
            params={"subscriber": sub_id, "token": token},
            content=b"List-Unsubscribe=One-Click",
        )


def _token(api: Api, sub_id: str, target: str = READER["target"], *, expires_in: float = 3600) -> str:
    key = api.runtime.link_keys.current().signing
    return unsubscribe.token(key, "acme", sub_id, target, int(time.time() + expires_in))


def _status(http: httpx.Client, sub_id: str) -> str:
    items = http.get("/v1/pages/acme/subscribers").json()["items"]
    return next(s.get("disabled_reason", s["status"]) for s in items if s["id"] == sub_id)


def test_the_link_an_email_carries_names_its_key_and_expiry_and_unsubscribes(api: Api, http: httpx.Client):
    from notifyd.pipeline.unsubscribe_links import for_runtime

    sub_id = _add(http)
    before = time.time()
    link = for_runtime(api.runtime)("acme", sub_id, READER["target"])
    token = httpx.URL(link).params["token"]
    kid, expires, _ = token.split(".")
    assert kid == api.runtime.link_keys.current().signing.kid
    ttl = api.runtime.settings.unsubscribe_link_ttl_s
    assert int(before) + ttl <= int(expires, 16) <= time.time() + ttl
    assert _click(api, sub_id, token).status_code == 200
    assert _status(http, sub_id) == "unsubscribed"


def test_a_link_for_the_old_target_stops_working_once_the_target_changes(api: Api, http: httpx.Client):
    sub_id = _add(http, "old@example.com")
    old_link = _token(api, sub_id, "old@example.com")
    assert http.delete(f"/v1/pages/acme/subscribers/{sub_id}").status_code == 204
    # Removed: no target is left to check the link against.
    assert _click(api, sub_id, old_link).status_code == 403
    assert _add(http, "new@example.com", id=sub_id) == sub_id  # the id now reaches a new address
    refused = _click(api, sub_id, old_link)
    assert refused.status_code == 403 and refused.json()["detail"] == "this unsubscribe link is not valid"
    assert _status(http, sub_id) == "active"
    assert _click(api, sub_id, _token(api, sub_id, "new@example.com")).status_code == 200


def test_an_expired_link_is_refused_and_says_so(api: Api, http: httpx.Client):
    sub_id = _add(http)
    refused = _click(api, sub_id, _token(api, sub_id, expires_in=-1))
    assert refused.status_code == 403 and "expired" in refused.json()["detail"]
    assert _status(http, sub_id) == "active"


def test_a_link_survives_one_rotation_of_the_link_key_and_not_two(start_api, runtime):
    api = start_api()
    with api.client("admin") as http:
        _rotate_twice(api, http, runtime)


def _rotate_twice(api: Api, http: httpx.Client, runtime) -> None:
    first, second, third = (
        _add(http, "a@example.com"),
        _add(http, "b@example.com"),
        _add(http, "c@example.com"),
    )
    before = {
        sub: _token(api, sub, f"{t}@example.com") for sub, t in ((first, "a"), (second, "b"), (third, "c"))
    }
    # Another process (the CLI, say) rotates; the running API learns the new key from the token's id.
    other = runtime(namespace=api.runtime.settings.namespace)
    rotated = other.link_keys.rotate()
    assert rotated.keys[1].kid == before[first].split(".")[0]
    after_one = unsubscribe.token(rotated.signing, "acme", second, "b@example.com", int(time.time()) + 60)
    assert _click(api, second, after_one).status_code == 200
    assert _click(api, first, before[first]).status_code == 200  # signed before the rotation: still good
    other.link_keys.rotate()
    # The API reads the keys again when a token names one it does not know, and every REFRESH_S.
    api.runtime.link_keys.refresh()
    assert _click(api, third, before[third]).status_code == 403  # two rotations back: refused
    assert _status(http, third) == "active"


def test_links_from_before_key_ids_still_work_under_the_key_that_made_them(api: Api, http: httpx.Client):
    import base64
    import hashlib
    import hmac

    sub_id = _add(http)
    key = api.runtime.link_keys.current().signing.key
    legacy = base64.urlsafe_b64encode(
        hmac.new(key, f"acme\x1f{sub_id}".encode(), hashlib.sha256).digest()[:18]
    )
    assert _click(api, sub_id, legacy.decode()).status_code == 200


def test_a_legacy_clear_link_key_in_redis_is_kept_and_sealed_on_first_read(runtime):
    rt = runtime()
    legacy = "ab" * 32  # how notifyd kept the generated unsubscribe key before it was sealed
    rt.client.set(rt.keys.link_keys(), legacy)
    keys = rt.link_keys.current()
    assert keys.signing.key == legacy.encode()  # links already sent keep working
    assert legacy not in repr(keys) and legacy not in repr(rt.link_keys) and keys.signing.kid in repr(keys)
    stored = rt.client.get(rt.keys.link_keys()).decode()
    assert is_sealed(stored) and legacy not in stored


def test_preference_links_signed_before_a_rotation_still_verify(runtime):
    rt = runtime()
    links = links_for(rt)
    token = links.manage_token("acme", "sub-1")
    rt.link_keys.rotate()
    assert links.verify(token, signing.MANAGE, "acme").subject == "sub-1"
    rt.link_keys.rotate()
    with pytest.raises(signing.BadToken):
        links.verify(token, signing.MANAGE, "acme")


def test_configured_link_keys_sign_with_the_first_and_accept_the_second(start_api):
    new, old = "new-link-key-" + "x" * 20, "old-link-key-" + "y" * 20
    api = start_api(unsubscribe_secret=f"{new},{old}")
    with api.client("admin") as http:
        sub_id = _add(http)
    assert api.runtime.link_keys.current().signing.key == new.encode()
    old_key = unsubscribe.LinkKey.of(old.encode())
    token = unsubscribe.token(old_key, "acme", sub_id, READER["target"], int(time.time()) + 60)
    assert _click(api, sub_id, token).status_code == 200
    with pytest.raises(ValueError, match="NOTIFYD_UNSUBSCRIBE_SECRET"):
        api.runtime.link_keys.rotate()


def test_more_than_two_link_keys_or_a_short_link_lifetime_are_refused(monkeypatch):
    monkeypatch.setenv("NOTIFYD_UNSUBSCRIBE_SECRET", "aaaa,bbbb,cccc")
    with pytest.raises(ConfigError, match="at most two link keys") as refused:
        load_settings()
    assert "bbbb" not in str(refused.value)
    monkeypatch.delenv("NOTIFYD_UNSUBSCRIBE_SECRET")
    monkeypatch.setenv("NOTIFYD_UNSUBSCRIBE_LINK_TTL_S", str(86400))
    with pytest.raises(ConfigError, match="UNSUBSCRIBE_LINK_TTL_S"):
        load_settings()
