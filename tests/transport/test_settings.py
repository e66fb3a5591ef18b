"""``gateway.sessions`` (SE-3, DS-3, DS-4) and ``gateway.http`` (DS-1, DS-2): the
transport's defaults are the configuration's (sessions: an hour idle, a day in all, 1024, 64
per principal, replay 4 MiB each, 128 MiB in all, 60 s; bodies: 4 MiB in 30 s; idle
keep-alive 15 s; 16,384 connections), and values outside the allowed ranges are refused when
the configuration loads, naming the field. The limits at work over HTTP:
tests/security/test_load.py."""

from __future__ import annotations

import pytest

from bastion.config import parse_config
from bastion.errors import ConfigError
from bastion.transport.http_server import HttpSettings
from bastion.transport.settings import HttpLimits, SessionSettings


def test_se3_the_http_face_defaults_are_the_configuration_defaults() -> None:
    sessions = parse_config("gateway: {}", {}).gateway.sessions
    assert sessions == SessionSettings()
    assert HttpSettings().sessions == sessions
    assert (
        sessions.idle_timeout,
        sessions.max_lifetime,
        sessions.max_sessions,
        sessions.max_sessions_per_principal,
        sessions.replay_bytes,
        sessions.replay_bytes_total,
        sessions.replay_ttl,
    ) == (3600.0, 86400.0, 1024, 64, 4 * 1024 * 1024, 128 * 1024 * 1024, 60.0)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("gateway: {sessions: {idle_timeout: 0}}", "idle_timeout"),
        ("gateway: {sessions: {max_lifetime: 99999999}}", "max_lifetime"),
        ("gateway: {sessions: {max_sessions: 0}}", "max_sessions"),
        ("gateway: {sessions: {max_sessions_per_principal: 0}}", "max_sessions_per_principal"),
        ("gateway: {sessions: {replay_bytes: 1000}}", "replay_bytes"),
        ("gateway: {sessions: {replay_ttl: 0}}", "replay_ttl"),
        ("gateway: {sessions: {idle: 5}}", "idle"),
    ],
)
def test_se3_out_of_range_or_unknown_session_settings_are_refused(text: str, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        parse_config(text, {})


def test_ds1_ds2_the_http_limits_default_to_the_configuration_defaults() -> None:
    limits = parse_config("gateway: {}", {}).gateway.http
    assert limits == HttpLimits()
    assert HttpSettings().limits == limits
    assert (
        limits.max_body,
        limits.body_timeout,
        limits.keep_alive_timeout,
        limits.max_connections,
    ) == (4 * 1024 * 1024, 30.0, 15, 16_384)


def test_ds1_ds2_http_limits_are_read_from_the_configuration() -> None:
    text = (
        "gateway: {http: {max_body: 65536, body_timeout: 5, keep_alive_timeout: 60,"
        " max_connections: 20000}}"
    )
    limits = parse_config(text, {}).gateway.http
    assert limits == HttpLimits(
        max_body=65536, body_timeout=5.0, keep_alive_timeout=60, max_connections=20000
    )


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("gateway: {http: {max_body: 100}}", "max_body"),
        ("gateway: {http: {max_body: 1073741824}}", "max_body"),
        ("gateway: {http: {body_timeout: 0}}", "body_timeout"),
        ("gateway: {http: {keep_alive_timeout: 0}}", "keep_alive_timeout"),
        ("gateway: {http: {keep_alive_timeout: 1.5}}", "keep_alive_timeout"),
        ("gateway: {http: {max_connections: 0}}", "max_connections"),
        ("gateway: {http: {max_conns: 5}}", "max_conns"),
    ],
)
def test_ds1_ds2_out_of_range_or_unknown_http_limits_are_refused(text: str, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        parse_config(text, {})
