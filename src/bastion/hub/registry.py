"""The per-user instance registry: one small JSON file per running MCP instance.

Files live in ``<data dir>/bastion/instances/`` (``$XDG_DATA_HOME``, macOS ``~/Library/
Application Support``, Windows ``%LOCALAPPDATA%``). The directory is the user's alone (0700,
tightened if looser, refused if another user owns it or could swap it through a directory
above it; missing parents are made 0700); each file is written 0600 through a
temporary file and a rename, so a reader never sees half a record. Reading trusts nothing:
size-bounded, regular files of ours only, strictly decoded, loopback URLs only; anything
else is skipped with a log line. Library code here never reads ``os.environ``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import secrets
import stat
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Final
from urllib.parse import urlsplit

import msgspec

from bastion._file_trust import untrusted_step
from bastion.errors import ConfigError

__all__ = [
    "MAX_RECORD_BYTES",
    "InstanceRecord",
    "default_registry_dir",
    "ensure_registry_dir",
    "is_loopback_url",
    "new_instance_id",
    "read_record",
    "record_path",
    "registered",
    "remove_record",
    "write_record",
]

logger = logging.getLogger(__name__)

MAX_RECORD_BYTES: Final = 16 * 1024  # a record is ~300 bytes; anything this big is not one
SUFFIX: Final = ".json"
DIR_MODE: Final = 0o700
FILE_MODE: Final = 0o600
_ID_PATTERN: Final = r"^[A-Za-z0-9_-]{8,64}$"


class InstanceRecord(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a running instance tells the hub about itself."""

    id: Annotated[str, msgspec.Meta(pattern=_ID_PATTERN)]
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    project: Annotated[str, msgspec.Meta(max_length=4096)]  # the instance's working directory
    url: Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]  # its MCP endpoint
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)]
    pid: Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)]  # the process that owns the entry
    started_at: float  # wall-clock seconds since the epoch, for display only
    protocol_versions: Annotated[
        tuple[Annotated[str, msgspec.Meta(max_length=32)], ...], msgspec.Meta(max_length=16)
    ] = ()
    # A bearer token a local client would send; None until the instance requires one.
    credential: Annotated[str, msgspec.Meta(max_length=4096)] | None = None

    def __repr__(self) -> str:  # the credential never reaches a log line
        return f"InstanceRecord(id={self.id!r}, name={self.name!r}, url={self.url!r})"

    @classmethod
    def create(
        cls,
        *,
        name: str,
        url: str,
        project: str | os.PathLike[str],
        pid: int | None = None,
        protocol_versions: tuple[str, ...] = (),
        credential: str | None = None,
    ) -> InstanceRecord:
        """A record for this process (or ``pid``), with a fresh id and the current time.

        Raises:
            ConfigError: ``url`` is not an http(s) URL on a loopback address with a port.
        """
        port = _loopback_port(url)
        if port is None:
            raise ConfigError("the instance URL must be http(s) on a loopback address, with a port")
        return cls(
            id=new_instance_id(),
            name=name,
            project=os.fspath(project),
            url=url,
            port=port,
            pid=os.getpid() if pid is None else pid,
            started_at=time.time(),
            protocol_versions=protocol_versions,
            credential=credential,
        )


_decoder: Final = msgspec.json.Decoder(InstanceRecord)


def new_instance_id() -> str:
    return secrets.token_urlsafe(12)  # 16 characters of [A-Za-z0-9_-]


def default_registry_dir(
    environ: Mapping[str, str], *, platform: str = sys.platform, home: Path | None = None
) -> Path:
    """``bastion/instances`` under the per-user data directory of ``platform``."""
    home = Path.home() if home is None else home
    if platform == "win32":
        base = Path(environ.get("LOCALAPPDATA") or home / "AppData" / "Local")
    elif platform == "darwin":
        base = home / "Library" / "Application Support"
    else:
        xdg = environ.get("XDG_DATA_HOME", "")
        # The XDG spec: a relative value is invalid and must be ignored.
        base = Path(xdg) if xdg and os.path.isabs(xdg) else home / ".local" / "share"
    return base / "bastion" / "instances"


def ensure_registry_dir(directory: Path) -> Path:
    """Create ``directory`` 0700 if needed and check it is a private directory of ours.

    Raises:
        ConfigError: it is not a directory, is a symlink, or belongs to another user, or a
            directory above it lets another user swap it (see ``_refuse_swappable``).
    """
    # Parents too (XDG's rule): pathlib would make them 0777 less the umask, often 0775.
    for missing in reversed([p for p in (directory, *directory.parents) if not p.exists()]):
        with contextlib.suppress(FileExistsError):
            missing.mkdir(mode=DIR_MODE)
    info = directory.lstat()
    if not stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"{directory} is not a directory")
    if hasattr(os, "getuid"):  # POSIX ownership and modes; Windows relies on the profile ACL
        if info.st_uid != os.getuid():
            raise ConfigError(f"{directory} belongs to another user")
        if stat.S_IMODE(info.st_mode) & 0o077:
            logger.warning("registry %s was readable by others; setting it to 0700", directory)
            os.chmod(directory, DIR_MODE)
        _refuse_swappable(directory)
    return directory


def _refuse_swappable(directory: Path) -> None:
    """Whoever may rename entries of a directory on the way to ``directory`` (a parent, a
    symlink, a link's target) may swap in a registry of their own: ``untrusted_step`` walks
    that way as the kernel does, and each entry must be root's or ours and writable by
    nobody else, a sticky directory (as /tmp is) and a user private group excepted.

    Raises:
        ConfigError: naming the directory, the entry at fault, and the fix.
    """
    step = untrusted_step(directory)
    if step is None:
        return
    if step.fix.startswith("chown"):  # owned by another user: they may change it at will
        raise ConfigError(
            f"registry {directory}: {step.entry} {step.why}, who may replace it;"
            " use a registry directory elsewhere"
        )
    raise ConfigError(
        f"registry {directory}: other users may replace it through {step.entry} ({step.why});"
        f" run: chmod go-w {step.entry}"
    )


def record_path(directory: Path, instance_id: str) -> Path:
    return directory / f"{instance_id}{SUFFIX}"


def write_record(directory: Path, record: InstanceRecord) -> Path:
    """Write ``record`` atomically (temporary file, fsync, rename) with mode 0600.

    Raises:
        ConfigError: the registry directory is not a private directory of ours.
        OSError: the file could not be written.
    """
    ensure_registry_dir(directory)
    final = record_path(directory, record.id)
    # A dot-name: readers skip it, and the rename below replaces the record in one step.
    temporary = directory / f".{record.id}.{secrets.token_hex(4)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(temporary, flags, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(msgspec.json.encode(record))
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, final)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return final


def remove_record(directory: Path, instance_id: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(record_path(directory, instance_id))


@contextlib.contextmanager
def registered(directory: Path, record: InstanceRecord) -> Iterator[Path]:
    """The record's file exists for the duration of the ``with`` block."""
    path = write_record(directory, record)
    logger.info("registered %s as %s", record.url, path)
    try:
        yield path
    finally:
        remove_record(directory, record.id)
        logger.info("unregistered %s", record.url)


def read_record(path: Path) -> InstanceRecord | None:
    """The record in ``path``, or None (with a log line) when it is not a valid record of ours."""
    try:
        data = _read_bounded(path)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        logger.warning("skipping registry file %s: %s", path.name, exc)
        return None
    try:
        record = _decoder.decode(data)
    except msgspec.ValidationError as exc:
        logger.warning("skipping registry file %s: invalid record (%s)", path.name, exc)
        return None
    except msgspec.DecodeError:
        logger.warning("skipping registry file %s: not JSON", path.name)
        return None
    if path.name != f"{record.id}{SUFFIX}":
        logger.warning("skipping registry file %s: its name does not match its id", path.name)
        return None
    if _loopback_port(record.url) != record.port:
        logger.warning("skipping registry file %s: URL not loopback or port differs", path.name)
        return None
    return record


def _read_bounded(path: Path) -> bytes:
    # O_NONBLOCK: a FIFO planted in the directory must not hang the reader.
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("not a regular file")
        if hasattr(os, "getuid") and info.st_uid != os.getuid():
            raise ValueError("owned by another user")
        if info.st_size > MAX_RECORD_BYTES:
            raise ValueError(f"larger than {MAX_RECORD_BYTES} bytes")
        data = os.read(fd, MAX_RECORD_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_RECORD_BYTES:
        raise ValueError(f"larger than {MAX_RECORD_BYTES} bytes")
    return data


def is_loopback_url(url: str) -> bool:
    """True for an http(s) URL whose host is a loopback address (or ``localhost``) and
    which names its port."""
    return _loopback_port(url) is not None


def _loopback_port(url: str) -> int | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or port is None or parts.hostname is None:
        return None
    if parts.username is not None or parts.password is not None:
        return None
    if parts.hostname == "localhost":
        return port
    try:
        return port if ipaddress.ip_address(parts.hostname).is_loopback else None
    except ValueError:
        return None
