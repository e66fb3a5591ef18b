"""``bastion stdio``'s fast start: ``initialize`` is answered before the heavy imports, with
exactly the answer the full server would give, and the session carries on from there."""

from __future__ import annotations

import json
import os
import random
import secrets
import subprocess
from pathlib import Path

import anyio
import pytest

from bastion.config import Config
from bastion.errors import BastionError, InvalidRequest
from bastion.gateway import Gateway
from bastion.protocol.codec import decode
from bastion.protocol.jsonrpc import Request
from bastion.protocol.meta import is_modern_request
from bastion.protocol.methods import parse_params
from bastion.protocol.request_state import RequestStateSealer
from bastion.protocol.types import InitializeParams
from tests.cli.test_stop_signals import audited
from tests.server.raw import raw_client
from tests.support import BASTION

pytestmark = pytest.mark.e2e

INIT = {
    "jsonrpc": "2.0",
    "id": 7,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {"sampling": {}},
        "clientInfo": {"name": "desk", "version": "1"},
    },
}


def run_stdio(*messages: dict[str, object]) -> list[dict[str, object]]:
    data = "".join(json.dumps(m) + "\n" for m in messages).encode()
    out = subprocess.run(
        [str(BASTION), "stdio"], input=data, capture_output=True, timeout=60, check=True
    )
    return [json.loads(line) for line in out.stdout.splitlines()]


def full_server_answer() -> dict[str, object]:
    gateway = Gateway(Config(), os.environ, sealer=RequestStateSealer([secrets.token_bytes(32)]))

    async def ask() -> dict[str, object]:
        async with raw_client(gateway.app) as client:
            return await client.call("initialize", INIT["params"], 7)  # type: ignore[arg-type]

    return anyio.run(ask)


def test_fast_answer_is_the_full_servers_answer_and_the_session_goes_on() -> None:
    call = {
        "jsonrpc": "2.0",
        "id": 8,
        "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "after the fast start"}},
    }
    answers = run_stdio(INIT, {"jsonrpc": "2.0", "method": "notifications/initialized"}, call)
    by_id = {a.get("id"): a for a in answers if "id" in a}
    assert by_id[7] == full_server_answer()
    assert by_id[7]["result"]["protocolVersion"] == "2025-06-18"  # type: ignore[index]
    assert by_id[8]["result"]["content"][0]["text"] == "after the fast start"  # type: ignore[index]


def test_other_first_messages_go_to_the_full_server() -> None:
    meta = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    discover = {"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": meta}}
    bad_init = {"jsonrpc": "2.0", "id": 2, "method": "initialize", "params": {}}
    answers = run_stdio(discover, bad_init)
    by_id = {a.get("id"): a for a in answers if "id" in a}
    assert "2026-07-28" in by_id[1]["result"]["supportedVersions"]  # type: ignore[index]
    assert by_id[2]["error"]["code"] == -32602  # type: ignore[index]


# -- IN-1, IN-2: only what the full server would take as an initialize is answered early --

VALID_LINE = json.dumps(INIT).encode()


def full_server_initialize(line: bytes) -> tuple[object, dict[str, object]]:
    """What the full server makes of ``line`` as a first message: its id and params when it
    is a valid 2025-11-25 initialize request; raises the error it would answer otherwise."""
    message = decode(line)
    if not isinstance(message, Request) or message.method != "initialize":
        raise InvalidRequest("not an initialize request")
    if is_modern_request(message.params):
        raise InvalidRequest("a 2026-07-28 request")
    parse_params(InitializeParams, message.params)
    return message.id, message.params


def variants() -> list[bytes]:
    """First lines near a valid initialize: each way the two parsers could disagree."""
    params = INIT["params"]
    lines = [
        VALID_LINE,
        b"[" + VALID_LINE + b"]",
        b"42",
        b'"initialize"',
        b"null",
        b"",
        b" " + VALID_LINE + b"\r",
        b"\xef\xbb\xbf" + VALID_LINE,
        VALID_LINE.replace(b'"desk"', b'"d\xffsk"'),
        VALID_LINE.replace(b'"desk"', b'"d\xed\xa0\x80sk"'),  # a surrogate coded in UTF-8
        VALID_LINE.replace(b'"desk"', b'"d\x01sk"'),
        VALID_LINE.replace(b'"desk"', b'"\\ud800"'),
        VALID_LINE.replace(b'"desk"', b'"\\udc00x"'),
        VALID_LINE.replace(b'"desk"', b'"\\ud83d\\ude00"'),
        VALID_LINE.replace(b'"sampling"', b'"\\ud800"'),
        VALID_LINE[:-1] + b',"params":[]}',
        VALID_LINE[:-1] + b',"id":8}',
        VALID_LINE + b" x",
    ]
    for odd in ("NaN", "Infinity", "-Infinity", "1e400", "-1e999", "1e-400", "1.5", "-0", "1E5"):
        lines.append(VALID_LINE.replace(b'"sampling": {}', f'"sampling": {odd}'.encode()))
    for depth in (1, 60, 61, 62, 63, 64, 65, 900):
        nested = "[" * depth + "]" * depth
        lines.append(VALID_LINE.replace(b'"sampling": {}', f'"sampling": {nested}'.encode()))
    envelope: list[dict[str, object]] = [
        {**INIT, "bogus": 1},
        {**INIT, "result": {}},
        {**INIT, "error": {"code": 1, "message": "x"}},
        {**INIT, "jsonrpc": "2.0 "},
        {**INIT, "jsonrpc": 2.0},
        {k: v for k, v in INIT.items() if k != "jsonrpc"},
        {k: v for k, v in INIT.items() if k != "id"},
        {k: v for k, v in INIT.items() if k != "params"},
        {**INIT, "method": "Initialize"},
    ]
    for request_id in (True, None, 1.5, 1.0, [], {}, "", "x", -1, 2**63, 10**400):
        envelope.append({**INIT, "id": request_id})
    changes: list[dict[str, object]] = [
        {"protocolVersion": 2025},
        {"protocolVersion": "1999-01-01"},
        {"capabilities": []},
        {"capabilities": None},
        {"clientInfo": {}},
        {"clientInfo": {"name": "d"}},
        {"clientInfo": {"name": "d", "version": 1}},
        {"clientInfo": {"name": "d", "version": "1", "title": 3}},
        {"clientInfo": {"name": "d", "version": "1", "title": "T", "extra": [1]}},
        {"_meta": []},
        {"_meta": {"progressToken": 1}},
        {"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}},
        {"extra": {"x": [1, 2]}},
    ]
    envelope += [{**INIT, "params": {**params, **change}} for change in changes]  # type: ignore[dict-item]
    envelope.append({**INIT, "params": {k: v for k, v in params.items() if k != "clientInfo"}})  # type: ignore[union-attr]
    lines += [json.dumps(m).encode() for m in envelope]
    return lines


def mutations(count: int) -> list[bytes]:
    """``count`` random edits of a valid line (seeded: the same every run)."""
    pieces = [b"{", b"}", b"[", b"]", b'"', b",", b":", b"\\", b"\\u", b"d800", b"0", b"9"]
    pieces += [b"NaN", b"1e999", b"-", b".", b" ", b"true", b"null", b"\xff", b"\xc3\xa9"]
    rng = random.Random(1234)
    lines = []
    for _ in range(count):
        line = bytearray(VALID_LINE)
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(line))
            edit = rng.choice(("insert", "delete", "replace"))
            if edit == "delete":
                del line[at : at + rng.randint(1, 4)]
            else:
                line[at : at + (edit == "replace")] = rng.choice(pieces)
        lines.append(bytes(line))
    return lines


def test_the_fast_start_answers_only_what_the_full_server_takes_as_initialize_IN1_IN2() -> None:
    """The real decoder and ``InitializeParams`` judge ~3,100 first lines: the fast start
    takes none they refuse, with the same id and params for those it takes."""
    from bastion.cli.fast_start import initialize_request  # new with IN-1's fix

    taken, wrong = 0, []
    for line in variants() + mutations(3000):
        try:
            expected = full_server_initialize(line)
        except BastionError:
            expected = None
        fast = initialize_request(line)
        taken += fast is not None
        if fast is not None and fast != expected:
            wrong.append(line)
    assert wrong == [], f"answered early, not an initialize to the full server: {wrong[:5]}"
    assert initialize_request(VALID_LINE) is not None
    assert taken > 100  # the check is not vacuous


FIRST_LINES = {
    "a batch": (b'[{"jsonrpc":"2.0","id":1,"method":"ping"}]', -32600),
    "a number": (b"42", -32600),
    "capabilities nested 900 deep": (
        VALID_LINE.replace(b'"sampling": {}', b'"x": ' + b"[" * 900 + b"]" * 900),
        -32700,
    ),
    "NaN": (VALID_LINE.replace(b'"sampling": {}', b'"x": NaN'), -32700),
    "a lone surrogate": (VALID_LINE.replace(b'"desk"', b'"\\ud800"'), -32700),
    "an unknown envelope field": (json.dumps({**INIT, "bogus": 1}).encode(), -32600),
    "a method with a result": (json.dumps({**INIT, "result": {}}).encode(), -32600),
    "no client name": (
        json.dumps({**INIT, "params": {**INIT["params"], "clientInfo": {}}}).encode(),  # type: ignore[dict-item]
        -32602,
    ),
}


@pytest.mark.parametrize(
    ("face", "name"),
    [("stdio", name) for name in FIRST_LINES] + [("hub", "a batch"), ("hub", "a number")],
)
def test_a_first_line_that_is_no_valid_initialize_is_answered_by_the_full_server_IN1_IN2_IN5(
    face: str, name: str
) -> None:
    """The old fast start crashed on JSON that was not an object (rc 1, a traceback) and
    answered as initialize lines the decoder refuses; they now get the full server's error,
    and the session goes on: a later initialize is answered."""
    line, code = FIRST_LINES[name]
    out = subprocess.run(
        [str(BASTION), face],
        input=line + b"\n" + json.dumps({**INIT, "id": 9}).encode() + b"\n",
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    assert b"Traceback" not in out.stderr, out.stderr.decode(errors="replace")
    answers = [json.loads(answer) for answer in out.stdout.splitlines()]
    assert answers[0]["error"]["code"] == code, answers
    assert "result" not in answers[0]
    assert answers[1]["id"] == 9 and answers[1]["result"]["protocolVersion"] == "2025-06-18"


# -- AZ-1, AD-1: the fast-started initialize is authorized and audited like any request --


def _stdio_with(config: Path, *messages: dict[str, object]) -> subprocess.CompletedProcess[str]:
    data = "".join(json.dumps(m) + "\n" for m in messages)
    return subprocess.run(
        [str(BASTION), "stdio", "-c", str(config)],
        input=data,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_fast_started_initialize_is_audited_and_answered_once_AD1(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    config = tmp_path / "bastion.yaml"
    config.write_text(json.dumps({"audit": {"db": str(db)}}))
    done = _stdio_with(config, INIT, {"jsonrpc": "2.0", "id": 8, "method": "tools/list"})
    assert done.returncode == 0, done.stderr
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    assert [a.get("id") for a in answers].count(7) == 1  # the replay's answer stays off the wire
    initialize = [r for r in audited(db) if r.get("method") == "initialize"]
    assert [(r["request_id"], r["decision"]) for r in initialize] == [(7, "allow")]


def test_a_policy_refusing_initialize_ends_the_fast_started_session_AZ1(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        json.dumps(
            {
                "version": 1,
                "roles": {"dev": {}},
                "principals": [{"principal": "local:*", "roles": ["dev"]}],
                "rules": [
                    {"id": "all", "effect": "allow", "roles": ["dev"], "methods": ["**"]},
                    {
                        "id": "no-sessions",
                        "effect": "deny",
                        "roles": ["dev"],
                        "methods": ["initialize"],
                    },
                ],
            }
        )
    )
    config = tmp_path / "bastion.yaml"
    config.write_text(json.dumps({"audit": {"db": str(db)}, "policy": {"file": str(policy)}}))
    done = _stdio_with(config, INIT, {"jsonrpc": "2.0", "id": 8, "method": "tools/list"})
    assert done.returncode == 77
    assert "initialize was refused" in done.stderr
    initialize = [r for r in audited(db) if r.get("method") == "initialize"]
    assert [(r["decision"], r["rule_id"]) for r in initialize] == [("deny", "no-sessions")]
