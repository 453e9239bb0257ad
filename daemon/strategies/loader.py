"""Loading a strategy from config: its class (`module:Class`) and its params.

Used by the runtime, and usable by `check-config` to catch a bad class path or a
bad param before a run starts. Every mistake is a `StrategyError`: one line
naming the strategy and the key, e.g.
`strategies[sma].params.fast: Expected int, got str`.
"""

from __future__ import annotations

import difflib
import importlib
import re
from typing import Any

import msgspec

from daemon.config import StrategyConfig
from daemon.errors import EXIT_CONFIG, UserError
from daemon.strategies.base import Strategy

__all__ = ["StrategyError", "load_strategy_class", "validate_params"]


class StrategyError(UserError):
    """A strategy config the runtime cannot use: one line naming `strategies[<id>]...`."""

    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_CONFIG)


def load_strategy_class(config: StrategyConfig) -> type[Strategy]:
    """Import `config.class_` ("module:Class"); StrategyError (one line) if it can't."""
    where = f"strategies[{config.id}].class"
    module_name, _, class_name = config.class_.partition(":")
    if not module_name or not class_name:
        raise StrategyError(f'{where}: expected "module:Class", got {config.class_!r}')
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise StrategyError(f"{where}: cannot import module {module_name!r}: {exc}") from None
    except Exception as exc:  # the user's module failed while importing
        raise StrategyError(
            f"{where}: importing {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from None
    obj: Any = module
    for part in class_name.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise StrategyError(f"{where}: module {module_name!r} has no {class_name!r}")
    if not (isinstance(obj, type) and issubclass(obj, Strategy)):
        raise StrategyError(
            f"{where}: {config.class_!r} is not a subclass of daemon.strategies.base.Strategy"
        )
    return obj


_AT = re.compile(r"^(.*?)(?: - at `\$([^`]*)`)?$", re.S)
_UNKNOWN = re.compile(r"Object contains unknown field `(.*)`")
_MISSING = re.compile(r"Object missing required field `(.*)`")


def validate_params(cls: type[Strategy], config: StrategyConfig) -> Any:
    """`config.params` converted into `cls.Params` (or the raw dict without one).

    Raises StrategyError: `strategies[sma].params.fast: Expected int, got str`.
    """
    params_type = cls.Params
    if params_type is None:
        return dict(config.params)
    where = f"strategies[{config.id}].params"
    try:
        return msgspec.convert(config.params, params_type)
    except msgspec.ValidationError as exc:
        match = _AT.match(str(exc))
        assert match is not None  # the pattern matches any string
        message, path = match.group(1), match.group(2) or ""
        fields = [f.encode_name for f in msgspec.structs.fields(params_type)]
        if m := _UNKNOWN.fullmatch(message):
            close = difflib.get_close_matches(m.group(1), fields, n=1)
            hint = f' (did you mean "{close[0]}"?)' if close else f" (known: {', '.join(fields)})"
            path, message = f"{path}.{m.group(1)}", f"unknown key{hint}"
        elif m := _MISSING.fullmatch(message):
            path, message = f"{path}.{m.group(1)}", "missing required key"
        else:
            message = message.replace("`", "").replace(" | ", "|")
            key = path.lstrip(".")
            if key in config.params and message.startswith("Expected") and ", got" not in message:
                message += f", got {config.params[key]!r}"
        raise StrategyError(f"{where}{path}: {message}") from None
