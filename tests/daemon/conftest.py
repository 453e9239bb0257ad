"""Fixtures shared by the daemon tests."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog

import daemon.logging as dlog
from daemon.logging import configure_logging

Lines = Callable[[], list[dict[str, Any]]]


def _unconfigure() -> None:
    """Undo configure_logging, so later tests see structlog's and logging's defaults."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, dlog._StdlibBridge):
            root.removeHandler(handler)
    root.setLevel(logging.WARNING)
    structlog.reset_defaults()


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[io.BytesIO, Lines]]:
    """Logging configured at debug into a buffer; `lines()` parses what was written."""
    monkeypatch.setattr(dlog, "_secrets", ())
    buf = io.BytesIO()
    configure_logging("debug", stream=buf)

    def lines() -> list[dict[str, Any]]:
        raw = buf.getvalue()
        assert raw == b"" or raw.endswith(b"\n")
        return [json.loads(line) for line in raw.splitlines()]

    yield buf, lines
    _unconfigure()
