"""The pages as each role sees them, on a real database: log-in, Tonight, Calls, a call's
page with its recording (HTTP Range), the note PDF, reports, on call, call-backs, audit."""

from __future__ import annotations

import json

from web_helpers import (
    DOB,
    HOSTILE_CALLER,
    HOSTILE_NUMBER,
    HOSTILE_TOLD,
    HOSTILE_TRANSCRIPT,
    MESA,
    SUNNY,
    login,
    page_csrf,
)

from ivr.records import audit
from ivr.texts import en


async def test_login_then_tonight_lists_the_night_with_needs_action_first(portal):
    client = await portal.client()
    response = await login(client, "sunny-admin")
    assert response.status == 200 and str(response.url).endswith("/tonight")
    html = await response.text()
    assert "In progress now" in html
    assert f"/calls/{portal.seeded.sunny_live}" in html  # in progress
    assert f"/calls/{portal.seeded.sunny_call}" in html
    assert f"/calls/{portal.seeded.mesa_call}" not in html  # another practice's


async def test_hostile_values_are_escaped_everywhere_they_are_shown(portal):
    client = await portal.client()
    await login(client, "operator")
    for path in ("/tonight", "/calls", f"/calls/{portal.seeded.sunny_call}", "/callbacks"):
        html = await (await client.get(path)).text()
        for raw in (HOSTILE_CALLER, HOSTILE_NUMBER, HOSTILE_TOLD, HOSTILE_TRANSCRIPT,
                    "<script>alert", "<script>said", "<img src=x"):
            assert raw not in html, (path, raw)
    page = await (await client.get(f"/calls/{portal.seeded.sunny_call}")).text()
    assert "&lt;img src=x onerror=alert(1)&gt;" in page  # shown, as text
    assert "&lt;b&gt;told&lt;/b&gt;" in page


async def test_call_page_shows_intake_attempts_timeline_and_the_audio_player(portal):
    client = await portal.client()
    await login(client, "sunny-desk")
    response = await client.get(f"/calls/{portal.seeded.sunny_call}")
    assert response.status == 200
    html = await response.text()
    assert DOB in html  # decrypted for an authorized user
    assert f'src="/calls/{portal.seeded.sunny_call}/audio/reason"' in html
    assert "call.started" in html and "Timeline" in html
    assert "Note as PDF" in html
    # The machine transcript, escaped, marked as a machine's, with its red flag.
    assert "trouble breathing &lt;script&gt;said()&lt;/script&gt;" in html
    assert en.TRANSCRIPT_MARK in html and "Red flag: breathing" in html
    assert response.headers["Cache-Control"] == "no-store"


async def test_audio_is_served_decrypted_whole_and_by_range(portal):
    client = await portal.client()
    await login(client, "sunny-nurse")
    url = f"/calls/{portal.seeded.sunny_call}/audio/reason"
    whole = await client.get(url)
    assert whole.status == 200 and whole.headers["Content-Type"] == "audio/wav"
    assert await whole.read() == portal.seeded.wav
    assert whole.headers["Accept-Ranges"] == "bytes"
    part = await client.get(url, headers={"Range": "bytes=100-199"})
    assert part.status == 206
    assert await part.read() == portal.seeded.wav[100:200]
    total = len(portal.seeded.wav)
    assert part.headers["Content-Range"] == f"bytes 100-199/{total}"
    tail = await client.get(url, headers={"Range": "bytes=-10"})
    assert await tail.read() == portal.seeded.wav[-10:]
    open_ended = await client.get(url, headers={"Range": "bytes=0-"})
    assert open_ended.status == 206 and await open_ended.read() == portal.seeded.wav
    beyond = await client.get(url, headers={"Range": f"bytes={total + 5}-"})
    assert beyond.status == 416
    entries = await audit.read(portal.db, action="recording.read")
    assert len(entries) == 4
    assert {e["actor"] for e in entries} == {"web:sunny-nurse"}
    assert all(e["subject"] == portal.seeded.sunny_call for e in entries)


async def test_note_pdf_is_a_pdf_and_audited(portal):
    client = await portal.client()
    await login(client, "sunny-admin")
    response = await client.get(f"/calls/{portal.seeded.sunny_call}/note.pdf")
    assert response.status == 200 and (await response.read()).startswith(b"%PDF")
    [entry] = await audit.read(portal.db, action="note.read")
    assert entry["actor"] == "web:sunny-admin" and entry["practice_id"] == SUNNY


async def test_calls_filters(portal):
    client = await portal.client()
    await login(client, "operator")
    html = await (await client.get("/calls?practice=mesa-family")).text()
    assert portal.seeded.mesa_call in html and portal.seeded.sunny_call not in html
    html = await (await client.get("/calls?night=2026-11-19")).text()
    assert portal.seeded.mesa_call in html and portal.seeded.sunny_call in html
    html = await (await client.get("/calls?night=2026-11-18")).text()
    assert portal.seeded.sunny_call not in html
    html = await (await client.get("/calls?needs_action=1")).text()
    assert portal.seeded.sunny_call in html  # its call-back is pending
    assert portal.seeded.mesa_call not in html
    html = await (await client.get("/calls?outcome=callback_pending")).text()
    assert portal.seeded.sunny_call in html and portal.seeded.mesa_call not in html
    bad = await client.get("/calls?disposition=<script>")
    assert bad.status == 400 and "<script>" not in await bad.text()


async def test_every_patient_page_writes_its_audit_entry(portal):
    client = await portal.client()
    await login(client, "sunny-desk")
    for path in ("/tonight", "/calls", f"/calls/{portal.seeded.sunny_call}", "/callbacks"):
        assert (await client.get(path)).status == 200
    entries = await audit.read(portal.db, limit=50)
    actions = [(e["action"], e["subject"]) for e in reversed(entries)]
    # The log-in lands on Tonight: its entry comes first.
    assert actions == [("call.read", None), ("call.read", None), ("call.read", None),
                       ("call.read", portal.seeded.sunny_call), ("callbacks.read", None)]
    assert [e["detail"].get("page") for e in reversed(entries)] == [
        "tonight", "tonight", "calls", "call", None]
    assert all(e["actor"] == "web:sunny-desk" and e["practice_id"] == SUNNY for e in entries)
    assert all(e["detail"]["via"] == "web" for e in entries)
    text = json.dumps(entries)
    assert DOB not in text and "+1617" not in text and "alert" not in text


async def test_reports_list_files_and_retry(portal):
    client = await portal.client()
    await login(client, "sunny-admin")
    html = await (await client.get("/reports")).text()
    assert f"/reports/{portal.seeded.report_id}/pdf" in html
    assert "fax busy" in html and "Retry" in html
    pdf = await client.get(f"/reports/{portal.seeded.report_id}/pdf")
    assert pdf.status == 200 and (await pdf.read()).startswith(b"%PDF")
    doc = await client.get(f"/reports/{portal.seeded.report_id}/json")
    assert (await doc.json())["kind"] == "morning_report"
    token = await page_csrf(client, "/reports")
    retried = await client.post(f"/deliveries/{portal.seeded.delivery_id}/retry",
                                data={"csrf": token}, allow_redirects=False)
    assert retried.status == 303
    again = await client.post(f"/deliveries/{portal.seeded.delivery_id}/retry",
                              data={"csrf": token})
    assert again.status == 409  # pending now, not failed


async def test_oncall_shows_14_days_per_role_and_gaps(portal):
    client = await portal.client()
    await login(client, "mesa-desk")
    html = await (await client.get("/oncall")).text()
    assert "next 14 days" in html and "Mesa" in html and "Sunny" not in html
    assert "<rect" in html and "Escalation" in html


async def test_a_callback_is_acknowledged_once_and_the_second_is_told(portal):
    nurse = await portal.client()
    admin = await portal.client()
    await login(nurse, "sunny-nurse")
    await login(admin, "sunny-admin")
    nurse_token = await page_csrf(nurse, "/callbacks")
    admin_token = await page_csrf(admin, "/callbacks")
    first = await nurse.post(f"/callbacks/{portal.seeded.callback_id}/ack",
                             data={"csrf": nurse_token}, allow_redirects=False)
    assert first.status == 303
    second = await admin.post(f"/callbacks/{portal.seeded.callback_id}/ack",
                              data={"csrf": admin_token})
    assert second.status == 409 and "acknowledged this call-back first" in await second.text()
    from ivr.oncall import callbacks

    cb = await callbacks.get(portal.db, portal.seeded.callback_id)
    assert cb.status == "acknowledged" and cb.acknowledged_by == "nurse-avery"
    assert cb.acknowledged_via == "portal"


async def test_front_desk_cannot_acknowledge_or_retry(portal):
    client = await portal.client()
    await login(client, "sunny-desk")
    token = await page_csrf(client, "/callbacks")
    assert (await client.post(f"/callbacks/{portal.seeded.callback_id}/ack",
                              data={"csrf": token})).status == 403
    assert (await client.post(f"/deliveries/{portal.seeded.delivery_id}/retry",
                              data={"csrf": token})).status == 403
    assert (await client.get("/audit")).status == 403


async def test_audit_page_for_admins_is_their_practice_only(portal):
    operator = await portal.client()
    await login(operator, "operator")
    await operator.get(f"/calls/{portal.seeded.mesa_call}")
    admin = await portal.client()
    await login(admin, "sunny-admin")
    await admin.get(f"/calls/{portal.seeded.sunny_call}")
    html = await (await admin.get("/audit")).text()
    assert portal.seeded.sunny_call in html and portal.seeded.mesa_call not in html
    everything = await (await operator.get("/audit")).text()
    assert portal.seeded.sunny_call in everything and portal.seeded.mesa_call in everything
    assert MESA in everything


async def test_oncall_highlights_a_gap(portal):
    """Before the rotations begin nobody is on call: the page says so, in red."""
    from datetime import timedelta

    from ivr.rules.oncall import rotation_begins

    practice = portal.ruleset.practices[SUNNY]
    begins = min(rotation_begins(r, practice.tz)
                 for r in practice.on_call.rotations.values())
    portal.clock.now = begins - timedelta(days=3)
    client = await portal.client()
    await login(client, "sunny-admin")
    html = await (await client.get("/oncall")).text()
    assert "NOBODY ON CALL" in html and 'class="gap"' in html and "gap(s)" in html
