"""IN-4: resource URIs are confined: allow-listed schemes only, fetching schemes never,
``file:`` decoded once, no encoded separators/dots/double encoding/look-alikes, realpath
inside a configured root; errors carry no path or content."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.guard import UriPolicy, UriRefused


@pytest.fixture
def root(tmp_path: Path) -> Path:
    base = tmp_path / "root"
    (base / "docs").mkdir(parents=True)
    (base / "docs" / "a b.txt").write_text("SECRET-CONTENT")
    (tmp_path / "outside.txt").write_text("SECRET-CONTENT")
    (base / "escape").symlink_to(tmp_path)  # a symlink out of the root
    (base / "inner").symlink_to(base / "docs")  # a symlink that stays inside
    return base


def test_in4_a_file_inside_the_root_is_allowed(root: Path) -> None:
    policy = UriPolicy(file_roots=[root])
    assert policy.resolve_file(f"file://{root}/docs/a%20b.txt") == root / "docs" / "a b.txt"
    assert policy.check(f"files+file://{root}/inner/a%20b.txt")  # namespaced by the gateway
    assert policy.check(f"file://localhost{root}/docs")


@pytest.mark.parametrize(
    "suffix",
    [
        "/../outside.txt",
        "/docs/../../outside.txt",
        "/escape/outside.txt",  # symlink out of the root
        "/%2e%2e/outside.txt",
        "/%2E%2E%2Foutside.txt",
        "/docs%2f..%2f..%2foutside.txt",
        "/docs%5c..%5coutside.txt",
        "/docs\\..\\outside.txt",
        "/%252e%252e/outside.txt",  # double encoding
        "/docs/a%00.txt",
        "/docs/a\x00.txt",
        "/\uff0e\uff0e/outside.txt",  # fullwidth dots
        "/docs\u2215..\u2215outside.txt",  # division slash
        "/%EF%BC%8E%EF%BC%8E/outside.txt",  # encoded fullwidth dots
        "/docs/a.txt?x=1",
        "/docs/%",
        "/docs/%zz",
    ],
)
def test_in4_escapes_are_refused(root: Path, suffix: str) -> None:
    with pytest.raises(UriRefused) as caught:
        UriPolicy(file_roots=[root]).check(f"file://{root}{suffix}")
    assert "SECRET" not in caught.value.wire_message and str(root) not in caught.value.wire_message
    assert caught.value.wire_message.startswith("Resource URI refused")


@pytest.mark.parametrize(
    "uri",
    [
        "http://169.254.169.254/latest/meta-data",
        "https://example.com/x",
        "files+https://example.com/x",
        "gopher://127.0.0.1:6379/_INFO",
        "jar:file:///x.jar!/a",
        "php://filter/resource=index.php",
        "data:text/plain,hi",
        "ftp://x/y",
        "file://server/share/x",  # UNC
        "file:////server/share/x",  # UNC, other spelling
        "//server/share/x",  # no scheme
        "\\\\server\\share\\x",
        "unknown://x",
        "",
    ],
)
def test_in4_fetching_schemes_and_unc_are_refused(root: Path, uri: str) -> None:
    with pytest.raises(UriRefused):
        UriPolicy(file_roots=[root], schemes=["file", "workspace", "note"]).check(uri)


def test_in4_allow_list_is_configurable_but_never_fetching_schemes(root: Path) -> None:
    assert UriPolicy(schemes=["note"]).check("note://deploy") == "note://deploy"
    with pytest.raises(UriRefused):
        UriPolicy().check("note://deploy")
    with pytest.raises(ValueError, match="fetch"):
        UriPolicy(schemes=["file", "HTTPS"])
    with pytest.raises(ValueError, match="absolute"):
        UriPolicy(file_roots=["relative/dir"])


def test_in4_file_uris_need_a_configured_root() -> None:
    with pytest.raises(UriRefused, match="no file roots"):
        UriPolicy().check("file:///etc/hostname")


_SEGMENTS = st.sampled_from(
    ["docs", "a%20b.txt", "..", ".", "escape", "inner", "%2e%2e", "%2e", "%2f", "%5c", "%25",
     "\\", "\x00", "\uff0e", "outside.txt", "", "%41", "..%2f", "~", "%c0%ae"]
)  # fmt: skip


@settings(
    max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(_SEGMENTS, max_size=8), st.sampled_from(["file://", "file://localhost", "x+file://"])
)
def test_in4_confinement_never_escapes_the_root(
    root: Path, segments: list[str], prefix: str
) -> None:
    policy = UriPolicy(file_roots=[root])
    uri = f"{prefix}{root}/" + "/".join(segments)
    try:
        policy.check(uri)
        resolved = policy.resolve_file(uri[uri.index("file://") :])
    except UriRefused:
        return
    real_root = os.path.realpath(root)
    assert resolved == Path(os.path.realpath(resolved))
    assert str(resolved) == real_root or str(resolved).startswith(real_root + os.sep)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.text(max_size=60))
def test_in4_arbitrary_uris_are_refused_or_allowed_never_crash(root: Path, text: str) -> None:
    with contextlib.suppress(UriRefused):
        UriPolicy(file_roots=[root]).check(text)
