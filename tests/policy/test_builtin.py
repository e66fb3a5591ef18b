"""The built-in policy (no policy file): the local user and the hub's key, by principal id;
the ``local`` role alone grants nothing (AZ-1, AZ-5)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.auth import KeyStore
from bastion.auth.local import local_principal
from bastion.pipeline.hub_key import lent_hub_key
from bastion.policy.builtin import builtin_policy
from tests.policy.helpers import request


def test_az1_the_local_user_may_do_everything() -> None:
    me = local_principal("me")
    decision = builtin_policy().decide(request(principal=me.id, roles=me.roles))
    assert (decision.allowed, decision.rule_id) == (True, "builtin-local-user")


@pytest.mark.parametrize(
    "principal",
    ["jwt:https://idp.example.com/realms/eng#mallory", "apikey:bob", "mtls:ci", "localx"],
)
def test_az5_a_credential_carrying_the_local_role_gets_nothing(principal: str) -> None:
    decision = builtin_policy().decide(request(principal=principal, roles=("local", "admin")))
    assert not decision.allowed


def test_az5_the_key_lent_to_the_hub_is_allowed_by_its_name(tmp_path: Path) -> None:
    db = tmp_path / "keys.db"
    with lent_hub_key(db) as plaintext:
        assert plaintext is not None
        with KeyStore(db) as store:
            key = store.verify(plaintext, 0.0)
        principal = f"apikey:{key.name}"
        assert builtin_policy().decide(request(principal=principal, roles=key.roles)).allowed
