"""JWT bearer validation (AU-6): every rule, with real signed tokens and a real JWKS file."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Final

import pytest
from cryptography.hazmat.primitives import serialization

from bastion.auth import JwtValidator, OidcSettings, Unauthenticated
from bastion.auth.settings import OidcGrants
from tests.auth.support import (
    DEFAULT_JWKS,
    EC_KEY,
    ED_KEY,
    ISSUER,
    RESOURCE,
    RSA_KEY,
    RSA_OTHER,
    JwksServer,
    b64,
    jwk,
    jwks,
    make_token,
    serve_jwks,
)

pytestmark = pytest.mark.anyio

NOW = 1_800_000_000.0


@pytest.fixture
def jwks_file(tmp_path: Path) -> Path:
    path = tmp_path / "jwks.json"
    path.write_bytes(DEFAULT_JWKS)
    return path


def validator(jwks_file: Path, **overrides: Any) -> JwtValidator:
    settings: dict[str, Any] = {
        "issuer": ISSUER,
        "jwks_file": str(jwks_file),
        "algorithms": ["RS256", "ES256", "EdDSA"],
    }
    settings.update(overrides)
    return JwtValidator.from_settings(OidcSettings(**settings), audience=RESOURCE)


async def refused(v: JwtValidator, token: str, reason: str, now: float = NOW) -> None:
    with pytest.raises(Unauthenticated) as caught:
        await v.validate(token, now)
    assert caught.value.reason == reason
    assert caught.value.presented


@pytest.mark.parametrize(
    ("alg", "key", "kid"),
    [("RS256", RSA_KEY, "rsa1"), ("ES256", EC_KEY, "ec1"), ("EdDSA", ED_KEY, "ed1")],
)
async def test_au6_valid_token_becomes_a_principal(
    jwks_file: Path, alg: str, key: Any, kid: str
) -> None:
    v = validator(jwks_file)
    token = make_token(
        {"auth_time": NOW - 100, "roles": ["user", "ops"]}, key=key, alg=alg, kid=kid
    )
    principal = await v.validate(token, NOW)
    assert principal.id == f"jwt:{ISSUER}#alice"
    assert principal.credential_id == principal.id  # stable across refreshed tokens (SE-2)
    assert principal.method == "jwt"
    assert principal.roles == ("user", "ops")
    assert principal.authenticated_at == NOW - 100
    assert principal.expires_at == NOW + 300 + 30  # exp plus the default leeway: accepted till then
    assert principal.claims["sub"] == "alice"


async def test_az5_the_authentication_time_is_auth_time_else_iat_else_none(
    jwks_file: Path,
) -> None:
    """AZ-5 step-up: a token without ``auth_time`` dates the authentication by ``iat``; one
    with neither carries no time, so it can never count as a recent authentication."""
    v = validator(jwks_file)
    assert (await v.validate(make_token(), NOW)).authenticated_at == NOW
    undated = await v.validate(make_token(drop=("iat",)), NOW)
    assert undated.authenticated_at is None


async def test_au6_ps256_when_allowed(jwks_file: Path) -> None:
    v = validator(jwks_file, algorithms=["PS256"])
    assert (await v.validate(make_token(alg="PS256"), NOW)).id.endswith("#alice")
    await refused(v, make_token(alg="RS256"), "algorithm-not-allowed")


async def test_au6_tampered_signature_is_refused(jwks_file: Path) -> None:
    v = validator(jwks_file)
    head, body, sig = make_token().split(".")
    forged = b64(
        json.dumps({"iss": ISSUER, "aud": RESOURCE, "sub": "admin", "exp": NOW + 300}).encode()
    )
    await refused(v, f"{head}.{forged}.{sig}", "bad-signature")
    flipped = sig[:-2] + ("A" if sig[-2] != "A" else "B") + sig[-1]
    await refused(v, f"{head}.{body}.{flipped}", "bad-signature")
    # Signed by a key that is not in the JWKS, under a kid that is.
    await refused(v, make_token(key=RSA_OTHER), "bad-signature")


async def test_au6_alg_none_is_refused(jwks_file: Path) -> None:
    v = validator(jwks_file)
    await refused(v, make_token(alg="none", key=None), "algorithm-not-allowed")
    await refused(v, make_token(alg="None", key=None), "algorithm-not-allowed")


async def test_au6_hs256_keyed_with_the_rsa_public_key_is_refused(jwks_file: Path) -> None:
    """Key confusion: an HMAC token whose secret is the RSA public key (PEM and DER)."""
    v = validator(jwks_file)
    public = RSA_KEY.public_key()
    for secret in (
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1),
    ):
        await refused(v, make_token(alg="HS256", key=secret), "algorithm-not-allowed")


async def test_au6_algorithm_not_in_the_configured_list(jwks_file: Path) -> None:
    v = validator(jwks_file, algorithms=["RS256"])
    await refused(v, make_token(alg="ES256", key=EC_KEY, kid="ec1"), "algorithm-not-allowed")


async def test_au6_algorithm_must_fit_the_key(jwks_file: Path) -> None:
    v = validator(jwks_file)
    # An RS256 header naming the EC key: the RSA signature cannot be checked with it.
    await refused(v, make_token(kid="ec1"), "bad-signature")
    await refused(v, make_token(alg="ES256", key=EC_KEY, kid="rsa1"), "bad-signature")


async def test_au6_ecdsa_signature_in_der_form_is_refused(jwks_file: Path) -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    v = validator(jwks_file)
    head, body, _ = make_token(alg="ES256", key=EC_KEY, kid="ec1").split(".")
    der = EC_KEY.sign(f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256()))
    await refused(v, f"{head}.{body}.{b64(der)}", "bad-signature")


@pytest.mark.parametrize(
    "iss",
    [
        "https://evil.example.com",
        f"{ISSUER}/",
        f"{ISSUER}.evil.com",
        "https://idp.example",
        ISSUER.upper(),
    ],
)
async def test_au6_issuer_must_match_exactly(jwks_file: Path, iss: str) -> None:
    await refused(validator(jwks_file), make_token({"iss": iss}), "wrong-issuer")


async def test_au6_missing_issuer(jwks_file: Path) -> None:
    await refused(validator(jwks_file), make_token(drop=("iss",)), "wrong-issuer")


@pytest.mark.parametrize(
    "aud", ["https://other.example.com/mcp", f"{RESOURCE}/", [], ["https://a"], None, 5]
)
async def test_au6_wrong_audience_is_refused(jwks_file: Path, aud: Any) -> None:
    """No token passthrough: a token minted for another resource is refused."""
    await refused(validator(jwks_file), make_token({"aud": aud}), "wrong-audience")


async def test_au6_audience_list_containing_ours_is_accepted(jwks_file: Path) -> None:
    token = make_token({"aud": ["https://other", RESOURCE]})
    assert (await validator(jwks_file).validate(token, NOW)).method == "jwt"


async def test_au6_expired_beyond_leeway_is_refused(jwks_file: Path) -> None:
    v = validator(jwks_file, leeway=30)
    token = make_token()  # exp = NOW + 300
    assert await v.validate(token, NOW + 329)
    await refused(v, token, "expired", NOW + 330)


async def test_au6_missing_or_non_numeric_exp_is_refused(jwks_file: Path) -> None:
    v = validator(jwks_file)
    await refused(v, make_token(drop=("exp",)), "missing-exp")
    await refused(v, make_token({"exp": str(NOW + 300)}), "missing-exp")
    await refused(v, make_token({"exp": True}), "missing-exp")


async def test_au6_nbf_in_the_future_beyond_leeway_is_refused(jwks_file: Path) -> None:
    v = validator(jwks_file, leeway=10)
    assert await v.validate(make_token({"nbf": NOW + 10}), NOW)
    await refused(v, make_token({"nbf": NOW + 11}), "not-yet-valid")


async def test_au6_iat_in_the_future_beyond_leeway_is_refused(jwks_file: Path) -> None:
    v = validator(jwks_file, leeway=0)
    await refused(v, make_token({"iat": NOW + 5}), "issued-in-future")


async def test_au6_unknown_crit_is_refused(jwks_file: Path) -> None:
    v = validator(jwks_file)
    token = make_token(header={"crit": ["exp"], "exp": 1})
    await refused(v, token, "unknown-crit")
    await refused(v, make_token(header={"crit": []}), "unknown-crit")


async def test_au6_kid_not_in_the_jwks_is_refused(jwks_file: Path) -> None:
    v = validator(jwks_file)
    await refused(v, make_token(kid="nope"), "unknown-kid")
    await refused(v, make_token(kid=None), "unknown-kid")


async def test_au6_jku_x5u_jwk_x5c_headers_are_never_used(jwks_file: Path) -> None:
    """A token signed by the attacker's key, naming a JWKS URL the attacker serves (on a
    real socket) and embedding that key: nothing is fetched, and the token is refused."""
    attacker = jwk(RSA_OTHER, "evil")
    with serve_jwks(JwksServer(body=jwks(attacker))) as evil:
        v = validator(jwks_file)
        header = {"jku": evil.url, "x5u": evil.url, "jwk": attacker}
        await refused(v, make_token(key=RSA_OTHER, kid="evil", header=header), "unknown-kid")
        # Same with a kid that exists: the embedded key is ignored, the JWKS key decides.
        await refused(v, make_token(key=RSA_OTHER, kid="rsa1", header=header), "bad-signature")
        assert evil.requests == []


async def test_typ_at_jwt_and_jwt_accepted_others_refused(jwks_file: Path) -> None:
    v = validator(jwks_file)
    for typ in ("at+jwt", "JWT", "application/at+jwt"):
        assert await v.validate(make_token(header={"typ": typ}), NOW)
    await refused(v, make_token(header={"typ": "secevent+jwt"}), "bad-typ")
    strict = validator(jwks_file, require_typ=True)
    head = {"alg": "RS256", "kid": "rsa1"}
    token = make_token(header=head)
    assert await strict.validate(token, NOW)
    no_typ = _without_typ(token)
    await refused(strict, no_typ, "bad-typ")
    assert await v.validate(no_typ, NOW)


def _without_typ(token: str) -> str:
    from tests.auth.support import sign

    _, body, _ = token.split(".")
    head = b64(json.dumps({"alg": "RS256", "kid": "rsa1"}).encode())
    return f"{head}.{body}.{b64(sign('RS256', RSA_KEY, f'{head}.{body}'.encode()))}"


@pytest.mark.parametrize(
    "token",
    ["", "a.b", "a.b.c.d.e", "!!!.e30.", "e30.e30.e30", "eyJhbGciOiJSUzI1NiJ9=.e30.", "W10.e30."],
)
async def test_malformed_tokens(jwks_file: Path, token: str) -> None:
    with pytest.raises(Unauthenticated) as caught:
        await validator(jwks_file).validate(token, NOW)
    assert caught.value.reason in {"malformed", "algorithm-not-allowed"}


async def test_subject_is_required(jwks_file: Path) -> None:
    await refused(validator(jwks_file), make_token(drop=("sub",)), "missing-subject")


@pytest.mark.parametrize("sub", ["a\nb", "\x1b]0;title\x07", "eve\u202e", "x\x00"])
async def test_a_subject_that_is_not_printable_is_refused(jwks_file: Path, sub: str) -> None:
    """IN-5, AD-2 (red-team H1): the subject becomes the principal id, shown in logs and by
    ``audit tail``; control, line-break and format characters there are refused."""
    await refused(validator(jwks_file), make_token({"sub": sub}), "bad-subject")


async def test_roles_claim_as_string_or_dotted_path(jwks_file: Path) -> None:
    v = validator(jwks_file, roles_claim="realm_access.roles")
    token = make_token({"realm_access": {"roles": ["ops", 7, "user"]}})
    assert (await v.validate(token, NOW)).roles == ("ops", "user")
    v = validator(jwks_file, roles_claim="scope")
    assert (await v.validate(make_token({"scope": "read write"}), NOW)).roles == ("read", "write")
    assert (await v.validate(make_token({"scope": 5}), NOW)).roles == ()


async def test_az1_az6_a_scope_is_a_list_between_ascii_spaces_and_only_that(
    jwks_file: Path,
) -> None:
    """OAuth's ``scope`` (and ``scp``) is values between single ASCII spaces (RFC 9068):
    each is a role held for sure, ``grants`` included. Other whitespace does not split it
    for sure: ``x\u00a0admins`` only holds the unsure word ``admins``, for deny rules."""
    v = validator(jwks_file, roles_claim="scope", grants=OidcGrants(admin=["gw.admin"]))
    held = await v.validate(make_token({"scope": "openid gw.admin"}), NOW)
    assert held.roles == ("openid", "gw.admin", "admin")
    odd = await v.validate(make_token({"scope": "x\u00a0gw.admin"}), NOW)
    assert odd.roles == ("x\u00a0gw.admin",)
    assert odd.unsure_roles == ("x", "gw.admin")
    v = validator(jwks_file, roles_claim="ext.scp")
    assert (await v.validate(make_token({"ext": {"scp": "a b"}}), NOW)).roles == ("a", "b")


async def test_az1_roles_claim_may_be_a_claim_name_that_holds_dots(jwks_file: Path) -> None:
    """Auth0 namespaces custom claims by URL: the name itself holds dots, and the policy's
    claim bindings find it at the same path (one reading for both, ``bastion._claims``)."""
    v = validator(jwks_file, roles_claim="https://gw.example.com/roles")
    token = make_token({"https://gw.example.com/roles": ["dev", "ops"]})
    assert (await v.validate(token, NOW)).roles == ("dev", "ops")
    v = validator(jwks_file, roles_claim="resource_access.my.app.roles")
    token = make_token({"resource_access": {"my.app": {"roles": ["dev"]}}})
    assert (await v.validate(token, NOW)).roles == ("dev",)


async def test_az5_reserved_and_admin_roles_never_come_from_the_token_itself(
    jwks_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``local`` (the built-in policy's) is dropped; so are ``admin`` and ``auditor``, which
    open the admin API: an IdP group that happens to be named so grants nothing."""
    token = make_token({"roles": ["local", "admin", "dev", "auditor", "admin"]})
    v = validator(jwks_file)
    with caplog.at_level(logging.WARNING, logger="bastion.auth.roles"):
        assert (await v.validate(token, NOW)).roles == ("dev",)
        await v.validate(token, NOW)
    warnings = [r.getMessage() for r in caplog.records]
    assert sorted(warnings) == sorted(
        f"a JWT of {ISSUER}: role {r!r} is reserved and not taken from it"
        for r in ("local", "admin", "auditor")
    )  # once per role, not per request


async def test_az5_admin_roles_come_from_the_configured_grants_only(jwks_file: Path) -> None:
    grants = {"admin": ["platform-admins"], "auditor": ["sec", "local"]}
    v = validator(jwks_file, grants=OidcGrants(**grants))
    token = make_token({"roles": ["platform-admins", "admin", "dev"]})
    assert (await v.validate(token, NOW)).roles == ("platform-admins", "dev", "admin")
    # A token role mapped to a grant still never passes through as a reserved role.
    assert (await v.validate(make_token({"roles": ["local"]}), NOW)).roles == ("auditor",)
    v = validator(jwks_file, grants=OidcGrants(admin=["admin"]))
    assert (await v.validate(make_token({"roles": ["admin"]}), NOW)).roles == ("admin",)


async def test_configured_audience_overrides_the_resource(jwks_file: Path) -> None:
    settings = OidcSettings(issuer=ISSUER, jwks_file=str(jwks_file), audience="api://gw")
    v = JwtValidator.from_settings(settings, audience="api://gw")
    assert await v.validate(make_token({"aud": "api://gw"}), NOW)
    await refused(v, make_token(), "wrong-audience")


DEEP: Final = 1100  # past msgspec's own ~1000-level stop, and well inside the 8 KiB cap


@pytest.mark.parametrize(
    "header", ["[" * DEEP + "]" * DEEP, '{"a":' * DEEP + "1" + "}" * DEEP], ids=["array", "object"]
)
async def test_in2_deeply_nested_header_is_malformed_not_a_crash(
    jwks_file: Path, header: str
) -> None:
    """IN-2/AU-2: the parser's recursion limit is a malformed token like any other."""
    token = f"{b64(header.encode())}.e30.{b64(b'sig')}"
    await refused(validator(jwks_file), token, "malformed")


async def test_in2_deeply_nested_signed_claims_are_malformed_not_a_crash(
    jwks_file: Path,
) -> None:
    from tests.auth.support import sign

    head = b64(json.dumps({"alg": "RS256", "kid": "rsa1", "typ": "at+jwt"}).encode())
    body = b64(("[" * DEEP + "]" * DEEP).encode())
    token = f"{head}.{body}.{b64(sign('RS256', RSA_KEY, f'{head}.{body}'.encode()))}"
    await refused(validator(jwks_file), token, "malformed")
