"""One night, end to end: calls through the real PBX, then the morning report delivered.

Scenario: Sunny Pediatrics is closed (a manual override, as in test_call_flow). Three SIPp
callers go through the real Asterisk and controller side by side: a routine message, an
appointment message, and a caller who hangs up in the middle of the intake (after
confirming the callback number). Then the night's report is made by calling the
generation function directly (ivr.documents.store.make_report) with an explicit night
and "now" (the practice's opening), and delivered by the real senders:
- fax: our sender PBX runs SendFAX to a second Asterisk that receives with ReceiveFAX
  (the delivery tests' FaxMachine), and the received TIFF has the PDF's pages;
- e-mail: into an aiosmtpd server over STARTTLS, the PDF attached;
- webhook: an aiohttp server that verifies the HMAC signature of every request; it
  answers 500 to the abandoned call's note, which is retried, then reported failed by
  `ivr deliveries list --failed`.

Two choices keep this exact in a shared test session:
- The practice's delivery section is the test servers' (dataclasses.replace on the loaded
  practice: the generation function takes the practice, so no rules file is rewritten).
- The session's database also holds other modules' Sunny calls, so the night's window is
  the schedule's, started at this module's first call (as if the previous report ended
  there: make_report takes an explicit NightWindow as well as a date).
The controller is stopped before delivery, so its own outbox (whose senders point at the
practice's real destinations) does not race the test's senders; the next test restarts it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import subprocess
import sys
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from delivery.test_delivery_email import smtp_server  # noqa: F401  (fixture)
from delivery.test_delivery_fax import (  # noqa: F401  (fax_pbxs is a fixture)
    FAX_NUMBER,
    _pdf_pages,
    _tiff_pages,
    fax_pbxs,
)
from harness import REPO, wait_for
from support.plans import accept_caller_id, answer, choose, happy, voices
from test_call_flow import _cli

from ivr.ami import AmiClient
from ivr.caller.client import CallReport
from ivr.caller.plan import CallPlan, Hangup
from ivr.db.engine import Database
from ivr.delivery import outbox
from ivr.delivery.email import EmailSender, SmtpConfig
from ivr.delivery.fax import FaxSender, FaxSpool
from ivr.delivery.outbox import RetryPolicy, Worker
from ivr.delivery.webhook import WebhookSender, verify_signature
from ivr.documents import store
from ivr.documents.note import NA_ABANDONED
from ivr.documents.report import night_of
from ivr.pbx.instance import AMI_USER
from ivr.rules import load_rules
from ivr.rules.model import Delivery

pytestmark = pytest.mark.pbx

SUNNY_DID = "+16175550100"
SECRET = "night-report-webhook-secret"
# name -> (caller ID, its steps from the voices)
CALLERS = {
    "routine": ("+16175550171", lambda v: happy(v) + choose("4")),
    "appointment": ("+16175550172", lambda v: happy(v) + choose("3")),
    "abandoned": ("+16175550173", lambda v: [*accept_caller_id(), *answer("010"), Hangup()]),
}


class Hook:
    """The practice's webhook endpoint: checks every signature, fails chosen documents."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.fail_documents: set[str] = set()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        valid = verify_signature(SECRET, request.headers.get("X-IVR-Signature", ""), body)
        payload = json.loads(body)
        self.received.append({"valid": valid, "payload": payload,
                              "delivery": request.headers.get("X-IVR-Delivery")})
        if not valid:
            return web.Response(status=401)
        if payload["document"]["id"] in self.fail_documents:
            return web.Response(status=500)
        return web.Response(status=200)


@pytest.fixture(scope="module")
def night_calls(stack, tmp_path_factory):
    """The three calls, placed together; the stored records of each once reconciled."""
    if stack.controller is None or stack.controller.poll() is not None:
        stack.start_controller()
    started = datetime.now(UTC) - timedelta(seconds=1)
    until = (started + timedelta(hours=3)).replace(microsecond=0)
    _cli(stack, "override", "set", "--practice", "sunny-pediatrics", "--closed", "--until",
         until.isoformat(), "--reason", "e2e: the night")
    workdir = tmp_path_factory.mktemp("night")
    said = voices(stack)
    results: dict[str, CallReport] = {}

    def place(name: str) -> None:
        caller, steps = CALLERS[name]
        plan = CallPlan(caller_id=caller, steps=tuple(steps(said)))
        results[name] = stack.place(plan, SUNNY_DID, workdir / name)

    threads = [threading.Thread(target=place, args=(n,), daemon=True) for n in CALLERS]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(400)
        for name, result in results.items():
            assert result.ok, f"{name}: {result.explain()}"
        assert set(results) == set(CALLERS)

        def stored() -> dict[str, dict[str, Any]] | None:
            mine = {c["caller"]: c for c in stack.calls()
                    if c["started_at"] >= started.isoformat()}
            out = {name: mine.get(caller) for name, (caller, *_rest) in CALLERS.items()}
            return out if all(c and c["reconciled_at"] for c in out.values()) else None

        records = wait_for(stored, 60, "the night's calls to be stored and reconciled",
                           interval=0.5)
        wait_for(lambda: stack.channels() == 0, 30, "no channels left in Asterisk")
        # The night is over: the controller's outbox must not race the test's senders.
        stack.stop_controller()
        yield started, records
    finally:
        for thread in threads:
            thread.join(5)
        if stack.channels():
            stack.hangup_all()
        _cli(stack, "override", "clear", "--practice", "sunny-pediatrics")


@pytest.fixture
async def hook():
    receiver = Hook()
    app = web.Application()
    app.router.add_post("/hooks/sunny", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield receiver, f"http://127.0.0.1:{runner.addresses[0][1]}/hooks/sunny"
    finally:
        await runner.cleanup()


async def _ami(pbx) -> AmiClient:
    client = AmiClient(pbx.settings.ami_host, pbx.settings.ami_port, AMI_USER, pbx.ami_secret)
    await client.connect()
    return client


def _failed_deliveries(stack) -> list[dict[str, Any]]:
    out = subprocess.run([sys.executable, "-m", "ivr.cli", "deliveries", "list", "--json",
                          "--failed"], env=stack.env, capture_output=True, text=True,
                         cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


async def test_the_morning_report_reaches_the_practice_by_fax_email_and_webhook(
        stack, night_calls, fax_pbxs, smtp_server, hook, tmp_path: Path):  # noqa: F811
    started, records = night_calls
    fax_pbx, machine = fax_pbxs
    mailbox, smtp_port, cert = smtp_server
    receiver, hook_url = hook
    sunny = load_rules(stack.settings.rules_path, now=started).rules \
        .practices["sunny-pediatrics"]
    practice = replace(sunny, delivery=Delivery(
        fax=FAX_NUMBER, email="frontdesk@sunny.example", webhook_url=hook_url,
        webhook_secret_env="NIGHT_HOOK_SECRET"))

    db = Database(stack.settings.database_url)
    ami = machine_ami = None
    try:
        manual = await store.manual_overrides(db, practice.id, started - timedelta(days=40),
                                              started + timedelta(days=2))
        window = night_of(practice, started, manual)
        assert window is not None and window.contains(started)
        window = replace(window, covers_from=started)
        now = window.opening  # the practice's opening: when the controller would make it
        made = await store.make_report(db, practice, window, now,
                                       out_dir=tmp_path / "documents", worker="e2e",
                                       max_attempts=3)
        assert made.status == store.MADE and made.calls == 3 and made.needs_action == 1
        again = await store.make_report(db, practice, window, now + timedelta(minutes=1),
                                        out_dir=tmp_path / "documents", worker="e2e-2")
        assert again.status == store.EXISTS

        report = json.loads(made.json_path.read_text())
        ids = {name: rec["id"] for name, rec in records.items()}
        assert {c["call_id"] for c in report["calls"]} == set(ids.values())
        starts = [c["started_at"] for c in report["calls"]]
        assert starts == sorted(starts)  # in time order
        [need] = report["needs_action"]
        assert need["call_id"] == ids["abandoned"]
        assert need["reasons"][0]["kind"] == NA_ABANDONED
        assert report["counts"]["by_disposition"] == {"appointment": 1, "none": 1,
                                                      "routine": 1}
        notes = {c["call_id"]: c for c in report["calls"]}
        routine = notes[ids["routine"]]
        assert routine["callback"] == {"number": "+16175550171", "confirmed": True,
                                       "source": "caller_id"}
        assert routine["dob"]["value"] == "1990-01-02" and routine["route"] == "after_hours"
        assert {r["field"] for r in routine["recordings"]} == {"name", "reason"}
        assert all(r["duration_seconds"] > 0.5 for r in routine["recordings"])
        assert "call you back" in routine["caller_told"]
        assert routine["outcome"]["code"] == "message_taken"
        assert notes[ids["abandoned"]]["abandoned_step"] == "intake.dob"

        # Deliver with the real senders, as the controller's outbox would.
        receiver.fail_documents.add(ids["abandoned"])
        ami, machine_ami = await _ami(fax_pbx), await _ami(machine)
        faxed: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()
        machine_ami.subscribe("FaxReceived", lambda e: faxed.done() or faxed.set_result(
            {k: str(e.get(k, "")) for k in ("Status", "Pages", "File")}))
        senders = {
            "fax": FaxSender(ami, FaxSpool.for_instance(fax_pbx), ring_seconds=20,
                             fax_seconds=240),
            "email": EmailSender(SmtpConfig(host="127.0.0.1", port=smtp_port,
                                            sender="service@answering.example",
                                            tls="starttls", cafile=str(cert), timeout=10)),
            "webhook": WebhookSender(timeout=5, env={"NIGHT_HOOK_SECRET": SECRET}),
        }
        worker = Worker(db, senders, worker_id="e2e-outbox", rng=random.Random(7),
                        policy=RetryPolicy(max_attempts=3, base_delay=2, max_delay=4))
        t = now
        for _ in range(6):
            await worker.run_due(t)
            rows = [await outbox.get_delivery(db, d) for d in made.deliveries]
            if all(r is not None and r["status"] in ("succeeded", "failed") for r in rows):
                break
            t += timedelta(seconds=10)
        by_id = {r["id"]: r for r in rows if r is not None}
        failed = [r for r in by_id.values() if r["status"] == "failed"]
        assert len(failed) == 1, [(r["channel"], r["status"], r["last_error"])
                                  for r in by_id.values()]
        assert all(r["status"] == "succeeded" for r in by_id.values() if r not in failed)

        # Fax: received whole by the practice's machine.
        got = await asyncio.wait_for(faxed, 30)
        assert got["Status"] == "SUCCESS"
        assert _tiff_pages(machine.inbox / got["File"]) == _pdf_pages(made.pdf_path) >= 1
        # E-mail: the report attached.
        [(envelope, over_tls)] = mailbox.messages
        assert over_tls and envelope.rcpt_tos == ["frontdesk@sunny.example"]
        message = message_from_bytes(envelope.original_content or b"", policy=policy.default)
        assert "After-hours report" in message["Subject"]
        [attachment] = list(message.iter_attachments())
        assert attachment.get_content() == made.pdf_path.read_bytes()
        # Webhook: every request signed; the report and two notes in, one note refused.
        assert receiver.received and all(r["valid"] for r in receiver.received)
        accepted = [r["payload"] for r in receiver.received
                    if r["payload"]["document"]["id"] not in receiver.fail_documents]
        kinds = sorted((p["document"]["kind"], p["document"]["id"]) for p in accepted)
        assert kinds == sorted([("morning_report", f"sunny-pediatrics:{window.night}"),
                                ("call_note", ids["routine"]),
                                ("call_note", ids["appointment"])])
        hook_report = next(p for p in accepted if p["document"]["kind"] == "morning_report")
        assert hook_report["data"] == report
        assert base64.b64decode(hook_report["pdf_base64"]) == made.pdf_path.read_bytes()
        refused = [r for r in receiver.received
                   if r["payload"]["document"]["id"] == ids["abandoned"]]
        assert len(refused) == 3  # tried, retried, then given up

        # The failure is visible to the operator.
        listed = {d["id"]: d for d in _failed_deliveries(stack)}
        [bad] = failed
        shown = listed[bad["id"]]
        assert shown["channel"] == "webhook" and shown["document_id"] == ids["abandoned"]
        assert shown["attempts"] == 3 and shown["last_error"] == "HTTP 500"
        assert [a["result"] for a in shown["attempt_log"]] == ["retry", "retry", "failed"]
    finally:
        for client in (ami, machine_ami):
            if client is not None:
                await client.close()
        await db.close()
