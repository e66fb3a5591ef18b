"""The TLS files of ``gateway.tls`` (``check_tls_files``): whoever may change the
certificate and key impersonates the gateway, whoever may change ``client_ca`` mints client
certificates, and a key others may read is no secret. Each is refused with the command
that fixes it (``bastion serve`` exits 78 with it, tests/cli/test_file_trust.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bastion._file_trust import private_group
from bastion.errors import ConfigError
from bastion.transport.http_run import check_tls_files
from bastion.transport.http_server import HttpSettings
from tests.auth.support import make_ca, self_signed


def settings(tmp_path: Path) -> HttpSettings:
    cert, key, _ = self_signed(tmp_path)
    ca = tmp_path / "clients-ca.pem"
    ca.write_bytes(make_ca("Ops CA").pem())
    return HttpSettings(tls_cert_file=str(cert), tls_key_file=str(key), tls_client_ca_file=str(ca))


def test_tls_files_of_ordinary_modes_pass(tmp_path: Path) -> None:
    tls = settings(tmp_path)
    assert Path(tls.tls_key_file or "").stat().st_mode & 0o777 == 0o600
    check_tls_files(tls)
    check_tls_files(HttpSettings())  # no TLS: nothing to check


def test_a_tls_key_every_user_may_read_is_refused(tmp_path: Path) -> None:
    tls = settings(tmp_path)
    key = Path(tls.tls_key_file or "")
    key.chmod(0o604)
    with pytest.raises(ConfigError) as info:
        check_tls_files(tls)
    assert str(info.value) == (
        f"{key}: every user may read the TLS key (gateway.tls.key_file) (mode 0604);"
        f" run: chmod 600 {key}"
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another group needs root")
def test_a_tls_key_a_shared_group_may_read_is_refused_ours_alone_is_not(tmp_path: Path) -> None:
    tls = settings(tmp_path)
    key = Path(tls.tls_key_file or "")
    key.chmod(0o640)
    os.chown(key, -1, 65534)
    with pytest.raises(ConfigError, match=f"group 65534 may read the TLS key .*chmod 600 {key}"):
        check_tls_files(tls)
    if private_group(os.getgid()):
        os.chown(key, -1, os.getgid())  # a user private group: only we are in it
        check_tls_files(tls)


@pytest.mark.parametrize("field", ["tls_cert_file", "tls_key_file", "tls_client_ca_file"])
def test_a_tls_file_every_user_may_write_is_refused(tmp_path: Path, field: str) -> None:
    tls = settings(tmp_path)
    path = Path(getattr(tls, field))
    path.chmod(0o602 if field == "tls_key_file" else 0o666)
    with pytest.raises(ConfigError) as info:
        check_tls_files(tls)
    assert f"{path} is writable by every user; run: chmod o-w {path}" in str(info.value)
