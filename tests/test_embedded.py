"""The embedded server is real, persists with AOF in the data dir, and stops cleanly."""

from __future__ import annotations

import stat
import time

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


def test_the_embedded_server_s_files_are_readable_by_their_owner_only(tmp_path):
    server = EmbeddedRedis(tmp_path)
    client = redis.Redis.from_url(server.start())
    try:
        client.set("notifyd-test", "secret-ish")
        client.execute_command("BGREWRITEAOF")
        time.sleep(0.5)
    finally:
        client.close()
        server.stop()
    data = tmp_path / "redis"
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    files = [p for p in data.rglob("*") if p.is_file()]
    assert any("aof" in p.name for p in files)
    loose = {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in files if p.stat().st_mode & 0o077}
    assert not loose, loose
