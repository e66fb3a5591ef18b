"""The gateway's databases checked before ``bastion serve`` or ``bastion stdio`` starts: a
path that can never hold one (a directory, a device, a file where a directory should be) is
a ``ConfigError`` naming the setting and the path (exit 78), not SQLite's "unable to open
database file" as a traceback from inside the running gateway (IN-1).

A path that does not exist yet is fine: the database and its directory (0700) are created
when it opens. Who may write it is checked there too (``_sqlite.check_private_db``).
"""

from __future__ import annotations

import os
from pathlib import Path

from bastion.config import Config
from bastion.errors import ConfigError

__all__ = ["refuse_unusable_databases"]


def refuse_unusable_databases(config: Config) -> None:
    """Raises:
    ConfigError: ``audit.db`` or ``guard.pins.db_path`` (or the default either stands for)
        names something that cannot be a database file.
    """
    from bastion._paths import audit_db
    from bastion.guard.settings import default_pin_db

    databases: list[tuple[str, Path]] = []
    if config.audit.enabled:
        databases.append(("audit.db", Path(config.audit.db) if config.audit.db else audit_db()))
    pins = config.guard.pins
    if pins.enabled:
        pin_db = Path(pins.db_path) if pins.db_path else default_pin_db(os.environ)
        databases.append(("guard.pins.db_path", pin_db))
    for setting, path in databases:
        try:
            problem = _unusable(path)
        except OSError as exc:
            problem = f"cannot examine {path}: {exc.strerror or exc}"
        if problem is not None:
            raise ConfigError(f"{setting}: {problem}")


def _unusable(path: Path) -> str | None:
    """Why ``path`` cannot be a database file, or None."""
    if str(path) == ":memory:":
        return None
    if path.is_dir():
        return f"{path} is a directory, not a database file"
    if path.exists():
        return None if path.is_file() else f"{path} is not a regular file"
    for parent in path.parents:
        if parent.exists():
            return None if parent.is_dir() else f"{parent} is not a directory"
    return None
