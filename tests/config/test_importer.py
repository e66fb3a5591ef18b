"""Importing client configurations: each client's shape, its variable syntax, the warnings,
and the round trip through ``to_yaml`` and ``parse_config``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import bastion.config.importer
from bastion._types import JSONValue
from bastion.config import (
    Config,
    ImportResult,
    ServerConfig,
    import_client_config,
    load_client_config,
    parse_client_config,
    parse_config,
    to_yaml,
)
from bastion.errors import ConfigError

INLINE = "written inline as they were: keep this file private, or use ${NAME}"


def round_trip(result: ImportResult, environ: dict[str, str] | None = None) -> Config:
    return parse_config(to_yaml(result.config, warnings=result.warnings), environ or {})


def convert(data: dict[str, JSONValue]) -> ImportResult:
    return import_client_config(data)


def servers(result: ImportResult) -> dict[str, JSONValue]:
    value = result.config["servers"]
    assert isinstance(value, dict)
    return value


# Claude Desktop and Cursor: {"mcpServers": {...}} ------------------------------------------

CLAUDE_DESKTOP = """{
  "mcpServers": {
    "filesystem": {
      "command": "npx",
      "args": ["-y", "@modelcontextprotocol/server-filesystem", "/Users/me/Desktop"]
    },
    "github": {
      "command": "npx",
      "args": ["-y", "@modelcontextprotocol/server-github"],
      "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_literal"}
    }
  }
}"""


def test_claude_desktop() -> None:
    result = parse_client_config(CLAUDE_DESKTOP)
    assert result.shape == "mcpServers"
    assert result.config == {
        "servers": {
            "filesystem": {
                "command": "npx",
                "args": ["-y", "@modelcontextprotocol/server-filesystem", "/Users/me/Desktop"],
            },
            "github": {
                "command": "npx",
                "args": ["-y", "@modelcontextprotocol/server-github"],
                "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_literal"},
            },
        }
    }
    assert result.warnings == (f"servers.github: env.GITHUB_PERSONAL_ACCESS_TOKEN {INLINE}",)
    assert round_trip(result) == Config(
        servers={
            "filesystem": ServerConfig(
                command="npx",
                args=["-y", "@modelcontextprotocol/server-filesystem", "/Users/me/Desktop"],
            ),
            "github": ServerConfig(
                command="npx",
                args=["-y", "@modelcontextprotocol/server-github"],
                env={"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_literal"},
            ),
        }
    )


def test_to_yaml_text() -> None:
    assert to_yaml(parse_client_config(CLAUDE_DESKTOP).config, warnings=["note one"]) == (
        "# Bastion configuration written by `bastion import`.\n"
        "# Read these notes, then delete them:\n"
        "#   - note one\n"
        "servers:\n"
        "  filesystem:\n"
        "    command: npx\n"
        "    args:\n"
        "    - -y\n"
        "    - '@modelcontextprotocol/server-filesystem'\n"
        "    - /Users/me/Desktop\n"
        "  github:\n"
        "    command: npx\n"
        "    args:\n"
        "    - -y\n"
        "    - '@modelcontextprotocol/server-github'\n"
        "    env:\n"
        "      GITHUB_PERSONAL_ACCESS_TOKEN: ghp_literal\n"
    )
    assert to_yaml({"servers": {}}) == (
        "# Bastion configuration written by `bastion import`.\nservers: {}\n"
    )


def test_cursor_remote_and_env_references() -> None:
    # ~/.cursor/mcp.json: the same shape; remote servers by url, ${env:NAME} interpolation.
    result = convert(
        {
            "mcpServers": {
                "linear": {"url": "https://mcp.linear.app/mcp"},
                "internal": {
                    "url": "https://${env:CORP_HOST}/mcp",
                    "headers": {"Authorization": "Bearer ${env:CORP_TOKEN}"},
                },
                "local": {"command": "node", "args": ["${userHome}/bin/server.js"]},
            }
        }
    )
    assert servers(result) == {
        "linear": {"url": "https://mcp.linear.app/mcp"},
        "internal": {
            "url": "https://${CORP_HOST}/mcp",
            "headers": {"Authorization": "Bearer ${CORP_TOKEN}"},
        },
        "local": {"command": "node", "args": ["${HOME}/bin/server.js"]},
    }
    assert result.warnings == (
        "set these environment variables before `bastion serve`: CORP_HOST, CORP_TOKEN, HOME",
    )
    environ = {"CORP_HOST": "corp.example", "CORP_TOKEN": "t0k", "HOME": "/home/me"}
    config = round_trip(result, environ)
    assert config.servers["internal"] == ServerConfig(
        url="https://corp.example/mcp", headers={"Authorization": "Bearer t0k"}
    )
    assert config.servers["local"].args == ["/home/me/bin/server.js"]


# Claude Code: .mcp.json and ~/.claude.json ---------------------------------------------------


def test_claude_code_project_file() -> None:
    # .mcp.json: "type" per server, ${VAR} and ${VAR:-default} expanded by Claude Code itself.
    result = convert(
        {
            "mcpServers": {
                "api": {
                    "type": "http",
                    "url": "${API_BASE_URL:-https://api.example.com}/mcp",
                    "headers": {"Authorization": "Bearer ${API_KEY}"},
                },
                "db": {"type": "stdio", "command": "/usr/local/bin/db-mcp", "args": ["--ro"]},
            }
        }
    )
    assert result.shape == "mcpServers"
    assert servers(result) == {
        "api": {
            "url": "${API_BASE_URL:-https://api.example.com}/mcp",
            "headers": {"Authorization": "Bearer ${API_KEY}"},
        },
        "db": {"command": "/usr/local/bin/db-mcp", "args": ["--ro"]},
    }
    config = round_trip(result, {"API_KEY": "k"})
    assert config.servers["api"] == ServerConfig(
        url="https://api.example.com/mcp", headers={"Authorization": "Bearer k"}
    )


def test_claude_code_user_file_with_projects() -> None:
    data: dict[str, JSONValue] = {
        "numStartups": 12,
        "mcpServers": {"github": {"type": "stdio", "command": "npx", "args": ["gh"], "env": {}}},
        "projects": {
            "/home/me/app": {
                "allowedTools": [],
                "history": [{"display": "hi"}],
                "mcpServers": {
                    "github": {"command": "npx", "args": ["gh"], "env": {}},  # the same: once
                    "db": {"type": "stdio", "command": "pg-mcp"},
                },
            },
            "/home/me/other": {
                "mcpServers": {"db": {"type": "stdio", "command": "mysql-mcp"}},  # differs
            },
            "/home/me/empty": {"allowedTools": []},
            "/home/me/odd": "not a mapping",
        },
    }
    result = convert(data)
    assert result.shape == "claude-code"
    assert servers(result) == {
        "github": {"command": "npx", "args": ["gh"], "env": {}},
        "db": {"command": "pg-mcp"},
        "db-2": {"command": "mysql-mcp"},
    }
    assert result.warnings == (
        'projects["/home/me/other"].mcpServers.db: imported as servers.db-2 '
        "(names: unique, A-Z a-z 0-9 _ -)",
    )
    assert list(round_trip(result).servers) == ["github", "db", "db-2"]


def test_claude_code_projects_only() -> None:
    data: dict[str, JSONValue] = {"projects": {"/p": {"mcpServers": {"a": {"command": "x"}}}}}
    result = convert(data)
    assert (result.shape, servers(result)) == ("claude-code", {"a": {"command": "x"}})


# VS Code: .vscode/mcp.json, and "mcp" in settings.json -------------------------------------

VSCODE = """{
  // 💡 Inputs are prompted on first server start, then stored securely by VS Code.
  "inputs": [
    {
      "type": "promptString",
      "id": "perplexity-key",
      "description": "Perplexity API Key",
      "password": true,
    },
  ],
  "servers": {
    /* a local server */
    "Perplexity": {
      "type": "stdio",
      "command": "npx",
      "args": ["-y", "server-perplexity-ask"],
      "env": {"PERPLEXITY_API_KEY": "${input:perplexity-key}"},
      "envFile": "${workspaceFolder}/.env",
    },
    "fetch": {"type": "stdio", "command": "uvx", "args": ["mcp-server-fetch"],
              "cwd": "${workspaceFolder}"},
    "github": {
      "type": "http",
      "url": "https://api.githubcopilot.com/mcp/",
      "headers": {"Authorization": "Bearer ${input:gh-token}", "X-Trace": "// not a comment"},
    },
    "legacy": {"type": "sse", "url": "https://example.com/sse"},
  },
}"""


def test_vscode() -> None:
    result = parse_client_config(VSCODE, source="mcp.json")
    assert result.shape == "vscode"
    assert servers(result) == {
        "Perplexity": {
            "command": "npx",
            "args": ["-y", "server-perplexity-ask"],
            "env": {"PERPLEXITY_API_KEY": "${perplexity_key}"},
        },
        "fetch": {"command": "uvx", "args": ["mcp-server-fetch"], "cwd": "${workspaceFolder}"},
        "github": {
            "url": "https://api.githubcopilot.com/mcp/",
            "headers": {"Authorization": "Bearer ${gh_token}", "X-Trace": "// not a comment"},
        },
    }
    assert result.warnings == (
        "servers.Perplexity.env.PERPLEXITY_API_KEY: ${perplexity_key} replaces VS Code input "
        '"perplexity-key" ("Perplexity API Key")',
        "servers.Perplexity.envFile: dropped: put those variables in Bastion's environment instead",
        "servers.fetch.cwd: ${workspaceFolder} is VS Code's; "
        "set workspaceFolder or write the value",
        'servers.github.headers.Authorization: ${gh_token} replaces VS Code input "gh-token" ("")',
        f"servers.github: headers.X-Trace {INLINE}",
        'servers.legacy: skipped: "sse", the deprecated HTTP+SSE transport, is not supported',
        "set these environment variables before `bastion serve`: "
        "perplexity_key, workspaceFolder, gh_token",
    )
    environ = {"perplexity_key": "pk", "workspaceFolder": "/w", "gh_token": "gt"}
    config = round_trip(result, environ)
    assert config.servers["Perplexity"].env == {"PERPLEXITY_API_KEY": "pk"}
    assert config.servers["fetch"].cwd == "/w"
    assert config.servers["github"].headers["Authorization"] == "Bearer gt"
    assert "legacy" not in config.servers


def test_vscode_settings_json() -> None:
    data: dict[str, JSONValue] = {
        "editor.fontSize": 14,
        "mcp": {"servers": {"time": {"command": "uvx", "args": ["mcp-server-time"]}}},
    }
    result = convert(data)
    assert (result.shape, servers(result)) == (
        "vscode",
        {"time": {"command": "uvx", "args": ["mcp-server-time"]}},
    )


def test_vscode_input_ids_become_variable_names() -> None:
    result = convert({"servers": {"a": {"command": "x", "args": ["${input:1st.key}"]}}})
    assert servers(result) == {"a": {"command": "x", "args": ["${_1st_key}"]}}


# Entries: conversion, dropping, skipping -----------------------------------------------------


def test_entry_conversions_and_warnings() -> None:
    result = convert(
        {
            "mcpServers": {
                "@scope/my server": {"command": "x", "autoApprove": ["t"], "timeout": 60},
                "off": {"command": "x", "disabled": True},
                "on": {"command": "x", "disabled": False},
                "odd-disabled": {"command": "x", "disabled": "yes"},
                "numbers": {"command": "x", "args": ["--port", 3000, True], "env": {"N": 1.5}},
                "mixed": {"command": "x", "headers": {"A": "b"}},
                "remote": {"url": "https://h/mcp", "env": {"A": "b"}, "args": ["a"]},
                "streamable": {"type": "streamableHttp", "url": "https://h/mcp"},
            }
        }
    )
    assert servers(result) == {
        "-scope-my-server": {"command": "x"},
        "off": {"command": "x", "enabled": False},
        "on": {"command": "x"},
        "odd-disabled": {"command": "x"},
        "numbers": {"command": "x", "args": ["--port", "3000", "true"], "env": {"N": "1.5"}},
        "mixed": {"command": "x"},
        "remote": {"url": "https://h/mcp"},
        "streamable": {"url": "https://h/mcp"},
    }
    assert result.warnings == (
        'mcpServers["@scope/my server"].autoApprove: dropped: Bastion has no such setting',
        'mcpServers["@scope/my server"].timeout: dropped: Bastion has no such setting',
        'mcpServers["@scope/my server"]: imported as servers.-scope-my-server '
        "(names: unique, A-Z a-z 0-9 _ -)",
        "mcpServers.odd-disabled.disabled: dropped: expected true or false",
        f"servers.numbers: env.N {INLINE}",
        "mcpServers.mixed.headers: dropped: only a url server takes it",
        "mcpServers.remote.env: dropped: only a command server takes it",
        "mcpServers.remote.args: dropped: only a command server takes it",
    )
    config = round_trip(result)
    assert config.servers["off"].enabled is False
    assert config.servers["numbers"].args == ["--port", "3000", "true"]


@pytest.mark.parametrize(
    ("entry", "warning"),
    [
        ("nope", 'skipped: expected a mapping, got "nope"'),
        ({}, "skipped: give either command or url (neither given)"),
        ({"args": ["a"]}, "skipped: give either command or url (neither given)"),
        ({"command": "x", "url": "https://h"}, "skipped: give either command or url (not both)"),
        (
            {"url": "https://h/sse", "type": "sse"},
            'skipped: "sse", the deprecated HTTP+SSE transport, is not supported',
        ),
        ({"url": "https://h", "type": "stdio"}, 'skipped: type "stdio" does not go with a url'),
        ({"command": "x", "type": "http"}, 'skipped: type "http" does not go with a command'),
        (
            {"command": "x", "type": "websocket"},
            'skipped: type "websocket" does not go with a command',
        ),
        ({"url": "ftp://h"}, 'skipped: expected an http:// or https:// url, got "ftp://h"'),
        (  # IN-5: never quoted, it may be a password
            {"url": "https://u:pw-SECRET@h/mcp"},
            "skipped: user info (user:password@) in the url is never sent",
        ),
        (
            {"url": "localhost:3000"},
            'skipped: expected an http:// or https:// url, got "localhost:3000"',
        ),
    ],
)
def test_skipped_entries(entry: JSONValue, warning: str) -> None:
    result = convert({"mcpServers": {"bad": entry, "good": {"command": "x"}}})
    assert servers(result) == {"good": {"command": "x"}}
    assert result.warnings == (f"mcpServers.bad: {warning}",)


def test_a_url_that_is_one_variable_is_kept() -> None:
    """``"url": "${DOCS_URL}"`` (no ``//``, a Claude Code pattern) made the user-info check
    fail with IndexError (a traceback, exit 1)."""
    result = convert({"mcpServers": {"docs": {"url": "${DOCS_URL}"}}})
    assert servers(result) == {"docs": {"url": "${DOCS_URL}"}}


@pytest.mark.parametrize(
    ("entry", "where", "warning"),
    [
        ({"command": None}, "command", "skipped the server: expected a string, got null"),
        ({"command": "x", "args": "a b"}, "args", "skipped the server: expected a list"),
        (
            {"command": "x", "args": ["a", None]},
            "args[1]",
            "skipped the server: expected a string, got null",
        ),
        ({"command": "x", "env": ["A=b"]}, "env", "skipped the server: expected a mapping"),
        (
            {"command": "x", "env": {"A": {"b": 1}}},
            "env.A",
            "skipped the server: expected a string, got a mapping",
        ),
        (
            {"url": "https://h", "headers": "A: b"},
            "headers",
            "skipped the server: expected a mapping",
        ),
        (
            {"command": "x", "cwd": ["/"]},
            "cwd",
            "skipped the server: expected a string, got a list",
        ),
    ],
)
def test_entries_with_bad_values_are_skipped(entry: JSONValue, where: str, warning: str) -> None:
    result = convert({"mcpServers": {"bad": entry}})
    assert servers(result) == {}
    assert result.warnings == (f"mcpServers.bad.{where}: {warning}",)


# Variables and literal text ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "written", "resolved"),
    [
        ("plain", "plain", "plain"),
        ("${TOKEN}", "${TOKEN}", "tok"),
        ("${env:TOKEN}", "${TOKEN}", "tok"),
        ("${TOKEN:-d}", "${TOKEN:-d}", "tok"),
        ("${UNSET:-d}", "${UNSET:-d}", "d"),
        ("a ${", "a $${", "a ${"),
        ("${config:editor.fontSize}", "$${config:editor.fontSize}", "${config:editor.fontSize}"),
        ("${env:}", "$${env:}", "${env:}"),
        ("${}", "$${}", "${}"),
        ("$${TOKEN}", "$$${TOKEN}", "$${TOKEN}"),
        ("$$", "$$", "$$"),
        ("cost: $5", "cost: $5", "cost: $5"),
    ],
)
def test_strings_mean_what_they_meant(value: str, written: str, resolved: str) -> None:
    result = convert({"mcpServers": {"s": {"command": "x", "args": [value]}}})
    assert servers(result) == {"s": {"command": "x", "args": [written]}}
    assert round_trip(result, {"TOKEN": "tok"}).servers["s"].args == [resolved]


def test_literal_text_warnings() -> None:
    result = convert(
        {"mcpServers": {"s": {"command": "x", "args": ["${command:pick}", "$${TOKEN}"]}}}
    )
    assert result.warnings == (
        'mcpServers.s.args[0]: kept "${command:pick}" as literal text: no such variable',
        'mcpServers.s.args[1]: kept "${TOKEN}" as literal text after a $',
    )


# Errors and limits ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"mcpServers": {"a" 1}}', "f.json:1:21: Expecting ':' delimiter"),
        (
            "{\n  // comment\n  oops\n}",
            "f.json:3:3: Expecting property name enclosed in double quotes",
        ),
        ("", "f.json:1:1: Expecting value"),
        ("[1]", "f.json: expected a JSON object, got a list"),
        (
            '{"theme": "dark"}',
            'f.json: no MCP servers: expected "mcpServers" (Claude Desktop, Cursor, Claude Code) '
            'or "servers" (VS Code)',
        ),
        ('{"mcpServers": []}', "f.json: mcpServers: expected a mapping, got a list"),
        ('{"servers": null}', "f.json: servers: expected a mapping, got null"),
        (
            '{"projects": {"/p": {"mcpServers": 1}}}',
            'f.json: projects["/p"].mcpServers: expected a mapping, got 1',
        ),
        ("[" * 100_000 + "]" * 100_000, "f.json: nested too deeply"),
    ],
)
def test_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_client_config(text, source="f.json")
    assert str(info.value) == message


def test_server_count_limit() -> None:
    many: dict[str, JSONValue] = {f"s{i}": {"command": "x"} for i in range(256)}
    assert len(servers(convert({"mcpServers": many}))) == 256
    many["one_more"] = {"command": "x"}
    with pytest.raises(ConfigError) as info:
        convert({"mcpServers": many})
    assert str(info.value) == "257 servers; Bastion takes at most 256"


def test_names_are_cut_to_64_and_stay_unique() -> None:
    long = "n" * 70
    result = convert(
        {
            "mcpServers": {long: {"command": "a"}},
            "projects": {"/p": {"mcpServers": {long + "x": {"command": "b"}}}},
        }
    )
    assert list(servers(result)) == ["n" * 64, "n" * 62 + "-2"]
    assert set(round_trip(result).servers) == {"n" * 64, "n" * 62 + "-2"}


def test_load_client_config(tmp_path: Path) -> None:
    path = tmp_path / "claude_desktop_config.json"
    path.write_text(CLAUDE_DESKTOP)
    assert load_client_config(path) == parse_client_config(CLAUDE_DESKTOP)
    path.write_text('{"mcpServers": 1}')
    with pytest.raises(ConfigError) as info:
        load_client_config(path)
    assert str(info.value) == f"{path}: mcpServers: expected a mapping, got 1"


def test_client_file_size_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bastion.config.importer, "MAX_CLIENT_CONFIG_BYTES", 1024 * 1024)
    path = tmp_path / ".claude.json"
    path.write_text(json.dumps({"mcpServers": {}, "pad": "x" * 1024 * 1024}))
    with pytest.raises(ConfigError) as info:
        load_client_config(path)
    assert str(info.value) == f"{path}: larger than 1 MiB"


def test_hostile_names_cannot_break_out_of_the_comments() -> None:
    evil = "x\nservers:\n  evil:\n    command: rm\n#"
    result = convert({"mcpServers": {evil: {"command": "x", "env": {evil: "v"}}}})
    text = to_yaml(result.config, warnings=[*result.warnings, "a\nb\u2028c\x85d"])
    assert "\nservers:\n  evil" not in text
    assert "#   - a b c d\n" in text
    config = round_trip(result)
    name = "x-servers----evil------command--rm--"
    assert list(config.servers) == [name]
    assert config.servers[name].env == {evil: "v"}
    assert all(line.startswith("#") for line in text.split("servers:\n")[0].splitlines())
    assert json.dumps(evil) in text  # the warnings show the name escaped, on one line
