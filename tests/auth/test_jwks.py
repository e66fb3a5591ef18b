"""The JWKS source (AU-7): a real HTTPS server with a self-signed certificate, redirects,
size caps, the TTL cache and the rate-limited refresh on an unknown ``kid``."""

from __future__ import annotations

import gzip
import logging
import threading
import time
import tracemalloc
from pathlib import Path

import anyio
import pytest

from bastion.auth import JwksCache, JwtValidator, OidcSettings, Unauthenticated
from bastion.auth.jwk import JwksError, parse_jwks
from bastion.auth.jwks import MAX_JWKS_BYTES, FileJwks, UrlJwks
from bastion.errors import ConfigError
from tests.auth.support import (
    EC_KEY,
    ISSUER,
    RESOURCE,
    RSA_KEY,
    RSA_OTHER,
    FakeClock,
    JwksServer,
    jwk,
    jwks,
    make_token,
    self_signed,
    serve_jwks,
)

pytestmark = pytest.mark.anyio

NOW = 1_800_000_000.0
HANG: float = 2.0  # the fetch timeout of the tests with an IdP that stopped answering


class MovableClock:
    """Real monotonic time that a test can move forward (to lapse a TTL without sleeping)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


def url_validator(url: str, clock: FakeClock, *, ca_file: str | None = None) -> JwtValidator:
    settings = OidcSettings(
        issuer=ISSUER, jwks_url=url, ca_file=ca_file, jwks_ttl=300, jwks_refresh_interval=30
    )
    return JwtValidator.from_settings(settings, audience=RESOURCE, clock=clock)


async def reason(v: JwtValidator, token: str) -> str:
    with pytest.raises(Unauthenticated) as caught:
        await v.validate(token, NOW)
    return caught.value.reason


async def test_au7_https_jwks_with_a_configured_ca(tmp_path: Path) -> None:
    cert, key, _ = self_signed(tmp_path)
    with serve_jwks(tls=(cert, key)) as server:
        v = url_validator(server.url, FakeClock(), ca_file=str(cert))
        try:
            assert (await v.validate(make_token(), NOW)).id == f"jwt:{ISSUER}#alice"
        finally:
            await v.aclose()
        assert server.url.startswith("https://") and server.requests == ["/jwks.json"]


async def test_au7_untrusted_https_certificate_gives_no_keys(tmp_path: Path) -> None:
    cert, key, _ = self_signed(tmp_path)
    with serve_jwks(tls=(cert, key)) as server:
        v = url_validator(server.url, FakeClock())  # system CAs only
        try:
            assert await reason(v, make_token()) == "jwks-unavailable"
        finally:
            await v.aclose()


async def test_au7_redirect_is_not_followed() -> None:
    with (
        serve_jwks() as target,
        serve_jwks(JwksServer(status=302, headers={"Location": ""}, body=b"")) as redirector,
    ):
        redirector.headers["Location"] = target.url
        v = url_validator(redirector.url, FakeClock())
        try:
            assert await reason(v, make_token()) == "jwks-unavailable"
        finally:
            await v.aclose()
        assert redirector.requests == ["/jwks.json"]
        assert target.requests == []


async def test_au7_oversized_jwks_is_refused() -> None:
    padding = {"kty": "oct", "kid": "pad", "k": "A" * (MAX_JWKS_BYTES + 1)}
    with serve_jwks(JwksServer(body=jwks(jwk(RSA_KEY, "rsa1"), padding))) as server:
        v = url_validator(server.url, FakeClock())
        try:
            assert await reason(v, make_token()) == "jwks-unavailable"
        finally:
            await v.aclose()


async def test_au7_oversized_body_without_content_length_is_cut_off() -> None:
    body = b'{"keys":[' + b" " * (MAX_JWKS_BYTES + 10) + b"]}"
    with serve_jwks(JwksServer(body=body, send_length=False)) as server:
        v = url_validator(server.url, FakeClock())
        try:
            assert await reason(v, make_token()) == "jwks-unavailable"
        finally:
            await v.aclose()


async def test_au7_ds4_gzip_bomb_is_refused_with_bounded_memory() -> None:
    """AU-7, DS-4: the JWKS is asked for uncompressed and a compressed answer is refused
    without being inflated: a ~32 KiB gzip body of 32 MiB allocates nothing near that."""
    bomb = gzip.compress(b'{"keys":[' + b" " * (32 << 20) + b"]}", 9)
    with serve_jwks(JwksServer(body=bomb, headers={"Content-Encoding": "gzip"})) as server:
        v = url_validator(server.url, FakeClock())
        tracemalloc.start()
        try:
            assert await reason(v, make_token()) == "jwks-unavailable"
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
            await v.aclose()
        assert peak < 4 * MAX_JWKS_BYTES
        assert server.accept_encodings == ["identity"]


async def test_au7_ds2_one_fetch_in_flight_and_a_cached_kid_never_waits() -> None:
    """AU-7, DS-2: the IdP hangs and the TTL has lapsed. Ten tokens with unknown kids share
    one fetch (each waits at most for it) instead of queueing a fetch each; a token whose
    kid is cached is answered from the cache while that fetch is still in flight."""
    clock = MovableClock()
    with serve_jwks() as server:
        cache = JwksCache(
            UrlJwks(server.url, timeout=HANG), ttl=10, refresh_interval=1, clock=clock
        )
        found: dict[int, object] = {}

        async def unknown(i: int) -> None:
            found[i] = await cache.get(f"x{i}")

        try:
            assert await cache.get("rsa1") is not None
            server.hold = threading.Event()  # the IdP stops answering
            clock.advance(11)
            with anyio.fail_after(3 * HANG):
                async with anyio.create_task_group() as tg:
                    for i in range(10):
                        tg.start_soon(unknown, i)
                    while len(server.requests) < 2:  # the refresh has reached the IdP
                        await anyio.sleep(0.01)
                    started = time.monotonic()
                    assert await cache.get("rsa1") is not None
                    waited = time.monotonic() - started
            assert waited < HANG / 4
            assert found == dict.fromkeys(range(10))
            assert len(server.requests) == 2  # the first load and one refresh for all ten
        finally:
            await cache.aclose()


async def test_au7_ds2_stale_keys_are_refreshed_in_the_background() -> None:
    """AU-7, DS-2: with ``run`` going, a token whose kid is cached is answered at once past
    the TTL even if the IdP hangs; the refresh runs beside it and its keys apply after."""
    clock = MovableClock()
    with serve_jwks() as server:
        cache = JwksCache(
            UrlJwks(server.url, timeout=HANG), ttl=10, refresh_interval=1, clock=clock
        )
        try:
            async with anyio.create_task_group() as tg:
                await tg.start(cache.run)
                assert await cache.get("rsa1") is not None
                hold = server.hold = threading.Event()
                server.body = jwks(jwk(RSA_OTHER, "rsa2"))  # rsa1 withdrawn by the IdP
                clock.advance(11)
                with anyio.fail_after(HANG / 4):
                    assert await cache.get("rsa1") is not None
                    while len(server.requests) < 2:
                        await anyio.sleep(0.01)
                    assert await cache.get("rsa1") is not None  # still not waiting
                hold.set()
                with anyio.fail_after(HANG):
                    while await cache.get("rsa1") is not None:
                        await anyio.sleep(0.01)
                assert await cache.get("rsa2") is not None
                assert len(server.requests) == 2
                tg.cancel_scope.cancel()
        finally:
            await cache.aclose()


async def test_au7_unknown_kid_refresh_is_rate_limited() -> None:
    clock = FakeClock()
    with serve_jwks() as server:
        v = url_validator(server.url, clock)
        try:
            assert await v.validate(make_token(), NOW)
            assert len(server.requests) == 1
            for _ in range(20):  # a flood of random kids: one refetch at most per interval
                assert await reason(v, make_token(kid="random")) == "unknown-kid"
            assert len(server.requests) == 1  # the first fetch was < 30 s ago
            clock.advance(31)
            assert await reason(v, make_token(kid="random")) == "unknown-kid"
            assert await reason(v, make_token(kid="random2")) == "unknown-kid"
            assert len(server.requests) == 2
            # The IdP rotates in a new key: after the interval, its kid triggers a refresh.
            server.body = jwks(jwk(RSA_KEY, "rsa1"), jwk(RSA_OTHER, "rsa2"))
            clock.advance(31)
            assert await v.validate(make_token(key=RSA_OTHER, kid="rsa2"), NOW)
            assert len(server.requests) == 3
        finally:
            await v.aclose()


async def test_au7_ttl_expiry_refetches_and_a_failed_refresh_keeps_old_keys() -> None:
    clock = FakeClock()
    with serve_jwks() as server:
        v = url_validator(server.url, clock)
        try:
            assert await v.validate(make_token(), NOW)
            clock.advance(299)
            assert await v.validate(make_token(), NOW)
            assert len(server.requests) == 1
            clock.advance(2)
            server.status = 500
            assert await v.validate(make_token(), NOW)  # refresh failed; previous keys kept
            assert len(server.requests) == 2
            server.status = 200
            server.body = jwks(jwk(EC_KEY, "ec1"))  # rsa1 withdrawn by the IdP
            clock.advance(31)
            assert await reason(v, make_token()) == "unknown-kid"
            assert len(server.requests) == 3
        finally:
            await v.aclose()


async def test_jwks_file_is_reread_after_the_ttl(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    path.write_bytes(jwks(jwk(RSA_KEY, "rsa1")))
    clock = FakeClock()
    cache = JwksCache(FileJwks(path), ttl=60, refresh_interval=10, clock=clock)
    assert await cache.get("rsa1") is not None
    path.write_bytes(jwks(jwk(RSA_OTHER, "rsa2")))
    assert await cache.get("rsa1") is not None
    clock.advance(61)
    assert await cache.get("rsa1") is None
    assert await cache.get("rsa2") is not None
    assert cache.fetches == 2


def test_au7_a_jwks_file_others_may_change_is_refused(tmp_path: Path) -> None:
    """Red-team w: whoever may write the JWKS file mints tokens, admin ones included."""
    path = tmp_path / "jwks.json"
    path.write_bytes(jwks(jwk(RSA_KEY, "rsa1")))
    path.chmod(0o666)
    with pytest.raises(ConfigError) as info:
        FileJwks(path)
    assert str(info.value) == (
        f"{path}: others may change the JWKS (oidc.jwks_file): {path} is writable by every"
        f" user; run: chmod o-w {path}"
    )


def test_au7_a_jwks_ca_file_others_may_change_is_refused(tmp_path: Path) -> None:
    cert, _, _ = self_signed(tmp_path)
    cert.chmod(0o666)
    with pytest.raises(ConfigError, match="others may change the CAs of the JWKS URL"):
        UrlJwks("https://idp.example.com/jwks", ca_file=str(cert))


async def test_au7_a_jwks_file_others_may_now_change_is_not_read_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The keys read while the file was trusted stay in force; a key added once others may
    write it is not taken, and the log names the fix; once fixed, it is read again."""
    path = tmp_path / "jwks.json"
    path.write_bytes(jwks(jwk(RSA_KEY, "rsa1")))
    clock = FakeClock()
    cache = JwksCache(FileJwks(path), ttl=60, refresh_interval=10, clock=clock)
    assert await cache.get("rsa1") is not None
    path.chmod(0o666)
    path.write_bytes(jwks(jwk(RSA_KEY, "rsa1"), jwk(RSA_OTHER, "evil")))
    clock.advance(11)
    with caplog.at_level(logging.WARNING, logger="bastion.auth.jwks"):
        assert await cache.get("evil") is None
    assert await cache.get("rsa1") is not None
    assert [r.getMessage() for r in caplog.records] == [
        f"JWKS refresh failed (keeping the previous keys): {path}: others may change the"
        f" JWKS: {path} is writable by every user; run: chmod o-w {path}"
    ]
    path.chmod(0o644)
    clock.advance(11)
    assert await cache.get("evil") is not None


async def test_jwks_hmac_and_small_rsa_keys_are_never_used(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    path = tmp_path / "jwks.json"
    path.write_bytes(
        jwks(
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            jwk(small, "small"),
            jwk(RSA_KEY, "enc", use="enc"),
        )
    )
    cache = JwksCache(FileJwks(path), ttl=60, refresh_interval=10, clock=FakeClock())
    for kid in ("hmac", "small", "enc"):
        assert await cache.get(kid) is None


def test_au7_plain_http_only_for_loopback() -> None:
    import msgspec

    with pytest.raises(msgspec.ValidationError, match="https"):
        msgspec.convert({"issuer": ISSUER, "jwks_url": "http://idp.example.com/jwks"}, OidcSettings)
    for url in ("http://127.0.0.1:8/j", "http://localhost/j", "http://[::1]/j"):
        assert msgspec.convert({"issuer": ISSUER, "jwks_url": url}, OidcSettings).jwks_url == url


def test_in2_deeply_nested_jwks_is_refused_not_a_crash() -> None:
    """A JWKS URL answering JSON nested past the parser's limit is a bad JWKS (kept keys stay)."""
    with pytest.raises(JwksError, match="not JSON"):
        parse_jwks(b'{"keys":' + b"[" * 1100 + b"]" * 1100 + b"}")
