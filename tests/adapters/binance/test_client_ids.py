"""Binance's rule for client order ids, as the venue and check-config apply it."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from adapters.binance import (
    CLIENT_ORDER_ID_PATTERN,
    MAX_CLIENT_ORDER_ID_LEN,
    client_order_id_problem,
)

# Binance's own text (-1100, protocol doc section 4; binance-spot-api-docs PR #34).
BINANCE_SAYS = "^[a-zA-Z0-9-_]{1,36}$"
ALLOWED = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"


def test_the_exported_limits_are_binances() -> None:
    assert MAX_CLIENT_ORDER_ID_LEN == 36
    assert CLIENT_ORDER_ID_PATTERN == BINANCE_SAYS


@given(st.text(alphabet=st.sampled_from(ALLOWED), min_size=1, max_size=36))
def test_every_id_binance_takes_is_accepted(cid: str) -> None:
    assert client_order_id_problem(cid) is None


@given(st.text(max_size=60))
def test_an_id_is_refused_exactly_when_binance_would(cid: str) -> None:
    # Binance matches the whole parameter: `\Z`, not Python's `$` (which also
    # matches before a final newline).
    binance_takes = re.match(BINANCE_SAYS[:-1] + r"\Z", cid) is not None
    problem = client_order_id_problem(cid)
    assert (problem is None) == binance_takes, (cid, problem)


def test_the_refusal_says_what_is_wrong() -> None:
    assert client_order_id_problem("") == "it is empty"
    assert "37 characters long, Binance allows at most 36" in str(
        client_order_id_problem("s" * 35 + "-1"))
    assert "contains '.'" in str(client_order_id_problem("mm.v2-1"))
    assert "contains '\\n'" in str(client_order_id_problem("mm-1\n"))
