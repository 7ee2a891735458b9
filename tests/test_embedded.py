"""The embedded server is real, persists with AOF in the data dir, and stops cleanly."""

from __future__ import annotations

import redis

from notifyd.runtime.embedded import EmbeddedRedis


def test_embedded_server_keeps_data_across_a_restart(tmp_path):
    server = EmbeddedRedis(tmp_path)
    url = server.start()
    assert url.startswith("unix://")
    client = redis.Redis.from_url(url)
    client.set("notifyd-test", "kept")
    assert client.config_get("appendonly")["appendonly"] == "yes"
    client.close()
    server.stop()

    again = EmbeddedRedis(tmp_path)
    client = redis.Redis.from_url(again.start())
    try:
        assert client.get("notifyd-test") == b"kept"
        assert (tmp_path / "redis").is_dir()
    finally:
        client.close()
        again.stop()
