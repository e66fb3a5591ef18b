"""TR-3: ``bastion workspace`` and ``bastion fixture`` authenticate nobody, so over HTTP they
listen on loopback only; another address is refused at start (exit 78) before anything
listens. (Anyone who reached a workspace off loopback ran commands in it.)"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support import BASTION, free_port

pytestmark = pytest.mark.e2e


def _start(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BASTION), *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1", "localhost.", "127.0.0.1 "])
def test_tr3_the_workspace_refuses_to_listen_off_loopback(tmp_path: Path, host: str) -> None:
    port = str(free_port())
    done = _start("workspace", "--root", str(tmp_path), "--host", host, "--port", port)
    assert done.returncode == 78, done.stderr
    assert "listens on loopback only" in done.stderr
    assert "Traceback" not in done.stderr


def test_tr3_the_fixture_refuses_to_listen_off_loopback() -> None:
    done = _start("fixture", "--host", "0.0.0.0", "--port", str(free_port()))
    assert done.returncode == 78, done.stderr
    assert "listens on loopback only" in done.stderr
