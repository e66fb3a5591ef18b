"""Escape suite, files: what a command can read and write, against ``bastion sandbox exec``.

Each test plays an attacker inside the sandbox and checks, from the host, what a user
would check: the host file is untouched, the secret did not come out. Positive controls
(writing the workspace, running python3, reading /usr) show the sandbox is still usable.
SECURITY.md: IN-4 (confinement), IN-5/MCP01 (no secrets), UP-5 (sandboxed commands).
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sandbox.conftest import (
    LAUNCHER_SECRET,
    SECRET_VALUE,
    make_workspace,
    sandbox_exec,
    sandbox_python,
)


@pytest.fixture
def host_secret() -> Iterator[Path]:
    """A world-readable file on the host, outside any workspace."""
    directory = make_workspace("bastion-host-")
    secret = directory / "secret.txt"
    secret.write_text(SECRET_VALUE)
    secret.chmod(0o644)
    try:
        yield secret
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_positive_controls(workspace: Path) -> None:
    done = sandbox_exec(
        workspace,
        "sh",
        "-c",
        "echo built > out.txt && mkdir -p pkg && python3 -c 'print(6 * 7)' "
        "&& head -c 4 /usr/share/common-licenses/GPL-3 && ls /usr/bin/python3",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["42", "    /usr/bin/python3"]
    assert (workspace / "out.txt").read_text() == "built\n"
    assert (workspace / "pkg").is_dir()


def test_exit_status_and_streams_pass_through(workspace: Path) -> None:
    done = sandbox_exec(workspace, "sh", "-c", "echo out; echo err >&2; exit 7")
    assert (done.returncode, done.stdout, done.stderr) == (7, "out\n", "err\n")


def test_reading_outside_the_workspace_finds_nothing(workspace: Path, host_secret: Path) -> None:
    result = sandbox_python(
        workspace,
        f"""
import json, os
seen = {{}}
for path in ({str(host_secret)!r}, "/etc/shadow", "/root", "/home", "/var/log", "/srv",
             "/work", "/etc/pip.conf", "/etc/npmrc", "/etc/gitconfig", "/boot", "/sys/kernel"):
    try:
        if os.path.isdir(path):
            seen[path] = sorted(os.listdir(path))
        else:
            seen[path] = open(path).read()[:100]
    except OSError as exc:
        seen[path] = exc.strerror
print(json.dumps(seen))
""",
    )
    assert SECRET_VALUE not in str(result)
    for path, seen in result.items():
        assert seen == "No such file or directory", (path, seen)


def test_writing_outside_the_workspace_fails(workspace: Path) -> None:
    before = Path("/proc/sys/kernel/core_pattern").read_text()
    result = sandbox_python(
        workspace,
        """
import json
out = {}
for path in ("/usr/bin/evil", "/etc/evil", "/evil", "/proc/sys/kernel/core_pattern",
             "/proc/sys/kernel/hostname", "/proc/sysrq-trigger", "/sys/evil", "/dev/evil"):
    try:
        with open(path, "w") as handle:
            handle.write("|/workspace/pwn")
        out[path] = "written"
    except OSError as exc:
        out[path] = exc.strerror
print(json.dumps(out))
""",
    )
    assert "written" not in result.values(), result
    assert Path("/proc/sys/kernel/core_pattern").read_text() == before
    assert not Path("/usr/bin/evil").exists() and not Path("/etc/evil").exists()


def test_the_launchers_environment_does_not_leak(workspace: Path) -> None:
    assert os.environ.get(LAUNCHER_SECRET) is None  # set only in the launcher's env
    done = sandbox_exec(
        workspace,
        "sh",
        "-c",
        "env; tr '\\0' '\\n' < /proc/1/environ; tr '\\0' '\\n' < /proc/self/environ",
    )
    assert done.returncode == 0, done.stderr
    assert SECRET_VALUE not in done.stdout and LAUNCHER_SECRET not in done.stdout
    names = {line.split("=", 1)[0] for line in done.stdout.splitlines() if "=" in line}
    assert names <= {"PATH", "HOME", "TMPDIR", "LANG", "PWD"}, names


def test_an_explicitly_passed_variable_is_the_only_one(workspace: Path) -> None:
    done = sandbox_exec(
        workspace, "sh", "-c", 'echo "$CHOSEN/$BASTION_TEST_SECRET"', options=("--env", "CHOSEN=1")
    )
    assert done.stdout == "1/\n"


def test_proc_shows_only_the_sandbox(workspace: Path) -> None:
    result = sandbox_python(
        workspace,
        f"""
import json, os
pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
status = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines())
init = dict(l.split(":", 1) for l in open("/proc/1/status").read().splitlines())
try:
    os.kill({os.getpid()}, 9)
    killed = "yes"
except OSError as exc:
    killed = exc.strerror
me = {os.getpid()}
print(json.dumps({{
    "pids": pids, "killed": killed, "host_pid_visible": os.path.exists(f"/proc/{{me}}"),
    "uid": status["Uid"].split(), "capeff": status["CapEff"].strip(),
    "capbnd": status["CapBnd"].strip(), "nnp": status["NoNewPrivs"].strip(),
    "seccomp": status["Seccomp"].strip(), "init_seccomp": init["Seccomp"].strip(),
    "init_capeff": init["CapEff"].strip(), "hostname": os.uname().nodename,
    "init_environ": open("/proc/1/environ", "rb").read().decode(),
}}))
""",
    )
    pids = result["pids"]
    assert isinstance(pids, list) and len(pids) <= 3, pids  # bwrap's pid 1, python, ls
    assert result["killed"] == "No such process" and result["host_pid_visible"] is False
    assert result["uid"] == ["65534"] * 4 if os.geteuid() == 0 else result["uid"] != ["0"] * 4
    assert result["capeff"] == result["capbnd"] == "0000000000000000"
    assert result["nnp"] == "1" and result["seccomp"] == "2"
    # bwrap's own pid 1 has no capabilities either and runs under the same filter.
    assert result["init_seccomp"] == "2" and result["init_capeff"] == "0000000000000000"
    assert result["hostname"] == "sandbox" and result["init_environ"] == ""


def test_dev_has_no_devices_of_the_host(workspace: Path) -> None:
    done = sandbox_exec(workspace, "ls", "/dev")
    assert done.returncode == 0, done.stderr
    assert set(done.stdout.split()) <= {
        "console", "core", "fd", "full", "mqueue", "null", "ptmx", "pts", "random", "shm",
        "stderr", "stdin", "stdout", "tty", "urandom", "zero",
    }  # fmt: skip
    result = sandbox_python(
        workspace,
        """
import json
out = {}
for path in ("/dev/mem", "/dev/kmsg", "/dev/vda", "/dev/sda", "/dev/loop0", "/dev/kvm"):
    try:
        open(path, "rb").close()
        out[path] = "opened"
    except OSError as exc:
        out[path] = exc.strerror
print(json.dumps(out))
""",
    )
    assert set(result.values()) == {"No such file or directory"}, result


def test_a_planted_setuid_root_binary_does_not_raise_privileges(workspace: Path) -> None:
    # As if a file tool (running as root) had been tricked into planting it.
    planted = workspace / "rootid"
    shutil.copy("/usr/bin/id", planted)
    os.chown(planted, 0, 0)
    planted.chmod(0o4755 | stat.S_ISGID)
    done = sandbox_exec(
        workspace, "sh", "-c", "./rootid -u; ./rootid -g; su -c id root </dev/null; echo su=$?"
    )
    lines = done.stdout.split()
    assert lines[0] != "0" and lines[1] != "0", done.stdout
    assert "su=0" not in done.stdout


def test_setuid_bits_cannot_be_given_to_root_files(workspace: Path) -> None:
    done = sandbox_exec(
        workspace,
        "sh",
        "-c",
        "cp /usr/bin/id ./id2 && chmod u+s ./id2 && chown 0:0 ./id2; echo chown=$?; ./id2 -u",
    )
    assert "chown=0" not in done.stdout
    assert (workspace / "id2").stat().st_uid != 0
    assert done.stdout.split()[-1] != "0"


def test_symlinks_resolve_inside_the_sandbox_not_on_the_host(
    workspace: Path, host_secret: Path
) -> None:
    done = sandbox_exec(
        workspace,
        "sh",
        "-c",
        f"ln -s {host_secret} leak && ln -s / hostroot && cat leak; echo cat=$?; ls hostroot/",
    )
    assert SECRET_VALUE not in done.stdout
    assert "cat=1" in done.stdout
    assert "workspace" in done.stdout.split()  # "/" is the sandbox's root, not the host's
    # A symlink planted by the host side points nowhere useful either.
    (workspace / "planted").symlink_to(host_secret)
    done = sandbox_exec(workspace, "cat", "planted")
    assert done.returncode != 0 and SECRET_VALUE not in done.stdout


def test_hardlinks_to_files_outside_cannot_be_made(workspace: Path) -> None:
    done = sandbox_exec(
        workspace,
        "sh",
        "-c",
        "ln /etc/passwd p; echo a=$?; ln /usr/bin/python3 py; echo b=$?; ln /proc/self/exe e; "
        "echo c=$?",
    )
    assert "a=0" not in done.stdout and "b=0" not in done.stdout and "c=0" not in done.stdout
    assert sorted(os.listdir(workspace)) == []


def test_a_workspace_path_that_escapes_is_refused(workspace: Path, host_secret: Path) -> None:
    (workspace / "out").symlink_to(host_secret.parent)
    done = sandbox_exec(workspace, "pwd", options=("--cwd", "out"))
    assert done.returncode == 125 and "leaves the workspace" in done.stderr
    done = sandbox_exec(workspace, "pwd", options=("--cwd", "../.."))
    assert done.returncode == 125 and "leaves the workspace" in done.stderr
    done = sandbox_exec(Path("/"), "true")
    assert done.returncode == 125 and "cannot be a workspace" in done.stderr
