"""User-facing errors: one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

# Exit codes systemd's Restart= can act on (see configs/systemd).
EXIT_OK = 0
EXIT_ERROR = 1  # a user error (bad file, bad argument)
EXIT_USAGE = 2  # argparse's own code
EXIT_CONFIG = 3  # the config is invalid
EXIT_LOCKED = 4  # another process holds the data directory
EXIT_AUTH = 5  # a venue refused our credentials (restarting will not help)
EXIT_CRASH = 70  # EX_SOFTWARE: a bug of ours


class UserError(Exception):
    """A mistake the user can fix; printed as one line, exit `code`."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code
