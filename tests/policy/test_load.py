"""Loading policy files: errors name the file and the exact path of the bad value."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bastion.config.load import MAX_VALUES
from bastion.errors import ConfigError
from bastion.policy import load_policy, load_policy_file, parse_policy
from bastion.policy.load import MAX_POLICY_GLOBS
from bastion.policy.model import MAX_RULES

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


# -- DS-4: what a policy may cost -------------------------------------------------------------


def test_ds4_yaml_aliases_cannot_make_a_small_policy_expensive() -> None:
    """Red-team t5: one list of 1000 globs named by alias in 200 rules stands for 200 000
    globs in 21 KB; it is refused as the configuration's aliases are, before anything is
    converted or compiled, and the message says why."""
    globs = ", ".join(f"t{i}_x" for i in range(1000))
    text = HEAD + f"  - {{id: r0, effect: deny, roles: [admin], tools: &g [{globs}]}}\n"
    text += "".join(
        f"  - {{id: r{i}, effect: deny, roles: [admin], tools: *g}}\n" for i in range(1, 200)
    )
    assert _error(text) == (
        f"policy.yaml: more than {MAX_VALUES} values (do YAML aliases expand too far?)"
    )


def test_ds4_globs_and_rules_are_capped_in_all() -> None:
    tools = ", ".join(f"t{i}_*" for i in range(MAX_POLICY_GLOBS // 2))
    wide = "".join(
        f"  - {{id: r{i}, effect: deny, roles: [admin], tools: [{tools}]}}\n" for i in range(2)
    )
    assert _error(HEAD + wide) == (
        f"policy.yaml: rules: {2 * (MAX_POLICY_GLOBS // 2 + 1)} globs in all;"
        f" at most {MAX_POLICY_GLOBS} are allowed"
    )
    many = "".join(
        f"  - {{id: r{i}, effect: deny, principals: ['*'], methods: [ping]}}\n"
        for i in range(MAX_RULES + 1)
    )
    assert _error("rules:\n" + many).startswith("policy.yaml: rules: expected `array` of length")
    assert len(parse_policy("rules:\n" + many[: many.index(f"r{MAX_RULES}") - 9]).rules) == (
        MAX_RULES
    )


# -- Who may change the policy file ------------------------------------------------------------


def _safe_policy(folder: Path) -> Path:
    folder.mkdir(mode=0o755, parents=True, exist_ok=True)
    path = folder / "policy.yaml"
    path.write_text(HEAD + OK_RULE)
    path.chmod(0o644)
    return path


def test_a_link_in_a_directory_every_user_may_write_is_refused(tmp_path: Path) -> None:
    """Red-team t8: a plain file in a 0777 directory was refused, but a link there to a safe
    file was accepted, and anyone could repoint it later; the way to the file counts."""
    target = _safe_policy(tmp_path / "safe")
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    link = shared / "policy.yaml"
    link.symlink_to(target)
    with pytest.raises(ConfigError) as info:
        load_policy_file(link)
    assert str(info.value) == (
        f"{link}: others may change the policy: {shared} is writable by every user;"
        f" run: chmod o-w {shared}"
    )
    shared.chmod(0o1777)  # sticky, like /tmp: only the link's owner (we) may replace it
    assert load_policy_file(link).rules


def test_a_link_to_a_file_in_a_directory_every_user_may_write_is_refused(
    tmp_path: Path,
) -> None:
    target = _safe_policy(tmp_path / "shared")
    (tmp_path / "shared").chmod(0o777)
    link = _safe_policy(tmp_path / "etc").with_name("link.yaml")
    (tmp_path / "hop").mkdir()
    (tmp_path / "hop" / "next.yaml").symlink_to("../shared/policy.yaml")  # relative, 2 links
    link.symlink_to(tmp_path / "hop" / "next.yaml")
    with pytest.raises(ConfigError, match=f"{tmp_path / 'shared'} is writable by every user"):
        load_policy_file(link)
    assert target.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_a_policy_another_user_owns_is_refused(tmp_path: Path) -> None:
    """Red-team t8: a 0644 file owned by nobody was accepted; nobody may rewrite it."""
    path = _safe_policy(tmp_path / "etc")
    os.chown(path, 65534, 65534)
    with pytest.raises(ConfigError) as info:
        load_policy_file(path)
    assert str(info.value) == (
        f"{path}: others may change the policy: {path} belongs to another user (uid 65534);"
        f" run: chown 0 {path}"
    )
    os.chown(path, 0, 0)
    os.chown(path.parent, 65534, 65534)  # the directory's owner may replace the file
    with pytest.raises(ConfigError, match=f"{path.parent} belongs to another user"):
        load_policy_file(path)
    os.chown(path.parent, 0, 0)
    link = tmp_path / "link.yaml"
    link.symlink_to(path)
    os.lchown(link, 65534, 65534)  # a link's owner may repoint it
    with pytest.raises(ConfigError, match=f"{link} belongs to another user"):
        load_policy_file(link)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory to a group needs root")
def test_a_policy_a_group_may_replace_is_refused(tmp_path: Path) -> None:
    path = _safe_policy(tmp_path / "etc")
    os.chown(path.parent, 0, 65534)
    path.parent.chmod(0o775)
    with pytest.raises(ConfigError, match=f"writable by group 65534; run: chmod g-w {path.parent}"):
        load_policy_file(path)
