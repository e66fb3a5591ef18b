"""IN-1: what a user gets wrong on the command line or in the configuration is said in one
line naming the option or setting, with a documented exit code (2 usage, 78 configuration,
1 not an audit database), never a traceback: TLS files, a port in use or out of range, a
database path that is a directory, a URL that does not parse, a negative timeout."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.support import BASTION, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def bastion(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BASTION), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    """The one line the command wrote on stderr (and no traceback)."""
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr[-3000:]
    return lines[0]


def usage_error(done: subprocess.CompletedProcess[str]) -> str:
    """argparse's usage lines, then the error: exit 2, no traceback."""
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    return done.stderr.strip().splitlines()[-1]


def serve(tmp_path: Path, config: str, *extra: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "bastion.yaml"
    path.write_text(f"audit:\n  db: {tmp_path / 'state' / 'audit.db'}\n{config}")
    port = str(free_port())
    return bastion("serve", "--no-register", "-c", path, "--port", port, *extra)


def private_file(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


def test_a_missing_tls_certificate_names_the_setting_and_the_file_IN1(tmp_path: Path) -> None:
    key = private_file(tmp_path / "key.pem", "not a key\n")
    missing = tmp_path / "nowhere.crt"
    done = serve(tmp_path, f"gateway:\n  tls: {{cert_file: {missing}, key_file: {key}}}\n")
    assert done.returncode == 78
    line = one_line(done)
    assert (
        line == f"bastion: gateway.tls.cert_file: cannot read {missing}: No such file or directory"
    )


def test_a_tls_certificate_that_is_a_directory_names_the_setting_IN1(tmp_path: Path) -> None:
    key = private_file(tmp_path / "key.pem", "not a key\n")
    done = serve(tmp_path, f"gateway:\n  tls: {{cert_file: {tmp_path}, key_file: {key}}}\n")
    assert done.returncode == 78
    assert (
        one_line(done) == f"bastion: gateway.tls.cert_file: cannot read {tmp_path}: Is a directory"
    )


def test_tls_files_that_are_not_pem_are_one_line_IN1(tmp_path: Path) -> None:
    junk = private_file(tmp_path / "junk.pem", "-----BEGIN NOTHING-----\nxx\n")
    done = serve(tmp_path, f"gateway:\n  tls: {{cert_file: {junk}, key_file: {junk}}}\n")
    assert done.returncode == 78
    line = one_line(done)
    assert line.startswith(f"bastion: gateway.tls: {junk} and {junk}: not a PEM certificate")


def test_a_port_in_use_is_one_line_IN1(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = tmp_path / "bastion.yaml"
        path.write_text(f"audit:\n  db: {tmp_path / 'audit.db'}\n")
        done = bastion("serve", "--no-register", "-c", path, "--port", str(port))
        fixture = bastion("fixture", "--port", str(port))
    assert done.returncode == 78 and fixture.returncode == 78
    expected = f"bastion: port {port} on 127.0.0.1 is in use: stop what listens there, or "
    assert one_line(done).startswith(expected)
    assert one_line(fixture).startswith(expected)


@pytest.mark.parametrize("port", ["70000", "-1", "http"])
@pytest.mark.parametrize("command", [["serve"], ["fixture"], ["workspace", "--root", "."]])
def test_a_port_out_of_range_is_a_usage_error_IN1(command: list[str], port: str) -> None:
    line = usage_error(bastion(*command, "--port", port))
    assert (
        f"argument --port: expected a port from 1 to 65535 (0: any free one), got {port!r}" in line
    )


@pytest.mark.parametrize("setting", ["audit:\n  db", "guard:\n  pins:\n    db_path"])
def test_a_database_path_that_is_a_directory_names_the_setting_IN1(
    tmp_path: Path, setting: str
) -> None:
    directory = tmp_path / "dir"
    directory.mkdir()
    config = tmp_path / "bastion.yaml"
    config.write_text(f"{setting}: {directory}\n")
    done = bastion("serve", "--no-register", "-c", config, "--port", str(free_port()))
    stdio = bastion("stdio", "-c", config)
    name = "audit.db" if setting.startswith("audit") else "guard.pins.db_path"
    expected = f"bastion: {name}: {directory} is a directory, not a database file"
    assert (done.returncode, one_line(done)) == (78, expected)
    assert (stdio.returncode, one_line(stdio)) == (78, expected)


def test_a_database_under_a_file_names_the_setting_IN1(tmp_path: Path) -> None:
    file = tmp_path / "file"
    file.write_text("")
    config = tmp_path / "bastion.yaml"
    config.write_text(f"audit:\n  db: {file / 'audit.db'}\n")
    done = bastion("serve", "--no-register", "-c", config, "--port", str(free_port()))
    assert (done.returncode, one_line(done)) == (
        78,
        f"bastion: audit.db: {file} is not a directory",
    )


@pytest.mark.parametrize("command", ["tail", "export"])
def test_audit_commands_on_another_database_are_one_line_IN1(tmp_path: Path, command: str) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    conn.close()
    done = bastion("audit", command, "--db", other)
    assert done.returncode == 1
    assert one_line(done) == (
        f"bastion: {other} is not a readable audit database (no such table: records); "
        "run `bastion audit verify`"
    )


def test_audit_export_leaves_no_empty_file_for_another_database_IN1(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    other.write_bytes(b"not sqlite at all, " * 100)
    out = tmp_path / "export.jsonl"
    done = bastion("audit", "export", "--db", other, "-o", out)
    assert done.returncode == 1
    assert "is not a readable audit database (file is not a database)" in one_line(done)
    assert not out.exists()


@pytest.mark.parametrize("url", ["http://[::1", "http://127.0.0.1:99999", "ftp://x", "127.0.0.1"])
def test_servers_list_with_a_bad_url_is_a_usage_error_IN1(url: str) -> None:
    line = usage_error(bastion("servers", "list", "--url", url))
    assert f"argument --url: expected an http:// or https:// URL with a host, got {url!r}" in line


@pytest.mark.parametrize("timeout", ["-1", "0", "nan", "inf", "soon"])
def test_sandbox_exec_with_a_timeout_not_above_zero_is_a_usage_error_IN1(
    tmp_path: Path, timeout: str
) -> None:
    done = bastion("sandbox", "exec", "--workspace", tmp_path, "--timeout", timeout, "--", "true")
    assert f"argument --timeout: expected seconds above 0, got {timeout!r}" in usage_error(done)
