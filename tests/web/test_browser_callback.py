"""A pending call-back acknowledged in a real browser stops the call-backs a live
controller would place.

Two urgent calls through the PBX, to two practices, while every clinician is busy: each
ends with a call-back promised (the rules' minutes are seconds here). The call-back of
practice A is due first, that of practice W ("witness") later. A's clinician logs in to
the portal in headless Chromium and acknowledges A's call-back on the Call-backs page
before it is due. The test then waits until the controller places W's first attempt:
its scheduler has then run past A's due time, so had the acknowledgement not stopped
A, A's attempt would have been placed by then. Through the database and the AMI
events: A has no call-back attempt and no channel of A's rang the clinician gateway
after the acknowledgement. Screenshots go to test-artifacts/portal/.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from browser_helpers import log_in, needs_chromium, serve_portal, shot, until
from web_helpers import PASSWORD, REPO

from ivr.accounts import store
from ivr.caller.plan import BUSY, AwaitEnd, CallPlan, PhoneBook
from ivr.db.engine import Database

sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "tests" / "e2e"))
from harness import wait_for  # noqa: E402
from oncall_helpers import (  # noqa: E402
    call_of,
    cli_json,
    gateway_channels,
    practice_yaml,
    settle,
    use_rules,
)
from support.reacting import BackgroundCall, start_phones, urgent  # noqa: E402

pytestmark = [pytest.mark.pbx, needs_chromium]

# (practice, DID, clinician, clinician's phone, caller, first attempt due after (s): the
# rules' renotify_minutes, at most 120, seconds here)
ACKED = ("oc-weback", "+16175550741", "wa1", "+16175550751", "+16175550781", 80)
WITNESS = ("oc-webwit", "+16175550742", "ww1", "+16175550752", "+16175550782", 120)


def _clinician(stack: Any, practice: str, clinician: str) -> str:
    """A portal account for the rules' clinician; its user name."""
    async def make() -> str:
        db = Database(stack.settings.database_url)
        try:
            name = f"nurse-{secrets.token_hex(3)}"
            await store.add_user(db, name, PASSWORD, "clinician", now=datetime.now(UTC),
                                 practice_id=practice, clinician_id=clinician)
            return name
        finally:
            await db.close()

    return asyncio.run(make())


def _callback(stack: Any, did: str) -> dict[str, Any] | None:
    call = call_of(stack, did)
    return call.get("callback") if call else None


@pytest.fixture
def two_practices(stack, tmp_path: Path):
    rules = tmp_path / "rules"
    rules.mkdir()
    for pid, did, cid, phone, _, due in (ACKED, WITNESS):
        # max_wait 10 s: with every phone busy the live search ends at once.
        (rules / f"{pid}.yaml").write_text(practice_yaml(
            pid, did, [(cid, phone, 6)], max_wait=10, renotify=due))
    use_rules(stack, rules)
    assert "rules refused" not in stack.controller_log().split("controller stopping")[-1]
    phones = start_phones(stack, PhoneBook({}, BUSY), tmp_path / "phones")  # all busy
    try:
        yield stack
    finally:
        phones.stop()
        settle(stack)


def test_a_callback_acknowledged_in_the_browser_is_not_placed(two_practices, browser,
                                                               tmp_path):
    from selenium.webdriver.common.by import By

    stack = two_practices
    calls = [BackgroundCall(stack, CallPlan(caller_id=caller, steps=(*urgent(stack),
                                                                     AwaitEnd())),
                            did, tmp_path / pid)
             for pid, did, _, _, caller, _ in (ACKED, WITNESS)]
    for call in calls:
        report = call.join(300)
        assert report.ok, report.explain()
    acked = wait_for(lambda: _callback(stack, ACKED[1]), 60, "A's pending call-back")
    witness = wait_for(lambda: _callback(stack, WITNESS[1]), 60, "W's pending call-back")
    assert acked["status"] == "pending" and acked["attempts"] == 0, acked
    assert witness["next_attempt_at"] > acked["next_attempt_at"], (acked, witness)

    user = _clinician(stack, ACKED[0], ACKED[2])
    with serve_portal(stack, tmp_path / "web.out") as base:
        log_in(browser, base, user, PASSWORD, then="/callbacks")
        selector = f'form[action="/callbacks/{acked["id"]}/ack"] button'
        button = until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, selector),
                       "A's call-back on the Call-backs page")[0]
        # A clinician sees their practice's call-backs only: W's is not on the page.
        assert witness["id"] not in browser.page_source
        shot(browser, "callbacks-pending")
        mark = stack.recorder.mark()
        button.click()
        until(browser, lambda d: "acknowledged=1" in d.current_url,
              "the call's page after the acknowledgement")
        shot(browser, "callback-acknowledged")
        browser.get(base + "/callbacks")
        until(browser, lambda d: d.find_elements(By.CLASS_NAME, "empty"),
              "no call-back waiting")
        shot(browser, "callbacks-none-waiting")

    done = _callback(stack, ACKED[1])
    assert done is not None and done["status"] == "acknowledged", done
    assert done["acknowledged_via"] == "portal" and done["acknowledged_by"] == ACKED[2]
    assert done["attempts"] == 0, "A's first attempt was placed before the click: too slow"

    # The scheduler runs past A's due time: W, due later, gets its first attempt.
    wait_for(lambda: (cb := _callback(stack, WITNESS[1])) and cb["attempts"] >= 1, 240,
             "W's first call-back attempt", interval=1)
    after = call_of(stack, ACKED[1])
    assert after is not None and after["callback"]["attempts"] == 0, after["callback"]
    assert [leg for leg in after["oncall_legs"] if leg["kind"] == "callback"] == []
    rows = {r["id"]: r for r in cli_json(stack, "callbacks", "list", "--all")}
    assert rows[acked["id"]]["status"] == "acknowledged"
    # AMI: every channel to the clinician gateway since the click is one of W's legs.
    witness_call = call_of(stack, WITNESS[1])
    assert witness_call is not None
    mine = {f"ivrleg-{leg['id']}" for leg in witness_call["oncall_legs"]}
    rung = [e.get("Uniqueid", "") for e in gateway_channels(stack, mark)]
    assert rung and set(rung) <= mine, (rung, mine)
    text = (tmp_path / "web.out").read_text(errors="replace")
    assert ACKED[4] not in text and ACKED[4][2:] not in text  # no caller number logged
