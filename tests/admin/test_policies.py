"""GET/PUT /api/v1/policies on a real policy file and PolicyStore (the seed's
GetPolicies/SetPolicy): round trip, JSON or YAML, and invalid policies as 400 naming the
problem, never 5xx, with the old policy left in place."""

from __future__ import annotations

import hashlib
import json

import httpx
import pytest

from tests.admin.support import ADMIN, POLICY, Admin

YAML = "application/yaml"
JSON = "application/json"


def as_admin(admin: Admin, content_type: str) -> dict[str, str]:
    return {**admin.auth(ADMIN), "content-type": content_type}


NEW_POLICY = """\
roles:
  admin:
  developer:
rules:
  - id: devs-read
    effect: allow
    roles: [developer]
    tools: ["github__*"]
  - id: admins
    effect: allow
    roles: [admin]
    methods: ["*"]
"""


def test_get_returns_the_file_and_its_version(client: httpx.Client, admin: Admin) -> None:
    body = client.get("/api/v1/policies", headers=admin.auth(ADMIN)).json()
    assert body["policy"] == POLICY
    assert body["rules"] == 1
    assert len(body["version"]) == 64


def test_put_yaml_round_trip(client: httpx.Client, admin: Admin) -> None:
    before = client.get("/api/v1/policies", headers=admin.auth(ADMIN)).json()
    put = client.put("/api/v1/policies", headers=as_admin(admin, YAML), content=NEW_POLICY)
    assert put.status_code == 200
    assert put.json()["rules"] == 2
    after = client.get("/api/v1/policies", headers=admin.auth(ADMIN)).json()
    assert after == {"version": put.json()["version"], "rules": 2, "policy": NEW_POLICY}
    assert after["version"] != before["version"]
    assert admin.policy_path.read_text() == NEW_POLICY
    assert [r.id for r in admin.store.current.rules] == ["devs-read", "admins"]
    assert ("apikey:admin", "policies.set", put.json()["version"], "ok") in admin.events


def test_put_json(client: httpx.Client, admin: Admin) -> None:
    document = {
        "roles": {"viewer": None},
        "rules": [{"id": "v", "effect": "allow", "roles": ["viewer"], "tools": ["a"]}],
    }
    put = client.put(
        "/api/v1/policies", headers=as_admin(admin, JSON), content=json.dumps(document)
    )
    assert put.status_code == 200
    assert [r.id for r in admin.store.current.rules] == ["v"]


_GLOBS = ", ".join(f"t{i}_x" for i in range(1000))
ALIASED = (
    "roles: {developer: null}\nrules:\n"
    f"  - {{id: r0, effect: deny, roles: [developer], tools: &g [{_GLOBS}]}}\n"
    + "".join(
        f"  - {{id: r{i}, effect: deny, roles: [developer], tools: *g}}\n" for i in range(1, 200)
    )
)


@pytest.mark.parametrize(
    ("content_type", "body", "message"),
    [
        (YAML, "rules: [\n", "policy:"),
        (
            YAML,
            "rules:\n  - id: x\n    effect: perhaps\n    roles: [developer]\n",
            "rules[0].effect",
        ),
        (YAML, "roles: {}\nrules: []\nextra: 1\n", "extra"),
        (
            YAML,
            "roles: {}\nrules:\n  - {id: a, effect: allow, roles: [ghost], tools: [x]}\n",
            "ghost",
        ),
        (YAML, "roles: {}\nroles: {}\n", "duplicate"),
        (JSON, '{"roles": {}, "roles": {}}', "duplicate"),
        (JSON, "roles: {}", "invalid JSON"),
        (YAML, b"\xff\xfe", "not UTF-8"),
        (YAML, "- a list\n", "policy:"),
        # IN-2: nested past the JSON parser's own limit, and past the YAML loader's depth cap
        (JSON, "[" * 5000 + "]" * 5000, "invalid JSON: nested too deeply"),
        (JSON, '{"roles": ' + "[" * 1100 + "]" * 1100 + "}", "invalid JSON: nested too deeply"),
        (YAML, "roles: " + "[" * 5000 + "]" * 5000, "nested over"),
        # DS-4 (red-team t5): 21 KB standing for 200 000 globs through one alias
        (YAML, ALIASED, "more than 100000 values (do YAML aliases expand too far?)"),
        # IN-1 (red-team u): values YAML reads but Python cannot hold were a 500
        (YAML, "roles: {admin: {description: 2024-02-30}}\nrules: []\n", "policy:1:30: '2024"),
        (YAML, f"roles: {{a: {{description: {'9' * 5000}}}}}\n", "not a valid int"),
    ],
)
def test_invalid_policy_is_400_naming_the_problem(
    client: httpx.Client, admin: Admin, content_type: str, body: str | bytes, message: str
) -> None:
    response = client.put("/api/v1/policies", headers=as_admin(admin, content_type), content=body)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["error"] == "invalid_policy"
    assert message in error["message"]
    assert str(admin.root) not in error["message"]  # never the server's file path
    assert admin.policy_path.read_text() == POLICY
    assert [r.id for r in admin.store.current.rules] == ["devs-read"]
    assert admin.events[-1][1:] == ("policies.set", None, "invalid_policy")


def test_unsupported_content_type_is_415(client: httpx.Client, admin: Admin) -> None:
    for content_type in (None, "text/plain", "application/xml"):
        headers = admin.auth(ADMIN) | ({"content-type": content_type} if content_type else {})
        response = client.put("/api/v1/policies", headers=headers, content=NEW_POLICY)
        assert response.status_code == 415
        assert response.json()["error"] == "unsupported_media_type"


def test_replacement_keeps_the_file_mode(client: httpx.Client, admin: Admin) -> None:
    admin.policy_path.chmod(0o640)
    put = client.put("/api/v1/policies", headers=as_admin(admin, YAML), content=NEW_POLICY)
    assert put.status_code == 200
    assert admin.policy_path.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in admin.root.iterdir() if p.name.startswith(".policy")] == []


def test_a_symlinked_policy_is_written_through_to_its_target(
    client: httpx.Client, admin: Admin
) -> None:
    """Config management often owns the real file and links it in place: PUT replaces the
    target, and the link stays, so the next edit of the target is still the policy."""
    managed = admin.root / "managed"
    managed.mkdir()
    target = managed / "policy.yaml"
    admin.policy_path.rename(target)
    admin.policy_path.symlink_to(target)
    put = client.put("/api/v1/policies", headers=as_admin(admin, YAML), content=NEW_POLICY)
    assert put.status_code == 200
    assert admin.policy_path.is_symlink() and admin.policy_path.resolve() == target
    assert target.read_text() == NEW_POLICY
    assert [p.name for p in managed.iterdir()] == ["policy.yaml"]  # no temporary left


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_az1_get_shows_the_policy_in_force_not_a_refused_file(
    client: httpx.Client, admin: Admin
) -> None:
    """Red-team u: after a hand edit that did not load (role ``admn`` undeclared), GET
    returned the refused text and its sha-256 as the policy, while callers were served under
    the old one. GET shows the policy in force, and under ``file`` what the file says."""
    broken = POLICY.replace("roles: [developer]", "roles: [admn]")
    admin.policy_path.write_text(broken)
    assert admin.store.reload() is not None
    body = client.get("/api/v1/policies", headers=admin.auth(ADMIN)).json()
    assert (body["policy"], body["version"], body["rules"]) == (POLICY, _sha(POLICY), 1)
    assert body["file"] == {
        "version": _sha(broken),
        "status": "refused",
        "error": "policy: rules[0].roles[0]: role 'admn' is not declared under roles",
    }
    admin.policy_path.write_text(NEW_POLICY)  # not yet polled: it loads, so it is pending
    body = client.get("/api/v1/policies", headers=admin.auth(ADMIN)).json()
    assert body["version"] == _sha(POLICY)
    assert body["file"] == {"version": _sha(NEW_POLICY), "status": "pending"}
    admin.policy_path.chmod(0o666)
    body = client.get("/api/v1/policies", headers=admin.auth(ADMIN)).json()
    assert body["file"] == {
        "version": None,
        "status": "refused",
        "error": "others may change the policy: the policy file is writable by every user "
        "(run chmod o-w on it)",
    }
    admin.policy_path.chmod(0o600)
    assert admin.store.reload() is None
    body = client.get("/api/v1/policies", headers=admin.auth(ADMIN)).json()
    assert body == {"version": _sha(NEW_POLICY), "rules": 2, "policy": NEW_POLICY}


@pytest.mark.parametrize("where", ["file", "directory"])
def test_az1_a_put_onto_a_file_others_may_write_changes_nothing(
    client: httpx.Client, admin: Admin, where: str
) -> None:
    """Red-team u: with the policy file mode 0666, PUT answered 500 yet had replaced the file
    (keeping 0666), and the "failed" policy took effect once someone ran chmod 600. The
    trust check now comes before the write: 409 naming the fix, and nothing changes."""
    loose = admin.policy_path if where == "file" else admin.root
    loose.chmod(0o666 if where == "file" else 0o777)
    try:
        put = client.put("/api/v1/policies", headers=as_admin(admin, YAML), content=NEW_POLICY)
        assert put.status_code == 409, put.text
        assert put.json()["error"] == "conflict"
        message = put.json()["message"]
        what = "the policy file" if where == "file" else "a directory or link on the way"
        assert message.startswith(f"others may change the policy: {what}")
        assert "chmod o-w" in message and message.endswith("the policy was not replaced")
        assert str(admin.root) not in message
        assert admin.policy_path.read_text() == POLICY
        assert [p.name for p in admin.root.iterdir() if p.name.startswith(".policy")] == []
    finally:
        loose.chmod(0o600 if where == "file" else 0o700)
    assert admin.store.reload() is None  # the fixed file is the old one: nothing was pending
    assert [r.id for r in admin.store.current.rules] == ["devs-read"]
    assert admin.events[-1][1:] == ("policies.set", None, "conflict")
