"""`bastion stdio` started with ``LOGNAME``/``USER`` naming someone else records its calls
as the process's operating-system user (AD-1), in a real process and its audit log."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
from pathlib import Path

import pytest

from tests.support import BASTION

pytestmark = pytest.mark.e2e


def test_stdio_records_the_uids_user_whatever_the_environment_says_AD1(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    fixture = {"command": str(BASTION), "args": ["fixture", "--stdio"], "prefix": ""}
    config = tmp_path / "bastion.yaml"
    config.write_text(json.dumps({"servers": {"fixture": fixture}, "audit": {"db": str(db)}}))
    hello = {"name": "t", "version": "1"}
    init = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": hello}
    lines = [
        {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": init},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 1, "method": "ping"},
    ]
    env = {**os.environ, "LOGNAME": "alice", "USER": "alice"}
    subprocess.run(
        [str(BASTION), "stdio", "-c", str(config)],
        input="".join(json.dumps(line) + "\n" for line in lines).encode(),
        env=env,
        capture_output=True,
        timeout=60,
        check=True,
    )
    export = subprocess.run(
        [str(BASTION), "audit", "export", "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    records = [json.loads(line)["record"] for line in export.stdout.splitlines()]
    [ping] = [r for r in records if r.get("method") == "ping"]
    assert ping["principal"] == f"local:{pwd.getpwuid(os.geteuid()).pw_name}" != "local:alice"
