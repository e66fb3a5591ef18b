"""Claim bindings (AZ-1): read at the same dotted path as the JWT's ``roles_claim``, and a
binding that cannot be decided never lets a deny for its role be stepped around."""

from __future__ import annotations

import pytest

from bastion.policy.principals import HeldRoles
from tests.policy.helpers import policy, request

ALLOW_DEV = {"id": "dev", "effect": "allow", "roles": ["developer"], "tools": ["srv__*"]}
EVERYONE = {"id": "all", "effect": "allow", "principals": ["*"], "tools": ["srv__*"]}
NO_CONTRACTOR_EXEC = {
    "id": "no-exec",
    "effect": "deny",
    "roles": ["contractor"],
    "tools": ["srv__exec"],
}
KEYCLOAK = [{"claim": "realm_access.roles", "value": "dev", "roles": ["developer"]}]
CONTRACTORS = [{"claim": "groups", "value": "contractors", "roles": ["contractor"]}]
ROLES = {"developer": None, "contractor": None}


def test_az1_a_claim_binding_reads_a_dotted_path_as_roles_claim_does() -> None:
    engine = policy([ALLOW_DEV], principals=KEYCLOAK, roles=ROLES)
    nested = {"realm_access": {"roles": ["offline", "dev"]}}
    assert engine.decide(request(roles=(), claims=nested)).allowed
    assert not engine.decide(request(roles=(), claims={"realm_access": {"roles": ["x"]}})).allowed
    assert not engine.decide(request(roles=(), claims={})).allowed
    # A claim whose own name holds dots (Auth0's namespaced claims) is still found.
    named = [{"claim": "https://example.com/groups", "value": "dev", "roles": ["developer"]}]
    claims = {"https://example.com/groups": ["dev"]}
    engine = policy([ALLOW_DEV], principals=named, roles=ROLES)
    assert engine.decide(request(roles=(), claims=claims)).allowed


@pytest.mark.parametrize(
    "groups",
    [
        {"contractors": True},  # an object
        [["contractors"]],  # a list holding a list
        [{"name": "contractors"}],
        "contractors staff",  # space-separated: one of its words
        7,
    ],
)
def test_az1_a_binding_that_cannot_be_decided_counts_for_denies_not_allows(
    groups: object,
) -> None:
    engine = policy([EVERYONE, NO_CONTRACTOR_EXEC], principals=CONTRACTORS, roles=ROLES)
    decision = engine.decide(request(roles=(), claims={"groups": groups}, name="srv__exec"))
    assert (decision.effect, decision.rule_id) == ("deny", "no-exec")
    # ... but never earns an allow granted to that role.
    allow_contractor = {**ALLOW_DEV, "id": "contractor", "roles": ["contractor"]}
    engine = policy([allow_contractor], principals=CONTRACTORS, roles=ROLES)
    assert not engine.decide(request(roles=(), claims={"groups": groups})).allowed
    _, traces = engine.explain(request(roles=(), claims={"groups": groups}))
    assert "unsure, not counted by an allow: ['contractor']" in traces[0].reason


def test_az1_a_binding_on_scope_reads_it_as_a_list_between_ascii_spaces() -> None:
    """OAuth's ``scope`` (RFC 9068) is values between ASCII spaces: a binding on one of
    them holds for sure, as ``roles_claim: scope`` reads it; any other whitespace leaves
    only an unsure word, counted by denies alone."""
    bound = [{"claim": "scope", "value": "tools.dev", "roles": ["developer"]}]
    engine = policy([ALLOW_DEV], principals=bound, roles=ROLES)
    assert engine.decide(request(roles=(), claims={"scope": "openid tools.dev"})).allowed
    assert not engine.decide(request(roles=(), claims={"scope": "x\u00a0tools.dev"})).allowed
    # A group claim is not a list: its words stay unsure.
    grouped = [{"claim": "groups", "value": "tools.dev", "roles": ["developer"]}]
    engine = policy([ALLOW_DEV], principals=grouped, roles=ROLES)
    assert not engine.decide(request(roles=(), claims={"groups": "openid tools.dev"})).allowed


def test_az1_a_path_through_a_non_object_counts_for_denies() -> None:
    keycloak = [{"claim": "realm_access.roles", "value": "ext", "roles": ["contractor"]}]
    engine = policy([EVERYONE, NO_CONTRACTOR_EXEC], principals=keycloak, roles=ROLES)
    claims = {"realm_access": ["ext"]}
    assert engine.decide(request(roles=(), claims=claims, name="srv__exec")).rule_id == "no-exec"
    # Absent is not unsure: the principal simply is not bound.
    absent = engine.decide(request(roles=(), claims={"realm_access": {}}, name="srv__exec"))
    assert absent.allowed


def test_plans_are_not_shared_between_sure_and_unsure_roles() -> None:
    engine = policy([EVERYONE, NO_CONTRACTOR_EXEC], principals=CONTRACTORS, roles=ROLES)
    plain = request(roles=(), claims={"groups": ["staff"]}, name="srv__exec")
    odd = request(roles=(), claims={"groups": {"contractors": 1}}, name="srv__exec")
    assert engine.decide(plain).allowed
    assert not engine.decide(odd).allowed
    assert engine.decide(plain).allowed
    assert HeldRoles(["a"], ["b"]) != HeldRoles(["a"]) and HeldRoles(["a"]) == frozenset({"a"})
    assert len({HeldRoles(["a"], ["b"]), HeldRoles(["a"]), HeldRoles(["a"], ["b"])}) == 2
