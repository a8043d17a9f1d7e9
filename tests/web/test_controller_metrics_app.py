"""The controller's own metrics endpoint (ivr.controller.metrics), on its app alone: the
AGI latency histogram by verb, the trunk registrations parsed from AMI's list, the
operator-token policy of the portal's /metrics, and no caller data in any label."""

from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from web_helpers import HOSTILE_CALLER, HOSTILE_NUMBER

from ivr.accounts import store
from ivr.ami import AmiNotConnected
from ivr.controller.metrics import ControllerMetrics, metrics_app, registration_states


def test_registrations_are_read_from_the_pbx_list():
    entries = [
        {"Response": "Success", "EventList": "start"},
        {"Event": "OutboundRegistrationDetail", "ObjectName": "carrier-reg",
         "Status": "Registered"},
        {"Event": "OutboundRegistrationDetail", "ObjectName": "backup-reg",
         "Status": "Rejected"},
        {"Event": "OutboundRegistrationDetail", "ObjectName": "not ours", "Status": "x"},
        {"Event": "AuthDetail", "ObjectName": "carrier-auth"},
        {"Event": "OutboundRegistrationDetailComplete"},
    ]
    assert registration_states(entries) == {"carrier": True, "backup": False}


async def _scrape(client: TestClient, token: str | None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await client.get("/metrics", headers=headers)
    return response.status, await response.text()


async def test_an_operator_scrapes_latency_by_verb_and_nobody_else(portal):
    metrics = ControllerMetrics(calls_up=lambda: 2, refused=lambda: 1)
    metrics.observe_command("STREAM FILE", 1.5, "ok")
    metrics.observe_command("SET VARIABLE", 0.002, "ok")
    metrics.observe_command("GET DATA", 4.0, "hangup")
    # A verb that is not one (never happens: build_command refuses it) is not a label.
    metrics.observe_command(f"EXEC {HOSTILE_CALLER} {HOSTILE_NUMBER}", 0.1, "ok")
    client = TestClient(TestServer(metrics_app(metrics, portal.db, clock=portal.clock)))
    await client.start_server()
    try:
        assert (await _scrape(client, None))[0] == 401
        assert (await _scrape(client, "ivr_0123456789abcdef.not-a-real-token-at-all"))[0] \
            == 401
        admin = await store.make_token(portal.db, "sunny-admin", "t", portal.clock())
        assert (await _scrape(client, admin["token"]))[0] == 403
        operator = await store.make_token(portal.db, "operator", "prom", portal.clock())
        status, text = await _scrape(client, operator["token"])
    finally:
        await client.close()
    assert status == 200
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    count = "ivr_agi_command_seconds_count"
    assert samples[(count, (("command", "STREAM FILE"), ("outcome", "ok")))] == 1
    assert samples[(count, (("command", "GET DATA"), ("outcome", "hangup")))] == 1
    assert samples[(count, (("command", "OTHER"), ("outcome", "ok")))] == 1
    assert samples[("ivr_controller_calls_in_progress", ())] == 2
    assert samples[("ivr_agi_refused_total", ())] == 1
    assert samples[("ivr_trunk_registrations_read", ())] == 0  # no AMI given
    for secret in (HOSTILE_CALLER, HOSTILE_NUMBER, "<script", "onerror"):
        assert secret not in text


class _Ami:
    """Answers PJSIPShowRegistrationsOutbound as Asterisk 22 does, or fails (AMI down)."""

    def __init__(self, entries: list[dict[str, str]] | None) -> None:
        self.entries, self.connected = entries, entries is not None

    async def action(self, fields: dict[str, str], **_: object) -> list[dict[str, str]]:
        assert fields == {"Action": "PJSIPShowRegistrationsOutbound"}
        if self.entries is None:
            raise AmiNotConnected("AMI is not connected")
        return self.entries


async def test_trunk_gauges_follow_the_pbx_and_vanish_without_it():
    listed = [{"Event": "OutboundRegistrationDetail", "ObjectName": "carrier-reg",
               "Status": "Registered"}, {"Event": "OutboundRegistrationDetailComplete"}]
    ami = _Ami(listed)
    metrics = ControllerMetrics(calls_up=lambda: 0, refused=lambda: 0,
                                ami=ami,  # type: ignore[arg-type]
                                registering_trunks=lambda: ["carrier", "backup"])

    async def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        await metrics.refresh()
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(
                    generate_latest(metrics.registry).decode()) for s in family.samples}

    seen = await scrape()
    assert seen[("ivr_trunk_registered", (("trunk", "carrier"),))] == 1
    # In the trunks file, not listed by the PBX (its registration did not load): 0.
    assert seen[("ivr_trunk_registered", (("trunk", "backup"),))] == 0
    assert seen[("ivr_trunk_registrations_read", ())] == 1
    assert seen[("ivr_controller_ami_connected", ())] == 1
    ami.entries, ami.connected = None, False
    seen = await scrape()
    assert not [k for k in seen if k[0] == "ivr_trunk_registered"]
    assert seen[("ivr_trunk_registrations_read", ())] == 0
    assert seen[("ivr_controller_ami_connected", ())] == 0
