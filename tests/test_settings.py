"""Configuration: environment wins over the file; a typo stops start-up naming the key."""

from __future__ import annotations

import traceback

import pytest

from notifyd.runtime.settings import ConfigError, load_settings


def test_file_values_apply_and_the_environment_wins(tmp_path, monkeypatch):
    config = tmp_path / "notifyd.toml"
    config.write_text('namespace = "fromfile"\nshard_size = 250\n[smtp]\nhost = "mail.internal"\n')
    monkeypatch.setenv("NOTIFYD_SHARD_SIZE", "400")
    settings = load_settings(config)
    assert (settings.namespace, settings.shard_size, settings.smtp_host) == ("fromfile", 400, "mail.internal")


def test_unknown_key_in_the_config_file_is_an_error_naming_it(tmp_path):
    config = tmp_path / "notifyd.toml"
    config.write_text("dedup_windw_s = 30\n")
    with pytest.raises(ConfigError, match="dedup_windw_s"):
        load_settings(config)


def test_broken_config_file_is_an_error(tmp_path):
    config = tmp_path / "notifyd.toml"
    config.write_text("namespace = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(config)


def test_missing_config_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("var", "value", "names"),
    [
        ("NOTIFYD_RATE_LIMIT", "lots", "NOTIFYD_RATE_LIMIT"),
        ("NOTIFYD_REDIS_URL", "http://localhost", "NOTIFYD_REDIS_URL"),
        ("NOTIFYD_RETRY_SCHEDULE_WEBHOOK", "30,soon", "NOTIFYD_RETRY_SCHEDULE_WEBHOOK"),
        ("NOTIFYD_SMTP_TLS", "sometimes", "NOTIFYD_SMTP_TLS"),
        ("NOTIFYD_SHARD_SIZE", "0", "NOTIFYD_SHARD_SIZE"),
    ],
)
def test_bad_environment_value_names_the_variable(monkeypatch, var, value, names):
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError, match=names):
        load_settings()


def test_secret_values_are_not_echoed_in_config_errors(monkeypatch):
    monkeypatch.setenv("NOTIFYD_SMTP_PASSWORD", "hunter2-very-secret")
    monkeypatch.setenv("NOTIFYD_SMTP_PORT", "not-a-port")
    with pytest.raises(ConfigError) as info:
        load_settings()
    # Nowhere in what a user or a log would see: the message, the repr, the chained causes.
    shown = "".join(traceback.format_exception(info.value)) + repr(info.value)
    assert "NOTIFYD_SMTP_PORT" in shown and "hunter2" not in shown


def test_retry_schedule_override_per_channel(monkeypatch):
    monkeypatch.setenv("NOTIFYD_RETRY_SCHEDULE_SMS", "5,10")
    assert load_settings().retry_schedule("sms") == (5.0, 10.0)


def test_example_config_loads_and_documents_every_key():
    from pathlib import Path

    from notifyd.runtime.settings import Settings

    path = Path(__file__).parent.parent / "config" / "notifyd.example.toml"
    load_settings(path)
    text = path.read_text()
    for name in Settings.model_fields:
        short = name.split("_", 1)[1] if name.split("_", 1)[0] in ("smtp", "twilio", "slack") else name
        assert short in text, f"config/notifyd.example.toml does not document {name}"


@pytest.mark.parametrize(
    "weak",
    ["pub", "short-but-not-that-short-key", "a" * 40, "abababababababababababababababababab"],
)
def test_a_weak_static_key_stops_start_up_with_a_hint_and_without_the_key(monkeypatch, weak):
    monkeypatch.setenv(
        "NOTIFYD_API_KEYS", f"{'k' * 8}0123456789abcdefghijklmnopqrstuv:operate,{weak}:publish"
    )
    with pytest.raises(ConfigError) as refused:
        load_settings()
    message = str(refused.value)
    assert "NOTIFYD_API_KEYS entry 2" in message and "secrets.token_urlsafe" in message
    assert weak not in message


def test_a_strong_static_key_is_accepted(monkeypatch):
    monkeypatch.setenv("NOTIFYD_API_KEYS", "nk_Zr8wq1V0cT3yU6iO9pA2sD5fG7hJ4kL:publish/critical")
    assert load_settings().api_keys is not None
