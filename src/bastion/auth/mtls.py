"""Client certificates as service accounts: the TLS layer has already verified the chain;
this maps the verified leaf (DER bytes) to the configured account by the SHA-256 fingerprint
of the certificate or by its subject common name, and refuses any other certificate.

A fingerprint match wins over a CN match. A certificate with no CN or with two CNs never
matches by CN (two would make the match depend on which one is read).
"""

from __future__ import annotations

import hashlib

from bastion.auth.principal import Principal, Unauthenticated
from bastion.auth.settings import MtlsAccount, MtlsSettings

__all__ = ["MtlsMapper"]


class MtlsMapper:
    """Maps verified client certificates to the accounts in ``settings``."""

    def __init__(self, settings: MtlsSettings) -> None:
        self._by_fingerprint = {a.fingerprint: a for a in settings.accounts if a.fingerprint}
        self._by_cn = {a.subject_cn: a for a in settings.accounts if a.subject_cn is not None}

    @property
    def configured(self) -> bool:
        return bool(self._by_fingerprint or self._by_cn)

    def authenticate(self, der: bytes) -> Principal:
        """The service account of the certificate ``der``.

        Raises:
            Unauthenticated: ``unknown-certificate`` (not configured) or
                ``malformed-certificate`` (not a DER X.509 certificate).
        """
        fingerprint = hashlib.sha256(der).hexdigest()
        credential = f"mtls:sha256:{fingerprint}"
        account = self._by_fingerprint.get(fingerprint)
        if account is None:
            # Lazily: x509 costs ~60 ms to import, and most gateways never see a certificate.
            from cryptography import x509  # noqa: PLC0415
            from cryptography.x509.oid import NameOID  # noqa: PLC0415

            try:
                cert = x509.load_der_x509_certificate(der)
            except ValueError as exc:
                raise Unauthenticated("malformed-certificate", presented=True) from exc
            names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            if len(names) == 1 and isinstance(names[0].value, str):
                account = self._by_cn.get(names[0].value)
        if account is None:
            raise Unauthenticated("unknown-certificate", presented=True, credential_id=credential)
        return _principal(account, credential)


def _principal(account: MtlsAccount, credential: str) -> Principal:
    return Principal(
        id=f"mtls:{account.name}",
        credential_id=credential,
        method="mtls",
        roles=tuple(account.roles),
    )
