"""Binance Spot request signing and the credentials it needs.

Owns three things and nothing else: loading API credentials (environment or a
systemd `LoadCredential` directory), building the exact byte string Binance
signs (REST and WS API differ), and producing the signature (HMAC-SHA256 hex
or Ed25519 base64). No I/O beyond reading credential files; no clock — the
caller puts `timestamp` into the params.

Rules (shared/binance-spot-protocol.md §2, §7):
- REST: payload = percent-encoded query string + body, no separator, params in
  the order sent. The signature goes last as `&signature=`.
- WS API: payload = every param except `signature`, sorted by name,
  `k=v&...`, UTF-8, not percent-encoded.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import quote

import msgspec

from daemon.logging import register_secret

__all__ = [
    "Credentials",
    "Ed25519Signer",
    "HmacSigner",
    "Signer",
    "load_credentials",
    "rest_payload",
    "is_plain",
    "sign_rest",
    "sign_ws",
    "ws_payload",
]

# RFC 3986 unreserved characters stay as they are; everything else (including
# non-ASCII, which is what made unencoded payloads fail with -1022 since
# 2026-01-15) becomes %XX of its UTF-8 bytes. Space becomes %20, never '+', so
# the signed string and the sent string cannot disagree on form-encoding.
_UNRESERVED = "-_.~"


def _mask(key: str) -> str:
    # Enough of the key to tell two keys apart in a log, never enough to use it.
    if len(key) < 12:
        return "…"
    return f"{key[:4]}…{key[-3:]}"


class Credentials(msgspec.Struct, frozen=True, kw_only=True):
    """An API key plus exactly one of: HMAC `secret` or Ed25519 `private_key_pem`.

    Never logged in full: `repr` shows a masked key and the kind only.
    """

    api_key: str
    secret: str = ""
    private_key_pem: bytes = b""

    def __post_init__(self) -> None:
        if bool(self.secret) == bool(self.private_key_pem):
            raise ValueError("Credentials need exactly one of secret (HMAC) or private_key_pem")

    @property
    def kind(self) -> Literal["hmac", "ed25519"]:
        return "hmac" if self.secret else "ed25519"

    def signer(self) -> Signer:
        """The signer matching this key type."""
        if self.secret:
            return HmacSigner(self.secret)
        return Ed25519Signer(self.private_key_pem)

    def __repr__(self) -> str:
        return f"Credentials(api_key={_mask(self.api_key)!r}, kind={self.kind!r})"

    def __str__(self) -> str:
        return self.__repr__()

    # msgspec Structs give rich a field-by-field repr; override it so a rich
    # console/traceback never prints the secret either.
    def __rich_repr__(self) -> list[tuple[str, Any]]:
        return [("api_key", _mask(self.api_key)), ("kind", self.kind)]


def _read_text(path: Path) -> str:
    # Credential files usually end in a newline; keys never contain whitespace.
    return path.read_text(encoding="utf-8").strip()


def load_credentials(
    prefix: str = "BINANCE",
    env: Mapping[str, str] = os.environ,
    credentials_dir: str | os.PathLike[str] | None = None,
) -> Credentials:
    """Load credentials from `env` first, then from the credentials directory.

    Environment: `{prefix}_API_KEY` with `{prefix}_API_SECRET` (HMAC) or
    `{prefix}_PRIVATE_KEY_FILE` (path to a PEM Ed25519 key). Directory
    (default `$CREDENTIALS_DIRECTORY` from `env`, i.e. systemd LoadCredential):
    files `{prefix.lower()}_api_key`, `{prefix.lower()}_api_secret`,
    `{prefix.lower()}_private_key.pem`. Raises ValueError with one line naming
    what was looked for; never includes a secret.
    """
    if credentials_dir is None:
        # Read at call time (not import time) so systemd/test envs are honoured.
        credentials_dir = env.get("CREDENTIALS_DIRECTORY") or None
    cdir = Path(credentials_dir) if credentials_dir else None
    low = prefix.lower()
    key_var, secret_var, pem_var = (
        f"{prefix}_API_KEY",
        f"{prefix}_API_SECRET",
        f"{prefix}_PRIVATE_KEY_FILE",
    )
    key_file, secret_file, pem_file = (
        f"{low}_api_key",
        f"{low}_api_secret",
        f"{low}_private_key.pem",
    )

    def from_dir(name: str) -> Path | None:
        if cdir is None:
            return None
        p = cdir / name
        return p if p.is_file() else None

    api_key = env.get(key_var, "").strip()
    if not api_key and (p := from_dir(key_file)):
        api_key = _read_text(p)

    secret = env.get(secret_var, "").strip()
    if not secret and (p := from_dir(secret_file)):
        secret = _read_text(p)

    pem_path: Path | None = None
    if env.get(pem_var):
        pem_path = Path(env[pem_var])
        if not pem_path.is_file():
            raise ValueError(f"{pem_var} points to {pem_path}, which is not a file")
    elif not secret:
        pem_path = from_dir(pem_file)

    where = f"in {cdir}" if cdir else "in $CREDENTIALS_DIRECTORY (not set)"
    if not api_key or not (secret or pem_path):
        raise ValueError(
            f"Binance credentials not found: set {key_var} and {secret_var} "
            f"(or {pem_var}), or put {key_file} and {secret_file} (or {pem_file}) {where}"
        )
    if secret and pem_path is not None:
        raise ValueError(f"both {secret_var} and {pem_var} are set; keep one key type")
    register_secret(api_key)  # redacted from every log line from now on
    if secret:
        register_secret(secret)
        return Credentials(api_key=api_key, secret=secret)
    assert pem_path is not None
    pem = pem_path.read_bytes()
    if b"-----BEGIN" not in pem:
        raise ValueError(f"{pem_path} is not a PEM private key")
    for line in pem.decode("ascii", "replace").splitlines():
        if len(line) >= 16 and not line.startswith("-----"):  # the key's base64 body
            register_secret(line.strip())
    return Credentials(api_key=api_key, private_key_pem=pem)


class Signer(Protocol):
    """Turns a payload string into the value of the `signature` parameter."""

    def sign(self, payload: str) -> str: ...


class HmacSigner:
    """HMAC-SHA256 over the UTF-8 payload, lowercase hex."""

    __slots__ = ("_key", "_keyed")

    def __init__(self, secret: str) -> None:
        self._key = secret.encode()
        # the key's pads hashed once: each signature copies this state (OpenSSL's
        # own HMAC object where there is one: hmac.HMAC's Python copy() costs
        # as much again as the hashing)
        keyed = hmac.new(self._key, digestmod=hashlib.sha256)
        self._keyed: Any = getattr(keyed, "_hmac", None) or keyed

    def sign(self, payload: str) -> str:
        mac = self._keyed.copy()
        mac.update(payload.encode())
        return mac.hexdigest()

    def __repr__(self) -> str:
        return "HmacSigner(<secret>)"


class Ed25519Signer:
    """Ed25519 over the UTF-8 payload, standard base64 (case-sensitive)."""

    __slots__ = ("_key",)

    def __init__(self, private_key_pem: bytes) -> None:
        # Imported lazily: `cryptography` is optional and only Ed25519 needs it;
        # an HMAC-only deployment must not fail at import.
        try:
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
            from cryptography.hazmat.primitives.serialization import load_pem_private_key
        except ImportError:
            raise ValueError("Ed25519 keys need the 'cryptography' package") from None
        try:
            key = load_pem_private_key(private_key_pem, password=None)
        except (ValueError, TypeError) as e:
            # Don't chain: the original may quote bytes of the key.
            raise ValueError(f"cannot load Ed25519 private key: {type(e).__name__}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"expected an Ed25519 private key, got {type(key).__name__}")
        self._key: Any = key

    def sign(self, payload: str) -> str:
        return base64.b64encode(self._key.sign(payload.encode())).decode("ascii")

    def __repr__(self) -> str:
        return "Ed25519Signer(<private key>)"


Params = Sequence[tuple[str, object]] | Mapping[str, object]


def _pairs(params: Params) -> Sequence[tuple[str, object]]:
    return list(params.items()) if isinstance(params, Mapping) else params


# The unreserved characters, spelt out in ASCII (a regex's \w or \d would take
# other alphabets' letters and digits). A compiled match is C code over the text:
# a set's issuperset hashes every character, several µs for an order's query.
_PLAIN = re.compile(r"[A-Za-z0-9_.~-]*").fullmatch
_PLAIN_QUERY = re.compile(r"[A-Za-z0-9_.~=&-]*").fullmatch


# is_plain(text): a match (truthy) when `text` needs no percent-encoding (only
# unreserved ASCII characters), else None; the compiled match itself, no wrapper
is_plain = _PLAIN


def _enc(text: str) -> str:
    # Almost every parameter (names, symbols, numbers, our client ids) needs no
    # escaping: skip urllib's quote, which is the costliest step of signing.
    return text if _PLAIN(text) else quote(text, safe=_UNRESERVED)


def _query(params: Params) -> str:
    pairs = _pairs(params)
    # An order's parameters need no escaping: join them as they are and look at
    # the result once (one "=" per pair and one "&" between pairs: none of the
    # names or values holds either), instead of escaping each name and value.
    plain = "&".join([f"{k}={v}" for k, v in pairs])
    if _PLAIN_QUERY(plain) and plain.count("=") == len(pairs) \
            and plain.count("&") == max(len(pairs) - 1, 0):
        return plain
    return _query_escaped(pairs)


def _query_escaped(pairs: Sequence[tuple[str, object]]) -> str:
    """The query with every name and value percent-encoded (`_query`'s reference)."""
    return "&".join(f"{_enc(str(k))}={_enc(str(v))}" for k, v in pairs)


def rest_payload(params: Params, body: str = "") -> str:
    """The REST string to sign: percent-encoded query (order kept) + body, no separator.

    `body` is the already form-encoded request body exactly as it will be sent;
    it is signed as given because the server checks the bytes it receives.
    """
    return _query(params) + body


def sign_rest(signer: Signer, params: Params | str, body: str = "") -> str:
    """The query string to send: the encoded params plus `signature=` last.

    `params` may also be the query already percent-encoded (what `rest_payload`
    gives). Send `body` (if any) unchanged as the request body.
    """
    query = params if isinstance(params, str) else _query(params)
    sig = signer.sign(query + body)
    # Base64 signatures carry '+', '/', '='; hex passes through unchanged.
    if type(signer) is not HmacSigner and not _PLAIN(sig):
        sig = quote(sig, safe="")
    return f"{query}&signature={sig}" if query else f"signature={sig}"


def _ws_value(v: object) -> str:
    # The WS frame is JSON, so ints are legitimate; bools/floats would stringify
    # differently from their JSON form and silently break the signature.
    if isinstance(v, bool) or not isinstance(v, str | int):
        raise TypeError(f"WS API param values must be str or int, got {type(v).__name__}")
    return str(v)


def ws_payload(params: Mapping[str, str | int]) -> str:
    """The WS API string to sign: all params but `signature`, sorted, `k=v&...`, raw."""
    return "&".join(f"{k}={_ws_value(v)}" for k, v in sorted(params.items()) if k != "signature")


def sign_ws(signer: Signer, params: Mapping[str, str | int]) -> dict[str, str | int]:
    """A copy of `params` with `signature` set, ready for the frame's `params`."""
    return {**params, "signature": signer.sign(ws_payload(params))}
