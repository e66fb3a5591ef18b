"""Revocation of client certificates by CRL (AU-1): ``gateway.tls.client_crl`` names a PEM
file of one or more CRLs, each signed by a CA of ``gateway.tls.client_ca``.

The file is re-read by ``refresh_in_thread`` (the gateway calls it once a second) when its
inode, modification time or size changed: the cheap ``stat`` on the event loop, the read and
parse in a worker thread (DS-4: a large CRL takes seconds), the CRL in force deciding until
the new one is parsed. A CRL replaced on disk so applies without a restart, on the next
request of every connection, kept-alive ones included. It fails closed: while the file is
missing, unparseable, holds a CRL that no client CA signed, or holds one past its
``nextUpdate``, every client certificate is refused (``revocation-unknown``), and so is one
whose CA has no CRL in the file (as OpenSSL's ``VERIFY_CRL_CHECK_LEAF`` does). Also refused
(RFC 5280 s5.2, s6.3), as saying less than a complete, current CRL: a CRL older than one
accepted from its CA while running (``rollback``: a lower CRLNumber, the same number in
other bytes, or no number after a numbered one), a delta CRL, one scoped by an Issuing
Distribution Point or with another critical extension not processed here (``unsupported``),
and one whose thisUpdate is more than ``CLOCK_SKEW`` ahead (``not-yet-valid``, until then).
So is a file that a user other than root or the gateway's own could change (``untrusted``,
``bastion._file_trust``), asked at every refresh, since a chmod or a directory's owner does
not change the file's signature: an older CRL put back would undo a revocation. At start
such a file is refused before this (``MtlsMapper.from_files``).
``status`` says which, in a fixed word for ``/readyz``; each change of status is logged once.
The highest CRLNumbers are kept in memory only, so a restart forgets them. OCSP is not
supported.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import anyio.to_thread
from cryptography import x509
from cryptography.x509.oid import CRLEntryExtensionOID, ExtensionOID

from bastion._file_trust import change_refused

__all__ = ["CLOCK_SKEW", "MAX_CRL_BYTES", "ClientCrl"]

logger = logging.getLogger(__name__)

MAX_CRL_BYTES: Final = 64 * 1024 * 1024  # a larger file is refused (fail closed), not read
CLOCK_SKEW: Final = 300.0  # seconds a CRL's thisUpdate may be ahead of this host's clock
_BEGIN: Final = b"-----BEGIN X509 CRL-----"
_END: Final = b"-----END X509 CRL-----"
_WHITESPACE: Final = b" \t\r\n"
# Extensions that change what a CRL covers: refused however they are marked.
_SCOPING: Final = frozenset(
    {ExtensionOID.DELTA_CRL_INDICATOR, ExtensionOID.ISSUING_DISTRIBUTION_POINT}
)
_PROCESSED: Final = frozenset({ExtensionOID.CRL_NUMBER})  # may be critical: it is processed
_ENTRY_SCOPING: Final = frozenset({CRLEntryExtensionOID.CERTIFICATE_ISSUER})  # indirect CRLs

_Signature = tuple[int, int, int]
_Number = tuple[int | None, bytes]  # a CA's newest CRLNumber and the digest of its content


class _Unusable(Exception):
    """Why the file cannot be used: ``status`` is the word; a ``not-yet-valid`` file is
    read again at ``retry_at``."""

    def __init__(self, status: str, retry_at: float | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.retry_at = retry_at


@dataclass(frozen=True, slots=True)
class _Parsed:
    """What a file says: revoked serials and newest CRLNumber by client CA (its index)."""

    revoked: dict[int, frozenset[int]]
    numbers: dict[int, _Number]
    expires: float  # the earliest nextUpdate of the file's CRLs


class ClientCrl:
    """The revoked serial numbers of each client CA, from the file at ``path``."""

    def __init__(self, path: Path, cas: Sequence[x509.Certificate], *, now: float) -> None:
        self._path = path
        self._cas = tuple(cas)
        self._seen: _Signature | None = None
        self._retry_at: float | None = None
        self._revoked: dict[int, frozenset[int]] = {}  # index in cas -> revoked serials
        self._accepted: dict[int, tuple[int, bytes]] = {}  # index in cas -> newest numbered
        self._expires = float("inf")
        self._problem: str | None = "missing"
        self._why = ""  # what an ``untrusted`` file's check said: the log names the fix
        self._reported: str | None = None
        self.refresh(now)

    def status(self, now: float) -> str:
        """``ok``, or why every certificate is refused: ``missing``, ``unparseable``,
        ``unsigned`` (a CRL no client CA signed), ``expired``, ``rollback``, ``unsupported``,
        ``not-yet-valid`` or ``untrusted``."""
        if self._problem is not None:
            return self._problem
        return "expired" if now >= self._expires else "ok"

    def refresh(self, now: float) -> None:
        """Re-read the file if it changed, on this thread (at start); log a change of status."""
        signature = self._due(now)
        if signature is not None:
            self._apply(signature, _outcome(self._path, self._cas, now))
        self._report(now)

    async def refresh_in_thread(self, now: float) -> None:
        """``refresh``, parsing in a worker thread; until it is parsed, the CRL in force
        decides."""
        signature = self._due(now)
        if signature is not None:
            outcome = await anyio.to_thread.run_sync(_outcome, self._path, self._cas, now)
            self._apply(signature, outcome)
        self._report(now)

    def revoked(self, signer: int | None, serial: int, now: float) -> str | None:
        """None if the certificate ``serial`` signed by client CA ``signer`` (its index in
        ``client_ca``; None if no client CA signed it directly) is known not revoked; else
        the refusal reason, ``revoked-certificate`` or ``revocation-unknown``."""
        if self.status(now) != "ok" or signer is None or signer not in self._revoked:
            return "revocation-unknown"
        return "revoked-certificate" if serial in self._revoked[signer] else None

    def _due(self, now: float) -> _Signature | None:
        """The file's signature if it is to be read now; a missing or untrusted file applies
        at once (and is read again once it is neither)."""
        try:
            st = self._path.stat()
        except OSError:
            self._seen, self._retry_at, self._revoked, self._problem = None, None, {}, "missing"
            return None
        refused = change_refused(self._path, "the client CRL")
        if refused is not None:
            self._seen, self._retry_at, self._revoked, self._problem = None, None, {}, "untrusted"
            self._why = refused
            return None
        signature = (st.st_ino, st.st_mtime_ns, st.st_size)
        retry = self._retry_at is not None and now >= self._retry_at
        return signature if signature != self._seen or retry else None

    def _apply(self, signature: _Signature, outcome: _Parsed | _Unusable) -> None:
        self._seen, self._retry_at = signature, None
        if isinstance(outcome, _Parsed) and self._rolls_back(outcome.numbers):
            outcome = _Unusable("rollback")
        if isinstance(outcome, _Unusable):
            self._revoked, self._problem = {}, outcome.status
            self._retry_at = outcome.retry_at
            return
        self._revoked, self._expires, self._problem = outcome.revoked, outcome.expires, None
        for signer, (number, digest) in outcome.numbers.items():
            if number is not None:
                self._accepted[signer] = (number, digest)

    def _rolls_back(self, numbers: dict[int, _Number]) -> bool:
        """Whether a CA's newest CRL in the file is older than, or another CRL than, the
        highest numbered one accepted from it while running."""
        for signer, (number, digest) in numbers.items():
            accepted = self._accepted.get(signer)
            if accepted is None:
                continue
            if number is None or number < accepted[0]:
                return True
            if number == accepted[0] and digest != accepted[1]:
                return True
        return False

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
                "client_crl %s: %s; every client certificate is refused until it is fixed%s",
                self._path,
                status,
                f" ({self._why})" if status == "untrusted" else "",
            )


def _outcome(path: Path, cas: tuple[x509.Certificate, ...], now: float) -> _Parsed | _Unusable:
    try:
        return _parse(path, cas, now)
    except _Unusable as unusable:
        return unusable


def _parse(path: Path, cas: tuple[x509.Certificate, ...], now: float) -> _Parsed:
    """Read and check the file (no state: it runs in a worker thread).

    Raises:
        _Unusable: the file is missing, unparseable, unsigned, unsupported or not yet valid.
    """
    try:
        with path.open("rb") as file:
            data = file.read(MAX_CRL_BYTES + 1)
    except OSError as exc:
        raise _Unusable("missing") from exc
    if len(data) > MAX_CRL_BYTES or _BEGIN not in data:
        raise _Unusable("unparseable")
    revoked: dict[int, frozenset[int]] = {}
    newest: dict[int, tuple[int | None, list[bytes]]] = {}
    expires = float("inf")
    for block in data.split(_BEGIN)[1:]:
        try:
            der = _der(block)
            crl = x509.load_der_x509_crl(der)
            signer = _signer(crl, cas)
            if signer is None:
                raise _Unusable("unsigned")
            number = _number(crl)
            serials = _serials(crl)
        except ValueError as exc:
            raise _Unusable("unparseable") from exc
        starts = crl.last_update_utc.timestamp()
        if starts > now + CLOCK_SKEW:
            raise _Unusable("not-yet-valid", retry_at=starts - CLOCK_SKEW)
        revoked[signer] = revoked.get(signer, frozenset()) | serials
        if crl.next_update_utc is not None:
            expires = min(expires, crl.next_update_utc.timestamp())
        digest = hashlib.sha256(der).digest()
        known = newest.get(signer)
        if known is None or _rank(number) > _rank(known[0]):
            newest[signer] = (number, [digest])
        elif number == known[0]:
            known[1].append(digest)  # two CRLs of one number: both make its content
    numbers = {
        signer: (number, hashlib.sha256(b"".join(sorted(digests))).digest())
        for signer, (number, digests) in newest.items()
    }
    return _Parsed(revoked, numbers, expires)


def _der(block: bytes) -> bytes:
    """The DER bytes of a PEM block (after its BEGIN line). Decoded here, not by
    ``load_pem_x509_crl``, which holds the GIL twice as long (DS-4).

    Raises:
        ValueError: no END line, or not base64.
    """
    body, end, _ = block.partition(_END)
    if not end:
        raise ValueError("no END line")
    return base64.b64decode(body.translate(None, _WHITESPACE), validate=True)


def _rank(number: int | None) -> int:
    return -1 if number is None else number  # a CRLNumber is not negative (RFC 5280 s5.2.3)


def _signer(crl: x509.CertificateRevocationList, cas: tuple[x509.Certificate, ...]) -> int | None:
    """The index of the client CA that issued and signed ``crl``."""
    for index, ca in enumerate(cas):
        if ca.subject == crl.issuer and _signed_by(crl, ca):
            return index
    return None


def _number(crl: x509.CertificateRevocationList) -> int | None:
    """The CRLNumber, or None.

    Raises:
        _Unusable: ``unsupported``: a delta or scoped CRL, or an unknown critical extension.
    """
    number = None
    for extension in crl.extensions:
        if extension.oid in _SCOPING or (extension.critical and extension.oid not in _PROCESSED):
            raise _Unusable("unsupported")
        if isinstance(extension.value, x509.CRLNumber):
            number = extension.value.crl_number
    return number


def _serials(crl: x509.CertificateRevocationList) -> frozenset[int]:
    """The revoked serial numbers.

    Raises:
        _Unusable: ``unsupported``: an entry has a critical or certificateIssuer extension.
    """
    serials = []
    for entry in crl:
        for extension in entry.extensions:
            if extension.critical or extension.oid in _ENTRY_SCOPING:
                raise _Unusable("unsupported")
        serials.append(entry.serial_number)
    return frozenset(serials)


def _signed_by(crl: x509.CertificateRevocationList, ca: x509.Certificate) -> bool:
    try:
        return crl.is_signature_valid(ca.public_key())  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
