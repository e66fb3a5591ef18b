"""Convert an MCP client's server list (Claude Desktop, Cursor, Claude Code, VS Code) to YAML.

Each client's variables (``${env:X}``, ``${input:X}``, ``${X:-d}``) become Bastion's ``${X}``;
other text is escaped (every ``${`` written ``$${``) so it loads as exactly the client's text.
What has no Bastion equivalent is dropped with a warning, and so is a server that
``parse_config`` would refuse (an empty command, a url without a host), checked with every
variable set; ``to_yaml`` writes the warnings as comments above a ``servers:`` map that
``parse_config`` accepts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Final, Literal, TypeAlias
from urllib.parse import urlsplit

import msgspec
import yaml  # PyYAML ships no annotations

from bastion._types import JSONValue
from bastion.config.jsonc import strip_jsonc
from bastion.config.load import MAX_SERVERS, _Path, parse_config
from bastion.config.model import _describe
from bastion.config.yaml_text import read_text_file
from bastion.config.yaml_text import render_path as _render_path
from bastion.errors import ConfigError

__all__ = [
    "MAX_CLIENT_CONFIG_BYTES",
    "ClientShape",
    "ImportResult",
    "import_client_config",
    "load_client_config",
    "parse_client_config",
    "to_yaml",
]

# ~/.claude.json also holds per-project state and history, and grows far past a config's size.
MAX_CLIENT_CONFIG_BYTES: Final = 64 * 1024 * 1024

ClientShape: TypeAlias = Literal["mcpServers", "claude-code", "vscode"]

_REFERENCE: Final = re.compile(r"\$\{([^}]*)\}")
_VARIABLE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FIELDS: Final = {"stdio": ("command", "args", "env", "cwd"), "http": ("url", "headers")}
_HTTP_TYPES: Final = ("http", "streamable-http", "streamableHttp")
_URL_STARTS: Final = ("http://", "https://", "${")
_HINTS: Final = {
    "envFile": "dropped: put those variables in Bastion's environment instead",
    "disabled": "dropped: expected true or false",
}
# VS Code's own variables: no value outside the editor, so the user has to supply one.
_EDITOR_VARIABLES: Final = ("workspaceFolder", "workspaceFolderBasename", "file", "cwd")
# What each variable stands for while a result is checked: any string field takes it, and a
# url may begin with it (``url: ${DOCS_URL}``).
_PLACEHOLDER: Final = "https://placeholder.invalid"
_CHECKED: Final = "<import>"


class ImportResult(msgspec.Struct, frozen=True, kw_only=True):
    """``config`` is ``{"servers": {...}}`` in bastion.yaml's shape; ``warnings`` need reading."""

    shape: ClientShape
    config: dict[str, JSONValue]
    warnings: tuple[str, ...]


def load_client_config(path: Path) -> ImportResult:
    """Read a client's JSON (or JSON with comments) configuration file and convert it.

    Raises:
        ConfigError: unreadable, over 64 MiB, not JSON, or holding no MCP server list.
    """
    return parse_client_config(read_text_file(path, MAX_CLIENT_CONFIG_BYTES), source=str(path))


def parse_client_config(text: str, *, source: str = "<string>") -> ImportResult:
    """Parse a client's JSON with comments and trailing commas (VS Code writes them); convert.

    Raises:
        ConfigError: not JSON, or holding no MCP server list; the message names ``source``.
    """
    try:
        try:
            data = json.loads(text)
        except json.JSONDecodeError:  # plain JSON is the common case; try JSONC only after
            data = json.loads(strip_jsonc(text))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{source}:{exc.lineno}:{exc.colno}: {exc.msg}") from exc
    except RecursionError as exc:
        raise ConfigError(f"{source}: nested too deeply") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a JSON object, got {_describe(data)}")
    try:
        return import_client_config(data)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from exc


def import_client_config(data: Mapping[str, JSONValue]) -> ImportResult:
    """Convert a client's parsed configuration; the client is told apart by its keys.

    ``mcpServers`` (Claude Desktop, Cursor, Claude Code's ``.mcp.json``), plus
    ``projects.<path>.mcpServers`` (Claude Code's ``~/.claude.json``); ``servers`` and
    ``inputs`` (VS Code's ``.vscode/mcp.json``, or under ``mcp`` in its settings.json).

    Raises:
        ConfigError: no server list, a server list that is not a mapping, or too many servers.
    """
    base: _Path = ()
    if isinstance(data.get("mcp"), dict) and "mcpServers" not in data:
        data, base = data["mcp"], ("mcp",)
    lists: list[tuple[_Path, JSONValue]] = []
    inputs: dict[str, str] = {}
    shape: ClientShape
    if "mcpServers" in data or isinstance(data.get("projects"), dict):
        shape = "claude-code" if isinstance(data.get("projects"), dict) else "mcpServers"
        if "mcpServers" in data:
            lists.append((("mcpServers",), data["mcpServers"]))
        projects = data.get("projects")
        for project, settings in projects.items() if isinstance(projects, dict) else ():
            if isinstance(settings, dict) and "mcpServers" in settings:
                lists.append((("projects", project, "mcpServers"), settings["mcpServers"]))
    elif "servers" in data:
        shape = "vscode"
        lists.append(((*base, "servers"), data["servers"]))
        items = data.get("inputs")
        for item in items if isinstance(items, list) else ():
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                inputs[item["id"]] = str(item.get("description") or "")
    else:
        raise ConfigError(
            'no MCP servers: expected "mcpServers" (Claude Desktop, Cursor, Claude Code) '
            'or "servers" (VS Code)'
        )
    importer = _Importer(inputs)
    for where, servers in lists:
        if not isinstance(servers, dict):
            raise ConfigError(
                f"{_render_path(where)}: expected a mapping, got {_describe(servers)}"
            )
        for name, entry in servers.items():
            importer.add(name, entry, (*where, name))
    if len(importer.servers) > MAX_SERVERS:
        raise ConfigError(f"{len(importer.servers)} servers; Bastion takes at most {MAX_SERVERS}")
    if importer.variables:
        names = ", ".join(importer.variables)
        importer.warn((), f"set these environment variables before `bastion serve`: {names}")
    config: dict[str, JSONValue] = {"servers": importer.servers}
    return ImportResult(shape=shape, config=config, warnings=tuple(importer.warnings))


def to_yaml(config: Mapping[str, JSONValue], *, warnings: Sequence[str] = ()) -> str:
    """``config`` as bastion.yaml text, each warning a comment line at the top.

    Raises:
        ConfigError: the text would not load (over a limit of ``parse_config``: 1 MiB, the
            values or text that it takes), even with every variable it names set.
    """
    lines = ["# Bastion configuration written by `bastion import`."]
    if warnings:
        lines.append("# Read these notes, then delete them:")
    # A line break in a warning would end the comment and start YAML: only printables pass.
    lines += ["#   - " + "".join(c if c.isprintable() else " " for c in w) for w in warnings]
    text = "\n".join(lines) + "\n" + _dump(config)
    problem = _load_problem(text)
    if problem is not None:
        raise ConfigError(f"the converted configuration would not load: {problem}")
    return text


def _dump(config: Mapping[str, JSONValue]) -> str:
    text: str = yaml.safe_dump(dict(config), sort_keys=False, allow_unicode=True, width=1 << 16)
    return text


class _AnyVariable(Mapping[str, str]):
    """An environment in which every variable is set, to ``_PLACEHOLDER``."""

    def __getitem__(self, name: str) -> str:
        return _PLACEHOLDER

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def _load_problem(text: str) -> str | None:
    """Why ``parse_config`` refuses ``text`` with every variable set, or None (IN-1: what
    the importer writes loads)."""
    try:
        parse_config(text, _AnyVariable(), source=_CHECKED)
    except ConfigError as exc:
        return str(exc).removeprefix(f"{_CHECKED}: ")
    return None


class _Importer:
    """Collects converted servers under unique valid names, with warnings and variables."""

    def __init__(self, inputs: Mapping[str, str]) -> None:
        self.servers: dict[str, JSONValue] = {}
        self.warnings: dict[str, None] = {}  # an ordered set: one warning once
        self.variables: dict[str, None] = {}
        self._inputs = inputs

    def warn(self, where: _Path, message: str) -> None:
        self.warnings[f"{_render_path(where)}: {message}" if where else message] = None

    def add(self, name: str, entry: JSONValue, where: _Path) -> None:
        converted = self._entry(entry, where)
        if converted is None:
            return
        base = re.sub(r"[^A-Za-z0-9_-]", "-", name)[:64] or "server"
        problem = _load_problem(_dump({"servers": {base: converted}}))
        if problem is not None:  # an empty command, a url without a host, ...
            self.warn(where, f"skipped: it would not load ({problem})")
            return
        target, count = base, 1
        while target in self.servers:
            if self.servers[target] == converted:
                return  # Claude Code lists one server in several projects
            count += 1
            target = f"{base[: 63 - len(str(count))]}-{count}"
        if target != name:
            self.warn(where, f"imported as servers.{target} (names: unique, A-Z a-z 0-9 _ -)")
        self.servers[target] = converted
        inline = [  # the client's own text, before escaping: a reference is not a secret
            _render_path((field, key))
            for field in ("env", "headers")
            for key in converted.get(field) or {}
            if not _REFERENCE.search(str(entry[field][key]))
        ]
        if inline:
            problem = "written inline as they were: keep this file private, or use ${NAME}"
            self.warn(("servers", target), f"{', '.join(inline)} {problem}")

    def _entry(self, entry: JSONValue, where: _Path) -> dict[str, JSONValue] | None:
        if not isinstance(entry, dict):
            self.warn(where, f"skipped: expected a mapping, got {_describe(entry)}")
            return None
        kind = entry.get("type")
        transport = "http" if "url" in entry else "stdio"
        if ("command" in entry) == ("url" in entry):
            problem = "not both" if "url" in entry else "neither given"
            self.warn(where, f"skipped: give either command or url ({problem})")
            return None
        if kind == "sse":
            self.warn(where, 'skipped: "sse", the deprecated HTTP+SSE transport, is not supported')
            return None
        if kind is not None and kind not in (("stdio",) if transport == "stdio" else _HTTP_TYPES):
            given = "a command" if transport == "stdio" else "a url"
            self.warn(where, f"skipped: type {_describe(kind)} does not go with {given}")
            return None
        out: dict[str, JSONValue] = {}
        for key, value in entry.items():
            if key in _FIELDS[transport]:
                converted = self._field(key, value, (*where, key))
                if converted is None:
                    return None
                out[key] = converted
            elif key == "disabled" and isinstance(value, bool):
                out.update({"enabled": False} if value else {})
            elif key in _FIELDS["stdio"] + _FIELDS["http"]:
                other = "command" if transport == "http" else "url"
                self.warn((*where, key), f"dropped: only a {other} server takes it")
            elif key != "type":
                self.warn((*where, key), _HINTS.get(key, "dropped: Bastion has no such setting"))
        if transport == "http" and not str(out["url"]).lower().startswith(_URL_STARTS):
            url = _describe(out["url"])
            self.warn(where, f"skipped: expected an http:// or https:// url, got {url}")
            return None
        if transport == "http" and "@" in _authority(str(out["url"])):
            # Not quoted: the user info may be a password.
            self.warn(where, "skipped: user info (user:password@) in the url is never sent")
            return None
        return out

    def _field(self, key: str, value: JSONValue, where: _Path) -> JSONValue:
        if key in ("command", "cwd", "url"):
            return self._string(value, where)
        if key == "args" and isinstance(value, list):
            args = [self._string(item, (*where, i)) for i, item in enumerate(value)]
            return None if None in args else args
        if key in ("env", "headers") and isinstance(value, dict):
            pairs = {k: self._string(v, (*where, k)) for k, v in value.items()}
            return None if None in pairs.values() else pairs
        self.warn(where, f"skipped the server: expected a {'list' if key == 'args' else 'mapping'}")
        return None

    def _string(self, value: JSONValue, where: _Path) -> str | None:
        if isinstance(value, bool | int | float):
            value = json.dumps(value)  # 3000 -> "3000", true -> "true": what the client passed
        if not isinstance(value, str):
            self.warn(where, f"skipped the server: expected a string, got {_describe(value)}")
            return None
        out, last = [], 0
        for match in _REFERENCE.finditer(value):
            start = match.start()
            if start > 0 and value[start - 1] == "$":  # "$${X}" would read as our escape
                self.warn(where, f"kept {_describe(match[0])} as literal text after a $")
                continue  # literal text, escaped with the text around it
            reference = self._reference(match, where)
            if reference is not None:
                out += [_literal(value[last:start]), reference]
                last = match.end()
        return "".join([*out, _literal(value[last:])])

    def _reference(self, match: re.Match[str], where: _Path) -> str | None:
        """Bastion's ``${NAME}`` for the client's reference, or None when it is kept as
        literal text."""
        body = match[1]
        scheme, colon, rest = body.partition(":")
        if _VARIABLE.fullmatch(scheme) and rest.startswith("-"):  # ${NAME:-default}, as ours
            self.variables[scheme] = None
            return match[0]
        if scheme == "input" and rest:
            name = re.sub(r"\W", "_", rest, flags=re.ASCII)
            name = f"_{name}" if name[0].isdigit() else name
            asked = f"{_describe(rest)} ({_describe(self._inputs.get(rest, ''))})"
            self.warn(where, f"${{{name}}} replaces VS Code input {asked}")
        elif body == "userHome":
            name = "HOME"
        else:  # ${NAME} (Claude Code, and ours) or ${env:NAME} (VS Code, Cursor)
            name = rest if scheme == "env" else "" if colon else body
        if not _VARIABLE.fullmatch(name):
            self.warn(where, f"kept {_describe(match[0])} as literal text: no such variable")
            return None
        if name in _EDITOR_VARIABLES:
            self.warn(where, f"${{{name}}} is VS Code's; set {name} or write the value")
        self.variables[name] = None
        return f"${{{name}}}"


def _literal(text: str) -> str:
    """``text`` as Bastion's configuration writes it to read back as exactly ``text``: every
    ``${`` doubled to ``$${``, its escape, so that none of it is read as a reference (and no
    variable of the gateway's environment gets into a literal)."""
    return text.replace("${", "$${")


def _authority(url: str) -> str:
    """The ``host[:port]`` part of ``url`` with any user info; empty when there is none (a
    ``${VAR}`` url) or it does not parse."""
    try:
        return urlsplit(url).netloc
    except ValueError:
        return ""
