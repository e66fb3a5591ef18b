"""Red-team findings on what a valid, IdP-signed JWT may carry, on a real ``bastion serve``
(``conftest.gw``: ``roles_claim: roles``, ``grants: {admin: [bastion-admins]}``):

* AZ-6, AZ-5, AZ-1: a single-string roles claim was split at any whitespace and each word
  counted as a role held for sure, so ``"former bastion-admins"`` opened the admin API. A
  string is now one role, whole; its words count for deny rules only, as a policy claim
  binding reads the same claim.
* AU-2, AZ-5: a time claim no float holds (``exp: 10**400``) was a 500; an ``auth_time``
  in the future satisfied every ``recent_auth`` step-up forever. Both are 401 now.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.security.conftest import JWT_ADMINS, POLICY, Gateway, answer_of, bearer
from tests.security.test_authorization import error_code, policy_edit

pytestmark = pytest.mark.e2e


ERIN_IS_DEV = """\
principals:
  - {principal: "jwt:*#erin", roles: [dev]}
roles:
  contractor: {description: "no echo"}
"""
NO_CONTRACTOR_ECHO = """\
  - id: no-contractor-echo
    effect: deny
    roles: [contractor]
    tools: [fx__echo]
"""


def string_roles(gw: Gateway, sub: str, roles: str) -> dict[str, str]:
    """The Authorization header of a token of ``sub`` whose roles claim is one string."""
    return bearer(gw.issuer.sign({**gw.issuer.claims(sub), "roles": roles}))


def admin_api(gw: Gateway, headers: dict[str, str]) -> int:
    return gw.client.get(f"{gw.base}/api/v1/keys", headers=headers).status_code


@pytest.mark.parametrize(
    "roles",
    [
        f"former {JWT_ADMINS}",
        f"{JWT_ADMINS} (read-only)",
        f"{JWT_ADMINS}\u00a0readonly",
        f"x\x1f{JWT_ADMINS}",
    ],
    ids=["space", "suffix", "nbsp", "unit-separator"],
)
def test_az6_a_word_of_a_string_roles_claim_never_opens_the_admin_api(
    gw: Gateway, roles: str
) -> None:
    token = string_roles(gw, "mallory", roles)
    assert admin_api(gw, token) == 403
    assert error_code(gw.call(token, "fx__test_image_content")) == -32003


def test_az6_the_whole_string_is_the_role_it_names(gw: Gateway) -> None:
    token = string_roles(gw, "olga", JWT_ADMINS)
    assert admin_api(gw, token) == 200
    assert error_code(gw.call(token, "fx__test_image_content")) is None


def test_az1_words_of_a_string_roles_claim_count_for_denies_not_allows(gw: Gateway) -> None:
    """``"dev ops"`` is not the role ``dev`` for an allow (the policy's claim binding calls
    that shape undecidable), but a deny for ``contractor`` still reaches ``"contractor x"``."""
    dev = string_roles(gw, "dana", "dev")
    assert error_code(gw.call(dev, "fx__echo", {"text": "x"})) is None
    words = string_roles(gw, "dana", "dev ops")
    assert error_code(gw.call(words, "fx__echo", {"text": "x"})) == -32003
    assert admin_api(gw, words) == 403

    erin_is_dev = POLICY.replace("roles:\n", ERIN_IS_DEV, 1) + NO_CONTRACTOR_ECHO
    staff = string_roles(gw, "erin", "staff")

    def erin_echoes() -> bool:
        return error_code(gw.call(staff, "fx__echo", {"text": "x"})) is None

    with policy_edit(gw, erin_is_dev, erin_echoes):
        worded = string_roles(gw, "erin", "contractor staff")
        assert error_code(gw.call(worded, "fx__echo", {"text": "x"})) == -32003
        assert error_code(gw.call(worded, "fx__test_simple_text")) is None  # dev, bound


@pytest.mark.parametrize(
    "claims",
    [{"exp": 10**400}, {"auth_time": 10**400}, {"iat": -(10**400)}, {"exp": 1e308}],
    ids=["exp", "auth_time", "iat", "exp-1e308"],
)
def test_au2_a_time_claim_no_float_holds_is_a_401_not_a_500(
    gw: Gateway, claims: dict[str, Any]
) -> None:
    response = gw.call(bearer(gw.issuer.token(sub="zed", **claims)), "fx__echo", {"text": "x"})
    assert response.status_code == 401


def test_az5_an_auth_time_in_the_future_satisfies_no_step_up(gw: Gateway) -> None:
    guarded = POLICY + (
        "security:\n  tools:\n"
        "    fx__test_simple_text: {level: high, step_up: {recent_auth: 60s}}\n"
    )
    now = int(time.time())
    stale = bearer(gw.issuer.token(sub="erin", iat=now - 3600, auth_time=now - 3600))

    def stepped_up() -> bool:
        return error_code(gw.call(stale, "fx__test_simple_text")) == -32003

    with policy_edit(gw, guarded, stepped_up):
        ahead = bearer(gw.issuer.token(sub="erin", iat=now - 3600, auth_time=now + 10**6))
        response = gw.call(ahead, "fx__test_simple_text")
        assert response.status_code == 401
        fresh = bearer(gw.issuer.token(sub="erin", iat=now - 3600, auth_time=now))
        assert "result" in answer_of(gw.call(fresh, "fx__test_simple_text"))
