"""``gateway.sessions`` (SE-3): the transport's defaults are the configuration's (an hour
idle, a day in all, 1024 sessions), and values outside the allowed ranges are refused when
the configuration loads, naming the field."""

from __future__ import annotations

import pytest

from bastion.config import parse_config
from bastion.errors import ConfigError
from bastion.transport.http_server import HttpSettings
from bastion.transport.settings import SessionSettings


def test_se3_the_http_face_defaults_are_the_configuration_defaults() -> None:
    sessions = parse_config("gateway: {}", {}).gateway.sessions
    assert sessions == SessionSettings()
    assert HttpSettings().sessions == sessions
    assert (sessions.idle_timeout, sessions.max_lifetime, sessions.max_sessions) == (
        3600.0,
        86400.0,
        1024,
    )


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("gateway: {sessions: {idle_timeout: 0}}", "idle_timeout"),
        ("gateway: {sessions: {max_lifetime: 99999999}}", "max_lifetime"),
        ("gateway: {sessions: {max_sessions: 0}}", "max_sessions"),
        ("gateway: {sessions: {idle: 5}}", "idle"),
    ],
)
def test_se3_out_of_range_or_unknown_session_settings_are_refused(text: str, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        parse_config(text, {})
