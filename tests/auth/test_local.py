"""The local principal (stdio, a loopback gateway without auth, the hub) is the operating
system's user of the process, by its effective uid: not whatever ``$LOGNAME`` or ``$USER``
says (AD-1: the audit log names who really acted)."""

from __future__ import annotations

import os
import pwd
import secrets

import pytest

from bastion.auth.local import local_principal
from bastion.config import Config
from bastion.gateway import Gateway
from bastion.pipeline.runtime import Security
from bastion.protocol.request_state import RequestStateSealer
from bastion.transport.http_auth import LocalAuth

OS_USER = pwd.getpwuid(os.geteuid()).pw_name


@pytest.fixture
def claimed_alice(monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment names someone else than the uid (the tests run as root)."""
    assert OS_USER != "alice"
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.setenv(name, "alice")


@pytest.mark.usefixtures("claimed_alice")
def test_the_local_principal_is_the_uids_user_not_the_environments_AD1() -> None:
    principal = local_principal()
    assert principal.id == principal.credential_id == f"local:{OS_USER}"


@pytest.mark.usefixtures("claimed_alice")
def test_a_uid_without_a_passwd_entry_is_named_by_its_number_AD1(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_entry(uid: int) -> pwd.struct_passwd:
        raise KeyError(f"getpwuid(): uid not found: {uid}")

    monkeypatch.setattr(pwd, "getpwuid", no_entry)
    assert local_principal().id == f"local:uid{os.geteuid()}"


@pytest.mark.usefixtures("claimed_alice")
def test_a_loopback_gateway_without_auth_serves_the_uids_user_AD1() -> None:
    config = Config()
    gateway = Gateway(config, os.environ, sealer=RequestStateSealer([secrets.token_bytes(32)]))
    face = Security(config, gateway).http_authenticator()
    assert isinstance(face, LocalAuth)
    assert face.principal.id == f"local:{OS_USER}"
