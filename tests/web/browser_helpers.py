"""Debian's headless Chromium through Selenium, for the portal's browser tests: the
driver fixture, waiting for a condition, and screenshots kept as test artifacts."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from web_helpers import REPO

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
ARTIFACTS = REPO / "test-artifacts" / "portal"

needs_chromium = pytest.mark.skipif(
    not (CHROMIUM and DRIVER) and os.environ.get("CI") != "true",
    reason="Debian's chromium and chromium-driver are not installed (make apt)")


@pytest.fixture
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM or "chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1200,1000", "--autoplay-policy=no-user-gesture-required"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER or "chromedriver"), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@contextlib.contextmanager
def serve_portal(stack: Any, output: Path) -> Iterator[str]:
    """`ivr web` on a test stack's database and web port (its output in `output`);
    yields the portal's base URL once it listens."""
    from support.polling import wait_for

    port = stack.settings.web_port
    with output.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "ivr.cli", "web"], env=stack.env,
                                   stdout=log, stderr=subprocess.STDOUT, cwd=REPO)

        def up() -> bool:
            if process.poll() is not None:
                raise AssertionError("ivr web exited: " + output.read_text())
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0

        try:
            wait_for(up, 60, "the portal listening")
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(20)


def until(driver: Any, condition: Any, what: str, timeout: float = 60) -> Any:
    """Wait for `condition(driver)`. A page that refreshes itself (Tonight) may replace an
    element between finding it and reading it: that try is a miss, not a failure."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2,
                         ignored_exceptions=[StaleElementReferenceException]).until(
        lambda d: condition(d), message=what)


def shot(driver: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def log_in(driver: Any, base: str, username: str, password: str, then: str = "/tonight"
           ) -> None:
    from selenium.webdriver.common.by import By

    driver.get(base + then)  # not logged in: the log-in page, then back there
    until(driver, lambda d: d.find_elements(By.ID, "username"), "the log-in form")
    driver.find_element(By.ID, "username").send_keys(username)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "login").click()
    until(driver, lambda d: d.current_url.startswith(base + then), f"{then} after log-in")


def play(driver: Any, element_id: str, past: float = 0.1) -> float:
    """Load an audio element's metadata, play it (muted) past `past` seconds; its
    duration as the browser decoded it."""
    duration = until(driver, lambda d: d.execute_script(
        "const a = document.getElementById(arguments[0]);"
        "return a.readyState >= 1 && a.duration > 0 ? a.duration : null;", element_id),
        f"the metadata of {element_id}")
    played = driver.execute_script(
        "const a = document.getElementById(arguments[0]); a.muted = true;"
        "return a.play().then(() => true, e => String(e));", element_id)
    assert played is True, played
    until(driver, lambda d: d.execute_script(
        "return document.getElementById(arguments[0]).currentTime > arguments[1]",
        element_id, past), f"{element_id} playing")
    return float(duration)
