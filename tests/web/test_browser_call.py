"""A real call through the PBX, watched in a real browser.

Scenario: a practice admin closes Sunny Pediatrics on the Rules page (so the call is an
after-hours one whatever the time of day) and the simulator says so; a reacting caller
(ivr.caller) rings through Asterisk and the controller and gives a full intake; while it
talks, the call is on Tonight (server-sent events); when it has ended, its page plays the
name the caller said, and every read of it is in the audit log. The override is cleared
on the page at the end. Screenshots (also the Rules page at a phone's width) go to
test-artifacts/portal/.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from browser_helpers import log_in, needs_chromium, play, serve_portal, shot, until
from web_helpers import PASSWORD, REPO, SUNNY

from ivr.caller.demo import Patient, intake_plan
from ivr.db.engine import Database
from ivr.records import audit

sys.path.insert(0, str(REPO / "tests"))
from harness import EXAMPLE_DID, drop_pending_callbacks  # noqa: E402

pytestmark = [pytest.mark.pbx, needs_chromium]

CALLER = "+16175550188"


def _cli(stack: Any, *args: str, stdin: str | None = None) -> str:
    out = subprocess.run([sys.executable, "-m", "ivr.cli", *args], env=stack.env,
                         input=stdin, capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture
def portal_on_stack(live, tmp_path):
    """`ivr web` on the stack's database and port, and a Sunny admin to log in as."""
    user = f"live-admin-{tmp_path.name[-12:].lower().replace('_', '-')}"[:40]
    _cli(live, "users", "add", user, "--role", "practice_admin", "--practice", SUNNY,
         "--password-stdin", stdin=PASSWORD + "\n")
    try:
        with serve_portal(live, tmp_path / "web.out") as base:
            yield base, user
    finally:
        _cli(live, "override", "clear", "--practice", SUNNY)  # also if the test failed
        drop_pending_callbacks(live)
        text = (tmp_path / "web.out").read_text(errors="replace")
        for secret in (CALLER, "01022015", "Alex"):
            assert secret not in text, f"patient data in the portal's output: {secret!r}"


def _simulated_route(browser: Any, base: str) -> str:
    from selenium.webdriver.common.by import By

    browser.get(f"{base}/rules/simulate?practice={SUNNY}&at=now&keys=4")
    return until(browser, lambda d: d.find_elements(By.CLASS_NAME, "sim-route"),
                 "the simulator's answer")[0].text


def test_a_real_call_is_live_on_tonight_then_its_recording_plays(live, portal_on_stack,
                                                                browser, tmp_path):
    from selenium.webdriver.common.by import By

    base, user = portal_on_stack
    log_in(browser, base, user, PASSWORD, then="/rules")
    # Closed now, set on the page: the simulator's answer follows it.
    until_at = (datetime.now(UTC) + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%MZ")
    form = browser.find_element(By.CSS_SELECTOR, f'form[action="/rules/{SUNNY}/overrides"]')
    form.find_element(By.NAME, "mode").send_keys("closed")
    form.find_element(By.NAME, "until").send_keys(until_at)
    form.find_element(By.NAME, "reason").send_keys("browser test: after hours")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    until(browser, lambda d: "browser test: after hours" in d.page_source,
          "the override", timeout=30)
    shot(browser, "rules")
    browser.set_window_size(390, 844)  # a phone: nothing wider than the screen
    browser.get(base + "/rules")
    until(browser, lambda d: d.find_elements(By.TAG_NAME, "h1"), "the Rules page")
    assert browser.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth + 1")
    shot(browser, "rules-phone")
    browser.set_window_size(1200, 1000)
    assert _simulated_route(browser, base) == "after_hours"
    shot(browser, "simulate")

    browser.get(base + "/tonight")
    until(browser, lambda d: d.find_elements(By.ID, "live"), "Tonight")
    # A tuple (truthy even with no links), read again if the page refreshed meanwhile.
    before = until(browser, lambda d: ({a.get_attribute("href") for a in d.find_elements(
        By.CSS_SELECTOR, "#live a[href*='/calls/']")},), "the calls up before")[0]
    plan, _ = intake_plan(Patient(caller_id=CALLER, menu_key="4"), tmp_path / "voices")
    done: dict[str, Any] = {}
    caller = threading.Thread(target=lambda: done.setdefault(
        "report", live.place(plan, EXAMPLE_DID, tmp_path / "call", timeout_s=300)),
        daemon=True)
    caller.start()

    def live_call(driver: Any) -> str | None:
        for link in driver.find_elements(By.CSS_SELECTOR, "#live a[href*='/calls/']"):
            href = link.get_attribute("href")
            if href not in before:
                return href
        return None

    href = until(browser, live_call, "the call on Tonight while it is up", timeout=180)
    shot(browser, "tonight-live")
    call_id = href.rsplit("/", 1)[1]

    caller.join(360)
    report = done.get("report")
    assert report is not None, "the caller did not finish"
    assert report.ok, report.explain()
    until(browser, lambda d: live_call(d) is None, "the ended call off 'in progress'",
          timeout=120)

    browser.get(href)
    until(browser, lambda d: d.find_elements(By.ID, "audio-name"), "the name recording",
          timeout=60)
    assert play(browser, "audio-name") > 0.3  # the name the caller said, about 1 s
    shot(browser, "call-live")

    browser.get(base + "/rules")
    browser.find_element(By.CSS_SELECTOR,
                         f'form[action="/rules/{SUNNY}/overrides/clear"] button').click()
    until(browser, lambda d: "browser test: after hours" not in d.page_source,
          "the override cleared")

    async def entries() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        db = Database(live.settings.database_url)
        try:
            reads = await audit.read(db, action=audit.RECORDING_READ, subject=call_id)
            changes = await audit.read(db, action="override", practice_id=SUNNY, limit=500)
            return reads, changes
        finally:
            await db.close()

    reads, changes = asyncio.run(entries())
    assert reads and all(e["actor"] == f"web:{user}" for e in reads)
    mine = {e["action"] for e in changes if e["actor"] == f"web:{user}"}
    assert mine == {audit.OVERRIDE_SET, audit.OVERRIDE_CLEAR}
