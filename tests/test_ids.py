"""Delivery ids are stable across versions: the same text for the same (event, subscriber, channel)."""

from __future__ import annotations

import base64
import hashlib

from hypothesis import given
from hypothesis import strategies as st

from notifyd.ids import delivery_id


def test_a_delivery_id_is_the_one_every_earlier_version_gave() -> None:
    # Written down once; a delivery in flight across an upgrade must keep its webhook-id.
    assert delivery_id("a", "b", "webhook") == "dlv_srxdvqx7mrwb3sch3sodbfyx"


@given(st.text(max_size=80), st.text(max_size=40), st.sampled_from(["webhook", "email", "sms", "slack"]))
def test_a_delivery_id_is_the_lower_case_base32_of_its_digest(
    event: str, subscriber: str, channel: str
) -> None:
    source = f"{event}\x1f{subscriber}\x1f{channel}".encode("utf-8", "surrogatepass")
    digest = hashlib.blake2b(source, digest_size=15).digest()
    expected = "dlv_" + base64.b32encode(digest).decode().lower()
    try:
        f"{event}{subscriber}".encode()
    except UnicodeEncodeError:
        return  # lone surrogates cannot be ids (both would raise alike)
    assert delivery_id(event, subscriber, channel) == expected
