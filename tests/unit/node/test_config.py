"""Configuration mistakes are a ConfigError naming the setting, whatever their source."""

from __future__ import annotations

from pathlib import Path

import pytest

from supervisor.node import config
from supervisor.node.config import ConfigError


def test_log_level_is_checked_in_any_case() -> None:
    assert config.load(environ={"TRIGGERD_LOG_LEVEL": "debug"}).log_level == "debug"
    with pytest.raises(ConfigError, match="^TRIGGERD_LOG_LEVEL must be one of DEBUG, INFO"):
        config.load(environ={"TRIGGERD_LOG_LEVEL": "LOUD"})


@pytest.mark.parametrize(("toml", "message"), [
    ("roles = 5", "TRIGGERD_ROLES: expected a list of strings, got 5"),
    ("roles = [1]", "TRIGGERD_ROLES: expected a list of strings"),
    ("port = 4000.5", "PORT: expected a whole number, got 4000.5"),
    ("port = true", "PORT: expected a whole number, got True"),
    ('port = "abc"', "PORT: not a whole number: 'abc'"),
    ("migrate = 1", "TRIGGERD_MIGRATE: expected true or false, got 1"),
    ("alert_webhook_url = 3", "TRIGGERD_ALERT_WEBHOOK_URL: expected a string, got 3"),
    ("port = ", "cannot read config file"),
    ("colour = 1", "unknown keys in"),
])
def test_toml_mistakes_name_the_setting(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "triggerd.toml"
    path.write_text(toml + "\n")
    with pytest.raises(ConfigError) as caught:
        config.load(path, environ={})
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_toml_values_of_the_right_type_load(tmp_path: Path) -> None:
    path = tmp_path / "triggerd.toml"
    path.write_text('roles = ["ingest"]\nrequest_timeout = 15\nretention = "2d"\n'
                    'migrate = false\ndata_dir = "/srv/triggerd"\nstuck_after = "90s"\n')
    loaded = config.load(path, environ={"PORT": "4100"}, port=None)
    assert loaded.roles == frozenset({"ingest"}) and loaded.request_timeout == 15
    assert loaded.retention == 2 * 86_400 and loaded.migrate is False
    assert loaded.data_dir == Path("/srv/triggerd") and loaded.port == 4100
    assert loaded.stuck_after == 90.0 and loaded.db_connect_timeout == 30.0


def test_the_delivered_log_sample_is_a_share() -> None:
    assert config.load(environ={}).log_delivered_sample == 0.0
    loaded = config.load(environ={"TRIGGERD_LOG_DELIVERED_SAMPLE": "0.25"})
    assert loaded.log_delivered_sample == 0.25
    for bad in ("1.5", "-0.1", "nan"):
        with pytest.raises(ConfigError, match="^TRIGGERD_LOG_DELIVERED_SAMPLE must be from 0"):
            config.load(environ={"TRIGGERD_LOG_DELIVERED_SAMPLE": bad})
    with pytest.raises(ConfigError, match="^TRIGGERD_LOG_DELIVERED_SAMPLE: not a number"):
        config.load(environ={"TRIGGERD_LOG_DELIVERED_SAMPLE": "10%"})


def test_the_delivered_log_sample_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "triggerd.toml"
    path.write_text("log_delivered_sample = 1\nheartbeat_interval = \"2s\"\n")
    loaded = config.load(path, environ={})
    assert (loaded.log_delivered_sample, loaded.heartbeat_interval) == (1, 2.0)
    path.write_text("log_delivered_sample = true\n")
    with pytest.raises(ConfigError, match="expected a number from 0 to 1, got True"):
        config.load(path, environ={})


def test_the_heartbeat_interval_is_a_positive_duration() -> None:
    assert config.load(environ={}).heartbeat_interval == 5.0
    assert config.load(environ={"TRIGGERD_HEARTBEAT_INTERVAL": "500ms"}).heartbeat_interval == 0.5
    with pytest.raises(ConfigError, match="^TRIGGERD_HEARTBEAT_INTERVAL must be positive"):
        config.load(environ={"TRIGGERD_HEARTBEAT_INTERVAL": "0"})
