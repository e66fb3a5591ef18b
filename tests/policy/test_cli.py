"""``bastion policy test|explain`` as a real process: output and exit codes."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support import BASTION

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "policy.yaml"
MONDAY = "2025-01-06T10:00:00Z"


def bastion(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BASTION), "policy", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_allow_exits_0_with_rule_and_obligations() -> None:
    out = bastion("test", "--policy", EXAMPLE, "--principal", "alice", "--method", "tools/call",
                  "--tool", "github__delete_repo", "--at", MONDAY)  # fmt: skip
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[:2] == ["allow", "rule: admin-all"]
    assert "level: high" in lines
    assert 'obligation: Approval {"by": "human"}' in lines


def test_deny_exits_1_naming_the_deny_rule() -> None:
    out = bastion("test", "--policy", EXAMPLE, "--principal", "bob", "--role", "developer",
                  "--method", "tools/call", "--tool", "workspace__run_command",
                  "--arg", "command=git push --force origin main", "--at", MONDAY)  # fmt: skip
    assert out.returncode == 1
    assert out.stdout.splitlines()[:2] == ["deny", "rule: no-force-push"]


def test_args_are_json_when_they_parse_and_claims_grant_roles() -> None:
    common = ["test", "--policy", EXAMPLE, "--principal", "bob", "--claim",
              'groups=["engineering"]', "--method", "tools/call",
              "--tool", "db__query"]  # fmt: skip
    assert bastion(*common, "--arg", "limit=500", "--at", MONDAY).returncode == 0
    assert bastion(*common, "--arg", "limit=5000", "--at", MONDAY).returncode == 1
    assert bastion(*common, "--arg", "limit=500", "--at", "2025-01-11T10:00Z").returncode == 1


def test_default_deny_and_invalid_name() -> None:
    out = bastion("test", "--policy", EXAMPLE, "--principal", "nobody", "--method", "tools/call",
                  "--tool", "github__get_issue", "--at", MONDAY)  # fmt: skip
    assert (out.returncode, out.stdout.splitlines()[1]) == (1, "rule: default-deny")
    out = bastion("test", "--policy", EXAMPLE, "--principal", "alice", "--method", "tools/call",
                  "--tool", "GitHub delete", "--at", MONDAY)  # fmt: skip
    assert (out.returncode, out.stdout.splitlines()[1]) == (1, "rule: invalid-name")


def test_explain_lists_every_rule_and_why() -> None:
    out = bastion("explain", "--policy", EXAMPLE, "--principal", "bob", "--role", "developer",
                  "--method", "tools/call", "--tool", "files__write", "--arg", "path=/etc/passwd",
                  "--at", MONDAY)  # fmt: skip
    assert out.returncode == 1
    assert out.stdout.splitlines()[:2] == ["deny", "rule: default-deny"]
    assert (
        "  skipped  allow  developer-write-under-src: args.path '/etc/passwd' does not match "
        "glob '/workspace/src/**'" in out.stdout.splitlines()
    )
    assert out.stdout.count("skipped") + out.stdout.count("applies ") == 9


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    base = ["test", "--policy", EXAMPLE, "--principal", "a", "--method", "ping"]
    assert bastion(*base, "--at", "yesterday").returncode == 2
    assert bastion(*base, "--arg", "novalue").returncode == 2
    assert bastion(*base, "--tool", "a", "--prompt", "b").returncode == 2
    assert bastion("test", "--policy", EXAMPLE).returncode == 2


def test_bad_policy_file_exits_78_naming_the_path(tmp_path: Path) -> None:
    bad = tmp_path / "policy.yaml"
    bad.write_text("rules:\n  - {id: a, effect: allow, roles: [x], tools: [t]}\n")
    out = bastion("test", "--policy", bad, "--principal", "a", "--method", "ping")
    assert out.returncode == 78
    assert "policy.yaml: rules[0].roles[0]: role 'x' is not declared" in out.stderr
    missing = bastion("test", "--policy", tmp_path / "nope.yaml", "--principal", "a",
                      "--method", "ping")  # fmt: skip
    assert missing.returncode == 78
