"""What ``bastion import`` writes loads with the real loader, and means what the client's
file meant: text the importer keeps literal loads as exactly that text (no variable of the
gateway's environment gets into it), a server the loader would refuse is skipped with a
warning, and JSON with comments is read in linear time (IN-1, IN-5, DS-4)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bastion._types import JSONValue
from bastion.config import import_client_config, parse_client_config, parse_config, to_yaml
from bastion.errors import ConfigError
from tests.support import BASTION


class EveryVariable(Mapping[str, str]):
    """An environment in which every variable is set (to a URL, which every field takes)."""

    def __getitem__(self, name: str) -> str:
        return f"https://example.test/{name}"

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


ATOMS = [
    "${", "}", "$", "{", "${X}", "${env:HOME}", "${input:tok}", "${X:-d}", "$${X}", "${x",
    "${userHome}", "${workspaceFolder}", ":", "-", "x", "Y", " ", "\n", "\r", "\x1b", "\x00",
    "\u202e", "é", "\\", '"', "#", "&a", "*a", "!!python/object", "http://", "https://h/",
    "://", "@",
]  # fmt: skip
TEXT = st.lists(st.sampled_from(ATOMS), max_size=8).map("".join)
VALUE: st.SearchStrategy[JSONValue] = st.one_of(
    TEXT, st.integers(), st.booleans(), st.none(), st.lists(TEXT, max_size=3)
)


@st.composite
def client_entries(draw: st.DrawFn) -> dict[str, JSONValue]:
    entry: dict[str, JSONValue] = {}
    kind = draw(st.sampled_from(["command", "url", "neither"]))
    if kind == "command":
        entry["command"] = draw(TEXT)
        entry["args"] = draw(st.lists(TEXT, max_size=3))
    elif kind == "url":
        entry["url"] = draw(st.sampled_from(["https://h/", "http://", "${U}", "HTTPS://x"]))
        entry["url"] += draw(TEXT)
    for key in draw(st.lists(st.sampled_from(["env", "headers", "cwd", "type", "disabled"]))):
        entry[key] = draw(st.one_of(st.dictionaries(TEXT, TEXT, max_size=2), VALUE))
    return entry


CLIENT_FILES = st.dictionaries(TEXT, client_entries(), max_size=4).map(
    lambda servers: {"mcpServers": servers}
)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(CLIENT_FILES)
@example({"mcpServers": {"a": {"command": ""}}})
@example({"mcpServers": {"a": {"url": "http://"}}})
@example({"mcpServers": {"a": {"url": "https://h/${x${AWS_SECRET_ACCESS_KEY}"}}})
def test_every_import_loads_with_the_real_loader_IN1(client: dict[str, JSONValue]) -> None:
    result = import_client_config(client)
    parse_config(to_yaml(result.config, warnings=result.warnings), EveryVariable())


@settings(max_examples=400, deadline=None)
@given(TEXT)
@example("${x${AWS_SECRET_ACCESS_KEY}")
@example("$${X}")
@example("${%${input:tok}")
def test_text_the_importer_keeps_literal_loads_as_exactly_that_text_IN5(text: str) -> None:
    result = import_client_config({"mcpServers": {"s": {"command": "x", "args": [text]}}})
    if any(w.startswith("set these environment variables") for w in result.warnings):
        return  # the text holds a reference the importer converted: not all literal
    config = parse_config(to_yaml(result.config, warnings=result.warnings), EveryVariable())
    assert config.servers["s"].args == [text]


def test_a_literal_around_a_reference_keeps_the_gateways_secret_out_IN5() -> None:
    client = {"mcpServers": {"docs": {"url": "https://c.example/mcp?v=${x${AWS_SECRET}"}}}
    result = import_client_config(client)
    assert result.warnings == (
        'mcpServers.docs.url: kept "${x${AWS_SECRET}" as literal text: no such variable',
    )
    config = parse_config(to_yaml(result.config), {"AWS_SECRET": "AKIAsecretVALUE123"})
    assert config.servers["docs"].url == "https://c.example/mcp?v=${x${AWS_SECRET}"


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"command": ""}, 'servers.a.command: expected a string of length >= 1, got ""'),
        ({"url": "http://"}, 'servers.a.url: expected an http:// or https:// URL, got "http://"'),
        (
            {"url": "https://h/", "headers": {"X-Key": "a\nb"}},
            "servers.a.headers: header X-Key: a value may not hold a line break or other "
            "control character",
        ),
    ],
)
def test_a_server_the_loader_would_refuse_is_skipped_with_a_warning_IN1(
    entry: dict[str, JSONValue], problem: str
) -> None:
    result = import_client_config({"mcpServers": {"a": entry, "ok": {"command": "x"}}})
    assert result.config == {"servers": {"ok": {"command": "x"}}}
    assert f"mcpServers.a: skipped: it would not load ({problem})" in result.warnings


def test_a_result_over_the_loaders_size_refuses_to_be_written_IN1(tmp_path: Path) -> None:
    big = "x" * 400_000
    client = {"mcpServers": {f"s{i}": {"command": "x", "args": [big]} for i in range(3)}}
    result = import_client_config(client)
    with pytest.raises(ConfigError, match=r"^the converted configuration would not load: "):
        to_yaml(result.config)
    source = tmp_path / "mcp.json"
    source.write_text(json.dumps(client))
    done = subprocess.run(
        [str(BASTION), "import", str(source)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 78 and "Traceback" not in done.stderr
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith("bastion: the converted configuration would not load: ")
    )


@pytest.mark.parametrize(
    "tail",
    [
        "/*x" * 8_000,  # an unclosed comment at every /*: 8 s before, on the old stripper
        '"' + '\\"' * 8_000,  # a string never closed, sought again from each quote: 3 s
        ", " * 8_000,  # trailing-comma candidates (linear before too)
    ],
)
def test_jsonc_is_read_in_linear_time_DS4(tail: str) -> None:
    started = time.perf_counter()
    with pytest.raises(ConfigError):
        parse_client_config('{"mcpServers": {}} x' + tail, source="f.json")
    assert time.perf_counter() - started < 1.0


def test_jsonc_comments_and_trailing_commas_still_read_IN1() -> None:
    text = """{
      // "servers" in a comment
      "mcpServers": {
        "a": {"command": "x", "args": ["//", "/*", "a\\"/*b", ], }, /* an unclosed
        comment */
      },
    }"""
    result = parse_client_config(text, source="f.json")
    assert result.config == {"servers": {"a": {"command": "x", "args": ["//", "/*", 'a"/*b']}}}
