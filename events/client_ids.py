"""The prefix that starts every client order id a data directory's daemon sends (kept
in the store's metadata, `events.store.Manifest.client_id_prefix`): its length, which
`check-config` needs without the store's Parquet machinery, and how one is made."""

from __future__ import annotations

import secrets

CLIENT_ID_PREFIX_LEN = 5
_PREFIX_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def new_client_id_prefix() -> str:
    """A random prefix: a letter, then letters and digits (36^4 x 26 = 43 M values)."""
    pick = secrets.choice
    return pick(_PREFIX_ALPHABET[:26]) + "".join(
        pick(_PREFIX_ALPHABET) for _ in range(CLIENT_ID_PREFIX_LEN - 1))
