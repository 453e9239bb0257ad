"""Hostile variants of a TOML config: the parsed document with a few values replaced,
keys removed or added, entries doubled, written back as TOML; or its text damaged.

Values come from a palette of what users really type wrong (a negative size, `1e-30`,
`nan`, an over-long path, a `~user` path, a string where a number goes) plus
hypothesis' own text and numbers. A strategy's `class` only ever gets names that
cannot import anything real: check-config may import it, and a fuzzer must never make
it import, say, `antigravity`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

Doc = dict[str, Any]
Path_ = tuple[str | int, ...]

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")

HOSTILE_STRINGS = (
    "", " ", "0", "-1", "1e-30", "nan", "inf", "true", "x" * 5000, "/" + "d/" * 2100,
    "~nonexistent-user-tapeloop/x", "../../../../../../etc/passwd", "/dev/null", "/proc",
    "\x00", "a\x00b", "é中🙂", "\u202e", "a" * 300, "1m", "0s", "-5s", "99999999999d",
    "127.0.0.1:99999", "127.0.0.1:-1", ":", "[::1]:0", "unix:", "/nonexistent/dir/sock",
    "http://", "production", "testnet", "BNB", "quote", "received",
)
HOSTILE_CLASSES = (
    "", ":", "nonexistent_tapeloop_module:Cls", "daemon.strategies.sma_cross:Nope",
    "daemon.strategies.sma_cross", "daemon.strategies.sma_cross:", ":SmaCross",
    "daemon.strategies.sma_cross:SmaCross:extra", "tests.fuzz.no_such_module:X",
    "daemon.strategies.market_maker:MarketMaker", "daemon.strategies.twap:Twap",
    "daemon.strategies.mean_reversion:MeanReversion", "daemon.config:Config",
    "x" * 5000 + ":X", "é:中",
)
HOSTILE_NUMBERS: tuple[Any, ...] = (
    0, -1, 1, 2, 2**31, 2**63, -(2**63) - 1, 10**30, 0.0, -0.0, -1.5, 1e-30, 1e-12, 1e30,
    1e308, 5e-324, math.inf, -math.inf, math.nan, 0.1, 0.3, 0.0001, 123456789.123456789,
)


def _text() -> st.SearchStrategy[str]:
    chars = st.characters(codec="utf-8")  # TOML files are UTF-8: no lone surrogates
    return st.text(chars, max_size=40)


def hostile_values(key: str | int) -> st.SearchStrategy[Any]:
    if key == "class":
        return st.sampled_from(HOSTILE_CLASSES)
    scalar = st.one_of(
        st.sampled_from(HOSTILE_NUMBERS),
        st.sampled_from(HOSTILE_STRINGS),
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.decimals(allow_nan=False, allow_infinity=False, places=None).map(float),
        _text(),
        st.booleans(),
    )
    return st.one_of(
        scalar,
        st.lists(scalar, max_size=3),
        st.dictionaries(st.sampled_from(["qty", "x", "USDT", "fast", ""]), scalar, max_size=2),
    )


# -- writing TOML -----------------------------------------------------------------------


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key, ensure_ascii=False)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON's escapes are TOML's
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no TOML for {value!r}")


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def dumps(doc: Doc) -> str:
    """`doc` as TOML: top-level tables as `[name]`, lists of tables as `[[name]]`,
    anything deeper inline."""
    out: list[str] = []
    for key, value in doc.items():
        if not isinstance(value, dict) and not _is_table_array(value):
            out.append(f"{_key(key)} = {_value(value)}")
    for key, value in doc.items():
        if isinstance(value, dict):
            out.append(f"\n[{_key(key)}]")
            out += [f"{_key(k)} = {_value(v)}" for k, v in value.items()]
        elif _is_table_array(value):
            for entry in value:
                out.append(f"\n[[{_key(key)}]]")
                out += [f"{_key(k)} = {_value(v)}" for k, v in entry.items()]
    return "\n".join(out) + "\n"


# -- mutating the document --------------------------------------------------------------


def paths(node: Any, prefix: Path_ = ()) -> list[Path_]:
    """Every key or index in the document, containers included (the root excluded)."""
    out: list[Path_] = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(
        node, list) else ()
    for key, child in items:
        out.append((*prefix, key))
        out += paths(child, (*prefix, key))
    return out


def _parent(doc: Doc, path: Path_) -> Any:
    node: Any = doc
    for key in path[:-1]:
        node = node[key]
    return node


@dataclass(frozen=True)
class Mutation:
    op: str  # replace | delete | add_key | double | empty
    path: Path_
    value: Any = None

    def apply(self, doc: Doc) -> None:
        parent = _parent(doc, self.path)
        key = self.path[-1]
        if self.op == "replace":
            parent[key] = self.value
        elif self.op == "delete":
            del parent[key]
        elif self.op == "add_key":
            target = parent[key]
            if isinstance(target, dict):
                target[str(self.value)] = 1
        elif self.op == "double":  # a second venue, instrument or strategy just the same
            if isinstance(parent, list):
                parent.insert(int(key), json.loads(json.dumps(parent[int(key)])))
        elif self.op == "empty":
            target = parent[key]
            if isinstance(target, dict | list):
                target.clear()

    def __str__(self) -> str:
        where = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in self.path)
        shown = repr(self.value)
        return f"{self.op} ${where}" + (f" = {shown[:80]}" if self.op == "replace" else "")


@st.composite
def mutations(draw: st.DrawFn, doc: Doc) -> Mutation:
    path = draw(st.sampled_from(paths(doc)))
    op = draw(st.sampled_from(["replace", "replace", "replace", "delete", "add_key", "double",
                               "empty"]))
    if op == "replace":
        return Mutation(op, path, draw(hostile_values(path[-1])))
    if op == "add_key":
        return Mutation(op, path, draw(st.sampled_from(["unknown", "Qty", "step", "x y"])))
    return Mutation(op, path)


# What issue 10 found getting through check-config; always in the mix.
KNOWN_HOLES: tuple[tuple[str, str, Any], ...] = (
    ("instruments", "step_size", 1e-30),
    ("instruments", "tick_size", 1e-30),
    ("instruments", "min_notional", -1.0),
    ("daemon", "data_dir", "x" * 5000),
    ("daemon", "data_dir", "/" + "d/" * 2100),
    ("venues", "file", "x" * 5000),
    ("daemon", "control", "/" + "s" * 300),
    ("strategies", "params.qty", 1e-9),  # below every shipped instrument's step
    ("strategies", "params.qty", 1e-30),
)


def known_holes(doc: Doc) -> list[Mutation]:
    """The KNOWN_HOLES that apply to `doc` (its first entry of each section)."""
    out = []
    for section, key, value in KNOWN_HOLES:
        node = doc.get(section)
        if isinstance(node, list) and node and "." in key:
            outer, inner = key.split(".")
            if isinstance(node[0].get(outer), dict) and inner in node[0][outer]:
                out.append(Mutation("replace", (section, 0, outer, inner), value))
        elif isinstance(node, list) and node and key in node[0]:
            out.append(Mutation("replace", (section, 0, key), value))
        elif isinstance(node, dict) and key in node:
            out.append(Mutation("replace", (section, key), value))
    return out
