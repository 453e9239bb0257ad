"""`python -m tests.fake_binance` as a real child process, and the chaos driver."""

from __future__ import annotations

import asyncio
import signal
import sys

import aiohttp

from tests.conftest import REPO, cli_env
from tests.fake_binance import FakeBinanceServer
from tests.fake_binance.chaos import FAULTS, Chaos

PREFIX = "fake-binance listening on http://127.0.0.1:"


async def test_standalone_prints_its_url_and_exits_0_on_sigterm() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.fake_binance", "--port", "0", "--seed", "7",
        "--tick-ms", "20", "--chaos", cwd=REPO, env=cli_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 15)).decode()  # type: ignore[union-attr]
        assert line.startswith(PREFIX) and line.endswith("\n"), line
        url = line.removeprefix("fake-binance listening on ").strip()
        async with aiohttp.ClientSession() as s, s.get(
                f"{url}/api/v3/depth?symbol=BTCUSDT&limit=5",
                timeout=aiohttp.ClientTimeout(total=5)) as resp:
            assert resp.status == 200 and len((await resp.json())["bids"]) == 5
        proc.send_signal(signal.SIGTERM)
        rest_of_stdout, _ = await asyncio.wait_for(proc.communicate(), 15)
        assert proc.returncode == 0
        assert rest_of_stdout == b""  # exactly one line on stdout
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_chaos_injects_every_kind_of_fault() -> None:
    server = FakeBinanceServer(seed=3, tick_interval_s=None)
    await server.start()
    try:
        chaos = Chaos(server, seed=3)
        for name in FAULTS:
            chaos.inject(name)
        assert chaos.injected == list(FAULTS)
        assert len(server.rest.faults) == 2  # the 429 and the 5xx wait for requests
        looping = Chaos(server, seed=3, interval_s=(0.0, 0.001))
        task = asyncio.create_task(looping.run())
        try:
            deadline = asyncio.get_running_loop().time() + 5.0
            while len(looping.injected) < 10:  # the loop keeps injecting
                assert asyncio.get_running_loop().time() < deadline, looping.injected
                assert not task.done()
                await asyncio.sleep(0.001)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    finally:
        await server.close()
