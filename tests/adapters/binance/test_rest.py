"""BinanceRest against the loopback fake (tests/adapters/binance/fake_rest.py):
signing, clock resync, 429/418, order round trips, unknown outcomes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

import aiohttp
import pytest
import pytest_asyncio

from adapters.binance.errors import BinanceError
from adapters.binance.exchange_info import RateLimit
from adapters.binance.ratelimit import RateLimiter
from adapters.binance.rest import BinanceRest, UnknownOutcome, decimal_text
from adapters.binance.signing import Credentials
from events.instruments import TRADING, Instrument
from tests.adapters.binance.fake_rest import FakeBinance
from tests.conftest import until

KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
CREDS = Credentials(api_key=KEY, secret=SECRET)
ORDER = ("POST", "/api/v3/order")


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    f = FakeBinance(api_key=KEY, secret=SECRET)
    await f.start()
    yield f
    await f.close()


@pytest_asyncio.fixture
async def rest(fake: FakeBinance) -> AsyncIterator[BinanceRest]:
    client = BinanceRest(fake.base_url, CREDS, timeout_s=2.0)
    yield client
    await client.close()


def bounded(coro, seconds: float = 5.0):  # type: ignore[no-untyped-def]
    return asyncio.wait_for(coro, seconds)


async def test_signed_requests_accepted(rest: BinanceRest, fake: FakeBinance) -> None:
    account = await bounded(rest.account())
    assert account["accountType"] == "SPOT"
    assert {b["asset"] for b in account["balances"]} == {"BTC", "USDT"}
    assert await bounded(rest.open_orders()) == []
    assert await bounded(rest.my_trades("BTCUSDT")) == []
    # The limiter took the fake's weight header.
    assert fake.count("GET", "/api/v3/account") == 1


async def test_wrong_secret_is_auth_error(fake: FakeBinance) -> None:
    bad = Credentials(api_key=KEY, secret="x" * 64)
    async with BinanceRest(fake.base_url, bad) as client:
        with pytest.raises(BinanceError) as e:
            await bounded(client.account())
    assert (e.value.status, e.value.code, e.value.category) == (400, -1022, "auth")


async def test_wrong_api_key_is_auth_error(fake: FakeBinance) -> None:
    bad = Credentials(api_key="someone-else-0000", secret=SECRET)
    async with BinanceRest(fake.base_url, bad) as client:
        with pytest.raises(BinanceError) as e:
            await bounded(client.account())
    assert (e.value.status, e.value.code, e.value.category) == (401, -2015, "auth")


async def test_clock_skew_resyncs_once_then_succeeds(rest: BinanceRest,
                                                      fake: FakeBinance) -> None:
    fake.skew_ms = 30_000  # the venue's clock is 30 s ahead: our timestamp is stale
    account = await bounded(rest.account())
    assert account["accountType"] == "SPOT"
    assert fake.count("GET", "/api/v3/account") == 2  # rejected -1021, then accepted
    assert fake.count("GET", "/api/v3/time") >= 1
    assert abs(rest.offset_ms - 30_000) < 1000


async def test_clock_skew_behind_server(rest: BinanceRest, fake: FakeBinance) -> None:
    fake.skew_ms = -10_000  # our timestamp would be >1 s ahead
    offset = await bounded(rest.sync_time())
    assert abs(offset + 10_000) < 1000
    await bounded(rest.account())
    assert fake.count("GET", "/api/v3/account") == 1


async def test_persistent_clock_error_is_raised_after_one_retry(fake: FakeBinance) -> None:
    # A client clock that runs 30 s slow however often we sync cannot succeed.
    calls = 0

    def drifting() -> int:
        nonlocal calls
        calls += 1
        return fake.now_ms() - 30_000 * calls  # every read drifts further

    async with BinanceRest(fake.base_url, CREDS, now_ms=drifting) as client:
        with pytest.raises(BinanceError) as e:
            await bounded(client.account())
    assert e.value.code == -1021 and e.value.category == "clock"
    assert fake.count("GET", "/api/v3/account") == 2


async def test_429_waits_retry_after_then_succeeds(rest: BinanceRest,
                                                   fake: FakeBinance) -> None:
    fake.fail_next(429, retry_after=0.1, path="/api/v3/account")
    loop = asyncio.get_running_loop()
    start = loop.time()
    account = await bounded(rest.account())
    assert account["accountType"] == "SPOT"
    assert loop.time() - start >= 0.09  # honoured Retry-After
    assert fake.count("GET", "/api/v3/account") == 2


async def test_429_on_order_is_raised_not_retried(rest: BinanceRest, fake: FakeBinance) -> None:
    fake.fail_next(429, retry_after=0.1, method="POST")
    with pytest.raises(BinanceError) as e:
        await bounded(rest.new_order("BTCUSDT", "BUY", "LIMIT", quantity=Decimal("0.001"),
                                     price=Decimal("60000"), time_in_force="GTC",
                                     new_client_order_id="tl-429"))
    assert e.value.category == "retry_after" and e.value.status == 429
    assert not isinstance(e.value, UnknownOutcome)
    assert fake.count(*ORDER) == 1


async def test_418_bans_until_retry_after(fake: FakeBinance) -> None:
    extra_ms = 0

    def clock() -> int:
        return fake.now_ms() + extra_ms

    async with BinanceRest(fake.base_url, CREDS, now_ms=clock) as client:
        fake.fail_next(418, retry_after=0.5)
        with pytest.raises(BinanceError) as e:
            await bounded(client.account())
        assert (e.value.status, e.value.category) == (418, "banned")
        assert client.limiter.banned(client.server_time_ms() * 1_000_000)
        # Refused locally during the ban: nothing reaches the venue.
        with pytest.raises(BinanceError) as e2:
            await bounded(client.exchange_info())
        assert e2.value.category == "banned"
        assert len(fake.requests) == 1
        extra_ms = 600  # the ban (0.5 s) is over on our clock; still < 1 s ahead
        assert (await bounded(client.account()))["accountType"] == "SPOT"
        assert len(fake.requests) == 2


async def test_order_round_trip(rest: BinanceRest, fake: FakeBinance) -> None:
    placed = await bounded(rest.new_order(
        "BTCUSDT", "BUY", "LIMIT", quantity=Decimal("0.00150000"), price=Decimal("6E+4"),
        time_in_force="GTC", new_client_order_id="tl-1"))
    assert placed["clientOrderId"] == "tl-1" and placed["status"] == "NEW"
    assert placed["price"] == "60000.00000000" and placed["origQty"] == "0.00150000"
    assert "fills" not in placed  # RESULT
    got = await bounded(rest.get_order("BTCUSDT", "tl-1"))
    assert got["orderId"] == placed["orderId"] and got["status"] == "NEW"
    assert [o["clientOrderId"] for o in await bounded(rest.open_orders("BTCUSDT"))] == ["tl-1"]
    canceled = await bounded(rest.cancel_order("BTCUSDT", "tl-1"))
    assert canceled["status"] == "CANCELED" and canceled["origClientOrderId"] == "tl-1"
    assert await bounded(rest.open_orders()) == []
    with pytest.raises(BinanceError) as e:
        await bounded(rest.cancel_order("BTCUSDT", "tl-1"))
    assert (e.value.code, e.value.category) == (-2011, "cancel_rejected")
    with pytest.raises(BinanceError) as e:
        await bounded(rest.get_order("BTCUSDT", "never-sent"))
    assert (e.value.code, e.value.category) == (-2013, "not_found")
    assert fake.count(*ORDER) == 1


async def test_market_order_full_and_my_trades(rest: BinanceRest, fake: FakeBinance) -> None:
    placed = await bounded(rest.new_order(
        "BTCUSDT", "BUY", "MARKET", quantity=Decimal("0.0015"), new_client_order_id="tl-m",
        new_order_resp_type="FULL"))
    assert placed["status"] == "FILLED" and len(placed["fills"]) == 1
    trades = await bounded(rest.my_trades("BTCUSDT", from_id=placed["fills"][0]["tradeId"]))
    assert [t["orderId"] for t in trades] == [placed["orderId"]]
    assert Decimal(trades[0]["qty"]) == Decimal("0.0015")


async def test_duplicate_client_order_id_rejected(rest: BinanceRest, fake: FakeBinance) -> None:
    kwargs = dict(quantity=Decimal("0.001"), price=Decimal("60000.01"), time_in_force="GTC",
                  new_client_order_id="tl-dup")
    await bounded(rest.new_order("BTCUSDT", "SELL", "LIMIT", **kwargs))  # type: ignore[arg-type]
    with pytest.raises(BinanceError) as e:
        await bounded(rest.new_order("BTCUSDT", "SELL", "LIMIT", **kwargs))  # type: ignore[arg-type]
    assert (e.value.status, e.value.code, e.value.msg) == (400, -2010, "Duplicate order sent.")
    assert e.value.category == "reject"
    assert len(fake.orders) == 1


async def test_dropped_connection_on_order_is_unknown_outcome(rest: BinanceRest,
                                                              fake: FakeBinance) -> None:
    fake.drop_next(method="POST", path="/api/v3/order")
    with pytest.raises(UnknownOutcome) as e:
        await bounded(rest.new_order("BTCUSDT", "BUY", "LIMIT", quantity=Decimal("0.001"),
                                     price=Decimal("60000"), time_in_force="GTC",
                                     new_client_order_id="tl-drop"))
    assert e.value.client_order_id == "tl-drop" and e.value.category == "unknown"
    assert e.value.status == 0  # no HTTP response at all
    assert fake.count(*ORDER) == 1  # never resent
    found = await bounded(rest.get_order("BTCUSDT", "tl-drop"))
    assert found["status"] == "NEW"
    assert fake.count(*ORDER) == 1


async def test_timeout_on_order_is_unknown_outcome(fake: FakeBinance) -> None:
    async with BinanceRest(fake.base_url, CREDS, timeout_s=0.2) as client:
        fake.delay_next(2.0, method="POST", path="/api/v3/order")
        with pytest.raises(UnknownOutcome) as e:
            await bounded(client.new_order("BTCUSDT", "BUY", "LIMIT", quantity=Decimal("0.001"),
                                           price=Decimal("60000"), time_in_force="GTC",
                                           new_client_order_id="tl-slow"))
        assert e.value.client_order_id == "tl-slow" and e.value.status == 0
        found = await bounded(client.get_order("BTCUSDT", "tl-slow"))
        assert found["clientOrderId"] == "tl-slow"
    assert fake.count(*ORDER) == 1


async def test_5xx_on_order_is_unknown_outcome(rest: BinanceRest, fake: FakeBinance) -> None:
    fake.fail_next(503, method="POST", after_processing=True)
    with pytest.raises(UnknownOutcome) as e:
        await bounded(rest.new_order("BTCUSDT", "BUY", "LIMIT", quantity=Decimal("0.001"),
                                     price=Decimal("60000"), time_in_force="GTC",
                                     new_client_order_id="tl-503"))
    assert e.value.status == 503 and e.value.category == "unknown"
    assert fake.count(*ORDER) == 1
    assert (await bounded(rest.get_order("BTCUSDT", "tl-503")))["status"] == "NEW"


async def test_exchange_info_exact_decimals(rest: BinanceRest) -> None:
    instruments, limits = await bounded(rest.exchange_info())
    assert instruments == [Instrument(
        venue="binance", symbol="BTCUSDT", base="BTC", quote="USDT",
        tick_size=Decimal("0.01"), step_size=Decimal("0.00001"), min_notional=Decimal("5"),
        min_qty=Decimal("0.00001"), max_qty=Decimal("9000"), status=TRADING)]
    assert str(instruments[0].tick_size) == "0.01"
    assert RateLimit("REQUEST_WEIGHT", "MINUTE", 1, 6000) in limits


async def test_limiter_sees_weight_headers(fake: FakeBinance) -> None:
    limiter = RateLimiter()
    async with BinanceRest(fake.base_url, CREDS, limiter=limiter) as client:
        await bounded(client.exchange_info())
        await bounded(client.account())
        now = client.server_time_ms() * 1_000_000
        assert limiter.used("REQUEST_WEIGHT", 60 * 1_000_000_000, now) >= 40


def test_decimal_text_has_no_exponent() -> None:
    assert decimal_text(Decimal("1E-8")) == "0.00000001"
    assert decimal_text(Decimal("6E+4")) == "60000"
    assert decimal_text(Decimal("0.00150000")) == "0.00150000"
    with pytest.raises(ValueError):
        decimal_text(Decimal("NaN"))


async def test_fake_verifies_doc_vector_with_query_and_body(fake: FakeBinance) -> None:
    # Protocol doc §2: the signature covers query + body with no separator. A
    # -1021 (stale 2017 timestamp) proves the signature check passed first.
    query = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC"
    body = "quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
    sig = "0fd168b8ddb4876a0358a8d14d0c9f3da0e9b20c5d52b2a00fcf7d1c602f9a77"
    headers = {"X-MBX-APIKEY": KEY, "Content-Type": "application/x-www-form-urlencoded"}
    async with aiohttp.ClientSession() as s:
        for signature, code in ((sig, -1021), (sig[:-1] + "0", -1022)):
            async with s.post(f"{fake.base_url}/api/v3/order?{query}",
                              data=f"{body}&signature={signature}", headers=headers,
                              timeout=aiohttp.ClientTimeout(total=5)) as resp:
                assert resp.status == 400
                assert (await resp.json())["code"] == code
    assert fake.orders == {}


async def test_orders_waiting_for_the_limiter_are_signed_fresh_and_sent_once(
        fake: FakeBinance) -> None:
    """Orders queued behind the order-rate limit are stamped after their wait, so a
    long queue never turns into -1021 refusals and second sends (found by the soak)."""
    limiter = RateLimiter([RateLimit("ORDERS", "SECOND", 1, 2)], safety=1.0, slack_ns=0)
    client = BinanceRest(fake.base_url, CREDS, recv_window_ms=300, limiter=limiter)
    try:
        results = await bounded(asyncio.gather(*(
            client.new_order("BTCUSDT", "BUY", "LIMIT", quantity=Decimal("0.001"),
                             price=Decimal("50000"), time_in_force="GTC",
                             new_client_order_id=f"q-{i}")
            for i in range(6))), 10.0)
    finally:
        await client.close()
    assert [r["status"] for r in results] == ["NEW"] * 6
    assert [fake.post_count(f"q-{i}") for i in range(6)] == [1] * 6


async def test_a_request_held_back_a_second_or_more_by_the_limits_is_logged(
        fake: FakeBinance) -> None:
    """A request waiting for the rate limit's window says so (`binance.rate_limited`,
    with the wait): a stall of up to a minute was otherwise silent (the USD-M soak's
    reconnect storms used up the minute's weight and a cancel waited 20 s unseen)."""
    from structlog.testing import capture_logs

    limiter = RateLimiter([RateLimit("ORDERS", "DAY", 1, 1)], safety=1.0, slack_ns=0)
    client = BinanceRest(fake.base_url, CREDS, limiter=limiter)

    def order(i: int):  # type: ignore[no-untyped-def]
        return client.new_order("BTCUSDT", "BUY", "LIMIT", quantity=Decimal("0.001"),
                                price=Decimal("50000"), time_in_force="GTC",
                                new_client_order_id=f"w-{i}")
    try:
        with capture_logs() as logs:
            await bounded(order(0), 10.0)
            waiting = asyncio.ensure_future(order(1))  # the day's one order is spent
            await until(lambda: any(e["event"] == "binance.rate_limited" for e in logs),
                        message="the wait logged")
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
    finally:
        await client.close()
    (line,) = [e for e in logs if e["event"] == "binance.rate_limited"]
    assert line["order"] is True and line["weight"] == 1 and line["wait_s"] >= 1.0
    assert fake.post_count("w-1") == 0
