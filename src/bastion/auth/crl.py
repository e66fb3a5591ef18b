"""Revocation of client certificates by CRL (AU-1): ``gateway.tls.client_crl`` names a PEM
file of one or more CRLs, each signed by a CA of ``gateway.tls.client_ca``.

The file is re-read by ``refresh`` (the gateway calls it once a second) when its inode,
modification time or size changed, so a CRL replaced on disk applies without a restart, on
the next request of every connection, kept-alive ones included. It fails closed: while the
file is missing, unparseable, holds a CRL that no client CA signed, or holds one past its
``nextUpdate``, every client certificate is refused (``revocation-unknown``), and so is one
whose CA has no CRL in the file (as OpenSSL's ``VERIFY_CRL_CHECK_LEAF`` does). ``status``
says which, in a fixed word for ``/readyz``; each change of status is logged once. OCSP is
not supported.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from cryptography import x509

__all__ = ["MAX_CRL_BYTES", "ClientCrl"]

logger = logging.getLogger(__name__)

MAX_CRL_BYTES: Final = 64 * 1024 * 1024  # a larger file is refused (fail closed), not read
_BEGIN: Final = b"-----BEGIN X509 CRL-----"

_Signature = tuple[int, int, int]


class _Unusable(Exception):
    """Why the file cannot be used: its ``args[0]`` is the status word."""


class ClientCrl:
    """The revoked serial numbers of each client CA, from the file at ``path``."""

    def __init__(self, path: Path, cas: Sequence[x509.Certificate], *, now: float) -> None:
        self._path = path
        self._cas = tuple(cas)
        self._seen: _Signature | None = None
        self._revoked: dict[int, frozenset[int]] = {}  # index in cas -> revoked serials
        self._expires = float("inf")  # the earliest nextUpdate of the file's CRLs
        self._problem: str | None = "missing"
        self._reported: str | None = None
        self.refresh(now)

    def status(self, now: float) -> str:
        """``ok``, or why every certificate is refused: ``missing``, ``unparseable``,
        ``unsigned`` (a CRL no client CA signed) or ``expired``."""
        if self._problem is not None:
            return self._problem
        return "expired" if now >= self._expires else "ok"

    def refresh(self, now: float) -> None:
        """Re-read the file if it changed since the last read; log a change of status."""
        try:
            st = self._path.stat()
            signature: _Signature | None = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            signature = None
        if signature is None:
            self._seen, self._revoked, self._problem = None, {}, "missing"
        elif signature != self._seen:
            self._seen = signature
            try:
                self._revoked, self._expires = self._load()
                self._problem = None
            except _Unusable as unusable:
                self._revoked, self._problem = {}, str(unusable.args[0])
        self._report(now)

    def revoked(self, signer: int | None, serial: int, now: float) -> str | None:
        """None if the certificate ``serial`` signed by client CA ``signer`` (its index in
        ``client_ca``; None if no client CA signed it directly) is known not revoked; else
        the refusal reason, ``revoked-certificate`` or ``revocation-unknown``."""
        if self.status(now) != "ok" or signer is None or signer not in self._revoked:
            return "revocation-unknown"
        return "revoked-certificate" if serial in self._revoked[signer] else None

    def _load(self) -> tuple[dict[int, frozenset[int]], float]:
        try:
            with self._path.open("rb") as file:
                data = file.read(MAX_CRL_BYTES + 1)
        except OSError as exc:
            raise _Unusable("missing") from exc
        if len(data) > MAX_CRL_BYTES or _BEGIN not in data:
            raise _Unusable("unparseable")
        revoked: dict[int, frozenset[int]] = {}
        expires = float("inf")
        for block in data.split(_BEGIN)[1:]:
            try:
                crl = x509.load_pem_x509_crl(_BEGIN + block)
            except ValueError as exc:
                raise _Unusable("unparseable") from exc
            signer = self._signer(crl)
            if signer is None:
                raise _Unusable("unsigned")
            serials = frozenset(entry.serial_number for entry in crl)
            revoked[signer] = revoked.get(signer, frozenset()) | serials
            if crl.next_update_utc is not None:
                expires = min(expires, crl.next_update_utc.timestamp())
        return revoked, expires

    def _signer(self, crl: x509.CertificateRevocationList) -> int | None:
        """The index of the client CA that issued and signed ``crl``."""
        for index, ca in enumerate(self._cas):
            if ca.subject == crl.issuer and _signed_by(crl, ca):
                return index
        return None

    def _report(self, now: float) -> None:
        status = self.status(now)
        if status == self._reported:
            return
        self._reported = status
        if status == "ok":
            count = sum(len(serials) for serials in self._revoked.values())
            logger.info("client_crl %s: loaded, %d revoked certificate(s)", self._path, count)
        else:
            logger.error(
                "client_crl %s: %s; every client certificate is refused until it is fixed",
                self._path,
                status,
            )


def _signed_by(crl: x509.CertificateRevocationList, ca: x509.Certificate) -> bool:
    try:
        return crl.is_signature_valid(ca.public_key())  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
