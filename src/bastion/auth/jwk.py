"""JSON Web Keys (RFC 7517) and JWS signature checks (RFC 7518, 8037) for the allow-listed
asymmetric algorithms only.

``parse_jwks`` turns a JWKS document into public keys by ``kid``. Only signature keys are
kept: ``oct`` (HMAC) keys, encryption keys and unknown types are skipped, so an HMAC
algorithm can never find a key; RSA keys under 2048 bits are skipped too. ``verify`` checks
that the key fits the algorithm (RSA for RS/PS, the named curve for ES, Ed25519/Ed448 for
EdDSA, and the JWK's own ``alg`` if it has one) before it checks the signature.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from typing import Final, TypeAlias

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from bastion._types import JSONValue

__all__ = ["MAX_JWKS_KEYS", "Jwk", "JwksError", "PublicKey", "b64url_decode", "parse_jwks"]

logger = logging.getLogger(__name__)

MAX_JWKS_KEYS: Final = 100  # IdPs publish a handful; more is a mistake or an attack
MIN_RSA_BITS: Final = 2048  # RFC 7518 s3.3

PublicKey: TypeAlias = (
    rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
)

_B64URL: Final = re.compile(r"[A-Za-z0-9_-]*")
_HASHES: Final[dict[str, type[hashes.HashAlgorithm]]] = {
    "256": hashes.SHA256,
    "384": hashes.SHA384,
    "512": hashes.SHA512,
}
_CURVES: Final[dict[str, type[ec.EllipticCurve]]] = {
    "P-256": ec.SECP256R1,
    "P-384": ec.SECP384R1,
    "P-521": ec.SECP521R1,
}
_ES_CURVE: Final = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}
_JSON: Final = msgspec.json.Decoder()


class JwksError(ValueError):
    """The JWKS document is not usable (not JSON, no ``keys`` list, too many keys, a ``kid``
    used twice)."""


class Jwk(msgspec.Struct, frozen=True):
    kid: str
    key: PublicKey
    alg: str | None = None

    def verify(self, alg: str, signing_input: bytes, signature: bytes) -> bool:
        """True if ``signature`` is this key's ``alg`` signature over ``signing_input``;
        False if the key does not fit ``alg`` or the signature is wrong."""
        if self.alg is not None and self.alg != alg:
            return False
        try:
            return _verify(self.key, alg, signing_input, signature)
        except InvalidSignature:
            return False


def b64url_decode(text: str) -> bytes:
    """Strict base64url without padding (RFC 7515 s2).

    Raises:
        ValueError: other characters, padding, or an impossible length.
    """
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as exc:
        raise ValueError("not base64url") from exc


def parse_jwks(document: bytes) -> dict[str, Jwk]:
    """The usable signature keys of a JWKS document, by ``kid``.

    Raises:
        JwksError: not a JWKS, more than ``MAX_JWKS_KEYS`` keys, or a duplicate ``kid``.
    """
    try:
        data = _JSON.decode(document)
    except (msgspec.DecodeError, RecursionError) as exc:  # RecursionError: nested ~1000 deep
        raise JwksError("JWKS is not JSON") from exc
    entries = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise JwksError('JWKS has no "keys" list')
    if len(entries) > MAX_JWKS_KEYS:
        raise JwksError(f"JWKS has more than {MAX_JWKS_KEYS} keys")
    keys: dict[str, Jwk] = {}
    for entry in entries:
        jwk = _parse_key(entry)
        if jwk is None:
            continue
        if jwk.kid in keys:
            raise JwksError("JWKS uses a kid twice")
        keys[jwk.kid] = jwk
    return keys


def _parse_key(entry: JSONValue) -> Jwk | None:
    if not isinstance(entry, dict):
        return None
    kid, alg = entry.get("kid"), entry.get("alg")
    if not isinstance(kid, str) or not 0 < len(kid) <= 256:
        return None  # tokens select keys by kid only
    if entry.get("use", "sig") != "sig" or not isinstance(alg, str | None):
        return None
    ops = entry.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        return None
    try:
        key = _public_key(entry)
    except (ValueError, TypeError) as exc:
        logger.warning("JWKS key %r skipped: %s", kid[:64], exc)
        return None
    return None if key is None else Jwk(kid, key, alg)


def _public_key(entry: dict[str, JSONValue]) -> PublicKey | None:
    kty = entry.get("kty")
    if kty == "RSA":
        n, e = _uint(entry, "n"), _uint(entry, "e")
        key = rsa.RSAPublicNumbers(e, n).public_key()
        if key.key_size < MIN_RSA_BITS:
            raise ValueError(f"RSA key of {key.key_size} bits")
        return key
    if kty == "EC":
        kind = _CURVES.get(str(entry.get("crv")))
        if kind is None:
            raise ValueError("unsupported curve")
        curve = kind()
        size = (curve.key_size + 7) // 8
        x, y = _field(entry, "x"), _field(entry, "y")
        if len(x) != size or len(y) != size:
            raise ValueError("coordinate length does not fit the curve")
        numbers = ec.EllipticCurvePublicNumbers(
            int.from_bytes(x, "big"), int.from_bytes(y, "big"), curve
        )
        return numbers.public_key()  # refuses a point that is not on the curve
    if kty == "OKP":
        crv, x = entry.get("crv"), _field(entry, "x")
        if crv == "Ed25519":
            return ed25519.Ed25519PublicKey.from_public_bytes(x)
        if crv == "Ed448":
            return ed448.Ed448PublicKey.from_public_bytes(x)
        raise ValueError("unsupported OKP curve")
    return None  # "oct" (HMAC secrets) and anything else: never a verification key here


def _field(entry: dict[str, JSONValue], name: str) -> bytes:
    value = entry.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(f"missing {name}")
    return b64url_decode(value)


def _uint(entry: dict[str, JSONValue], name: str) -> int:
    return int.from_bytes(_field(entry, name), "big")


def _verify(key: PublicKey, alg: str, data: bytes, signature: bytes) -> bool:
    family, bits = alg[:2], alg[2:]
    if family in ("RS", "PS") and isinstance(key, rsa.RSAPublicKey) and bits in _HASHES:
        digest = _HASHES[bits]()
        pad: padding.AsymmetricPadding = (
            padding.PKCS1v15()
            if family == "RS"
            else padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)
        )
        key.verify(signature, data, pad, digest)
        return True
    if family == "ES" and isinstance(key, ec.EllipticCurvePublicKey):
        if _ES_CURVE.get(alg) != key.curve.name:
            return False
        size = (key.curve.key_size + 7) // 8
        if len(signature) != 2 * size:  # RFC 7518 s3.4: R || S, fixed width, not DER
            return False
        r, s = int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
        key.verify(encode_dss_signature(r, s), data, ec.ECDSA(_HASHES[bits]()))
        return True
    if alg == "EdDSA" and isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        key.verify(signature, data)
        return True
    return False
