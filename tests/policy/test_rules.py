"""Who a rule applies to: principal ids and role names matched with their own globs (AZ-1).

A JWT principal id is ``jwt:<issuer URL>#<sub>`` and carries ``/``; role names from an IdP
may too (a Keycloak group ``/eng/devs``). Neither is a path, so ``*`` there matches ``/``.
"""

from __future__ import annotations

import pytest

from tests.policy.helpers import policy, request

JWT_ALICE = "jwt:https://idp.example.com/realms/eng#alice"
ALLOW_DEV = {"id": "dev", "effect": "allow", "roles": ["developer"], "tools": ["srv__*"]}


@pytest.mark.parametrize(
    "principal", [JWT_ALICE, "apikey:bob", "mtls:ci-bot", "local:me", "jwt:https://a/b/c#d/e"]
)
def test_az1_a_deny_for_every_principal_applies_to_jwt_users_too(principal: str) -> None:
    deny_all = {"id": "nobody", "effect": "deny", "principals": ["*"], "tools": ["srv__exec"]}
    engine = policy([ALLOW_DEV, deny_all])
    decision = engine.decide(request(principal=principal, name="srv__exec"))
    assert not decision.allowed
    assert decision.rule_id == "nobody"
    assert engine.decide(request(principal=principal, name="srv__read")).allowed
    _, traces = engine.explain(request(principal=principal, name="srv__exec"))
    assert [t.rule_id for t in traces if t.applies] == ["dev", "nobody"]


def test_az1_a_principal_glob_can_name_every_subject_of_one_issuer() -> None:
    issuer = {
        "id": "eng",
        "effect": "allow",
        "principals": ["jwt:https://idp.example.com/realms/eng#*"],
        "tools": ["srv__*"],
    }
    engine = policy([issuer])
    assert engine.decide(request(principal=JWT_ALICE, roles=())).allowed
    other = "jwt:https://idp.example.com/realms/ops#alice"
    assert not engine.decide(request(principal=other, roles=())).allowed
    # ``?`` is one character, ``/`` included; literal characters stay literal.
    one = {**issuer, "principals": ["jwt:https:??idp.example.com?realms?eng#alice"]}
    assert policy([one]).decide(request(principal=JWT_ALICE, roles=())).allowed


def test_az1_role_globs_match_role_names_that_contain_a_slash() -> None:
    deny = {"id": "no-exec", "effect": "deny", "roles": ["*"], "tools": ["srv__exec"]}
    everyone = {"id": "all", "effect": "allow", "principals": ["*"], "tools": ["srv__*"]}
    engine = policy([everyone, deny])
    decision = engine.decide(request(roles=("/eng/devs",), name="srv__exec"))
    assert decision.rule_id == "no-exec"
    groups = {"id": "eng", "effect": "allow", "roles": ["/eng/*"], "tools": ["srv__*"]}
    assert policy([groups]).decide(request(roles=("/eng/devs/backend",))).allowed
    assert not policy([groups]).decide(request(roles=("/ops/eng/x",))).allowed


def test_az1_principal_bindings_match_jwt_principal_ids() -> None:
    engine = policy(
        [ALLOW_DEV],
        principals=[{"principal": "jwt:https://idp.example.com/*", "roles": ["developer"]}],
    )
    assert engine.decide(request(principal=JWT_ALICE, roles=())).allowed
    assert not engine.decide(request(principal="apikey:https", roles=())).allowed
