"""Resource URIs through a real ``bastion serve`` in front of an upstream that decodes the
URI it is given, like a file server (``tests.pipeline.files``).

IN-4: ``file:`` URIs are confined even when no root is configured (then every one is
refused), dot segments never pass, and other schemes that cannot fetch still work. AZ-3:
a URI spelled with needless percent-encoding (``.%65nv`` for ``.env``) is refused before
policy, so a deny rule on the normal spelling cannot be stepped around. A refused read
never reaches the upstream. AZ-1: a completion ref of a type off the spec is refused before
policy, so it cannot step around a deny on the resource it completes.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.pipeline.live import Gateway, policy_text, serve
from tests.support import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

DENIED = -32003
INVALID_PARAMS = -32602
KEYS = {"alice": ("dev",), "admin": ("admin",)}
RESOURCES = """\
  - id: dev-files
    effect: allow
    roles: [dev]
    resources: ["files+file:///**", "files+note://**"]
  - id: no-env
    effect: deny
    roles: [dev]
    resources: ["files+file:///**/.env"]
  - id: no-file-completion
    effect: deny
    principals: ["*"]
    methods: [completion/complete]
    resources: ["files+file:///**"]
"""
SERVERS = f"""\
  files:
    command: {sys.executable}
    args: [-m, tests.pipeline.files]
    cwd: {ROOT}
"""


def _with_resource_rules() -> str:
    text = policy_text(["files__reads"])
    return text.replace("  - id: admin-all\n", RESOURCES + "  - id: admin-all\n")


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("docs")
    (root / "readme.txt").write_text("readme")
    (root / ".env").write_text("API_KEY=secret")
    return root


@pytest.fixture(scope="module")
def rootless(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """The default guard settings: no ``file_roots``."""
    with serve(
        tmp_path_factory.mktemp("rootless"), SERVERS, _with_resource_rules(), KEYS
    ) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def rooted(tmp_path_factory: pytest.TempPathFactory, docs: Path) -> Iterator[Gateway]:
    guard = f"  uris: {{file_roots: [{docs}]}}\n"
    with serve(
        tmp_path_factory.mktemp("rooted"),
        SERVERS,
        _with_resource_rules(),
        KEYS,
        guard=guard,
    ) as gateway:
        yield gateway


def _read(gw: Gateway, uri: str) -> dict[str, Any]:
    answer = gw.modern("alice", "resources/read", {"uri": uri}, headers={"mcp-name": uri})
    body: dict[str, Any] = answer.json()
    return body


def _reads(gw: Gateway) -> list[str]:
    answer = gw.call("alice", "files__reads", {})
    reads: list[str] = answer["result"]["structuredContent"]["reads"]
    return reads


def test_in4_without_roots_every_file_uri_is_refused(rootless: Gateway, docs: Path) -> None:
    for uri, code in (
        (f"files+file://{docs}/readme.txt", INVALID_PARAMS),
        (f"files+file://{docs}/../etc/passwd", DENIED),  # dot segment: refused by AZ-3
        (f"files+file://{docs}/%2e%2e/etc/passwd", DENIED),  # not normal: refused by AZ-3
    ):
        error = _read(rootless, uri)["error"]
        assert error["code"] == code, uri
        assert str(docs) not in error["message"]
    assert _reads(rootless) == []


def test_in4_without_roots_other_schemes_still_work_and_fetching_ones_never(
    rootless: Gateway,
) -> None:
    assert _read(rootless, "files+note://hello")["result"]["contents"][0]["text"] == "hello"
    assert _read(rootless, "files+https://example.com/x")["error"]["code"] in (
        INVALID_PARAMS,
        DENIED,
    )


def test_in4_with_roots_files_inside_are_served_and_dot_segments_refused(
    rooted: Gateway, docs: Path
) -> None:
    ok = _read(rooted, f"files+file://{docs}/readme.txt")
    assert ok["result"]["contents"][0]["text"] == f"opened {docs}/readme.txt"
    for uri in (f"files+file://{docs}/../x", f"files+file://{docs}/%2E%2E/x"):
        assert "error" in _read(rooted, uri), uri
    assert _reads(rooted) == [f"{docs}/readme.txt"]


@pytest.mark.parametrize("spelling", [".%65nv", "%2Eenv", ".e%6Ev", ".en%76"])
def test_az3_a_needlessly_escaped_uri_cannot_step_around_a_deny_rule(
    rooted: Gateway, docs: Path, spelling: str
) -> None:
    assert _read(rooted, f"files+file://{docs}/.env")["error"]["code"] == DENIED
    error = _read(rooted, f"files+file://{docs}/{spelling}")["error"]
    assert error["code"] == DENIED
    assert f"{docs}/.env" not in _reads(rooted)
    records = [r for r in rooted.audit() if (r.get("target") or "").endswith(spelling)]
    assert records and all(r["rule_id"] == "invalid-name" for r in records)


# -- paths spelled another way (red-team F1) ------------------------------------------------

TREE_RULES = """\
  - id: dev-open
    effect: allow
    roles: [dev]
    tools: [files__open]
  - id: dev-tree
    effect: allow
    roles: [dev]
    resources: ["files+tree://root/**"]
  - id: no-secret-args
    effect: deny
    roles: [dev]
    tools: [files__open]
    when: {args: {path: {glob: "secret/**"}}}
  - id: no-secret-tree
    effect: deny
    roles: [dev]
    resources: ["files+tree://root/secret/**"]
"""


@pytest.fixture(scope="module")
def lenient(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """An upstream that drops empty and ``.`` segments and resolves ``..``, as the
    workspace server and most file servers do."""
    text = policy_text(["files__reads"])
    with serve(
        tmp_path_factory.mktemp("lenient"),
        SERVERS,
        text.replace("  - id: admin-all\n", TREE_RULES + "  - id: admin-all\n"),
        KEYS,
    ) as gateway:
        yield gateway


@pytest.mark.parametrize(
    "path", ["./secret/key", "secret//key", "secret/./key", "pub/../secret/key", "secret/key/"]
)
def test_az1_a_path_argument_spelled_another_way_is_denied_like_its_plain_spelling(
    lenient: Gateway, path: str
) -> None:
    """AZ-1, IN-4: a deny rule's glob on a path argument holds for every way an upstream
    may read the path (as sent, and with empty and ``.`` segments dropped and ``..``
    resolved), so ``./secret/key`` is denied like ``secret/key`` and never reaches the
    upstream; a plain path elsewhere is served."""
    before = len(_reads(lenient))
    assert lenient.call("alice", "files__open", {"path": "pub/a"})["result"]
    plain = lenient.call("alice", "files__open", {"path": "secret/key"})
    assert plain["error"]["code"] == DENIED
    other = lenient.call("alice", "files__open", {"path": path})
    assert other["error"]["code"] == DENIED, other
    assert _reads(lenient)[before:] == ["pub/a"]
    denied = [r for r in lenient.audit() if r.get("rule_id") == "no-secret-args"]
    assert len(denied) >= 2 and all(r["decision"] == "deny" for r in denied)


@pytest.mark.parametrize(
    "spelling",
    ["./secret/key", "secret//key", "secret/./key", "pub/../secret/key", "secret/key/"],
)
def test_az3_a_uri_with_dot_or_empty_segments_is_refused_not_matched(
    lenient: Gateway, spelling: str
) -> None:
    """AZ-3, IN-4: ``tree://root/./secret/key`` is ``tree://root/secret/key`` to the
    upstream, so a URI with dot or empty path segments is refused before policy, like a
    needlessly escaped one; the normal spelling is decided by the rules."""
    before = len(_reads(lenient))
    ok = _read(lenient, "files+tree://root/pub/a")
    assert ok["result"]["contents"][0]["text"] == "opened tree:pub/a"
    assert _read(lenient, "files+tree://root/secret/key")["error"]["code"] == DENIED
    error = _read(lenient, f"files+tree://root/{spelling}")["error"]
    assert error["code"] == DENIED
    assert _reads(lenient)[before:] == ["tree:pub/a"]
    records = [r for r in lenient.audit() if (r.get("target") or "").endswith(spelling)]
    assert records and all(r["rule_id"] == "invalid-name" for r in records)


# -- completion refs (red-team AZ-1) --------------------------------------------------------


@pytest.mark.parametrize(
    "ref",
    [
        {"type": "ref/Resource", "uri": "files+file:///{+path}"},
        {"uri": "files+file:///{+path}"},
        {"type": "ref/prompt ", "name": "x", "uri": "files+file:///{+path}"},
    ],
)
def test_az1_a_completion_ref_off_the_spec_never_reaches_a_denied_resource(
    rooted: Gateway, ref: dict[str, str]
) -> None:
    """AZ-1 over HTTP: completing ``files+file:///{+path}`` is denied to everyone; a ref
    whose type is spelled off the spec (or missing) used to go without a target, so the
    admin's method-wide allow let it through to the upstream, whose values came back
    (audited as allowed). It is refused -32602 before policy, never reaches the upstream
    and is audited as a deny."""
    argument = {"name": "path", "value": "re"}
    spec = {"type": "ref/resource", "uri": "files+file:///{+path}"}
    denied = rooted.modern("admin", "completion/complete", {"ref": spec, "argument": argument})
    assert denied.json()["error"]["code"] == DENIED
    odd = rooted.modern("admin", "completion/complete", {"ref": ref, "argument": argument})
    assert odd.json().get("error", {}).get("code") == INVALID_PARAMS, odd.text
    assert not [r for r in _reads(rooted) if r.startswith("complete:")]
    records = [r for r in rooted.audit() if r["method"] == "completion/complete"]
    assert records and all(r["decision"] == "deny" for r in records)
