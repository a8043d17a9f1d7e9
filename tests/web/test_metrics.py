"""`/metrics` scraped as Prometheus would (an operator's bearer token), parsed with
prometheus_client's own parser: the counts match the seeded database, the on-call
search's histograms time what the dialler wrote, no label carries patient data, and
nobody else may scrape."""

from __future__ import annotations

from datetime import timedelta

from prometheus_client.parser import text_string_to_metric_families
from web_helpers import DOB, HOSTILE_CALLER, HOSTILE_NUMBER, SUNNY, login

from ivr.accounts import store
from ivr.db.models import Call, CallEvent, OncallLeg


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


async def test_an_operator_token_scrapes_counts_without_patient_data(portal):
    made = await store.make_token(portal.db, "operator", "prometheus", portal.clock())
    client = await portal.client()
    response = await client.get("/metrics",
                                headers={"Authorization": f"Bearer {made['token']}"})
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    assert response.headers["Cache-Control"] == "no-store"
    text = await response.text()
    samples = _samples(text)
    assert samples[("ivr_calls_in_progress", (("practice", SUNNY),))] == 1
    ended = {labels: v for (name, labels), v in samples.items() if name == "ivr_calls_total"}
    assert sum(ended.values()) == 2  # the two ended calls of the seed
    assert ended[(("disposition", "routine"), ("end_reason", "completed"),
                  ("practice", SUNNY), ("route", "after_hours"))] == 1
    assert samples[("ivr_callbacks_pending", (("practice", SUNNY),))] == 1
    failed = [v for (name, labels), v in samples.items() if name == "ivr_deliveries_failed"]
    assert failed == [1]
    assert ("ivr_call_start_to_clinician_seconds_count", ()) in samples
    for secret in (HOSTILE_CALLER, HOSTILE_NUMBER, "+1617", "+1720", DOB, "<script"):
        assert secret not in text, secret


async def test_nobody_else_scrapes(portal):
    client = await portal.client()
    anonymous = await client.get("/metrics")
    assert anonymous.status == 401 and "Bearer" in anonymous.headers["WWW-Authenticate"]
    assert anonymous.headers["Content-Type"].startswith("application/problem+json")
    await login(client, "operator")
    assert (await client.get("/metrics")).status == 401  # a session is not a token
    made = await store.make_token(portal.db, "sunny-admin", "t", portal.clock())
    admin = await client.get("/metrics", headers={"Authorization": f"Bearer {made['token']}"})
    assert admin.status == 403  # a practice admin: counts of every practice are not theirs


async def test_the_on_call_search_is_timed_from_the_call_start_and_from_triage(portal):
    """A call triaged at +60 s whose first clinician rang at +65 s and was bridged at
    +80 s; a menu key pressed wrongly first does not count (the last answer does)."""
    async with portal.db.session() as s:
        call = await s.get(Call, portal.seeded.sunny_call)
        assert call is not None
        start = call.started_at
        for at, kind in ((50, "menu.key"), (60, "menu.key"), (10, "prompt.greeting")):
            s.add(CallEvent(call_id=call.id, at=start + timedelta(seconds=at), kind=kind,
                            detail="{}"))
        for n, (placed, bridged) in enumerate(((65, 80), (70, None))):
            s.add(OncallLeg(id=f"leg-metrics-{n}", call_id=call.id, kind="live",
                            practice_id=SUNNY, number=HOSTILE_NUMBER,
                            channel_id=f"ivrleg-metrics-{n}", status="accepted",
                            placed_at=start + timedelta(seconds=placed),
                            bridged_at=start + timedelta(seconds=bridged)
                            if bridged else None))
    made = await store.make_token(portal.db, "operator", "prometheus", portal.clock())
    client = await portal.client()
    response = await client.get("/metrics",
                                headers={"Authorization": f"Bearer {made['token']}"})
    text = await response.text()
    samples = _samples(text)
    for name, seconds in (("ivr_triage_to_first_ring_seconds", 5.0),
                          ("ivr_call_start_to_first_ring_seconds", 65.0),
                          ("ivr_call_start_to_clinician_seconds", 80.0)):
        assert samples[(f"{name}_count", ())] == 1, name
        assert samples[(f"{name}_sum", ())] == seconds, name
    assert samples[("ivr_triage_to_first_ring_seconds_bucket", (("le", "5.0"),))] == 1
    assert samples[("ivr_triage_to_first_ring_seconds_bucket", (("le", "2.5"),))] == 0
    assert HOSTILE_NUMBER not in text
