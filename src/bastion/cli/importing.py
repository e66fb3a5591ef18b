"""``bastion import``: turn an MCP client's configuration file into bastion.yaml.

The YAML goes to stdout, or to a new file (``--force`` to replace one) that only its owner
may read, since it can carry secrets copied from the client's file. Warnings go to stderr too.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["run_import"]


def run_import(path: str, output: str | None, *, force: bool = False) -> int:
    """Convert ``path``; print the YAML, or write it to ``output``. Returns the exit code.

    Raises:
        ConfigError: ``path`` cannot be read or holds no MCP server list.
    """
    from bastion.config import load_client_config, to_yaml

    result = load_client_config(Path(path))
    text = to_yaml(result.config, warnings=result.warnings)
    for warning in result.warnings:
        print(f"bastion import: {warning}", file=sys.stderr)
    if output is None:
        sys.stdout.write(text)
        return 0
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    try:
        fd = os.open(output, flags, 0o600)
    except FileExistsError:
        print(f"bastion import: {output} exists; use --force to replace it", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"bastion import: cannot write {output}: {exc.strerror}", file=sys.stderr)
        return 1
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(text)
    count = len(result.config["servers"])
    print(f"bastion import: wrote {output} ({count} server(s))", file=sys.stderr)
    return 0
