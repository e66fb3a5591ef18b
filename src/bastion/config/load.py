"""Load ``bastion.yaml``: bounded YAML (``yaml_text``), ``${VAR}`` substitution, typed
conversion, cross-checks.

Every failure is a ``ConfigError`` reading ``<source>: <path>: <problem>``, the path in dotted
form (``servers.github.args[1]``); YAML syntax errors read ``<source>:<line>:<column>: ...``.
The environment is passed in, never read here, and nothing here exits the process. A value
that came from a ``${VAR}`` is often a credential (IN-5): messages name it as the file writes
it (``got "${TOKEN}"``), never as substituted, and those substituted into a server's fields
go to ``config.secrets.note_substituted``, which masks them in what its upstream says
(UP-4). ``load_config`` reads only a file that no user but root or ours may change.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Final, Literal, TypeAlias, TypeVar, get_args, get_origin, get_type_hints

import msgspec
from msgspec import ValidationError

from bastion._file_trust import change_refused
from bastion._types import JSONValue
from bastion.auth.settings import AuthSettings
from bastion.catalog.names import server_scheme
from bastion.config.model import (
    SERVER_NAME_PATTERN,
    AuditSettings,
    Config,
    FieldProblem,
    GatewaySettings,
    PolicySettings,
    ServerConfig,
    _describe,
)
from bastion.config.secrets import note_substituted
from bastion.config.yaml_text import (
    MAX_DEPTH,
    MAX_VALUES,
    YamlPath,
    parse_yaml_text,
    read_text_file,
)
from bastion.config.yaml_text import render_path as _render_path
from bastion.errors import ConfigError
from bastion.guard.settings import GuardSettings
from bastion.limits.settings import LimitSettings

__all__ = [
    "MAX_CONFIG_BYTES",
    "MAX_DEPTH",
    "MAX_SERVERS",
    "MAX_VALUES",
    "load_config",
    "parse_config",
    "parse_yaml_text",
    "read_text_file",
]

MAX_CONFIG_BYTES: Final = 1024 * 1024
MAX_SERVERS: Final = 256
# A substituted value's text this long or longer is taken out of any message that quotes it
# in its own way; shorter, it could match the message's own words (like MIN_KNOWN_SECRET).
MIN_CONCEALED: Final = 8

_Path: TypeAlias = YamlPath
_S = TypeVar("_S", bound=msgspec.Struct)

_SERVER_NAME: Final = re.compile(SERVER_NAME_PATTERN)
_VARIABLE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_REFERENCE: Final = re.compile(r"\$\$\{|\$\{(?P<body>[^}]*)(?P<end>\}?)")
_LOCATION: Final = re.compile(r"(?P<problem>.*?) - at `\$(?P<where>[^`]*)`")
_SEGMENT: Final = re.compile(r"\.(?P<field>\w+)|\[(?P<index>\d+|\.\.\.)\]")
_EXPECTED: Final = re.compile(r"Expected `(?P<want>[^`]+)`(?P<constraint>.*?)(?:, got `[^`]+`)?")
_UNKNOWN: Final = re.compile(r"Object contains unknown field `(?P<field>[^`]+)`")
_TYPE_NAMES: Final = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "object": "a mapping",
    "array": "a list",
    "null": "null",
}
_SYNTAX: Final = "write ${NAME} or ${NAME:-default}, and $${ for a literal ${"


def load_config(path: Path, environ: Mapping[str, str]) -> Config:
    """Read, substitute and check the configuration file at ``path``, once it is known that
    only root or our user may change it: whoever may write it picks the commands the gateway
    runs and who is its admin (``bastion._file_trust``).

    Raises:
        ConfigError: others may change the file (naming the entry at fault and the command
            that fixes it), or it cannot be read, is over 1 MiB, or is not a valid
            configuration.
    """
    if (refused := change_refused(path, "the configuration")) is not None:
        raise ConfigError(refused)
    return parse_config(read_text_file(path, MAX_CONFIG_BYTES), environ, source=str(path))


def parse_config(text: str, environ: Mapping[str, str], *, source: str = "<string>") -> Config:
    """Parse YAML ``text``, resolve ``${VAR}``/``${VAR:-default}`` from ``environ``, check it.

    ``$${`` is a literal ``${``. A default applies when the variable is unset or empty, as in
    the shell. Substitution yields strings: ``port: ${PORT}`` is refused, not coerced.

    Raises:
        ConfigError: the text is not a valid configuration; the message names ``source``
            and the path of the offending value.
    """
    if len(text.encode("utf-8", "surrogatepass")) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{source}: larger than 1 MiB")
    data = parse_yaml_text(text, source)
    resolver = _Resolver(environ)
    try:
        config = _build(resolver.resolve(data, ()))
    except _Invalid as exc:
        where = f"{_render_path(exc.path)}: " if exc.path else ""
        raise ConfigError(f"{source}: {where}{resolver.conceal(exc.problem, exc.path)}") from None
    # UP-4, IN-5: a credential given a server as ${VAR} (in args too) is masked wherever an
    # upstream may echo it: results, stderr, /readyz's and the log's reasons.
    note_substituted(resolver.substituted(("servers",)))
    return config


class _Invalid(Exception):
    """A problem at a path; ``parse_config`` adds the source and raises ``ConfigError``."""

    def __init__(self, path: _Path, problem: str) -> None:
        super().__init__(problem)
        self.path = path
        self.problem = problem


class _Resolver:
    """Copies the YAML tree, substituting variables in every string value (not in keys), and
    remembers what it substituted so that ``conceal`` can keep it out of messages."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        # path: (as written, as substituted, {variable: the value it gave})
        self._written: dict[_Path, tuple[str, str, dict[str, str]]] = {}

    def conceal(self, problem: str, path: _Path) -> str:
        """``problem`` naming each value substituted at or under ``path`` as written; then,
        for other quotings, each of their variables' values (or a cut of one, of at least
        ``MIN_CONCEALED`` characters) replaced by ``${NAME}``."""
        below = [v for where, v in self._written.items() if where[: len(path)] == path]
        for written, value, _ in below:
            problem = problem.replace(_describe(value), _describe(written))
        for name, value in ((n, v) for _, _, used in below for n, v in used.items()):
            if len(value) < MIN_CONCEALED or value[:MIN_CONCEALED] not in problem:
                continue
            for end in range(min(len(value), len(problem)), MIN_CONCEALED - 1, -1):
                problem = problem.replace(value[:end], f"${{{name}}}")
        return problem

    def substituted(self, under: _Path) -> list[str]:
        """Each variable's value substituted at or under ``under``."""
        return [
            value
            for where, (_, _, used) in self._written.items()
            if where[: len(under)] == under
            for value in used.values()
        ]

    def resolve(self, value: JSONValue, path: _Path) -> JSONValue:
        # parse_yaml_text bounded the tree, aliases expanded: MAX_VALUES values, MAX_DEPTH deep.
        if isinstance(value, str):
            return self._substitute(value, path)
        if isinstance(value, dict):
            # Every mapping in the schema is keyed by strings: server, field and variable names.
            if bad := [k for k in value if not isinstance(k, str)]:
                raise _Invalid(path, f"keys must be strings, got {_describe(bad[0])}")
            return {k: self.resolve(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v, (*path, i)) for i, v in enumerate(value)]
        if value is None or isinstance(value, bool | int | float):
            return value
        name = type(value).__name__
        raise _Invalid(path, f"unsupported YAML value (a {name}); quote it to make it a string")

    def _substitute(self, text: str, path: _Path) -> str:
        used: dict[str, str] = {}

        def replace(match: re.Match[str]) -> str:
            if match["body"] is None:
                return "${"  # "$${" is the escape
            name, has_default, default = match["body"].partition(":-")
            if not match["end"] or not _VARIABLE.fullmatch(name):
                raise _Invalid(path, f"invalid reference {_describe(match[0])}: {_SYNTAX}")
            value = self._environ.get(name)
            if has_default and not value:
                value = default
            if value is None:
                raise _Invalid(path, f"environment variable {name} is not set")
            used[name] = value
            return value

        resolved = _REFERENCE.sub(replace, text)
        if used:
            self._written[path] = (text, resolved, used)
        return resolved


def _build(data: JSONValue) -> Config:
    root = _mapping(_or_empty(data), ())
    for key in root:
        if key not in Config.__struct_fields__:
            raise _Invalid((str(key),), _unknown_field(Config))
    gateway = _convert(_or_empty(root.get("gateway")), GatewaySettings, ("gateway",))
    entries = _mapping(_or_empty(root.get("servers")), ("servers",))
    if len(entries) > MAX_SERVERS:
        raise _Invalid(("servers",), f"{len(entries)} servers; at most {MAX_SERVERS} are allowed")
    servers: dict[str, ServerConfig] = {}
    for name, entry in entries.items():
        if not _SERVER_NAME.fullmatch(name):
            problem = f"invalid server name {_describe(name)}: use 1 to 64 of A-Z a-z 0-9 _ -"
            raise _Invalid(("servers",), problem)
        path = ("servers", name)
        if isinstance(entry, dict) and entry.get("type") == "sse":
            problem = '"sse" (the deprecated HTTP+SSE transport) is not supported; use "http"'
            raise _Invalid((*path, "type"), f"{problem} if the server offers Streamable HTTP")
        servers[name] = _convert(entry, ServerConfig, path)
    _refuse_shared_schemes(servers)
    auth = root.get("auth")
    return Config(
        servers=servers,
        gateway=gateway,
        auth=None if auth is None else _convert(auth, AuthSettings, ("auth",)),
        policy=_convert(_or_empty(root.get("policy")), PolicySettings, ("policy",)),
        limits=_convert(_or_empty(root.get("limits")), LimitSettings, ("limits",)),
        guard=_convert(_or_empty(root.get("guard")), GuardSettings, ("guard",)),
        audit=_convert(_or_empty(root.get("audit")), AuditSettings, ("audit",)),
    )


def _refuse_shared_schemes(names: Iterable[str]) -> None:
    """Resource URIs are namespaced by ``server_scheme`` (the name in lower case): two
    servers sharing one would answer each other's URIs (TC-3), so neither loads."""
    seen: dict[str, str] = {}
    for name in names:
        scheme = server_scheme(name)
        other = seen.setdefault(scheme, name)
        if other != name:
            problem = (
                f"{_describe(other)} and {_describe(name)} would share the resource URI prefix"
                f" {_describe(scheme + '+')}: server names may not differ only in case"
            )
            raise _Invalid(("servers",), problem)


def _or_empty(value: JSONValue) -> JSONValue:
    """A section left empty (``servers:``) is YAML null; it means "nothing here"."""
    return {} if value is None else value


def _mapping(value: JSONValue, path: _Path) -> dict[JSONValue, JSONValue]:
    if not isinstance(value, dict):
        raise _Invalid(path, f"expected a mapping, got {_describe(value)}")
    return value


def _convert(value: JSONValue, kind: type[_S], path: _Path) -> _S:
    try:
        return msgspec.convert(value, kind)
    except msgspec.ValidationError as exc:
        raise _translate(exc, value, kind, path) from exc


def _translate(exc: ValidationError, value: JSONValue, kind: type[_S], path: _Path) -> _Invalid:
    """Turn msgspec's ``... - at `$.sandbox.network[1]` `` into a dotted path and a
    value-naming problem; "[...]" stands for a dict key, which msgspec does not name."""
    match = _LOCATION.fullmatch(str(exc))
    problem, location = match.group("problem", "where") if match else (str(exc), "")
    segments = [(m["field"], m["index"]) for m in _SEGMENT.finditer(location)]
    if isinstance(exc.__cause__, FieldProblem) and exc.__cause__.field:
        segments.append((exc.__cause__.field, None))
    if unknown := _UNKNOWN.fullmatch(problem):
        segments.append((unknown["field"], None))
    where, node = list(path), value
    fields: list[str] = []
    for field, index in segments:
        if field is not None:
            fields.append(field)
            where.append(field)
            node = node.get(field) if isinstance(node, dict) else None
        elif index == "..." and isinstance(node, dict):  # str keys (_Resolver): first non-str
            key = next((k for k, v in node.items() if not isinstance(v, str)), "...")
            where.append(key)
            node = node.get(key)
        elif index is not None and index != "...":
            where.append(int(index))
            node = node[int(index)] if isinstance(node, list) else None
    if expected := _EXPECTED.fullmatch(problem):
        wanted = " or ".join(_TYPE_NAMES.get(t, t) for t in expected["want"].split(" | "))
        constraint = re.sub(r"(\d)\.0\b", r"\1", expected["constraint"])
        return _Invalid(tuple(where), f"expected {wanted}{constraint}, got {_describe(node)}")
    if unknown:
        return _Invalid(tuple(where), _unknown_field(_struct_at(kind, fields[:-1])))
    if problem.startswith("Invalid enum value") and (allowed := _allowed(kind, fields)):
        choices = ", ".join(json.dumps(t) for t in allowed)
        return _Invalid(tuple(where), f"expected one of {choices}, got {_describe(node)}")
    return _Invalid(tuple(where), problem[:1].lower() + problem[1:])


def _allowed(kind: type[msgspec.Struct], fields: list[str]) -> tuple[object, ...]:
    """The values the ``Literal`` of the field at ``fields`` allows (``servers.*.type``,
    each of ``auth.oidc.algorithms``); () when the path does not lead to one."""
    hint: object = kind
    for name in fields:
        struct = _struct_in(hint)
        if struct is None:  # the path leaves the Structs (a dict of them): not followed
            return ()
        hint = get_type_hints(struct).get(name)
    return _literal_values(hint)


def _literal_values(hint: object) -> tuple[object, ...]:
    """The values of the ``Literal`` in ``hint``, looking inside lists and unions."""
    if get_origin(hint) is Literal:
        return get_args(hint)
    for arg in get_args(hint):
        if values := _literal_values(arg):
            return values
    return ()


def _struct_at(kind: type[msgspec.Struct], fields: list[str]) -> type[msgspec.Struct]:
    """The Struct type reached from ``kind`` through ``fields`` (nested Struct fields)."""
    for name in fields:
        nested = _struct_in(get_type_hints(kind).get(name))
        if nested is None:
            break
        kind = nested
    return kind


def _struct_in(hint: object) -> type[msgspec.Struct] | None:
    """The Struct type ``hint`` is, or holds as an argument (``X | None``); else None."""
    return next(
        (
            c
            for c in (*get_args(hint), hint)
            if isinstance(c, type) and issubclass(c, msgspec.Struct)
        ),
        None,
    )


def _unknown_field(kind: type[msgspec.Struct]) -> str:
    return f"unknown field; expected one of: {', '.join(kind.__struct_fields__)}"
