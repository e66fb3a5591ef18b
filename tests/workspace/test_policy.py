"""The command policy: argv patterns (not substrings), deny over allow, roles, read-only
paths, the rate limiter's bounds, the policy file's errors, and ``bastion workspace
--policy``/``--sandbox`` as a user runs them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bastion.errors import ConfigError
from bastion.protocol import types as t
from bastion.server.registry import TemplateEntry
from bastion.workspace.errors import Refused, TooLarge
from bastion.workspace.paths import parse_path
from bastion.workspace.policy import DEFAULT_POLICY, RateLimiter, RateRule, match_argv, parse_policy
from tests.support import BASTION
from tests.workspace.support import FakeClock


@pytest.mark.parametrize(
    ("pattern", "argv", "matches"),
    [
        (["git", "status"], ["git", "status"], True),
        (["git", "status"], ["git", "status", "--short"], False),
        (["git", "status", "**"], ["git", "status"], True),
        (["git", "status", "**"], ["git", "status", "-s", "."], True),
        (["python3", "-m", "pytest", "*"], ["python3", "-m", "pytest", "tests"], True),
        (["python3", "-m", "pytest", "*"], ["python3", "-m", "pytest"], False),
        (["python3", "-m", "pytest", "*"], ["python3", "-m", "pytest", "a", "b"], False),
        (["python3*", "**"], ["python3.11", "x.py"], True),
        # Whole elements, never substrings: no program or argument that merely contains it.
        (["git", "status"], ["/usr/bin/git", "status"], False),
        (["git", "status"], ["git", "status; rm -rf ~"], False),
        (["ls", "**"], ["lsblk"], False),
        (["git", "**", "--force"], ["git", "push", "origin", "--force"], True),
        (["git", "**", "--force"], ["git", "push", "--force", "x"], False),
    ],
)
def test_argv_patterns(pattern: list[str], argv: list[str], matches: bool) -> None:
    assert match_argv(pattern, argv) is matches


def test_many_double_stars_stay_fast() -> None:
    pattern = ["a", *["**", "x"] * 20, "y"]
    assert match_argv(pattern, ["a", *["x"] * 1000]) is False  # memoised: no blow-up


POLICY = """
default:
  default_role: dev
  assign: {"ci-*": ci}
  roles:
    dev:
      allow: [[git, "**"], [python3, "**"]]
      deny: [[git, push, "**"], [git, "**", "--force"]]
    ci:
      allow: [[python3, -m, unittest, "**"]]
      readonly: [src, setup.py]
      profiles: [strict, default]
workspaces:
  locked:
    roles: {nobody: {}}
    default_role: nobody
"""


def test_deny_wins_and_every_decision_names_its_rule() -> None:
    policy = parse_policy(POLICY, source="p.yaml")
    allowed = policy.decide("w", "alice", ["git", "log"])
    assert allowed.allowed and allowed.reason == "allowed by rule [git, **] of role dev"
    denied = policy.decide("w", "alice", ["git", "push", "origin"])
    assert not denied.allowed and denied.reason == "denied by rule [git, push, **] of role dev"
    forced = policy.decide("w", "alice", ["git", "reset", "--force"])
    assert not forced.allowed and "[git, **, --force]" in forced.reason
    ci = policy.decide("w", "ci-runner", ["git", "log"])
    assert not ci.allowed and "no allow rule of role ci" in ci.reason
    assert "allowed: nothing" in policy.decide("locked", "alice", ["true"]).reason
    assert policy.decide("w", None, ["python3", "x.py"]).role == "dev"  # anonymous


def test_readonly_paths_cover_what_is_beneath_and_above() -> None:
    policy = parse_policy(POLICY, source="p.yaml")
    for path in ("src", "src/app.py", ".", "setup.py"):
        rel = parse_path(path, allow_root=True)
        with pytest.raises(Refused, match="read-only for role ci"):
            policy.check_writable("w", "ci-1", rel)
    policy.check_writable("w", "ci-1", parse_path("tests/test_app.py"))
    policy.check_writable("w", "alice", parse_path("src/app.py"))  # dev has none


def test_profiles_per_role() -> None:
    policy = parse_policy(POLICY, source="p.yaml")
    assert policy.profile_for("w", "ci-1", None) == "strict"
    assert policy.profile_for("w", "ci-1", "default") == "default"
    with pytest.raises(Refused, match="profile 'build' is not allowed for role ci"):
        policy.profile_for("w", "ci-1", "build")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("default: {roles: {}}", "p.yaml: default.default_role: no role named 'default'"),
        (
            "default: {roles: {default: {allow: [git]}}}",
            "p.yaml: Expected `array`, got `str` - at `$.default.roles[...].allow[0]`",
        ),
        (
            "default: {roles: {default: {profiles: [huge]}}}",
            "default.roles.default.profiles[0]: unknown profile 'huge'",
        ),
        (
            "default: {roles: {default: {readonly: ['../etc']}}}",
            "default.roles.default.readonly[0]:",
        ),
        ("default: {roles: {default: {allow: [['**']]}}}", "allow[0]: the program cannot be '**'"),
        ("default: {roles: {default: {}}}\nextra: 1", "unknown field `extra`"),
        ("[1, 2]", "p.yaml: expected a mapping at the top"),
        ("default: {roles: {a: b}", "p.yaml:1:"),
    ],
)
def test_policy_file_errors_name_the_path(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_policy(text, source="p.yaml")
    assert message in str(raised.value)


def test_default_policy() -> None:
    assert DEFAULT_POLICY.decide("w", None, ["python3", "-m", "unittest"]).allowed
    assert DEFAULT_POLICY.decide("w", None, ["git", "status"]).allowed
    assert not DEFAULT_POLICY.decide("w", None, ["git", "commit", "-m", "x"]).allowed
    assert not DEFAULT_POLICY.decide("w", None, ["curl", "http://example.com"]).allowed
    assert not DEFAULT_POLICY.decide("w", None, ["python3", "-m", "pip", "install", "x"]).allowed


def test_rate_limiter_refills_and_stays_bounded() -> None:
    clock = FakeClock()
    limiter = RateLimiter(RateRule(per_minute=6, burst=2), clock, max_agents=3)
    limiter.take("a")
    limiter.take("a")
    with pytest.raises(TooLarge, match=r"try again in 10\.0 s"):
        limiter.take("a")
    limiter.take("b")  # one agent's exhaustion does not throttle another (DS-3)
    clock.advance(10)
    limiter.take("a")
    for agent in ("c", "d", "e", "f"):
        limiter.take(agent)
    assert len(limiter) == 3  # bounded state (DS-3)


def test_resource_templates_with_reserved_expansion() -> None:
    entry = TemplateEntry.build(
        t.ResourceTemplate(uriTemplate="ws://{workspace}/{+path}", name="f"),
        lambda *a: None,  # type: ignore[arg-type]
    )
    found = entry.pattern.fullmatch("ws://demo/src/pkg/app.py")
    assert found is not None and found.groupdict() == {
        "workspace": "demo",
        "path": "src/pkg/app.py",
    }
    assert entry.pattern.fullmatch("ws://de/mo") is not None
    assert entry.pattern.fullmatch("ws://demo/a?x") is None


def test_cli_rejects_a_bad_policy_file(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("default: {roles: {default: {allow: [[git, '**']], profiles: [nope]}}}\n")
    argv = [str(BASTION), "workspace", "--root", str(tmp_path / "root"), "--stdio"]
    done = subprocess.run(
        [*argv, "--policy", str(policy)], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode != 0
    assert f"{policy}: " in done.stderr and "unknown profile 'nope'" in done.stderr


def test_cli_sandbox_none_warns_at_start(tmp_path: Path) -> None:
    argv = [
        str(BASTION),
        "workspace",
        "--root",
        str(tmp_path / "root"),
        "--stdio",
        "--sandbox",
        "none",
    ]
    done = subprocess.run(argv, input="", capture_output=True, text=True, timeout=30, check=False)
    assert "UNSANDBOXED" in done.stderr
