"""Listing, searching, deleting and moving inside a workspace, confined like ``jail``.

Walks use ``os.fwalk(follow_symlinks=False)``, which descends by directory descriptors and
checks each directory it enters is the one it listed, so a directory swapped for a
symlink mid-walk is skipped rather than followed. Search opens each file with
``jail.open_regular`` (regular, single-link files only). Removal and renames act on
directory entries (``unlinkat``, ``renameat``) and never follow a symlink. Functions here
block; callers run them in a worker thread.
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass, field
from typing import Final

from bastion.workspace.errors import AlreadyExists, InvalidInput, NotFound, WorkspaceError
from bastion.workspace.jail import lstat, mapped_errors, open_dir, open_regular, rename_noreplace
from bastion.workspace.paths import RelPath

__all__ = ["Entry", "Listing", "SearchHit", "SearchResult", "delete", "listing", "move", "search"]

SKIPPED_DIRS: Final = frozenset({".git"})  # search only: history is not source
BINARY_SNIFF: Final = 8192  # a NUL in the first 8 KiB marks a file as binary
LINE_PREVIEW: Final = 300  # characters of a matching line returned


@dataclass(frozen=True, slots=True)
class Entry:
    path: str
    type: str  # "file", "dir", "symlink" or "other"
    size: int


@dataclass(slots=True)
class Listing:
    entries: list[Entry] = field(default_factory=list)
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class SearchHit:
    path: str
    line: int
    text: str


@dataclass(slots=True)
class SearchResult:
    hits: list[SearchHit] = field(default_factory=list)
    files_searched: int = 0
    truncated: bool = False


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    return "symlink" if stat.S_ISLNK(mode) else "other"


def _join(base: RelPath, relative_dir: str, name: str) -> str:
    inner = relative_dir.removeprefix(".").lstrip("/")
    return "/".join(p for p in (base.text, inner, name) if p)


def listing(ws_fd: int, rel: RelPath, *, recursive: bool, cap: int) -> Listing:
    """The entries under directory ``rel``, sorted by path, at most ``cap`` of them.

    Raises:
        WorkspaceError: ``rel`` is missing, a symlink, or not a directory.
    """
    result = Listing()
    with mapped_errors(rel):
        dir_fd = open_dir(ws_fd, rel.parts)
        try:
            for relative_dir, dirs, files, fd in os.fwalk(
                ".", dir_fd=dir_fd, follow_symlinks=False
            ):
                dirs.sort()
                for name in sorted([*dirs, *files]):
                    st = lstat(fd, name)
                    if st is None:
                        continue  # removed while we looked
                    if len(result.entries) >= cap:
                        result.truncated = True
                        return result
                    size = st.st_size if stat.S_ISREG(st.st_mode) else 0
                    result.entries.append(
                        Entry(_join(rel, relative_dir, name), _kind(st.st_mode), size)
                    )
                if not recursive:
                    break
        finally:
            os.close(dir_fd)
    result.entries.sort(key=lambda e: e.path)
    return result


def search(
    ws_fd: int,
    rel: RelPath,
    query: str,
    *,
    ignore_case: bool,
    max_hits: int,
    max_files: int,
    max_file_bytes: int,
) -> SearchResult:
    """Lines containing ``query`` (plain text) in the text files under ``rel``.

    Binary files (a NUL early on), files over ``max_file_bytes`` and anything that is not
    a regular single-link file are skipped.

    Raises:
        WorkspaceError: ``rel`` is missing, a symlink, or not a directory.
    """
    needle = query.lower() if ignore_case else query
    result = SearchResult()
    with mapped_errors(rel):
        dir_fd = open_dir(ws_fd, rel.parts)
        try:
            for relative_dir, dirs, files, fd in os.fwalk(
                ".", dir_fd=dir_fd, follow_symlinks=False
            ):
                dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
                for name in sorted(files):
                    if result.files_searched >= max_files or len(result.hits) >= max_hits:
                        result.truncated = True
                        return result
                    path = _join(rel, relative_dir, name)
                    text = _text_of(fd, name, path, max_file_bytes)
                    if text is None:
                        continue
                    result.files_searched += 1
                    for number, line in enumerate(text.splitlines(), start=1):
                        haystack = line.lower() if ignore_case else line
                        if needle in haystack:
                            if len(result.hits) >= max_hits:
                                result.truncated = True
                                return result
                            result.hits.append(SearchHit(path, number, line[:LINE_PREVIEW]))
        finally:
            os.close(dir_fd)
    return result


def _text_of(dir_fd: int, name: str, path: str, max_bytes: int) -> str | None:
    try:
        fd, st = open_regular(dir_fd, name, path)
    except (WorkspaceError, OSError):
        return None
    try:
        if st.st_size > max_bytes:
            return None
        data = os.read(fd, max_bytes + 1)
    finally:
        os.close(fd)
    if len(data) > max_bytes or b"\x00" in data[:BINARY_SNIFF]:
        return None
    return data.decode("utf-8", errors="replace")


def delete(ws_fd: int, rel: RelPath, *, recursive: bool) -> str:
    """Remove a file, symlink or (empty, or with ``recursive``) directory; returns its type.

    Raises:
        WorkspaceError: missing, or a non-empty directory without ``recursive``.
    """
    with mapped_errors(rel):
        dir_fd = open_dir(ws_fd, rel.parent.parts)
        try:
            st = lstat(dir_fd, rel.name)
            if st is None:
                raise NotFound(f"{rel.display}: no such file or directory")
            kind = _kind(st.st_mode)
            if kind != "dir":
                os.unlink(rel.name, dir_fd=dir_fd)
            elif recursive:
                # The descriptor-based rmtree: it never follows a symlink out of the tree.
                shutil.rmtree(rel.name, dir_fd=dir_fd)
            else:
                os.rmdir(rel.name, dir_fd=dir_fd)
        finally:
            os.close(dir_fd)
    return kind


def move(ws_fd: int, src: RelPath, dst: RelPath, *, overwrite: bool, make_dirs: bool) -> str:
    """Rename ``src`` to ``dst`` inside the workspace; returns the moved entry's type.

    Raises:
        AlreadyExists: ``dst`` exists and not ``overwrite``.
        WorkspaceError: ``src`` is missing, or a path is refused.
    """
    if src.parts == dst.parts:
        raise InvalidInput("source and destination are the same path")
    if dst.parts[: len(src.parts)] == src.parts:
        raise InvalidInput(f"cannot move {src.display} into itself")
    with mapped_errors(src):
        src_dir = open_dir(ws_fd, src.parent.parts)
    try:
        st = lstat(src_dir, src.name)
        if st is None:
            raise NotFound(f"{src.display}: no such file or directory")
        with mapped_errors(dst):
            dst_dir = open_dir(ws_fd, dst.parent.parts, create=make_dirs)
            try:
                if overwrite:
                    os.rename(src.name, dst.name, src_dir_fd=src_dir, dst_dir_fd=dst_dir)
                else:
                    try:
                        rename_noreplace(src_dir, src.name, dst_dir, dst.name)
                    except FileExistsError:
                        raise AlreadyExists(
                            f"{dst.display} already exists (pass overwrite to replace it)"
                        ) from None
            finally:
                os.close(dst_dir)
    finally:
        os.close(src_dir)
    return _kind(st.st_mode)
