"""The sandbox's own files on the host: the seccomp program and a synthetic ``/etc``.

One private directory per ``Sandbox`` (root-owned, world-readable, never writable by the
sandbox user): the seccomp program the launcher opens as fd 3, and the ``passwd``,
``group``, ``hosts`` and ``hostname`` files bound read-only over the host's, so a command
sees neither the host's users nor its name.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Final

from bastion.sandbox.seccomp import build_filter

__all__ = ["HOSTNAME", "RuntimeFiles"]

HOSTNAME: Final = "sandbox"


class RuntimeFiles:
    """Owns the directory; ``close`` removes it."""

    def __init__(self, uid: int, gid: int) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="bastion-sandbox-"))
        self.root.chmod(0o755)
        self.seccomp = self.root / "seccomp.bpf"
        self.seccomp.write_bytes(build_filter())
        self.etc = self.root / "etc"
        self.etc.mkdir(mode=0o755)
        files = {
            "passwd": f"root:x:0:0:root:/root:/usr/sbin/nologin\n"
            f"sandbox:x:{uid}:{gid}:sandbox:/tmp:/bin/sh\n"
            "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
            "group": f"root:x:0:\nsandbox:x:{gid}:\nnogroup:x:65534:\n",
            "hosts": f"127.0.0.1\tlocalhost {HOSTNAME}\n::1\tlocalhost\n",
            "hostname": f"{HOSTNAME}\n",
        }
        for name, text in files.items():
            path = self.etc / name
            path.write_text(text)
            path.chmod(0o644)
        self.sockets = self.root / "sockets"
        self.sockets.mkdir(mode=0o755)

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
