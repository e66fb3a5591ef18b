"""Reload: an invalid new file keeps the old policy; a changed file is picked up by poll() once
seen unchanged on two polls; a stale compile never undoes a later reload."""

from __future__ import annotations

import hashlib
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
    assert store.poll() is None  # seen once: it may be half-written
    assert store.poll() is store.current  # the new policy, now in force
    assert store.current.decide(request()).rule_id == "v2"
    assert store.poll() is None
    _write(path, "nonsense: [", 3_000_000_000)
    assert store.poll() is None
    assert isinstance(store.poll(), ConfigError)  # broken: the old policy stays...
    assert store.poll() is None  # ...and the same broken file is not retried
    assert store.current.decide(request()).rule_id == "v2"
    path.unlink()
    assert store.poll() is None
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
    assert store.poll() is None  # seen once
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
    assert store.check() is None  # seen once
    loaded = store.check()
    assert loaded is not None
    assert store.current.decide(request()).rule_id == "v1"  # not yet in force
    applied = store.apply(loaded)
    assert not isinstance(applied, ConfigError)
    assert store.current.decide(request()).rule_id == "v2"
    assert store.check() is None  # the stamp moved with it
    _write(path, "rules: [{id: broken}]\n", 3_000_000_000)
    assert store.check() is None  # seen once
    broken = store.check()
    assert broken is not None
    assert isinstance(store.apply(broken), ConfigError)
    assert store.current.decide(request()).rule_id == "v2"
    assert store.check() is None  # the same broken file is not retried


def test_a_file_rewritten_in_place_is_applied_only_once_seen_whole(tmp_path: Path) -> None:
    """Red-team t6: a file rewritten in place (``cat > policy.yaml``, an editor without
    atomic save) was loaded half-written when a poll fell into a pause of the writer. A
    version is applied only once a poll sees it unchanged since the poll before."""
    path = tmp_path / "policy.yaml"
    _write(path, V1, 1_000_000_000)
    store = PolicyStore(path)
    half = V2.replace("roles: [developer]", "principals: ['*']")  # a valid, wider first half
    _write(path, half, 2_000_000_000)
    assert store.poll() is None  # the writer pauses here
    with path.open("a") as file:
        file.write("  - {id: v3, effect: deny, principals: ['*'], tools: [srv__tool]}\n")
    os.utime(path, ns=(3_000_000_000, 3_000_000_000))
    assert store.poll() is None  # changed since the last poll: not yet
    assert store.current.decide(request()).rule_id == "v1"  # the half never was in force
    assert store.poll() is store.current
    assert store.current.decide(request()).rule_id == "v3"


def test_an_atomic_replace_applies_one_poll_later(tmp_path: Path) -> None:
    """Written to a temporary file and renamed over the policy, a new version is whole at
    once; it is applied on the second poll that sees it, one poll interval later."""
    path = tmp_path / "policy.yaml"
    _write(path, V1, 1_000_000_000)
    store = PolicyStore(path)
    _write(tmp_path / ".policy.yaml.tmp", V2, 2_000_000_000)
    os.replace(tmp_path / ".policy.yaml.tmp", path)
    assert store.poll() is None
    assert store.poll() is store.current
    assert store.current.decide(request()).rule_id == "v2"
    assert store.digest == hashlib.sha256(V2.encode()).hexdigest()


def test_a_stale_compile_never_undoes_a_later_reload(tmp_path: Path) -> None:
    """Red-team t14: the poller compiled a big hand edit in a thread while ``PUT
    /api/v1/policies`` replaced the file and reloaded it; the stale result was applied
    afterwards. Each read takes a ticket first, and a result older than the one in force is
    dropped; the digest is of the bytes compiled, not of the file as it is later."""
    path = tmp_path / "policy.yaml"
    _write(path, V1, 1_000_000_000)
    store = PolicyStore(path)
    _write(path, V2, 2_000_000_000)
    stale = store.check() or store.check()  # compiled from V2 ...
    assert stale is not None
    v3 = V1.replace("v1", "v3")
    _write(path, v3, 3_000_000_000)  # ... while a PUT writes V3 and reloads
    assert store.reload() is None
    assert store.apply(stale) is None  # dropped
    assert store.current.decide(request()).rule_id == "v3"
    assert store.digest == hashlib.sha256(v3.encode()).hexdigest()
    assert store.poll() is None and store.poll() is None  # and nothing left to pick up
    assert store.current.decide(request()).rule_id == "v3"


def test_a_compile_applied_before_a_later_reload_is_superseded(tmp_path: Path) -> None:
    """The other order: a poll's result applied first is simply replaced by the reload that
    read the file after it; the digest follows what is in force."""
    path = tmp_path / "policy.yaml"
    _write(path, V1, 1_000_000_000)
    store = PolicyStore(path)
    _write(path, V2, 2_000_000_000)
    loaded = store.check() or store.check()
    assert loaded is not None
    _write(path, V1.replace("v1", "v3"), 3_000_000_000)
    assert store.apply(loaded) is store.current
    assert store.digest == hashlib.sha256(V2.encode()).hexdigest()  # what it compiled
    assert store.reload() is None
    assert store.current.decide(request()).rule_id == "v3"


def test_a_repointed_link_is_refused_and_the_old_policy_stays(tmp_path: Path) -> None:
    """Red-team t8 on a running gateway: once the link's directory is open to every user,
    repointing the link is refused on the next polls; the loaded policy stays."""
    (tmp_path / "safe").mkdir()
    target = tmp_path / "safe" / "policy.yaml"
    _write(target, V1, 1_000_000_000)
    link = tmp_path / "conf" / "policy.yaml"
    link.parent.mkdir()
    link.symlink_to(target)
    store = PolicyStore(link)
    link.parent.chmod(0o777)
    (tmp_path / "evil.yaml").write_text(V2)
    link.unlink()
    link.symlink_to(tmp_path / "evil.yaml")
    assert store.poll() is None
    error = store.poll()
    assert isinstance(error, ConfigError) and f"chmod o-w {link.parent}" in str(error)
    assert store.current.decide(request()).rule_id == "v1"


def test_az1_a_reloaded_policy_naming_no_possible_principal_is_warned_of(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """AZ-1: the warning the gateway logs at start for ``principals: [bob]`` (key bob is
    ``apikey:bob``, so the rule never applies) is logged for a policy reloaded later too."""
    path = tmp_path / "policy.yaml"
    _write(path, V1, 1_000_000_000)
    store = PolicyStore(path)
    _write(
        path,
        V1 + "  - {id: no-bob, effect: deny, principals: [bob], tools: [srv__tool]}\n",
        2_000_000_000,
    )
    with caplog.at_level(logging.WARNING, logger="bastion.policy.principal_ids"):
        assert store.reload() is None
    assert "rules[1].principals[0] 'bob' can never match" in caplog.text


@pytest.mark.parametrize(
    ("value", "problem"),
    [("2024-02-30", "is not a valid timestamp"), ("9" * 5000, "is not a valid int")],
)
def test_in1_a_value_yaml_cannot_hold_is_refused_and_the_old_policy_stays(
    tmp_path: Path, value: str, problem: str
) -> None:
    """Red-team u: a typo such as ``description: 2024-02-30`` (or a 5000-digit integer) made
    the loader raise a plain ValueError, which escaped the store (and killed the gateway's
    poller). Now it is a refusal naming the line, and the previous policy stays in force."""
    path = tmp_path / "policy.yaml"
    _write(path, V1, 1_000_000_000)
    store = PolicyStore(path)
    _write(path, V2.replace("tools: [srv__tool]", f"tools: [srv__tool], description: {value}"),
           2_000_000_000)  # fmt: skip
    error = store.reload()
    assert isinstance(error, ConfigError)
    assert str(error).startswith("policy.yaml:3:") and problem in str(error)
    assert store.current.decide(request()).rule_id == "v1"
    assert store.poll() is None and store.poll() is None  # not retried


def test_in1_a_compile_that_fails_unexpectedly_keeps_the_old_policy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Whatever goes wrong while compiling a new version (a bug included) is a refusal that
    keeps the policy in force and is logged with its traceback, never an exception that
    takes the gateway's poller down."""
    path = tmp_path / "policy.yaml"
    _write(path, V1, 1_000_000_000)
    store = PolicyStore(path)

    def broken(_: object) -> None:
        raise RuntimeError("compiler bug")

    monkeypatch.setattr("bastion.policy.store.Policy", broken)
    _write(path, V2, 2_000_000_000)
    with caplog.at_level(logging.ERROR, logger="bastion.policy.store"):
        error = store.reload()
    assert isinstance(error, ConfigError)
    assert str(error) == "policy.yaml: cannot be compiled (RuntimeError; see the log)"
    assert "compiler bug" in caplog.text
    assert store.current.decide(request()).rule_id == "v1"


def test_az1_the_store_keeps_the_text_and_digest_of_the_policy_in_force(tmp_path: Path) -> None:
    """Red-team u (GET /api/v1/policies showed a refused file): the store holds the text the
    policy in force was compiled from and its digest, and the last refused version apart."""
    path = tmp_path / "policy.yaml"
    _write(path, V1, 1_000_000_000)
    store = PolicyStore(path)
    broken = V2.replace("roles: [developer]", "roles: [developr]")
    _write(path, broken, 2_000_000_000)
    assert store.reload() is not None
    assert store.in_force.text == V1
    assert store.in_force.digest == store.digest == hashlib.sha256(V1.encode()).hexdigest()
    assert store.refusal is not None
    assert store.refusal.digest == hashlib.sha256(broken.encode()).hexdigest()
    assert "'developr' is not declared" in str(store.refusal.error)
    _write(path, V2, 3_000_000_000)
    assert store.reload() is None
    assert (store.in_force.text, store.refusal) == (V2, None)
