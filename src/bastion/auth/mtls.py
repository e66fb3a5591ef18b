"""Client certificates as service accounts: the TLS layer has already verified the chain;
this maps the verified leaf (DER bytes) to the configured account by the SHA-256 fingerprint
of the certificate or by its subject common name, and refuses any other certificate.

A fingerprint match wins over a CN match. A certificate with no CN or with two CNs never
matches by CN (two would make the match depend on which one is read). An account that names
an ``issuer`` matches only a certificate signed directly by that CA of the ``client_ca``
bundle (its key, not just its name in the certificate's issuer field), so a second CA in the
bundle cannot mint the account's CN; with more than one CA in the bundle, every account must
name its issuer or pin a fingerprint, or the configuration is refused (``MtlsConfigError``).
A ``client_ca`` or ``client_crl`` that a user other than root or the gateway's own could
change is refused too (``bastion._file_trust``). With a ``client_crl`` (``bastion.auth.crl``),
a revoked certificate is refused, and every certificate while the CRL cannot be trusted (fail
closed); so is an expired one on a connection kept alive past its ``notAfter``; ``screen``
does so for a certificate that came with a bearer token too (AU-1). A certificate the TLS
layer verified but whose fields do not parse (a subject of invalid ASN.1 strings) is
``malformed-certificate``, a 401 like any refusal (AU-2). What each certificate is (CN,
serial, signer, ``notAfter``) is parsed once and kept by fingerprint (least recently used
out first), so ``lapsed`` can say, for the credential watcher, which certificates that hold
sessions and streams would now be refused. A reserved role in an account's ``roles`` (``local``,
``bastion.auth.roles``) is dropped, with a warning when the mapper is built.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from bastion._file_trust import change_refused
from bastion.auth.principal import Principal, Unauthenticated
from bastion.auth.roles import RESERVED_ROLES, without_reserved
from bastion.auth.settings import MtlsAccount, MtlsSettings

if TYPE_CHECKING:
    from collections.abc import Sequence

    from cryptography import x509

    from bastion.auth.crl import ClientCrl

__all__ = ["MAX_KNOWN_CERTIFICATES", "MtlsConfigError", "MtlsMapper"]

MAX_KNOWN_CERTIFICATES: Final = 4096  # parsed client certificates kept, by fingerprint
_CREDENTIAL: Final = "mtls:sha256:"  # + the certificate's fingerprint: its credential id


class MtlsConfigError(ValueError):
    """The mTLS accounts do not fit the ``client_ca`` bundle, or a file is unreadable."""


@dataclass(frozen=True, slots=True)
class _Leaf:
    """What the mapping needs of one certificate, parsed and checked once."""

    cn: str | None
    serial: int
    signer: int | None  # index in the client CAs of the one that signed it directly
    not_after: float  # epoch seconds


class MtlsMapper:
    """Maps verified client certificates to the accounts in ``settings``; ``client_cas``
    are the certificates of the ``client_ca`` bundle, in file order."""

    def __init__(
        self,
        settings: MtlsSettings,
        *,
        client_cas: Sequence[x509.Certificate] = (),
        crl: ClientCrl | None = None,
    ) -> None:
        self._cas = tuple(client_cas)
        self._crl = crl
        self._issuer_of = {
            a.name: _issuer_index(a, self._cas) for a in settings.accounts if a.issuer
        }
        if len(self._cas) > 1:
            for account in settings.accounts:
                if account.issuer is None and account.fingerprint_sha256 is None:
                    raise MtlsConfigError(
                        f"auth.mtls account {account.name}: gateway.tls.client_ca holds "
                        f"{len(self._cas)} CA certificates, so name the CA it accepts (issuer: "
                        f'"{self._cas[0].subject.rfc4514_string()}", say) or pin the '
                        "certificate (fingerprint_sha256)"
                    )
        for account in settings.accounts:  # warned here; ``_principal`` drops them
            source = f"auth.mtls account {account.name}"
            without_reserved(account.roles, RESERVED_ROLES, source=source, warned=set())
        self._by_fingerprint = {a.fingerprint: a for a in settings.accounts if a.fingerprint}
        self._by_cn: dict[str, list[MtlsAccount]] = {}
        for account in sorted(settings.accounts, key=lambda a: a.issuer is None):
            if account.subject_cn is not None:  # issuer-bound accounts first
                self._by_cn.setdefault(account.subject_cn, []).append(account)
        self._known: dict[str, _Leaf] = {}

    @classmethod
    def from_files(
        cls, settings: MtlsSettings, *, client_ca: Path | None, client_crl: Path | None, now: float
    ) -> MtlsMapper:
        """The mapper for the ``client_ca`` bundle and ``client_crl`` files as configured.

        Raises:
            MtlsConfigError: others may change ``client_ca`` or ``client_crl`` (whoever may
                write the first mints certificates of any account; the second, revocations
                undone), ``client_ca`` is unreadable or holds no certificate, or the
                accounts do not fit it (see the class).
        """
        if client_ca is None:
            return cls(settings)
        files = [(client_ca, "the client CAs (gateway.tls.client_ca)")]
        if client_crl is not None:
            files.append((client_crl, "the client CRL (gateway.tls.client_crl)"))
        for path, what in files:
            if (refused := change_refused(path, what)) is not None:
                raise MtlsConfigError(refused)
        from cryptography import x509  # noqa: PLC0415 - only gateways with mTLS load it

        from bastion.auth.crl import ClientCrl  # noqa: PLC0415

        try:
            cas = x509.load_pem_x509_certificates(client_ca.read_bytes())
        except (OSError, ValueError) as exc:
            raise MtlsConfigError(f"gateway.tls.client_ca {client_ca}: {exc}") from exc
        crl = ClientCrl(client_crl, cas, now=now) if client_crl is not None else None
        return cls(settings, client_cas=cas, crl=crl)

    @property
    def configured(self) -> bool:
        return bool(self._by_fingerprint or self._by_cn)

    def refresh(self, now: float) -> None:
        """Re-read the CRL file if it changed, on this thread."""
        if self._crl is not None:
            self._crl.refresh(now)

    async def refresh_in_thread(self, now: float) -> None:
        """Re-read the CRL file if it changed, parsing it in a worker thread (called once a
        second); the CRL in force decides until then."""
        if self._crl is not None:
            await self._crl.refresh_in_thread(now)

    def revocation_status(self, now: float) -> str | None:
        """None without a CRL; else ``ok`` or why certificates are refused (``ClientCrl``)."""
        return None if self._crl is None else self._crl.status(now)

    def authenticate(self, der: bytes, *, now: float | None = None) -> Principal:
        """The service account of the certificate ``der`` (``now``: epoch seconds, for its
        ``notAfter`` and the CRL's ``nextUpdate``; default the current time).

        Raises:
            Unauthenticated: ``unknown-certificate`` (not configured),
                ``malformed-certificate`` (not a DER X.509 certificate),
                ``expired-certificate`` (past its ``notAfter``: a connection kept alive),
                ``revoked-certificate`` or ``revocation-unknown`` (see ``ClientCrl``).
        """
        fingerprint = hashlib.sha256(der).hexdigest()
        credential = _CREDENTIAL + fingerprint
        leaf = self._accepted(der, fingerprint, time.time() if now is None else now)
        account = self._by_fingerprint.get(fingerprint)
        if account is None:
            candidates = self._by_cn.get(leaf.cn, []) if leaf.cn is not None else []
            account = next((a for a in candidates if self._issued(a, leaf)), None)
        elif not self._issued(account, leaf):
            account = None
        if account is None:
            raise Unauthenticated("unknown-certificate", presented=True, credential_id=credential)
        return _principal(account, credential, leaf.not_after)

    def screen(self, der: bytes, now: float) -> str | None:
        """With a client CRL, the certificate ``der`` a request came over is refused if it
        would be, whatever else the request presents (a bearer token, AU-1); then its
        credential id, for ``lapsed`` to watch. None without a CRL: the TLS handshake
        already checked what there is to check.

        Raises:
            Unauthenticated: ``malformed-certificate``, ``expired-certificate``,
                ``revoked-certificate`` or ``revocation-unknown`` (``authenticate``).
        """
        if self._crl is None:
            return None
        fingerprint = hashlib.sha256(der).hexdigest()
        self._accepted(der, fingerprint, now)
        return _CREDENTIAL + fingerprint

    def lapsed(self, credential: str, now: float) -> bool:
        """Whether the certificate of ``credential`` (a credential id this mapper gave) would
        now be refused: expired, revoked in the CRL, or of unknown revocation status (fail
        closed); also when it is no longer among the ``MAX_KNOWN_CERTIFICATES`` last used.
        Any other credential (an API key, a JWT): False. No certificate is parsed here."""
        if not credential.startswith(_CREDENTIAL):
            return False
        leaf = self._known.get(credential.removeprefix(_CREDENTIAL))
        return leaf is None or self._refusal(leaf, now) is not None

    def _accepted(self, der: bytes, fingerprint: str, now: float) -> _Leaf:
        """The parsed certificate, unless it is refused at ``now`` whatever account it
        maps to (``Unauthenticated``, naming its credential)."""
        leaf = self._leaf(der, fingerprint)
        reason = self._refusal(leaf, now)
        if reason is not None:
            raise Unauthenticated(reason, presented=True, credential_id=_CREDENTIAL + fingerprint)
        return leaf

    def _refusal(self, leaf: _Leaf, now: float) -> str | None:
        """Why ``leaf`` is refused at ``now`` whatever account it maps to, or None."""
        if now >= leaf.not_after:
            return "expired-certificate"
        return None if self._crl is None else self._crl.revoked(leaf.signer, leaf.serial, now)

    def _issued(self, account: MtlsAccount, leaf: _Leaf) -> bool:
        """Whether ``leaf`` comes from the CA ``account`` names (any, if it names none)."""
        return account.issuer is None or self._issuer_of[account.name] == leaf.signer

    def _leaf(self, der: bytes, fingerprint: str) -> _Leaf:
        known = self._known.pop(fingerprint, None)
        if known is not None:
            self._known[fingerprint] = known  # the most recently used last
            return known
        # Lazily: x509 costs ~60 ms to import, and most gateways never see a certificate.
        from cryptography import x509  # noqa: PLC0415
        from cryptography.x509.oid import NameOID  # noqa: PLC0415

        try:  # every field is parsed when read: a bad one raises there (AU-2)
            cert = x509.load_der_x509_certificate(der)
            names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            cn = names[0].value if len(names) == 1 and isinstance(names[0].value, str) else None
            signer = next((i for i, ca in enumerate(self._cas) if _signed_by(cert, ca)), None)
            leaf = _Leaf(cn, cert.serial_number, signer, cert.not_valid_after_utc.timestamp())
        except ValueError as exc:
            credential = _CREDENTIAL + fingerprint
            raise Unauthenticated(
                "malformed-certificate", presented=True, credential_id=credential
            ) from exc
        if len(self._known) >= MAX_KNOWN_CERTIFICATES:
            del self._known[next(iter(self._known))]  # the least recently used
        self._known[fingerprint] = leaf
        return leaf


def _issuer_index(account: MtlsAccount, cas: Sequence[x509.Certificate]) -> int:
    """The index in ``cas`` of the one CA whose subject is ``account.issuer``.

    Raises:
        MtlsConfigError: no CA, or more than one (same name, different keys), has it.
    """
    found = [i for i, ca in enumerate(cas) if ca.subject.rfc4514_string() == account.issuer]
    if not found:
        raise MtlsConfigError(
            f"auth.mtls account {account.name}: issuer {account.issuer!r} names no CA in "
            "gateway.tls.client_ca (give its subject as "
            "`openssl x509 -noout -subject -nameopt RFC2253` prints it after subject=)"
        )
    if len(found) > 1:
        raise MtlsConfigError(
            f"auth.mtls account {account.name}: issuer {account.issuer!r} names more than one "
            "CA in gateway.tls.client_ca; pin the certificates with fingerprint_sha256"
        )
    return found[0]


def _signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    """Whether ``ca`` issued ``cert``: its subject is the issuer and its key signed it."""
    from cryptography.exceptions import InvalidSignature  # noqa: PLC0415

    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _principal(account: MtlsAccount, credential: str, not_after: float) -> Principal:
    return Principal(
        id=f"mtls:{account.name}",
        credential_id=credential,
        method="mtls",
        roles=tuple(r for r in account.roles if r not in RESERVED_ROLES),
        expires_at=not_after,
    )
