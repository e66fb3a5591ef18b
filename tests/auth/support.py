"""Real keys, real signed JWTs and a real JWKS server on a loopback socket, for auth tests."""

from __future__ import annotations

import base64
import datetime
import json
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from tests.clock import FakeClock  # noqa: F401 - re-exported for the tests here

ISSUER = "https://idp.example.com"
RESOURCE = "https://gw.example.com/mcp"

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_OTHER = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
ED_KEY = ed25519.Ed25519PrivateKey.generate()

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _uint(n: int) -> str:
    return b64(n.to_bytes((n.bit_length() + 7) // 8, "big"))


def jwk(key: PrivateKey, kid: str, **extra: Any) -> dict[str, Any]:
    """The public JWK of ``key``."""
    if isinstance(key, rsa.RSAPrivateKey):
        numbers = key.public_key().public_numbers()
        return {"kty": "RSA", "kid": kid, "n": _uint(numbers.n), "e": _uint(numbers.e), **extra}
    if isinstance(key, ec.EllipticCurvePrivateKey):
        point = key.public_key().public_numbers()
        return {
            "kty": "EC",
            "kid": kid,
            "crv": "P-256",
            "x": b64(point.x.to_bytes(32, "big")),
            "y": b64(point.y.to_bytes(32, "big")),
            **extra,
        }
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"kty": "OKP", "kid": kid, "crv": "Ed25519", "x": b64(raw), **extra}


def jwks(*keys: dict[str, Any]) -> bytes:
    return json.dumps({"keys": list(keys)}).encode()


DEFAULT_JWKS = jwks(jwk(RSA_KEY, "rsa1"), jwk(EC_KEY, "ec1"), jwk(ED_KEY, "ed1"))


def sign(alg: str, key: PrivateKey | bytes | None, data: bytes) -> bytes:
    if alg == "none" or key is None:
        return b""
    if isinstance(key, bytes):  # HMAC, for attack tokens
        mac = hmac.HMAC(key, hashes.SHA256())
        mac.update(data)
        return mac.finalize()
    if isinstance(key, rsa.RSAPrivateKey):
        digest = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}[alg[2:]]
        pad: padding.AsymmetricPadding = (
            padding.PKCS1v15()
            if alg.startswith("RS")
            else padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)
        )
        return key.sign(data, pad, digest)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return key.sign(data)


def make_token(
    claims: dict[str, Any] | None = None,
    *,
    key: PrivateKey | bytes | None = RSA_KEY,
    alg: str = "RS256",
    kid: str | None = "rsa1",
    now: float = 1_800_000_000.0,
    header: dict[str, Any] | None = None,
    drop: tuple[str, ...] = (),
) -> str:
    """A signed JWT with sensible valid claims, overridden by ``claims``, minus ``drop``."""
    body: dict[str, Any] = {
        "iss": ISSUER,
        "aud": RESOURCE,
        "sub": "alice",
        "iat": int(now),
        "exp": int(now) + 300,
        "roles": ["user"],
    }
    body.update(claims or {})
    for name in drop:
        body.pop(name, None)
    head: dict[str, Any] = {"alg": alg, "typ": "at+jwt"}
    if kid is not None:
        head["kid"] = kid
    head.update(header or {})
    signing_input = f"{b64(json.dumps(head).encode())}.{b64(json.dumps(body).encode())}"
    return f"{signing_input}.{b64(sign(alg, key, signing_input.encode()))}"


@dataclass
class JwksServer:
    """What the loopback JWKS server serves and what it saw."""

    body: bytes = DEFAULT_JWKS
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    send_length: bool = True
    """False: no Content-Length; the body runs until the connection closes (HTTP/1.0)."""
    requests: list[str] = field(default_factory=list)
    url: str = ""
    hold: threading.Event | None = None
    """When given, every request hangs until it is set (an IdP that stopped answering)."""
    accept_encodings: list[str] = field(default_factory=list)


@contextmanager
def serve_jwks(
    state: JwksServer | None = None, *, tls: tuple[Path, Path] | None = None
) -> Iterator[JwksServer]:
    """A real HTTP(S) server on 127.0.0.1 answering every GET from ``state``."""
    state = state or JwksServer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests.append(self.path)
            state.accept_encodings.append(self.headers.get("Accept-Encoding", ""))
            if state.hold is not None:
                state.hold.wait(30)
            self.send_response(state.status)
            for name, value in state.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            if state.send_length:
                self.send_header("Content-Length", str(len(state.body)))
            self.end_headers()
            self.wfile.write(state.body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    scheme = "http"
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(tls[0]), str(tls[1]))
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    state.url = f"{scheme}://127.0.0.1:{server.server_address[1]}/jwks.json"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        if state.hold is not None:
            state.hold.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def self_signed(
    directory: Path, *, cn: str = "127.0.0.1", ip: str | None = "127.0.0.1"
) -> tuple[Path, Path, bytes]:
    """A self-signed certificate and key written to ``directory``; also the DER bytes."""
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    )
    if ip is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
            critical=False,
        )
    return _write_pair(directory, cn, builder.sign(key, hashes.SHA256()), key)


Factory = Callable[..., str]


@dataclass(frozen=True)
class Ca:
    """A certificate authority for mTLS tests: its certificate and key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def subject(self) -> str:
        """The subject as ``auth.mtls.accounts[].issuer`` names it (RFC 4514)."""
        return self.cert.subject.rfc4514_string()

    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


def make_ca(cn: str, *, org: str = "Example", signer: Ca | None = None) -> Ca:
    """A CA named ``CN=<cn>,O=<org>``, self-signed or (``signer``) an intermediate."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(signer.cert.subject if signer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(signer.key if signer else key, hashes.SHA256())
    )
    return Ca(cert, key)


def issue(ca: Ca, directory: Path, *, cn: str, file: str | None = None) -> tuple[Path, Path, bytes]:
    """A client certificate for ``cn`` signed by ``ca``, written to ``directory`` as
    ``<file or cn>.crt`` and ``.key``; also the DER bytes."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .sign(ca.key, hashes.SHA256())
    )
    return _write_pair(directory, file or cn, cert, key)


def issue_unreadable_subject(ca: Ca, directory: Path, *, file: str) -> tuple[Path, Path, bytes]:
    """A client certificate signed by ``ca`` (as ``issue``) whose subject CN is a T61String
    holding bytes 0x00 and 0xff: OpenSSL takes it in a TLS handshake, and ``cryptography``
    raises ValueError once its subject is read (red team AU-2)."""
    marker = b"QQQQQQQQ"
    crt, key, der = issue(ca, directory, cn=marker.decode(), file=file)
    tbs = x509.load_der_x509_certificate(der).tbs_certificate_bytes
    rest = der[der.index(tbs) + len(tbs) :]
    algorithm = rest[: 2 + rest[1]]  # the signature AlgorithmIdentifier, as issued
    bad = tbs.replace(b"\x0c\x08" + marker, b"\x14\x08\x00\xff" + marker[2:])
    signature = ca.key.sign(bad, ec.ECDSA(hashes.SHA256()))
    der = _der(0x30, bad + algorithm + _der(0x03, b"\x00" + signature))
    crt.write_bytes(ssl.DER_cert_to_PEM_cert(der).encode())
    return crt, key, der


def _der(tag: int, body: bytes) -> bytes:
    """One DER element: ``tag``, the definite length of ``body``, ``body``."""
    size = len(body)
    length = bytes([size]) if size < 0x80 else bytes([0x82]) + size.to_bytes(2, "big")
    return bytes([tag]) + length + body


def _write_pair(
    directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> tuple[Path, Path, bytes]:
    """``<stem>.crt`` and ``<stem>.key`` (PEM) in ``directory``; the paths and the DER."""
    cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)  # a TLS key others may read is refused (bastion serve)
    return cert_path, key_path, cert.public_bytes(serialization.Encoding.DER)


def make_crl(
    ca: Ca,
    revoked: tuple[bytes, ...] = (),
    *,
    next_update: float = 3600.0,
    this_update: float = -7200.0,
    now: float | None = None,
    key: Any = None,
    number: int | None = None,
    extensions: tuple[tuple[x509.ExtensionType, bool], ...] = (),
    entry_extensions: tuple[tuple[x509.ExtensionType, bool], ...] = (),
) -> bytes:
    """A PEM CRL of ``ca`` revoking the DER certificates ``revoked``; ``this_update`` and
    ``next_update`` seconds from ``now`` (default the clock's; negative: in the past); signed
    by ``key`` (default the CA's); with a CRLNumber ``number`` (default none), and the
    ``extensions`` (each with its criticality) on the CRL and ``entry_extensions`` on each
    revoked entry."""
    at = datetime.datetime.fromtimestamp(time.time() if now is None else now, datetime.UTC)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.cert.subject)
        .last_update(at + datetime.timedelta(seconds=this_update))
        .next_update(at + datetime.timedelta(seconds=next_update))
    )
    if number is not None:
        builder = builder.add_extension(x509.CRLNumber(number), critical=False)
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    for der in revoked:
        serial = x509.load_der_x509_certificate(der).serial_number
        entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(at)
        for extension, critical in entry_extensions:
            entry = entry.add_extension(extension, critical=critical)
        builder = builder.add_revoked_certificate(entry.build())
    crl = builder.sign(key or ca.key, hashes.SHA256())
    return crl.public_bytes(serialization.Encoding.PEM)
