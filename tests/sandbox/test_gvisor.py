"""The gVisor tier (``runsc`` from Debian, a hand-written OCI bundle, no engine): the
command runs on gVisor's own kernel as the sandbox user, sees the same narrow view, and
is bounded and killed like any other. runsc is installed by ``scripts/bootstrap``."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from bastion.sandbox import ExecSpec, Sandbox
from tests.sandbox.conftest import SECRET_VALUE, host_processes_matching, sandbox_exec

pytestmark = pytest.mark.anyio

_PROBE = """
import json, os, socket
print(json.dumps({"uid": os.getuid(), "kernel": os.uname().release,
    "dmesg": open("/dev/kmsg").read(200) if os.path.exists("/dev/kmsg") else "",
    "root": sorted(os.listdir("/")), "ifaces": sorted(n for _, n in socket.if_nameindex()),
    "env": sorted(os.environ), "etc_shadow": os.path.exists("/etc/shadow")}))
open("/workspace/from-gvisor", "w").write("hello")
"""


def test_a_command_runs_on_gvisors_kernel(workspace: Path) -> None:
    assert shutil.which("runsc"), "runsc is missing: run scripts/bootstrap --test-tools"
    done = sandbox_exec(
        workspace, "python3", "-c", _PROBE, options=("--backend", "gvisor", "--timeout", "20")
    )
    assert done.returncode == 0, done.stderr
    assert SECRET_VALUE not in done.stdout
    probe = json.loads(done.stdout)
    assert probe["uid"] == (65534 if os.geteuid() == 0 else os.geteuid())
    assert probe["kernel"] != os.uname().release  # gVisor's, not the host's
    assert probe["ifaces"] == ["lo"]
    assert probe["etc_shadow"] is False
    assert set(probe["root"]) <= {"bin", "dev", "etc", "lib", "lib64", "proc", "sbin", "sys",
                                  "tmp", "usr", "workspace"}  # fmt: skip
    assert set(probe["env"]) <= {"PATH", "HOME", "TMPDIR", "LANG", "PWD"}
    assert (workspace / "from-gvisor").read_text() == "hello"


async def test_timeout_and_memory_limits_in_gvisor(workspace: Path) -> None:
    with Sandbox("gvisor") as sandbox:
        slow = await sandbox.run(
            ExecSpec(
                workspace=workspace,
                argv=("sh", "-c", "setsid sleep 36.5 & sleep 36.6"),
                profile="high-security",
                timeout=1,
            )
        )
        hungry = await sandbox.run(
            ExecSpec(
                workspace=workspace,
                argv=("python3", "-c", "b = b'x' * (400 * 1024 * 1024)"),
                profile="high-security",  # 256 MiB
            )
        )
    assert slow.limit == "timeout" and slow.backend == "gvisor"
    assert host_processes_matching("36.") == []
    assert host_processes_matching("runsc") == []
    assert hungry.limit == "memory"
