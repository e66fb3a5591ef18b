"""How a valid JWT's claims become a principal's roles and times: a string ``roles_claim``
read as the policy's claim bindings read it (AZ-1, AZ-6), and time claims that must be
numbers a float holds (AU-2, AZ-5). Real signed tokens against a real JWKS file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bastion.auth import JwtValidator, OidcSettings, Unauthenticated
from bastion.auth.settings import OidcGrants
from bastion.policy.model import Binding
from bastion.policy.principals import RoleResolver
from tests.auth.support import DEFAULT_JWKS, ISSUER, RESOURCE, make_token

pytestmark = pytest.mark.anyio

NOW = 1_800_000_000.0
ADMINS = "platform-admins"


@pytest.fixture
def validator(tmp_path: Path) -> JwtValidator:
    path = tmp_path / "jwks.json"
    path.write_bytes(DEFAULT_JWKS)
    settings = OidcSettings(
        issuer=ISSUER,
        jwks_file=str(path),
        roles_claim="groups",
        grants=OidcGrants(admin=[ADMINS], auditor=["auditors"]),
    )
    return JwtValidator.from_settings(settings, audience=RESOURCE)


async def refused(v: JwtValidator, claims: dict[str, Any], reason: str) -> None:
    with pytest.raises(Unauthenticated) as caught:
        await v.validate(make_token(claims), NOW)
    assert caught.value.reason == reason
    assert caught.value.presented


# -- AZ-1, AZ-6: a string roles claim ------------------------------------------------------


@pytest.mark.parametrize(
    "groups",
    [
        "former platform-admins",
        "platform-admins (read-only)",
        "platform-admins\u00a0readonly",
        "x\x1fplatform-admins",
        "platform-admins auditors",
    ],
)
async def test_az6_a_word_of_a_string_groups_claim_grants_no_admin_role(
    validator: JwtValidator, groups: str
) -> None:
    """Red team AZ-6: ``grants: {admin: [platform-admins]}`` gave the admin API to a token
    whose single-string ``groups`` merely held the word, whatever whitespace split it."""
    principal = await validator.validate(make_token({"groups": groups}), NOW)
    assert "admin" not in principal.roles
    assert "auditor" not in principal.roles
    assert ADMINS not in principal.roles
    assert principal.roles == (groups,)  # the whole string: the one role held for sure


async def test_az6_the_whole_string_or_a_list_entry_grants(validator: JwtValidator) -> None:
    whole = await validator.validate(make_token({"groups": ADMINS}), NOW)
    assert whole.roles == (ADMINS, "admin")
    assert whole.unsure_roles == ()
    listed = await validator.validate(make_token({"groups": ["dev", ADMINS]}), NOW)
    assert listed.roles == ("dev", ADMINS, "admin")
    assert listed.unsure_roles == ()


async def test_az1_words_of_a_string_claim_are_unsure_as_a_claim_binding_reads_them(
    validator: JwtValidator,
) -> None:
    """The words count for deny rules only (``unsure_roles``); the reserved and admin API
    roles never come from a token, so not as words either."""
    token = make_token({"groups": "dev  contractors admin local dev"})
    principal = await validator.validate(token, NOW)
    assert principal.roles == ("dev  contractors admin local dev",)
    assert principal.unsure_roles == ("dev", "contractors")
    # The policy binding on the same claim and value says the same: unsure.
    resolver = RoleResolver([Binding(claim="groups", value="contractors", roles=["c"])])
    held = resolver.roles(principal.id, principal.roles, principal.claims, principal.unsure_roles)
    assert set(held) == set(principal.roles)
    assert held.unsure == {"dev", "contractors", "c"}  # type: ignore[attr-defined]


# -- AU-2, AZ-5: time claims -----------------------------------------------------------------


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": 10**400},
        {"exp": 1e308},
        {"exp": 2**53},
        {"iat": -(10**400)},
        {"nbf": 10**400},
        {"auth_time": 10**400},
        {"auth_time": -(2**53)},
        {"auth_time": "1800000000"},
    ],
    ids=["exp", "exp-1e308", "exp-2**53", "iat", "nbf", "auth_time", "auth_time-low", "str"],
)
async def test_au2_a_time_claim_no_float_holds_is_malformed_not_a_crash(
    validator: JwtValidator, claims: dict[str, Any]
) -> None:
    """Red team AU-2: ``exp``/``auth_time`` 10**400 or ``iat`` -10**400 (signed by the IdP)
    raised OverflowError, a 500; now every time claim must be a finite number within 2**53."""
    await refused(validator, claims, "malformed")


async def test_az5_an_auth_time_in_the_future_is_refused(validator: JwtValidator) -> None:
    """An ``auth_time`` ahead of now would satisfy every ``recent_auth`` step-up forever."""
    await refused(validator, {"auth_time": NOW + 31}, "authenticated-in-future")
    recent = await validator.validate(make_token({"auth_time": NOW + 30}), NOW)  # the leeway
    assert recent.authenticated_at == NOW + 30
    dated = await validator.validate(make_token({"auth_time": NOW - 600, "exp": 2**53 - 1}), NOW)
    assert dated.authenticated_at == NOW - 600
    assert dated.expires_at == float(2**53 - 1) + 30  # the largest exp, still a time
