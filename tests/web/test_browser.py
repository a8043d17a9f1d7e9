"""The portal in a real browser: Debian's headless Chromium driven by Selenium against the
real `ivr web` process on loopback. Log in, open a call, play its recording (served in
ranges); screenshots of the main pages are kept in test-artifacts/portal/."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest
from browser_helpers import needs_chromium, play, shot, until
from web_helpers import PASSWORD, REPO, seed

from ivr import config
from ivr.db.engine import Database
from ivr.records import audit

sys.path.insert(0, str(REPO / "tests"))
from harness import PortPlan, wait_for  # noqa: E402

pytestmark = needs_chromium


@pytest.fixture
def web_process(tmp_path):
    data = tmp_path / "data"
    settings = config.Settings(data_dir=data, instance="web-browser",
                               key_file=config.from_env().key_file).validate()

    async def prepare():
        db = Database(settings.database_url)
        await db.create()
        try:
            return await seed(db, data)
        finally:
            await db.close()

    seeded = asyncio.run(prepare())
    port = PortPlan().next()
    env = dict(os.environ, IVR_DATA_DIR=str(data), IVR_INSTANCE="web-browser",
               IVR_WEB_PORT=str(port), IVR_RULES_PATH=str(REPO / "routing_rules"))
    log = (tmp_path / "web.out").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "ivr.cli", "web"], env=env,
                               stdout=log, stderr=subprocess.STDOUT)

    def up() -> bool:
        import socket

        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    try:
        wait_for(up, 60, "the portal listening")
        yield f"http://127.0.0.1:{port}", seeded, settings
    finally:
        process.terminate()
        process.wait(20)
        log.close()
        text = (tmp_path / "web.out").read_text(errors="replace")
        for secret in ("<script>", "+1617", "1990-01-02"):
            assert secret not in text, f"patient data in the portal's output: {secret!r}"


def test_log_in_open_a_call_and_play_its_recording(web_process, browser):
    from selenium.webdriver.common.by import By

    base, seeded, settings = web_process
    browser.get(base + "/calls")  # not logged in: the log-in page, then back here
    until(browser, lambda d: d.find_elements(By.ID, "username"), "the log-in form")
    shot(browser, "login")
    browser.find_element(By.ID, "username").send_keys("sunny-admin")
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.ID, "login").click()
    until(browser, lambda d: d.current_url.startswith(base + "/calls")
           and "Calls" in d.title, "the calls page after logging in")
    shot(browser, "calls")
    browser.find_element(By.CSS_SELECTOR, f'a[href="/calls/{seeded.sunny_call}"]').click()
    until(browser, lambda d: d.find_elements(By.ID, "audio-reason"), "the call's page")
    # The hostile caller data is shown as text: no script of it ran, no alert is open.
    assert "<img src=x" in browser.find_element(By.TAG_NAME, "main").text
    duration = play(browser, "audio-reason", past=0.2)
    assert 1.9 < duration < 2.1  # the seeded tone is 2 s long
    shot(browser, "call")
    for page in ("tonight", "oncall", "reports"):
        browser.get(f"{base}/{page}")
        until(browser, lambda d: d.find_elements(By.TAG_NAME, "h1"), page)
        shot(browser, page)

    async def reads():
        db = Database(settings.database_url)
        try:
            return await audit.read(db, action="recording.read", limit=50)
        finally:
            await db.close()

    entries = asyncio.run(reads())
    assert entries and all(e["actor"] == "web:sunny-admin" for e in entries)
    assert any(e["detail"]["range"] for e in entries), "the player asked for a range"
