"""``bastion import``: turn an MCP client's configuration file into bastion.yaml.

The YAML goes to stdout, or to a new file that only its owner may read, since it can carry
secrets copied from the client's file. ``--force`` replaces an existing file (or symlink) by
renaming a new private file over it, so the result is 0600 whatever was there. Warnings go to
stderr too.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path

__all__ = ["run_import"]


def run_import(path: str, output: str | None, *, force: bool = False) -> int:
    """Convert ``path``; print the YAML, or write it to ``output``. Returns the exit code.

    Raises:
        ConfigError: ``path`` cannot be read or holds no MCP server list, or the result
            would not load (``to_yaml``).
    """
    from bastion.config import load_client_config, to_yaml

    result = load_client_config(Path(path))
    text = to_yaml(result.config, warnings=result.warnings)
    for warning in result.warnings:
        print(f"bastion import: {warning}", file=sys.stderr)
    if output is None:
        sys.stdout.write(text)
        return 0
    try:
        if force:
            _replace(output, text)
        else:
            fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                file.write(text)
    except FileExistsError:
        print(f"bastion import: {output} exists; use --force to replace it", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"bastion import: cannot write {output}: {exc.strerror}", file=sys.stderr)
        return 1
    count = len(result.config["servers"])
    print(f"bastion import: wrote {output} ({count} server(s))", file=sys.stderr)
    return 0


def _replace(output: str, text: str) -> None:
    """Write ``text`` to a new 0600 file beside ``output`` and rename it over ``output``: the
    result is a private regular file whatever was there (a 0644 file, a symlink, which is
    replaced rather than followed). The new file is removed if anything fails."""
    directory, name = os.path.split(output)
    fd, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, output)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
