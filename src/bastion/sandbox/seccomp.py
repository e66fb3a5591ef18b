"""A seccomp deny-list as a classic BPF program, built in pure Python (no libseccomp).

The program (an array of ``struct sock_filter``) is what ``bwrap --seccomp FD`` loads before
it execs the command. It kills any syscall made under another ABI than x86-64 (i386 via
``int 0x80``), refuses x32 syscall numbers, answers ``clone3`` with ENOSYS so libc falls back
to ``clone`` (whose flags a classic filter can inspect, unlike clone3's struct), and refuses
with EPERM: ptrace and cross-process memory access, the mount family, namespace changes
(setns, unshare, clone with a ``CLONE_NEW*`` flag), keyrings, bpf, perf events, userfaultfd,
io_uring, kernel module/kexec/reboot calls and the terminal-injection ioctls.
"""

from __future__ import annotations

import platform
import struct
from typing import Final

__all__ = [
    "AUDIT_ARCH_X86_64",
    "DENIED_SYSCALLS",
    "build_filter",
    "filter_supported",
]

AUDIT_ARCH_X86_64: Final = 0xC000003E
_X32_SYSCALL_BIT: Final = 0x40000000

# Classic BPF opcodes (linux/filter.h, linux/bpf_common.h).
_LD_W_ABS: Final = 0x20
_JEQ_K: Final = 0x15
_JGE_K: Final = 0x35
_JSET_K: Final = 0x45
_RET_K: Final = 0x06

# Return actions (linux/seccomp.h).
_RET_KILL_PROCESS: Final = 0x80000000
_RET_ERRNO: Final = 0x00050000
_RET_ALLOW: Final = 0x7FFF0000
_EPERM: Final = 1
_ENOSYS: Final = 38

# struct seccomp_data: int nr; u32 arch; u64 instruction_pointer; u64 args[6].
_OFF_NR: Final = 0
_OFF_ARCH: Final = 4


def _arg_low(index: int) -> int:
    return 16 + 8 * index  # little-endian: the low 32 bits come first


# x86-64 syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl), refused with EPERM.
DENIED_SYSCALLS: Final[dict[str, int]] = {
    "ptrace": 101,
    "process_vm_readv": 310,
    "process_vm_writev": 311,
    "kcmp": 312,
    "mount": 165,
    "umount2": 166,
    "pivot_root": 155,
    "chroot": 161,
    "open_tree": 428,
    "move_mount": 429,
    "fsopen": 430,
    "fsconfig": 431,
    "fsmount": 432,
    "fspick": 433,
    "mount_setattr": 442,
    "setns": 308,
    "unshare": 272,
    "keyctl": 250,
    "add_key": 248,
    "request_key": 249,
    "bpf": 321,
    "perf_event_open": 298,
    "userfaultfd": 323,
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
    "kexec_load": 246,
    "kexec_file_load": 320,
    "init_module": 175,
    "finit_module": 313,
    "delete_module": 176,
    "reboot": 169,
    "swapon": 167,
    "swapoff": 168,
    "acct": 163,
    "quotactl": 179,
    "syslog": 103,
    "open_by_handle_at": 304,
    "name_to_handle_at": 303,
    "lookup_dcookie": 212,
    "uselib": 134,
}
_CLONE: Final = 56
_CLONE3: Final = 435
_IOCTL: Final = 16
# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET. (CLONE_NEWTIME,
# 0x80, is only valid for clone3/unshare; in clone's flags those bits are the exit signal.)
_CLONE_NAMESPACE_FLAGS: Final = 0x00020000 | 0x7E000000
_TIOCSTI: Final = 0x5412
_TIOCLINUX: Final = 0x541C

_Instruction = tuple[int, int | str, int | str, int]  # code, jt, jf, k (jumps may be labels)


def _assemble(program: list[_Instruction | str]) -> bytes:
    """Resolve label jumps (labels are bare strings in the list) and pack sock_filters."""
    labels: dict[str, int] = {}
    index = 0
    for item in program:
        if isinstance(item, str):
            labels[item] = index
        else:
            index += 1
    out = bytearray()
    position = 0
    for item in program:
        if isinstance(item, str):
            continue
        code, jt, jf, k = item
        offsets = []
        for target in (jt, jf):
            offset = labels[target] - position - 1 if isinstance(target, str) else target
            if not 0 <= offset <= 255:
                raise ValueError(f"jump out of range at instruction {position}")
            offsets.append(offset)
        out += struct.pack("<HBBI", code, offsets[0], offsets[1], k)
        position += 1
    return bytes(out)


def build_filter() -> bytes:
    """The deny-list program, ready to be written to the fd given to ``bwrap --seccomp``."""
    program: list[_Instruction | str] = [
        (_LD_W_ABS, 0, 0, _OFF_ARCH),
        (_JEQ_K, 0, "kill", AUDIT_ARCH_X86_64),
        (_LD_W_ABS, 0, 0, _OFF_NR),
        (_JGE_K, "eperm", 0, _X32_SYSCALL_BIT),
    ]
    program += [(_JEQ_K, "eperm", 0, nr) for nr in DENIED_SYSCALLS.values()]
    program += [
        (_JEQ_K, "enosys", 0, _CLONE3),
        (_JEQ_K, "clone", 0, _CLONE),
        (_JEQ_K, "ioctl", 0, _IOCTL),
        (_RET_K, 0, 0, _RET_ALLOW),
        "clone",
        (_LD_W_ABS, 0, 0, _arg_low(0)),
        (_JSET_K, "eperm", 0, _CLONE_NAMESPACE_FLAGS),
        (_RET_K, 0, 0, _RET_ALLOW),
        "ioctl",
        # The kernel takes ioctl's request as an unsigned int: only the low 32 bits count.
        (_LD_W_ABS, 0, 0, _arg_low(1)),
        (_JEQ_K, "eperm", 0, _TIOCSTI),
        (_JEQ_K, "eperm", 0, _TIOCLINUX),
        (_RET_K, 0, 0, _RET_ALLOW),
        "eperm",
        (_RET_K, 0, 0, _RET_ERRNO | _EPERM),
        "enosys",
        (_RET_K, 0, 0, _RET_ERRNO | _ENOSYS),
        "kill",
        (_RET_K, 0, 0, _RET_KILL_PROCESS),
    ]
    return _assemble(program)


def filter_supported() -> bool:
    """The program encodes x86-64 syscall numbers; other machines need their own table."""
    return platform.machine() == "x86_64"
