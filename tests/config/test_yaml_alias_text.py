"""DS-4: YAML aliases cannot make a small configuration stand for gigabytes of text. The
bound on values counted each alias of a long string once: 50 000 aliases of one 600 KB
anchor (an 800 KB file) loaded as 30 GB of argv, in over a minute."""

from __future__ import annotations

import time

import pytest

from bastion.config import parse_config
from bastion.config.yaml_text import MAX_TEXT, parse_yaml_text
from bastion.errors import ConfigError


def test_aliases_of_a_long_string_are_bounded_by_their_text_DS4() -> None:
    anchor = "a" * 100_000
    aliases = ", ".join(["*s"] * 200)  # 20 million characters, in a 100 KB file
    text = f"servers:\n  a:\n    command: x\n    args: [&s {anchor}, {aliases}]\n"
    started = time.perf_counter()
    with pytest.raises(ConfigError) as refused:
        parse_config(text, {})
    assert str(refused.value) == (
        f"<string>: more than {MAX_TEXT} characters of text (do YAML aliases expand too far?)"
    )
    assert time.perf_counter() - started < 5


def test_keys_count_as_text_too_DS4() -> None:
    keys = "".join(f"  {i:04}{'k' * 996}: 1\n" for i in range(1000))  # 1 MB of keys
    text = f"a: &m\n{keys}b: [{', '.join(['*m'] * 20)}]\n"
    with pytest.raises(ConfigError, match="characters of text"):
        parse_yaml_text(text, "policy.yaml")


def test_text_under_the_bound_still_loads_DS4() -> None:
    anchor = "a" * 10_000
    text = f"servers:\n  a:\n    command: x\n    args: [&s {anchor}, {', '.join(['*s'] * 100)}]\n"
    assert len(parse_config(text, {}).servers["a"].args) == 101
