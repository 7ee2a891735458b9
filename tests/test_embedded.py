"""The embedded server is real, persists with AOF in the data dir, and stops cleanly."""

from __future__ import annotations

import contextlib
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


def _answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_timeout=2)
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False
    finally:
        client.close()


def test_the_server_runs_until_its_last_user_leaves_not_until_its_starter_does(tmp_path):
    starter = EmbeddedRedis(tmp_path)
    url = starter.start()
    attached = EmbeddedRedis(tmp_path)
    assert attached.start() == url
    assert starter.users() == 2
    starter.stop()
    assert _answers(url), "the starter left and took the server with it"
    attached.stop()
    assert not _answers(url)


def test_a_process_that_attached_and_exited_keeps_the_server_for_those_still_attached(tmp_path):
    import subprocess
    import sys

    attached = EmbeddedRedis(tmp_path)
    url = attached.start()
    script = (
        "import sys; from notifyd.runtime.embedded import EmbeddedRedis; "
        "s = EmbeddedRedis(sys.argv[1]); s.start(); s.stop()"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True, timeout=60)
    try:
        assert _answers(url)
    finally:
        attached.stop()
    assert not _answers(url)


def test_a_user_killed_without_leaving_does_not_keep_the_server_alive(tmp_path):
    import signal
    import subprocess
    import sys

    starter = EmbeddedRedis(tmp_path)
    url = starter.start()
    script = (
        "import sys, time; from notifyd.runtime.embedded import EmbeddedRedis; "
        "EmbeddedRedis(sys.argv[1]).start(); print('attached', flush=True); time.sleep(600)"
    )
    victim = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert victim.stdout is not None and victim.stdout.readline().strip() == "attached"
        assert starter.users() == 2
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.communicate()
    assert starter.users() == 1
    starter.stop()
    assert not _answers(url)


def _user_pids(tmp_path) -> set[int]:
    return {int(p.name.split("-")[0]) for p in (tmp_path / "redis" / "users").glob("*")}


def test_worker_processes_children_are_users_so_the_server_outlives_their_parent(tmp_path):
    """`notifyd worker --processes 2` on the embedded server: each child attaches as a user, so
    the parent dying and another user leaving does not shut the server down under the children;
    the last child to leave does."""
    import os
    import signal
    import subprocess
    import sys

    from tests.support.env import cli_env
    from tests.support.wait import wait_until

    observer = EmbeddedRedis(tmp_path)
    env = cli_env(data_dir=tmp_path, redis_url=None, namespace="embedded-children")
    parent = subprocess.Popen(
        [sys.executable, "-m", "notifyd", "worker", "--processes", "2", "--threads", "1"],
        env=env,
        start_new_session=True,  # its own group: the cleanup below reaches the children too
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        assert wait_until(lambda: observer.users() == 3, timeout=90), parent.stderr
        children = _user_pids(tmp_path) - {parent.pid}
        assert len(children) == 2
        url = observer.start()  # one more user, as a `notifyd publish` without a URL would be
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
        assert wait_until(lambda: observer.users() == 3, timeout=10)
        observer.stop()
        assert _answers(url), "the server stopped under the children of a dead parent"
        assert observer.users() == 2
        for pid in children:
            os.kill(pid, signal.SIGTERM)
        # The last child to leave shuts the server down (and fsyncs the AOF on the way).
        assert wait_until(lambda: not _answers(url), timeout=60)
        assert observer.users() == 0
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(parent.pid, signal.SIGKILL)
        parent.wait(timeout=30)
        if parent.stderr is not None:
            parent.stderr.close()


def test_a_data_dir_too_deep_for_a_socket_path_still_gives_every_process_the_same_server(tmp_path):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    first = EmbeddedRedis(deep)
    url = first.start()
    second = EmbeddedRedis(deep)  # as another process computes it
    try:
        assert second.url == url and len(url) < 110
        assert second.start() == url and first.users() == 2, "a second server on the same AOF"
    finally:
        second.stop()
        first.stop()
    assert not _answers(url)
