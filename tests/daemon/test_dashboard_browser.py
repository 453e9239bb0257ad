"""The web dashboard in a real browser: headless Chromium (Debian's `chromium` and
`chromium-driver`), driven by selenium, against a running paper daemon. It loads
the page, is sent to the login form, logs in with the control token, and sees new
fills appear without a reload; its halt and resume buttons act on the daemon. A
request without the cookie or the token is refused.

Skips (saying why) where no Chromium or chromedriver is installed; `.ci/run`
installs them where apt is available."""

from __future__ import annotations

import json
import shutil
import signal
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import eventually
from tests.daemon.test_run_process import start, wait_ready, write_config

_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _browser() -> tuple[str, str]:
    browser = next((p for p in map(shutil.which, _BROWSERS) if p), None)
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        missing = " and ".join(n for n, p in (("chromium", browser), ("chromedriver", driver))
                               if p is None)
        pytest.skip(f"no {missing} on PATH: install Debian's chromium and chromium-driver "
                    "(apt-get install -y chromium chromium-driver; .ci/run does) to run the "
                    "dashboard's browser test")
    return browser, driver


@pytest.fixture
def chrome() -> Iterator[Any]:
    browser, driver_path = _browser()
    webdriver = pytest.importorskip("selenium.webdriver",
                                    reason="selenium is not installed (pip install -e '.[test]')")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--no-first-run", "--disable-extensions", "--window-size=1400,1000"):
        options.add_argument(arg)
    # the paths are given: selenium's manager never downloads a driver
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def http(url: str, *, token: str | None = None, method: str = "GET") -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, method=method, headers=headers,
                                     data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def text_of(chrome: Any, element_id: str) -> str:
    """An element's text, "" while the page (re)loads and it is not there yet."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By

    try:
        return str(chrome.find_element(By.ID, element_id).text)
    except (NoSuchElementException, StaleElementReferenceException):
        return ""


@pytest.mark.timeout(240)  # a daemon, a browser, and fills at the sample's pace
def test_the_dashboard_in_chromium_logs_in_and_shows_fills_live(
        tmp_path: Path, chrome: Any) -> None:
    from selenium.webdriver.common.by import By

    config, data, log = write_config(tmp_path), tmp_path / "data", tmp_path / "daemon.log"
    proc = start(config, data, log)
    try:
        wait_ready(log, 1)
        url = json.loads((data / "control.json").read_text())["url"]
        token = (data / "control.token").read_text().strip()

        # without the cookie or the token: refused
        for path, method in (("/status", "GET"), ("/stream", "GET"), ("/orders", "GET"),
                             ("/halt", "POST")):
            status, _ = http(url + path, method=method)
            assert status == 401, (path, status)

        chrome.get(url + "/")
        assert chrome.current_url == url + "/login", "no session: the login form"
        assert "Log in" in chrome.page_source and "fills" not in chrome.page_source.lower()
        chrome.find_element(By.ID, "token").send_keys("not the token")
        chrome.find_element(By.ID, "submit").click()
        eventually(lambda: "Wrong token" in text_of(chrome, "error"),
                   timeout=10, message="the wrong token refused")
        chrome.get_log("browser")  # drops (reads) that deliberate 401 from the console log
        chrome.find_element(By.ID, "token").send_keys(token)
        chrome.find_element(By.ID, "submit").click()
        eventually(lambda: chrome.current_url == url + "/", timeout=10, message="logged in")
        eventually(lambda: text_of(chrome, "connection") == "on", timeout=20,
                   message="the live feed connected")
        assert chrome.execute_script("return document.cookie") == "", "HttpOnly: not readable"
        eventually(lambda: text_of(chrome, "trading") == "active", timeout=20,
                   message="the trading state shown")
        assert "sma" in text_of(chrome, "strategies")
        assert "binance" in text_of(chrome, "venues")

        # a new fill appears without a reload: mark this page, wait for a fill row it did
        # not have, check the mark survived (a reload would have dropped it)
        chrome.execute_script("window.__sameDocument = true")
        before = {r.get_attribute("data-order") + r.text
                  for r in chrome.find_elements(By.CSS_SELECTOR, "#fills tr")}

        def new_fill() -> Any:
            rows = chrome.find_elements(By.CSS_SELECTOR, "#fills tr.new")
            fresh = [r for r in rows if r.get_attribute("data-order") + r.text not in before]
            return fresh[0].get_attribute("data-order") if fresh else None

        order_id = eventually(new_fill, timeout=90, interval=0.2,
                              message="a fill pushed to the page")
        assert chrome.execute_script("return window.__sameDocument") is True, "no reload"
        status, orders = http(url + "/orders?all=1", token=token)
        assert status == 200
        assert order_id in {o["client_order_id"] for o in orders["orders"]}
        assert text_of(chrome, "equity") not in ("", "-")
        eventually(lambda: chrome.find_element(By.ID, "curve-line").get_attribute("points"),
                   timeout=20, message="the equity curve drawn")

        # the buttons act on the daemon (a POST with the page's CSRF header)
        chrome.find_element(By.ID, "halt").click()
        eventually(lambda: http(url + "/status", token=token)[1]["trading_state"] == "halted",
                   timeout=10, message="halted from the page")
        eventually(lambda: text_of(chrome, "trading") == "halted", timeout=10,
                   message="the page shows halted")
        chrome.find_element(By.ID, "resume").click()
        eventually(lambda: http(url + "/status", token=token)[1]["trading_state"] == "active",
                   timeout=10, message="resumed from the page")
        assert chrome.execute_script("return window.__sameDocument") is True
        # no script error, no request refused by the page's Content-Security-Policy
        errors = [e for e in chrome.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == [], errors
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code == 0, log.read_text()[-3000:]
