"""Sandbox test support: workspaces the sandbox user owns, and ``bastion sandbox exec`` as
a real subprocess (the way a user or a script runs it).

bubblewrap is installed by ``scripts/bootstrap``; a missing ``bwrap`` fails these tests
(it is a broken setup, not a reason to skip). The launcher always carries a secret in its
environment, so every test also shows it does not leak.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bastion.sandbox import SANDBOX_GID, SANDBOX_UID
from tests.support import BASTION

LAUNCHER_SECRET = "BASTION_TEST_SECRET"
SECRET_VALUE = "s3cr3t-do-not-leak-4b1d"


def make_workspace(prefix: str = "bastion-ws-") -> Path:
    # Under /tmp (searchable by everyone), not pytest's 0700 tmp_path: bwrap binds the
    # workspace as the sandbox user, who must be able to reach it.
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    if os.geteuid() == 0:
        os.chown(path, SANDBOX_UID, SANDBOX_GID)
    return path


@pytest.fixture
def workspace() -> Iterator[Path]:
    assert shutil.which("bwrap"), "bwrap is missing: run scripts/bootstrap"
    path = make_workspace()
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def sandbox_exec(
    workspace: Path,
    *argv: str,
    options: tuple[str, ...] = (),
    timeout: float = 30.0,
) -> subprocess.CompletedProcess[str]:
    """``bastion sandbox exec --workspace WS [options] -- argv`` with a secret in our env."""
    env = dict(os.environ)
    env[LAUNCHER_SECRET] = SECRET_VALUE
    return subprocess.run(
        [str(BASTION), "sandbox", "exec", "--workspace", str(workspace), *options, "--", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def sandbox_python(
    workspace: Path, script: str, *, options: tuple[str, ...] = ()
) -> dict[str, object]:
    """Run ``script`` with the sandbox's python3; it prints one JSON object as its last line."""
    done = sandbox_exec(workspace, "python3", "-c", script, options=options)
    assert done.returncode == 0, done.stderr
    assert SECRET_VALUE not in done.stdout + done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def host_processes_matching(marker: str) -> list[int]:
    """Pids on the host whose command line contains ``marker``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                cmdline = handle.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            found.append(int(entry))
    return found
