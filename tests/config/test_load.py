"""bastion.yaml loading: valid trees, ``${VAR}`` substitution, limits, and every error message.

Messages are compared whole: they are the interface an operator reads.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import bastion.config
from bastion.config import Config, GatewaySettings, ServerConfig, load_config, parse_config
from bastion.config.load import MAX_CONFIG_BYTES, MAX_DEPTH, MAX_SERVERS, MAX_VALUES
from bastion.config.model import FieldProblem
from bastion.errors import ConfigError

ENV = {"GITHUB_TOKEN": "ghp_secret", "EMPTY": "", "HOST": "example.com"}


def parse(text: str, environ: dict[str, str] | None = None) -> Config:
    return parse_config(textwrap.dedent(text), ENV if environ is None else environ)


def error(text: str, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        parse(text, environ)
    return str(info.value)


def test_all_is_sorted_and_resolves() -> None:
    assert bastion.config.__all__ == sorted(bastion.config.__all__)
    for name in bastion.config.__all__:
        assert hasattr(bastion.config, name), name


def test_full_config() -> None:
    config = parse(
        """
        gateway:
          host: 0.0.0.0
          port: 9000
          separator: "."
          allowed_hosts: [gateway.internal]
          allowed_origins: ["https://app.example.com"]
        servers:
          github:
            type: stdio
            command: npx
            args: ["-y", "@modelcontextprotocol/server-github"]
            env: {GITHUB_PERSONAL_ACCESS_TOKEN: "${GITHUB_TOKEN}"}
            cwd: /srv
            prefix: gh_
            replicas: 2
            startup_timeout: 120
            request_timeout: 30.5
          remote:
            type: streamable-http
            url: https://${HOST}/mcp
            headers: {Authorization: "Bearer ${GITHUB_TOKEN}"}
            prefix: ""
            enabled: false
          plain:
            url: http://127.0.0.1:3001/mcp
        """
    )
    assert config == Config(
        gateway=GatewaySettings(
            host="0.0.0.0",
            port=9000,
            separator=".",
            allowed_hosts=["gateway.internal"],
            allowed_origins=["https://app.example.com"],
        ),
        servers={
            "github": ServerConfig(
                type="stdio",
                command="npx",
                args=["-y", "@modelcontextprotocol/server-github"],
                env={"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_secret"},
                cwd="/srv",
                prefix="gh_",
                replicas=2,
                startup_timeout=120.0,
                request_timeout=30.5,
            ),
            "remote": ServerConfig(
                type="streamable-http",
                url="https://example.com/mcp",
                headers={"Authorization": "Bearer ghp_secret"},
                prefix="",
                enabled=False,
            ),
            "plain": ServerConfig(url="http://127.0.0.1:3001/mcp"),
        },
    )
    assert list(config.servers) == ["github", "remote", "plain"]  # file order is kept
    assert config.servers["github"].transport == "stdio"
    assert config.servers["remote"].transport == "http"
    assert config.prefix_for("github") == "gh_"
    assert config.prefix_for("remote") == ""
    assert config.prefix_for("plain") == "plain."


def test_defaults() -> None:
    server = parse("servers: {x: {command: a}}").servers["x"]
    assert server == ServerConfig(command="a")
    assert (server.args, server.env, server.headers, server.cwd, server.url) == (
        [],
        {},
        {},
        None,
        None,
    )
    assert (server.type, server.prefix, server.replicas, server.enabled) == (None, None, 1, True)
    assert (server.startup_timeout, server.request_timeout) == (60.0, 300.0)
    gateway = GatewaySettings()
    assert (gateway.host, gateway.port, gateway.separator) == ("127.0.0.1", 8080, "__")
    assert (gateway.allowed_hosts, gateway.allowed_origins) == ([], [])
    assert parse("servers: {x: {command: a}}").prefix_for("x") == "x__"


@pytest.mark.parametrize("text", ["", "# nothing\n", "servers:\n", "gateway:\nservers:\n", "{}"])
def test_empty_configs(text: str) -> None:
    assert parse(text) == Config()


def test_http_type_is_accepted() -> None:
    assert parse("servers: {x: {type: http, url: 'HTTPS://h'}}").servers["x"].type == "http"


def test_load_config_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "bastion.yaml"
    path.write_bytes(b"\xef\xbb\xbfservers:\n  x:\n    command: ${CMD}\n")  # with a BOM
    assert load_config(path, {"CMD": "uvx"}).servers["x"].command == "uvx"


def test_load_config_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bastion.yaml"
    path.write_text("servers:\n  x:\n    args: [1]\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    assert str(info.value) == f"{path}: servers.x.args[0]: expected a string, got 1"


def test_a_configuration_others_may_change_is_refused_before_it_is_read(tmp_path: Path) -> None:
    """Red-team w: whoever may write bastion.yaml picks the commands the gateway runs (as its
    user, root included) and who its admin is; it is checked as the policy file is."""
    shared = tmp_path / "shared"
    shared.mkdir()
    path = shared / "bastion.yaml"
    path.write_text("servers: {}\n")
    path.chmod(0o666)
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    assert str(info.value) == (
        f"{path}: others may change the configuration: {path} is writable by every user;"
        f" run: chmod o-w {path}"
    )
    path.chmod(0o644)
    shared.chmod(0o777)  # whoever may write the directory may replace the file
    with pytest.raises(ConfigError, match=f"{shared} is writable by every user"):
        load_config(path, {})
    shared.chmod(0o1777)  # sticky, as /tmp: only the file's owner (we) may replace it
    assert load_config(path, {}) == Config()


def test_load_config_file_errors(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(missing, {})
    assert str(info.value) == f"{missing}: cannot read: No such file or directory"
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"servers: \xff\n")
    with pytest.raises(ConfigError) as info:
        load_config(binary, {})
    assert str(info.value) == f"{binary}: not UTF-8 text (invalid byte at offset 9)"


def test_size_limit(tmp_path: Path) -> None:
    exact = tmp_path / "exact.yaml"
    exact.write_bytes(b"#" * (MAX_CONFIG_BYTES - 1) + b"\n")
    assert load_config(exact, {}) == Config()
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * MAX_CONFIG_BYTES + b"\n")
    with pytest.raises(ConfigError) as info:
        load_config(big, {})
    assert str(info.value) == f"{big}: larger than 1 MiB"
    assert error("#" * MAX_CONFIG_BYTES + "\n") == "<string>: larger than 1 MiB"
    assert error("# " + "é" * (MAX_CONFIG_BYTES // 2)) == "<string>: larger than 1 MiB"  # bytes


def test_server_count_limit() -> None:
    many = "servers:\n" + "".join(f"  s{i}: {{command: a}}\n" for i in range(MAX_SERVERS))
    assert len(parse(many).servers) == MAX_SERVERS
    too_many = many + "  one_more: {command: a}\n"
    assert error(too_many) == "<string>: servers: 257 servers; at most 256 are allowed"


@pytest.mark.parametrize(
    ("first", "second", "prefix"),
    [("Notes", "notes", "notes+"), ("docs_v2", "DOCS_V2", "docs.v2+"), ("ab", "aB", "ab+")],
)
def test_tc3_servers_whose_uri_schemes_collide_are_refused_naming_both(
    first: str, second: str, prefix: str
) -> None:
    """TC-3: resource URIs are namespaced by the server name in lower case, so two servers
    whose names differ only in case would read each other's URIs; bare or not, neither loads."""
    for extra in ("", ', prefix: ""'):
        text = f"servers:\n  {first}: {{command: a}}\n  x: {{url: 'http://h'}}\n"
        text += f"  {second}: {{command: b{extra}}}\n"
        assert error(text) == (
            f'<string>: servers: "{first}" and "{second}" would share the resource URI prefix '
            f'"{prefix}": server names may not differ only in case'
        )
    assert set(parse("servers: {notes: {command: a}, notes2: {command: b}}").servers) == {
        "notes",
        "notes2",
    }


def test_source_names_the_text() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("servers: 5", {}, source="inline.yaml")
    assert str(info.value) == "inline.yaml: servers: expected a mapping, got 5"


# Substitution ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("${GITHUB_TOKEN}", "ghp_secret"),
        ("Bearer ${GITHUB_TOKEN}!", "Bearer ghp_secret!"),
        ("${HOST}:${HOST}", "example.com:example.com"),
        ("${UNSET:-fallback}", "fallback"),
        ("${UNSET:-}", ""),
        ("${UNSET:-a b:-c $x}", "a b:-c $x"),
        ("${EMPTY:-fallback}", "fallback"),  # like the shell: empty takes the default too
        ("${EMPTY}", ""),
        ("${HOST:-fallback}", "example.com"),
        ("$${GITHUB_TOKEN}", "${GITHUB_TOKEN}"),
        ("$${UNSET", "${UNSET"),
        ("a$${x}$${y}", "a${x}${y}"),
        ("$$${HOST}", "$${HOST}"),
        ("$", "$"),
        ("$$", "$$"),
        ("price: $5 {}", "price: $5 {}"),
        ("{HOST}", "{HOST}"),
        ("no variables", "no variables"),
    ],
)
def test_substitution(value: str, expected: str) -> None:
    config = parse_config(f"servers:\n  x:\n    command: a\n    args: ['{value}']\n", ENV)
    assert config.servers["x"].args == [expected]


def test_substitution_reaches_every_string_but_not_keys() -> None:
    config = parse(
        """
        gateway: {host: "${BIND:-127.0.0.2}", allowed_hosts: ["${HOST}"]}
        servers:
          x:
            command: ${HOST}
            args: ["--token=${GITHUB_TOKEN}"]
            env: {"${HOST}": "${HOST}"}
            cwd: /home/${HOST}
        """
    )
    assert config.gateway.host == "127.0.0.2"
    assert config.gateway.allowed_hosts == ["example.com"]
    server = config.servers["x"]
    assert server.args == ["--token=ghp_secret"]
    assert server.env == {"${HOST}": "example.com"}
    assert server.cwd == "/home/example.com"


def test_substitution_reads_only_the_given_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONLY_IN_OS_ENVIRON", "x")
    message = error("servers: {x: {command: '${ONLY_IN_OS_ENVIRON}'}}", {})
    assert message == (
        "<string>: servers.x.command: environment variable ONLY_IN_OS_ENVIRON is not set"
    )


def test_substituted_values_stay_strings() -> None:
    message = error("gateway: {port: '${PORT}'}", {"PORT": "9000"})
    assert message == '<string>: gateway.port: expected an integer, got "${PORT}"'


SECRET = "sk-live-SECRET-abcdef0123456789"


def test_a_url_with_user_info_is_refused_without_showing_it_IN5() -> None:
    """User info in an upstream URL is never sent (credentials go in ``headers``); a config
    holding one fails to load, rather than failing to authenticate without a word."""
    message = error("servers: {s: {url: 'https://svc:pw-SECRET@a.example/mcp'}}", {})
    assert message == (
        "<string>: servers.s.url: user info (user:password@) is never sent; "
        "give credentials in headers"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "servers: {s: {url: 'htps://a.example/mcp?key=${TOKEN}'}}",
            "servers.s.url: expected an http:// or https:// URL, "
            'got "htps://a.example/mcp?key=${TOKEN}"',
        ),
        (
            "servers: {s: {command: x, startup_timeout: '${TOKEN}'}}",
            'servers.s.startup_timeout: expected a number, got "${TOKEN}"',
        ),
        (
            "servers: {s: {command: x, type: 'x${TOKEN:-none}'}}",
            'servers.s.type: expected one of "stdio", "http", "streamable-http", '
            'got "x${TOKEN:-none}"',
        ),
        (  # longer than the 64 characters a value is cut to: the cut is of the written text
            "servers: {s: {url: 'htps://a-long-host-name.example/some/path/mcp?key=${TOKEN}'}}",
            "servers.s.url: expected an http:// or https:// URL, "
            'got "htps://a-long-host-name.example/some/path/mcp?key=${TOKEN}"',
        ),
        (  # a message that quotes the value in its own way (cut at 64 characters)
            "auth: {resource: 'https://r.example/mcp', "
            "authorization_servers: ['http://as.example/path/to/metadata?key=${TOKEN}']}",
            "auth: auth.authorization_servers: not an https:// URL: "
            "http://as.example/path/to/metadata?key=${TOKEN}",
        ),
    ],
)
def test_errors_name_a_substituted_value_as_written(text: str, message: str) -> None:
    """IN-5: a value from ${VAR} is often a credential; errors show the file's text instead."""
    got = error(text, {"TOKEN": SECRET})
    assert "SECRET" not in got
    assert got == f"<string>: {message}"


def test_a_literal_value_is_named_as_it_is_beside_a_substituted_one() -> None:
    text = "servers: {s: {url: 'htps://example.com/mcp', headers: {A: '${HOST}'}}}"
    assert error(text) == f'<string>: servers.s.url: {NOT_URL} "htps://example.com/mcp"'


SYNTAX = "write ${NAME} or ${NAME:-default}, and $${ for a literal ${"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("${NOPE}", "environment variable NOPE is not set"),
        ("a ${GITHUB_TOKEN} ${NOPE}", "environment variable NOPE is not set"),
        ("${}", f'invalid reference "${{}}": {SYNTAX}'),
        ("${1A}", f'invalid reference "${{1A}}": {SYNTAX}'),
        ("${A-B}", f'invalid reference "${{A-B}}": {SYNTAX}'),
        ("${A:b}", f'invalid reference "${{A:b}}": {SYNTAX}'),
        ("${input:token}", f'invalid reference "${{input:token}}": {SYNTAX}'),
        ("${env:HOST}", f'invalid reference "${{env:HOST}}": {SYNTAX}'),
        ("x ${HOST", f'invalid reference "${{HOST": {SYNTAX}'),
        ("${", f'invalid reference "${{": {SYNTAX}'),
    ],
)
def test_substitution_errors(value: str, message: str) -> None:
    text = f"servers:\n  github:\n    command: a\n    env:\n      TOKEN: '{value}'\n"
    assert error(text) == f"<string>: servers.github.env.TOKEN: {message}"


def test_missing_variable_in_a_list() -> None:
    assert error("servers: {x: {command: a, args: [a, '${GITHUB_TOKEN}', '${NOPE}']}}") == (
        "<string>: servers.x.args[2]: environment variable NOPE is not set"
    )


# Error messages -----------------------------------------------------------------------------

FIELDS = (
    "command, args, env, cwd, url, headers, type, prefix, replicas, enabled, startup_timeout, "
    "request_timeout, sandbox, pass_principal, listing"
)
GATEWAY_FIELDS = "host, port, separator, allowed_hosts, allowed_origins, tls, sessions, http"
NAME_RULE = "use 1 to 64 of A-Z a-z 0-9 _ -"
NOT_URL = "expected an http:// or https:// URL, got"
ONLY_COMMAND = "only a command server takes this, not a url one"
NEITHER = "give either command (a local server) or url (a remote one)"
PREFIX_RULE = "expected a string matching regex '^[A-Za-z0-9_.-]{0,64}$'"
SEPARATOR_RULE = "expected a string matching regex '^[A-Za-z0-9_.-]{1,16}$'"
SSE = (
    '"sse" (the deprecated HTTP+SSE transport) is not supported; '
    'use "http" if the server offers Streamable HTTP'
)
TYPES = '"stdio", "http", "streamable-http"'
NOT_YAML = "unsupported YAML value ({}); quote it to make it a string"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a", "expected a mapping, got a list"),
        ("just text", 'expected a mapping, got "just text"'),
        (
            "bogus: 1",
            "bogus: unknown field; expected one of: servers, gateway, auth, policy, limits, "
            "guard, audit",
        ),
        ("servers: [a]", "servers: expected a mapping, got a list"),
        ("servers: {1: {command: a}}", "servers: keys must be strings, got 1"),
        ("servers: {'a b': {command: a}}", f'servers: invalid server name "a b": {NAME_RULE}'),
        ("servers: {a.b: {command: a}}", f'servers: invalid server name "a.b": {NAME_RULE}'),
        ("servers: {'': {command: a}}", f'servers: invalid server name "": {NAME_RULE}'),
        (
            f"servers: {{{'a' * 65}: {{}}}}",
            f'servers: invalid server name "{"a" * 61}...": {NAME_RULE}',
        ),
        ("gateway: []", "gateway: expected a mapping, got a list"),
        ("gateway: {bogus: 1}", f"gateway.bogus: unknown field; expected one of: {GATEWAY_FIELDS}"),
        ("gateway: {port: 0}", "gateway.port: expected an integer >= 1, got 0"),
        ("gateway: {port: 65536}", "gateway.port: expected an integer <= 65535, got 65536"),
        ("gateway: {port: '8080'}", 'gateway.port: expected an integer, got "8080"'),
        ("gateway: {host: ''}", 'gateway.host: expected a string of length >= 1, got ""'),
        ("gateway: {separator: ''}", f'gateway.separator: {SEPARATOR_RULE}, got ""'),
        ("gateway: {separator: '/'}", f'gateway.separator: {SEPARATOR_RULE}, got "/"'),
        ("gateway: {allowed_hosts: [a, 1]}", "gateway.allowed_hosts[1]: expected a string, got 1"),
        ("gateway: {allowed_origins: a}", 'gateway.allowed_origins: expected a list, got "a"'),
    ],
)
def test_error_messages(text: str, message: str) -> None:
    assert error(text) == f"<string>: {message}"


@pytest.mark.parametrize(
    ("server", "message"),
    [
        # structure
        ("null", ": expected a mapping, got null"),
        ("[command]", ": expected a mapping, got a list"),
        ("{command: a, bogus: 1}", f".bogus: unknown field; expected one of: {FIELDS}"),
        ("{command: a, Command: b}", f".Command: unknown field; expected one of: {FIELDS}"),
        ("{command: a, env: {1: b}}", ".env: keys must be strings, got 1"),
        ("{command: a, env: {null: b}}", ".env: keys must be strings, got null"),
        # types, with the value that was refused
        ("{command: npx, args: [a, 5]}", ".args[1]: expected a string, got 5"),
        ("{command: a, args: a b}", '.args: expected a list, got "a b"'),
        ("{command: 5}", ".command: expected a string or null, got 5"),
        ("{command: ''}", '.command: expected a string of length >= 1, got ""'),
        ("{command: a, env: {TOKEN: 123}}", ".env.TOKEN: expected a string, got 123"),
        ("{command: a, env: {A: b, DEBUG: true}}", ".env.DEBUG: expected a string, got true"),
        ("{command: a, env: {'A.B': 1.5}}", '.env["A.B"]: expected a string, got 1.5'),
        ("{command: a, env: {A: [1]}}", ".env.A: expected a string, got a list"),
        (
            "{url: 'http://h', headers: {X-Key: null}}",
            ".headers.X-Key: expected a string, got null",
        ),
        ("{command: a, env: a}", '.env: expected a mapping, got "a"'),
        ("{command: a, enabled: maybe}", '.enabled: expected true or false, got "maybe"'),
        ("{command: a, cwd: 2024-01-01}", ".cwd: " + NOT_YAML.format("a date")),
        ("{command: a, args: !!binary aGk=}", ".args: " + NOT_YAML.format("a bytes")),
        # ranges
        ("{command: a, replicas: 0}", ".replicas: expected an integer >= 1, got 0"),
        ("{command: a, replicas: 17}", ".replicas: expected an integer <= 16, got 17"),
        ("{command: a, replicas: true}", ".replicas: expected an integer, got true"),
        ("{command: a, replicas: 1.5}", ".replicas: expected an integer, got 1.5"),
        ("{command: a, startup_timeout: 0}", ".startup_timeout: expected a number > 0, got 0"),
        ("{command: a, startup_timeout: '5'}", '.startup_timeout: expected a number, got "5"'),
        ("{command: a, request_timeout: -1}", ".request_timeout: expected a number > 0, got -1"),
        (
            "{command: a, request_timeout: 3601}",
            ".request_timeout: expected a number <= 3600, got 3601",
        ),
        ("{command: a, request_timeout: .nan}", ".request_timeout: expected a number > 0, got NaN"),
        (
            "{command: a, request_timeout: .inf}",
            ".request_timeout: expected a number <= 3600, got Infinity",
        ),
        ("{command: a, prefix: 'a b'}", f'.prefix: {PREFIX_RULE}, got "a b"'),
        ("{command: a, prefix: a/b}", f'.prefix: {PREFIX_RULE}, got "a/b"'),
        # across fields
        ("{command: a, url: 'http://h'}", ": give either command or url, not both"),
        ("{}", f": {NEITHER}"),
        ("{args: [a]}", f": {NEITHER}"),
        ("{url: 'ftp://h'}", f'.url: {NOT_URL} "ftp://h"'),
        ("{url: 'localhost:3000'}", f'.url: {NOT_URL} "localhost:3000"'),
        ("{url: 'http://'}", f'.url: {NOT_URL} "http://"'),
        ("{url: 'http://[::1'}", f'.url: {NOT_URL} "http://[::1"'),
        ("{url: 'http://h', args: [a]}", f".args: {ONLY_COMMAND}"),
        ("{url: 'http://h', env: {A: b}}", f".env: {ONLY_COMMAND}"),
        ("{url: 'http://h', cwd: /}", f".cwd: {ONLY_COMMAND}"),
        (
            "{command: a, headers: {A: b}}",
            ".headers: only a url server takes this, not a command one",
        ),
        (
            "{url: 'http://h', type: stdio}",
            '.type: "stdio" needs a command, but this server has a url',
        ),
        ("{command: a, type: http}", '.type: "http" needs a url, but this server has a command'),
        (
            "{command: a, type: streamable-http}",
            '.type: "streamable-http" needs a url, but this server has a command',
        ),
        ("{url: 'http://h', type: sse}", f".type: {SSE}"),
        ("{url: 'http://h', type: websocket}", f'.type: expected one of {TYPES}, got "websocket"'),
    ],
)
def test_server_error_messages(server: str, message: str) -> None:
    assert error(f"servers:\n  x: {server}\n") == f"<string>: servers.x{message}"


@pytest.mark.parametrize(
    "value",
    ['"Bearer t\\r\\nX-Evil: 1"', '"a\\nb"', '"a\\rb"', '"a\\x00b"', "'Bearer ${NL}'"],
)
def test_header_values_with_line_breaks_are_refused(value: str) -> None:
    """A CR or LF in a header value would start another header to the upstream."""
    got = error(
        f"servers: {{s: {{url: 'https://h/mcp', headers: {{Authorization: {value}}}}}}}",
        {"NL": "sk-live-SECRET\r\nX-Evil: 1"},
    )
    assert got == (
        "<string>: servers.s.headers: header Authorization: a value may not hold a line "
        "break or other control character"
    )


def test_header_names_must_be_http_tokens() -> None:
    got = error("servers: {s: {url: 'https://h/mcp', headers: {\"X-A\\r\\nB\": c, ok: d}}}")
    assert got == '<string>: servers.s.headers: invalid header name "X-A\\r\\nB"'
    tab = parse("servers: {s: {url: 'https://h/mcp', headers: {X-A: \"b\\tc\"}}}")
    assert tab.servers["s"].headers == {"X-A": "b\tc"}


def test_the_first_problem_in_file_order_is_reported() -> None:
    text = "servers: {a: {command: x}, b: {command: x, args: [1]}, c: {url: 'ftp://'}}"
    assert error(text) == "<string>: servers.b.args[0]: expected a string, got 1"


def test_structs_refuse_contradictions_when_built_directly() -> None:
    with pytest.raises(FieldProblem, match=r"^give either command or url, not both$"):
        ServerConfig(command="a", url="http://h")
    with pytest.raises(ValueError, match=r"^expected an http:// or https:// URL, got \"file:"):
        ServerConfig(url="file:///")
    problem = FieldProblem("type", "x")
    assert problem.field == "type"


# YAML ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("servers: x: y\n", "<string>:1:11: mapping values are not allowed in this context"),
        ("servers:\n  a:\n    command: x\n   b: 1\n", "<string>:4:4: did not find expected key"),
        ("servers: [a, b\n", "<string>:2:1: did not find expected ',' or ']'"),
        ("servers: {}\n---\nservers: {}\n", "<string>:2:1: but found another document"),
        ("servers: *nothing\n", "<string>:1:10: found undefined alias"),
        ("servers: 'open\n", "<string>:2:1: found unexpected end of stream"),
        ("servers: {a: @x}\n", "<string>:1:14: found character that cannot start any token"),
        ("servers: {a: {command: x}}\nservers: {}\n", '<string>:2:1: duplicate key "servers"'),
        ("servers:\n  a: {command: x}\n  a: {command: y}\n", '<string>:3:3: duplicate key "a"'),
        ("servers: {a: {command: x, env: {K: 1, K: 2}}}\n", '<string>:1:39: duplicate key "K"'),
        (
            "servers: \x07\n",
            "<string>: unacceptable character #x0007: control characters are not allowed",
        ),
    ],
)
def test_yaml_errors(text: str, message: str) -> None:
    assert error(text) == message


def test_yaml_anchors_and_merge_keys_work() -> None:
    config = parse(
        """
        servers:
          one: &base {command: npx, env: {A: "1"}}
          two:
            <<: *base
            args: [two]
        """
    )
    assert config.servers["one"] == ServerConfig(command="npx", env={"A": "1"})
    assert config.servers["two"] == ServerConfig(command="npx", env={"A": "1"}, args=["two"])


def test_nesting_limit_is_checked_before_the_c_parser_can_overflow() -> None:
    deep = "servers: " + "[" * 100_000 + "]" * 100_000  # crashes libyaml's composer unguarded
    assert error(deep) == f"<string>:1:{9 + MAX_DEPTH}: nested over {MAX_DEPTH} levels"
    ok = "servers: {x: {command: a, args: " + "[" * (MAX_DEPTH - 3) + "]" * (MAX_DEPTH - 3) + "}}"
    assert error(ok) == "<string>: servers.x.args[0]: expected a string, got a list"


def test_aliases_cannot_nest_past_the_limit() -> None:
    levels = "\n".join(f"l{i}: &l{i} [*l{i - 1}]" for i in range(1, 40))
    text = f"l0: &l0 [x]\n{levels}\n"
    assert error(text) == f"<string>: l31{'[0]' * 31}: nested over {MAX_DEPTH} levels"


def test_recursive_aliases_are_refused() -> None:
    assert error("servers: &a {x: *a}\n") == ("<string>:1:10: found unconstructable recursive node")
    assert error("a: &a [*a]\n").endswith(f": nested over {MAX_DEPTH} levels")


def test_alias_expansion_is_bounded() -> None:
    # Nine levels of nine aliases stand for 9**9 (387 million) strings in about 600 bytes.
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    assert error("\n".join(lines)) == (
        f"<string>: more than {MAX_VALUES} values (do YAML aliases expand too far?)"
    )


def test_sandboxed_server() -> None:
    server = parse(
        "servers: {x: {command: npx, args: [-y, pkg], env: {TOKEN: t},"
        " sandbox: {profile: strict, network: [registry.npmjs.org, '*.npmjs.org:443'],"
        " paths: [/opt/data]}}}"
    ).servers["x"]
    assert server.sandbox is not None
    assert server.sandbox.profile == "strict"
    assert server.sandbox.network == ["registry.npmjs.org", "*.npmjs.org:443"]
    assert server.sandbox.paths == ["/opt/data"]
    bare = parse("servers: {x: {command: a, sandbox: {}}}").servers["x"].sandbox
    assert bare is not None and (bare.profile, bare.network, bare.paths) == ("upstream", [], [])


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("servers: {x: {url: 'http://h/mcp', sandbox: {}}}", "servers.x.sandbox"),
        ("servers: {x: {command: a, cwd: /srv, sandbox: {}}}", "servers.x.cwd"),
        ("servers: {x: {command: a, sandbox: {network: ['a b']}}}", "servers.x.sandbox.network[0]"),
        ("servers: {x: {command: a, sandbox: {paths: [relative]}}}", "servers.x.sandbox.paths[0]"),
        ("servers: {x: {command: a, sandbox: {shell: true}}}", "servers.x.sandbox.shell"),
    ],
)
def test_sandbox_errors_name_the_field(text: str, where: str) -> None:
    assert f": {where}:" in error(text)


def test_unknown_sandbox_field_lists_the_sandbox_fields() -> None:
    message = error("servers: {x: {command: a, sandbox: {shell: true}}}")
    assert message == (
        "<string>: servers.x.sandbox.shell: unknown field; expected one of: profile, network, paths"
    )


def test_a_client_crl_needs_the_client_ca_it_revokes_for() -> None:
    """AU-1: ``client_crl`` lists revocations of the ``client_ca`` CAs; alone it is refused."""
    tls = "gateway: {tls: {cert_file: c, key_file: k, %s}}"
    assert parse(tls % "client_ca: ca, client_crl: crl").gateway.tls.client_crl == "crl"  # type: ignore[union-attr]
    assert "client_crl needs client_ca" in error(tls % "client_crl: crl")
