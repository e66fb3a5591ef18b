"""``bastion policy test|explain`` as a real process: output and exit codes."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bastion.policy import PolicyRequest, Target, load_policy
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
    out = bastion("test", "--policy", EXAMPLE, "--key", "alice", "--method", "tools/call",
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


@pytest.mark.parametrize(
    ("value", "problem"),
    [("2024-02-30", "'2024-02-30' is not a valid timestamp"), ("9" * 5000, "not a valid int")],
)
def test_in1_a_value_yaml_cannot_hold_exits_78_naming_file_and_line(
    tmp_path: Path, value: str, problem: str
) -> None:
    """Red-team u: a typo such as ``2024-02-30`` made ``bastion policy test`` print a
    traceback and exit 1, which this tool defines as "deny": a script would have taken a
    broken policy for a refusal. Now it is a policy that does not load: 78, file and line."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"version: 1\nroles: {{admin: {{description: {value}}}}}\nrules: []\n")
    for command in ("test", "explain"):
        out = bastion(command, "--policy", bad, "--principal", "a", "--method", "ping")
        assert out.returncode == 78, out.stderr
        assert out.stderr.startswith("bastion: bad.yaml:2:30: ") and problem in out.stderr
        assert "Traceback" not in out.stderr


KEYED = """\
roles: {dev: {}}
rules:
  - {id: dev-all, effect: allow, roles: [dev], tools: ["*"]}
  - {id: no-bob, effect: deny, principals: ["apikey:bob"], tools: [fx__simple]}
"""
CALL = ["--role", "dev", "--method", "tools/call", "--tool", "fx__simple", "--at", MONDAY]


def test_az1_key_decides_as_the_gateway_names_an_api_key_and_principal_is_the_raw_id(
    tmp_path: Path,
) -> None:
    """AZ-1: the gateway names API key ``bob`` ``apikey:bob``; ``--key bob`` asks as that
    principal, so a rule on ``apikey:bob`` denies it as the gateway would, while
    ``--principal`` is the id as given."""
    file = tmp_path / "policy.yaml"
    file.write_text(KEYED)
    key = bastion("test", "--policy", file, "--key", "bob", *CALL)
    assert (key.returncode, key.stdout.splitlines()[:2]) == (1, ["deny", "rule: no-bob"])
    assert "by 'apikey:bob'" in key.stdout
    raw = bastion("explain", "--policy", file, "--principal", "apikey:bob", *CALL)
    assert (raw.returncode, raw.stdout.splitlines()[:2]) == (1, ["deny", "rule: no-bob"])
    other = bastion("test", "--policy", file, "--principal", "bob", *CALL)
    assert (other.returncode, other.stdout.splitlines()[:2]) == (0, ["allow", "rule: dev-all"])
    both = bastion("test", "--policy", file, "--key", "bob", "--principal", "bob", *CALL)
    assert both.returncode == 2


def test_az1_a_principal_glob_that_can_match_no_id_is_warned_about(tmp_path: Path) -> None:
    """A rule on ``bob`` loads but can never apply (ids carry their kind): the CLI says so on
    stderr, naming the rule and the id forms, and still decides."""
    file = tmp_path / "policy.yaml"
    file.write_text(KEYED.replace('"apikey:bob"', "bob"))
    out = bastion("test", "--policy", file, "--key", "bob", *CALL)
    assert (out.returncode, out.stdout.splitlines()[1]) == (0, "rule: dev-all")
    assert "rules[1].principals[0] 'bob' can never match" in out.stderr
    assert "apikey:<key name>" in out.stderr
    clean = bastion("test", "--policy", EXAMPLE, "--key", "alice", *CALL)
    assert "can never match" not in clean.stderr


KEYCLOAK_POLICY = """\
version: 1
roles: {developer: {}, contractor: {}}
principals:
  - {claim: realm_access.roles, value: dev, roles: [developer]}
  - {claim: realm_access.groups, value: ext, roles: [contractor]}
rules:
  - {id: dev-tools, effect: allow, roles: [developer], tools: ["srv__*"]}
  - {id: no-ext-exec, effect: deny, roles: [contractor], tools: [srv__exec]}
"""


@pytest.mark.parametrize(
    ("claims", "tool"),
    [
        ({"realm_access": {"roles": ["dev"]}}, "srv__read"),
        ({"realm_access": {"roles": ["dev"], "groups": ["ext"]}}, "srv__exec"),
        ({"realm_access": {"roles": ["dev"], "groups": {"ext": 1}}}, "srv__exec"),
    ],
)
def test_az1_explain_nests_dotted_claims_and_agrees_with_the_gateway(
    tmp_path: Path, claims: dict[str, dict[str, object]], tool: str
) -> None:
    """``--claim realm_access.roles=[...]`` is the object a JWT carries, so ``explain`` says
    what the gateway decides for that token (the same engine, fed the token's claims)."""
    file = tmp_path / "policy.yaml"
    file.write_text(KEYCLOAK_POLICY)
    flags = [f"--claim=realm_access.{k}={json.dumps(v)}" for k, v in claims["realm_access"].items()]
    out = bastion("explain", "--policy", file, "--principal", "jwt:https://idp/x#u",
                  "--method", "tools/call", "--tool", tool, *flags, "--at", MONDAY)  # fmt: skip
    gateway = load_policy(file).decide(
        PolicyRequest(
            principal="jwt:https://idp/x#u",
            method="tools/call",
            at=datetime.now(UTC),
            claims=claims,
            target=Target("tool", tool),
        )
    )
    assert out.stdout.splitlines()[:2] == [gateway.effect, f"rule: {gateway.rule_id}"]
    assert out.returncode == (0 if gateway.allowed else 1)
    assert gateway.allowed is (tool == "srv__read")
