"""The JSON API: the OpenAPI document validates and matches the route table; the API
mirrors the pages with the same data and the same audit entries."""

from __future__ import annotations

from openapi_spec_validator import validate
from web_helpers import DOB, SUNNY

from ivr.accounts import store
from ivr.records import audit
from ivr.web.openapi import document
from ivr.web.routes import ROUTES


def test_openapi_document_validates_and_lists_every_api_route():
    doc = document()
    validate(doc)
    listed = {(method.upper(), "/api/v1" + path) for path, ops in doc["paths"].items()
              for method in ops}
    assert listed == {(r.method, r.path) for r in ROUTES if r.api}
    pages = {r.path for r in ROUTES if not r.by_token and r.view is not None and not r.passive}
    assert all("/api/v1" + p in {r.path for r in ROUTES} for p in pages), \
        "every page has its API twin"


async def test_openapi_is_served_without_a_token(portal):
    client = await portal.client()
    response = await client.get("/api/v1/openapi.json")
    assert response.status == 200 and (await response.json())["openapi"] == "3.1.0"


async def test_api_mirrors_the_pages_and_is_audited(portal):
    client = await portal.client()
    made = await store.make_token(portal.db, "sunny-nurse", "phone", portal.clock())
    api = {"Authorization": f"Bearer {made['token']}"}
    me = await (await client.get("/api/v1/me", headers=api)).json()
    assert me == {"username": "sunny-nurse", "role": "clinician", "practice_id": SUNNY,
                  "clinician_id": "nurse-avery", "via": "api"}
    call = await (await client.get(f"/api/v1/calls/{portal.seeded.sunny_call}",
                                   headers=api)).json()
    assert call["call"]["id"] == portal.seeded.sunny_call
    assert {f["field"]: f["value"] for f in call["intake"]}["dob"] == DOB
    assert call["audio"][0]["api_url"].endswith("/audio/reason")
    audio = await client.get(call["audio"][0]["api_url"], headers={**api, "Range": "bytes=0-9"})
    assert audio.status == 206 and len(await audio.read()) == 10
    tonight = await (await client.get("/api/v1/tonight", headers=api)).json()
    assert [n["practice_id"] for n in tonight["nights"]] == [SUNNY]
    assert tonight["live"][0]["id"] == portal.seeded.sunny_live
    pending = await (await client.get("/api/v1/callbacks", headers=api)).json()
    assert [c["id"] for c in pending["callbacks"]] == [portal.seeded.callback_id]
    ack = await client.post(f"/api/v1/callbacks/{portal.seeded.callback_id}/ack", headers=api)
    assert ack.status == 200 and (await ack.json())["acknowledged"] is True
    again = await client.post(f"/api/v1/callbacks/{portal.seeded.callback_id}/ack",
                              headers=api)
    assert again.status == 409
    oncall = await (await client.get("/api/v1/oncall", headers=api)).json()
    assert oncall["days"] == 14 and oncall["practices"][0]["roles"]
    entries = await audit.read(portal.db, limit=20)
    assert {e["actor"] for e in entries} == {"api:sunny-nurse"}
    assert {e["detail"]["via"] for e in entries} == {"api"}
    assert {e["action"] for e in entries} >= {"call.read", "recording.read", "callbacks.read"}
