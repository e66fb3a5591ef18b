"""The checked-in message corpus as a regression suite (SECURITY.md VT-2, IN-1, IN-2).

``tests/corpus/valid`` holds whole JSON-RPC messages of both revisions (including every
2026-07-28 spec example that is a JSON-RPC message); each must decode, and re-encoding must
give the same message. ``tests/corpus/invalid/<name>.<code>.<ext>`` must raise the error
whose JSON-RPC code is in the name (-32700 not JSON, -32600 JSON but not a message).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from bastion.errors import InvalidRequest, ParseError
from bastion.protocol.codec import decode, encode
from bastion.protocol.jsonrpc import INVALID_REQUEST, PARSE_ERROR

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
VALID = sorted((CORPUS / "valid").glob("*.json"))
INVALID = sorted(p for p in (CORPUS / "invalid").iterdir() if p.suffix in {".json", ".bin"})
_CODE = re.compile(r"\.(-\d+)\.(?:json|bin)$")
SPEC_EXAMPLES = Path("/work/shared/spec/2026-07-28/examples")


def _expected_code(path: Path) -> int:
    match = _CODE.search(path.name)
    assert match is not None, f"{path.name}: no error code in the file name"
    return int(match.group(1))


def _wire_view(obj: Any) -> Any:
    """JSON as the codec re-encodes it: an error response always carries ``id``."""
    if isinstance(obj, dict) and "error" in obj and "id" not in obj:
        return {**obj, "id": None}
    return obj


def test_corpus_layout() -> None:
    assert 40 <= len(VALID) + len(INVALID) <= 100
    assert len(VALID) >= 30
    assert {_expected_code(p) for p in INVALID} == {PARSE_ERROR, INVALID_REQUEST}


def test_corpus_holds_every_spec_example_message() -> None:
    """Every 2026-07-28 example that is a whole JSON-RPC message is copied verbatim."""
    if not SPEC_EXAMPLES.is_dir():
        pytest.skip("spec examples not available")
    names = {p.name for p in VALID}
    for example in SPEC_EXAMPLES.glob("*/*.json"):
        data = example.read_bytes()
        if b'"jsonrpc"' in data:
            copy = f"2026-07-28-{example.stem}.json"
            assert copy in names, f"{example} missing from the corpus"
            assert (CORPUS / "valid" / copy).read_bytes() == data


@pytest.mark.parametrize("path", VALID, ids=[p.name for p in VALID])
def test_valid_message_round_trips(path: Path) -> None:
    """IN-1: a valid message decodes; encode/decode is the identity on the decoded form."""
    raw = path.read_bytes()
    message = decode(raw)
    wire = encode(message)
    assert decode(wire) == message
    assert json.loads(wire) == _wire_view(json.loads(raw))


@pytest.mark.parametrize("path", INVALID, ids=[p.name for p in INVALID])
def test_invalid_message_raises_the_named_code(path: Path) -> None:
    """IN-1/IN-2: the codec answers with exactly the JSON-RPC code in the file name."""
    expected = _expected_code(path)
    error_type = ParseError if expected == PARSE_ERROR else InvalidRequest
    with pytest.raises((ParseError, InvalidRequest)) as info:
        decode(path.read_bytes())
    assert info.value.code == expected, f"{path.name}: got {info.value.code} ({info.value})"
    assert type(info.value) is error_type
