"""The SIP edge against a real far end: a second Asterisk plays the carrier (tests/support/
carrier.py). Registration with digest over TLS, SRTP both ways, a forwarded call in with
its Diversion, a clinician call out, a wrong password refused (shown by `ivr pbx status`
and by the controller's ivr_trunk_registered metric), re-registration after the carrier
restarts, and the guard banning a scanner while the carrier's calls go on."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
from harness import EXAMPLE_DID, REPO, EventRecorder, wait_for
from metrics_helpers import operator_token, samples, scraper
from support import carrier as c
from support.sipp import PhoneSpec

from ivr.caller.plan import CallPlan, Hangup, Listen

pytestmark = pytest.mark.pbx


@pytest.fixture(scope="module")
def edge():
    with c.edge_stack("edge") as s:
        yield s


def test_registers_to_the_carrier_over_tls_with_digest(edge):
    wait_for(lambda: c.registered(edge), 60, "the registration to the carrier")
    assert f"{c.ACCOUNT}/sip:{c.ACCOUNT}@127.0.0.1" in edge.carrier.cli("pjsip show contacts")
    assert "transport=tls" in edge.carrier.cli(f"pjsip show aor {c.ACCOUNT}").lower()
    # The service checked the carrier's certificate (verify_server is on by default).
    shown = edge.pbx.cli("pjsip show transport transport-tls").split()
    assert shown[shown.index("verify_server") + 2] == "Yes"


def test_a_forwarded_call_arrives_through_the_carrier_encrypted(edge):
    wait_for(lambda: c.registered(edge), 60, "the registration")
    mark, cmark = edge.recorder.mark(), edge.carrier_events.mark()
    plan = CallPlan(caller_id="+16175550199", steps=(Listen(), Hangup()))
    report = c.place_in(edge, plan, EXAMPLE_DID, edge.workdir / "in1")
    assert report.ok, report.explain()
    uid = wait_for(lambda: edge.recorder.last_inbound_uniqueid(mark), 30, "the call")
    legs = wait_for(lambda: c.carrier_legs(edge, cmark), 30, "the carrier's leg event")
    # The carrier's leg to the service: SRTP media, TLS signalling.
    assert legs[0]["Secure"] == "1" and legs[0]["Tls"] == "1", legs
    call = wait_for(lambda: edge.call_by_uniqueid(uid), 30, "the call's record")
    assert call["forwarded_from"] == c.FORWARDED and call["dialled"] == EXAMPLE_DID
    with edge.recorder._lock:
        chans = [e.get("Channel", "") for e in edge.recorder.events[mark:]
                 if e.get("Uniqueid") == uid and e.get("Event") == "Newchannel"]
    assert chans and chans[0].startswith("PJSIP/carrier-")


def test_a_clinician_call_goes_out_through_the_carrier_encrypted(edge):
    wait_for(lambda: c.registered(edge), 60, "the registration")
    cmark = edge.carrier_events.mark()
    phone = edge.phone(PhoneSpec(answer=True, key=None, wait_bye_ms=20000))
    try:
        c.originate(edge, "PJSIP/16175550321@clinician-gateway")
        legs = wait_for(lambda: c.carrier_legs(edge, cmark), 30, "the carrier's leg event")
        assert legs[0]["Endpoint"] == c.ACCOUNT  # authenticated as the account
        assert legs[0]["Secure"] == "1" and legs[0]["Tls"] == "1", legs
        out, err = phone.communicate(timeout=90)
        assert phone.returncode == 0, (out or "")[-2000:] + (err or "")[-2000:]
    finally:
        if phone.poll() is None:
            phone.kill()
            phone.communicate()


def _sip(method: str, target: tuple[str, int], source: str, n: int, user: str = "100",
         body: str = "", extra: str = "") -> str:
    branch = f"z9hG4bK-scan-{os.getpid()}-{n}"
    return (f"{method} sip:{user}@{target[0]}:{target[1]} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {source}:5999;branch={branch};rport\r\n"
            f"From: <sip:{user}@{target[0]}>;tag=scan{n}\r\nTo: <sip:{user}@{target[0]}>\r\n"
            f"Call-ID: scan-{os.getpid()}-{n}\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\n"
            f"Contact: <sip:{user}@{source}:5999>\r\n{extra}"
            f"Content-Length: {len(body)}\r\n\r\n{body}")


def _send(source: str, target: tuple[str, int], payloads: list[bytes],
          wait: float = 1.0) -> list[bytes]:
    """Send datagrams from `source` and collect whatever comes back for `wait` s each."""
    replies = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.settimeout(wait)
        for payload in payloads:
            sock.sendto(payload, target)
            try:
                replies.append(sock.recv(65535))
            except TimeoutError:
                replies.append(b"")
    return replies


def test_a_scanner_is_banned_while_the_carrier_keeps_working(edge):
    wait_for(lambda: c.registered(edge), 60, "the registration")
    log = open(edge.workdir / "guard.log", "ab")
    guard = subprocess.Popen([sys.executable, "-m", "ivr.cli", "pbx", "guard"], env=edge.env,
                             stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        wait_for(lambda: "guard ready" in (edge.settings.log_dir /
                 f"guard-{edge.settings.instance}.log").read_text(errors="replace")
                 if (edge.settings.log_dir / f"guard-{edge.settings.instance}.log").exists()
                 else False, 30, "the guard")
        target = (edge.settings.sip_host, edge.settings.sip_port)
        scanner = "127.0.0.9"
        first = _send(scanner, target, [_sip("OPTIONS", target, scanner, 0).encode()])
        # Unknown: challenged like anyone (no "no such user"), with a realm naming nothing.
        assert first[0].startswith(b"SIP/2.0 401"), first
        assert b'realm="sip"' in first[0] and b"asterisk" not in first[0].lower()
        storm = [_sip(m, target, scanner, i, user=f"{100 + i}").encode()
                 for i, m in enumerate(["REGISTER", "INVITE", "OPTIONS"] * 4, start=1)]
        _send(scanner, target, storm, wait=0.3)

        def banned() -> bool:
            out = subprocess.run([sys.executable, "-m", "ivr.cli", "pbx", "bans", "list",
                                  "--json"], env=edge.env, capture_output=True, text=True,
                                 cwd=REPO, timeout=60)
            return any(b["address"] == scanner for b in json.loads(out.stdout or "[]"))

        wait_for(banned, 60, "the scanner's ban", interval=0.5)
        after = wait_for(lambda: (r := _send(scanner, target, [
            _sip("OPTIONS", target, scanner, 99).encode()]))[0] != b"" and
            not r[0].startswith(b"SIP/2.0 401") and r, 30, "the ban in force")
        assert after[0].startswith(b"SIP/2.0 403"), after
        # The carrier is untouched: still registered, and a forwarded call still answered.
        assert c.registered(edge)
        mark = edge.recorder.mark()
        plan = CallPlan(caller_id="+16175550198", steps=(Listen(), Hangup()))
        report = c.place_in(edge, plan, EXAMPLE_DID, edge.workdir / "in2")
        assert report.ok, report.explain()
        assert edge.recorder.last_inbound_uniqueid(mark)
        out = subprocess.run([sys.executable, "-m", "ivr.cli", "pbx", "bans", "clear",
                              scanner, "--json"], env=edge.env, capture_output=True,
                             text=True, cwd=REPO, timeout=60)
        assert json.loads(out.stdout)["cleared"] == [scanner]
        wait_for(lambda: _send(scanner, target, [_sip("OPTIONS", target, scanner, 100)
                                                  .encode()])[0].startswith(b"SIP/2.0 401"),
                 30, "the ban lifted")
    finally:
        guard.terminate()
        guard.wait(20)
        log.close()


def test_malformed_sip_leaves_the_pbx_and_the_trunk_up(edge):
    target = (edge.settings.sip_host, edge.settings.sip_port)
    source = "127.0.0.10"
    bad_sdp = "v=0\r\no=- x x IN IP4\r\nm=audio notaport RTP/AVP 0 0 0\r\nc=IN IP9 ::::\r\n"
    payloads = [
        _sip("INVITE", target, source, 1, extra="X-Big: " + "A" * 60000 + "\r\n").encode(),
        _sip("INVITE", target, source, 2, body=bad_sdp,
             extra="Content-Type: application/sdp\r\n").encode(),
        _sip("INVITE", target, source, 3).replace("Call-ID", "X-No-Call-ID").encode(),
        b"\x00\xff" * 700,
        b"INVITE sip:x SIP/2.0\r\n\r\n",
        _sip("OPTIONS", target, source, 4).replace("CSeq: 1 OPTIONS", "CSeq: x").encode(),
    ]
    _send(source, target, payloads, wait=0.3)
    assert edge.pbx.is_running()
    ok = _send("127.0.0.11", target, [_sip("OPTIONS", target, "127.0.0.11", 5).encode()])
    assert ok[0].startswith(b"SIP/2.0 "), ok
    assert c.registered(edge)


def _send_register(edge) -> None:
    edge.pbx.cli("pjsip send register carrier-reg")


def _registered_metric(edge, scrape) -> float | None:
    """The controller's ivr_trunk_registered for the carrier (None: not scraped)."""
    status, text = scrape()
    return samples(text).get(("ivr_trunk_registered", (("trunk", "carrier"),))) \
        if status == 200 else None


def test_a_wrong_password_is_refused_and_shown(edge):
    scrape = scraper(edge.settings.controller_metrics_port, operator_token(edge.settings))
    wait_for(lambda: c.registered(edge), 60, "the registration")
    wait_for(lambda: _registered_metric(edge, scrape) == 1, 60, "the metric at 1")
    os.environ[c.PASSWORD_ENV] = "not-the-password"
    try:
        edge.pbx.start()  # re-render and reload with the wrong password
        _send_register(edge)
        trunks = wait_for(lambda: [t for t in c.pbx_status(edge)["trunks"] if not t["ok"]], 60,
                          "the refused registration")
        assert trunks[0]["registration"]["state"] in ("Rejected", "Unregistered")
        # The controller's metrics say so too (read from its AMI link at the scrape).
        wait_for(lambda: _registered_metric(edge, scrape) == 0, 60, "the metric at 0")
    finally:
        os.environ[c.PASSWORD_ENV] = c.Carrier.password
        edge.pbx.start()
        _send_register(edge)
    wait_for(lambda: c.registered(edge), 60, "the registration again")
    wait_for(lambda: _registered_metric(edge, scrape) == 1, 60, "the metric at 1 again")
    text = scrape()[1]
    assert c.Carrier.password not in text and "not-the-password" not in text
    assert c.ACCOUNT not in text  # the account name is the carrier's, not a label


def test_the_registration_is_renewed_after_the_carrier_restarts(edge):
    wait_for(lambda: c.registered(edge), 60, "the registration")
    edge.carrier_events.stop()
    edge.carrier.stop()
    (edge.carrier.host_dir / "db" / "astdb.sqlite3").unlink(missing_ok=True)
    edge.carrier.start()
    edge.carrier_events = EventRecorder(edge.carrier.settings, edge.carrier.ami_secret).start()
    wait_for(lambda: f"{c.ACCOUNT}/sip:" in edge.carrier.cli("pjsip show contacts"), 90,
             "the service's registration at the restarted carrier", interval=0.5)
    wait_for(lambda: c.registered(edge), 60, "the registration shown as Registered")
