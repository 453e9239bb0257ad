"""The control API's files, which its clients read too: the token
(`load_control_token`) and where a running daemon listens (`DATA/control.json`,
`read_control_file`; else the config's address, `address_url`). Apart from the
server (daemon.control) so that `tapeloop status` and the other clients start
without importing aiohttp and the API's server (~0.3 s of a command's start)."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daemon.errors import UserError
from daemon.logging import register_secret

if TYPE_CHECKING:
    from daemon.config import ControlAddress

TOKEN_FILE = "control.token"
CREDENTIAL_NAME = "control_token"
CONTROL_FILE = "control.json"


def load_control_token(data_dir: str | os.PathLike[str], env: Mapping[str, str] = os.environ,
                       *, create: bool = True) -> str | None:
    """The bearer token: `$CREDENTIALS_DIRECTORY/control_token` (systemd
    `LoadCredential=`) if present, else `DATA/control.token`, created 0600 with
    a fresh random token when absent (with `create=False`: None instead).
    A token file readable by group or others is refused (UserError)."""
    creds = env.get("CREDENTIALS_DIRECTORY")
    if creds and (Path(creds) / CREDENTIAL_NAME).is_file():
        return _read_token(Path(creds) / CREDENTIAL_NAME)
    path = Path(data_dir) / TOKEN_FILE
    if path.exists():
        mode = path.stat().st_mode
        if mode & 0o077:
            raise UserError(f"{path} is readable by group or others (mode "
                            f"{stat.S_IMODE(mode):04o}); run: chmod 600 {path}")
        return _read_token(path)
    if not create:
        return None
    import secrets

    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # created meanwhile by another process
        return load_control_token(data_dir, env, create=False)
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(token + "\n")
    register_secret(token)
    return token


def _read_token(path: Path) -> str:
    try:
        token = path.read_text().strip()
    except OSError as exc:
        raise UserError(f"cannot read the control token {path}: {exc.strerror}") from None
    if not token:
        raise UserError(f"the control token file {path} is empty")
    register_secret(token)  # redacted from every log line from now on
    return token


def address_url(address: ControlAddress) -> str:
    """`http://host:port`, or `unix:///abs/path` for a unix socket."""
    if address.path is not None:
        return "unix://" + str(Path(address.path).absolute())
    host = address.host or "127.0.0.1"
    return f"http://[{host}]:{address.port}" if ":" in host else f"http://{host}:{address.port}"


def read_control_file(data_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """`DATA/control.json` as written by a running daemon, or None."""
    try:
        data = json.loads((Path(data_dir) / CONTROL_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("url"), str) else None
