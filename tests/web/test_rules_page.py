"""The Rules page: the check of the files on disk (file:line:column), the simulator, and
manual overrides set and cleared from the page or the API, with their audit entries;
front desk reads only, another practice's admin sees nothing, an operator does all."""

from __future__ import annotations

import shutil
from dataclasses import replace

from web_helpers import MESA, REPO, SUNNY, login, page_csrf

from ivr.accounts import store
from ivr.records import audit, overrides

DID = "+16175550100"


async def _sim(client, **query) -> str:
    response = await client.get("/rules/simulate", params={"practice": SUNNY, **query})
    assert response.status == 200, (response.status, await response.text())
    return await response.text()


async def test_rules_page_shows_each_practice_the_person_sees(portal):
    client = await portal.client()
    await login(client, "sunny-desk")
    html = await (await client.get("/rules")).text()
    assert "Sunny Pediatrics" in html and "sunny-pediatrics.yaml" in html
    assert "Mesa" not in html and MESA not in html
    assert "Now: <strong>closed</strong>" in html  # 03:00 on a Friday
    assert 'action="/rules/' not in html  # front desk: no override form
    await login(client, "operator")
    html = await (await client.get("/rules")).text()
    assert "Sunny Pediatrics" in html and MESA in html and 'action="/rules/' in html


async def test_check_errors_name_file_line_and_column_for_their_practice_only(portal, tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(REPO / "routing_rules", rules)
    path = rules / "sunny-pediatrics.yaml"
    text = path.read_text()
    assert "  timezone: America/New_York" in text
    path.write_text(text.replace("  timezone: America/New_York", "  timezone: Mars/Olympus"))
    line = next(n for n, row in enumerate(path.read_text().splitlines(), 1)
                if "Mars/Olympus" in row)
    portal.settings = replace(portal.settings, rules_path=rules)
    client = await portal.client()
    await login(client, "sunny-admin")
    html = await (await client.get("/rules")).text()
    assert f"sunny-pediatrics.yaml:{line}:" in html and "error(s)" in html
    api = await store.make_token(portal.db, "sunny-admin", "t", portal.clock())
    doc = await (await client.get("/api/v1/rules", headers={
        "Authorization": f"Bearer {api['token']}"})).json()
    assert doc["ok"] is False
    [sunny] = doc["practices"]
    assert sunny["errors"][0]["file"] == "sunny-pediatrics.yaml"
    assert sunny["errors"][0]["line"] == line and sunny["errors"][0]["column"] > 0
    mesa = await portal.client()
    await login(mesa, "mesa-admin")
    html = await (await mesa.get("/rules")).text()
    assert "sunny-pediatrics.yaml" not in html and "Olympus" not in html


async def test_an_override_set_on_the_page_changes_the_simulator_and_is_audited(portal):
    client = await portal.client()
    await login(client, "sunny-admin")
    before = await _sim(client, keys="4")
    assert 'class="sim-route">after_hours' in before
    token = await page_csrf(client, "/rules")
    response = await client.post(f"/rules/{SUNNY}/overrides", allow_redirects=False, data={
        "csrf": token, "mode": "open", "until": "today 23:00",
        "reason": "<script>x()</script> flu clinic"})
    assert response.status == 303, await response.text()
    assert response.headers["Location"].startswith("/rules")
    page = await (await client.get("/rules")).text()
    assert "&lt;script&gt;x()&lt;/script&gt; flu clinic" in page and "<script>x()" not in page
    after = await _sim(client, keys="4")
    assert 'class="sim-route">after_hours' not in after
    assert "1 manual override(s) applied" in after
    [entry] = await audit.read(portal.db, action=audit.OVERRIDE_SET)
    assert entry["actor"] == "web:sunny-admin" and entry["practice_id"] == SUNNY
    assert "flu clinic" not in str(entry["detail"])  # the reason is free text: not logged
    cleared = await client.post(f"/rules/{SUNNY}/overrides/clear", data={"csrf": token},
                                allow_redirects=False)
    assert cleared.status == 303
    [entry] = await audit.read(portal.db, action=audit.OVERRIDE_CLEAR)
    assert entry["actor"] == "web:sunny-admin" and entry["detail"]["cleared"] == 1
    assert 'class="sim-route">after_hours' in await _sim(client, keys="4")


async def test_front_desk_cannot_set_or_clear_an_override(portal):
    client = await portal.client()
    await login(client, "sunny-desk")
    token = await page_csrf(client, "/rules")
    for path in (f"/rules/{SUNNY}/overrides", f"/rules/{SUNNY}/overrides/clear"):
        response = await client.post(path, data={
            "csrf": token, "mode": "closed", "until": "today 23:00", "reason": "no"})
        assert response.status == 403, path
    made = await store.make_token(portal.db, "sunny-desk", "t", portal.clock())
    response = await client.post(f"/api/v1/rules/{SUNNY}/overrides", json={
        "mode": "closed", "until": "today 23:00", "reason": "no"},
        headers={"Authorization": f"Bearer {made['token']}"})
    assert response.status == 403
    assert await overrides.list_overrides(portal.db, portal.clock(), include_past=True) == []
    assert await audit.read(portal.db, action="override") == []


async def test_operator_sets_any_practice_by_api_and_bad_input_is_named(portal):
    made = await store.make_token(portal.db, "operator", "t", portal.clock())
    bearer = {"Authorization": f"Bearer {made['token']}"}
    client = await portal.client()
    url = f"/api/v1/rules/{MESA}/overrides"
    for body, words in (
            ({"mode": "shut", "until": "today 23:00", "reason": "x"}, "mode='shut'"),
            ({"mode": "closed", "until": "yesterday 08:00", "reason": "x"},
             "not in the future"),
            ({"mode": "closed", "until": "someday", "reason": "x"}, "'someday'"),
            ({"mode": "closed", "until": "today 23:00", "reason": "a\x07b"}, "one line"),
            ({"mode": "closed", "until": "today 23:00", "reason": " "}, "reason"),
            ({"mode": "closed", "until": "2026-11-20T23:00", "from": "2026-11-21T01:00",
              "reason": "x"}, "must be after")):
        response = await client.post(url, json=body, headers=bearer)
        assert response.status == 400, body
        problem = await response.json()
        assert words in problem["detail"], (words, problem)
    response = await client.post(url, json={"mode": "closed", "until": "today 23:00",
                                            "reason": "power cut"}, headers=bearer)
    assert response.status == 200
    row = await response.json()
    assert row["practice_id"] == MESA and row["mode"] == "closed" and row["state"] == "active"
    [entry] = await audit.read(portal.db, action=audit.OVERRIDE_SET)
    assert entry["actor"] == "api:operator" and entry["practice_id"] == MESA
    unknown = await client.post("/api/v1/rules/nowhere/overrides/clear", headers=bearer)
    assert unknown.status == 404


async def test_simulator_keeps_to_the_practices_one_sees(portal):
    client = await portal.client()
    await login(client, "mesa-admin")
    empty = await client.get("/rules/simulate")
    assert empty.status == 200 and "sim-route" not in await empty.text()
    assert (await client.get("/rules/simulate", params={"practice": SUNNY})).status == 404
    theirs = await client.get("/rules/simulate", params={"to": DID})
    assert theirs.status == 404 and "Sunny" not in await theirs.text()
    nobody = await client.get("/rules/simulate", params={"to": "+15555550123"})
    assert nobody.status == 404  # numbers no practice claims: operators only
    bad = await client.get("/rules/simulate", params={"practice": MESA, "keys": "1;rm"})
    assert bad.status == 400 and "keys=" in await bad.text()
    late = await client.get("/rules/simulate", params={"practice": MESA, "at": "noonish"})
    assert late.status == 400 and "noonish" in await late.text()
    await login(client, "operator")
    html = await (await client.get("/rules/simulate", params={"to": "+15555550123"})).text()
    assert "No practice uses this number" in html
