"""Files that grant power, checked as the policy file is (AU-6, AU-7; red team w, finding 4):
``bastion serve`` refuses, before anything starts (exit 78, the fix named), a configuration
file, a ``jwks_file``, a TLS certificate or key, or a ``client_ca``/``client_crl`` that a user
other than root or the gateway's own could change, and a TLS key that others may read.
Whoever may write the JWKS mints admin tokens (``oidc.grants``); whoever may write the
configuration picks the commands the gateway runs. A JWKS file that becomes writable by
others while the gateway runs is not read again: the keys read before stay in force."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.auth.support import RSA_KEY, RSA_OTHER, jwk, jwks, make_ca, make_crl, make_token
from tests.auth.support import self_signed as make_self_signed
from tests.support import BASTION, free_port, stop_process, wait_for_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

EX_CONFIG = 78
ISSUER = "https://idp.example"


def serve(config: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(BASTION), "serve", "--no-register", "-c", str(config), "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=out,
        )


def refused_at_start(config: Path) -> subprocess.CompletedProcess[str]:
    """``bastion serve -c config``, which must end at once (a refusal), not serve."""
    return subprocess.run(
        [str(BASTION), "serve", "--no-register", "-c", str(config), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_au6_a_configuration_every_user_may_write_is_refused_and_runs_nothing(
    tmp_path: Path,
) -> None:
    """Red-team w: a 0666 bastion.yaml was used, and its server's ``sh -c`` ran as root."""
    proof = tmp_path / "ran"
    config = tmp_path / "bastion.yaml"
    config.write_text(
        f"servers:\n  tool:\n    command: /bin/sh\n"
        f'    args: [-c, "id -u > {proof}; sleep 30"]\n'
        f"audit: {{db: {tmp_path / 'audit.db'}}}\n"
    )
    config.chmod(0o666)
    result = refused_at_start(config)
    assert result.returncode == EX_CONFIG, result.stderr
    assert result.stderr.strip() == (
        f"bastion: {config}: others may change the configuration: {config} is writable by"
        f" every user; run: chmod o-w {config}"
    )
    assert not proof.exists()


def _oidc_config(tmp_path: Path, port: int, jwks_file: Path) -> Path:
    config = tmp_path / "bastion.yaml"
    config.write_text(
        f"auth:\n  resource: http://127.0.0.1:{port}/mcp\n  api_keys: {{enabled: false}}\n"
        f"  oidc: {{issuer: {ISSUER}, jwks_file: {jwks_file}, jwks_refresh_interval: 5,"
        f" roles_claim: groups, grants: {{admin: [ops]}}}}\n"
        f"audit: {{db: {tmp_path / 'audit.db'}}}\n"
    )
    return config


def test_au7_a_jwks_file_every_user_may_write_is_refused_at_start(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    path.write_bytes(jwks(jwk(RSA_KEY, "idp-1")))
    path.chmod(0o666)
    result = refused_at_start(_oidc_config(tmp_path, free_port(), path))
    assert result.returncode == EX_CONFIG, result.stderr
    assert result.stderr.strip() == (
        f"bastion: {path}: others may change the JWKS (oidc.jwks_file): {path} is writable"
        f" by every user; run: chmod o-w {path}"
    )


def _admin_token(port: int, key: object, kid: str) -> str:
    now = time.time()
    claims = {"iss": ISSUER, "aud": f"http://127.0.0.1:{port}/mcp", "sub": "mallory"}
    return make_token({**claims, "groups": ["ops"]}, key=key, kid=kid, now=now)  # type: ignore[arg-type]


@contextlib.contextmanager
def _running(config: Path, port: int, log: Path) -> Iterator[str]:
    proc = serve(config, port, log)
    try:
        wait_for_port(port, timeout=60)
        yield f"http://127.0.0.1:{port}/api/v1/upstreams"
    finally:
        stop_process(proc)


def test_au7_a_jwks_file_made_writable_while_running_mints_no_admin_token(
    tmp_path: Path,
) -> None:
    """Red-team w (jwks_forge.py): with the JWKS file writable by every user, anyone added a
    key of their own and got 200 from the admin API with a token it signed (an unknown kid
    makes the gateway read the file again). Such a file is no longer read: the keys read
    while it was trusted stay in force, and the log names the fix."""
    port = free_port()
    path = tmp_path / "jwks.json"
    path.write_bytes(jwks(jwk(RSA_KEY, "idp-1")))
    log = tmp_path / "serve.log"
    with _running(_oidc_config(tmp_path, port, path), port, log) as upstreams:
        idp = {"authorization": f"Bearer {_admin_token(port, RSA_KEY, 'idp-1')}"}
        assert httpx.get(upstreams, headers=idp, timeout=10).status_code == 200
        # Any local user, once the file is 0666: their own key beside the IdP's.
        path.chmod(0o666)
        path.write_bytes(jwks(jwk(RSA_KEY, "idp-1"), jwk(RSA_OTHER, "evil")))
        forged = {"authorization": f"Bearer {_admin_token(port, RSA_OTHER, 'evil')}"}
        refusal = f"others may change the JWKS: {path} is writable by every user"
        deadline = time.monotonic() + 30  # the unknown kid's refetch: >= 5 s after the last
        while refusal not in log.read_text() and time.monotonic() < deadline:
            assert httpx.get(upstreams, headers=forged, timeout=10).status_code == 401
            time.sleep(0.5)
        assert httpx.get(upstreams, headers=forged, timeout=10).status_code == 401
        assert httpx.get(upstreams, headers=idp, timeout=10).status_code == 200
    text = log.read_text()
    assert refusal in text and f"run: chmod o-w {path}" in text, text


def _tls_config(tmp_path: Path, tls: str, auth: str = "") -> Path:
    config = tmp_path / "bastion.yaml"
    config.write_text(
        f"gateway:\n  tls: {{{tls}}}\n{auth}audit: {{db: {tmp_path / 'audit.db'}}}\nservers: {{}}\n"
    )
    return config


def test_a_tls_key_others_may_read_is_refused_at_start(tmp_path: Path) -> None:
    cert, key, _ = make_self_signed(tmp_path)
    key.chmod(0o644)
    result = refused_at_start(_tls_config(tmp_path, f"cert_file: {cert}, key_file: {key}"))
    assert result.returncode == EX_CONFIG, result.stderr
    assert result.stderr.strip() == (
        f"bastion: {key}: every user may read the TLS key (gateway.tls.key_file) (mode 0644);"
        f" run: chmod 600 {key}"
    )


def test_a_tls_certificate_every_user_may_write_is_refused_at_start(tmp_path: Path) -> None:
    cert, key, _ = make_self_signed(tmp_path)
    cert.chmod(0o666)
    result = refused_at_start(_tls_config(tmp_path, f"cert_file: {cert}, key_file: {key}"))
    assert result.returncode == EX_CONFIG, result.stderr
    assert f"{cert} is writable by every user; run: chmod o-w {cert}" in result.stderr


@pytest.mark.parametrize("loose", ["client_ca", "client_crl"])
def test_au1_client_cas_or_crl_every_user_may_write_are_refused_at_start(
    tmp_path: Path, loose: str
) -> None:
    """Whoever may write ``client_ca`` mints a certificate for any mTLS account; whoever may
    write ``client_crl`` puts back an older CRL after a restart (a revocation undone)."""
    cert, key, _ = make_self_signed(tmp_path)
    ca = make_ca("Ops CA")
    files = {"client_ca": tmp_path / "clients-ca.crt", "client_crl": tmp_path / "clients.crl"}
    files["client_ca"].write_bytes(ca.pem())
    files["client_crl"].write_bytes(make_crl(ca))
    files[loose].chmod(0o666)
    tls = (
        f"cert_file: {cert}, key_file: {key}, client_ca: {files['client_ca']},"
        f" client_crl: {files['client_crl']}"
    )
    auth = (
        f"auth:\n  resource: https://127.0.0.1:8443/mcp\n"
        f"  api_keys: {{db: {tmp_path / 'keys.db'}}}\n"
        f"  mtls: {{accounts: [{{name: ci-bot, subject_cn: ci-bot, roles: [dev]}}]}}\n"
    )
    result = refused_at_start(_tls_config(tmp_path, tls, auth))
    assert result.returncode == EX_CONFIG, result.stderr
    assert result.stderr.startswith(f"bastion: {files[loose]}: others may change the client")
    assert f"run: chmod o-w {files[loose]}" in result.stderr


def test_files_of_ordinary_modes_serve(tmp_path: Path) -> None:
    """A 0644 configuration and JWKS, as a umask of 022 writes them, are used."""
    port = free_port()
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": []}))
    config = _oidc_config(tmp_path, port, path)
    assert (config.stat().st_mode & 0o777, path.stat().st_mode & 0o777) == (0o644, 0o644)
    with _running(config, port, tmp_path / "serve.log") as upstreams:
        assert httpx.get(upstreams, timeout=10).status_code == 401
