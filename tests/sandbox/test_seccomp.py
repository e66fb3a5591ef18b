"""The seccomp program, run through a small classic-BPF interpreter of our own: every
path (wrong architecture, x32, denied calls, clone flags, ioctl requests) gives the action
the kernel would take. The live checks are in test_escape_kernel.py."""

from __future__ import annotations

import struct

import pytest

from bastion.sandbox.seccomp import AUDIT_ARCH_X86_64, DENIED_SYSCALLS, build_filter

KILL, ALLOW = 0x80000000, 0x7FFF0000
EPERM, ENOSYS = 0x00050000 | 1, 0x00050000 | 38
AUDIT_ARCH_I386 = 0x40000003


def run_filter(nr: int, args: tuple[int, ...] = (), arch: int = AUDIT_ARCH_X86_64) -> int:
    """Evaluate the program on one ``struct seccomp_data`` (supports the opcodes it uses)."""
    padded = (list(args) + [0] * 6)[:6]
    data = struct.pack("<iIQ6Q", nr, arch, 0, *padded)
    program = build_filter()
    pc, accumulator = 0, 0
    while True:
        code, jt, jf, k = struct.unpack_from("<HBBI", program, pc * 8)
        if code == 0x20:  # ld [k]
            accumulator = struct.unpack_from("<I", data, k)[0]
            pc += 1
        elif code in (0x15, 0x35, 0x45):  # jeq, jge, jset
            test = {
                0x15: accumulator == k,
                0x35: accumulator >= k,
                0x45: bool(accumulator & k),
            }[code]
            pc += 1 + (jt if test else jf)
        elif code == 0x06:  # ret k
            return int(k)
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")


def test_other_architectures_are_killed() -> None:
    assert run_filter(39, arch=AUDIT_ARCH_I386) == KILL
    assert run_filter(26, arch=AUDIT_ARCH_I386) == KILL  # i386 ptrace would be 26


def test_x32_numbers_are_refused() -> None:
    assert run_filter(0x40000000 + 39) == EPERM
    assert run_filter(0x40000000 + 101) == EPERM


@pytest.mark.parametrize("name", sorted(DENIED_SYSCALLS))
def test_each_denied_syscall_gets_eperm(name: str) -> None:
    assert run_filter(DENIED_SYSCALLS[name]) == EPERM


def test_ordinary_syscalls_are_allowed() -> None:
    for nr in (0, 1, 2, 39, 57, 59, 61, 257):  # read write open getpid fork execve wait4 openat
        assert run_filter(nr) == ALLOW


def test_clone3_is_enosys_and_clone_is_checked_for_namespace_flags() -> None:
    assert run_filter(435) == ENOSYS
    thread_flags = 0x3D0F00  # what glibc's pthread_create passes
    assert run_filter(56, (thread_flags,)) == ALLOW
    assert run_filter(56, (17,)) == ALLOW  # fork: SIGCHLD only
    for flag in (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000,
                 0x40000000):  # fmt: skip
        assert run_filter(56, (flag | 17,)) == EPERM


def test_only_the_injection_ioctls_are_refused() -> None:
    assert run_filter(16, (0, 0x5412)) == EPERM  # TIOCSTI
    assert run_filter(16, (0, 0x541C)) == EPERM  # TIOCLINUX
    assert run_filter(16, (0, (1 << 32) | 0x5412)) == EPERM  # the kernel ignores high bits
    assert run_filter(16, (0, 0x5401)) == ALLOW  # TCGETS
