"""Signing: byte-exact vectors from the protocol doc §2/§7, Ed25519 round trip,
credential loading from env and a systemd credentials directory."""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.binance.signing import (
    Credentials,
    Ed25519Signer,
    HmacSigner,
    _query,
    _query_escaped,
    load_credentials,
    rest_payload,
    sign_rest,
    sign_ws,
    ws_payload,
)

try:
    import cryptography  # noqa: F401

    HAVE_CRYPTOGRAPHY = True
except ImportError:
    HAVE_CRYPTOGRAPHY = False

needs_cryptography = pytest.mark.skipif(
    not HAVE_CRYPTOGRAPHY, reason="Ed25519 keys need the 'cryptography' package"
)

# Doc §2 test vectors.
SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
REST_PARAMS = [
    ("symbol", "LTCBTC"),
    ("side", "BUY"),
    ("type", "LIMIT"),
    ("timeInForce", "GTC"),
    ("quantity", "1"),
    ("price", "0.1"),
    ("recvWindow", "5000"),
    ("timestamp", "1499827319559"),
]
REST_QUERY = (
    "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1"
    "&recvWindow=5000&timestamp=1499827319559"
)
REST_SIG = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
REST_BODY_SIG = "0fd168b8ddb4876a0358a8d14d0c9f3da0e9b20c5d52b2a00fcf7d1c602f9a77"
WS_PARAMS: dict[str, str | int] = {
    "symbol": "BTCUSDT",
    "side": "SELL",
    "type": "LIMIT",
    "timeInForce": "GTC",
    "quantity": "0.01000000",
    "price": "52000.00",
    "recvWindow": 100,
    "timestamp": 1645423376532,
    "apiKey": API_KEY,
}
WS_PAYLOAD = (
    f"apiKey={API_KEY}&price=52000.00&quantity=0.01000000&recvWindow=100&side=SELL"
    "&symbol=BTCUSDT&timeInForce=GTC&timestamp=1645423376532&type=LIMIT"
)
WS_SIG = "aa1b5712c094bc4e57c05a1a5c1fd8d88dcd628338ea863fec7b88e59fe2db24"


def _hmac_hex(payload: str) -> str:
    return hmac.new(SECRET.encode(), payload.encode(), hashlib.sha256).hexdigest()


# --- REST ---------------------------------------------------------------------


@pytest.mark.parametrize("params", [REST_PARAMS, dict(REST_PARAMS)], ids=["pairs", "mapping"])
def test_rest_query_vector(params: object) -> None:
    assert rest_payload(params) == REST_QUERY  # type: ignore[arg-type]
    assert HmacSigner(SECRET).sign(REST_QUERY) == REST_SIG
    assert sign_rest(HmacSigner(SECRET), params) == f"{REST_QUERY}&signature={REST_SIG}"  # type: ignore[arg-type]


def test_rest_query_plus_body_vector() -> None:
    query = REST_PARAMS[:4]
    body = "quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
    # No separator between query and body: "...timeInForce=GTCquantity=1&...".
    assert rest_payload(query, body) == (
        "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTCquantity=1&price=0.1"
        "&recvWindow=5000&timestamp=1499827319559"
    )
    assert sign_rest(HmacSigner(SECRET), query, body) == (
        f"symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&signature={REST_BODY_SIG}"
    )


def test_rest_body_only_has_no_leading_ampersand() -> None:
    out = sign_rest(HmacSigner(SECRET), [], "timestamp=1")
    assert out == f"signature={_hmac_hex('timestamp=1')}"


def test_rest_keeps_parameter_order() -> None:
    assert rest_payload([("b", "1"), ("a", "2")]) == "b=1&a=2"


def test_rest_percent_encodes_before_signing() -> None:
    # The doc gives no signature vector for this case (only the rule, §2 since
    # 2026-01-15), so the expected signature is HMAC over the expected encoding.
    params = [("symbol", "１２３４５６"), ("newClientOrderId", "a b+c/d=e&f~g"), ("quantity", "1")]
    expected = (
        "symbol=%EF%BC%91%EF%BC%92%EF%BC%93%EF%BC%94%EF%BC%95%EF%BC%96"
        "&newClientOrderId=a%20b%2Bc%2Fd%3De%26f~g&quantity=1"
    )
    assert rest_payload(params) == expected
    assert sign_rest(HmacSigner(SECRET), params) == f"{expected}&signature={_hmac_hex(expected)}"


def test_hmac_signature_is_lowercase_hex() -> None:
    sig = HmacSigner(SECRET).sign("x")
    assert sig == sig.lower() and len(sig) == 64
    int(sig, 16)


# --- WS API -------------------------------------------------------------------


def test_ws_vector_sorted_not_encoded() -> None:
    assert ws_payload(WS_PARAMS) == WS_PAYLOAD
    signed = sign_ws(HmacSigner(SECRET), WS_PARAMS)
    assert signed["signature"] == WS_SIG
    assert {k: v for k, v in signed.items() if k != "signature"} == WS_PARAMS


def test_ws_payload_ignores_existing_signature_and_does_not_encode() -> None:
    params = {"symbol": "１２", "note": "a b", "signature": "old"}
    assert ws_payload(params) == "note=a b&symbol=１２"
    assert sign_ws(HmacSigner(SECRET), params)["signature"] == _hmac_hex("note=a b&symbol=１２")


def test_user_data_subscribe_signature_payload() -> None:
    # §7: userDataStream.subscribe.signature signs "apiKey=K&timestamp=T" (sorted).
    params: dict[str, str | int] = {"timestamp": 1763735400000, "apiKey": API_KEY}
    assert ws_payload(params) == f"apiKey={API_KEY}&timestamp=1763735400000"
    signed = sign_ws(HmacSigner(SECRET), params)
    assert signed["signature"] == _hmac_hex(f"apiKey={API_KEY}&timestamp=1763735400000")


@pytest.mark.parametrize("bad", [True, 1.5, None])
def test_ws_rejects_values_whose_str_differs_from_json(bad: object) -> None:
    with pytest.raises(TypeError):
        ws_payload({"x": bad})  # type: ignore[dict-item]


# --- Ed25519 ------------------------------------------------------------------


def _ed25519_pem() -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@needs_cryptography
def test_ed25519_round_trip() -> None:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    pem = _ed25519_pem()
    signer = Ed25519Signer(pem)
    public = load_pem_private_key(pem, password=None).public_key()
    sig = signer.sign(REST_QUERY)
    public.verify(base64.b64decode(sig), REST_QUERY.encode())  # type: ignore[union-attr]

    out = sign_rest(signer, REST_PARAMS)
    query, _, encoded = out.rpartition("&signature=")
    assert query == REST_QUERY
    assert "+" not in encoded and "/" not in encoded and "=" not in encoded
    public.verify(base64.b64decode(unquote(encoded)), REST_QUERY.encode())  # type: ignore[union-attr]

    ws = sign_ws(signer, WS_PARAMS)
    public.verify(base64.b64decode(str(ws["signature"])), WS_PAYLOAD.encode())  # type: ignore[union-attr]


@needs_cryptography
def test_ed25519_rejects_garbage_pem() -> None:
    with pytest.raises(ValueError, match="cannot load Ed25519 private key"):
        Ed25519Signer(b"-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")


@pytest.mark.skipif(HAVE_CRYPTOGRAPHY, reason="only meaningful without 'cryptography'")
def test_ed25519_without_cryptography_says_so() -> None:
    with pytest.raises(ValueError, match="^Ed25519 keys need the 'cryptography' package$"):
        Ed25519Signer(b"-----BEGIN PRIVATE KEY-----\n")


# --- Credentials ----------------------------------------------------------------


def test_credentials_repr_hides_secret() -> None:
    c = Credentials(api_key=API_KEY, secret=SECRET)
    assert repr(c) == "Credentials(api_key='vmPU…h8A', kind='hmac')"
    assert str(c) == repr(c)
    for text in (repr(c), str(c), f"{c}", repr([c])):
        assert SECRET not in text and API_KEY not in text
    assert SECRET not in repr(c.__rich_repr__())


def test_credentials_repr_hides_pem() -> None:
    pem = b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIabc\n-----END PRIVATE KEY-----\n"
    c = Credentials(api_key=API_KEY, private_key_pem=pem)
    assert c.kind == "ed25519"
    assert "MC4CAQ" not in repr(c) and "PRIVATE" not in repr(c)


def test_credentials_need_exactly_one_key_type() -> None:
    with pytest.raises(ValueError):
        Credentials(api_key=API_KEY)
    with pytest.raises(ValueError):
        Credentials(api_key=API_KEY, secret=SECRET, private_key_pem=b"x")


def test_credentials_signer_is_hmac() -> None:
    c = Credentials(api_key=API_KEY, secret=SECRET)
    assert c.signer().sign(REST_QUERY) == REST_SIG


def test_load_hmac_from_env() -> None:
    env = {"BINANCE_API_KEY": API_KEY, "BINANCE_API_SECRET": SECRET}
    c = load_credentials(env=env)
    assert (c.api_key, c.secret, c.kind) == (API_KEY, SECRET, "hmac")


def test_load_with_custom_prefix() -> None:
    env = {"TESTNET_API_KEY": API_KEY, "TESTNET_API_SECRET": SECRET}
    assert load_credentials("TESTNET", env=env).secret == SECRET


def test_load_hmac_from_credentials_directory(tmp_path: Path) -> None:
    (tmp_path / "binance_api_key").write_text(API_KEY + "\n")
    (tmp_path / "binance_api_secret").write_text(SECRET + "\n")
    c = load_credentials(env={}, credentials_dir=tmp_path)
    assert (c.api_key, c.secret) == (API_KEY, SECRET)
    # $CREDENTIALS_DIRECTORY from the given env, as systemd sets it.
    c2 = load_credentials(env={"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert c2 == c


def test_env_wins_over_directory(tmp_path: Path) -> None:
    (tmp_path / "binance_api_key").write_text("file-key-0123456789")
    (tmp_path / "binance_api_secret").write_text("file-secret")
    env = {"BINANCE_API_KEY": API_KEY, "BINANCE_API_SECRET": SECRET}
    c = load_credentials(env=env, credentials_dir=tmp_path)
    assert (c.api_key, c.secret) == (API_KEY, SECRET)


def test_load_pem_from_env_file(tmp_path: Path) -> None:
    pem = b"-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n"
    path = tmp_path / "key.pem"
    path.write_bytes(pem)
    env = {"BINANCE_API_KEY": API_KEY, "BINANCE_PRIVATE_KEY_FILE": str(path)}
    c = load_credentials(env=env)
    assert (c.kind, c.private_key_pem) == ("ed25519", pem)


def test_load_pem_from_credentials_directory(tmp_path: Path) -> None:
    pem = b"-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n"
    (tmp_path / "binance_api_key").write_text(API_KEY)
    (tmp_path / "binance_private_key.pem").write_bytes(pem)
    c = load_credentials(env={}, credentials_dir=tmp_path)
    assert (c.kind, c.private_key_pem) == ("ed25519", pem)


@needs_cryptography
def test_loaded_ed25519_credentials_sign(tmp_path: Path) -> None:
    (tmp_path / "binance_api_key").write_text(API_KEY)
    (tmp_path / "binance_private_key.pem").write_bytes(_ed25519_pem())
    sig = load_credentials(env={}, credentials_dir=tmp_path).signer().sign("x")
    assert len(base64.b64decode(sig)) == 64


def test_missing_credentials_one_line_without_secrets(tmp_path: Path) -> None:
    with pytest.raises(ValueError) as e:
        load_credentials(env={}, credentials_dir=None)
    msg = str(e.value)
    assert "\n" not in msg
    for name in (
        "BINANCE_API_KEY",
        "BINANCE_API_SECRET",
        "BINANCE_PRIVATE_KEY_FILE",
        "binance_api_key",
        "binance_api_secret",
        "binance_private_key.pem",
        "CREDENTIALS_DIRECTORY",
    ):
        assert name in msg

    # Key present, secret missing: still one line, and the key is not echoed.
    (tmp_path / "binance_api_key").write_text(API_KEY)
    with pytest.raises(ValueError) as e:
        load_credentials(env={}, credentials_dir=tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and API_KEY not in msg and str(tmp_path) in msg


def test_both_key_types_is_an_error_without_secrets(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    path.write_bytes(b"-----BEGIN PRIVATE KEY-----\n")
    env = {
        "BINANCE_API_KEY": API_KEY,
        "BINANCE_API_SECRET": SECRET,
        "BINANCE_PRIVATE_KEY_FILE": str(path),
    }
    with pytest.raises(ValueError) as e:
        load_credentials(env=env)
    assert SECRET not in str(e.value) and "\n" not in str(e.value)


def test_private_key_file_must_exist(tmp_path: Path) -> None:
    env = {"BINANCE_API_KEY": API_KEY, "BINANCE_PRIVATE_KEY_FILE": str(tmp_path / "nope.pem")}
    with pytest.raises(ValueError, match="BINANCE_PRIVATE_KEY_FILE"):
        load_credentials(env=env)


def test_non_pem_key_file_rejected(tmp_path: Path) -> None:
    (tmp_path / "binance_api_key").write_text(API_KEY)
    (tmp_path / "binance_private_key.pem").write_bytes(b"secretstuff")
    with pytest.raises(ValueError) as e:
        load_credentials(env={}, credentials_dir=tmp_path)
    assert "not a PEM" in str(e.value) and "secretstuff" not in str(e.value)


# names and values of the plain characters plus "=" and "&", or anything
_QUERY_TEXT = st.text(alphabet="aZ09-_.~=&", max_size=6) | st.text(alphabet="aZ09-_.~=&% +/:é",
                                                                  max_size=6)


@given(params=st.lists(st.tuples(_QUERY_TEXT, _QUERY_TEXT | st.integers(-5, 10**6)),
                       max_size=5))
def test_the_unescaped_query_is_the_escaped_one_when_nothing_needs_escaping(
        params: list[tuple[str, Any]]) -> None:
    """The fast join (no per-parameter escaping) gives the reference's bytes for any
    names and values, "=" and "&" inside them included."""
    assert _query(params) == _query_escaped(params)
    assert rest_payload(params) == _query_escaped(params)


@given(params=st.lists(st.tuples(st.text(alphabet="aZ09-_.~=&[]^\\\n٣ｚ", max_size=4),
                                 st.text(alphabet="aZ09-_.~=&[]^\\\n٣ｚ", max_size=4)),
                       max_size=4))
def test_only_ascii_unreserved_characters_skip_escaping(params: list[tuple[str, str]]) -> None:
    """The fast path's character test takes no regex-class lookalikes: brackets, a
    caret, a backslash, a newline, another alphabet's digit or a full-width letter
    is escaped as the reference escapes it."""
    assert _query(params) == _query_escaped(params)


@given(payload=st.text(max_size=300), secret=st.text(min_size=1, max_size=80))
def test_the_hmac_signer_is_hmac_sha256_of_the_utf8_payload(payload: str, secret: str) -> None:
    signer = HmacSigner(secret)
    want = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    assert signer.sign(payload) == want
    assert signer.sign(payload) == want  # the keyed state is copied, never consumed


def test_an_hmac_signature_is_hmac_sha256_hex_sent_as_is() -> None:
    signer = HmacSigner("s3cret")
    payload = "symbol=BTCUSDT&side=BUY&timestamp=1"
    want = hmac.new(b"s3cret", payload.encode(), hashlib.sha256).hexdigest()
    assert signer.sign(payload) == want
    # the keyed state is copied, never used up: a second payload, then the first again
    assert signer.sign("x=1") == hmac.new(b"s3cret", b"x=1", hashlib.sha256).hexdigest()
    assert signer.sign(payload) == want
    assert sign_rest(signer, [("symbol", "BTCUSDT"), ("side", "BUY"), ("timestamp", "1")]) \
        == f"{payload}&signature={want}"
