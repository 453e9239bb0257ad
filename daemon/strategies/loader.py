"""Loading a strategy from config: its class (`module:Class`), its params, and their
fit to the instruments it trades (`Strategy.check_params`).

Used by the runtime before it builds a strategy, and by `load_config` (so by
`check-config` and `run` alike) to refuse a bad class path or a bad param before a
run starts. Every mistake is a `StrategyError`: one line naming the strategy and the
key, e.g. `strategies[sma].params.fast: Expected int, got str`.
"""

from __future__ import annotations

import difflib
import importlib
import re
from collections.abc import Mapping
from typing import Any

import msgspec

from daemon.config import StrategyConfig
from daemon.errors import EXIT_CONFIG, UserError
from daemon.strategies.base import Strategy
from events.instruments import Instrument

__all__ = ["StrategyError", "load_strategy", "load_strategy_class", "validate_params"]


class StrategyError(UserError):
    """A strategy config the runtime cannot use: one line `strategies[<id>].<key>:
    <detail>`. `key` (`class`, `params.qty`, `symbols[1]`; "" for the whole entry)
    is the same path under the config's `$.strategies[i]`."""

    def __init__(self, strategy_id: str, key: str, detail: str) -> None:
        detail = " ".join(detail.splitlines())  # a library's multi-line message: one line
        where = f"strategies[{strategy_id}]" + (f".{key}" if key else "")
        super().__init__(f"{where}: {detail}", EXIT_CONFIG)
        self.strategy_id = strategy_id
        self.key = key
        self.detail = detail


def load_strategy(
    config: StrategyConfig, instruments: Mapping[str, Instrument]
) -> tuple[type[Strategy], Any]:
    """The class and validated params of `config`, the params checked against
    `instruments` (`{symbol: Instrument}` of its symbols) by `cls.check_params`.
    StrategyError (one line) on any problem."""
    cls = load_strategy_class(config)
    params = validate_params(cls, config)
    try:
        problem = cls.check_params(params, instruments)
    except Exception as exc:  # the strategy's own check is broken: still one line
        raise StrategyError(
            config.id, "params", f"{config.class_}.check_params raised {exc!r}") from None
    if problem is not None:
        key, detail = problem
        raise StrategyError(config.id, f"params.{key}" if key else "params", detail)
    return cls, params


def load_strategy_class(config: StrategyConfig) -> type[Strategy]:
    """Import `config.class_` ("module:Class"); StrategyError (one line) if it can't."""
    sid = config.id
    module_name, _, class_name = config.class_.partition(":")
    if not module_name or not class_name:
        raise StrategyError(sid, "class", f'expected "module:Class", got {config.class_!r}')
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise StrategyError(sid, "class", f"cannot import module {module_name!r}: {exc}") from None
    except Exception as exc:  # the user's module failed while importing
        raise StrategyError(
            sid, "class", f"importing {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from None
    obj: Any = module
    for part in class_name.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise StrategyError(sid, "class", f"module {module_name!r} has no {class_name!r}")
    if not (isinstance(obj, type) and issubclass(obj, Strategy)):
        raise StrategyError(
            sid, "class",
            f"{config.class_!r} is not a subclass of daemon.strategies.base.Strategy"
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
        raise StrategyError(config.id, f"params{path}", message) from None
    except Exception as exc:  # its Params' __post_init__ raised something else
        raise StrategyError(config.id, "params", f"{type(exc).__name__}: {exc}") from None
