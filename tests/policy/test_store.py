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
    assert store.poll() is None  # unchanged
    _write(path, V2, 2_000_000_000)
    assert store.poll() is store.current  # the new policy, now in force
    assert store.current.decide(request()).rule_id == "v2"
    assert store.poll() is None
    _write(path, "nonsense: [", 3_000_000_000)
    assert isinstance(store.poll(), ConfigError)  # broken: the old policy stays...
    assert store.poll() is None  # ...and the same broken file is not retried
    assert store.current.decide(request()).rule_id == "v2"
    path.unlink()
    assert isinstance(store.poll(), ConfigError)
    assert store.current.decide(request()).rule_id == "v2"


@pytest.mark.parametrize("where", ["file", "directory"])
def test_a_policy_every_user_may_write_is_refused(tmp_path: Path, where: str) -> None:
    """Whoever may write the policy may grant themselves anything (the pepper file is held
    to the same care): a world-writable file, or one in a world-writable non-sticky
    directory, is refused at start and on reload, and the previous policy stays."""
    folder = tmp_path / "etc"
    folder.mkdir()
    path = folder / "policy.yaml"
    _write(path, V1, 1_000_000_000)
    store = PolicyStore(path)
    (path if where == "file" else folder).chmod(0o777 if where == "directory" else 0o666)
    _write(path, V2, 2_000_000_000)
    error = store.poll()
    assert isinstance(error, ConfigError) and "chmod o-w" in str(error)
    assert store.current.decide(request()).rule_id == "v1"
    with pytest.raises(ConfigError, match="every user"):
        PolicyStore(path)
    folder.chmod(0o1777)  # sticky, like /tmp: others cannot replace a file they do not own
    if where == "directory":
        assert PolicyStore(path).current.decide(request()).rule_id == "v2"


def test_a_store_needs_a_file_that_loads(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        PolicyStore(tmp_path / "missing.yaml")


def test_check_compiles_without_swapping_and_apply_swaps(tmp_path: Path) -> None:
    """DS-4 (red-team H4): the gateway compiles a changed policy in a worker thread with
    ``check`` (a 4 MiB file takes seconds) and swaps it on the event loop with ``apply``,
    so nothing is in force until ``apply``, and a broken file keeps the old policy."""
    path = tmp_path / "policy.yaml"
    _write(path, V1, 1_000_000_000)
    store = PolicyStore(path)
    assert store.check() is None  # unchanged
    _write(path, V2, 2_000_000_000)
    loaded = store.check()
    assert loaded is not None
    assert store.current.decide(request()).rule_id == "v1"  # not yet in force
    applied = store.apply(loaded)
    assert not isinstance(applied, ConfigError)
    assert store.current.decide(request()).rule_id == "v2"
    assert store.check() is None  # the stamp moved with it
    _write(path, "rules: [{id: broken}]\n", 3_000_000_000)
    broken = store.check()
    assert broken is not None
    assert isinstance(store.apply(broken), ConfigError)
    assert store.current.decide(request()).rule_id == "v2"
    assert store.check() is None  # the same broken file is not retried
