"""Strategies changed while the daemon runs: SIGHUP reload, and stop/start from
the control API.

SIGHUP re-reads the config file. Only `[[strategies]]` are applied live: a
strategy added to the file is started, one removed is stopped, one whose entry
changed (params, symbols, limits...) is stopped and started with the new entry.
Any other change (venues, risk, journal) needs a restart and is said so in the
log. A config that no longer loads changes nothing: one error line says why.
"""

from __future__ import annotations

from typing import Any

import msgspec
import structlog

from daemon.config import Config, StrategyConfig, load_config
from daemon.errors import UserError
from daemon.strategies.runtime import StrategyError

log = structlog.get_logger("tapeloop.kernel")


class StrategyControl:
    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        self.stopped: set[str] = set()  # stopped by the operator, kept in the config

    @property
    def runtime(self) -> Any:
        return self.kernel.node.runtime

    def states(self) -> dict[str, str]:
        out = {sid: self.runtime.status(sid) for sid in self.runtime.strategy_ids}
        out.update({sid: "stopped" for sid in self.stopped})
        return out

    def _config_of(self, strategy_id: str) -> StrategyConfig:
        for scfg in self.kernel.config.strategies:
            if scfg.id == strategy_id:
                return scfg
        raise KeyError(strategy_id)

    def stop(self, strategy_id: str) -> None:
        """Stop a running strategy (its on_stop runs); KeyError if unknown."""
        self._config_of(strategy_id)
        if strategy_id not in self.runtime.strategy_ids:
            raise ValueError(f"strategy {strategy_id!r} is not running")
        self.runtime.remove(strategy_id)
        self.stopped.add(strategy_id)
        log.info("strategy.stopped_by_operator", strategy_id=strategy_id)

    def start(self, strategy_id: str) -> None:
        """Start a strategy of the config that is not running."""
        scfg = self._config_of(strategy_id)
        if strategy_id in self.runtime.strategy_ids and \
                self.runtime.status(strategy_id) == "running":
            raise ValueError(f"strategy {strategy_id!r} is already running")
        if strategy_id in self.runtime.strategy_ids:
            self.runtime.remove(strategy_id)  # failed or stopped: a fresh instance
        self._add(scfg)
        self.stopped.discard(strategy_id)

    def _add(self, scfg: StrategyConfig) -> None:
        self.kernel.node.risk.set_strategy_limits(scfg.id, scfg.risk)
        try:
            self.runtime.add(scfg)
        except StrategyError as exc:
            raise ValueError(str(exc)) from None

    def reload(self, path: str) -> None:
        """SIGHUP: apply the file's strategies (see the module docstring)."""
        kernel = self.kernel
        try:
            new = load_config(path, data_dir=kernel.data_dir)
        except UserError as exc:
            log.error("config.reload_failed", error=str(exc))
            return
        old_cfg: Config = kernel.config
        ignored = [k for k in ("venues", "instruments", "risk", "journal", "daemon", "alerts")
                   if getattr(new, k) != getattr(old_cfg, k)]
        if ignored:
            log.warning("config.reload_needs_restart", sections=ignored)
        old = {s.id: s for s in old_cfg.strategies}
        fresh = {s.id: s for s in new.strategies}
        changed: list[str] = []
        for sid in old.keys() - fresh.keys():
            if sid in self.runtime.strategy_ids:
                self.runtime.remove(sid)
            self.stopped.discard(sid)
            changed.append(f"-{sid}")
        for sid, scfg in fresh.items():
            if sid in old and old[sid] == scfg:
                continue
            if sid in self.runtime.strategy_ids:
                self.runtime.remove(sid)
            try:
                self._add(scfg)
            except ValueError as exc:
                log.error("config.reload_strategy_failed", strategy_id=sid, error=str(exc))
                continue
            changed.append(("~" if sid in old else "+") + sid)
        kernel.config = msgspec.structs.replace(old_cfg, strategies=new.strategies)
        log.info("config.reloaded", path=path, strategies=changed)
