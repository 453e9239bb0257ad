"""Turning msgspec's and tomllib's complaints about a config file into one line
that names the key at fault, with a hint (a close key name, the choices, the
value that broke a constraint). Used by `daemon.config.load_config`."""

from __future__ import annotations

import difflib
import re
import tomllib
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from daemon.config import ConfigError

_TOML_WHERE = re.compile(r" \(at line (\d+), column (\d+)\)$")


def syntax_error(file: str, exc: tomllib.TOMLDecodeError) -> ConfigError:
    from daemon.config import ConfigError

    message = str(exc)
    where = _TOML_WHERE.search(message)
    if where:
        line = int(where.group(1))
        message = f"{message[: where.start()]} (column {where.group(2)})"
    else:
        # "(at end of document)": point at the last line, where the reader gave up.
        message = message.replace(" (at end of document)", " (at end of file)")
        with open(file, "rb") as fh:
            line = max(1, fh.read().count(b"\n"))
    return ConfigError(file, f"TOML syntax error: {message}", line=line)


# msgspec says e.g. "Expected `float`, got `str` - at `$.risk.max_order_qty`".
_AT = re.compile(r"^(.*?)(?: - at `(\$[^`]*)`)?$", re.S)
_UNKNOWN = re.compile(r"Object contains unknown field `(.*)`")
_MISSING = re.compile(r"Object missing required field `(.*)`")
_ENUM = re.compile(r"Invalid enum value (.*)")


def explain(text: str) -> tuple[str, str]:
    """msgspec's ValidationError text -> (JSON path of the key at fault, message)."""
    match = _AT.match(text)
    assert match is not None  # the pattern matches any string
    message, path = match.group(1), match.group(2) or "$"
    if m := _UNKNOWN.fullmatch(message):
        key = m.group(1)
        known = _keys_at(path)
        close = difflib.get_close_matches(key, known, n=1)
        hint = f' (did you mean "{close[0]}"?)' if close else ""
        if not close and known:
            hint = f" (known keys: {', '.join(known)})"
        return f"{path}.{key}", f"unknown key{hint}"
    if m := _MISSING.fullmatch(message):
        return f"{path}.{m.group(1)}", "missing required key"
    if m := _ENUM.fullmatch(message):
        choices = _choices_at(path)
        return path, f"invalid value {m.group(1)}" + (f" (expected {choices})" if choices else "")
    message = message.replace("`", "").replace(" | ", "|")
    if message.startswith("Expected float") and "int" not in message:
        # TOML integers are accepted where a float is expected: say so.
        message = "Expected int|" + message.removeprefix("Expected ")
    return path, message


def value_at(raw: Any, path: str) -> Any:
    for key, index in re.findall(r"\.([^.\[]+)|\[(\d+)\]", path):
        try:
            raw = raw[key] if key else raw[int(index)]
        except (KeyError, IndexError, TypeError):
            return None
    return raw


def _type_at(path: str) -> msgspec.inspect.Type | None:
    """The msgspec type found by walking `Config` along a `$.a[0].b` path."""
    from daemon.config import Config

    node: msgspec.inspect.Type | None = msgspec.inspect.type_info(Config)
    for part in re.findall(r"\.([^.\[]+)|\[[^\]]*\]", path):
        while isinstance(node, msgspec.inspect.UnionType):
            node = next(
                (t for t in node.types if not isinstance(t, msgspec.inspect.NoneType)), None
            )
        if isinstance(node, msgspec.inspect.StructType) and part:
            node = next((f.type for f in node.fields if f.encode_name == part), None)
        elif isinstance(node, msgspec.inspect.ListType | msgspec.inspect.DictType) and not part:
            node = node.item_type if isinstance(node, msgspec.inspect.ListType) else node.value_type
        else:
            return None
    return node


def _keys_at(path: str) -> list[str]:
    node = _type_at(path)
    while isinstance(node, msgspec.inspect.UnionType):
        node = next((t for t in node.types if isinstance(t, msgspec.inspect.StructType)), None)
    if isinstance(node, msgspec.inspect.StructType):
        return [f.encode_name for f in node.fields]
    return []


def _choices_at(path: str) -> str:
    node = _type_at(path)
    types = node.types if isinstance(node, msgspec.inspect.UnionType) else (node,)
    words = [
        f'"{v}"' for t in types if isinstance(t, msgspec.inspect.LiteralType) for v in t.values
    ]
    if any(isinstance(t, msgspec.inspect.FloatType | msgspec.inspect.IntType) for t in types):
        words.insert(0, "a number")
    return " or ".join(words) if len(words) < 3 else "one of " + ", ".join(words)


