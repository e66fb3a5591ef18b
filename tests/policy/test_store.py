"""Reload: an invalid new file keeps the old policy; a changed file is picked up by poll()."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from bastion.errors import ConfigError
from bastion.policy import PolicyStore
from tests.policy.helpers import request

V1 = (
    "roles: {developer: null}\n"
    "rules:\n  - {id: v1, effect: allow, roles: [developer], tools: [srv__tool]}\n"
)
V2 = V1.replace("v1", "v2")


def _write(path: Path, text: str, mtime_ns: int) -> None:
    path.write_text(text)
    os.utime(path, ns=(mtime_ns, mtime_ns))  # no sleeping for the clock to move


def test_reload_swaps_and_keeps_the_old_policy_on_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "policy.yaml"
    _write(path, V1, 1_000_000_000)
    store = PolicyStore(path)
    assert store.current.decide(request()).rule_id == "v1"

    _write(path, V2, 2_000_000_000)
    assert store.reload() is None
    assert store.current.decide(request()).rule_id == "v2"

    _write(path, "rules: [{id: broken}]\n", 3_000_000_000)
    before = store.current
    with caplog.at_level(logging.ERROR, logger="bastion.policy.store"):
        error = store.reload()
    assert isinstance(error, ConfigError)
    assert store.current is before
    assert "keeping the previous policy" in caplog.text
    assert "policy.yaml: rules[0]" in caplog.text


def test_poll_reloads_only_on_change(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    _write(path, V1, 1_000_000_000)
    store = PolicyStore(path)
    assert store.poll() is False
    _write(path, V2, 2_000_000_000)
    assert store.poll() is True
    assert store.current.decide(request()).rule_id == "v2"
    assert store.poll() is False
    _write(path, "nonsense: [", 3_000_000_000)
    assert store.poll() is False  # broken: old policy stays, and it is not retried
    assert store.poll() is False
    assert store.current.decide(request()).rule_id == "v2"
    path.unlink()
    assert store.poll() is False
    assert store.current.decide(request()).rule_id == "v2"


def test_a_store_needs_a_file_that_loads(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        PolicyStore(tmp_path / "missing.yaml")
