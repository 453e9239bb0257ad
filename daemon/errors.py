"""User-facing errors and exit codes: one clear line and a non-zero exit, never a traceback.

The exit codes are a contract with systemd (configs/systemd/tapeloop.service) and the
README's table: every code but 70 says "a person must act", so the unit does not restart
the daemon for it (`RestartPreventExitStatus=`); 70 is a crash, restarted.
"""

from __future__ import annotations

import errno

EXIT_OK = 0
EXIT_ERROR = 1  # a user error (bad file, bad argument)
EXIT_USAGE = 2  # argparse's own code
EXIT_CONFIG = 3  # the config is invalid
EXIT_LOCKED = 4  # another process holds the data directory
EXIT_AUTH = 5  # a venue refused our credentials (restarting will not help)
EXIT_DATA = 6  # the data directory is unusable: a damaged part, a full or read-only disk
EXIT_CRASH = 70  # EX_SOFTWARE: a bug of ours

# The codes a restart cannot cure: the unit's RestartPreventExitStatus= lists exactly these.
NO_RESTART: tuple[int, ...] = (EXIT_ERROR, EXIT_USAGE, EXIT_CONFIG, EXIT_LOCKED, EXIT_AUTH,
                               EXIT_DATA)

# What the operating system says when the disk under the data directory cannot take
# a write: full, over quota, read-only, over the file size limit, failing, not ours.
_STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EIO,
                             errno.EACCES, errno.EPERM})


class UserError(Exception):
    """A mistake the user can fix; printed as one line, exit `code`."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


def storage_error(exc: BaseException) -> bool:
    """True for an OSError that means the disk refused (not a network error)."""
    return isinstance(exc, OSError) and exc.errno in _STORAGE_ERRNOS


def one_line(exc: BaseException) -> str:
    """`exc` as one line: an OSError as "FILE: reason", any message's whitespace folded."""
    if isinstance(exc, OSError) and exc.strerror:
        where = exc.filename if exc.filename is not None else ""
        text = f"{where}: {exc.strerror}" if where else exc.strerror
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def data_error(exc: BaseException, context: str = "") -> UserError:
    """The EXIT_DATA refusal for a data-directory fault (a `events.faults.DataFault` or a
    storage OSError): one line, prefixed with `context` (e.g. the directory)."""
    text = one_line(exc)
    return UserError(f"{context}: {text}" if context else text, code=EXIT_DATA)
