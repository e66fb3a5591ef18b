"""``bastion.auth`` is imported for ``Principal`` on the stdio path: it must not load httpx."""

from __future__ import annotations

import subprocess
import sys


def test_importing_bastion_auth_does_not_load_httpx_or_x509() -> None:
    probe = (
        "import sys, bastion.auth; "
        "print([m for m in ('httpx', 'cryptography.x509') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
