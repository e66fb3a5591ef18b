"""Property tests of ``RequestStateSealer`` (2026-07-28 requestState; SECURITY.md VT-2, IN-1).

The state travels through the client, so: sealed data comes back intact, any change to the
token is refused with InvalidParams (-32602), a token works only for its own request and
only until it expires, and keys rotate (the first key signs, every key verifies).
"""

from __future__ import annotations

import base64
import string
from typing import Any

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from mcp_strategies import json_values

from bastion.errors import InvalidParams
from bastion.protocol.request_state import MAX_STATE_CHARS, RequestStateSealer

FAST = settings(derandomize=True, database=None, deadline=None, max_examples=150)
KEY_A = bytes(range(32))
KEY_B = bytes(range(100, 140))
_B64URL = string.ascii_letters + string.digits + "-_"
_ANY_CHAR = st.sampled_from(_B64URL + "=.!*~ \n\t%+/") | st.characters(blacklist_categories=["Cs"])


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _token(data: Any = None, binding: str = "tools/call:echo") -> str:
    return RequestStateSealer([KEY_A], clock=FakeClock()).seal(data, binding=binding)


def _refused(token: str, binding: str = "tools/call:echo") -> None:
    sealer = RequestStateSealer([KEY_A], clock=FakeClock())
    with pytest.raises(InvalidParams) as info:
        sealer.unseal(token, binding=binding)
    assert info.value.code == -32602


@FAST
@given(data=json_values, binding=st.text(max_size=40))
def test_seal_unseal_round_trips(data: Any, binding: str) -> None:
    sealer = RequestStateSealer([KEY_A], clock=FakeClock())
    token = sealer.seal(data, binding=binding)
    assert token.isascii() and token.count(".") == 1
    assert sealer.unseal(token, binding=binding) == data


@FAST
@given(data=json_values, cut=st.integers(1, 200))
def test_truncated_token_is_refused(data: Any, cut: int) -> None:
    token = _token(data)
    _refused(token[: max(0, len(token) - cut)])


@FAST
@given(data=json_values, suffix=st.text(_ANY_CHAR, min_size=1, max_size=4))
@example(data={"step": 1}, suffix="=")
@example(data={"step": 1}, suffix="!!!")
def test_appended_characters_are_refused(data: Any, suffix: str) -> None:
    """A token is one exact string: padding or junk after the MAC must not still verify."""
    _refused(_token(data) + suffix)


@FAST
@given(data=json_values, position=st.integers(0, 10_000), char=_ANY_CHAR)
@example(data={"step": 1}, position=-1, char="")  # last MAC char: its low 2 bits are padding
def test_any_changed_character_is_refused(data: Any, position: int, char: str) -> None:
    token = _token(data)
    if char == "":  # the explicit example: a sibling of the last char with equal high bits
        last = _B64URL.index(token[-1])
        char = _B64URL[last ^ 1]
    index = position % len(token)
    assume(token[index] != char)
    _refused(token[:index] + char + token[index + 1 :])


@FAST
@given(data=json_values, binding=st.text(max_size=20), other=st.text(max_size=20))
def test_token_for_another_request_is_refused(data: Any, binding: str, other: str) -> None:
    assume(binding != other)
    _refused(_token(data, binding=binding), binding=other)


@FAST
@given(
    start=st.floats(0, 4e9),
    ttl=st.floats(1, 1e6),
    late=st.floats(1e-3, 1e6),
)
def test_expiry_follows_the_injected_clock(start: float, ttl: float, late: float) -> None:
    clock = FakeClock(start)
    sealer = RequestStateSealer([KEY_A], ttl=ttl, clock=clock)
    token = sealer.seal({"n": 1}, binding="b")
    clock.now = start + ttl
    assert sealer.unseal(token, binding="b") == {"n": 1}
    clock.now = start + ttl + late
    assume(clock.now > start + ttl)
    with pytest.raises(InvalidParams):
        sealer.unseal(token, binding="b")


@FAST
@given(data=json_values)
def test_key_rotation_old_key_verifies_new_key_signs(data: Any) -> None:
    old = RequestStateSealer([KEY_A], clock=FakeClock())
    rotated = RequestStateSealer([KEY_B, KEY_A], clock=FakeClock())
    assert rotated.unseal(old.seal(data, binding="b"), binding="b") == data
    fresh = rotated.seal(data, binding="b")
    assert RequestStateSealer([KEY_B], clock=FakeClock()).unseal(fresh, binding="b") == data
    with pytest.raises(InvalidParams):
        old.unseal(fresh, binding="b")


@FAST
@given(token=st.text(max_size=120) | st.text(_B64URL + ".", max_size=120))
def test_arbitrary_strings_only_raise_invalid_params_VT2(token: str) -> None:
    _refused(token)


def test_oversized_token_and_short_keys_are_refused() -> None:
    _refused("A" * MAX_STATE_CHARS + "." + "A" * 43)
    with pytest.raises(ValueError):
        RequestStateSealer([b"short"])
    with pytest.raises(ValueError):
        RequestStateSealer([])


def test_token_carries_no_caller_identity_AZ1() -> None:
    """The payload is readable (MAC'd, not encrypted): the binding, which names the caller's
    principal and credential, is covered by the MAC but never written into the token."""
    binding = '["tools/call","echo","alice@example.com","apikey:k-7f3a"]'
    body = _token({"step": 1}, binding=binding).partition(".")[0]
    payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    assert b"alice@example.com" not in payload and b"k-7f3a" not in payload
    assert RequestStateSealer([KEY_A], clock=FakeClock()).unseal(
        _token({"step": 1}, binding=binding), binding=binding
    ) == {"step": 1}
