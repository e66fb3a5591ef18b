"""Abuse suite: fork, memory, CPU, disk and output bombs, and daemons that try to outlive
their command, against ``bastion sandbox exec`` (exit status 124 and a reason on stderr
when a limit stopped the command). Host-side checks: nothing survives, the quota holds.
SECURITY.md: DS-2 and LLM10 (unbounded consumption), UP-5.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bastion.sandbox import create_quota_workspace, unmount_quota_workspace
from tests.sandbox.conftest import host_processes_matching, make_workspace, sandbox_exec

MiB = 1024 * 1024
EXIT_LIMIT = 124


def _no_survivors(marker: str) -> None:
    # The pid namespace is torn down before bwrap's exit is reported; allow the reaping
    # of the last zombies a moment, no more.
    deadline = time.monotonic() + 1.0
    while host_processes_matching(marker) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert host_processes_matching(marker) == []


def test_fork_bomb_is_bounded_and_leaves_nothing(workspace: Path) -> None:
    done = sandbox_exec(
        workspace,
        "python3",
        "-c",
        """
import os, sys, time
made = 0
while True:
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(30.1234)  # a marker the host looks for
        os._exit(0)
    made += 1
print(made)
""",
        options=("--profile", "strict"),
    )
    assert done.returncode == 0, done.stderr
    assert 0 < int(done.stdout) < 64  # strict: 64 processes
    _no_survivors("30.1234")


def test_shell_fork_bomb_is_stopped_by_the_timeout(workspace: Path) -> None:
    started = time.monotonic()
    done = sandbox_exec(
        workspace,
        "sh",
        "-c",
        "bomb() { bomb | bomb & }; bomb; sleep 31.4159",
        options=("--profile", "strict", "--timeout", "2"),
    )
    assert done.returncode == EXIT_LIMIT
    assert "wall-clock timeout of 2 s" in done.stderr
    assert time.monotonic() - started < 10
    _no_survivors("31.4159")


def test_multi_process_memory_bomb_hits_the_cgroup_limit(workspace: Path) -> None:
    done = sandbox_exec(
        workspace,
        "python3",
        "-c",
        """
import os, sys, time
kids = []
for _ in range(6):  # 6 x 64 MiB, each under the 1 GiB address-space rlimit
    pid = os.fork()
    if pid == 0:
        block = b"x" * (64 * 1024 * 1024)
        time.sleep(1)
        os._exit(0)
    kids.append(pid)
statuses = [os.waitstatus_to_exitcode(os.waitpid(k, 0)[1]) for k in kids]
print(statuses)
sys.exit(1 if any(statuses) else 0)
""",
        options=("--profile", "strict"),  # 256 MiB
    )
    assert done.returncode == EXIT_LIMIT, (done.stdout, done.stderr)
    assert "memory limit of 256 MiB" in done.stderr
    assert "-9" in done.stdout  # the OOM killer took some of them


def test_cpu_burn_is_stopped_and_the_cpu_rlimit_is_set(workspace: Path) -> None:
    done = sandbox_exec(
        workspace,
        "python3",
        "-c",
        """
import threading
print([l for l in open("/proc/self/limits") if l.startswith("Max cpu time")][0], flush=True)
def burn():
    while True:
        pass
for _ in range(2):
    threading.Thread(target=burn, daemon=True).start()
burn()
""",
        options=("--profile", "strict", "--timeout", "1.5"),
    )
    assert done.returncode == EXIT_LIMIT
    assert done.stdout.split()[3:5] == ["10", "11"]  # strict: 10 s soft, 11 s hard
    assert "timeout" in done.stderr


def test_output_bomb_is_cut_at_the_cap(workspace: Path) -> None:
    done = sandbox_exec(workspace, "yes", "spam", options=("--profile", "strict"))
    assert done.returncode == EXIT_LIMIT
    assert "output limit of 1 MiB" in done.stderr
    assert len(done.stdout) == 1 * MiB


def test_daemons_die_with_the_command(workspace: Path) -> None:
    done = sandbox_exec(
        workspace,
        "sh",
        "-c",
        "setsid sleep 32.1111 & (sleep 32.2222 &); nohup sleep 32.3333 >/dev/null 2>&1 & "
        "python3 -c 'import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        time.sleep(32.4444)\n"
        "'; echo started",
    )
    assert done.returncode == 0 and done.stdout == "started\n", done.stderr
    _no_survivors("32.")


def test_daemons_die_when_the_timeout_kills_the_command(workspace: Path) -> None:
    done = sandbox_exec(
        workspace,
        "sh",
        "-c",
        "setsid sleep 33.1111 & (sleep 33.2222 &); sleep 33.3333",
        options=("--timeout", "1"),
    )
    assert done.returncode == EXIT_LIMIT
    _no_survivors("33.")


@pytest.fixture
def quota_workspace() -> Iterator[Path]:
    holder = make_workspace("bastion-quota-")
    mountpoint = create_quota_workspace(holder / "ws.img", holder / "ws", 16 * MiB)
    try:
        yield mountpoint
    finally:
        unmount_quota_workspace(mountpoint)
        shutil.rmtree(holder, ignore_errors=True)


def test_one_big_file_stops_at_the_quota(quota_workspace: Path) -> None:
    done = sandbox_exec(quota_workspace, "dd", "if=/dev/zero", "of=big", "bs=1M", "count=64")
    assert done.returncode == EXIT_LIMIT, done.stderr
    assert "No space left on device" in done.stderr
    assert "disk quota" in done.stderr
    assert (quota_workspace / "big").stat().st_size <= 16 * MiB
    used = os.statvfs(quota_workspace)
    assert (used.f_blocks - used.f_bfree) * used.f_frsize <= 16 * MiB


def test_many_small_files_stop_at_the_quota(quota_workspace: Path) -> None:
    done = sandbox_exec(
        quota_workspace,
        "python3",
        "-c",
        """
import os
n = 0
try:
    while n < 100000:
        open(f"f{n}", "w").close()
        n += 1
finally:
    print(n)
""",
    )
    assert done.returncode == EXIT_LIMIT, done.stderr
    assert "No space left on device" in done.stderr
    assert int(done.stdout) < 2000  # 16 MiB / 16 KiB per inode
    # Space is freed as usual, and the workspace works again.
    for name in os.listdir(quota_workspace):
        (quota_workspace / name).unlink()
    assert sandbox_exec(quota_workspace, "sh", "-c", "echo ok > f").returncode == 0


def test_a_file_over_the_size_rlimit_is_stopped(workspace: Path) -> None:
    done = sandbox_exec(
        workspace,
        "dd",
        "if=/dev/zero",
        "of=big",
        "bs=1M",
        "count=80",
        options=("--profile", "strict"),  # 64 MiB per file
    )
    assert done.returncode == EXIT_LIMIT
    assert "disk quota or file size limit" in done.stderr
    assert (workspace / "big").stat().st_size == 64 * MiB
