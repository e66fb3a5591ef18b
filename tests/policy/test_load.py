"""Loading policy files: errors name the file and the exact path of the bad value."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.errors import ConfigError
from bastion.policy import load_policy, load_policy_file, parse_policy

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "policy.yaml"

HEAD = "roles: {admin: {}, developer: null}\nrules:\n"
OK_RULE = "  - {id: a, effect: allow, roles: [admin], tools: [x]}\n"


def _error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_policy(text, source="policy.yaml")
    return str(info.value)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "  - {id: a, effect: allow, roles: [admin], tools: [5]}\n",
            "policy.yaml: rules[0].tools[0]: expected `str`, got `int`",
        ),
        (
            OK_RULE + "  - {id: b, effect: permit, roles: [admin], tools: [x]}\n",
            "policy.yaml: rules[1].effect: invalid enum value 'permit'",
        ),
        (
            OK_RULE + "  - {id: b, effect: allow, roles: [admin], match: {tool: x}}\n",
            "policy.yaml: rules[1]: object contains unknown field `match`",
        ),
        (
            OK_RULE + "  - {id: a, effect: deny, roles: [admin], tools: [y]}\n",
            "policy.yaml: rules[1].id: duplicate rule id 'a' (also rules[0])",
        ),
        (
            OK_RULE + OK_RULE.replace("id: a", "id: b").replace("[admin]", "[admn]"),
            "policy.yaml: rules[1].roles[0]: role 'admn' is not declared under roles",
        ),
        (
            OK_RULE.replace("roles: [admin], ", ""),
            "policy.yaml: rules[0]: a rule needs roles or principals",
        ),
        (
            OK_RULE.replace("tools: [x]", "description: nothing"),
            "policy.yaml: rules[0]: a rule needs methods, tools, resources or prompts",
        ),
        (
            OK_RULE + OK_RULE.replace("id: a", "id: b").replace("[x]", "['Git Hub']"),
            "policy.yaml: rules[1].tools[0]: 'Git Hub' is not a name glob",
        ),
        (
            OK_RULE.replace("tools: [x]", "tools: []"),
            "policy.yaml: rules[0].tools: expected `array` of length >= 1",
        ),
        (
            OK_RULE.replace("}", ", when: {time: {hours: [9, 25]}}}"),
            "policy.yaml: rules[0].when.time.hours[1]: expected `int` <= 24",
        ),
        (
            OK_RULE.replace("}", ", when: {time: {hours: [9, 9]}}}"),
            "policy.yaml: rules[0].when.time.hours: an empty window",
        ),
        (
            OK_RULE.replace("}", ", when: {args: {path: {}}}}"),
            "policy.yaml: rules[0].when.args['path']: no test given",
        ),
        (
            OK_RULE.replace("}", ", when: {time: {weekdays: [monday]}}}"),
            "policy.yaml: rules[0].when.time.weekdays[0]: invalid enum value 'monday'",
        ),
    ],
)
def test_errors_name_the_path(body: str, message: str) -> None:
    assert _error(HEAD + body).startswith(message)


def test_binding_and_security_errors() -> None:
    assert _error("principals: [{principal: a, roles: [ghost]}]").startswith(
        "policy.yaml: principals[0].roles[0]: role 'ghost' is not declared"
    )
    assert _error("roles: {a: null}\nprincipals: [{roles: [a]}]").startswith(
        "policy.yaml: principals[0]: give either principal"
    )
    assert _error("security: {tools: {x: {level: low, approval: human}}}").startswith(
        "policy.yaml: security.tools['x']: step_up and approval are only for level high"
    )
    assert _error("security: {tools: {x: {level: high, step_up: {recent_auth: 10d}}}}").startswith(
        "policy.yaml: security.tools[...].step_up.recent_auth:"
    )


def test_yaml_problems_name_the_line() -> None:
    assert _error("rules: [\n").startswith("policy.yaml:2:1:")
    assert _error("roles: {a: null}\nroles: {b: null}\n").startswith(
        "policy.yaml:2:1: duplicate key"
    )


def test_empty_document_is_a_policy_that_denies_everything() -> None:
    assert parse_policy("", source="p").rules == []


def test_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_policy_file(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"\xff")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_policy_file(bad)


def test_the_example_policy_loads() -> None:
    assert len(load_policy(EXAMPLE).rules) >= 5
