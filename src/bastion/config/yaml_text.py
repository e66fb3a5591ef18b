"""Bounded YAML for the configuration and the policy file: read, parse, refuse what expands.

``read_text_file`` reads at most a limit of UTF-8; ``parse_yaml_text`` loads one document
safely, refusing duplicate keys (PyYAML keeps the last one silently), nesting deeper than
``MAX_DEPTH`` (checked on the event stream, before libyaml's composer can overflow the C
stack) and, once aliases are expanded, more than ``MAX_VALUES`` values or ``MAX_DEPTH``
levels, or more than ``MAX_TEXT`` characters of keys and strings: aliases share nodes, so a
few hundred bytes can stand for billions of values ("billion laughs"), and one alias of a
long string for as many copies of it, that every later step (substitution, conversion,
compilation, the argv of a child) would pay for (DS-4). A scalar
that YAML reads as a value Python cannot hold (``2024-02-30``, a 5000-digit integer) is a
problem at its line like any other (IN-1), not an exception that escapes the loader. Problems
read ``<source>: <path>: <problem>``, the path in dotted form (``servers.gh.args[1]``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Hashable
from pathlib import Path
from typing import Final, TypeAlias

import yaml  # PyYAML ships no annotations

from bastion._types import JSONValue
from bastion.config.model import _describe
from bastion.errors import ConfigError

__all__ = [
    "MAX_DEPTH",
    "MAX_TEXT",
    "MAX_VALUES",
    "YamlPath",
    "parse_yaml_text",
    "read_text_file",
    "render_path",
]

# libyaml's C composer recurses per level and overflows the C stack (a crash, not an
# exception) near 30 000 levels, so nesting is checked on the event stream first.
MAX_DEPTH: Final = 32
# Aliases share nodes, so a small file can stand for billions of values ("billion laughs").
MAX_VALUES: Final = 100_000
# ... and one alias of a long string for as many copies: 50 000 aliases of a 600 KB anchor in
# an 800 KB file are 30 GB of text. Without aliases, a file holds less text than its size.
MAX_TEXT: Final = 16 * 1024 * 1024

YamlPath: TypeAlias = tuple[str | int, ...]

_PLAIN_KEY: Final = re.compile(r"[A-Za-z0-9_-]+")


def read_text_file(path: Path, limit: int) -> str:
    """The UTF-8 text of a configuration-like file of at most ``limit`` bytes.

    Raises:
        ConfigError: unreadable, too large, or not UTF-8 (the message names the file).
    """
    try:
        with path.open("rb") as file:
            raw = file.read(limit + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    return decode_text(path, raw, limit)


def decode_text(path: Path, raw: bytes, limit: int) -> str:
    """``raw``, read from ``path`` (at most ``limit`` + 1 bytes), as text.

    Raises:
        ConfigError: over ``limit`` bytes, or not UTF-8 (the message names the file).
    """
    if len(raw) > limit:
        raise ConfigError(f"{path}: larger than {limit // (1024 * 1024)} MiB")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (invalid byte at offset {exc.start})") from exc


# PyYAML keeps the last of two equal keys, so a second "github:" would silently win.
def _construct_mapping(loader: JSONValue, node: JSONValue) -> dict[JSONValue, JSONValue]:
    seen: set[Hashable] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node)
        if isinstance(key, Hashable):  # an unhashable key is the constructor's to refuse
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {_describe(key)}", key_node.start_mark
                )
            seen.add(key)
    mapping: dict[JSONValue, JSONValue] = loader.construct_mapping(node)
    return mapping


# PyYAML's constructors of dates, times and numbers raise plain ValueError (day out of range
# for the month, an integer past Python's 4300-digit conversion limit), which carries no mark
# and is no YAMLError: each is re-raised as a ConstructorError at the scalar's line.
_CHECKED_SCALARS: Final = ("int", "float", "timestamp")


def _checked(tag: str, construct: JSONValue) -> JSONValue:
    def checked(loader: JSONValue, node: JSONValue) -> JSONValue:
        try:
            return construct(loader, node)
        except (ValueError, OverflowError) as exc:
            value = node.value if len(node.value) <= 40 else f"{node.value[:20]}..."
            problem = f"{value!r} is not a valid {tag} ({_reason(exc)}); quote it if it is text"
            raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark) from exc

    return checked


def _reason(exc: Exception) -> str:
    text = str(exc)
    if "integer string conversion" in text:  # Python's hint (set_int_max_str_digits) is ours
        return "too many digits"
    return text.splitlines()[0] if text else type(exc).__name__


_Loader: JSONValue = type("_Loader", (getattr(yaml, "CSafeLoader", yaml.SafeLoader),), {})
_Loader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)
for _tag in _CHECKED_SCALARS:
    _full = f"tag:yaml.org,2002:{_tag}"
    _Loader.add_constructor(_full, _checked(_tag, _Loader.yaml_constructors[_full]))


def parse_yaml_text(text: str, source: str) -> JSONValue:
    """One YAML document, safely loaded: duplicate keys refused, nesting capped at
    ``MAX_DEPTH`` and, aliases expanded, the values at ``MAX_VALUES``.

    Raises:
        ConfigError: naming ``source`` and the line and column, or the path, of the problem.
    """
    try:
        depth = 0
        for event in yaml.parse(text, Loader=_Loader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    mark = event.start_mark
                    where = f"{mark.line + 1}:{mark.column + 1}" if mark is not None else "?"
                    raise ConfigError(f"{source}:{where}: nested over {MAX_DEPTH} levels")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
        loader = _Loader(text)
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:  # MarkedYAMLError has marks; ReaderError (bad character) not
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = getattr(exc, "problem", None) or getattr(exc, "context", None)
        raise ConfigError(f"{where}: {problem or str(exc).splitlines()[0]}") from exc
    _Expansion(source).walk(data, ())
    return data


class _Expansion:
    """Walks the loaded tree as a reader of it would (an alias once per place it is used),
    counting values, levels and characters of keys and strings, and stops at the first over
    a limit."""

    def __init__(self, source: str) -> None:
        self._source = source
        self._values = 0
        self._text = 0

    def walk(self, value: JSONValue, path: YamlPath) -> None:
        self._values += 1
        if self._values > MAX_VALUES:
            problem = f"more than {MAX_VALUES} values (do YAML aliases expand too far?)"
            raise ConfigError(f"{self._source}: {problem}")
        self._count_text(value)
        if len(path) > MAX_DEPTH:  # aliases nest what the event stream showed flat
            where = render_path(path[:MAX_DEPTH])
            raise ConfigError(f"{self._source}: {where}: nested over {MAX_DEPTH} levels")
        if isinstance(value, dict):
            for key, item in value.items():
                self._count_text(key)
                self.walk(item, (*path, key if isinstance(key, str) else str(key)))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                self.walk(item, (*path, i))

    def _count_text(self, value: object) -> None:
        if isinstance(value, str):
            self._text += len(value)
            if self._text > MAX_TEXT:
                problem = (
                    f"more than {MAX_TEXT} characters of text (do YAML aliases expand too far?)"
                )
                raise ConfigError(f"{self._source}: {problem}")


def render_path(path: YamlPath) -> str:
    """``("servers", "gh", "args", 1)`` -> ``servers.gh.args[1]``; odd keys are quoted."""
    out = ""
    for segment in path:
        if isinstance(segment, int):
            out += f"[{segment}]"
        elif _PLAIN_KEY.fullmatch(segment):
            out += f".{segment}" if out else segment
        else:
            out += f"[{json.dumps(segment)}]"
    return out
