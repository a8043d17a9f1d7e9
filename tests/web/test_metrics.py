"""`/metrics` scraped as Prometheus would (an operator's bearer token), parsed with
prometheus_client's own parser: the counts match the seeded database, no label carries
patient data, and nobody else may scrape."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from web_helpers import DOB, HOSTILE_CALLER, HOSTILE_NUMBER, SUNNY, login

from ivr.accounts import store


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
