"""The connection limits and the write queue's settings: defaults, overrides, bad values."""

from __future__ import annotations

import pytest

from balto.app.settings import LimitSettings, Settings, SettingsError, StorageSettings


def test_defaults_are_the_documented_ones():
    settings = Settings.from_env({})
    assert settings.limits == LimitSettings()
    assert settings.limits.max_frame_bytes == 1024 * 1024
    assert settings.limits.max_connections_per_key == 4
    assert settings.limits.shutdown_grace_s == 20
    assert settings.storage == StorageSettings()


def test_overrides_and_zero_turns_a_limit_off():
    settings = Settings.from_env(
        {
            "WS_MAX_FRAME_BYTES": "65536",
            "WS_MAX_AUDIO_AHEAD_S": "0",
            "WS_MAX_SESSION_S": "0",
            "WS_MAX_CONNECTIONS": "0",
            "WS_MAX_CONNECTIONS_PER_KEY": "1",
            "WS_HANDSHAKE_FAILURES_MAX": "0",
            "WS_PING_INTERVAL_S": "0",
            "SHUTDOWN_GRACE_S": "5",
            "STORAGE_QUEUE_SIZE": "10",
            "STORAGE_RETRY_MAX_S": "2",
        }
    )
    limits = settings.limits
    assert (limits.max_frame_bytes, limits.max_audio_ahead_s, limits.max_session_s) == (65536, 0, 0)
    assert (limits.max_connections, limits.max_connections_per_key, limits.handshake_failures) == (0, 1, 0)
    assert (limits.ping_interval_s, limits.shutdown_grace_s) == (0, 5)
    assert (settings.storage.queue_size, settings.storage.retry_max_s) == (10, 2)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WS_MAX_FRAME_BYTES", "10"),
        ("WS_MAX_CONNECTIONS", "-1"),
        ("WS_PING_TIMEOUT_S", "0"),
        ("STORAGE_QUEUE_SIZE", "0"),
        ("STORAGE_WRITE_TIMEOUT_S", "x"),
    ],
)
def test_bad_values_name_the_variable(name, value):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})
