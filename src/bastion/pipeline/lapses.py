"""What the credential watcher asks once a second (SE-3, AU-5): whose credential has lapsed.

A credential lapses when it expires (a JWT's or a certificate's ``expires_at``), when an API
key is no longer active (revoked, expired, past its rotation overlap, or gone: the key
database is the truth, since ``bastion keys revoke`` runs in another process), or when the
authenticator would now refuse a client certificate (revoked in the CRL, revocation status
unknown), including the one a bearer token came over (``Principal.client_certificate``).
Each predicate answers once per credential per check.
"""

from __future__ import annotations

from collections.abc import Callable

from bastion.auth.authenticator import Authenticator
from bastion.auth.keys import KeyStore, NoSuchKey
from bastion.auth.principal import Principal
from bastion.upstream.parking import Owner

__all__ = ["lapsed_owners", "lapsed_principals"]


def lapsed_principals(
    store: KeyStore | None, now: float, authenticator: Authenticator | None = None
) -> Callable[[Principal], bool]:
    """Whether a session owner's credential has lapsed: expired, an API key that is no
    longer active (revoked, expired, past its rotation overlap, or gone), or a client
    certificate revoked or of unknown revocation status in the CRL, its own or the one its
    bearer token came over."""
    credential_lapsed = _lapsed_credential(store, now, authenticator)

    def lapsed(principal: Principal) -> bool:
        if principal.expires_at is not None and now >= principal.expires_at:
            return True
        certificate = principal.client_certificate
        if certificate is not None and credential_lapsed(certificate):
            return True
        return credential_lapsed(principal.credential_id)

    return lapsed


def lapsed_owners(
    store: KeyStore | None, now: float, authenticator: Authenticator | None = None
) -> Callable[[Owner], bool]:
    """Whether a parked call's owner (a binding: principal id, credential id) holds an API
    key that is no longer active, or a client certificate that would now be refused."""
    credential_lapsed = _lapsed_credential(store, now, authenticator)
    return lambda owner: owner is not None and credential_lapsed(owner[1])


def _lapsed_credential(
    store: KeyStore | None, now: float, authenticator: Authenticator | None
) -> Callable[[str], bool]:
    """Whether a credential id names an API key that is no longer active (revoked, expired,
    past its rotation overlap, or gone) or a client certificate ``authenticator`` would now
    refuse (revoked, revocation unknown, expired); JWTs: False (``expires_at`` says)."""
    states: dict[str, bool] = {}

    def lapsed(credential: str) -> bool:
        if credential not in states:
            states[credential] = _key_lapsed(store, credential, now) or (
                authenticator is not None and authenticator.lapsed(credential, now)
            )
        return states[credential]

    return lapsed


def _key_lapsed(store: KeyStore | None, credential: str, now: float) -> bool:
    if store is None or not credential.startswith("apikey:"):
        return False
    try:
        return store.get(credential.removeprefix("apikey:")).state(now) != "active"
    except NoSuchKey:
        return True
