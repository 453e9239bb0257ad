"""Where alert channels get their secrets: the environment, or systemd credentials.

A secret (the webhook URL, the SMTP password, the Telegram bot token) never comes
from the config file: the config names an environment variable, and the value is
`env[NAME]`, else the file `$CREDENTIALS_DIRECTORY/<name in lower case>` (systemd's
`LoadCredential=`). It is registered with `daemon.logging.register_secret` before
anything else is done with it, so no log line can show it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from daemon.logging import register_secret

__all__ = ["load_secret"]


def load_secret(name: str, env: Mapping[str, str] = os.environ) -> str | None:
    """The value of the secret named `name` (stripped), registered; None when unset."""
    value = env.get(name, "").strip()
    cdir = env.get("CREDENTIALS_DIRECTORY")
    if not value and cdir and "/" not in name:
        path = Path(cdir) / name.lower()
        if path.is_file():
            value = path.read_text(encoding="utf-8").strip()
    if not value:
        return None
    register_secret(value)
    return value
