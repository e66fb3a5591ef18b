"""The client CRL (AU-1, red-team R3): a validly signed CRL that says less than the one in
force is refused, fail closed: an older one put back (rollback), a delta or scoped CRL, one
whose thisUpdate is ahead of the clock; and a changed file is parsed off the event loop
(DS-4) while the previous decision holds."""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ObjectIdentifier

from bastion.auth import crl as crl_module
from bastion.auth.crl import CLOCK_SKEW, ClientCrl
from tests.auth.support import Ca, issue, make_ca, make_crl

NOW = time.time()
# The CRLs are dated from NOW, as the checks are, however long after import a test runs.
make_crl = functools.partial(make_crl, now=NOW)
Extensions = tuple[tuple[x509.ExtensionType, bool], ...]


class Pki:
    """One client CA, a revoked and a good certificate, and the CRL file in force."""

    def __init__(self, tmp_path: Path) -> None:
        self.ca: Ca = make_ca("Ops CA")
        self.path = tmp_path / "clients.crl"
        self.leaked_der = issue(self.ca, tmp_path, cn="leaked")[2]
        self.leaked = _serial(self.leaked_der)
        self.good = _serial(issue(self.ca, tmp_path, cn="ci-bot")[2])

    def write(self, content: bytes) -> None:
        """Replace the file as a deployment would: a new file renamed over the old."""
        fresh = self.path.with_name("fresh.crl")
        fresh.write_bytes(content)
        os.replace(fresh, self.path)

    def crl(
        self,
        number: int | None,
        *,
        revoked: bool = True,
        this_update: float = -7200.0,
        next_update: float = 3600.0,
        extensions: Extensions = (),
        entry_extensions: Extensions = (),
    ) -> bytes:
        """A CRL of the CA numbered ``number``, revoking ``leaked`` unless not ``revoked``."""
        return make_crl(
            self.ca,
            (self.leaked_der,) if revoked else (),
            number=number,
            this_update=this_update,
            next_update=next_update,
            extensions=extensions,
            entry_extensions=entry_extensions,
        )

    def answers(self, crl: ClientCrl, now: float = NOW) -> tuple[str | None, str | None]:
        """What the leaked and the good certificate get."""
        return crl.revoked(0, self.leaked, now), crl.revoked(0, self.good, now)


def _serial(der: bytes) -> int:
    return x509.load_der_x509_certificate(der).serial_number


REVOKED = ("revoked-certificate", None)
REFUSED = ("revocation-unknown", "revocation-unknown")


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


def loaded(pki: Pki, content: bytes) -> ClientCrl:
    pki.write(content)
    crl = ClientCrl(pki.path, [pki.ca.cert], now=NOW)
    assert crl.status(NOW) == "ok"
    return crl


def test_au1_an_older_crl_put_back_is_a_rollback_and_fails_closed(
    pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    """R3: CRL 2 revokes ``leaked``; CRL 1 (older, still before its nextUpdate, validly
    signed) put back in its place would let it in: it is refused, and so is every client
    certificate until a CRL at least as new is back."""
    crl = loaded(pki, pki.crl(2))
    assert pki.answers(crl) == REVOKED
    pki.write(pki.crl(1, revoked=False))
    with caplog.at_level(logging.ERROR, logger="bastion.auth.crl"):
        crl.refresh(NOW)
    assert crl.status(NOW) == "rollback"
    assert pki.answers(crl) == REFUSED
    assert [r.getMessage() for r in caplog.records] == [
        f"client_crl {pki.path}: rollback; every client certificate is refused until it is fixed"
    ]
    pki.write(pki.crl(3))
    crl.refresh(NOW)
    assert crl.status(NOW) == "ok"
    assert pki.answers(crl) == REVOKED


def test_au1_a_crl_file_others_may_change_fails_closed_until_fixed(
    pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    """A chmod changes nothing the change check sees (inode, mtime, size), yet whoever may
    now write the file may put back an older CRL after a restart: it is asked at every
    refresh, and every client certificate is refused while others may change it."""
    crl = loaded(pki, pki.crl(2))
    pki.path.chmod(0o666)
    with caplog.at_level(logging.ERROR, logger="bastion.auth.crl"):
        crl.refresh(NOW)
    assert crl.status(NOW) == "untrusted"
    assert pki.answers(crl) == REFUSED
    assert [r.getMessage() for r in caplog.records] == [
        f"client_crl {pki.path}: untrusted; every client certificate is refused until it is"
        f" fixed ({pki.path}: others may change the client CRL: {pki.path} is writable by"
        f" every user; run: chmod o-w {pki.path})"
    ]
    pki.path.chmod(0o644)
    crl.refresh(NOW)
    assert crl.status(NOW) == "ok"
    assert pki.answers(crl) == REVOKED


def test_au1_the_same_crl_again_is_accepted_another_with_its_number_is_not(pki: Pki) -> None:
    """An equal CRLNumber is fine for the very CRL accepted (rewritten, or restored after a
    refused one); a different CRL with that number is suspicious and refused."""
    content = pki.crl(2)
    crl = loaded(pki, content)
    pki.write(pki.crl(2, revoked=False))
    crl.refresh(NOW)
    assert crl.status(NOW) == "rollback"
    assert pki.answers(crl) == REFUSED
    pki.write(content)
    crl.refresh(NOW)
    assert crl.status(NOW) == "ok"
    assert pki.answers(crl) == REVOKED


def test_au1_a_crl_without_a_number_is_refused_once_a_numbered_one_was_accepted(
    pki: Pki,
) -> None:
    crl = loaded(pki, pki.crl(None))
    pki.write(pki.crl(None))  # numberless after numberless: nothing to compare
    crl.refresh(NOW)
    assert crl.status(NOW) == "ok"
    pki.write(pki.crl(5))
    crl.refresh(NOW)
    assert crl.status(NOW) == "ok"
    pki.write(pki.crl(None, revoked=False))
    crl.refresh(NOW)
    assert crl.status(NOW) == "rollback"
    assert pki.answers(crl) == REFUSED


def test_au1_the_highest_number_is_kept_per_ca(tmp_path: Path) -> None:
    """Each CA numbers its own CRLs: ca2's CRL 1 is no rollback after ca1's CRL 7, but it is
    after ca2's CRL 2."""
    ca1, ca2 = make_ca("Ops CA"), make_ca("Dev CA")
    path, fresh = tmp_path / "clients.crl", tmp_path / "fresh.crl"
    seventh = make_crl(ca1, number=7)
    path.write_bytes(seventh + make_crl(ca2, number=1))
    crl = ClientCrl(path, [ca1.cert, ca2.cert], now=NOW)
    assert crl.status(NOW) == "ok"
    for ca2_number, status in ((2, "ok"), (1, "rollback")):
        fresh.write_bytes(seventh + make_crl(ca2, number=ca2_number))
        os.replace(fresh, path)
        crl.refresh(NOW)
        assert crl.status(NOW) == status


IDP_CA_CERTS_ONLY = x509.IssuingDistributionPoint(None, None, False, True, None, False, False)
UNKNOWN = x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x05\x00")


@pytest.mark.parametrize(
    "extensions",
    [
        pytest.param(((x509.DeltaCRLIndicator(2), True),), id="delta"),
        pytest.param(((IDP_CA_CERTS_ONLY, True),), id="idp-ca-certs-only"),
        pytest.param(((IDP_CA_CERTS_ONLY, False),), id="idp-not-marked-critical"),
        pytest.param(((UNKNOWN, True),), id="unknown-critical"),
    ],
)
def test_au1_a_delta_scoped_or_unknown_critical_crl_is_unsupported(
    pki: Pki, extensions: Extensions
) -> None:
    """R3: a delta CRL alone, or one scoped by an IssuingDistributionPoint (CA certificates
    only: it says nothing of client certificates), or one with any other critical extension
    this gateway does not process (RFC 5280 s5.2), is refused: fail closed."""
    crl = loaded(pki, pki.crl(2))
    pki.write(pki.crl(3, revoked=False, extensions=extensions))
    crl.refresh(NOW)
    assert crl.status(NOW) == "unsupported"
    assert pki.answers(crl) == REFUSED


def test_au1_an_unknown_critical_entry_extension_is_unsupported(pki: Pki) -> None:
    """RFC 5280 s5.3: e.g. a certificateIssuer entry (an indirect CRL) changes whose
    certificates the entries are."""
    issuer = x509.CertificateIssuer([x509.DNSName("other.example")])
    pki.write(pki.crl(1, entry_extensions=((issuer, True),)))
    assert ClientCrl(pki.path, [pki.ca.cert], now=NOW).status(NOW) == "unsupported"


def test_au1_an_unknown_non_critical_extension_is_ignored(pki: Pki) -> None:
    crl = loaded(pki, pki.crl(1, extensions=((UNKNOWN, False),)))
    assert pki.answers(crl) == REVOKED


def test_au1_a_crl_from_the_future_is_not_yet_valid_until_it_is(pki: Pki) -> None:
    """R3: thisUpdate tomorrow: refused (``not-yet-valid``); once the clock reaches it (less
    the ``CLOCK_SKEW`` leeway) it applies without the file changing. Within the leeway it
    applies at once."""
    crl = loaded(pki, pki.crl(2))
    day = 86400.0
    pki.write(pki.crl(3, revoked=False, this_update=day, next_update=2 * day))
    crl.refresh(NOW)
    assert crl.status(NOW) == "not-yet-valid"
    assert pki.answers(crl) == REFUSED
    crl.refresh(NOW + day - CLOCK_SKEW + 60)
    assert crl.status(NOW + day) == "ok"
    assert pki.answers(crl, NOW + day) == (None, None)
    pki.write(pki.crl(4, this_update=CLOCK_SKEW - 60))
    crl.refresh(NOW)
    assert crl.status(NOW) == "ok"


@pytest.mark.anyio
async def test_ds4_a_changed_crl_is_parsed_off_the_event_loop_and_the_old_one_holds(
    pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DS-4: a large CRL (the cap is 64 MiB) takes seconds to parse; ``refresh_in_thread``
    parses it in a worker thread, and until it is parsed the CRL in force still decides
    (no window where nothing is revoked, nor where everything is refused)."""
    crl = loaded(pki, pki.crl(1))
    loop_thread = threading.get_ident()
    seen: list[tuple[int, tuple[str | None, str | None]]] = []
    parse = crl_module._parse

    def watched(path: Path, cas: tuple[x509.Certificate, ...], now: float) -> object:
        seen.append((threading.get_ident(), pki.answers(crl)))
        return parse(path, cas, now)

    monkeypatch.setattr(crl_module, "_parse", watched)
    pki.write(pki.crl(2, revoked=False))
    await crl.refresh_in_thread(NOW)
    assert [(thread != loop_thread, answers) for thread, answers in seen] == [(True, REVOKED)]
    assert pki.answers(crl) == (None, None)
    await crl.refresh_in_thread(NOW)  # unchanged: not parsed again
    assert len(seen) == 1
    pki.path.unlink()  # a missing file applies at once
    await crl.refresh_in_thread(NOW)
    assert crl.status(NOW) == "missing"
