"""Path and name checks before any system call (pure code)."""

from __future__ import annotations

import pytest

from bastion.workspace.errors import InvalidInput
from bastion.workspace.paths import check_workspace_name, parse_path


@pytest.mark.parametrize(
    ("given", "parts"),
    [
        ("a/b.py", ("a", "b.py")),
        ("./a//b/", ("a", "b")),
        ("caf\u00e9/\u65e5\u672c.txt", ("caf\u00e9", "\u65e5\u672c.txt")),
        ("...", ("...",)),
        ("a b/c-d_e.f", ("a b", "c-d_e.f")),
    ],
)
def test_accepted_paths(given: str, parts: tuple[str, ...]) -> None:
    assert parse_path(given).parts == parts


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        ("../x", "'..'"),
        ("a/..", "'..'"),
        ("/etc/passwd", "absolute"),
        ("a\x00b", "NUL"),
        ("a\\b", "'/'"),
        ("\ud800", "surrogate"),
        ("a\u202eb", "U+202E"),
        ("a\x7fb", "U+007F"),
        ("a\u0085b", "U+0085"),
        ("\uff0e\uff0e/x", "U+FF0E"),  # fullwidth dots: not "..", and refused
        ("a\u2215b", "U+2215"),
        ("x" * 256, "255 bytes"),
        ("/".join("d" * 65), "deeper"),
        ("", "root"),
        (".", "root"),
    ],
)
def test_refused_paths(given: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_path(given)
    assert reason in refused.value.message


def test_the_root_only_where_allowed() -> None:
    assert parse_path(".", allow_root=True).parts == ()
    assert parse_path("", allow_root=True).display == "."


@pytest.mark.parametrize("name", ["demo", "a", "proj-1.v2_x", "0" * 63])
def test_workspace_names(name: str) -> None:
    assert check_workspace_name(name) == name


@pytest.mark.parametrize("name", ["", ".", "..", "-a", "_a", "A", "a/b", "a b", "0" * 64, "é"])
def test_bad_workspace_names(name: str) -> None:
    with pytest.raises(InvalidInput):
        check_workspace_name(name)
