"""``edit_file``'s exact-string replacement, read and written as one confined operation.

The file is read, the replacement computed, and the result written with the version that
was read as the expected version, so a change made in between (by a command in the
sandbox, say) turns into a conflict rather than being overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass

from bastion.workspace import jail
from bastion.workspace.errors import Conflict, InvalidInput, TooLarge
from bastion.workspace.paths import RelPath

__all__ = ["EditOutcome", "edit_file"]


@dataclass(frozen=True, slots=True)
class EditOutcome:
    write: jail.WriteOutcome
    replacements: int


def edit_file(
    ws_fd: int,
    rel: RelPath,
    old: str,
    new: str,
    *,
    replace_all: bool,
    expected_version: str | None,
    size_cap: int,
) -> EditOutcome:
    """Replace ``old`` by ``new``: exactly once, or every time with ``replace_all``.

    Raises:
        Conflict: a version mismatch, or ``old`` is absent or (without ``replace_all``)
            appears more than once.
        InvalidInput: ``old`` is empty, or the file is not UTF-8 text.
    """
    if not old:
        raise InvalidInput("old_text must not be empty")
    current = jail.read_file(ws_fd, rel, size_cap)
    if expected_version is not None and current.version != expected_version:
        raise Conflict(
            f"{rel.display} changed: it is at version {current.version}, you expected "
            f"{expected_version}; read it again and redo your edit"
        )
    try:
        text = current.data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"{rel.display} is not UTF-8 text; use write_file") from None
    count = text.count(old)
    if count == 0:
        raise Conflict(f"old_text was not found in {rel.display}; read the file again")
    if count > 1 and not replace_all:
        raise Conflict(
            f"old_text appears {count} times in {rel.display}; include more context to "
            "match exactly once, or pass replace_all"
        )
    updated = text.replace(old, new) if replace_all else text.replace(old, new, 1)
    data = updated.encode("utf-8")
    if len(data) > size_cap:
        raise TooLarge(f"the edited file would be larger than {size_cap} bytes")
    outcome = jail.write_file(
        ws_fd,
        rel,
        data,
        expected_version=current.version,
        create_only=False,
        make_dirs=False,
        size_cap=size_cap,
    )
    return EditOutcome(outcome, count if replace_all else 1)
